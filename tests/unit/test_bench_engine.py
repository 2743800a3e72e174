"""The LM-loss training engine: the cached-prefix path gives the full forward's loss and gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit.bench.methods._engine import (
    FullForward,
    PrefixEngine,
    edit_mask,
    lm_step,
    n_targets,
    response_logprobs,
    training_engine,
)
from interpkit.bench.methods._lmloss import _gate_fn, frozen


@pytest.fixture(scope="module")
def llama():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight", arch="llama")


def _examples(seed: int = 0) -> list[tuple[list[int], int]]:
    g = torch.Generator().manual_seed(seed)
    shapes = [(12, 5), (7, 3), (21, 9), (9, 4), (16, 6), (8, 2)]
    return [(torch.randint(1, 40, (n,), generator=g).tolist(), s) for n, s in shapes]


def _step(engine, model, examples, kind: str, site: str, lam: float | None):
    w = torch.nn.Parameter(torch.linspace(-0.3, 0.4, model.d_model))
    with frozen(model):
        ce, l1 = lm_step(engine, examples, lambda g: {site: _gate_fn(w, edit_mask(g, 1), kind, 3, g.store)},
                         l1_weight=lam)
    return ce, l1, w.grad.clone()


def test_engine_choice(llama):
    from interpkit._testing import tiny_model

    assert isinstance(training_engine(llama, ["layer0.resid_post"]), PrefixEngine)
    assert isinstance(training_engine(llama, ["layer1.resid_pre", "layer0.resid_post"]), PrefixEngine)
    assert isinstance(training_engine(llama, ["layer0.resid_post"], prefer="full"), FullForward)
    assert isinstance(training_engine(llama, ["layer0.mlp_out"]), FullForward)  # inside a block
    assert isinstance(training_engine(tiny_model("nnsight"), ["layer0.resid_post"]), FullForward)  # GPT-2 blocks
    assert isinstance(training_engine(tiny_model("transformer_lens", arch="llama"), ["layer0.resid_post"]),
                      FullForward)
    with pytest.raises(ValueError, match="prefer"):
        training_engine(llama, ["layer0.resid_post"], prefer="fast")


@pytest.mark.parametrize(("kind", "site", "lam"), [("ssv", "layer0.resid_post", None),
                                                    ("reft", "layer0.resid_post", 0.3),
                                                    ("ssv", "layer0.resid_pre", None),
                                                    ("reft", "layer1.resid_pre", 0.5)])
def test_cached_prefix_matches_the_full_forward(llama, kind, site, lam):
    examples = _examples()
    ref = _step(FullForward(llama), llama, examples, kind, site, lam)
    # slack 0 splits the batch into several length buckets: the per-bucket backward must add up exactly.
    engine = PrefixEngine(llama, training_engine(llama, [site]).start, slack=0.0)
    got = _step(engine, llama, examples, kind, site, lam)
    assert got[0] == pytest.approx(ref[0], abs=1e-5)
    assert got[1] == pytest.approx(ref[1], abs=1e-5)
    torch.testing.assert_close(got[2], ref[2], atol=1e-5, rtol=1e-4)
    if kind == "reft":
        assert ref[1] > 0
    again = _step(engine, llama, examples, kind, site, lam)  # second pass reads the cache
    assert engine.stats()["prefix_hits"] == len(examples) and again[0] == pytest.approx(got[0], abs=1e-6)


@pytest.mark.parametrize("kind", ["ssv", "reft"])
def test_per_row_logprobs_add_up_to_the_step_loss(llama, kind):
    examples = _examples(2)
    w = torch.linspace(-0.3, 0.4, llama.d_model)
    edits = lambda g: {"layer0.resid_post": _gate_fn(w, edit_mask(g, 1), kind, 3, g.store)}  # noqa: E731
    with torch.no_grad():
        full = response_logprobs(FullForward(llama), examples, edits)
        engine = PrefixEngine(llama, 0, slack=0.0)  # several buckets: rows come back in the caller's order
        fast = response_logprobs(engine, examples, edits)
        one = torch.stack([response_logprobs(FullForward(llama), [e], edits)[0] for e in examples])
    torch.testing.assert_close(fast, full, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(full, one, atol=1e-4, rtol=1e-5)
    with frozen(llama):
        ce, _ = lm_step(FullForward(llama), examples, lambda g: {"layer0.resid_post": _gate_fn(
            torch.nn.Parameter(w.clone()), edit_mask(g, 1), kind, 3, g.store)})
    assert float(-full.sum()) / n_targets(examples) == pytest.approx(ce, abs=1e-5)


def test_prefix_cache_is_bounded(llama):
    examples = _examples(1)
    engine = PrefixEngine(llama, 0, max_bytes=3 * 21 * llama.d_model * 4)
    engine.prefixes(examples)
    assert engine.stats()["cache_bytes"] <= 3 * 21 * llama.d_model * 4
    assert 0 < len(engine._cache) < len(examples)
    pre = engine.prefixes(examples[-1:])
    assert engine.hits == 1 and pre[0].shape == (len(examples[-1][0]), llama.d_model)


def test_training_through_either_engine_learns_the_same_vector(llama):
    from interpkit.bench.methods import get_method
    from tests.unit.test_bench_methods import fake_context

    ctx = fake_context(n_pos=5, n_neg=5, model=llama, site="layer0.resid_post")
    out = {}
    for engine in ("auto", "full"):
        fitted = get_method("reft-r1", batch_size=4, epochs=2, max_train_tokens=10, topk=2, engine=engine).fit(ctx, 0)
        out[engine] = fitted
    assert out["auto"].info["engine"] == "cached-prefix" and out["full"].info["engine"] == "full-forward"
    np.testing.assert_allclose(out["auto"].info["loss"], out["full"].info["loss"], atol=1e-4)
    np.testing.assert_allclose(out["auto"].vector, out["full"].vector, atol=1e-4)
