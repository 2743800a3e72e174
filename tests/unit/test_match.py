"""Fingerprints, blocked top-k, one-to-one assignment, the null, outputs and errors of `interpkit.match`."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from interpkit.match import (
    FeatureFingerprint,
    FingerprintError,
    MatchError,
    MatchResult,
    assign_one_to_one,
    blocked_topk,
    compare,
    fingerprints_from_report,
    fingerprints_from_table,
    match_fingerprints,
    similarity_matrices,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(n=200, extra=40, probes=120, noise=0.6, seed=0):
    """Left features; right = a random permutation of them + noise, plus unrelated extras.

    The right side sees the probes in another order, misses 10 of them and has 15 of its own.
    Returns (left, right, truth) with truth left id -> right id.
    """
    rng = np.random.default_rng(seed)
    probe_ids = [f"p{i}" for i in range(probes)]
    sigs = rng.normal(size=(n, probes))
    left = [FeatureFingerprint(feature_id=f"L{i}", model="a", label=f"concept {i}", activation_signature=s,
                               probe_ids=probe_ids) for i, s in enumerate(sigs)]
    perm = rng.permutation(n + extra)
    order = rng.permutation(probes)[: probes - 10]
    r_probes = [probe_ids[j] for j in order] + [f"q{i}" for i in range(15)]
    right: list[FeatureFingerprint | None] = [None] * (n + extra)
    truth = {}
    for slot in range(n + extra):
        src = perm[slot]
        base = sigs[src] if src < n else rng.normal(size=probes)
        sig = np.r_[base[order] + noise * rng.normal(size=len(order)), rng.normal(size=15)]
        right[slot] = FeatureFingerprint(feature_id=f"R{slot}", model="b", activation_signature=sig,
                                         probe_ids=r_probes, label=f"concept {src}" if src < n else "other")
        if src < n:
            truth[f"L{src}"] = f"R{slot}"
    return left, right, truth


def test_planted_equivalents_recovered_across_widths_and_probe_orders():
    left, right, truth = planted()
    res = match_fingerprints(left, right, weights={"activation": 1.0})
    assert res.accuracy(truth) >= 0.97
    assert res.settings["aligned_dims"]["activation"] == 110  # probes shared by both sides
    assert len(res.matches) == len(left)  # the 40 extra right features stay unmatched
    true = [m for m in res.matches if truth[m.left_id] == m.right_id]
    assert np.mean([m.mutual for m in true]) > 0.9
    assert len(res.confident()) >= 0.8 * len(left)


def test_null_sits_well_below_true_matches():
    left, right, truth = planted(noise=1.0)
    res = match_fingerprints(left, right, weights={"activation": 1.0}, null_samples=3000)
    assert abs(res.null["mean"]) < 0.05 and res.null["n"] == 3000
    true_scores = [m.score for m in res.matches if truth[m.left_id] == m.right_id]
    assert np.median(true_scores) > res.null["mean"] + 5 * res.null["std"]
    assert min(m.null_z for m in res.matches[:50]) > 5
    assert "activation" in res.null["components"]


def test_blocked_topk_equals_dense_search():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(37, 9)), rng.normal(size=(23, 9))
    idx, sim = blocked_topk(a, b, k=4, block=5)
    ac = a - a.mean(1, keepdims=True)
    bc = b - b.mean(1, keepdims=True)
    dense = (ac / np.linalg.norm(ac, axis=1, keepdims=True)) @ (bc / np.linalg.norm(bc, axis=1, keepdims=True)).T
    np.testing.assert_array_equal(idx, np.argsort(-dense, axis=1)[:, :4])
    np.testing.assert_allclose(sim, np.sort(dense, axis=1)[:, ::-1][:, :4], atol=1e-5)
    assert blocked_topk(a, b, k=100)[0].shape == (37, 23)
    with pytest.raises(MatchError, match="signature dimension"):
        blocked_topk(a, b[:, :3], k=2)


def test_assignment_resolves_conflicts_one_to_one_and_sparse_path_agrees():
    # both left rows prefer right 0; the assignment gives it to the stronger claim
    pairs = assign_one_to_one(np.array([[0, 1], [0, 2]]), np.array([[0.9, 0.7], [0.8, 0.75]]), n_right=3)
    assert {(p.left, p.right) for p in pairs} == {(0, 0), (1, 2)}
    assert [p.mutual for p in pairs] == [True, False]
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(280, 8))
    idx, sim = blocked_topk(a, b, k=6)
    dense = assign_one_to_one(idx, sim, 280)
    sparse = assign_one_to_one(idx, sim, 280, max_dense=4)
    assert len({p.right for p in dense}) == len(dense)
    assert sum(p.score for p in sparse) == pytest.approx(sum(p.score for p in dense), rel=1e-6)
    assert all(p.score >= 0.5 for p in assign_one_to_one(idx, sim, 280, min_score=0.5))


def test_component_weights_and_explanation_only_matching(tmp_path):
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(30, 16))
    left = [FeatureFingerprint(feature_id=f"a{i}", explanation_embedding=e, activation_signature=rng.normal(size=20))
            for i, e in enumerate(emb)]
    right = [FeatureFingerprint(feature_id=f"b{i}", explanation_embedding=e + 0.2 * rng.normal(size=16),
                                activation_signature=rng.normal(size=20)) for i, e in enumerate(emb)]
    truth = {f"a{i}": f"b{i}" for i in range(30)}
    only_expl = match_fingerprints(left, right, weights="explanation=1")
    assert only_expl.accuracy(truth) == 1.0
    assert only_expl.settings["components_used"] == ["explanation"]
    mixed = match_fingerprints(left, right, weights={"activation": 1, "explanation": 3})
    assert mixed.settings["weights_used"] == {"activation": 0.25, "explanation": 0.75}
    m = mixed.matches[0]
    assert m.score == pytest.approx(0.25 * m.components["activation"] + 0.75 * m.components["explanation"])
    data = json.loads(mixed.save(tmp_path / "m.json").read_text())
    assert data["weights"]["explanation"] == 3.0 and data["settings"]["weights_used"]["activation"] == 0.25


def test_missing_component_is_skipped_and_renormalised(tmp_path):
    left, right, truth = planted(n=40, extra=0)
    left = [replace(fp, causal_effects={"steer": 0.5}) for fp in left]
    res = match_fingerprints(left, right, weights={"activation": 1.0, "causal": 1.0})
    assert res.settings["skipped_components"] == {"causal": "absent on right"}
    assert res.settings["weights_used"] == {"activation": 1.0}
    assert res.matches[0].components["causal"] is None
    assert res.accuracy(truth) >= 0.95
    res.save(tmp_path)
    assert "skipped component **causal**: absent on right" in (tmp_path / "matches.md").read_text()


def test_similarity_matrices_hold_the_matcher_scores_for_every_pair():
    left, right, _ = planted(n=12, extra=3)
    left = [replace(fp, causal_effects={"steer": 0.5}) for fp in left]
    res = match_fingerprints(left, right, weights={"activation": 1.0, "causal": 1.0})
    sim = similarity_matrices(left, right, weights={"activation": 1.0, "causal": 1.0})
    assert sim.combined.shape == (12, 15) and list(sim.components) == ["activation"]
    assert sim.weights == res.settings["weights_used"] and sim.skipped == {"causal": "absent on right"}
    rows, cols = {fp.feature_id: i for i, fp in enumerate(left)}, {fp.feature_id: j for j, fp in enumerate(right)}
    for m in res.matches:
        i, j = rows[m.left_id], cols[m.right_id]
        assert sim.combined[i, j] == pytest.approx(m.score)
        assert sim.components["activation"][i, j] == pytest.approx(m.components["activation"])
    with pytest.raises(MatchError, match="similarity_matrices: no component usable"):
        similarity_matrices(left, right, weights="causal=1")


def test_causal_component_scores_sign_and_size():
    mk = lambda fid, eff: FeatureFingerprint(feature_id=fid, causal_effects={"steer": eff})  # noqa: E731
    res = match_fingerprints([mk("a", 0.4), mk("b", -0.3)], [mk("x", -0.3), mk("y", 0.2)],
                             weights="causal=1", null_samples=4)
    got = {m.left_id: (m.right_id, m.score) for m in res.matches}
    assert got["a"] == ("y", pytest.approx(0.5)) and got["b"] == ("x", pytest.approx(1.0))
    assert res.matches[0].left_effect == -0.3 and res.matches[0].right_effect == -0.3


def test_outputs_json_and_markdown_round_trip(tmp_path):
    left, right, truth = planted(n=30, extra=5)
    res = match_fingerprints(left, right, weights={"activation": 1.0})
    path = res.save(tmp_path / "out" / "matches.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "interpkit_matches" and data["n_matches"] == 30
    assert set(data["matches"][0]) >= {"left_id", "right_id", "score", "components", "confidence", "null_z",
                                       "mutual", "left_label", "right_label", "left_effect", "right_effect"}
    again = MatchResult.from_dict(data)
    assert [(m.left_id, m.right_id) for m in again.matches] == [(m.left_id, m.right_id) for m in res.matches]
    md = (tmp_path / "out" / "matches.md").read_text()
    assert "| # | left | right | score | activation |" in md and "concept" in md and "null (shuffled" in md


def test_fingerprints_from_tables_align_by_text(tmp_path):
    from interpkit.table import FeatureTable

    rng = np.random.default_rng(0)
    texts = [f"text number {i}" for i in range(60)]
    acts = rng.normal(size=(60, 8)).astype(np.float32)
    ta = FeatureTable(acts, pd.DataFrame({"example_id": [f"a{i}" for i in range(60)], "text": texts}),
                      pd.DataFrame({"feature_id": [f"fa{j}" for j in range(8)]}))
    order = rng.permutation(60)
    cols = rng.permutation(8)
    tb = FeatureTable(acts[order][:, cols] * 2 + 1, pd.DataFrame({"example_id": [f"b{i}" for i in order],
                                                                  "text": [texts[i] for i in order]}),
                      pd.DataFrame({"feature_id": [f"fb{j}" for j in range(8)]}))
    tb.save(tmp_path / "tb")
    fa, fb = fingerprints_from_table(ta), fingerprints_from_table(tmp_path / "tb")
    assert fa[0].probe_ids[0].startswith("t:") and len(fa[0].examples) == 5
    res = match_fingerprints(fa, fb)
    assert res.accuracy({f"fa{cols[j]}": f"fb{j}" for j in range(8)}) == 1.0
    assert res.settings["components_used"] == ["activation", "examples"]
    assert min(m.components["activation"] for m in res.matches) > 0.999
    with pytest.raises(FingerprintError, match="unique non-empty text"):
        fingerprints_from_table(FeatureTable(acts), probe_key="text")


def test_compare_toy_reports_and_cli(tmp_path, capsys):
    import interpkit
    from interpkit.cli import _match

    rep = interpkit.inspect("toy", "mentions of cats", backend="toy", out=tmp_path / "a")
    fps = fingerprints_from_report(rep)
    assert "activation" in fps[0].components() and fps[0].causal_effects
    res = compare(tmp_path / "a" / "report.json", rep)
    assert all(m.left_id == m.right_id for m in res.matches)
    assert res.matches[0].left_label is not None
    p = argparse.ArgumentParser()
    _match.add_arguments(p)
    args = p.parse_args(["--left", str(tmp_path / "a"), "--right", str(tmp_path / "a" / "report.json"),
                         "--out", str(tmp_path / "m.json"), "--weights", "activation=1,causal=0.5", "--top-k", "3"])
    assert _match.run(args) == 0
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["weights"]["causal"] == 0.5 and data["settings"]["top_k"] == 3
    assert (tmp_path / "m.md").exists() and "wrote" in capsys.readouterr().out
    bad = p.parse_args(["--left", str(tmp_path / "a"), "--right", str(tmp_path / "missing"), "--out", "x.json"])
    with pytest.raises(FileNotFoundError, match="no report"):
        _match.run(bad)


def test_errors_say_what_is_wrong():
    fp = FeatureFingerprint(feature_id="a", activation_signature=np.arange(4.0))
    with pytest.raises(MatchError, match="both sides"):
        match_fingerprints([], [fp])
    with pytest.raises(MatchError, match="left feature ids repeat"):
        match_fingerprints([fp, fp], [fp])
    with pytest.raises(MatchError, match="unknown component"):
        match_fingerprints([fp], [fp], weights="activations=1")
    with pytest.raises(MatchError, match="name=number"):
        match_fingerprints([fp], [fp], weights="activation:1")
    with pytest.raises(MatchError, match="weight 0"):
        match_fingerprints([fp], [fp], weights={"activation": 0})
    with pytest.raises(MatchError, match="no component usable"):
        match_fingerprints([fp], [FeatureFingerprint(feature_id="b", causal_effects={"x": 1.0})])
    with pytest.raises(MatchError, match="one length"):
        match_fingerprints([fp], [FeatureFingerprint(feature_id="b", activation_signature=np.arange(5.0))])
    with_ids = FeatureFingerprint(feature_id="b", activation_signature=np.arange(4.0), probe_ids=list("wxyz"))
    with pytest.raises(MatchError, match="some fingerprints have probe_ids"):
        match_fingerprints([fp], [with_ids])
    with pytest.raises(FingerprintError, match="probe_ids has 3 entries"):
        FeatureFingerprint(feature_id="c", activation_signature=np.arange(4.0), probe_ids=list("xyz"))
    with pytest.raises(FingerprintError, match="unknown field"):
        FeatureFingerprint.from_dict({"feature_id": "a", "colour": "red"})
    other = FeatureFingerprint(feature_id="d", activation_signature=np.arange(4.0), probe_ids=list("abcd"))
    with pytest.raises(MatchError, match="only 0 probe"):
        match_fingerprints([with_ids], [other])
