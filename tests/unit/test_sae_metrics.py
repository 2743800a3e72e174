"""SAE metrics: evaluate_sae against hand computations, LM loss recovered on tiny models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from interpkit._testing import tiny_model
from interpkit.models import Ablate
from interpkit.sae import SAEConfig, make_sae
from interpkit.sae._metrics import evaluate_sae, format_metrics, lm_loss_recovered

SITE = "layer0.resid_post"
D = 16
TEXTS = ["hello there friend", "the cat sat on the mat", "a b c", "good night moon", "zz"]


@pytest.fixture(scope="module")
def models():
    return {"nnsight": tiny_model("nnsight"), "transformer_lens": tiny_model("transformer_lens")}


def relu_sae(d_in: int, d_sae: int, *, site: str | None = SITE, **cfg) -> torch.nn.Module:
    return make_sae(SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae, site=site, **cfg), seed=None)


def perfect_sae(d: int = D):
    """relu([x, -x]) decoded by [I; -I] is exactly x."""
    sae = relu_sae(d, 2 * d)
    eye = torch.eye(d)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    return sae


# ---- evaluate_sae -----------------------------------------------------------------------------


def test_evaluate_constant_reconstruction_by_hand():
    # W_dec = 0, b_dec = c: every row reconstructs as c; x = [[2,0],[0,2]], mean [1,1].
    sae = relu_sae(2, 3, apply_b_dec_to_input=False)
    with torch.no_grad():
        sae.b_dec.copy_(torch.tensor([1.0, 0.0]))
    m = evaluate_sae(sae, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    # sse = |[1,0]|^2 + |[-1,2]|^2 = 6; sst = 2 + 2 = 4
    assert m["fvu"] == pytest.approx(1.5)
    assert m["mse"] == pytest.approx(6 / 4)
    assert m["cosine"] == pytest.approx(0.5)  # cos = 1 and 0
    assert m["l0"] == 0 and m["dead_fraction"] == 1.0 and m["dense_fraction"] == 0.0
    assert m["baseline_fvu_mean"] == 1.0 and m["fvu_mean_baseline"] == pytest.approx(1.0)
    assert (m["n_rows"], m["d_in"], m["d_sae"]) == (2, 2, 3)
    # predicting a training mean of [0, 0]: sum |x|^2 / sst = 8 / 4
    assert evaluate_sae(sae, np.array([[2.0, 0.0], [0.0, 2.0]]), train_mean=[0.0, 0.0])["fvu_mean_baseline"] == 2.0


def test_evaluate_matches_numpy_on_a_random_sae():
    sae = make_sae(SAEConfig(architecture="relu", d_in=6, d_sae=10), seed=3)
    with torch.no_grad():
        sae.b_enc.fill_(-0.2)
        sae.b_dec.copy_(torch.linspace(-1, 1, 6))
    x = torch.randn(50, 6, generator=torch.Generator().manual_seed(0)) + 0.5
    m = evaluate_sae(sae, x, batch_size=7)  # batches that do not divide the rows
    xn = x.double().numpy()
    W_enc, b_enc = sae.W_enc.detach().double().numpy(), sae.b_enc.detach().double().numpy()
    W_dec, b_dec = sae.W_dec.detach().double().numpy(), sae.b_dec.detach().double().numpy()
    codes = np.maximum((xn - b_dec) @ W_enc + b_enc, 0)
    recon = codes @ W_dec + b_dec
    assert m["fvu"] == pytest.approx(((xn - recon) ** 2).sum() / ((xn - xn.mean(0)) ** 2).sum(), rel=1e-5)
    assert m["mse"] == pytest.approx(((xn - recon) ** 2).mean(), rel=1e-5)
    cos = (xn * recon).sum(1) / np.linalg.norm(xn, axis=1) / np.linalg.norm(recon, axis=1)
    assert m["cosine"] == pytest.approx(cos.mean(), rel=1e-5)
    assert m["l0"] == pytest.approx((codes > 0).sum(1).mean())
    assert m["dead_fraction"] == pytest.approx(((codes > 0).sum(0) == 0).mean())


def test_dead_and_dense_fractions_on_constructed_codes():
    sae = relu_sae(4, 4)
    with torch.no_grad():
        sae.W_enc.copy_(torch.eye(4))
        sae.W_dec.copy_(torch.eye(4))
    x = -torch.ones(10, 4)
    x[:, 0] = 1.0  # latent 0 fires on every row
    x[3, 1] = 1.0  # latent 1 on 1/10; latent 2 never
    x[[1, 7], 3] = 2.0  # latent 3 on 2/10
    m = evaluate_sae(sae, x, dense_threshold=0.15)
    assert m["l0"] == pytest.approx(1.3)
    assert m["dead_fraction"] == 0.25
    assert m["dense_fraction"] == 0.5
    assert evaluate_sae(sae, x, dense_threshold=0.1)["dense_fraction"] == 0.5  # strictly more than
    assert evaluate_sae(sae, x, dense_threshold=0.05)["dense_fraction"] == 0.75


def test_perfect_sae_has_zero_fvu():
    m = evaluate_sae(perfect_sae(), torch.randn(40, D))
    assert m["fvu"] == 0.0 and m["mse"] == 0.0 and m["cosine"] == pytest.approx(1.0)


def test_evaluate_rejects_wrong_width():
    with pytest.raises(ValueError, match=r"\[n, 16\]"):
        evaluate_sae(perfect_sae(), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="at least one row"):
        evaluate_sae(perfect_sae(), torch.zeros(0, D))


# ---- lm_loss_recovered ------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_perfect_sae_recovers_everything(models, backend):
    m = lm_loss_recovered(perfect_sae(), models[backend], TEXTS, batch_size=2)
    assert m["recovered"] == pytest.approx(1.0, abs=1e-5)
    assert m["recovered_mean"] == pytest.approx(1.0, abs=1e-5)
    assert m["ce_sae"] == pytest.approx(m["ce_clean"], abs=1e-5)
    assert m["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    assert m["ce_zero"] > m["ce_clean"] and m["kl_zero"] > 0


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_zero_sae_recovers_nothing(models, backend):
    m = lm_loss_recovered(relu_sae(D, 2 * D), models[backend], TEXTS, mean_ablation=False)
    assert m["recovered"] == pytest.approx(0.0, abs=1e-6)
    assert m["ce_sae"] == pytest.approx(m["ce_zero"])
    assert "ce_mean" not in m


def _manual_ce(model, texts, edit=None):
    batch = model.tokenize(texts)
    if edit is None:
        logits = model.forward(batch)
    else:
        with model.edits(edit):
            logits = model.forward(batch)
    ids, mask = batch.input_ids, batch.attention_mask.bool()
    keep = mask[:, 1:] & mask[:, :-1]
    ce = torch.nn.functional.cross_entropy(logits[:, :-1][keep].float(), ids[:, 1:][keep], reduction="mean")
    return float(ce), int(keep.sum()), int(ids.shape[1])


def test_losses_match_a_hand_computation(models):
    model = models["transformer_lens"]
    sae = make_sae(SAEConfig(architecture="topk", d_in=D, d_sae=32, k=4, site=SITE), seed=1)
    m = lm_loss_recovered(sae, model, TEXTS, batch_size=len(TEXTS))
    clean, n, width = _manual_ce(model, TEXTS)
    assert m["ce_clean"] == pytest.approx(clean, rel=1e-5)
    assert m["n_tokens"] == n == sum(len(t) for t in TEXTS)  # one character per token, BOS predicts the first
    positions = tuple(range(1, width))  # BOS keeps its clean activation
    zero, _, _ = _manual_ce(model, TEXTS, Ablate(SITE, mode="zero", positions=positions))
    assert m["ce_zero"] == pytest.approx(zero, rel=1e-5)
    assert m["recovered"] == pytest.approx((m["ce_zero"] - m["ce_sae"]) / (m["ce_zero"] - m["ce_clean"]))


def test_bos_is_not_spliced_by_default(models):
    model = models["nnsight"]
    scaled = perfect_sae()
    with torch.no_grad():
        scaled.W_dec.mul_(3.0)  # reconstructs 3x: a bad splice wherever it applies
    a = lm_loss_recovered(scaled, model, TEXTS, mean_ablation=False)
    b = lm_loss_recovered(scaled, model, TEXTS, mean_ablation=False, splice_bos=True)
    assert a["ce_clean"] == b["ce_clean"]
    assert a["ce_sae"] != b["ce_sae"] and a["ce_zero"] != b["ce_zero"]


def test_lm_loss_errors(models):
    with pytest.raises(ValueError, match="at least one text"):
        lm_loss_recovered(perfect_sae(), models["nnsight"], [])
    wrong = make_sae(SAEConfig(architecture="relu", d_in=8, d_sae=4, site=SITE), seed=0)
    with pytest.raises(Exception, match="d_in=8"):
        lm_loss_recovered(wrong, models["transformer_lens"], TEXTS, mean_ablation=False)


def test_format_metrics():
    text = format_metrics({"n_rows": 10, "recovered": 0.91234, "fvu": 0.5, "dead_fraction": 0.125,
                           "nested": {"a": 1}, "missing": None, "ce_mean": math.nan})
    lines = text.splitlines()
    assert lines[0] == "SAE metrics"
    assert [ln.split()[0] for ln in lines[1:]] == ["fvu", "dead_fraction", "ce_mean", "recovered", "n_rows"]
    assert "12.5%" in text and "0.9123" in text and "nan" in text
    assert format_metrics({}, title=None) == ""


def test_metrics_run_the_sae_in_eval_mode(models):
    # BatchTopK in training mode codes a whole batch together and moves its threshold
    sae = make_sae(SAEConfig(architecture="batchtopk", d_in=D, d_sae=32, k=4, site=SITE), seed=0)
    with torch.no_grad():
        sae.threshold.fill_(0.3)
    x = torch.randn(30, D, generator=torch.Generator().manual_seed(1))
    assert sae.training
    got = evaluate_sae(sae, x)
    assert sae.training and float(sae.threshold) == pytest.approx(0.3)
    sae.eval()
    assert evaluate_sae(sae, x) == got
    sae.train()
    lm_loss_recovered(sae, models["transformer_lens"], TEXTS[:2], mean_ablation=False)
    assert sae.training and float(sae.threshold) == pytest.approx(0.3)
