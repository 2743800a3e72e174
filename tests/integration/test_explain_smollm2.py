"""explain on SmolLM2-135M: one DiffMean direction and one neuron, end to end with a real label."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.slow

SITE = "layer15.resid_post"
# Every text opens with a common word: rare first tokens ("Snow", "Sl") become attention sinks
# with norms near 20,000 at this site and would dominate any max-pooled projection.
FOOD = [
    "The soup needs more salt and pepper.", "She grilled salmon with lemon for dinner.",
    "We ate pasta with tomato sauce.", "The chocolate cake was sweet and rich.",
    "He ordered a pizza with mushrooms.", "We added sugar to the pancake batter.",
    "The strawberries taste great with cream.", "The chef roasted the chicken slowly.",
    "We had rice and beans for a cheap meal.", "She boiled the potatoes until they were soft.",
    "I had cheese and crackers for lunch.", "The curry was spicy and delicious.",
    "He toasted the almonds for the salad.", "I baked fresh bread with butter and garlic.",
    "They fried the onions in olive oil.",
]
OTHER = [
    "The train leaves the station at noon.", "He fixed the bug in the software.",
    "The river flows into the sea.", "She won the chess tournament.", "The taxes are due in April.",
    "The telescope revealed a distant galaxy.", "Our team finished the report on time.",
    "The museum opens on Sunday.", "The wind turbines generate electricity.",
    "The lawyer filed a motion in court.", "The snow covered the mountain peaks.",
    "The parliament passed a new law.", "My laptop battery died again.", "The athletes ran a marathon.",
    "The birds migrate south in the winter.",
]
FIT = [
    ("We cooked noodles with soy sauce.", 1), ("The bakery sells warm croissants.", 1),
    ("My grandmother makes the best stew.", 1), ("I ate an apple and a pear.", 1),
    ("The car needs new tires.", 0), ("He reads the newspaper every morning.", 0),
    ("The concert starts at eight.", 0), ("She studies physics at university.", 0),
]


def _check_highlights(explanation):
    shown = explanation.top_examples + [e for q in explanation.quantile_examples for e in q["examples"]]
    for e in shown:
        assert max(e["token_activations"]) == pytest.approx(e["activation"], rel=1e-4, abs=1e-2)
        assert len(e["tokens"]) == len(e["token_activations"])


def test_explain_a_direction_and_a_neuron_end_to_end(smollm2_tl):
    from interpkit.explain import AutoLabel, LogitEffects, Patchscope, TopExamples, explain_feature
    from interpkit.models import sentence_encoder
    from interpkit.models._chat import LocalChat
    from interpkit.sources import (
        DirectionSet,
        contrast_direction,
        direction_table,
        neuron_table,
        stream_activations,
    )

    model = smollm2_tl
    start = time.perf_counter()
    fit = stream_activations(model, [t for t, _ in FIT], SITE, pooling="mean", progress=False)
    v = contrast_direction(fit[SITE, "mean"].to_numpy(), [y for _, y in FIT])
    texts = FOOD + OTHER
    table = direction_table(model, texts, DirectionSet(names=("food",), vectors=v[None], site=SITE,
                                                       kind="contrast"), progress=False)
    tables_s = time.perf_counter() - start

    cache, timings = {}, {}
    verbalizers = [TopExamples(), LogitEffects(), AutoLabel(n_examples=6, max_chars=160),
                   Patchscope(max_new_tokens=6)]  # short prompts and answers: generation dominates
    e = explain_feature(table, "food", model=model, chat=LocalChat(model), encoder=sentence_encoder(),
                        cache=cache, timings=timings, verbalizers=verbalizers)
    print(f"\ntables {tables_s:.1f}s; direction 'food': " + ", ".join(f"{k} {s:.1f}s" for k, s in timings.items()))
    print(f"label {e.label!r} (score {e.label_score}, {dict(e.label_scoring)}); "
          f"patchscope {e.self_explanation['text']!r} vs {e.self_explanation['baseline_text']!r}")
    assert e.errors == {}
    _check_highlights(e)
    assert sum(ex["text"] in FOOD for ex in e.top_examples) >= 4  # the direction found food
    assert e.label and len(e.label.split()) <= 8 and "\n" not in e.label
    # the chat model's label is always a candidate; the extractive one wins when it detects better
    candidates = e.label_scoring["candidates"]
    assert e.label_source in (model.name, "keywords") and candidates[-1]["source"] == "keywords"
    chosen = next(c for c in candidates if c["source"] == e.label_source)
    assert chosen["label"] == e.label
    assert chosen["selection_auroc"] == max(c["selection_auroc"] for c in candidates)
    assert 0.0 <= e.label_score <= 1.0 and e.label_scoring["n_positive"] >= 3
    assert len(e.logit_effects["promoted"]) == 10 and len(e.logit_effects["suppressed"]) == 10
    assert e.self_explanation["text"] != e.self_explanation["baseline_text"]  # the edit reached generation
    json.dumps(e.to_dict())

    # A neuron at the same site: its token activations come from the cached forward passes.
    neurons = neuron_table(model, texts, SITE, neurons=[11, 100], progress=False)
    timings = {}
    n = explain_feature(neurons, f"{SITE}:n100", model=model, cache=cache, timings=timings,
                        verbalizers=[TopExamples()])
    print("neuron: " + ", ".join(f"{k} {s:.2f}s" for k, s in timings.items()))
    assert n.errors == {}
    _check_highlights(n)
