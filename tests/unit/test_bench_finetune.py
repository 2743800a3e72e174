"""The steer-only fine-tuning baselines on the tiny model: LoRA adapters and SFT leave the model as they found it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_bench_methods import fake_context

from interpkit.bench.methods import LoRAAdapters, get_method, proportional_layers, response_loss, swapped
from interpkit.bench.methods._finetune import _attn_out_modules
from interpkit.bench.methods._lmloss import lm_examples

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(params=["llama", "gpt2"])
def lm_ctx(request):
    from interpkit._testing import tiny_model

    return fake_context(n_pos=6, n_neg=6, model=tiny_model("nnsight", arch=request.param), site="layer0.resid_post")


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.hf_model.state_dict().items()}


def _identical(before, model):
    after = model.hf_model.state_dict()
    return set(before) == set(after) and all(torch.equal(before[n], after[n]) for n in before)


def _positives(ctx, cid):
    idx, labels = ctx.train_split(cid)
    return lm_examples(ctx, np.asarray(idx)[np.asarray(labels, bool)], max_train_tokens=12)


def test_proportional_layers_follow_axbench_depths():
    assert proportional_layers(26) == [5, 10, 15, 20]
    assert proportional_layers(30) == [6, 12, 17, 23]  # SmolLM2-135M
    assert proportional_layers(2) == [0, 1] and proportional_layers(1) == [0]


def test_lora_adapter_maths_and_clean_detach(lm_ctx):
    model = lm_ctx.model
    before = _snapshot(model)
    mods = _attn_out_modules(model.hf_model, [0, 1])
    lora = LoRAAdapters(mods, rank=4, alpha=32.0, dropout=0.05).train(False)
    prompt = "the apple is here"
    plain = model.forward(prompt)
    with lora.attached():
        assert torch.allclose(model.forward(prompt), plain)  # B = 0: an untrained adapter is a no-op
    a = lora.adapters[0]
    assert a.scale == pytest.approx(32 / 2) and a.A.shape[0] == 4
    with torch.no_grad():
        for ad in lora.adapters:
            ad.B.normal_()
    x = torch.randn(3, a.A.shape[1])
    assert torch.allclose(a(x), 16.0 * x @ a.A.T @ a.B.T, atol=1e-5)
    with lora.attached():
        adapted = model.forward(prompt)
    assert not torch.allclose(adapted, plain)
    assert torch.allclose(model.forward(prompt), plain)  # hooks removed on exit
    assert _identical(before, model) and all(not hasattr(m, "lora") for _, m in mods)


def test_lora_training_lowers_the_loss_and_steers_through_its_context(lm_ctx):
    model = lm_ctx.model
    before = _snapshot(model)
    method = get_method("lora", epochs=6, batch_size=3, grad_accum=2, max_train_tokens=12, lr=2e-2)
    assert not method.detects and method.steers
    fitted = method.fit(lm_ctx, 0)
    info = fitted.info
    assert fitted.vector is None and fitted.steer_vector is None
    assert info["steps"] == 6 and info["n_examples"] == 6 and len(info["modules"]) == 2
    examples = _positives(lm_ctx, 0)
    base = response_loss(model, examples)
    hook = fitted.steer_context
    assert hook.kind == "lora" and not hook.uses_strength
    with hook.open(model, 3.0):
        tuned = response_loss(model, examples)
    assert tuned < base - 0.05, (base, tuned)
    assert response_loss(model, examples) == pytest.approx(base)
    assert _identical(before, model)
    assert all(p.requires_grad for p in model.hf_model.parameters())
    assert all(p.grad is None for p in model.hf_model.parameters())


def test_sft_restores_the_exact_weights_and_swaps_its_own_in(lm_ctx):
    model = lm_ctx.model
    before = _snapshot(model)
    fitted = get_method("sft", epochs=4, batch_size=6, max_train_tokens=12, lr=1e-2).fit(lm_ctx, 1)
    assert _identical(before, model)  # training wrote into the weights; the originals are back
    assert fitted.info["steps"] == 4 and fitted.info["n_trainable"] == sum(p.numel() for p in model.hf_model.parameters())
    examples = _positives(lm_ctx, 1)
    base = response_loss(model, examples)
    with fitted.steer_context.open(model, 1.0):
        assert not _identical(before, model)
        tuned = response_loss(model, examples)
        model.generate(["hi"], max_new_tokens=3)
    assert tuned < base
    assert _identical(before, model)
    # a failing block still restores
    with pytest.raises(RuntimeError), fitted.steer_context.open(model, 1.0):
        raise RuntimeError("boom")
    assert _identical(before, model)


def test_sft_subset_and_swapped():
    from interpkit._testing import tiny_model

    ctx = fake_context(n_pos=6, n_neg=6, model=tiny_model("nnsight", arch="llama"), site="layer0.resid_post")
    params = get_method("sft", trainable="layers.1.").trainable(ctx)
    assert params and all("layers.1." in n for n in params)
    with pytest.raises(ValueError, match="matches no parameter"):
        get_method("sft", trainable="nothing-like-this").trainable(ctx)
    w = next(iter(params.values()))
    old = w.detach().clone()
    with swapped({"w": w}, {"w": torch.zeros_like(w)}):
        assert float(w.detach().abs().sum()) == 0.0
    assert torch.equal(w, old)
