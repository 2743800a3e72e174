"""interpkit.explain on tiny config models: highlights, sampling, logit effects, labels, Patchscope."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpkit._testing import tiny_model
from interpkit.explain import (
    AutoLabel,
    FeatureContext,
    FeatureExplanation,
    LogitEffects,
    Patchscope,
    TopExamples,
    Verbalizer,
    clean_label,
    explain_feature,
    explain_features,
    feature_reader,
)
from interpkit.sources import DirectionSet, direction_table, neuron_table
from interpkit.table import FeatureTable

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SITE = "layer1.resid_post"
TEXTS = [
    "a cat sat on the mat", "the dog ran far", "hello there", "good night moon", "why not?",
    "it is what it is", "birds sing at dawn", "we can go now", "rain, rain, go away", "stop!",
    "one two three four", "the sun is hot", "zebra and yak", "quiet please", "jump high",
    "i like tea", "she said no", "cold water", "blue sky above", "all is well",
    "small steps", "the end",
]
PROMPT = "cat is cat; dog is dog; ?"  # the tiny random model carries little through attention: end on "?"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def table(model):
    return neuron_table(model, TEXTS, SITE, progress=False, batch_size=4)


class CountingReader:
    """Wraps a reader and records each call's texts."""

    def __init__(self, reader):
        self.reader, self.calls = reader, []

    def __call__(self, texts):
        self.calls.append(list(texts))
        return self.reader(texts)

    def tokens(self, texts):
        return self.reader.tokens(texts)


class StubChat:
    """A deterministic stand-in chat model: records messages, returns a fixed answer."""

    name = "stub-chat"

    def __init__(self, answer='Label: "Short words, and letters."\nIt fires on...'):
        self.answer, self.messages = answer, []

    def complete(self, messages, *, max_tokens=128, temperature=0.0):
        assert temperature == 0.0 and max_tokens > 0
        self.messages.append(messages)
        return self.answer


class LookupEncoder:
    """Similarity = a fixed number per text (lets a test know the exact AUROC)."""

    name = "lookup"

    def __init__(self, score):
        self.score, self.seen, self.calls = score, [], []

    def similarity(self, a, b):
        assert isinstance(a, str)
        self.seen.extend(b)
        self.calls.append((a, list(b)))
        return np.array([[self.score[t] for t in b]], dtype=np.float32)


# ---- reader and highlights --------------------------------------------------------------------


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_reader_pools_back_to_the_table_values(model, pooling):
    t = neuron_table(model, TEXTS, SITE, pooling=pooling, neurons=[0, 3, 9], progress=False, batch_size=4)
    for fid in t.feature_ids:
        reader = feature_reader(t, fid, model)
        acts = reader(TEXTS)
        tokens = reader.tokens(TEXTS)
        pooled = np.array([reader.pool(a) for a in acts])
        np.testing.assert_allclose(pooled, t.column(fid), rtol=1e-5, atol=1e-5)
        # BOS is excluded, as from pooling: the kept tokens spell the text exactly.
        assert ["".join(toks) for toks in tokens] == TEXTS
        assert [len(a) for a in acts] == [len(toks) for toks in tokens]


def test_reader_for_directions_projects_like_direction_table(model):
    rng = np.random.default_rng(1)
    dirs = DirectionSet(names=("d0", "d1"), vectors=rng.normal(size=(2, 16)).astype(np.float32), site=SITE)
    t = direction_table(model, TEXTS, dirs, progress=False)
    for fid in ("d0", "d1"):
        reader = feature_reader(t, fid, model)
        maxima = np.array([a.max() for a in reader(TEXTS)])
        np.testing.assert_allclose(maxima, t.column(fid), rtol=1e-5, atol=1e-5)


def test_reader_for_sae_latents(model):
    from interpkit.sae import SAEConfig, make_sae, sae_table

    sae = make_sae(SAEConfig(architecture="relu", d_in=16, d_sae=8, site=SITE), seed=0)
    t = sae_table(sae, model, TEXTS, progress=False)
    for j in range(4):
        fid = t.feature_ids[j]
        reader = feature_reader(t, fid, model, sae=sae)
        maxima = np.array([a.max() for a in reader(TEXTS)])
        np.testing.assert_allclose(maxima, t.column(fid), rtol=1e-5, atol=1e-5)
    assert feature_reader(t, t.feature_ids[0], model) is None  # SAE latents need the SAE


def test_reader_is_none_for_features_the_model_did_not_produce(model):
    t = FeatureTable(np.ones((2, 1), np.float32), features=None)
    assert feature_reader(t, t.feature_ids[0], model) is None
    assert feature_reader(t, t.feature_ids[0], None) is None


def test_top_examples_highlights_are_real_token_activations(model, table):
    fid = f"{SITE}:n5"
    reader = CountingReader(feature_reader(table, fid, model))
    out = TopExamples(n_top=4, n_quantiles=3, per_quantile=2).explain(
        FeatureContext(table=table, feature_id=fid, model=model, reader=reader))
    column = table.column(fid)
    assert [e["activation"] for e in out["top_examples"]] == sorted(column.tolist(), reverse=True)[:4]
    shown = out["top_examples"] + [e for q in out["quantile_examples"] for e in q["examples"]]
    assert len(reader.calls) == 1 and reader.calls[0] == [e["text"] for e in shown]  # one batched run
    for e in shown:
        assert e["activation"] == pytest.approx(column[TEXTS.index(e["text"])])
        assert max(e["token_activations"]) == pytest.approx(e["activation"], abs=1e-5)
        assert "".join(e["tokens"]) == e["text"]
        assert e["example_id"] == str(TEXTS.index(e["text"]))


# ---- quantile samples, histogram, density -----------------------------------------------------


def test_quantile_examples_cover_the_range_and_are_seeded():
    col = np.linspace(-1.0, 10.0, 40).astype(np.float32)
    t = FeatureTable(col[:, None])
    fid = t.feature_ids[0]
    v = TopExamples(n_top=3, n_quantiles=4, per_quantile=3)
    a = v.explain(FeatureContext(table=t, feature_id=fid, seed=0))
    b = v.explain(FeatureContext(table=t, feature_id=fid, seed=0))
    c = v.explain(FeatureContext(table=t, feature_id=fid, seed=7))
    assert a == b and a["quantile_examples"] != c["quantile_examples"]
    bins = a["quantile_examples"]
    assert [q["name"] for q in bins] == ["q1", "q2", "q3", "q4"]
    top_ids = {e["example_id"] for e in a["top_examples"]}
    for q in bins:
        assert q["examples"], q["name"]
        for e in q["examples"]:
            assert q["lo"] <= e["activation"] <= q["hi"]
            assert e["example_id"] not in top_ids
            assert "tokens" not in e  # no model: text and activation only
    assert max(e["activation"] for e in bins[0]["examples"]) < min(e["activation"] for e in a["top_examples"])
    assert bins[0]["lo"] == pytest.approx(-1.0) and bins[-1]["hi"] == pytest.approx(10.0)


def test_sparse_columns_bin_their_nonzero_values():
    col = np.zeros(50, np.float32)
    col[:8] = np.arange(1, 9)
    t = FeatureTable(col[:, None])
    out = TopExamples(n_top=1, n_quantiles=2, per_quantile=5).explain(
        FeatureContext(table=t, feature_id=t.feature_ids[0]))
    assert all(e["activation"] > 0 for q in out["quantile_examples"] for e in q["examples"])
    assert out["quantile_examples"][0]["lo"] == 1.0


def test_histogram_and_density():
    col = np.array([-2.0, -1.0, 0.0, 0.0, 0.5, 1.0, 3.0, 7.0], np.float32)
    t = FeatureTable(col[:, None])
    out = TopExamples(n_bins=5).explain(FeatureContext(table=t, feature_id=t.feature_ids[0]))
    hist = out["histogram"]
    assert sum(hist["counts"]) == len(col) and len(hist["counts"]) == 5 and len(hist["edges"]) == 6
    assert hist["edges"][0] == -2.0 and hist["edges"][-1] == 7.0
    assert out["density"] == pytest.approx(4 / 8)  # strictly positive only: zeros and negatives are inactive


# ---- logit effects -----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_logit_effects_equal_a_direct_computation(arch):
    m = tiny_model(arch=arch)
    t = neuron_table(m, TEXTS[:4], SITE, neurons=[2, 7], progress=False)
    W_U = m.W_U.detach().float()  # noqa: N806
    gamma = m.final_norm.weight.detach().float()
    out = LogitEffects(k=5).explain(FeatureContext(table=t, feature_id=f"{SITE}:n7", model=m))["logit_effects"]
    expected = (gamma[7] * W_U[7]).numpy()
    order = np.argsort(-expected)
    assert [e["token_id"] for e in out["promoted"]] == order[:5].tolist()
    assert [e["token_id"] for e in out["suppressed"]] == order[::-1][:5].tolist()
    np.testing.assert_allclose([e["value"] for e in out["promoted"]], expected[order[:5]], rtol=1e-6)
    assert [e["token"] for e in out["promoted"]] == [m.tokenizer.decode([int(i)]) for i in order[:5]]
    assert out["method"] == "W_U (final_norm.weight * d)"


def test_logit_effects_of_a_direction(model):
    v = np.random.default_rng(3).normal(size=16).astype(np.float32)
    t = direction_table(model, TEXTS[:3], DirectionSet(names=("v",), vectors=v[None], site=SITE), progress=False)
    out = LogitEffects(k=50).explain(FeatureContext(table=t, feature_id="v", model=model))["logit_effects"]
    expected = (model.final_norm.weight.detach().float() * torch.from_numpy(v)) @ model.W_U.detach().float()
    got = {e["token_id"]: e["value"] for e in out["promoted"]}
    np.testing.assert_allclose([got[i] for i in range(50)], expected.numpy(), rtol=1e-5, atol=1e-6)


# ---- AutoLabel ----------------------------------------------------------------------------------


def test_clean_label():
    assert clean_label('"Dates and years."') == "Dates and years"
    assert clean_label("\n\n  Label: **Cooking** recipes\nmore") == "Cooking** recipes"
    assert clean_label("one two three four five six seven eight nine ten") == "one two three four five six seven eight"
    assert clean_label("   ") == ""
    assert clean_label("that the text is about cooking and food. It is") == "cooking and food"
    assert clean_label("The feature that detects the word bread") == "the word bread"


def test_autolabel_plumbing(model, table):
    fid = f"{SITE}:n5"
    column = table.column(fid)
    chat = StubChat()
    encoder = LookupEncoder({t: float(column[i]) for i, t in enumerate(TEXTS)})
    reader = feature_reader(table, fid, model)
    out = AutoLabel(chat, n_examples=4, n_heldout=5).explain(
        FeatureContext(table=table, feature_id=fid, model=model, reader=reader, encoder=encoder))
    assert out["label"] == "Short words, and letters" and out["label_source"] == "stub-chat"
    (messages,) = chat.messages
    user = messages[-1]["content"]
    top = np.argsort(-column, kind="stable")[:4]
    assert user.count("<<") >= 4 and user.count("<<") == user.count(">>")  # each shown example marked
    shown = [TEXTS[i] for i in top]
    for text in shown:
        assert text.replace(" ", "") in user.replace("<<", "").replace(">>", "").replace(" ", "")
    # two candidates (the chat's and the keyword one) are compared on the shown + least active
    # examples; the chat's wins the tie. The final score uses held-out texts only, most vs least
    # active: similarity == activation gives AUROC 1
    s = out["label_scoring"]
    assert [c["source"] for c in s["candidates"]] == ["stub-chat", "keywords"]
    assert all(c["selection_auroc"] == 1.0 for c in s["candidates"])
    *selection, (label, held) = encoder.calls
    assert label == "Short words, and letters" and all(set(b) >= set(shown) for _, b in selection)
    assert not set(held) & {t for _, b in selection for t in b}
    assert out["label_score"] == 1.0
    assert (s["method"], s["metric"], s["n_positive"], s["n_negative"]) == ("embedding-detection", "auroc", 5, 5)
    anti = LookupEncoder({t: -float(column[i]) for i, t in enumerate(TEXTS)})
    out = AutoLabel(chat, n_examples=4, n_heldout=5).explain(
        FeatureContext(table=table, feature_id=fid, model=model, reader=reader, encoder=anti))
    assert out["label_score"] == 0.0


def test_autolabel_without_a_gap_does_not_score():
    t = FeatureTable(np.ones((12, 1), np.float32))
    out = AutoLabel(StubChat("flat"), n_examples=3).explain(
        FeatureContext(table=t, feature_id=t.feature_ids[0], encoder=LookupEncoder({})))
    assert out["label"] == "flat" and out["label_score"] is None
    assert out["label_scoring"]["n_positive"] == 0


# ---- Patchscope ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
@pytest.mark.parametrize("mode", ["replace", "add"])
def test_patchscope_changes_generation_and_leaves_no_trace(backend, mode):
    m = tiny_model(backend)
    t = neuron_table(m, TEXTS, SITE, neurons=[1, 4], progress=False)
    baseline = m.generate(PROMPT, max_new_tokens=8)[0]
    v = Patchscope(prompt=PROMPT, mode=mode, max_new_tokens=8, scale=None if mode == "replace" else 20.0)
    out = v.explain(FeatureContext(table=t, feature_id=f"{SITE}:n4", model=m))["self_explanation"]
    assert out["method"] == "patchscope" and out["layer"] == 0 and out["site"] == "layer0.resid_post"
    assert out["scale"] > 0 and out["prompt"] == PROMPT
    ids = m.tokenize(PROMPT).input_ids[0].tolist()
    assert m.tokenizer.decode([ids[out["position"]]]) == "?"
    # the edit really reaches generation ...
    direction = np.zeros(16, np.float32)
    direction[4] = 1.0
    with m.edits(v.edit(out["site"], direction, out["scale"], out["position"])):
        patched = m.generate(PROMPT, max_new_tokens=8)[0]
    assert patched != baseline
    assert (out["text"], out["baseline_text"]) == (patched.strip(), baseline.strip())
    # ... and leaving the context restores the baseline
    assert m.generate(PROMPT, max_new_tokens=8)[0] == baseline
    assert m.active_edits == ()


def test_patchscope_scale_is_the_measured_residual_norm(model, table):
    ctx = FeatureContext(table=table, feature_id=f"{SITE}:n2", model=model)
    out = Patchscope(prompt=PROMPT, layer=1).explain(ctx)["self_explanation"]
    batch = model.tokenize(TEXTS[:8], max_length=64)
    with torch.no_grad():
        acts = model.capture(batch, SITE)[SITE]
    keep = batch.attention_mask.bool()
    keep[:, 0] = False  # BOS
    assert out["scale"] == pytest.approx(float(acts.norm(dim=-1)[keep].median()), rel=1e-5)


# ---- explain_feature ------------------------------------------------------------------------------


class Broken(Verbalizer):
    name = "broken"

    def explain(self, ctx):
        raise RuntimeError("no luck here")


def test_a_failing_verbalizer_records_its_error(model, table):
    class FailingChat(StubChat):
        def complete(self, messages, **kw):
            raise ConnectionError("chat server down")

    e = explain_feature(table, f"{SITE}:n3", model=model, chat=FailingChat(),
                        verbalizers=[TopExamples(n_top=2), Broken(), AutoLabel(), LogitEffects(k=3)])
    assert e.errors == {"broken": "RuntimeError: no luck here", "autolabel": "ConnectionError: chat server down"}
    assert len(e.top_examples) == 2 and len(e.logit_effects["promoted"]) == 3 and e.label is None


def test_explain_feature_defaults_round_trip_and_json(model, table):
    fid = f"{SITE}:n6"
    column = table.column(fid)
    timings = {}
    e = explain_feature(table, fid, model=model, chat=StubChat("Letters"),
                        encoder=LookupEncoder({t: float(column[i]) for i, t in enumerate(TEXTS)}),
                        timings=timings)
    assert e.errors == {}
    assert set(timings) == {"top_examples", "logit_effects", "autolabel", "patchscope"}
    d = e.to_dict()
    assert set(d) == {"feature_id", "label", "label_source", "label_score", "label_scoring", "top_examples",
                      "quantile_examples", "histogram", "density", "logit_effects", "self_explanation", "errors"}
    assert d["label"] == "Letters" and d["self_explanation"]["method"] == "patchscope"
    again = FeatureExplanation.from_dict(json.loads(json.dumps(d)))
    assert again == e and again.to_dict() == d
    with pytest.raises(ValueError, match="unknown key"):
        FeatureExplanation.from_dict({**d, "colour": "red"})
    assert FeatureExplanation.from_dict({**d, "colour": "red"}, lenient=True) == e
    with pytest.raises(ValueError, match="feature_id"):
        FeatureExplanation.from_dict({"label": "x"})
    with pytest.raises(KeyError):
        explain_feature(table, "no-such-feature")


def test_report_entries_carry_the_explanation(model, table):
    from interpkit.report import FeatureEntry

    e = explain_feature(table, f"{SITE}:n1", model=model, verbalizers=[TopExamples(n_top=1), LogitEffects(k=2)])
    entry = FeatureEntry(rank=1, feature_id=e.feature_id, explanation=e.to_dict())
    back = json.loads(json.dumps(entry.to_dict()))["explanation"]
    assert FeatureExplanation.from_dict(back) == e


def test_explain_features_shares_forward_passes(model, table):
    cache = {}
    out = explain_features(table, [f"{SITE}:n0", f"{SITE}:n8"], model=model, cache=cache,
                           verbalizers=[TopExamples(n_top=3)])
    assert list(out) == [f"{SITE}:n0", f"{SITE}:n8"]
    (site_tokens,) = cache["readers"].values()  # one cached site reader for both neurons
    assert set(site_tokens.memo) <= set(TEXTS)
    for e in out.values():
        assert max(e.top_examples[0]["token_activations"]) == pytest.approx(e.top_examples[0]["activation"], abs=1e-5)


def test_autolabel_drops_a_degenerate_chat_label_for_the_keyword_candidate(model, table):
    fid = f"{SITE}:n5"
    column = table.column(fid)
    encoder = LookupEncoder({t: float(column[i]) for i, t in enumerate(TEXTS)})
    chat = StubChat("the feature detects that the feature detects that")
    out = AutoLabel(chat, n_examples=4, n_heldout=5).explain(
        FeatureContext(table=table, feature_id=fid, model=model, encoder=encoder))
    assert out["label_source"] == "keywords" and out["label"]
    assert [c["source"] for c in out["label_scoring"]["candidates"]] == ["keywords"]
