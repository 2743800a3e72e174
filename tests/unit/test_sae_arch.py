"""The SAE module and its four registered architectures."""

from __future__ import annotations

import math

import pytest
import torch

from interpkit.sae import ARCHITECTURES, SAE, SAEConfig, make_sae, register_architecture


def _cfg(arch: str, **kw) -> SAEConfig:
    base = dict(architecture=arch, d_in=6, d_sae=24, k=3 if arch in ("topk", "batchtopk") else None)
    base.update(kw)
    return SAEConfig(**base)


def test_registry_has_the_four_architectures():
    assert {"topk", "batchtopk", "relu", "jumprelu"} <= set(ARCHITECTURES)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "relu", "jumprelu"])
def test_parameter_names_and_shapes(arch):
    sae = make_sae(_cfg(arch), seed=0)
    t = sae.tensors()
    assert t["W_enc"].shape == (6, 24) and t["b_enc"].shape == (24,)
    assert t["W_dec"].shape == (24, 6) and t["b_dec"].shape == (6,)
    assert torch.allclose(t["W_dec"].norm(dim=-1), torch.ones(24), atol=1e-6)
    if arch == "jumprelu":
        assert t["threshold"].shape == (24,)


def test_topk_keeps_exactly_k_and_the_largest():
    sae = make_sae(_cfg("topk"), seed=0)
    x = torch.randn(50, 6)
    pre = sae.pre_activations(x)
    codes = sae.encode(x)
    assert ((codes != 0).sum(-1) <= 3).all()
    # every kept value is the relu pre-activation and is >= every dropped positive one
    kept = codes != 0
    assert torch.equal(codes[kept], torch.relu(pre)[kept])
    for i in range(50):
        dropped = torch.relu(pre[i])[~kept[i]]
        if kept[i].any() and dropped.numel():
            assert codes[i][kept[i]].min() >= dropped.max()


def test_batchtopk_budget_is_per_batch_and_threshold_is_learned():
    sae = make_sae(_cfg("batchtopk"), seed=0)
    sae.train()
    x = torch.randn(40, 6) * 3
    codes = sae.encode(x)
    assert int((codes != 0).sum()) <= 3 * 40
    assert (codes != 0).sum(-1).max() > 3 or (codes != 0).sum(-1).min() < 3  # uneven across rows
    assert float(sae.threshold) > 0
    sae.eval()
    eval_codes = sae.encode(x)
    nz = eval_codes[eval_codes != 0]
    assert (nz > float(sae.threshold)).all()


def test_jumprelu_threshold_gates_and_learns():
    sae = make_sae(_cfg("jumprelu", sparsity_coefficient=0.1, jumprelu_bandwidth=0.5), seed=0)
    with torch.no_grad():
        sae.threshold.fill_(0.3)
    x = torch.randn(64, 6)
    pre = sae.pre_activations(x)
    codes = sae.encode(x)
    assert torch.equal(codes != 0, pre > 0.3)
    sae.train()
    out = sae.loss(x)
    out["loss"].backward()
    assert sae.threshold.grad is not None and sae.threshold.grad.abs().sum() > 0


def test_relu_l1_is_weighted_by_decoder_norm():
    sae = make_sae(_cfg("relu", sparsity_coefficient=0.5), seed=0)
    x = torch.randn(8, 6)
    pre = sae.pre_activations(x)
    codes = sae.encode(x)
    expected = 0.5 * (codes * sae.W_dec.norm(dim=-1)).sum(-1).mean()
    assert torch.allclose(sae.sparsity_loss(pre, codes), expected)


@pytest.mark.parametrize("arch", ["relu", "jumprelu"])
def test_normalize_decoder_keeps_the_function(arch):
    sae = make_sae(_cfg(arch), seed=0)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 24).unsqueeze(-1))
        sae.b_enc.normal_()
    x = torch.randn(10, 6)
    before = sae.reconstruct(x)
    sae.normalize_decoder()
    assert torch.allclose(sae.W_dec.norm(dim=-1), torch.ones(24), atol=1e-6)
    assert torch.allclose(sae.reconstruct(x), before, atol=1e-5)


def test_parallel_gradient_is_removed():
    sae = make_sae(_cfg("topk"), seed=0)
    sae.loss(torch.randn(16, 6))["loss"].backward()
    sae.remove_parallel_decoder_grad()
    dots = (sae.W_dec.grad * sae.W_dec).sum(-1)
    assert dots.abs().max() < 1e-6


def test_aux_loss_only_with_dead_latents():
    sae = make_sae(_cfg("topk"), seed=0)
    x = torch.randn(16, 6)
    assert float(sae.loss(x)["aux"]) == 0.0
    dead = torch.zeros(24, dtype=torch.bool)
    dead[:10] = True
    out = sae.loss(x, dead=dead)
    assert float(out["aux"]) > 0
    out["loss"].backward()
    # the aux loss reaches the dead latents' encoder columns
    assert sae.W_enc.grad[:, :10].abs().sum() > 0


def test_normalizations():
    x = torch.randn(5, 6) * 10
    const = make_sae(_cfg("relu", normalize_activations="constant_norm_rescale"), seed=0)
    pre = const.pre_activations(x)
    scaled = x / x.norm(dim=-1, keepdim=True) * math.sqrt(6)
    assert torch.allclose(pre, (scaled - const.b_dec) @ const.W_enc + const.b_enc, atol=1e-5)
    fixed = make_sae(_cfg("relu", normalize_activations="expected_average_only_in", norm_scaling_factor=0.1), seed=0)
    recon, codes = fixed(x)
    assert torch.allclose(recon, (codes @ fixed.W_dec + fixed.b_dec) / 0.1, atol=1e-5)


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(architecture="nope"), "unknown SAE architecture"),
        (dict(architecture="topk", k=None), "needs 1 <= k"),
        (dict(architecture="topk", k=99), "needs 1 <= k"),
        (dict(architecture="relu", d_sae=0), "d_sae"),
        (dict(architecture="relu", normalize_activations="layer"), "normalize_activations"),
        (dict(architecture="relu", dtype="int8"), "unsupported dtype"),
        (dict(architecture="jumprelu", jumprelu_bandwidth=0), "bandwidth"),
    ],
)
def test_bad_configs_are_named(kw, match):
    base = dict(d_in=6, d_sae=24)
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        SAEConfig(**base)


def test_config_round_trip_and_unknown_fields():
    cfg = _cfg("topk", site="layer3.resid_post", metadata={"x": 1})
    assert SAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown SAEConfig field"):
        SAEConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_register_refuses_a_second_class_under_a_taken_name():
    with pytest.raises(ValueError, match="already registered"):
        register_architecture("topk")(type("Other", (SAE,), {}))


def test_topk_sparse_decode_matches_the_dense_computation():
    sae = make_sae(_cfg("topk"), seed=0)
    x = torch.randn(32, 6)
    dead = torch.zeros(24, dtype=torch.bool)
    dead[::3] = True
    out = sae.loss(x, dead=dead)
    out["loss"].backward()
    sparse_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    pre = sae.pre_activations(x)
    codes = sae._activate(pre)
    err = x - (codes @ sae.W_dec + sae.b_dec)
    dense = err.pow(2).mean() + sae.cfg.aux_coefficient * sae.aux_loss(err.detach(), pre, dead)
    dense.backward()
    assert torch.allclose(out["loss"], dense, atol=1e-6)
    for n, p in sae.named_parameters():
        assert torch.allclose(sparse_grads[n], p.grad, atol=1e-5), n
    assert torch.equal(out["fired"], (codes != 0).any(0))
    assert float(out["l0"]) == float((codes != 0).sum(-1).float().mean())


def test_topk_sparse_backward_passes_gradcheck():
    from interpkit.sae._topk import _TopKEncode

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(4, 9, dtype=torch.float64, generator=gen, requires_grad=True)
    c = torch.randn(9, dtype=torch.float64, generator=gen, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, w, c: _TopKEncode.apply(x, w, c, 3)[0], (x, w, c))
