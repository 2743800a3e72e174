"""LoReFT on the tiny Llama: registry, positions, training lowers the loss, the steering hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit.bench.methods import METHODS, LoReFT, get_method, loreft_layers
from interpkit.bench.methods._engine import FullForward, n_targets
from interpkit.bench.methods._lmloss import lm_examples
from interpkit.bench.methods._loreft import _masked, reft_positions
from tests.unit.test_bench_methods import fake_context

OPTS = {"epochs": 6, "batch_size": 3, "grad_accum": 1, "lr": 2e-2, "max_train_tokens": 10}


@pytest.fixture(scope="module")
def ctx():
    from interpkit._testing import tiny_model

    return fake_context(n_pos=6, n_neg=6, model=tiny_model("nnsight", arch="llama"), site="layer0.resid_post")


@pytest.fixture(scope="module")
def fitted(ctx):
    return get_method("loreft", **OPTS).fit(ctx, 0)


def test_registry_and_options():
    m = get_method("LoReFT")
    assert isinstance(m, LoReFT) and "loreft" in METHODS and not m.detects and m.steers
    p = m.params()
    assert (p["rank"], p["batch_size"], p["grad_accum"], p["lr"], p["layers"]) == (4, 18, 2, 9e-4, None)
    assert get_method("loreft", layers=[3, 1]).params()["layers"] == [3, 1]
    for bad in ("3", [], [1.5], [-1]):
        with pytest.raises(ValueError, match="layers"):
            get_method("loreft", layers=bad)


def test_layers_and_positions():
    assert loreft_layers(30) == (6, 12, 18, 24) and loreft_layers(26) == (5, 10, 15, 20)
    assert reft_positions(12) == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11]
    assert reft_positions(6) == [0, 1, 2, 3, 4, 5] and reft_positions(1) == []


def _loss(ctx, fitted=None) -> float:
    """Response CE of the concept's training positives, under the trained interventions (or none)."""
    idx, labels = ctx.train_split(0)
    examples = lm_examples(ctx, np.asarray(idx)[np.asarray(labels, bool)], max_train_tokens=OPTS["max_train_tokens"])
    ivs = {} if fitted is None else fitted.steer_context.edits.ivs

    def make(group):
        where = torch.zeros_like(group.mask)
        for i, start in enumerate(group.starts):
            where[i, reft_positions(start)] = 1
        return {f"layer{layer}.resid_post": _masked(iv, where) for layer, iv in ivs.items()}

    with torch.no_grad():
        return sum(float(ce) for _, ce in FullForward(ctx.model).groups(examples, make)) / n_targets(examples)


def test_training_lowers_the_loss_on_its_examples(ctx, fitted):
    info = fitted.info
    assert info["layers"] == [0, 1] and info["rank"] == 4 and info["n_examples"] == 6
    assert info["engine"] == "cached-prefix" and info["cached_site"] == "layer0.resid_post"
    assert info["loss"][-1] < info["loss"][0]
    assert _loss(ctx, fitted) < _loss(ctx) - 0.2
    r = fitted.state[0]["R"]
    np.testing.assert_allclose(r @ r.T, np.eye(4), atol=1e-5)  # R keeps orthonormal rows
    assert fitted.steer_context.kind == "loreft" and not fitted.steer_context.uses_strength
    assert fitted.vector is None and fitted.steer_vector is None
    assert (LoReFT().scores(ctx, fitted, "eval", [0, 1, 2]) == 0).all()
    assert all(p.requires_grad for p in ctx.model.hf_model.parameters())


def test_both_engines_train_the_same_interventions(ctx):
    out = [get_method("loreft", **{**OPTS, "epochs": 2}, engine=e).fit(ctx, 1) for e in ("auto", "full")]
    assert out[1].info["engine"] == "full-forward"
    np.testing.assert_allclose(out[0].info["loss"], out[1].info["loss"], atol=1e-4)
    np.testing.assert_allclose(out[0].state[1]["W"], out[1].state[1]["W"], atol=1e-4)


def test_steering_runs_through_its_context_and_ignores_the_factor(ctx, fitted, tmp_path):
    from interpkit.bench._steer import context_generations, evaluate_steering, steer_generations
    from tests.unit.test_bench_steer import FakeJudge, _ctx

    prompts = ["say a word", "name a dog"]
    gens = context_generations(ctx.model, fitted.steer_context, prompts, [0.5, 4.0], 1.0, max_new_tokens=5,
                               temperature=0.0)
    # greedy, so the factor-free rows repeat (with sampling each row is one more independent sample)
    assert [g[2] for g in gens[:2]] == [g[2] for g in gens[2:]]
    plain = steer_generations(ctx.model, ctx.site, np.zeros(16), prompts, [1.0], 1.0, max_new_tokens=5,
                              temperature=0.0)
    assert [g[2] for g in gens[:2]] != [g[2] for g in plain]
    sctx, source = _ctx(ctx.model, tmp_path)
    out = evaluate_steering(sctx, {"LoReFT": {0: fitted}}, FakeJudge(), max_acts={}, factors=[1.0, 2.0],
                            n_instructions=2, max_new_tokens=4, include_prompt=False, instruction_source=source,
                            progress=False)
    entry = out["methods"]["LoReFT"]["per_concept"]["0"]
    assert "skipped" not in entry and entry["by_factor"]["factor"] == [1.0, 2.0]
