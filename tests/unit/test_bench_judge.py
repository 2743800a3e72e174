"""Steering judges: rating parsing, the LM judge over a loopback server, the calibrated local judge."""

from __future__ import annotations

import re
import zlib
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from _openai_server import FakeChatServer

from interpkit.bench._judge import (
    Judge,
    LMJudge,
    LocalJudge,
    judge_prompts,
    parse_rating,
    perplexity,
    repetition,
)
from interpkit.models._chat import OpenAIChat


@pytest.mark.parametrize(("answer", "value"), [
    ("Rating: [[2]]", 2.0),
    ("The concept is clear.\nRating: [[2]].", 2.0),
    ("**Rating:** [[1]]", 1.0),
    ("Rating: **0**", 0.0),
    ('Rating: "1.5"', 1.5),
    ("Rating: [[1]]\nbut on reflection\nRating: [[2]]", 2.0),
    ("First Rating: [[2]] then Rating: [[0]]", 0.0),
    ("rating: [[1]]", 1.0),
    ("no verdict here", 0.0),
    ("Rating: [[3]]", 0.0),
    ("Rating: [[-1]]", 0.0),
    ("Rating: [[two]]", 0.0),
    ("Rating:\n[[2]]", 2.0),
    ("Rating:", 0.0),
    ("Rating: nan", 0.0),
    ("", 0.0),
])
def test_parse_rating(answer, value):
    assert parse_rating(answer) == value


def test_judge_prompts_show_the_right_inputs():
    concept, instruction, fluency = judge_prompts("the ocean", "Name a fruit.", "Apples grow by the sea.")
    assert "the ocean" in concept and "Apples grow by the sea." in concept and "Name a fruit." not in concept
    assert "Name a fruit." in instruction and "the ocean" not in instruction
    assert "Apples grow by the sea." in fluency and "the ocean" not in fluency and "Name a fruit." not in fluency
    assert all("Rating: [[k]]" in p for p in (concept, instruction, fluency))


def _reply(messages):
    prompt = messages[-1]["content"]
    text = re.search(r"\[Text fragment\]\n(.*)\n\[End of text fragment\]", prompt, re.S).group(1)
    if "presence of the concept" in prompt:
        return "It talks about waves.\nRating: [[2]]" if "sea" in text else "No mention.\nRating: [[0]]"
    if "topical relatedness" in prompt:
        return "Loosely related.\n**Rating:** [[1]]"
    return "Reads well.\nRating: [[2]]."


def test_lm_judge_against_loopback_server(tmp_path):
    gens = ["The sea is calm today.", "Apples are red."]
    with FakeChatServer(reply=_reply) as srv:
        chat = OpenAIChat(model="judge-x", base_url=srv.url, sleep=lambda s: None)
        judge = LMJudge(chat, cache=tmp_path / "cache")
        assert isinstance(judge, Judge)
        scores, details = judge.rate_details("the ocean", "Describe your morning.", gens)
        assert len(srv.requests) == 3 * len(gens)
        bodies = [r["body"] for r in srv.requests]
        assert all(b["temperature"] == 0.0 and b["model"] == "judge-x" for b in bodies)
        assert all(len(b["messages"]) == 1 and b["messages"][0]["role"] == "user" for b in bodies)
        np.testing.assert_array_equal(scores, [[2, 1, 2], [0, 1, 2]])
        assert details[0]["concept"].startswith("It talks about waves") and set(details[0]) == {
            "concept", "instruction", "fluency"}
        # Memoised: the same prompts make no requests.
        np.testing.assert_array_equal(judge.rate("the ocean", "Describe your morning.", gens), scores)
        assert len(srv.requests) == 6 and judge.n_calls == 6
        # On disk: a new judge with the same cache folder asks nothing either.
        again = LMJudge(OpenAIChat(model="judge-x", base_url=srv.url, sleep=lambda s: None), cache=tmp_path / "cache")
        np.testing.assert_array_equal(again.rate("the ocean", "Describe your morning.", gens), scores)
        assert len(srv.requests) == 6 and again.n_calls == 0
        # Threads give the same answers.
        threaded = LMJudge(chat, workers=3)
        np.testing.assert_array_equal(threaded.rate("the ocean", "Describe your evening.", gens), scores)
    info = judge.describe()
    assert info["kind"] == "lm" and info["model"] == "judge-x" and info["endpoint"] == srv.url


# ---- local judge -------------------------------------------------------------------------------


class BagOfWords:
    """A stand-in sentence encoder: hashed bag of words, unit norm."""

    name = "bow-test"

    def encode(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z]+", text.lower()):
                out[i, zlib.crc32(word.encode()) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def similarity(self, a, b):
        return self.encode(a) @ self.encode(b).T


class Constant(BagOfWords):
    def encode(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        return np.ones((len(texts), 4), dtype=np.float32) / 2.0


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def _task():
    """A synthetic AxBench-like task: short texts (the tiny model has 64 positions)."""
    from interpkit.bench._task import Concept

    concepts = (Concept(0, "sea waves", "text"), Concept(1, "tax money", "text"))
    topics = ["cats", "dogs", "rain", "bread", "music", "trees"]
    rows = []
    for cid, words in ((0, "the sea waves"), (1, "tax money rules")):
        for t in topics:
            rows.append({"input": f"tell me of {t}", "output": f"{t} are like {words} today",
                         "category": "positive", "concept_id": cid})
            rows.append({"input": f"write on {t}", "output": f"{t} are nice and {t} are fun",
                         "category": "negative", "concept_id": cid})
    rows.append({"input": "a note", "output": "a wave of hands", "category": "hard negative", "concept_id": 0})
    return SimpleNamespace(name="synthetic", concepts=concepts, eval=pd.DataFrame(rows))


def test_repetition():
    assert repetition("one two three") == 0.0
    assert repetition("a b c d e f g h") == 0.0
    assert repetition("go go go go go go go go") == pytest.approx(4 / 5)


def test_perplexity_ignores_edits_and_padding(tiny):
    import torch

    from interpkit.models import AddVector

    prompts, conts = ["hi\n\n", "what is it\n\n", "x"], ["the sea is blue", "a b", ""]
    one = perplexity(tiny, prompts, conts, batch_size=1)
    np.testing.assert_allclose(perplexity(tiny, prompts, conts, batch_size=3), one, rtol=1e-4)
    assert np.isnan(one[2]) and np.all(one[:2] > 1)
    with tiny.edits(AddVector("layer1.resid_post", torch.ones(16), strength=30.0)):
        np.testing.assert_allclose(perplexity(tiny, prompts, conts, batch_size=3), one, rtol=1e-4)
    with pytest.raises(ValueError, match="2 prompts but 1"):
        perplexity(tiny, prompts[:2], conts[:1])


def test_local_judge_rates_with_given_thresholds(tiny):
    judge = LocalJudge(BagOfWords(), tiny, max_length=64,
                       thresholds={"concept": (0.2, 0.5), "instruction": (0.2, 0.5), "fluency": (1e9, 1e8)})
    assert isinstance(judge, Judge)
    gens = ["the sea waves", "cats like sea", "bread", "sea sea sea sea sea sea sea sea", "  "]
    scores, raw = judge.rate_details("sea waves", "tell me of cats", gens)
    assert scores.shape == (5, 3)
    assert list(scores[:, 0]) == [2, 1, 0, 2, 0]
    assert scores[1, 1] >= 1 and scores[2, 1] == 0
    assert scores[0, 2] == 2 and scores[3, 2] == 0  # very repetitive: fluency 0 whatever its perplexity
    assert list(scores[4]) == [0, 0, 0]  # empty generation
    assert set(raw[0]) == {"concept_cos", "instruction_cos", "perplexity", "repetition"}
    with pytest.raises(ValueError, match="calibrate"):
        LocalJudge(BagOfWords(), tiny).rate("sea", "hi", ["the sea"])
    with pytest.raises(ValueError, match="model="):
        LocalJudge(BagOfWords(), thresholds=judge.thresholds).rate("sea", "hi", ["the sea"])


def test_local_judge_calibrates_and_reports(tiny):
    judge = LocalJudge(BagOfWords(), tiny, max_length=64)
    cal = judge.calibrate(_task(), max_rows=50)
    assert cal["concept"]["auroc"] == pytest.approx(1.0) and cal["trusted"] is True and judge.trusted
    assert cal["concept"]["n_positive"] == 12 and cal["concept"]["n_hard_negative"] == 1
    t1, t2 = cal["concept"]["thresholds"]
    assert 0 < t1 <= t2 <= 1
    assert cal["instruction"]["auroc"] > 0.8
    p1, p2 = cal["fluency"]["thresholds"]
    assert p1 >= p2 > 1 and 0 <= cal["fluency"]["auroc"] <= 1
    info = judge.describe()
    assert info["encoder"] == "bow-test" and info["model"] == tiny.name and info["trusted"] is True
    assert set(info["thresholds"]) == {"concept", "instruction", "fluency"}
    scores = judge.rate("sea waves", "tell me of cats", ["cats are like the sea waves today", "cats are nice"])
    assert scores[0, 0] == 2 and scores[1, 0] == 0
    # An uninformative encoder calibrates to AUROC 0.5 and is flagged.
    with pytest.warns(UserWarning, match="AUROC"):
        bad = LocalJudge(Constant(), tiny, max_length=64).calibrate(_task(), max_rows=50)
    assert bad["trusted"] is False


def test_local_judge_calibrate_says_what_is_missing(tiny):
    task = _task()
    task.eval = task.eval[task.eval["category"] != "negative"]
    with pytest.raises(ValueError, match="'negative'"):
        LocalJudge(BagOfWords(), tiny).calibrate(task)
    task = _task()
    task.eval.loc[0, "concept_id"] = 7
    with pytest.raises(ValueError, match=r"\[7\]"):
        LocalJudge(BagOfWords(), tiny).calibrate(task)


def test_local_judge_fluency_context(tiny):
    thresholds = {"concept": (0.2, 0.5), "instruction": (0.2, 0.5), "fluency": (1e9, 1e8)}
    neutral = LocalJudge(BagOfWords(), tiny, max_length=64, thresholds=thresholds)
    own = LocalJudge(BagOfWords(), tiny, max_length=64, thresholds=thresholds, fluency_context="instruction")
    a = neutral.raw_scores("sea", "tell me of cats", ["the sea is wide"])[0]["perplexity"]
    b = own.raw_scores("sea", "tell me of cats", ["the sea is wide"])[0]["perplexity"]
    assert b == pytest.approx(perplexity(tiny, ["tell me of cats\n\n"], ["the sea is wide"])[0])
    assert a == pytest.approx(perplexity(tiny, ["Write a short text.\n\n"], ["the sea is wide"])[0])
    assert neutral.describe()["fluency_context"] == "neutral"
    with pytest.raises(ValueError, match="fluency_context"):
        LocalJudge(fluency_context="prompt")
