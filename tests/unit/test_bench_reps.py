"""RePS on the tiny models: the objective against plain autograd, β clipping, the null edit, training, caches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit.bench.methods import METHODS, RePS, get_method
from interpkit.bench.methods._engine import FullForward, PrefixEngine, training_engine
from interpkit.bench.methods._lmloss import frozen
from interpkit.bench.methods._reps import clipped_beta, null_fn, own_responses, reps_terms
from tests.unit.test_bench_methods import fake_context

SITE = "layer0.resid_post"
OPTS = {"batch_size": 6, "epochs": 4, "max_train_tokens": 10, "lr": 5e-2}


@pytest.fixture(scope="module")
def llama():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight", arch="llama")


def _ctx(model, **kw):
    return fake_context(n_pos=6, n_neg=4, model=model, site=SITE, **kw)


def test_registry_and_schedule():
    from types import SimpleNamespace

    from interpkit.bench.methods._lmloss import resolve_schedule
    from interpkit.bench.methods._reps import CPU_SCHEDULE, GPU_SCHEDULE

    m = get_method("RePS")
    assert isinstance(m, RePS) and "reps" in METHODS and m.detects and m.steers and m.needs_model_grad
    p = m.params()
    assert (p["batch_size"], p["lr"], p["weight_decay"], p["factors"]) == (6, 0.04, 0.0, (2.0, 4.0, 6.0, 8.0, 10.0))
    gpu = resolve_schedule(SimpleNamespace(device="cuda:0"), p, gpu=GPU_SCHEDULE, cpu=CPU_SCHEDULE)
    cpu = resolve_schedule(SimpleNamespace(device="cpu"), p, gpu=GPU_SCHEDULE, cpu=CPU_SCHEDULE)
    assert (gpu["epochs"], gpu["max_train_tokens"]) == (18, 128)
    assert (cpu["epochs"], cpu["max_train_tokens"]) == (1, 64)
    with pytest.raises(ValueError, match="engine"):
        get_method("reps", engine="fast")


def test_beta_is_clipped_at_one():
    lp_win = torch.tensor([-5.0, -1.0, -3.0])
    lp_lose = torch.tensor([-2.0, -1.5, -2.5])
    # max(lp(loser) - lp(winner), 1): 3, then -0.5 -> 1, then 0.5 -> 1
    torch.testing.assert_close(clipped_beta(lp_win, lp_lose), torch.tensor([3.0, 1.0, 1.0]))
    assert clipped_beta(torch.tensor([-10.0]), torch.tensor([-1.0])).item() == pytest.approx(9.0)


def test_null_edit_removes_the_positive_component():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 8, generator=g)
    w = torch.randn(8, generator=g) * 3
    u = w / w.norm()
    where = torch.ones(2, 5, dtype=torch.long)
    where[:, 0] = 0
    out = null_fn(w, where)(x)
    proj_in, proj_out = x @ u, out @ u
    on = where.bool()
    torch.testing.assert_close(proj_out[on], torch.clamp(proj_in[on], max=0.0))
    assert (proj_in[on] > 0).any()  # the check is not vacuous
    torch.testing.assert_close(out[~on], x[~on])  # unedited positions
    perp = lambda t: t - (t @ u)[..., None] * u  # noqa: E731
    torch.testing.assert_close(perp(out), perp(x), atol=1e-5, rtol=1e-5)  # the orthogonal part is untouched
    torch.testing.assert_close(null_fn(w, where)(out), out)  # idempotent


def _plain_lp(model, ids, start, fn):
    """Summed log-probability of ids[start:] under model.forward with the edit fn at SITE (one row, no engine)."""
    from interpkit.models import Apply
    from interpkit.models._wrapper import TokenBatch

    t = torch.tensor([ids])
    with model.edits(Apply(SITE, fn, name="test")):
        logits = model.forward(TokenBatch(input_ids=t, attention_mask=torch.ones_like(t)), grad=True)
    logp = torch.log_softmax(logits[0, :-1].float(), -1)
    tgt = torch.tensor(ids[1:])
    picked = logp[torch.arange(len(tgt)), tgt][max(start, 1) - 1:]
    return picked.sum(), len(picked)


def _pairs(seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for p, a, b in ((5, 6, 4), (3, 9, 7), (7, 3, 5)):
        prompt = torch.randint(1, 40, (p,), generator=g).tolist()
        yc = torch.randint(1, 40, (a,), generator=g).tolist()
        y = torch.randint(1, 40, (b,), generator=g).tolist()
        out.append(((prompt + yc, p), (prompt + y, p)))
    return out


@pytest.mark.parametrize("engine_kind", ["prefix", "full"])
def test_deltas_and_gradient_match_plain_autograd(llama, engine_kind):
    pairs = _pairs()
    conc, own = [c for c, _ in pairs], [o for _, o in pairs]
    alpha = torch.tensor([2.0, 6.0, 10.0])
    beta_pos, beta_neg = torch.tensor([1.0, 2.5, 4.0]), torch.tensor([3.0, 1.0, 1.5])
    prefix = 2
    engine = PrefixEngine(llama, training_engine(llama, [SITE]).start, slack=0.0) if engine_kind == "prefix" \
        else FullForward(llama)
    w0 = torch.linspace(-0.4, 0.5, llama.d_model)

    w = torch.nn.Parameter(w0.clone())
    with frozen(llama):
        plus, minus = reps_terms(engine, SITE, conc, own, w, alpha, beta_pos, beta_neg, prefix)
        loss = (-torch.nn.functional.logsigmoid(plus) - torch.nn.functional.logsigmoid(minus)).mean()
        loss.backward()
    got_grad = w.grad.clone()

    # The same formula written out by hand, one example at a time through model.forward.
    ref_w = torch.nn.Parameter(w0.clone())
    ref_plus, ref_minus = [], []
    with frozen(llama):
        for i, ((ids_c, s), (ids_y, _)) in enumerate(pairs):
            def steer(x, a=alpha[i]):
                m = torch.zeros(1, x.shape[1], 1)
                m[:, prefix:] = 1.0
                return x + m * a * ref_w

            def null(x):
                u = ref_w / ref_w.norm()
                m = torch.zeros(1, x.shape[1])
                m[:, prefix:] = 1.0
                return x - (m * torch.relu(x @ u))[..., None] * u

            lc, nc = _plain_lp(llama, ids_c, s, steer)
            ly, ny = _plain_lp(llama, ids_y, s, steer)
            ref_plus.append(beta_pos[i] * lc / nc - ly / ny)
            lc, nc = _plain_lp(llama, ids_c, s, null)
            ly, ny = _plain_lp(llama, ids_y, s, null)
            ref_minus.append(beta_neg[i] * ly / ny - lc / nc)
        rp, rm = torch.stack(ref_plus), torch.stack(ref_minus)
        ref_loss = (-torch.nn.functional.logsigmoid(rp) - torch.nn.functional.logsigmoid(rm)).mean()
        ref_loss.backward()
    torch.testing.assert_close(plus.detach(), rp.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(minus.detach(), rm.detach(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_grad, ref_w.grad, atol=1e-5, rtol=1e-3)
    assert got_grad.abs().max() > 1e-4


def test_training_lowers_the_loss_and_scores_like_ssv(llama):
    ctx = _ctx(llama)
    fitted = get_method("reps", **OPTS).fit(ctx, 0)
    info = fitted.info
    assert info["engine"] == "cached-prefix" and info["n_examples"] == 6 and info["steps"] == 4
    assert np.isfinite(info["loss"]).all() and info["loss"][-1] < info["loss"][0]
    assert info["beta_plus_mean"] >= 1.0 and info["beta_minus_mean"] >= 1.0
    # one factor drawn per example and step, from the whole set
    assert sum(info["factor_draws"]) == 4 * 6 and sum(v > 0 for v in info["factor_draws"]) >= 3
    assert fitted.score == "relu" and fitted.vector.shape == (llama.d_model,)
    np.testing.assert_array_equal(fitted.vector, fitted.steer_vector)
    scores = RePS().scores(ctx, fitted, "eval", ctx.eval_split(0))
    assert scores.shape == (len(ctx.eval_split(0)),) and (scores >= 0).all()
    assert all(p.requires_grad for p in llama.hf_model.parameters())  # restored after training


def test_fit_is_deterministic_for_a_seed(llama):
    a = get_method("reps", **OPTS).fit(_ctx(llama), 1)
    b = get_method("reps", **OPTS).fit(_ctx(llama), 1)
    c = get_method("reps", **OPTS).fit(_ctx(llama, seed=7), 1)
    np.testing.assert_array_equal(a.vector, b.vector)
    assert a.info["loss"] == b.info["loss"]
    assert not np.allclose(a.vector, c.vector)


def test_own_responses_are_cached_on_disk(llama, tmp_path, monkeypatch):
    ctx = _ctx(llama, cache_dir=tmp_path)
    prompts = [[1, 5, 9, 2], [3, 7]]
    first = own_responses(ctx, prompts, max_new_tokens=5)
    assert len(first) == 2 and all(len(r) <= 5 for r in first)
    assert len(list((tmp_path / "bench_reps").glob("*.json"))) == 2
    fresh = _ctx(llama, cache_dir=tmp_path)  # a new run: empty memo, same disk cache

    def boom(*a, **k):
        raise AssertionError("generated again")

    monkeypatch.setattr(llama, "generate_ids", boom)
    assert own_responses(fresh, prompts, max_new_tokens=5) == first
    with pytest.raises(AssertionError, match="generated again"):
        own_responses(fresh, prompts, max_new_tokens=6)  # another setting is another key


def test_fit_cache_key_includes_fit_version(llama, tmp_path, monkeypatch):
    from interpkit.bench._run import _fit_key, fit_method

    ctx = _ctx(llama, cache_dir=tmp_path)
    m = get_method("reps", **{**OPTS, "epochs": 1})
    key = _fit_key(ctx, m, 0)
    first = fit_method(ctx, m, 0)
    again = fit_method(ctx, m, 0)
    assert again.info.get("cached") and not first.info.get("cached")
    np.testing.assert_array_equal(first.vector, again.vector)
    monkeypatch.setattr(RePS, "fit_version", RePS.fit_version + 1)
    assert _fit_key(ctx, m, 0) != key
    assert not fit_method(ctx, m, 0).info.get("cached")
    assert _fit_key(ctx, get_method("reps", **{**OPTS, "epochs": 1, "factors": [3.0]}), 0) != _fit_key(ctx, m, 0)


def test_bad_factors_are_refused(llama):
    with pytest.raises(ValueError, match="factors"):
        get_method("reps", **{**OPTS, "factors": [2.0, -1.0]}).fit(_ctx(llama), 0)
