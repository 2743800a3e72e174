"""compare-runs, search-features and validate-matches on the two shared SmolLM2 runs (one config)."""

from __future__ import annotations

import json

import pytest

from interpkit.cli import main

pytestmark = pytest.mark.slow


def test_compare_same_config_smollm2_runs_is_no_change(smollm2_runs, tmp_path):
    from interpkit.report import compare_runs

    c = compare_runs(smollm2_runs["a"], smollm2_runs["b"])
    assert c.no_change, c.to_markdown()
    assert c.features and all(f["a"] is not None for f in c.features)
    assert main(["compare-runs", str(smollm2_runs["a"]), str(smollm2_runs["b"]), "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / "comparison.json").read_text())["no_change"] is True


def test_search_smollm2_runs_finds_a_feature_by_its_label(smollm2_runs):
    from interpkit.report import load_report, search_features

    top = load_report(smollm2_runs["a"]).features[0]
    assert top.label, "the local labeler gave the top feature no label"
    hits = search_features(top.label, [smollm2_runs["a"], smollm2_runs["b"]], top_k=5)  # MiniLM for the rest
    assert [h.match for h in hits[:2]] == ["exact", "exact"]
    assert {h.feature_id for h in hits[:2]} == {top.feature_id}
    assert {h.source for h in hits[:2]} == {str(smollm2_runs[r] / "report.json") for r in "ab"}
    assert hits[0].tier == top.components["tier"] and hits[0].label_score is not None
    rest = [h for h in hits if h.match == "embedding"]
    assert rest and all(-1.0 <= h.score <= 1.0 for h in rest)


def test_validate_matches_smollm2_runs(smollm2_runs, smollm2_nnsight, tmp_path):
    from interpkit.match import compare, validate_saved_matches

    result = compare(smollm2_runs["a"], smollm2_runs["b"], tmp_path / "matches.json", null_samples=100)
    best = max(result.matches, key=lambda m: m.score)
    assert best.left_id == best.right_id  # one config twice: each feature matches itself
    prompts = ["The book was first published in", "The article appeared in the journal on",
               "According to the 2003 edition,", "The paper, dated March"]
    out = validate_saved_matches(tmp_path / "matches.json", smollm2_nnsight, smollm2_nnsight, prompts,
                                 [" 19", " 20", " published"], out=tmp_path / "validated.json", top_n=1,
                                 n_controls=2)
    m = next(m for m in out.matches if m.validation is not None)
    steer = m.validation["kinds"]["steer"]
    # the same feature edited in the same model: both sides measure one effect, against real controls
    assert steer["left"]["effect"] == pytest.approx(steer["right"]["effect"], abs=1e-6)
    assert len(steer["left"]["controls"]) == 2 and isinstance(m.validated, bool)
    assert m.validation["metric"] == "references to specific dates and publication information"
    saved = json.loads((tmp_path / "validated.json").read_text())
    assert any(x["validation"] for x in saved["matches"])
