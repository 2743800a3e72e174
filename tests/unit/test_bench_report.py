"""Benchmark report: results.json / results.md / charts (built by interpkit.viz), and merging sharded results."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interpkit.bench._metrics import (
    concept_detection,
    imbalanced_f1,
    select_factor,
    summarise_detection,
    summarise_steering,
)
from interpkit.bench._report import (
    markdown_table,
    merge_results,
    read_results,
    render_markdown,
    write_results,
)
from interpkit.viz import auroc_bars, bench_roc, bench_steering, write_bench_charts

CONCEPTS = [0, 1, 2, 10]
FACTORS = [0.5, 1.0, 2.0]


def _detection_entry(method_shift, cid, rng):
    cats = ["positive"] * 12 + ["negative"] * 12 + ["hard negative"] * 6
    scores = rng.normal(size=30)
    scores[:12] += method_shift + 0.1 * cid
    det = concept_detection(scores, cats, concept=cid)
    return {"auroc": det["auroc"], "threshold": det["threshold"], "max_act": det["max_act"], "roc": det["roc"],
            "hard_negative": det["hard_negative"], "f1_imbalanced": imbalanced_f1(scores[:12], scores[12:24]),
            "info": {"seconds": 0.1}}


def _steer_entry(level, cid, rng, factors=FACTORS):
    scores = np.clip(rng.normal(level, 0.3, size=(6, len(factors))), 0, 2)
    sel = select_factor(scores, factors)
    return {"factor": sel["factor"], "test_score": sel["test_score"], "selection_score": sel["selection_score"],
            "factors": sel["factors"], "selection_by_factor": sel["selection_by_factor"],
            "test_by_factor": sel["test_by_factor"]}


def _results(concepts=CONCEPTS, seed=0):
    methods = {}
    for name, shift in (("DiffMean", 2.0), ("Probe", 1.5), ("Random | ctl", 0.0)):
        per = {str(c): _detection_entry(shift, c, np.random.default_rng([seed, c, int(shift * 10)]))
               for c in concepts}
        methods[name] = {**summarise_detection(per), "per_concept": per, "seconds": 1.5}
    steer = {}
    for name, level in (("DiffMean", 1.0), ("Prompt", 1.2)):
        factors = FACTORS if name != "Prompt" else [1.0]
        per = {str(c): _steer_entry(level, c, np.random.default_rng([seed, c, int(level * 10)]), factors)
               for c in concepts}
        steer[name] = {**summarise_steering(per), "per_concept": per, "seconds": 2.0}
    return {
        "kind": "interpkit.bench", "schema": 1, "mode": "steer",
        "task": {"name": "concept10-test", "concepts": [{"id": c, "description": f"concept {c} | words"}
                                                        for c in CONCEPTS]},
        "model": "tiny", "site": "layer1.resid_post", "layer": 1, "layer_choice": "fixed for the test",
        "quick": True, "settings": {"max_length": 64, "seed": 42, "factors": FACTORS},
        "interpkit_version": "0.1.0",
        "methods": methods,
        "steering": {"judge": {"kind": "local", "concept": {"auroc": 0.93, "thresholds": [0.2, 0.4]}},
                     "methods": steer},
    }


def test_markdown_table_sorted_by_mean_auroc_with_concept_columns():
    results = _results()
    table = markdown_table(results)
    rows = [line for line in table.splitlines() if line.startswith("| ") and "mean AUROC" not in line]
    det = [r.split(" | ")[0][2:] for r in rows[:3]]
    means = {m: results["methods"][m]["mean_auroc"] for m in results["methods"]}
    assert sorted(means, key=lambda m: -means[m]) == ["DiffMean", "Probe", "Random | ctl"]
    assert det == ["DiffMean", "Probe", "Random \\| ctl"]  # cells escape the pipe
    assert "| method | mean AUROC | 95% CI | hard-neg acc | F1 @1:100 | 0 | 1 | 2 | 10 |" in table
    assert "| method | mean score | 95% CI | win vs Prompt |" in table
    assert "(×" in table


def test_render_markdown_header_and_judge():
    md = render_markdown(_results())
    assert md.startswith("# AxBench steering: concept10-test")
    for text in ("`tiny`", "`layer1.resid_post` (layer 1)", "fixed for the test", "quick: yes", "max_length=64",
                 "## Concept detection", "## Steering", "### Judge calibration", "concept.auroc: 0.930",
                 "concept.thresholds: [0.200, 0.400]", "- 10: concept 10 \\| words"):
        assert text in md, text


def test_write_results_files_json_and_charts(tmp_path):
    results = _results()
    paths = write_results(results, tmp_path / "out", charts=write_bench_charts)
    out = tmp_path / "out"
    for rel in ("results.json", "results.md", "charts/auroc_by_method.vl.json", "charts/auroc_by_method.html",
                "charts/roc_curves.vl.json", "charts/roc_curves.html", "charts/steering_vs_factor.vl.json",
                "charts/steering_vs_factor.html"):
        assert (out / rel).is_file(), rel
        assert paths[rel] == out / rel
    data = json.loads((out / "results.json").read_text())
    assert list(data)[:6] == ["kind", "schema", "mode", "task", "model", "site"]  # key order kept
    assert list(data["methods"]) == ["DiffMean", "Probe", "Random | ctl"]
    assert data["methods"]["DiffMean"]["mean_auroc"] == pytest.approx(results["methods"]["DiffMean"]["mean_auroc"],
                                                                      abs=1e-6)
    assert read_results(out)["model"] == "tiny"
    md = (out / "results.md").read_text()
    for name in ("DiffMean", "Probe", "Prompt"):
        assert name in md
    for stem in ("auroc_by_method", "roc_curves", "steering_vs_factor"):
        spec = json.loads((out / "charts" / f"{stem}.vl.json").read_text())
        assert "vega-lite" in spec["$schema"]
    assert "<html" in (out / "charts" / "roc_curves.html").read_text()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp folders left
    # a second write replaces the charts folder whole
    write_results({**results, "steering": {}}, out, charts=write_bench_charts)
    assert not (out / "charts" / "steering_vs_factor.vl.json").exists()
    assert (out / "charts" / "roc_curves.vl.json").exists()


def test_write_results_numpy_and_nan_are_json_safe(tmp_path):
    results = _results()
    results["methods"]["Probe"]["seconds"] = np.float32(2.5)
    results["methods"]["Probe"]["per_concept"]["0"]["threshold"] = float("nan")
    write_results(results, tmp_path, charts=False)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data["methods"]["Probe"]["seconds"] == 2.5
    assert data["methods"]["Probe"]["per_concept"]["0"]["threshold"] is None
    assert not (tmp_path / "charts").exists()
    with pytest.raises(ValueError, match="kind"):
        write_results({"kind": "other"}, tmp_path)
    # bench builds no charts itself (viz sits above it): charts=True says what to pass instead
    with pytest.raises(TypeError, match="write_bench_charts"):
        write_results(results, tmp_path, charts=True)


def test_a_failing_chart_writer_leaves_the_old_charts(tmp_path):
    results = _results()
    write_results(results, tmp_path, charts=write_bench_charts)
    before = sorted(p.name for p in (tmp_path / "charts").iterdir())

    def broken(results, folder):
        (folder / "half.vl.json").write_text("{")
        raise RuntimeError("chart failed")

    with pytest.raises(RuntimeError, match="chart failed"):
        write_results(results, tmp_path, charts=broken)
    assert sorted(p.name for p in (tmp_path / "charts").iterdir()) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_chart_builders_return_specs():
    results = _results()
    for build in (auroc_bars, bench_roc, bench_steering):
        spec = build(results).to_dict()
        assert "vega-lite" in spec["$schema"]
    with pytest.raises(ValueError, match="no steering"):
        bench_steering({"methods": {}})


def _shard(results, concepts):
    keep = {str(c) for c in concepts}
    part = json.loads(json.dumps(results))
    for group in (part["methods"], part["steering"]["methods"]):
        for entry in group.values():
            entry["per_concept"] = {c: v for c, v in entry["per_concept"].items() if c in keep}
            entry["seconds"] = entry["seconds"] / 2
            entry.update({k: None for k in ("mean_auroc", "mean_score", "ci95") if k in entry})
    return part


def test_merge_results_of_shards_equals_unsharded():
    full = json.loads(json.dumps(_results()))
    merged = merge_results([_shard(full, [10, 1]), _shard(full, [0, 2])])
    assert merged == full
    assert list(merged["methods"]["Probe"]["per_concept"]) == ["0", "1", "2", "10"]
    assert list(merged["methods"]["Probe"]) == list(full["methods"]["Probe"])
    assert json.dumps(merged) == json.dumps(full)


def test_merge_results_rejects_mismatches():
    full = json.loads(json.dumps(_results()))
    other = {**_shard(full, [0]), "model": "other"}
    with pytest.raises(ValueError, match="part 1 has model 'other'"):
        merge_results([_shard(full, [1]), other])
    bad = _shard(full, [1])
    bad["methods"]["Probe"]["per_concept"]["1"] = {"auroc": 0.1}
    with pytest.raises(ValueError, match="'Probe' concept 1 differs"):
        merge_results([_shard(full, [1]), bad])
    with pytest.raises(ValueError, match="at least one part"):
        merge_results([])


def test_steering_chart_reads_the_layout_evaluate_steering_writes():
    results = {"steering": {"methods": {
        "DiffMean": {"mean_score": 0.5, "per_concept": {"0": {
            "factor": 1.0, "test_score": 0.5,
            "by_factor": {"factor": [0.5, 1.0], "score": [0.2, 0.6], "selection": [0.1, 0.7], "test": [0.3, 0.5]}}}},
        "Prompt": {"mean_score": 0.9, "per_concept": {"0": {
            "factor": None, "test_score": 0.9, "by_factor": {"factor": [None], "score": [0.8]}}}}}}}
    spec = bench_steering(results).to_dict()
    values = [v for layer in spec.get("layer", [spec]) for v in layer.get("data", {}).get("values", [])]
    assert {(v["method"], v["factor"], v["split"]) for v in values} >= {
        ("DiffMean", 0.5, "selection"), ("DiffMean", 1.0, "test"), ("Prompt", 0.0, "test")}
