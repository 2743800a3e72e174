"""docs/benchmarks.md's generated tables are what the committed results files give (benchmarks/tables.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tables():
    spec = importlib.util.spec_from_file_location("bench_tables", ROOT / "benchmarks" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_tables_match_the_results_files(tables):
    assert (ROOT / "benchmarks" / "results").is_dir()
    assert tables.update(check=True) == [], "docs/benchmarks.md is stale: run benchmarks/tables.py"


def test_every_results_file_records_its_command_and_versions(tables):
    for folder, data in tables.load_results():
        assert data.get("command", "").startswith("interpkit bench "), folder
        assert data["environment"]["packages"]["torch"], folder
    for folder, data in tables.load_results(kind="interpkit.bench.layers"):
        assert data.get("command", "").startswith("python benchmarks/axbench_layers.py"), folder
        assert data["environment"]["packages"]["torch"], folder


def _results(path: Path, task: str, methods: dict, date: str, n_concepts: int | None = None) -> None:
    folder = path / f"{task}-x-{date}"
    folder.mkdir(parents=True)
    folder.joinpath("results.json").write_text(json.dumps({
        "kind": "interpkit.bench", "mode": "detect", "task": {"name": task, "n_concepts": n_concepts},
        "site": "layer12.resid_post",
        "methods": {k: {"mean_auroc": v, "ci95": [v - 0.1, v + 0.05], "mean_hard_negative_acc": 0.7,
                        "mean_f1_imbalanced": 0.4, "per_concept": {"0": {"auroc": v}, "1": {"auroc": v}}}
                    for k, v in methods.items()}}))


def test_render_takes_the_newest_file_per_method_and_check_finds_stale_tables(tables, tmp_path):
    root = tmp_path / "results"
    _results(root, "prod_2b_l10_v1", {"DiffMean": 0.9, "Probe": 0.8}, "2026-01-01")
    _results(root, "prod_2b_l10_v1", {"Probe": 0.85}, "2026-02-01")
    _results(root, "prod_2b_l20_v1", {"DiffMean": 0.95}, "2026-01-01")
    _results(root, "prod_2b_l20_v1", {"ReFT-r1": 0.7}, "2026-01-02", n_concepts=10)
    text = tables.render_detection(tables.load_results(root))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert list(rows) == ["DiffMean", "Probe", "ReFT-r1"]  # best mean AUROC first
    assert "0.700 (0.600-0.750) (2 of 10)" in rows["ReFT-r1"]  # a partial run says how partial
    assert "0.850 (0.750-0.900)" in rows["Probe"] and "prod_2b_l10_v1-x-2026-02-01" in rows["Probe"]
    assert "not run" in rows["Probe"] and "0.950" in rows["DiffMean"]
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- BEGIN generated: detection (benchmarks/tables.py) -->\nold\n"
                   "<!-- END generated: detection -->\nend\n")
    assert tables.update(doc, root, check=True) == ["detection"] and "old" in doc.read_text()
    assert tables.update(doc, root) == ["detection"]
    assert tables.update(doc, root, check=True) == [] and text in doc.read_text()
    assert doc.read_text().startswith("intro\n") and doc.read_text().endswith("end\n")


def test_auto_layer_runs_get_their_own_table(tables, tmp_path):
    root = tmp_path / "results"
    _results(root, "prod_2b_l10_v1", {"DiffMean": 0.9}, "2026-01-01")
    _results(root, "prod_2b_l10_v1", {"DiffMean": 0.96}, "2026-01-02")
    data = json.loads((root / "prod_2b_l10_v1-x-2026-01-02" / "results.json").read_text())
    data.update(layer=18, layer_selection={"layer": 18})
    (root / "prod_2b_l10_v1-x-2026-01-02" / "results.json").write_text(json.dumps(data))
    fixed = tables.render_detection(tables.load_results(root))
    auto = tables.render_detection(tables.load_results(root), auto=True)
    assert "0.900" in fixed and "0.960" not in fixed  # the newer auto run does not replace the fixed-layer row
    assert "0.960" in auto and "2B-L10 (layer 18) AUROC" in auto


def test_layer_sweep_table_marks_the_rules_choice_and_the_hindsight_best(tables, tmp_path):
    root = tmp_path / "results"
    folder = root / "prod_2b_l10_v1-layers-2026-01-01"
    folder.mkdir(parents=True)
    layers = {"6": {"train_cv_auroc": 0.9, "methods": {"DiffMean": {"mean_auroc": 0.85}}},
              "9": {"train_cv_auroc": 0.95, "methods": {"DiffMean": {"mean_auroc": 0.91}}},
              "12": {"train_cv_auroc": 0.93, "methods": {"DiffMean": {"mean_auroc": 0.94}}}}
    folder.joinpath("results.json").write_text(json.dumps({
        "kind": "interpkit.bench.layers", "task": {"name": "prod_2b_l10_v1"}, "layers": layers,
        "layer_selection": {"layer": 9}}))
    assert tables.load_results(root) == []  # a sweep is not a detection run
    text = tables.render_layers(tables.load_results(root, "interpkit.bench.layers"))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:5]}
    assert list(rows) == ["6", "9", "12"]
    assert "0.950 **chosen**" in rows["9"] and "**0.940**" in rows["12"] and "**" not in rows["6"]
    bad = root / "other-2026-01-01"
    bad.mkdir()
    bad.joinpath("results.json").write_text(json.dumps({"kind": "something"}))
    with pytest.raises(ValueError, match="field 'kind'"):
        tables.load_results(root)
