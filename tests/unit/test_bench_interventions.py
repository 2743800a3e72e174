"""Steering modes of AxBench §4.3 (subspace, SAE and min clamping) and a bench steer run with every new baseline."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from interpkit.bench._interventions import (
    SAE_CLAMP_FACTORS,
    STEER_MODES,
    factor_grid,
    mode_context,
    mode_factors,
    sae_clamp,
    subspace_clamp,
)
from interpkit.bench._steer import FACTORS
from interpkit.bench.methods import Fitted
from interpkit.models import apply_edit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SITE = "layer1.resid_post"
TASK = Path(__file__).resolve().parents[1] / "data" / "axbench_quick_l10"


def _sae(d=4, d_sae=3):
    from interpkit.sae import SAEConfig, make_sae

    sae = make_sae(SAEConfig(architecture="relu", d_in=d, d_sae=d_sae), seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(torch.tensor([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
        sae.W_dec.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]))
        sae.b_enc.zero_()
        sae.b_dec.copy_(torch.tensor([0.0, 0.0, 0.1, 0.0]))
    return sae


def test_subspace_clamp_replaces_the_positive_component_after_the_prefix():
    w = torch.tensor([0.6, 0.8, 0.0])
    h = torch.tensor([[[1.0, 2.0, 3.0], [3.0, 4.0, -1.0], [-3.0, -4.0, 2.0]]])
    out = apply_edit(subspace_clamp(SITE, w, 2.0, prefix_length=1, max_positions=64), h)
    assert torch.equal(out[0, 0], h[0, 0])  # the prefix position is untouched
    # h·w = 5 > 0: the component is removed and 2·w put instead
    assert torch.allclose(out[0, 1], h[0, 1] - 5.0 * w + 2.0 * w)
    assert float(out[0, 1] @ w) == pytest.approx(2.0)
    # h·w = -5: ReLU keeps the negative component, so 2·w is only added
    assert torch.allclose(out[0, 2], h[0, 2] + 2.0 * w)
    # while generating (offset > 0) every new position is edited
    step = apply_edit(subspace_clamp(SITE, w, 2.0, prefix_length=1, max_positions=64), h[:, :1], offset=5)
    assert torch.allclose(step[0, 0], h[0, 0] - relu_dot(h[0, 0], w) * w + 2.0 * w)
    no_prefix = apply_edit(subspace_clamp(SITE, w.numpy(), 2.0), h)
    assert torch.allclose(no_prefix[0, 0], h[0, 0] - 2.2 * w + 2.0 * w)


def relu_dot(h, w):
    return max(float(h @ w), 0.0)


def test_sae_clamp_sets_the_latent_and_keeps_the_error():
    sae = _sae()
    h = torch.tensor([[[2.0, 1.0, 0.3, -0.2], [0.5, 3.0, 0.0, 0.0]]])
    z = sae.encode(h)
    alpha = 4.0
    out = apply_edit(sae_clamp(sae, 2, alpha, SITE), h)
    z_new = z.clone()
    z_new[..., 2] = alpha
    expected = sae.decode(z_new) + (h - sae.decode(z))
    assert torch.allclose(out, expected, atol=1e-6)
    # the decoder is linear: only latent 2's write direction moves, by (alpha - z_2)
    assert torch.allclose(out - h, (alpha - z[..., 2:3]) * sae.W_dec[2].detach(), atol=1e-6)
    # min-clamping: max(current, alpha); latent 1 is 1.0 and 3.0 on the two tokens
    mins = apply_edit(sae_clamp(sae, 1, 2.0, SITE, minimum=True), h)
    assert torch.allclose(mins[0, 0], h[0, 0] + (2.0 - 1.0) * sae.W_dec[1].detach(), atol=1e-6)
    assert torch.allclose(mins[0, 1], h[0, 1])  # already above alpha: unchanged
    plain = apply_edit(sae_clamp(sae, 1, 2.0, SITE), h)
    assert torch.allclose(plain[0, 1], h[0, 1] - 1.0 * sae.W_dec[1].detach(), atol=1e-6)


def test_mode_grids_and_contexts():
    assert STEER_MODES == ("addition", "clamping", "sae-clamping", "sae-min-clamping")
    assert mode_factors("addition") == FACTORS == mode_factors("clamping")
    assert mode_factors("sae-clamping") == SAE_CLAMP_FACTORS == mode_factors("sae-min-clamping")
    assert len(SAE_CLAMP_FACTORS) == 14 and SAE_CLAMP_FACTORS[-1] == 100.0
    assert factor_grid("sae-clamping", [1, 2]) == (1.0, 2.0)
    with pytest.raises(ValueError, match="steering mode"):
        mode_factors("adding")
    ctx = SimpleNamespace(site=SITE, prefix_length=1, model=SimpleNamespace(hf_model=None), sae=_sae)
    direction = Fitted(method="diffmean", concept_id=0, vector=np.ones(4), steer_vector=np.ones(4))
    latent = Fitted(method="sae-a", concept_id=0, vector=np.ones(4), steer_vector=np.ones(4),
                    info={"kind": "sae", "latent": 2})
    assert mode_context("addition", ctx, direction) is None
    assert mode_context("clamping", ctx, direction).kind == "clamping"
    assert "needs an SAE latent" in mode_context("sae-clamping", ctx, direction)
    hook = mode_context("sae-min-clamping", ctx, latent)
    assert hook.kind == "sae-min-clamping" and hook.uses_strength


class FakeJudge:
    def rate(self, concept, instruction, generations):
        return np.array([[1.0 + ("e" in g), 1.0, 2.0 if g.strip() else 0.0] for g in generations])

    def describe(self):
        return {"kind": "fake"}


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight", arch="llama")


def test_bench_steer_runs_the_new_baselines_and_modes(tiny, tmp_path):
    from interpkit.bench import bench

    source = tmp_path / "instructions.txt"
    source.write_text("hi there\nname a dog\nsay a word\nwhat is up\n")
    before = {n: p.detach().clone() for n, p in tiny.hf_model.state_dict().items()}
    small = {"epochs": 1, "batch_size": 4, "max_train_tokens": 8, "max_examples": 4}
    kw = {"model": tiny, "layer": 1, "quick": True, "max_length": 40, "judge": FakeJudge(), "factors": [1.0, 2.0],
          "n_instructions": 2, "max_new_tokens": 4, "gen_batch_size": 2, "instructions": source, "cache_dir": None,
          "progress": False, "sae": _sae_for(tiny), "options": {"lora": small, "sft": small}}
    res = bench("steer", TASK, methods=["diffmean", "lora", "sft"], out=tmp_path / "add", **kw)
    steering = res["steering"]
    assert {"DiffMean", "LoRA", "SFT"} <= set(steering["methods"])
    for label in ("LoRA", "SFT"):
        per = steering["methods"][label]["per_concept"]
        assert len(per) == 2
        entry = next(iter(per.values()))
        assert entry["intervention"] == label.lower() and entry["magnitude"] is None
        assert entry["by_factor"]["strength"] is None and entry["factor"] in (1.0, 2.0)
    assert next(iter(steering["methods"]["DiffMean"]["per_concept"].values()))["intervention"] == "addition"
    assert steering["settings"]["mode"] == "addition"
    assert all(torch.equal(before[n], p) for n, p in tiny.hf_model.state_dict().items())
    json.dumps(res)

    res = bench("steer", TASK, methods=["sae-a", "diffmean"], out=tmp_path / "sae", steer_mode="sae-clamping",
                **{**kw, "factors": None})
    st = res["steering"]
    assert st["settings"]["factors"] == list(SAE_CLAMP_FACTORS) and res["settings"]["steer_mode"] == "sae-clamping"
    sae_entry = next(iter(st["methods"]["SAE-A"]["per_concept"].values()))
    assert sae_entry["intervention"] == "sae-clamping" and sae_entry["factor"] in SAE_CLAMP_FACTORS
    assert "needs an SAE latent" in next(iter(st["methods"]["DiffMean"]["per_concept"].values()))["skipped"]

    res = bench("steer", TASK, methods=["diffmean"], out=tmp_path / "clamp", steer_mode="clamping", **kw)
    entry = next(iter(res["steering"]["methods"]["DiffMean"]["per_concept"].values()))
    assert entry["intervention"] == "clamping"
    lines = (tmp_path / "clamp" / "generations.jsonl").read_text().splitlines()
    assert lines and all("generation" in json.loads(line) for line in lines)


def test_context_generations_seed_factor_free_rows_apart(tiny):
    from contextlib import nullcontext

    from interpkit.bench._steer import context_generations
    from interpkit.bench.methods import SteerContext

    calls = []

    def open_(model, strength):
        calls.append(strength)
        return nullcontext()

    kw = {"max_new_tokens": 6, "temperature": 1.0, "batch_size": 1, "seed": 3}
    same = context_generations(tiny, SteerContext(open=open_), ["hi there"], [1.0, 2.0, 4.0], 0.5, **kw)
    assert calls == [0.5, 1.0, 2.0] and len({g for *_, g in same}) == 1  # common random numbers
    free = context_generations(tiny, SteerContext(open=open_, uses_strength=False), ["hi there"], [1.0, 2.0, 4.0],
                               1.0, **kw)
    assert [f for _, f, _ in free] == [1.0, 2.0, 4.0] and len({g for *_, g in free}) > 1  # independent samples
    assert free[0][2] == same[0][2]


def _sae_for(model):
    from interpkit.sae import SAEConfig, make_sae

    return make_sae(SAEConfig(architecture="relu", d_in=model.d_model, d_sae=32, site=SITE), seed=0)


def test_cli_steer_mode_choices_match_the_modes():
    import argparse

    from interpkit.cli import _bench

    p = argparse.ArgumentParser()
    _bench.add_arguments(p)
    args = p.parse_args(["steer", "--task", "t", "--out", "o", "--steer-mode", "sae-min-clamping"])
    assert args.steer_mode == "sae-min-clamping"
    action = next(a for a in p._subparsers._group_actions[0].choices["steer"]._actions if a.dest == "steer_mode")
    assert tuple(action.choices) == STEER_MODES
