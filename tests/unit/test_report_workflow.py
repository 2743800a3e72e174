"""compare-runs, search-features and validate-matches on toy reports and a tiny model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import interpkit
from interpkit.cli import main
from interpkit.report import compare_runs, search_features
from interpkit.report._compare import auroc_interval

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CRIT = "the text is about cats"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, kw in (("a", {}), ("b", {}), ("seed1", {"seed": 1}), ("crit", {"criterion": "dogs"})):
        interpkit.inspect("toy", kw.pop("criterion", CRIT), backend="toy", out=root / name, top_k=3, **kw)
        out[name] = root / name
    return out


def test_same_config_is_no_change(runs, tmp_path):
    c = compare_runs(runs["a"], runs["b"])
    assert c.no_change and not c.gained and not c.lost and not c.settings_changed
    assert c.n_ranking_rows_changed == 0 and c.rank_shifts == [] and c.tier_changes == []
    assert "**No change**" in c.to_markdown()
    assert main(["compare-runs", str(runs["a"]), str(runs["b"]), "--out", str(tmp_path / "cmp")]) == 0
    data = json.loads((tmp_path / "cmp" / "comparison.json").read_text())
    assert data["kind"] == "interpkit_run_comparison" and data["schema_version"] == 1 and data["no_change"] is True
    assert {p.name for p in (tmp_path / "cmp").iterdir()} >= {"comparison.json", "comparison.md", "comparison.vl.json"}


def test_a_path_only_difference_is_no_change(runs, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(runs["b"], moved)
    assert compare_runs(runs["a"], moved / "report.json").no_change


def test_a_changed_number_is_a_change(runs, tmp_path):
    copy = tmp_path / "edited"
    shutil.copytree(runs["b"], copy)
    data = json.loads((copy / "report.json").read_text())
    row = data["ranking"]["rows"][10]
    row["association"]["auroc_test"] += 1e-3
    (copy / "report.json").write_text(json.dumps(data))
    c = compare_runs(runs["a"], copy)
    assert not c.no_change and c.n_ranking_rows_changed == 1 and not c.gained and not c.settings_changed
    assert compare_runs(runs["a"], copy, abs_tol=1e-2).no_change  # the tolerance is what decides


def test_another_seed_shows_gains_losses_shifts_and_the_setting(runs):
    c = compare_runs(runs["a"], runs["seed1"])
    assert not c.no_change
    ra, rb = interpkit.load_report(runs["a"]), interpkit.load_report(runs["seed1"])
    assert set(c.gained) == {f.feature_id for f in rb.features} - {f.feature_id for f in ra.features}
    assert set(c.lost) == {f.feature_id for f in ra.features} - {f.feature_id for f in rb.features}
    assert c.gained and c.lost
    changed = {s["name"]: s for s in c.settings_changed}
    assert changed["settings.seed"]["a"] == 0 and changed["settings.seed"]["b"] == 1 and changed["settings.seed"]["key"]
    for f in c.features:  # ranks and tiers are the full rankings'
        assert f["rank_a"] == ra.ranking.row(f["feature_id"]).rank
        assert f["tier_b"] == rb.ranking.row(f["feature_id"]).tier
        assert f["rank_shift"] == f["rank_b"] - f["rank_a"]
    lost = next(f for f in c.features if f["feature_id"] == c.lost[0])
    assert lost["in_top_a"] and not lost["in_top_b"]
    ci = lost["a"]["association"]
    assert ci["ci_low"] < ci["auroc_test"] < ci["ci_high"]
    md = c.to_markdown()
    assert "settings.seed" in md and c.lost[0] in md


def test_another_criterion_is_a_key_setting_change(runs):
    c = compare_runs(runs["a"], runs["crit"])
    names = {s["name"]: s for s in c.settings_changed}
    assert names["criterion"]["key"] and names["criterion"]["b"] == "dogs"


def test_comparison_chart_and_cli_errors(runs, capsys, tmp_path):
    from interpkit.viz import run_comparison_chart

    spec = run_comparison_chart(compare_runs(runs["a"], runs["seed1"])).to_dict()
    assert "hconcat" in spec and "gained" in json.dumps(spec["title"])
    assert main(["compare-runs", str(runs["a"]), str(tmp_path / "missing")]) == 2
    assert "no report at" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"kind": "interpkit_report", "schema_version": 2,\n"model": 1')
    assert main(["compare-runs", str(runs["a"]), str(bad), "--out", str(tmp_path / "o")]) == 2
    assert "not valid JSON" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_auroc_interval():
    lo, hi = auroc_interval(0.8, 50, 50)
    assert 0.7 < lo < 0.8 < hi < 0.9
    assert auroc_interval(None, 5, 5) == (None, None) and auroc_interval(0.5, 0, 5) == (None, None)
    assert auroc_interval(0.8, 500, 500)[1] - auroc_interval(0.8, 500, 500)[0] < hi - lo


class _WordEncoder:
    """Bag-of-words unit vectors over a fixed vocabulary: an explicit, deterministic encoder."""

    vocab = ("planted", "carrier", "noise", "causal", "correlated", "signal", "cats")

    def encode(self, texts):
        out = np.array([[float(w in str(t).lower()) for w in self.vocab] + [1e-3] for t in texts])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_search_exact_and_substring_first_then_embeddings(runs):
    hits = search_features("planted carrier", [runs["a"], runs["seed1"]], embed=False)
    assert [h.match for h in hits[:2]] == ["exact", "exact"]
    assert {h.feature_id for h in hits[:2]} == {interpkit.load_report(r).features[0].feature_id
                                                 for r in (runs["a"], runs["seed1"])}
    top = hits[0]
    assert top.where == "label" and top.tier == "causal & associated" and top.rank == 1
    sub = search_features("planted", [runs["a"]], embed=False)
    assert sub and all(h.match == "substring" and "planted" in h.label for h in sub)
    both = search_features("carrier signal", [runs["a"]], encoder=_WordEncoder(), top_k=10)
    assert [h.match for h in both][-1] == "embedding" and both[0].label == "planted carrier"
    assert len({(h.source, h.feature_id) for h in both}) == len(both)  # one hit per feature
    assert search_features("zebra", [runs["a"]], embed=False) == []


def test_search_reads_tables_and_parent_folders(runs, tmp_path):
    from interpkit.sources import make_toy_table

    make_toy_table(n_examples=40, n_features=6, seed=0).table.save(tmp_path / "tables" / "t1")
    hits = search_features("planted carrier", [tmp_path / "tables", runs["a"].parent], embed=False, top_k=50)
    kinds = {h.source_kind for h in hits}
    assert kinds == {"report", "table"}
    assert all(h.tier is None for h in hits if h.source_kind == "table")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        search_features("x", [tmp_path / "nope"], embed=False)
    with pytest.raises(ValueError, match="non-empty"):
        search_features("  ", [runs["a"]], embed=False)


def test_search_cli_writes_hits_json(runs, tmp_path, capsys):
    out = tmp_path / "hits.json"
    assert main(["search-features", "planted carrier", "--reports", str(runs["a"]), "--no-embed",
                 "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "interpkit_feature_search" and data["schema_version"] == 1
    assert data["hits"][0]["label"] == "planted carrier" and data["hits"][0]["match"] == "exact"
    assert "planted carrier" in capsys.readouterr().out
    assert main(["search-features", "x", "--reports", str(tmp_path / "none"), "--no-embed"]) == 2


def test_validate_saved_matches_edits_table_directions(tmp_path):
    from interpkit._testing import tiny_model
    from interpkit.causal import LogitTargetMetric
    from interpkit.match import FeatureFingerprint, match_fingerprints, read_matches, validate_saved_matches
    from interpkit.sources import DirectionSet, direction_table

    model = tiny_model("nnsight", seed=0)
    tokens = list("abcdefghijklmnopq")
    ids = list(LogitTargetMetric("letters", tokens).token_ids(model))
    w = model.W_U.detach().float()
    planted = (w[:, ids].mean(1) - w.mean(1)).numpy()
    dirs = DirectionSet(names=("up", "down"), vectors=np.stack([planted, -planted]), site="layer1.resid_post",
                        kind="contrast")
    table = direction_table(model, ["the cat sat", "a dog ran"], dirs, progress=False)
    table.save(tmp_path / "table")
    sigs = np.random.default_rng(0).normal(size=(2, 16))
    fps = [FeatureFingerprint(feature_id=n, activation_signature=s) for n, s in zip(("up", "down"), sigs, strict=True)]
    result = match_fingerprints(fps, fps)
    result.save(tmp_path / "matches.json")
    out = validate_saved_matches(tmp_path / "matches.json", model, model, ["the cat sat on", "hello there my"],
                                 tokens, criterion="letters", left_table=tmp_path / "table",
                                 right_table=tmp_path / "table", out=tmp_path / "v.json", top_n=2, n_controls=2)
    up = next(m for m in out.matches if m.left_id == "up")
    steer = up.validation["kinds"]["steer"]
    assert steer["left"]["effect"] == pytest.approx(steer["right"]["effect"]) and steer["left"]["effect"] > 0
    assert read_matches(tmp_path / "v.json").matches[0].validation is not None
    with pytest.raises(Exception, match="settings.left.report"):
        validate_saved_matches(tmp_path / "matches.json", model, model, ["x"], tokens)


def test_validate_matches_cli_errors(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_text("a prompt\n")
    bad = tmp_path / "m.json"
    bad.write_text("{\n  nope")
    argv = ["validate-matches", str(bad), "--left-model", "none", "--prompts", str(prompts), "--target-tokens", "a"]
    assert main(argv) == 2 and "m.json:2: not valid JSON" in capsys.readouterr().err
    bad.write_text('{"kind": "other"}')
    assert main(argv) == 2 and "not a matches file" in capsys.readouterr().err
    assert main([*argv[:-1], " , "]) == 2 and "--target-tokens" in capsys.readouterr().err
