"""Unit tests for interpkit.causal on tiny seeded models (seconds on CPU)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpkit._testing import tiny_model
from interpkit.causal import (
    CausalFeature,
    LogitTargetMetric,
    MissingTargetTokensError,
    assign_prompt_splits,
    control_features,
    metric_for_criterion,
    neuron_feature,
    parse_strengths,
    read_target_tokens,
    run_interventions,
    sweep_strengths,
)
from interpkit.causal._controls import (
    check_controls,
    frequencies,
    matched_frequency_controls,
    placebo_controls,
    token_activations,
)
from interpkit.models import AddVector
from interpkit.records import InterventionRecord
from interpkit.sources import PromptRow

SITE = "layer1.resid_post"
POS = ["hello there", "good night", "see you soon", "a cat sat"]
NEG = ["abc def", "zzz", "why not", "it is"]


@pytest.fixture(scope="module")
def model():
    return tiny_model("nnsight")


@pytest.fixture(scope="module")
def metric():
    return LogitTargetMetric("the next character is a vowel", ["a", "e"])


@pytest.fixture(scope="module")
def target_dir(model, metric):
    ids = list(metric.token_ids(model))
    v = model.W_U.detach().float()[:, ids].sum(dim=1).numpy()
    return v / np.linalg.norm(v)


def test_metric_matches_manual_softmax(model, metric):
    texts = ["hello there", "hi", "good night everyone"]  # different lengths: right padding
    scores = metric.score(model, texts)
    ids = list(metric.token_ids(model))
    for text, score in zip(texts, scores, strict=True):
        with torch.no_grad():
            logits = model.forward(model.tokenize([text]))[0, -1]
        manual = torch.softmax(logits.double(), dim=-1)[ids].sum().item()
        assert score == pytest.approx(manual, rel=1e-5)


def test_metric_counts_first_token_once(model):
    m1 = LogitTargetMetric("c", ["a"])
    m2 = LogitTargetMetric("c", ["a", "ab", "a"])  # "ab" starts with the same first token
    assert m2.token_ids(model) == m1.token_ids(model)
    np.testing.assert_allclose(m1.score(model, POS), m2.score(model, POS))


def test_metric_without_target_tokens_is_an_error():
    with pytest.raises(MissingTargetTokensError, match="target_tokens") as err:
        metric_for_criterion("the next token should be a unit", rows=[PromptRow(prompt_id=1, text="x")])
    assert "never" in str(err.value) and "--target-tokens" in str(err.value)
    with pytest.raises(MissingTargetTokensError):
        LogitTargetMetric("c", [])


def test_metric_targets_from_rows_and_explicit_win():
    rows = [PromptRow(prompt_id=1, text="x", target_tokens=("a",)),
            PromptRow(prompt_id=2, text="y", target_tokens=("e", "a"))]
    assert metric_for_criterion("c", rows=rows).target_tokens == ("a", "e")
    assert metric_for_criterion("c", target_tokens=["o"], rows=rows).target_tokens == ("o",)


def test_read_target_tokens(tmp_path):
    assert read_target_tokens('[" m", " km"]') == (" m", " km")
    path = tmp_path / "crit.json"
    path.write_text(json.dumps({"criterion": "c", "target_tokens": [" kg"]}))
    assert read_target_tokens(str(path)) == (" kg",)
    assert read_target_tokens(None) is None
    with pytest.raises(ValueError, match="JSON list"):
        read_target_tokens("meters,km")


def test_steer_along_unembedding_raises_metric(model, metric, target_dir):
    feat = CausalFeature(feature_id="vowel", site=SITE, direction=target_dir)
    recs = run_interventions(model, [feat], POS, NEG, metric, kinds=("steer",), strength=20.0, n_controls=2)
    assert all(isinstance(r, InterventionRecord) for r in recs)
    main = [r for r in recs if r.feature_id == "vowel"]
    assert len(main) == len(POS) and all(r.intervention_score > r.baseline_score for r in main)
    assert all(r.signed_effect > 0 and r.criterion == metric.criterion for r in main)
    assert all(r.side_effect_score is not None and 0 <= r.side_effect_score <= 1 for r in recs)
    controls = [r for r in recs if r.extra.get("control")]
    assert {r.feature_id for r in controls} == {"vowel::control0", "vowel::control1"}
    assert all(r.extra["control_of"] == "vowel" and r.extra["strength"] == 20.0 for r in controls)
    mean_main = np.mean([r.signed_effect for r in main])
    mean_ctrl = np.mean([r.signed_effect for r in controls])
    assert mean_main > mean_ctrl


def test_projection_ablation_removes_the_component(model, metric, target_dir):
    feat = CausalFeature(feature_id="vowel", site=SITE, direction=target_dir)
    # put a large component along the direction first; ablating it must take the gain back out
    with model.edits(AddVector(SITE, torch.from_numpy(target_dir.copy()), strength=20.0)):
        recs = run_interventions(model, [feat], POS, NEG, metric, kinds=("ablate",), n_controls=1)
    main = [r for r in recs if r.feature_id == "vowel"]
    assert all(r.intervention_score < r.baseline_score for r in main)
    assert all(r.signed_effect > 0 and r.kind == "ablate" for r in main)
    assert all(r.extra["ablate_mode"] == "zero" for r in recs)


def test_controls_have_same_norm_and_site(target_dir):
    feat = CausalFeature(feature_id="f", site=SITE, direction=3.0 * target_dir)
    ctrls = control_features(feat, 3, d_model=16, seed=0)
    assert [c.feature_id for c in ctrls] == ["f::control0", "f::control1", "f::control2"]
    for c in ctrls:
        assert c.site == SITE and c.control_of == "f"
        assert np.linalg.norm(c.direction) == pytest.approx(3.0, rel=1e-5)
    again = control_features(feat, 3, d_model=16, seed=0)
    np.testing.assert_array_equal(again[0].direction, ctrls[0].direction)
    neuron = neuron_feature(f"{SITE}:n4")
    assert np.linalg.norm(control_features(neuron, 1, d_model=16)[0].direction) == pytest.approx(1.0)


def test_neuron_ablation_zero_and_mean(model, metric):
    feat = neuron_feature(f"{SITE}:n4")
    assert feat.neuron == 4 and feat.site == SITE
    rows = [PromptRow(prompt_id=f"p{i}", text=t, split="test") for i, t in enumerate(POS)]
    zero = run_interventions(model, [feat], rows, NEG, metric, kinds=("ablate",), n_controls=0)
    mean = run_interventions(model, [feat], rows, NEG, metric, kinds=("ablate",), n_controls=0, ablate_mode="mean")
    assert [r.prompt_id for r in zero] == ["p0", "p1", "p2", "p3"]
    assert all(r.extra["split"] == "test" for r in zero)
    assert [r.intervention_score for r in zero] != [r.intervention_score for r in mean]
    with pytest.raises(ValueError, match="neuron feature id"):
        neuron_feature("contrast:layer1")


def _rows(texts, split, score):
    return [PromptRow(prompt_id=f"{split}-{score}-{i}", text=t, criterion_score=score, split=split)
            for i, t in enumerate(texts)]


def test_sweep_picks_on_train_and_reports_on_test(model, metric, target_dir):
    pos = _rows(POS[:2], "train", 1.0) + _rows(POS[2:], "test", 1.0)
    neg = _rows(NEG[:2], "train", 0.0) + _rows(NEG[2:], "test", 0.0)
    feat = CausalFeature(feature_id="vowel", site=SITE, direction=target_dir)
    res = sweep_strengths(model, feat, pos, neg, metric, [0.5, 5.0, 20.0], n_controls=1)
    assert [r["strength"] for r in res.train] == [0.5, 5.0, 20.0]
    best = max(res.train, key=lambda r: r["specificity"])
    assert res.strength == best["strength"]
    for row in res.train:
        assert row["specificity"] == pytest.approx(row["effect"] - row["side_effect"])
    assert {r.prompt_id for r in res.records} == {p.prompt_id for p in pos if p.split == "test"}
    assert all(r.extra["split"] == "test" and r.extra["strength"] == res.strength for r in res.records)
    assert {r.feature_id for r in res.records} == {"vowel", "vowel::control0"}
    # the choice uses the train prompts only: changing the test prompts does not change it
    other = _rows(["zebra", "queue"], "test", 1.0)
    res2 = sweep_strengths(model, feat, pos[:2] + other, neg, metric, [0.5, 5.0, 20.0], n_controls=0)
    assert res2.train == res.train and res2.strength == res.strength
    assert res.to_dict()["strength"] == res.strength


def test_sweep_needs_both_splits(model, metric, target_dir):
    feat = CausalFeature(feature_id="v", site=SITE, direction=target_dir)
    with pytest.raises(ValueError, match="both splits"):
        sweep_strengths(model, feat, _rows(POS, "train", 1.0), _rows(NEG, "train", 0.0), metric, [1.0])


def test_parse_strengths_and_splits():
    assert parse_strengths("3,10, 30,100") == (3.0, 10.0, 30.0, 100.0)
    with pytest.raises(ValueError, match="strength-sweep"):
        parse_strengths("3,x")
    rows = [PromptRow(prompt_id=1, text="a", split="test"), PromptRow(prompt_id=2, text="b")]
    splits = assign_prompt_splits(rows)
    assert splits[0] == "test" and splits[1] in ("train", "test")


def test_feature_validation():
    with pytest.raises(ValueError, match="exactly one"):
        CausalFeature(feature_id="x", site=SITE)
    with pytest.raises(ValueError, match="non-zero"):
        CausalFeature(feature_id="x", site=SITE, direction=np.zeros(16))
    feat = CausalFeature(feature_id="x", site=SITE, neuron=1)
    with pytest.raises(ValueError, match="not supported"):
        feat.edit("patch", d_model=16)


# control kinds: random (default), matched_frequency, placebo (interpkit.causal._controls)


@pytest.fixture(scope="module")
def acts(model):
    return token_activations(model, POS + NEG, SITE)


def test_check_controls():
    assert check_controls("random, placebo") == ("random", "placebo")
    assert check_controls(("matched_frequency",)) == ("matched_frequency",)
    with pytest.raises(ValueError, match="controls must be among"):
        check_controls("random,shuffled")
    with pytest.raises(ValueError):
        check_controls("")


def test_matched_frequency_neuron_picks_closest_other_neurons(acts):
    feat = neuron_feature(f"{SITE}:n4")
    ctrls = matched_frequency_controls(feat, 3, d_model=16, acts=acts, seed=0)
    freq = (np.stack([a.max(axis=0) for a in acts]) > 0).mean(axis=0)
    picked = [c.neuron for c in ctrls]
    assert 4 not in picked and len(set(picked)) == 3
    gaps = np.abs(freq - freq[4])
    others = np.delete(gaps, 4)
    assert max(gaps[picked]) <= np.sort(others)[2] + 1e-12  # the three closest (ties allowed)
    assert all(c.control_kind == "matched_frequency" and c.control_of == feat.feature_id for c in ctrls)


def test_matched_frequency_direction_is_closer_than_the_pool(acts):
    rng = np.random.default_rng(3)
    v = rng.standard_normal(16).astype(np.float32)
    feat = CausalFeature(feature_id="d", site=SITE, direction=2.0 * v)
    ctrls = matched_frequency_controls(feat, 2, d_model=16, acts=acts, seed=0)
    target = frequencies(acts, feat.direction[None, :])[0]
    got = frequencies(acts, np.stack([c.direction for c in ctrls]))
    pool = rng.standard_normal((200, 16))
    median_gap = np.median(np.abs(frequencies(acts, pool) - target))
    assert np.all(np.abs(got - target) <= median_gap + 1e-12)
    assert all(np.linalg.norm(c.direction) == pytest.approx(np.linalg.norm(feat.direction), rel=1e-5) for c in ctrls)
    assert [c.feature_id for c in ctrls] == ["d::matched_frequency0", "d::matched_frequency1"]


def test_placebo_is_orthogonal_to_feature_and_contrast_and_in_the_data_subspace(acts):
    v = np.random.default_rng(1).standard_normal(16).astype(np.float32)
    feat = CausalFeature(feature_id="d", site=SITE, direction=v)
    ctrls = placebo_controls(feat, 2, d_model=16, acts=acts, n_pos=len(POS), seed=0)
    pos = np.concatenate(acts[: len(POS)]).mean(axis=0)
    neg = np.concatenate(acts[len(POS):]).mean(axis=0)
    tokens = np.concatenate(acts)
    var = np.var(tokens @ np.linalg.qr(np.random.default_rng(0).standard_normal((16, 16)))[0], axis=0).mean()
    for c in ctrls:
        u = c.direction / np.linalg.norm(c.direction)
        assert abs(u @ (v / np.linalg.norm(v))) < 1e-4
        assert abs(u @ (pos - neg)) < 1e-3 * np.linalg.norm(pos - neg)
        assert np.linalg.norm(c.direction) == pytest.approx(np.linalg.norm(v), rel=1e-5)
        assert np.var(tokens @ u) > var  # drawn where the data varies more than along a random direction
    assert ctrls[0].feature_id == "d::placebo0" and ctrls[0].control_kind == "placebo"


def test_run_interventions_records_every_control_kind(model, metric):
    feat = neuron_feature(f"{SITE}:n4")
    recs = run_interventions(model, [feat], POS, NEG, metric, kinds=("steer",), strength=5.0, n_controls=1,
                             controls=("random", "matched_frequency", "placebo"))
    by_id = {}
    for r in recs:
        by_id.setdefault(r.feature_id, []).append(r)
    assert set(by_id) == {feat.feature_id, f"{feat.feature_id}::control0",
                          f"{feat.feature_id}::matched_frequency0", f"{feat.feature_id}::placebo0"}
    kinds = {r.extra.get("control_kind") for r in recs if r.extra["control"]}
    assert kinds == {"random", "matched_frequency", "placebo"}
    assert all("control_kind" not in r.extra for r in by_id[feat.feature_id])
    # the default is today's behaviour: random same-norm controls only
    default = run_interventions(model, [feat], POS, NEG, metric, kinds=("steer",), strength=5.0, n_controls=1)
    assert {r.extra.get("control_kind") for r in default if r.extra["control"]} == {"random"}
    with pytest.raises(ValueError, match="controls must be among"):
        run_interventions(model, [feat], POS, NEG, metric, controls=("bogus",))
