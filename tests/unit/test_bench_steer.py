"""Steering evaluation on the tiny model: magnitudes, steered generations, Prompt baseline, end to end."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from interpkit.bench._steer import (
    FACTORS,
    evaluate_steering,
    fallback_steering_prompt,
    prompt_generations,
    steer_generations,
    steering_magnitude,
    write_generations,
    write_steering_prompt,
)

SITE = "layer1.resid_post"


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def _vector(scale=1.0):
    return np.random.default_rng(0).standard_normal(16).astype(np.float32) * scale


class FakeChat:
    name = "fake-chat"

    def __init__(self, answer="talk of the sea."):
        self.answer = answer
        self.calls = []

    def complete(self, messages, *, max_tokens=128, temperature=0.0):
        self.calls.append(messages)
        return self.answer

    def choice_probs(self, messages, choices):
        return None


def test_factors_and_magnitude():
    assert len(FACTORS) == 14 and FACTORS[0] == 0.2 and FACTORS[-1] == 5.0
    assert steering_magnitude(3.5) == 3.5
    assert steering_magnitude(0.0) == 50.0 and steering_magnitude(-2.0, fallback=7.0) == 7.0
    assert steering_magnitude(None) == 1.0 and steering_magnitude(math.nan) == 1.0


def test_steer_generations_change_with_the_vector(tiny):
    prompts = ["hello there", "what is it"]
    kw = {"max_new_tokens": 8, "batch_size": 2}
    greedy = steer_generations(tiny, SITE, _vector(), prompts, [0.0, 40.0], 1.0, temperature=0.0, **kw)
    assert [(i, f) for i, f, _ in greedy] == [(0, 0.0), (1, 0.0), (0, 40.0), (1, 40.0)]
    assert [g for *_, g in greedy[:2]] != [g for *_, g in greedy[2:]]
    # Factor 0 is the unsteered model.
    plain = tiny.generate(["hello there\n\n", "what is it\n\n"], max_new_tokens=8)
    assert [g for *_, g in greedy[:2]] == plain
    # Sampling is reproducible with a seed.
    a = steer_generations(tiny, SITE, _vector(), prompts, [0.0, 40.0], 1.0, temperature=1.0, seed=3, **kw)
    b = steer_generations(tiny, SITE, _vector(), prompts, [0.0, 40.0], 1.0, temperature=1.0, seed=3, **kw)
    assert a == b
    with pytest.raises(ValueError, match="d_model 16"):
        steer_generations(tiny, SITE, np.ones(5), prompts, [1.0], 1.0)


def test_prompt_generations(tiny):
    chat = FakeChat()
    meta, gens = prompt_generations(tiny, chat, "sea waves", ["hi there", "a cat"], max_new_tokens=6,
                                    temperature=0.0, batch_size=2)
    assert meta == {"steering_prompt": "talk of the sea.", "source": "chat"}
    assert "sea waves" in chat.calls[0][0]["content"]
    assert [(i, f) for i, f, _ in gens] == [(0, None), (1, None)]
    expected = tiny.generate(["talk of the sea.\n\nQuestion: hi there\n\n"], max_new_tokens=6)[0]
    assert gens[0][2] == expected
    # An empty answer (or no chat model) gives the fixed fallback sentence.
    assert write_steering_prompt(FakeChat(answer='  ""  '), "sea waves") == (
        fallback_steering_prompt("sea waves"), "fallback")
    assert write_steering_prompt(None, "sea")[1] == "fallback"
    meta, _ = prompt_generations(tiny, None, "sea", ["hi"], steering_prompt="be wet.", max_new_tokens=2,
                                 temperature=0.0)
    assert meta["source"] == "given"


def test_write_generations(tmp_path):
    path = write_generations([{"a": np.float32(1.5), "b": [1, 2]}, {"a": None}], tmp_path / "g.jsonl")
    assert [json.loads(line) for line in path.read_text().splitlines()] == [{"a": 1.5, "b": [1, 2]}, {"a": None}]


class FakeJudge:
    """Concept 2 when the generation has a vowel, instruction 1, fluency 2 for non-empty text."""

    def __init__(self):
        self.calls = []

    def rate(self, concept, instruction, generations):
        self.calls.append((concept, instruction, len(generations)))
        return np.array([[2.0 if any(v in g for v in "aeiou") else 0.0, 1.0, 2.0 if g.strip() else 0.0]
                         for g in generations])

    def describe(self):
        return {"kind": "fake"}


def _ctx(tiny, tmp_path):
    from interpkit.bench._task import Concept

    task = SimpleNamespace(
        name="synthetic", concepts=(Concept(0, "sea waves", "text"),),
        eval=pd.DataFrame({"input": ["tell me of cats"], "output": ["cats and the sea"], "category": ["positive"],
                           "concept_id": [0]}))
    task.concept = lambda cid: task.concepts[0]
    source = tmp_path / "instructions.txt"
    source.write_text("hi there\nname a dog\nsay a word\nwhat is up\n")
    return SimpleNamespace(task=task, model=tiny, site=SITE, chat=FakeChat("be wet."), eval_acts=None), source


def test_evaluate_steering_end_to_end(tiny, tmp_path):
    ctx, source = _ctx(tiny, tmp_path)
    fitted = {"DiffMean": {0: SimpleNamespace(steer_vector=_vector())},
              "BoW": {0: SimpleNamespace(steer_vector=None)}}
    judge = FakeJudge()
    out = evaluate_steering(ctx, fitted, judge, max_acts={"DiffMean": {0: 10.0}}, factors=[4.0, 0.5],
                            n_instructions=2, max_new_tokens=6, temperature=1.0, batch_size=2, seed=1,
                            instruction_source=source, generations=tmp_path / "generations.jsonl", progress=False)
    assert out["judge"] == {"kind": "fake"} and out["settings"]["factors"] == [0.5, 4.0]
    dm = out["methods"]["DiffMean"]
    entry = dm["per_concept"]["0"]
    assert entry["factor"] in (0.5, 4.0) and entry["magnitude"] == 10.0 and entry["max_act"] == 10.0
    by = entry["by_factor"]
    assert by["factor"] == [0.5, 4.0] and by["strength"] == [5.0, 40.0]
    assert len(by["score"]) == len(by["concept"]) == len(by["perplexity"]) == 2
    assert all(v == 1.0 for v in by["instruction"])
    assert all(p is None or p > 1 for p in by["perplexity"]) and any(p is not None for p in by["perplexity"])
    assert entry["n_selection"] == 1 and entry["n_test"] == 1
    assert dm["mean_score"] == entry["test_score"] and dm["n_concepts"] == 1 and dm["seconds"] > 0
    assert out["methods"]["BoW"]["per_concept"]["0"]["skipped"] == "no steer_vector"
    prompt = out["methods"]["Prompt"]["per_concept"]["0"]
    assert prompt["factor"] is None and prompt["steering_prompt"] == "be wet." and prompt["source"] == "chat"
    assert prompt["test_score"] is not None
    # Judge calls: one per (method, concept, instruction); each DiffMean call rates both factors.
    assert judge.calls.count(("sea waves", judge.calls[0][1], 2)) >= 1 and len(judge.calls) == 4
    lines = [json.loads(line) for line in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert len(lines) == 2 * 2 + 2 and out["generations_file"] == str(tmp_path / "generations.jsonl")
    first = lines[0]
    assert first["method"] == "DiffMean" and first["concept_id"] == 0 and first["strength"] in (5.0, 40.0)
    assert set(first["ratings"]) == {"concept", "instruction", "fluency"}
    assert {line["method"] for line in lines} == {"DiffMean", "Prompt"}
    json.dumps(out)  # results.json-ready


def test_evaluate_steering_with_local_judge_records_its_perplexity(tiny, tmp_path):
    from test_bench_judge import BagOfWords

    from interpkit.bench._judge import LocalJudge

    ctx, source = _ctx(tiny, tmp_path)
    judge = LocalJudge(BagOfWords(), tiny, max_length=64,
                       thresholds={"concept": (0.2, 0.5), "instruction": (0.2, 0.5), "fluency": (1e9, 1e8)})
    out = evaluate_steering(ctx, {"DiffMean": {0: SimpleNamespace(steer_vector=_vector())}}, judge,
                            max_acts={"DiffMean": {0: -1.0}}, factors=[1.0, 2.0], n_instructions=2,
                            max_new_tokens=4, batch_size=2, include_prompt=False, fallback_magnitude=3.0,
                            instruction_source=source, progress=False)
    entry = out["methods"]["DiffMean"]["per_concept"]["0"]
    assert entry["magnitude"] == 3.0 and "Prompt" not in out["methods"]
    assert out["judge"]["kind"] == "local" and out["generations_file"] is None


def test_steering_prompt_falls_back_when_the_chat_model_fails():
    from interpkit.models._chat import ChatError

    class Broken(FakeChat):
        def complete(self, messages, *, max_tokens=128, temperature=0.0):
            raise ChatError("no chat template")

    with pytest.warns(UserWarning, match="no chat template"):
        assert write_steering_prompt(Broken(), "sea") == (fallback_steering_prompt("sea"), "fallback")
