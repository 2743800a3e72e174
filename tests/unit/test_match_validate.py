"""validate_matches: steering both models with their matched features on the same prompts.

Two tiny GPT-2s with different seeds. The planted feature in each is the direction that raises
the unembedding of the target letters (so it raises the logit metric in both models); ``anti`` is
its negative (sign mismatch); ``ones`` is the all-ones vector at the last residual, which the final
LayerNorm removes exactly (no effect, however strong).
"""

from __future__ import annotations

import numpy as np
import pytest

from interpkit.causal import CausalFeature, LogitTargetMetric
from interpkit.match import FeatureFingerprint, match_fingerprints
from interpkit.match._validate import (
    REASONS,
    SideEffect,
    ValidationRule,
    decide,
    target_tokens_from_contrast,
    validate_matches,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SITE = "layer1.resid_post"
PROMPTS = ["the cat sat on", "hello there my", "a quick brown", "she sells sea", "we went to the",
           "it is what", "now or never", "look at this"]


@pytest.fixture(scope="module")
def models():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight", seed=0), tiny_model("nnsight", seed=1)


@pytest.fixture(scope="module")
def metric():
    return LogitTargetMetric("the next letter is in a..q", list("abcdefghijklmnopq"))


def _planted(model, metric) -> np.ndarray:
    ids = list(metric.token_ids(model))
    w = model.W_U.detach().float()
    return (w[:, ids].mean(1) - w.mean(1)).numpy()


def _result(left_ids, right_ids):
    """Matches left_ids[i] <-> right_ids[i], planted through activation signatures."""
    sigs = np.random.default_rng(0).normal(size=(len(left_ids), 32))
    left = [FeatureFingerprint(feature_id=i, activation_signature=s) for i, s in zip(left_ids, sigs, strict=True)]
    right = [FeatureFingerprint(feature_id=i, activation_signature=s) for i, s in zip(right_ids, sigs, strict=True)]
    return match_fingerprints(left, right)


def test_decide_covers_every_reason():
    rule = ValidationRule(size_ratio=3.0, control_factor=1.0)
    strong, weak_controls = SideEffect(effect=0.3, controls=(0.05, -0.1)), (0.02,)
    assert decide(strong, SideEffect(effect=0.2, controls=weak_controls), rule) == ()
    assert decide(strong, SideEffect(effect=-0.2, controls=weak_controls), rule) == ("sign_mismatch",)
    assert decide(strong, SideEffect(effect=0.05, controls=weak_controls), rule) == ("size_mismatch",)
    assert decide(SideEffect(effect=0.05, controls=(0.1,)), strong, rule) == ("left_no_effect",)
    assert decide(strong, SideEffect(effect=0.0, controls=(0.1,)), rule) == ("right_no_effect",)
    both = decide(SideEffect(effect=0.0), SideEffect(effect=0.0), rule)
    assert both == ("left_no_effect", "right_no_effect")
    assert decide(strong, SideEffect(effect=0.2), ValidationRule(min_effect=0.25)) == ("right_no_effect",)
    assert set(REASONS) >= {"sign_mismatch", "left_no_effect", "right_no_effect", "size_mismatch", "not_run"}


def test_rule_checks_its_values():
    with pytest.raises(ValueError, match="size_ratio"):
        ValidationRule(size_ratio=0.5)
    with pytest.raises(ValueError, match=">= 0"):
        ValidationRule(min_effect=-1.0)


def test_planted_match_validates_and_mismatches_fail_with_reasons(models, metric):
    left_model, right_model = models
    vl, vr = _planted(left_model, metric), _planted(right_model, metric)
    left = {i: CausalFeature(feature_id=i, site=SITE, direction=vl) for i in ("a", "b", "c")}
    right = [CausalFeature(feature_id="a", site=SITE, direction=vr),
             CausalFeature(feature_id="b", site=SITE, direction=-vr),
             CausalFeature(feature_id="c", site=SITE, direction=np.ones(vr.shape[0], np.float32))]
    result = _result(["a", "b", "c", "d"], ["a", "b", "c", "d"])
    assert {(m.left_id, m.right_id) for m in result.matches} == {("a", "a"), ("b", "b"), ("c", "c"), ("d", "d")}
    out = validate_matches(result, left_model, right_model, left, right, PROMPTS, metric, top_n=4, strength=1.0)
    by_id = {m.left_id: m for m in out.matches}
    assert by_id["a"].validated is True, by_id["a"].validation
    assert by_id["a"].validation["reasons"] == []
    steer = by_id["a"].validation["kinds"]["steer"]
    assert steer["left"]["effect"] > steer["left"]["control_max"] > 0
    assert 1 / 3 <= steer["ratio"] <= 3
    assert by_id["b"].validated is False
    assert by_id["b"].validation["reasons"] == ["sign_mismatch"]
    assert by_id["c"].validated is False
    assert by_id["c"].validation["reasons"] == ["right_no_effect"]
    assert abs(by_id["c"].validation["kinds"]["steer"]["right"]["effect"]) < 1e-6
    assert by_id["d"].validated is None
    assert by_id["d"].validation["reasons"] == ["not_run"]
    assert "left feature 'd'" in by_id["d"].validation["detail"]
    assert all(m.validated is None for m in result.matches), "the input result is left unchanged"


def test_top_n_limits_the_matches_validated(models, metric):
    left_model, right_model = models
    v = _planted(left_model, metric)
    feats = [CausalFeature(feature_id=i, site=SITE, direction=v) for i in ("a", "b")]
    result = _result(["a", "b"], ["a", "b"])
    out = validate_matches(result, left_model, left_model, feats, feats, PROMPTS[:4], metric, top_n=1,
                           n_controls=1)
    done = [m for m in out.matches if m.validation is not None]
    assert len(done) == 1
    top = max(result.matches, key=lambda m: m.score)
    assert done[0].left_id == top.left_id
    assert done[0].validated is True, "a feature matched with itself in the same model validates"


def test_arguments_are_checked(models, metric):
    left_model, _ = models
    result = _result(["a"], ["a"])
    with pytest.raises(ValueError, match="prompt"):
        validate_matches(result, left_model, left_model, [], [], [], metric)
    with pytest.raises(ValueError, match="n_controls"):
        validate_matches(result, left_model, left_model, [], [], PROMPTS, metric, n_controls=0)
    with pytest.raises(ValueError, match="scale"):
        validate_matches(result, left_model, left_model, [], [], PROMPTS, metric, scale="bogus")


def test_target_tokens_from_contrast(models):
    model, _ = models
    pos = ["zoo zebra zone", "a zany zoo", "zip zap zoo"]
    neg = ["the cat", "a dog sat", "hello there"]
    tokens = target_tokens_from_contrast(model, pos, neg, k=3, min_texts=2)
    assert tokens[0] == "z"
    with pytest.raises(ValueError, match="positive texts"):
        target_tokens_from_contrast(model, ["q"], neg, min_texts=2)
