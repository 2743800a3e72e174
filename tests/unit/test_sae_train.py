"""SAE training: architectures on planted sparse data, presets, sources, resume, sklearn, errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from interpkit.records import ActivationRecord, FeatureActivation, write_jsonl
from interpkit.sae._data import ArraySource, ModelSource, RecordsSource, reservoir_sample
from interpkit.sae._train import PRESETS, train_sae

D_IN, N_ATOMS = 32, 48


def planted(n: int = 4000, d: int = D_IN, m: int = N_ATOMS, k: int = 3, seed: int = 0):
    """Rows = sparse non-negative combinations of ``m`` unit atoms, plus an offset and small noise."""
    rng = np.random.default_rng(seed)
    atoms = rng.standard_normal((m, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    codes = np.zeros((n, m))
    for i in range(n):
        codes[i, rng.choice(m, k, replace=False)] = rng.uniform(1, 3, k)
    x = codes @ atoms + 0.5 + 0.01 * rng.standard_normal((n, d))
    return x.astype(np.float32), atoms


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return planted()


@pytest.fixture(scope="module")
def model():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


TEXTS = [" ".join(["the cat sat", "a dog ran", "birds fly high", "we eat rice", "it is cold"][i % 5]
                  for _ in range(1 + i % 3)) + f" {chr(97 + i % 26)}" for i in range(24)]


# ---- architectures on planted data -------------------------------------------------------------


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu", "jumprelu"])
def test_every_architecture_learns_the_planted_dictionary(data, arch):
    x, atoms = data
    res = train_sae(x, architecture=arch, latent_dim=64, k=3 if "topk" in arch else None, epochs=15,
                    batch_size=128, lr=3e-3, seed=0)
    m = res.metrics
    assert m["n_eval_rows"] == 400 and m["n_train_rows"] == 3600
    assert m["fvu_mean_baseline"] == pytest.approx(1.0, abs=0.05)
    assert m["fvu"] < 0.3, m  # the mean predicts nothing: FVU 1
    assert m["l0"] < 16, m
    cos = (atoms @ res.sae.W_dec.detach().double().numpy().T).max(1)
    if arch == "topk":
        assert (cos > 0.9).mean() >= 0.9, np.sort(cos)
    elif arch in ("batchtopk", "jumprelu"):
        assert (cos > 0.8).mean() >= 0.5, np.sort(cos)
    norms = res.sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-4)


def test_init_scales_inputs_and_centres_b_dec(data):
    x, _ = data
    res = train_sae(x * 100, latent_dim=32, k=3, epochs=1, batch_size=256, lr=1e-9)
    cfg = res.sae.cfg
    assert cfg.normalize_activations == "expected_average_only_in"
    src = ArraySource(x * 100, eval_fraction=0.1, seed=0)
    first = torch.cat(list(src.batches(0, 256, 0))).double()
    assert cfg.norm_scaling_factor == pytest.approx(math.sqrt(D_IN) / float(first.norm(dim=-1).mean()), rel=1e-6)
    assert torch.allclose(res.sae.b_dec.detach().double(), (first * cfg.norm_scaling_factor).mean(0), atol=1e-3)


def test_dead_latents_are_counted_and_reported(data):
    x, _ = data
    res = train_sae(x, latent_dim=256, k=1, epochs=2, batch_size=128, dead_steps=5, log_every=5)
    assert res.settings["dead_steps"] == 5
    assert res.history and all(0.0 <= h["dead_fraction"] <= 1.0 for h in res.history)
    assert res.metrics["dead_fraction_train"] > 0.0  # 256 latents, one active per row
    assert 0.0 < res.metrics["dead_fraction"] < 1.0


# ---- presets and settings -------------------------------------------------------------------------


def test_presets_and_overrides(data):
    x, _ = data
    mini = train_sae(x[:400], preset="minimal", epochs=1)
    p = PRESETS["minimal"]
    assert mini.settings["d_sae"] == D_IN * p.expansion_factor and mini.settings["k"] == p.k
    assert mini.settings["batch_size"] == 64 and mini.settings["epochs"] == 1 and mini.settings["lr"] == p.lr
    prod = train_sae(x[:400], preset="production", epochs=1, batch_size=100, k=8)
    assert prod.settings["d_sae"] == 16 * D_IN and prod.settings["k"] == 8 and prod.settings["batch_size"] == 100
    assert prod.settings["lr"] == pytest.approx(min(1e-3, 2e-4 / math.sqrt(16 * D_IN / 2**14)))
    assert train_sae(x[:400], preset="production", epochs=1, latent_dim=20).settings["k"] == 20  # capped
    assert train_sae(x[:400], epochs=1, expansion_factor=2).settings["d_sae"] == 2 * D_IN


def test_presets_choose_pooling_for_a_model(model):
    mini = ModelSource(model, TEXTS, "layer0.resid_post", pooling=PRESETS["minimal"].pooling, seed=0)
    assert mini.n_rows == len(mini.train_texts)
    res = train_sae(model, texts=TEXTS, layer=0, preset="minimal", epochs=1, latent_dim=8)
    assert res.settings["pooling"] == "mean" and res.source_info["n_train_texts"] + res.source_info["n_eval_texts"] == 24
    assert res.metrics["n_eval_rows"] == res.source_info["n_eval_texts"]  # one row per held-out prompt
    assert res.sae.cfg.site == "layer0.resid_post" and res.sae.cfg.layer == 0 and res.sae.cfg.model == model.name


# ---- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"preset": "huge"}, "unknown preset 'huge'"),
        ({"latent_dim": 8, "expansion_factor": 2}, "latent_dim or expansion_factor, not both"),
        ({"method": "jax"}, "unknown method 'jax'"),
        ({"architecture": "gated"}, "unknown architecture 'gated'"),
        ({"checkpoint_every": 5}, "checkpoint_every needs out="),
        ({"eval_fraction": 1.5}, "eval_fraction must be in"),
        ({"k": 99, "latent_dim": 8}, "k=99 is larger"),
        ({"max_records": 10}, "max_records applies to an activation-record file"),
        ({"method": "sklearn", "architecture": "jumprelu"}, "relu dictionary"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train_sae(np.ones((20, 4), np.float32), epochs=1, **kwargs)


def test_model_source_needs_texts_and_site(model):
    with pytest.raises(ValueError, match="needs site="):
        train_sae(model, texts=TEXTS)
    with pytest.raises(ValueError, match="needs texts="):
        train_sae(model, site="layer0.resid_post")
    with pytest.raises(TypeError, match="cannot train from dict"):
        train_sae({"a": 1})


# ---- reservoir sampling -----------------------------------------------------------------------------


def test_reservoir_is_deterministic():
    stream = range(1000)
    a, b = reservoir_sample(stream, 10, seed=7), reservoir_sample(iter(stream), 10, seed=7)
    assert a == b and len(a) == 10 and [i for i, _ in a] == sorted(i for i, _ in a)
    assert reservoir_sample(stream, 10, seed=8) != a
    assert [v for _, v in reservoir_sample(range(5), 10, seed=0)] == [0, 1, 2, 3, 4]


def _inclusion_chi2(sampler, n: int = 20, k: int = 5, trials: int = 4000) -> tuple[float, np.ndarray]:
    counts = np.zeros(n)
    for seed in range(trials):
        for i, _ in sampler(range(n), k, seed):
            counts[i] += 1
    expected = trials * k / n
    return float(((counts - expected) ** 2 / expected).sum()), counts


def test_reservoir_is_uniform():
    # Every item is kept with probability k/n. chi² with n-1 = 19 degrees of freedom: the 1e-6 upper
    # quantile is about 62, so a fair sampler fails by chance less than once in a million runs (and
    # the seeds are fixed, so the outcome is reproducible).
    chi2, counts = _inclusion_chi2(reservoir_sample)
    assert chi2 < 62.0, counts
    assert np.abs(counts / 4000 - 0.25).max() < 0.03

    def biased(items, k, seed):  # replaces with j in 0..i-1: the last item is over-kept
        rng = np.random.default_rng(seed)
        res = []
        for i, item in enumerate(items):
            if i < k:
                res.append((i, item))
            elif (j := int(rng.integers(i))) < k:
                res[j] = (i, item)
        return res

    assert _inclusion_chi2(biased)[0] > 62.0  # the same threshold rejects a subtly biased sampler


def _records(n_prompts: int = 12, tokens: int = 2) -> list[ActivationRecord]:
    out = []
    for p in range(n_prompts):
        for t in range(tokens):
            feats = [FeatureActivation(feature_id=f"layer3.resid_post:n{j}", activation=float(p + t + j), layer=3)
                     for j in (10, 2) if (p + j) % 3]
            feats.append(FeatureActivation(feature_id="layer3.resid_post:n1", activation=-1.0 - p))
            out.append(ActivationRecord(model="tiny", prompt_id=f"p{p}", text=f"text {p}", features=feats,
                                        extra={"token_index": t}))
    return out


def test_records_source_maps_feature_ids_to_columns(tmp_path):
    path = tmp_path / "acts.jsonl"
    recs = _records()
    write_jsonl(path, recs)
    src = RecordsSource(path, eval_fraction=0.25, seed=0)
    assert src.feature_ids == ["layer3.resid_post:n1", "layer3.resid_post:n2", "layer3.resid_post:n10"]
    assert src.site == "layer3.resid_post" and src.layer == 3 and src.model == "tiny" and src.d_in == 3
    rows = torch.cat([*src.batches(0, 1000, 0), src.eval_rows()])
    assert rows.shape == (24, 3) and src.n_rows == 18 and src.eval_rows().shape[0] == 6  # 3 of 12 prompts held out
    full = np.zeros((24, 3), np.float32)
    for i, rec in enumerate(recs):
        for f in rec.features:
            full[i, src.feature_ids.index(f.feature_id)] = f.activation
    got = sorted(map(tuple, rows.numpy().tolist()))
    assert got == sorted(map(tuple, full.tolist()))  # missing features are 0
    held = {tuple(r) for r in src.eval_rows().numpy().tolist()}
    by_prompt = {}
    for i, rec in enumerate(recs):
        by_prompt.setdefault(rec.prompt_id, []).append(tuple(full[i].tolist()) in held)
    assert all(len(set(v)) == 1 for v in by_prompt.values())  # a prompt's rows are all in or all out


def test_records_source_samples_max_records(tmp_path):
    path = tmp_path / "acts.jsonl"
    recs = _records(n_prompts=50, tokens=1)
    write_jsonl(path, recs)
    a = RecordsSource(path, max_records=10, seed=3)
    b = RecordsSource(path, max_records=10, seed=3)
    assert [r.prompt_id for r in a.records] == [r.prompt_id for r in b.records]
    assert len(a.records) == 10
    expect = [rec.prompt_id for _, rec in reservoir_sample(recs, 10, seed=3)]
    assert [r.prompt_id for r in a.records] == expect
    assert [r.prompt_id for r in RecordsSource(path, max_records=10, seed=4).records] != expect
    res = train_sae(path, max_records=10, latent_dim=6, k=2, epochs=1, batch_size=4)
    assert res.source_info["n_records"] == 10 and res.sae.cfg.site == "layer3.resid_post"
    assert res.sae.cfg.metadata["input_feature_ids"] == a.feature_ids


# ---- model source --------------------------------------------------------------------------------


def test_model_source_streams_windows_and_holds_out_texts(model, monkeypatch):
    import interpkit.sources as sources

    seen = []
    real = sources.stream_activations

    def spy(m, texts, *args, **kwargs):
        seen.append(list(texts))
        return real(m, texts, *args, **kwargs)

    monkeypatch.setattr(sources, "stream_activations", spy)
    src = ModelSource(model, TEXTS, "layer1.resid_post", window_texts=5, eval_fraction=0.25, seed=1)
    assert not set(src.eval_texts) & set(src.train_texts) or len(set(TEXTS)) < len(TEXTS)
    assert len(src.eval_texts) == 6 and len(src.train_texts) == 18
    batches = list(src.batches(0, 16, seed=0))
    assert max(len(t) for t in seen) <= 5 and sum(len(t) for t in seen) == 18
    assert all(t in src.train_texts for window in seen for t in window)
    n_tokens = sum(len(t) for t in src.train_texts)  # one char per token, BOS excluded
    assert sum(b.shape[0] for b in batches) == n_tokens and all(b.shape == (16, 16) for b in batches[:-1])
    again = list(src.batches(0, 16, seed=0))
    assert all(torch.equal(a, b) for a, b in zip(batches, again, strict=True))
    assert src.eval_rows().shape == (sum(len(t) for t in src.eval_texts), 16)
    assert src.epoch_rows == n_tokens
    capped = ModelSource(model, TEXTS, "layer1.resid_post", window_texts=5, seed=1, max_tokens=20)
    assert [b.shape[0] for b in capped.batches(0, 8, seed=0)] == [8, 8, 4]
    seen.clear()
    start = len(batches) - 3
    later = list(src.batches(0, 16, seed=0, start=start))  # resuming: skipped windows are not run
    assert all(torch.equal(a, b) for a, b in zip(batches[start:], later, strict=True))
    assert sum(len(t) for t in seen) < 18
    tail = list(capped.batches(0, 8, seed=0, start=2))
    assert len(tail) == 1 and tail[0].shape[0] == 4


def test_model_training_reports_lm_loss(model, tmp_path):
    res = train_sae(model, texts=TEXTS, site="layer1.resid_post", latent_dim=32, k=4, epochs=2, batch_size=64,
                    out=tmp_path / "sae")
    m = res.metrics
    assert m["fvu"] < 1.0 and m["n_eval_rows"] > 0 and m["tokens_per_s"] > 0
    assert {"ce_clean", "ce_sae", "ce_zero", "recovered"} <= set(m)
    saved = json.loads((tmp_path / "sae" / "metrics.json").read_text())
    assert saved["metrics"]["fvu"] == pytest.approx(m["fvu"]) and saved["source"]["kind"] == "model"
    from interpkit.sae._formats import load_sae

    back = load_sae(tmp_path / "sae")
    assert all(torch.equal(back.tensors()[k], v) for k, v in res.sae.tensors().items())
    assert back.cfg.site == "layer1.resid_post"


# ---- resume ----------------------------------------------------------------------------------------


def _resume_case(kind, arch, model):
    kw = {"architecture": arch, "latent_dim": 32, "k": 4 if arch == "topk" else None, "epochs": 3,
          "batch_size": 32, "seed": 5, "checkpoint_every": 4}
    if kind == "array":
        return planted(n=400)[0], kw
    return model, {**kw, "texts": TEXTS, "site": "layer1.resid_post", "batch_size": 48}


@pytest.mark.parametrize("kind", ["array", "model"])
@pytest.mark.parametrize("arch", ["topk", "jumprelu"])
def test_resume_is_bit_exact(tmp_path, model, kind, arch):
    source, kw = _resume_case(kind, arch, model)
    whole = train_sae(source, out=tmp_path / "whole", **kw)
    stopped = train_sae(source, out=tmp_path / "cut", stop_after_steps=whole.metrics["steps"] // 2 + 1, **kw)
    assert stopped.metrics["stopped"]
    ckpts = sorted((tmp_path / "cut" / "checkpoints").iterdir())
    assert len(ckpts) == 2 and not (tmp_path / "cut" / "sae.safetensors").exists()
    resumed = train_sae(source, out=tmp_path / "cut", **kw)
    assert resumed.metrics["steps"] == whole.metrics["steps"]
    for name, t in whole.sae.tensors().items():
        assert torch.equal(t, resumed.sae.tensors()[name]), name
    assert resumed.history == whole.history
    assert resumed.metrics["fvu"] == whole.metrics["fvu"]


def test_resume_refuses_other_settings(tmp_path, data):
    x = data[0][:300]
    train_sae(x, latent_dim=16, k=2, epochs=2, batch_size=32, out=tmp_path, checkpoint_every=2, stop_after_steps=3)
    with pytest.raises(ValueError, match="other settings .*d_sae"):
        train_sae(x, latent_dim=24, k=2, epochs=2, batch_size=32, out=tmp_path, checkpoint_every=2)
    fresh = train_sae(x, latent_dim=24, k=2, epochs=2, batch_size=32, out=tmp_path, checkpoint_every=2, resume=False)
    assert fresh.sae.d_sae == 24


# ---- sklearn ---------------------------------------------------------------------------------------


def test_sklearn_dictionary(data):
    from interpkit.sae._sklearn import fit_dictionary, train_sklearn

    x, atoms = data
    x = x[:1500]
    src = ArraySource(x, eval_fraction=0.2, seed=0)
    sae = train_sklearn(src, N_ATOMS, alpha=0.1, seed=0, batch_size=256, epochs=2)
    again = train_sklearn(src, N_ATOMS, alpha=0.1, seed=0, batch_size=256, epochs=2)
    assert all(torch.equal(v, again.tensors()[k]) for k, v in sae.tensors().items())  # deterministic
    assert sae.cfg.architecture == "relu"
    norms = sae.W_dec.detach().norm(dim=-1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    fit = fit_dictionary(src, N_ATOMS, alpha=0.1, seed=0, batch_size=256, epochs=2)
    units = fit.estimator.components_ / np.linalg.norm(fit.estimator.components_, axis=1, keepdims=True)
    assert np.allclose(units, sae.W_dec.detach().double().numpy(), atol=1e-6)
    ev = src.eval_rows().double().numpy()

    def fvu(rec):
        return float(((ev - rec) ** 2).sum() / ((ev - ev.mean(0)) ** 2).sum())

    fvu_sklearn = fvu(fit.reconstruct(ev))
    with torch.no_grad():
        fvu_sae = fvu(sae.reconstruct(src.eval_rows()).double().numpy())
    assert fvu_sklearn < 0.05
    assert fvu_sae < fvu_sklearn + 0.1, (fvu_sae, fvu_sklearn)  # the documented gap of a linear encoder
    cos = (atoms @ sae.W_dec.detach().double().numpy().T).max(1)
    assert (cos > 0.9).mean() >= 0.9
    res = train_sae(x, method="sklearn", latent_dim=N_ATOMS, sparsity_coefficient=0.1, epochs=1, batch_size=256)
    assert res.sae.cfg.architecture == "relu" and res.metrics["fvu"] < 0.2
