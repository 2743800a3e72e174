"""Control kinds of run_interventions (random, matched_frequency, placebo) on a tiny seeded model."""

from __future__ import annotations

import numpy as np
import pytest

from interpkit._testing import tiny_model
from interpkit.causal import CausalFeature, LogitTargetMetric, neuron_feature, run_interventions
from interpkit.causal._controls import (
    check_controls,
    frequencies,
    matched_frequency_controls,
    placebo_controls,
    token_activations,
)

SITE = "layer1.resid_post"
POS = ["hello there", "good night", "see you soon", "a cat sat"]
NEG = ["abc def", "zzz", "why not", "it is"]


@pytest.fixture(scope="module")
def model():
    return tiny_model("nnsight")


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


def test_run_interventions_records_every_control_kind(model):
    metric = LogitTargetMetric("the next character is a vowel", ["a", "e"])
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
