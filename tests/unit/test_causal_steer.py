"""Steering one prompt (`interpkit.causal.steer_compare`, `steer_sweep`, `spec_edits`) on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit._testing import tiny_model
from interpkit.causal import (
    GenerationScores,
    LogitTargetMetric,
    score_generation,
    spec_edits,
    steer_compare,
    steer_sweep,
)
from interpkit.models import AddVector, perplexity
from interpkit.records import InterventionSpec, RecordError, SpecEdit

SITE = "layer1.resid_post"
GEN = {"max_new_tokens": 6, "seed": 0}


@pytest.fixture(scope="module")
def tiny():
    return tiny_model()


@pytest.fixture(scope="module")
def vec(tiny):
    return np.random.default_rng(0).normal(size=tiny.d_model).astype(np.float32)


def test_compare_scores_both_runs_and_moves_the_next_token(tiny, vec):
    metric = LogitTargetMetric("vowel", ["a", "e"])
    edit = AddVector(SITE, vec, strength=8.0)
    out = steer_compare(tiny, "the cat", [edit], criterion="cat", compiler="keyword", metric=metric, **GEN)
    assert out.baseline.text == tiny.generate("the cat", **GEN)[0]
    with tiny.edits(edit):
        assert out.steered.text == tiny.generate("the cat", **GEN)[0]
        assert out.steered.metric == pytest.approx(float(metric.score(tiny, ["the cat"])[0]))
    assert out.steered.text != out.baseline.text and 0 < out.next_token_tv <= 1
    # fluency is judged by the unsteered model, whichever run produced the text
    assert out.steered.perplexity == pytest.approx(float(perplexity(tiny, ["the cat"], [out.steered.text])[0]))
    assert out.baseline.criterion_score is not None
    assert set(out.to_dict()) == {"baseline", "steered", "next_token_tv"}
    assert list(out.to_dict()["steered"]) == ["text", "criterion_score", "metric", "perplexity"]


def test_no_edits_give_the_baseline_and_a_given_baseline_is_reused(tiny):
    base = score_generation(tiny, "hello", **GEN)
    same = steer_compare(tiny, "hello", [], **GEN)
    assert same.steered == same.baseline == base and same.next_token_tv == 0.0
    fake = GenerationScores(text="given")
    assert steer_compare(tiny, "hello", [], baseline=fake, **GEN).baseline is fake


def test_sweep_rows_one_per_strength(tiny, vec):
    rows = steer_sweep(tiny, "the cat", SITE, vec, [-4.0, 0.0, 4.0], feature="v", **GEN)
    assert [r["strength"] for r in rows] == [-4.0, 0.0, 4.0] and {r["feature"] for r in rows} == {"v"}
    assert rows[1]["next_token_tv"] == 0.0 and rows[1]["text"] == tiny.generate("the cat", **GEN)[0]
    assert rows[0]["next_token_tv"] > 0 and rows[2]["next_token_tv"] > 0
    assert set(rows[0]) == {"feature", "strength", "criterion_score", "perplexity", "next_token_tv", "text"}


def test_spec_edits_rebuild_the_vectors(tmp_path, vec):
    spec = InterventionSpec(edits=(SpecEdit(feature="v", site=SITE, strength=-2.0, vector=vec),))
    for source in (spec, spec.to_dict()):
        (edit,) = spec_edits(source)
        assert edit.site == SITE and edit.strength == -2.0 and torch.equal(edit.vector, torch.from_numpy(vec))
    bad = spec.to_dict()
    bad["edits"][0]["vector"][0] += 1.0
    with pytest.raises(RecordError, match="vector_sha256"):
        spec_edits(bad)


def test_one_perplexity_for_the_panel_and_the_bench():
    from interpkit.bench import _judge

    assert _judge.perplexity is perplexity  # the judge scores fluency with the models-layer function
