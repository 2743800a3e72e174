"""RePS (Wu, Yu, Arora, Manning, Potts 2025, arXiv 2505.20809): a rank-1 steering vector trained with a
reference-free, bidirectional preference objective instead of the LM loss.

Each training tuple is ``(x, y, y_c)``: ``x`` a positive row's instruction (chat-templated as in
`_lmloss.lm_examples`), ``y_c`` its concept response (the row's ``output``) and ``y`` the model's
own unsteered answer to ``x`` (greedy, generated once and cached: `own_responses`). With
``lp(·)`` the summed response log-probability, ``|·|`` the number of scored response tokens and
``lp₀`` the unedited model:

* steering ``Φ_steer(h; α) = h + α·w`` (α drawn per example from ``factors``) at every position
  from ``prefix_length`` on, as SSV;
  ``Δ⁺ = β⁺·lp(y_c | Φ_steer)/|y_c| − lp(y | Φ_steer)/|y|``, ``β⁺ = max(lp₀(y) − lp₀(y_c), 1)``;
* nulling ``Φ_null(h) = h − ReLU(h·ŵ)·ŵ`` (ŵ = w/‖w‖: the positive part of the concept component removed);
  ``Δ⁻ = β⁻·lp(y | Φ_null)/|y| − lp(y_c | Φ_null)/|y_c|``, ``β⁻ = max(lp₀(y_c) − lp₀(y), 1)``;
* loss ``−log σ(Δ⁺) − log σ(Δ⁻)``, averaged over the batch; AdamW, linear decay to 0, no warm-up.

Detection scores ``ReLU(h·w)`` (the reference intervention's latent) and steering adds ``α·w`` like
SSV. Log-likelihoods come from `_engine.response_logprobs` (the prefix below the site cached).

Example:
    >>> from interpkit.bench.methods import get_method
    >>> m = get_method("reps")
    >>> m.label, m.detects, m.steers, m.params()["factors"]
    ('RePS', True, True, (2.0, 4.0, 6.0, 8.0, 10.0))
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, register_method
from ._engine import Example, edit_mask, n_targets, response_logprobs, training_engine
from ._lmloss import frozen, grad_forward_available, lm_examples, resolve_schedule

__all__ = ["CPU_SCHEDULE", "GPU_SCHEDULE", "RePS", "clipped_beta", "null_fn", "own_responses", "reps_terms",
           "steer_fn", "train_reps"]

GPU_SCHEDULE = {"epochs": 18, "max_train_tokens": 128}
"""The Gemma-2-2B schedule (18 epochs; AxBench's 128-token responses), used on a GPU when the option is None."""
CPU_SCHEDULE = {"epochs": 1, "max_train_tokens": 64}
"""The CPU adaptation (as SSV's), used on a CPU when the option is None."""

RESPONSES_VERSION = 1
"""Part of the own-response cache key: bump when `own_responses` changes what it generates."""


def clipped_beta(lp_winner: Any, lp_loser: Any) -> Any:
    """RePS's reference-free scale ``max(lp₀(loser) − lp₀(winner), 1)`` (elementwise, summed log-probs).

    Large when the unedited model finds the winning response much less likely than the losing one,
    so the winner's likelihood is up-weighted; never below 1.
    """
    import torch

    return torch.clamp(lp_loser - lp_winner, min=1.0)


def steer_fn(w: Any, where: Any, alpha: Any) -> Any:
    """``x + α_row · w`` on the positions of ``where [g, T]``; ``alpha [g]`` one factor per row."""

    def fn(x: Any) -> Any:
        m = where[:, : x.shape[1]].to(x.dtype)
        return x + (m[..., None] * alpha.to(x.dtype)[:, None, None]) * w.to(x.dtype)

    return fn


def null_fn(w: Any, where: Any) -> Any:
    """``x − ReLU(x·ŵ) ŵ`` on the positions of ``where [g, T]`` (the reference's null-it-out at factor 0)."""
    import torch

    def fn(x: Any) -> Any:
        m = where[:, : x.shape[1]].to(x.dtype)
        u = (w / w.norm().clamp_min(1e-12)).to(x.dtype)
        return x - (m * torch.relu(x @ u))[..., None] * u

    return fn


def reps_terms(engine: Any, site: str, concept: Sequence[Example], own: Sequence[Example], w: Any, alpha: Any,
               beta_pos: Any, beta_neg: Any, prefix: int) -> tuple[Any, Any]:
    """``(Δ⁺ [n], Δ⁻ [n])`` of example pairs ``(concept[i], own[i])`` (same prompt, responses y_c and y).

    Each call to the engine keeps its graph; the caller backpropagates ``−log σ(Δ)``.
    """
    import torch

    n = len(concept)
    rows = [*concept, *own]
    lens = torch.tensor([n_targets([e]) for e in rows], dtype=torch.float32, device=w.device).clamp_min(1)
    alphas = torch.cat([alpha, alpha]).to(w.device)
    # One alpha per example, shared by its y_c and y rows (the paper's Δ⁺ uses one α⁺ for both terms).
    lp = response_logprobs(engine, rows, lambda g: {site: steer_fn(w, edit_mask(g, prefix), alphas[list(g.index)])})
    lp = lp / lens
    plus = beta_pos * lp[:n] - lp[n:]
    lp = response_logprobs(engine, rows, lambda g: {site: null_fn(w, edit_mask(g, prefix))}) / lens
    minus = beta_neg * lp[n:] - lp[:n]
    return plus, minus


def _cache_path(ctx: Any, key: str) -> Any:
    root = getattr(ctx, "cache_dir", None)
    return None if root is None else root / "bench_reps" / f"{key}.json"


def own_responses(ctx: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
                  batch_size: int = 8) -> list[list[int]]:
    """The model's own greedy answer (new token ids, EOS dropped) to each prompt, cached per prompt.

    The key is the model's name and shape, the prompt's token ids, ``max_new_tokens``, greedy decoding
    and `RESPONSES_VERSION`; entries live in ``ctx.memo`` and, with a cache folder, as JSON files under
    ``<cache_dir>/bench_reps/``. Generation runs without edits, one batch of left-padded prompts at a time.
    """
    model = ctx.model
    memo = ctx.memo.setdefault("reps_own", {})
    eos = getattr(model.tokenizer, "eos_token_id", None)
    keys = []
    for ids in prompts:
        spec = {"model": str(getattr(model, "name", type(model).__name__)), "d_model": int(model.d_model),
                "n_layers": int(getattr(model, "n_layers", 0)), "prompt": [int(i) for i in ids],
                "max_new_tokens": int(max_new_tokens), "decoding": "greedy", "version": RESPONSES_VERSION}
        keys.append(hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:32])
    for k in keys:
        path = _cache_path(ctx, k)
        if k not in memo and path is not None and path.is_file():
            memo[k] = [int(i) for i in json.loads(path.read_text())["ids"]]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in memo}.values())
    for b in range(0, len(todo), batch_size):
        chunk = todo[b:b + batch_size]
        new = model.generate_ids([list(prompts[i]) for i in chunk], max_new_tokens=int(max_new_tokens),
                                 do_sample=False, batch_size=batch_size)
        for i, ids in zip(chunk, new, strict=True):
            ids = [int(t) for t in ids]
            if eos is not None and eos in ids:
                ids = ids[: ids.index(eos)]
            memo[keys[i]] = ids
            path = _cache_path(ctx, keys[i])
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps({"ids": ids}))
                os.replace(tmp, path)
    return [list(memo[k]) for k in keys]


def train_reps(ctx: Any, cid: int, params: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Train one concept's RePS vector (see the module docstring).

    Returns:
        ``(w float32 [d], info)``; info has the loss, mean Δ⁺ and Δ⁻ per step, the mean β⁺/β⁻,
        steps, examples, tokens, the engine's statistics and seconds.

    Raises:
        RuntimeError: the model's ``forward`` cannot record gradients.
        ValueError: no positive with a non-empty concept and own response, or a bad factor.
    """
    import torch

    model = ctx.model
    if not grad_forward_available(model):
        raise RuntimeError(f"{type(model).__name__}.forward has no grad= argument; RePS needs it")
    t0 = time.perf_counter()
    params = resolve_schedule(model, params, gpu=GPU_SCHEDULE, cpu=CPU_SCHEDULE)
    factors = [float(f) for f in params["factors"]]
    if not factors or not all(np.isfinite(f) and f > 0 for f in factors):
        raise ValueError(f"reps: factors must be positive numbers, got {params['factors']!r}")
    idx, labels = ctx.train_split(cid)
    rows = np.asarray(idx, dtype=np.int64)[np.asarray(labels, dtype=bool)]
    seed = int(getattr(ctx, "seed", 42)) * 1000 + int(cid)
    rng = np.random.default_rng(seed)
    if params.get("max_examples"):
        rows = rows[np.sort(rng.permutation(len(rows))[: int(params["max_examples"])])]
    max_tok = int(params["max_train_tokens"])
    concept = lm_examples(ctx, rows, max_train_tokens=max_tok)
    own_ids = own_responses(ctx, [ids[:start] for ids, start in concept], max_new_tokens=max_tok)
    pairs = [(c, (c[0][: c[1]] + y[:max_tok], c[1])) for c, y in zip(concept, own_ids, strict=True)
             if n_targets([c]) > 0 and len(y) > 1]
    if not pairs:
        raise ValueError(f"reps concept {cid}: no positive with both a concept response and an own response")
    conc, own = [p[0] for p in pairs], [p[1] for p in pairs]
    engine = training_engine(model, [ctx.site], prefer=str(params.get("engine", "auto")))
    prefix = int(ctx.prefix_length)
    with torch.no_grad():
        # The reference is the unedited model, fixed during training: its log-likelihoods are computed once.
        ref = response_logprobs(engine, [*conc, *own], lambda g: {}).float()
    n = len(pairs)
    beta_pos, beta_neg = clipped_beta(ref[:n], ref[n:]), clipped_beta(ref[n:], ref[:n])
    device, d = model.device, int(model.d_model)
    gen = torch.Generator().manual_seed(seed)
    # torch.nn.Linear(d, 1)'s default init, as the reference intervention's projection row.
    bound = 1.0 / np.sqrt(d)
    w = torch.nn.Parameter((torch.rand(d, generator=gen, dtype=torch.float32) * 2 - 1).mul_(bound).to(device))
    opt = torch.optim.AdamW([w], lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    bs = int(params["batch_size"])
    total = int(params["epochs"]) * -(-n // bs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    losses, plus_log, minus_log, n_tokens = [], [], [], 0
    fac = np.asarray(factors, dtype=np.float32)
    draws = np.zeros(len(fac), dtype=np.int64)
    with frozen(model):
        for _ in range(int(params["epochs"])):
            order = rng.permutation(n)
            for b in range(0, n, bs):
                take = torch.as_tensor(order[b:b + bs])
                pick = rng.integers(0, len(fac), len(take))
                np.add.at(draws, pick, 1)
                alpha = torch.from_numpy(fac[pick])
                bc = [conc[int(i)] for i in take]
                bo = [own[int(i)] for i in take]
                plus, minus = reps_terms(engine, ctx.site, bc, bo, w, alpha, beta_pos[take], beta_neg[take], prefix)
                loss = (-torch.nn.functional.logsigmoid(plus) - torch.nn.functional.logsigmoid(minus)).mean()
                loss.backward()
                if w.grad is None:
                    raise RuntimeError(f"reps concept {cid}: no gradient reached the vector at {ctx.site}")
                opt.step()
                sched.step()
                opt.zero_grad()
                losses.append(float(loss.detach()))
                plus_log.append(float(plus.detach().mean()))
                minus_log.append(float(minus.detach().mean()))
                n_tokens += n_targets(bc) + n_targets(bo)
    vec = w.detach().float().cpu().numpy()
    info: dict[str, Any] = {
        "loss": [round(v, 5) for v in losses], "delta_plus": [round(v, 5) for v in plus_log],
        "delta_minus": [round(v, 5) for v in minus_log], "steps": len(losses), "n_examples": n,
        "n_response_tokens": n_tokens, "beta_plus_mean": float(beta_pos.mean()),
        "beta_minus_mean": float(beta_neg.mean()), "final_norm": float(np.linalg.norm(vec)),
        "epochs": int(params["epochs"]), "max_train_tokens": max_tok, "factors": factors,
        "factor_draws": [int(v) for v in draws],
        "seconds": round(time.perf_counter() - t0, 3), **engine.stats(),
    }
    return vec.astype(np.float32), info


@register_method
class RePS(Method):
    """RePS with the steering-vector parameterisation (rank 1): preference-trained ``w``, psi ``ReLU(h·w)``.

    Maths (paper §3): for positive rows ``(x, y_c)`` and the model's own greedy answer ``y``,
    ``min_w −log σ(Δ⁺) − log σ(Δ⁻)`` with
    ``Δ⁺ = β⁺·lp(y_c|h+αw)/|y_c| − lp(y|h+αw)/|y|`` (α sampled from ``factors``) and
    ``Δ⁻ = β⁻·lp(y|h−ReLU(h·ŵ)ŵ)/|y| − lp(y_c|h−ReLU(h·ŵ)ŵ)/|y_c|``,
    ``β⁺ = max(lp₀(y) − lp₀(y_c), 1)``, ``β⁻ = max(lp₀(y_c) − lp₀(y), 1)`` from the unedited model.
    Detection psi ``ReLU(h·w)``; steering adds ``α·w`` with α = factor × max eval score (the bench's §4.2,
    as for SSV).

    Defaults and their sources: loss ``scaled_simpo`` with β = 1, scaler 1, label smoothing 0, no
    reference-model term (AxBench's RePS trainer, ``preference_loss``); batch 6, no accumulation,
    18 epochs, lr 0.04, weight decay 0, dropout 0 for Gemma-2-2B (lr 0.08 and dropout 0.1 for 9B) —
    the RePS row of a later AxBench reproduction's hyper-parameter table, which matches the
    RePS trainer's defaults (batch 6, 18 epochs); pairs ``orig_add`` + ``orig_sub`` with
    ``null_it_out`` subtraction (the trainer's defaults); training factors {2, 4, 6, 8, 10} (the
    ``steering_factors`` default of the AxBench-derived RePS trainer in EasyEdit; **not checked
    against the paper's appendix**, which could not be read here); intervention at all positions
    without BOS; init ``U(−1/√d, 1/√d)`` (``nn.Linear``); ``y`` greedy (AxBench's
    ``create_dpo_df`` generates the losing output with ``do_sample=False``) and cut to
    ``max_train_tokens``; positives only (the DPO set pairs negatives with themselves).

    Departures: the length normaliser is the number of scored response tokens (the paper's |y|;
    the reference code divides by the whole sequence's attention-mask length); one α per example
    for both of its terms (the reference draws the winner's and loser's factors independently);
    no learned bias on the factor and no dropout. ``epochs``/``max_train_tokens`` None = 18/128 on
    a GPU, 1/64 on a CPU; ``max_examples`` caps the positives; ``engine`` as for SSV.
    """

    name, label = "reps", "RePS"
    order = 14
    needs_model_grad = True
    numeric = integers = ("epochs", "max_train_tokens", "max_examples")
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"engine": ("auto", "full")}
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": None, "batch_size": 6, "lr": 4e-2, "weight_decay": 0.0, "max_train_tokens": None,
        "max_examples": None, "factors": (2.0, 4.0, 6.0, 8.0, 10.0), "engine": "auto",
    }
    positive = ("epochs", "batch_size", "lr", "max_train_tokens", "max_examples")

    def fit(self, ctx: Any, cid: int) -> Fitted:
        """Train the concept's vector with `train_reps`."""
        w, info = train_reps(ctx, cid, self.params(ctx))
        return self._fitted(cid, w, steer_vector=w, score="relu", info=info)
