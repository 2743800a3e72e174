"""`interpkit bench detect|steer --quick` on the packaged SmolLM2, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interpkit.cli import main

pytestmark = pytest.mark.slow

TASK = Path(__file__).resolve().parents[1] / "data" / "axbench_quick_l10"


@pytest.fixture(scope="module")
def smollm2_ready(smollm2_nnsight):
    return smollm2_nnsight


def test_bench_detect_quick(smollm2_ready, tmp_path):
    out = tmp_path / "detect"
    rc = main(["bench", "detect", "--quick", "--task", str(TASK), "--layer", "12", "--out", str(out), "--quiet",
               "--methods", "diffmean,pca,lat,probe,ssv,reft-r1,sae,sae-a,bow,prompt,random,criterion",
               "--options", '{"ssv": {"max_examples": 6}, "reft-r1": {"max_examples": 12}}'])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    assert res["mode"] == "detect" and res["quick"] is True and res["layer"] == 12
    labels = set(res["methods"])
    assert {"DiffMean", "Probe", "ReFT-r1", "SAE", "SAE-A", "BoW", "Prompt", "Random"} <= labels
    for label, r in res["methods"].items():
        assert set(r["per_concept"]) == {"0", "1"}, label
        assert 0.0 <= r["mean_auroc"] <= 1.0, label
    # a supervised direction separates two clear concepts even on 8+8 short texts
    assert res["methods"]["DiffMean"]["mean_auroc"] > 0.75
    assert (out / "results.md").read_text().count("DiffMean") >= 1
    assert any(p.suffix == ".json" for p in (out / "charts").iterdir())
    from interpkit.table import FeatureTable

    table = FeatureTable.load(out / "features")
    assert "DiffMean/c0" in table.feature_ids


def test_bench_steer_quick(smollm2_ready, tmp_path):
    out = tmp_path / "steer"
    rc = main(["bench", "steer", "--quick", "--task", str(TASK), "--layer", "12", "--out", str(out), "--quiet",
               "--methods", "prompt,diffmean,random", "--factors", "0.5,2", "--instructions", "2",
               "--max-new-tokens", "12"])
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    steering = res["steering"]
    assert {"Prompt", "DiffMean", "Random"} <= set(steering["methods"])
    judge = steering["judge"]
    assert judge["kind"] == "local" and 0.5 <= judge["calibration"]["concept"]["auroc"] <= 1.0
    for label, r in steering["methods"].items():
        assert set(r["per_concept"]) == {"0", "1"}, label
        assert 0.0 <= r["mean_score"] <= 2.0
    lines = (out / "generations.jsonl").read_text().splitlines()
    assert lines and all("generation" in json.loads(line) for line in lines)


def test_bench_steer_quick_trained_interventions(smollm2_ready, tmp_path):
    """LoReFT and LoRA (AxBench's trained steering baselines) train and steer the real model end to end:
    each factor row is its own sample, the model is left as it was (DiffMean's generations after them
    equal those of a run without them)."""
    args = ["bench", "steer", "--quick", "--task", str(TASK), "--layer", "12", "--quiet", "--concepts", "0",
            "--factors", "0.5,2", "--instructions", "2", "--max-new-tokens", "8", "--no-charts"]
    assert main([*args, "--out", str(tmp_path / "a"), "--methods", "loreft,lora,diffmean"]) == 0
    assert main([*args, "--out", str(tmp_path / "b"), "--methods", "diffmean"]) == 0
    res = json.loads((tmp_path / "a" / "results.json").read_text())
    methods = res["steering"]["methods"]
    for label in ("LoReFT", "LoRA"):
        entry = methods[label]["per_concept"]["0"]
        assert "skipped" not in entry and entry["by_factor"]["factor"] == [0.5, 2.0], label

    def gens(folder, method):
        rows = [json.loads(line) for line in (tmp_path / folder / "generations.jsonl").read_text().splitlines()]
        return [r["generation"] for r in rows if r["method"] == method]

    assert gens("a", "LoReFT") and gens("a", "LoRA")
    assert gens("a", "DiffMean") == gens("b", "DiffMean")
