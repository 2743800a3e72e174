"""The LM judge and the generative compiler with the packaged SmolLM2-135M-Instruct (CPU).

Generation dominates: 4 x 24 tokens, seconds on an idle machine, minutes when the CPU is shared."""

from __future__ import annotations

import pytest

from interpkit.criterion._generative import GenerativeCompiler
from interpkit.criterion._judge import LMJudgeCompiler
from interpkit.models._chat import LocalChat

pytestmark = pytest.mark.slow

CRITERION = "the ocean, the sea and marine life"
ON = [
    "The ocean covers most of the planet, and its waves crash on sandy beaches.",
    "Whales and dolphins swim in the deep blue sea, far from the coast.",
    "Sailors crossed the stormy sea for weeks before they saw land.",
    "Coral reefs in the warm ocean are home to thousands of colourful fish.",
]
OFF = [
    "Preheat the oven, then mix the flour, butter and sugar into a smooth dough.",
    "The quarterly tax return must be filed before the end of April.",
    "Install the package with pip and import the module in your script.",
    "The orchestra tuned their violins before the evening concert began.",
]


@pytest.fixture(scope="module")
def chat(smollm2_tl):
    return LocalChat(smollm2_tl)


def test_local_judge_rates_on_topic_above_off_topic(chat):
    judge = LMJudgeCompiler(chat=chat)
    assert judge.method == "topic"
    scored = judge.score_texts(CRITERION, ON + OFF)
    on, off = [s.score for s in scored[:4]], [s.score for s in scored[4:]]
    assert min(on) > max(off), (on, off)
    # Small pools use a fixed logistic map, so labels near the boundary may be uncertain, never wrong.
    assert "positive" not in [s.label for s in scored[4:]] and "negative" not in [s.label for s in scored[:4]]
    assert [s.label for s in scored].count("positive") >= 2 and [s.label for s in scored].count("negative") >= 2
    for s in scored:
        assert s.provenance["judge_model"] == "smollm2-135m" and s.provenance["template"] == "topic-v1"


def test_local_rating_judge_reads_digit_probabilities(chat):
    (s,) = LMJudgeCompiler(chat=chat, method="rating").score_texts(CRITERION, ON[:1])
    assert s.provenance["answer_from"] == "choice_probs" and len(s.provenance["probs"]) == 10
    assert sum(s.provenance["probs"]) == pytest.approx(1.0, abs=1e-3) and 0.0 <= s.score <= 1.0


def test_local_generation_has_provenance(chat, tmp_path):
    gen = GenerativeCompiler(chat=chat, checker="embedding", n_positive=2, n_negative=2, max_new_tokens=24,
                             cache=tmp_path)
    examples = gen.examples(CRITERION)
    assert [e.provenance["role"] for e in examples] == ["positive"] * 2 + ["negative"] * 2
    for e in examples:
        assert e.text and e.provenance["generator"] == "smollm2-135m" and e.provenance["checker"] == "embedding"
        assert 0.0 <= e.provenance["checker_score"] <= 1.0 and isinstance(e.provenance["kept"], bool)
        assert e.provenance["instruction"] and not e.provenance["cached"]
    # The positives were asked to be about the sea: on average the checker scores them higher.
    assert sum(e.score for e in examples[:2]) > sum(e.score for e in examples[2:]), [e.text for e in examples]
    again = GenerativeCompiler(chat=chat, checker="embedding", n_positive=2, n_negative=2, max_new_tokens=24,
                               cache=tmp_path).examples(CRITERION)
    assert [e.text for e in again] == [e.text for e in examples] and all(e.provenance["cached"] for e in again)
