"""``interpkit train-sae`` on activation records, and the disk cache of model activations."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpkit.cli import main
from interpkit.records import ActivationRecord, FeatureActivation, iter_activation_records, write_jsonl

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _records(path, n=160, d=12, seed=0):
    """Rows built from 4 planted directions; rows using direction 0 have criterion score 1."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(4, d))
    recs = []
    for i in range(n):
        which = rng.choice(4, size=2, replace=False)
        x = (rng.uniform(1, 3, size=2)[:, None] * atoms[which]).sum(0)
        feats = [FeatureActivation(feature_id=f"layer1.resid_post:n{j}", activation=float(x[j]), layer=1)
                 for j in range(d)]
        recs.append(ActivationRecord(model="toy-model", prompt_id=f"p{i}", text=f"text {i}",
                                     criterion_score=float(0 in which), features=tuple(feats)))
    write_jsonl(path, recs)
    return path


def test_train_sae_on_records_writes_the_sae_and_latent_records(tmp_path, capsys):
    src = _records(tmp_path / "acts.jsonl")
    out, latents = tmp_path / "sae", tmp_path / "latents.jsonl"
    code = main(["train-sae", "--records", str(src), "--preset", "minimal", "--latent-dim", "8", "--top-k", "2",
                 "--epochs", "30", "--batch-size", "16", "--max-records", "120", "--out", str(out),
                 "--records-out", str(latents), "--top-k-features", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fvu" in printed and f"wrote {out}" in printed
    assert {"cfg.json", "sae.safetensors", "metrics.json"} <= {p.name for p in out.iterdir()}
    metrics = json.loads((out / "metrics.json").read_text())["metrics"]
    assert metrics["fvu"] < 0.5 and metrics["n_train_rows"] + metrics["n_eval_rows"] == 120
    rows = list(iter_activation_records(latents))
    assert len(rows) == 160  # every record, not only the reservoir sample
    assert all(0 < len(r.features) <= 3 for r in rows)
    assert all(str(f.feature_id).startswith("layer1.resid_post:sae") for r in rows for f in r.features)
    assert rows[0].model == "toy-model" and rows[0].criterion_score is not None
    # the learned latents rank: one of them carries planted direction 0
    report_dir = tmp_path / "report"
    assert main(["inspect", "--records", str(latents), "--criterion", "uses direction 0",
                 "--n-permutations", "200", "--n-bootstrap", "5", "--out", str(report_dir)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert report["features"][0]["components"]["association"]["significant"]


def test_train_sae_saelens_format(tmp_path):
    src = _records(tmp_path / "acts.jsonl", n=60)
    out = tmp_path / "sae"
    assert main(["train-sae", "--records", str(src), "--preset", "minimal", "--latent-dim", "8", "--top-k", "2",
                 "--epochs", "2", "--out", str(out), "--format", "saelens"]) == 0
    from interpkit.sae import detect_format, load_sae

    assert detect_format(out) == "saelens"
    assert load_sae(out).cfg.metadata["input_feature_ids"][0] == "layer1.resid_post:n0"


@pytest.mark.parametrize("argv, message", [
    (["--out", "x"], "needs --records FILE, or --model and --dataset"),
    (["--model", "m", "--out", "x"], "needs --records FILE, or --model and --dataset"),
    (["--records", "missing.jsonl", "--out", "x"], "no such file"),
    (["--records", "{src}", "--out", "x", "--causal-out", "c.jsonl"], "--causal-out needs --criterion"),
    (["--records", "{src}", "--out", "x", "--causal-out", "c.jsonl", "--criterion", "c"], "needs --model"),
])
def test_train_sae_bad_arguments(tmp_path, capsys, argv, message):
    src = _records(tmp_path / "acts.jsonl", n=10)
    argv = [a.replace("{src}", str(src)) for a in argv]
    assert main(["train-sae", *argv]) == 2
    assert message in capsys.readouterr().err


def test_latent_and_expansion_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        main(["train-sae", "--records", "r.jsonl", "--out", "x", "--latent-dim", "4", "--expansion-factor", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_model_source_runs_each_text_once_across_epochs(tmp_path):
    from interpkit._testing import tiny_model
    from interpkit.sae import ModelSource

    model = tiny_model("nnsight")
    texts = [f"the cat number {i} sat on mat {i % 3}" for i in range(12)]
    cached = ModelSource(model, texts, "layer1.resid_post", window_texts=4, eval_fraction=0.25, seed=0,
                         cache_dir=tmp_path / "acts")
    live = ModelSource(model, texts, "layer1.resid_post", window_texts=4, eval_fraction=0.25, seed=0, cache=False)
    for epoch in range(3):
        a = torch.cat(list(cached.batches(epoch, 5, seed=1)))
        b = torch.cat(list(live.batches(epoch, 5, seed=1)))
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-5)  # the same rows, whichever texts shared a forward batch
    assert cached.model_passes == len(cached.train_texts)  # the model ran over each text once
    assert live.model_passes == 3 * len(live.train_texts)
    assert sorted(p.name for p in (tmp_path / "acts").iterdir())[0].startswith("block-")
