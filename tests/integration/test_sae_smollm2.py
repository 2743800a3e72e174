"""SAEs on SmolLM2: train-sae (production preset) from the model, rank the latents, SAELens round trip.

One module-scoped training run (a few thousand tokens of the packaged AxBench corpus at layer 15)
feeds every test here.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

from interpkit.cli import main

pytestmark = pytest.mark.slow

CRITERION = "references to specific dates and publication information"
UNITS = "the next token should be a physical measurement unit"


def _data(name: str) -> str:
    return str(resources.files("interpkit") / "data" / name)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, smollm2_nnsight):
    del smollm2_nnsight  # skips the module when the packaged model is missing; also warms the cache
    root = tmp_path_factory.mktemp("sae")
    targets = ",".join(json.loads(Path(_data("measurement_units.json")).read_text())["target_tokens"])
    argv = ["train-sae", "--model", "smollm2-135m", "--backend", "nnsight", "--dataset", _data("axbench_dates.jsonl"),
            "--layer", "15", "--preset", "production", "--batch-size", "256", "--epochs", "8", "--lr", "1e-3",
            "--out", str(root / "sae"), "--records-out", str(root / "latents.jsonl"),
            "--causal-out", str(root / "steer.jsonl"), "--criterion", UNITS,
            "--causal-dataset", _data("measurement_units.jsonl"), "--target-tokens", targets,
            "--causal-top-k", "2"]
    assert main(argv) == 0
    return root


def test_production_sae_beats_the_mean_baseline(trained):
    metrics = json.loads((trained / "sae" / "metrics.json").read_text())["metrics"]
    # held-out rows: the mean predictor has FVU 1 (fvu_mean_baseline measures it against the train mean)
    assert metrics["fvu_mean_baseline"] > 0.95
    assert metrics["fvu"] < 0.6 < metrics["fvu_mean_baseline"]
    assert metrics["l0"] == pytest.approx(32, abs=0.5)
    assert metrics["n_train_rows"] > 2000 and metrics["n_eval_rows"] > 200
    # splicing the reconstruction in keeps most of the language-model loss
    assert metrics["ce_clean"] < metrics["ce_sae"] < metrics["ce_zero"]
    assert metrics["recovered"] > 0.8
    assert 0.0 <= metrics["dead_fraction"] < 0.6


def test_latents_rank_through_inspect_records(trained, tmp_path):
    out = tmp_path / "report"
    assert main(["inspect", "--records", str(trained / "latents.jsonl"), "--criterion", CRITERION,
                 "--n-permutations", "200", "--n-bootstrap", "10", "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    top = report["features"][0]
    assert top["feature_id"].startswith("layer15.resid_post:sae")
    # a real association with the dates criterion on the held-out split
    assoc = top["components"]["association"]
    assert assoc["significant"] and max(assoc["auroc_test"], 1 - assoc["auroc_test"]) > 0.7


def test_latent_steering_records(trained):
    from interpkit.records import read_intervention_records

    recs = read_intervention_records(trained / "steer.jsonl")
    assert recs and {r.kind for r in recs} == {"steer"}
    ids = {r.feature_id for r in recs}
    assert any("::control" in i for i in ids) and any(i.startswith("layer15.resid_post:sae") for i in ids)
    assert all(r.criterion == UNITS for r in recs)


def test_saelens_layout_round_trip_and_inspect_backend(trained, tmp_path, smollm2_nnsight):
    from interpkit.sae import load_sae, save_sae

    sae = load_sae(trained / "sae")
    folder = save_sae(sae, tmp_path / "saelens", format="saelens")
    assert (folder / "sae_weights.safetensors").is_file() and (folder / "cfg.json").is_file()
    again = load_sae(folder)
    # SAELens has no input-scale field for a trained factor, so saving folds it into the weights
    # (as SAELens does): the same function, other tensors
    x = torch.randn(64, sae.d_in) * 10
    with torch.no_grad():
        assert torch.allclose(sae.eval().reconstruct(x), again.eval().reconstruct(x), rtol=1e-4, atol=1e-3)
        assert torch.equal(sae.encode(x) > 0, again.encode(x) > 0) or (
            (sae.encode(x) > 0) != (again.encode(x) > 0)).float().mean() < 1e-3
    # and a SAELens folder round-trips bit-exactly
    twice = save_sae(again, tmp_path / "saelens2", format="saelens")
    for name, t in again.tensors().items():
        assert torch.equal(t, load_sae(twice).tensors()[name]), name
    assert json.loads((twice / "cfg.json").read_text()) == json.loads((folder / "cfg.json").read_text())
    assert (twice / "sae_weights.safetensors").read_bytes() == (folder / "sae_weights.safetensors").read_bytes()

    from interpkit import inspect

    latents = [int(r["feature_id"].rsplit("sae", 1)[1]) for r in
               json.loads((trained / "latents.jsonl").read_text().splitlines()[0])["features"][:20]]
    report = inspect(smollm2_nnsight, CRITERION, backend="saelens", saelens_release=str(folder),
                     saelens_feature_indexes=latents, dataset=_data("axbench_dates.jsonl"),
                     n_permutations=100, n_bootstrap=5, top_k=3)
    assert report.backend == "saelens" and len(report.features) == 3
    assert {f.feature_id for f in report.features} <= {f"layer15.resid_post:sae{i}" for i in latents}
    assert np.isfinite([f.components["association"]["auroc_test"] for f in report.features]).all()
