"""The LM-loss methods, SSV (§5.5) and ReFT-r1 (§5.6), and their training of one vector per concept.

Each training example is the chat-templated instruction (`chat_prompt`) followed by the response,
tokenized as two pieces and concatenated (so the response starts at a known position); responses
are cut to ``max_train_tokens``. The vector acts at ``ctx.site`` on every position from
``ctx.prefix_length`` to the row's end (padding untouched), the model's own parameters frozen, and
the loss is next-token cross-entropy on the response tokens only. Steps run through `_engine`:
the prefix below the site cached once per example and only the blocks above it per step, or
``forward(grad=True)`` with an :class:`~interpkit.models.Apply` edit where that is not possible.

``kind="ssv"``: ``h_t + w``; positives only; ``w`` not normalised.
``kind="reft"``: ``a_t = ReLU(h_t·w)``, ``h_t + ā·w`` with ``ā`` the mean of the row's top-k
latents, plus the ramped L1 of the non-top-k latents; positives and negatives; gradient clipping,
unit norm and parallel-gradient removal before each AdamW step.

Example:
    >>> grad_forward_available()
    True
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, register_method
from ._engine import edit_mask, lm_step, n_targets, training_engine

__all__ = [
    "CPU_SCHEDULE",
    "GPU_SCHEDULE",
    "ReFTr1",
    "SteeringVector",
    "grad_forward_available",
    "lm_examples",
    "resolve_schedule",
    "train_lm_vector",
]


def grad_forward_available(model: Any = None) -> bool:
    """True when ``ModelWrapper.forward`` takes ``grad=`` (needed to train through an edit)."""
    from interpkit.models._wrapper import ModelWrapper

    target = type(model) if model is not None else ModelWrapper
    return "grad" in inspect.signature(target.forward).parameters


def lm_examples(ctx: Any, rows: np.ndarray, *, max_train_tokens: int) -> list[tuple[list[int], int]]:
    """``(token ids, index of the first response token)`` for train rows ``rows``.

    The prompt is `chat_prompt` of the row's instruction (BOS prepended when the tokenizer has one
    the template does not write); the response is tokenized alone and cut to ``max_train_tokens``.
    A row whose prompt exceeds ``ctx.max_length`` keeps its last tokens.
    """
    from interpkit.bench._prompts import chat_prompt, needs_bos

    tok = ctx.model.tokenizer
    frame = ctx.task.train
    inputs, outputs = frame["input"].astype(str).to_numpy(), frame["output"].astype(str).to_numpy()
    limit = getattr(ctx, "max_length", None)
    out = []
    for r in rows:
        prompt = chat_prompt(tok, str(inputs[r]))
        ids = [int(i) for i in tok(prompt, add_special_tokens=False)["input_ids"]]
        if needs_bos(tok, prompt):
            ids = [int(tok.bos_token_id), *ids]
        # Prompt and response are tokenized separately so the response's first position is known exactly
        # (tokenizing the joined string could merge tokens across the boundary).
        resp = [int(i) for i in tok(str(outputs[r]), add_special_tokens=False)["input_ids"]][:max_train_tokens]
        # Overlong rows lose the start of the prompt, never the response the loss is computed on.
        if limit and len(ids) + len(resp) > limit:
            ids = ids[max(0, len(ids) + len(resp) - int(limit)):]
        if resp:
            out.append((ids + resp, len(ids)))
    return out


def _modules(model: Any) -> list[Any]:
    import torch

    found, seen = [], set()
    for obj in (getattr(model, "hf_model", None), getattr(model.impl, "model", None), getattr(model.impl, "lm", None)):
        if isinstance(obj, torch.nn.Module) and id(obj) not in seen:
            seen.add(id(obj))
            found.append(obj)
    return found


@contextmanager
def frozen(model: Any) -> Iterator[None]:
    """Turn off ``requires_grad`` on every parameter of ``model`` for the block, then restore it."""
    params = {id(p): p for m in _modules(model) for p in m.parameters()}
    before = {k: p.requires_grad for k, p in params.items()}
    try:
        for p in params.values():
            p.requires_grad_(False)
        yield
    finally:
        for k, p in params.items():
            p.requires_grad_(before[k])


def _gate_fn(w: Any, where: Any, kind: str, topk: int, store: dict[str, Any]) -> Any:
    """The edit: ``x + w`` (SSV) or ``x + ā·w`` with the L1 of non-top-k latents recorded (ReFT)."""
    import torch

    def fn(x: Any) -> Any:
        # where [batch, seq]: 1 on the edited positions (non-prefix, non-padding); x is [batch, seq, d].
        m = where[:, : x.shape[1]].to(x.dtype)
        if kind == "ssv":
            return x + m[..., None] * w.to(x.dtype)
        # ReFT-r1 latents a_t = ReLU(h_t·w), in float32 even when the model runs in bf16.
        lat = torch.relu(x.float() @ w) * m.float()
        valid = m.bool()
        n_valid = valid.sum(-1).clamp_min(1)
        k = min(int(topk), lat.shape[1])
        # Top-k over the row's edited positions only: a_bar = (1/k) * ||TopK(a)||_1 as in the paper; a row with
        # fewer than k edited positions turns the -inf picks into 0 and averages over the n_valid it has.
        top, top_idx = lat.masked_fill(~valid, float("-inf")).topk(k, dim=-1)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        abar = top.sum(-1) / n_valid.clamp_max(k)
        # Sparsity penalty on the latents that did NOT make the top-k, per valid position, averaged over the
        # batch (AxBench): it keeps the latent near zero away from the few tokens that carry the concept.
        rest = lat.scatter(-1, top_idx, 0.0)
        store["l1"] = (rest.sum(-1) / n_valid).mean()
        # The same scalar a_bar * w is added at every edited position; gradients reach w through both a_bar
        # (the detector) and the added direction (the steering effect).
        return x + (abar[:, None, None] * m[..., None].float() * w).to(x.dtype)

    return fn


GPU_SCHEDULE = {"epochs": 3, "max_train_tokens": 128}
"""AxBench's schedule (Appendix A), used when the model is on a GPU and the option is None."""
CPU_SCHEDULE = {"epochs": 1, "max_train_tokens": 64}
"""The CPU adaptation, used when the model is on a CPU and the option is None."""


def resolve_schedule(model: Any, params: Mapping[str, Any], *, gpu: Mapping[str, Any] | None = None,
                     cpu: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``params`` with the schedule's keys (``epochs``, ``max_train_tokens``, ...) filled from the GPU or CPU
    schedule where they are None.

    ``gpu``/``cpu`` replace `GPU_SCHEDULE` / `CPU_SCHEDULE` (LoReFT, LoRA and SFT have their own).
    """
    on_gpu = str(getattr(model, "device", "cpu")).startswith("cuda")
    fill = (gpu or GPU_SCHEDULE) if on_gpu else (cpu or CPU_SCHEDULE)
    return {**dict(params), **{k: v for k, v in fill.items() if params.get(k) is None}}


def train_lm_vector(ctx: Any, cid: int, *, kind: str, params: Mapping[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    """Train one concept's SSV (``kind="ssv"``) or ReFT-r1 (``kind="reft"``) vector.

    Args:
        ctx: the benchmark context (model, site, prefix_length, task, seed).
        cid: the concept.
        kind: ``"ssv"`` or ``"reft"``.
        params: the method's hyper-parameters (epochs, batch_size, lr, weight_decay,
            max_train_tokens, max_examples, init; ReFT adds topk, l1, grad_clip).

    Returns:
        ``(w float32 [d], info)``; info has the loss per step, the L1 term (ReFT), steps, examples,
        tokens and seconds. ReFT's ``w`` is unit-normed.

    Raises:
        RuntimeError: the model's ``forward`` cannot record gradients.
        ValueError: no training examples.
    """
    import torch

    if kind not in ("ssv", "reft"):
        raise ValueError(f"kind must be 'ssv' or 'reft', got {kind!r}")
    model = ctx.model
    if not grad_forward_available(model):
        raise RuntimeError(f"{type(model).__name__}.forward has no grad= argument; SSV and ReFT-r1 need it")
    t0 = time.perf_counter()
    params = resolve_schedule(model, params)
    idx, labels = ctx.train_split(cid)
    idx, labels = np.asarray(idx, dtype=np.int64), np.asarray(labels, dtype=bool)
    # SSV learns from the positives only (a plain steering vector); ReFT-r1 also sees the negatives, where any
    # activation of w that adds the concept raises their loss, a weak label for detection (AxBench §5.6).
    rows = idx[labels] if kind == "ssv" else idx
    seed = int(getattr(ctx, "seed", 42)) * 1000 + int(cid)
    rng = np.random.default_rng(seed)
    if params.get("max_examples"):
        keep = np.sort(rng.permutation(len(rows))[: int(params["max_examples"])])
        rows = rows[keep]
    examples = lm_examples(ctx, rows, max_train_tokens=int(params["max_train_tokens"]))
    if not examples:
        raise ValueError(f"{kind} concept {cid}: no training examples with a response")
    device = model.device
    d = int(model.d_model)
    torch.manual_seed(seed)
    w = torch.nn.Parameter(torch.full((d,), float(params["init"]), dtype=torch.float32, device=device))
    opt = torch.optim.AdamW([w], lr=float(params["lr"]), weight_decay=float(params["weight_decay"]))
    bs = int(params["batch_size"])
    n_batches = -(-len(examples) // bs)
    total = int(params["epochs"]) * n_batches
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    prefix = int(ctx.prefix_length)
    topk = int(params.get("topk", 8))
    engine = training_engine(model, [ctx.site], prefer=str(params.get("engine", "auto")))
    losses, l1s, step, n_tokens = [], [], 0, 0
    with frozen(model):
        for _ in range(int(params["epochs"])):
            order = rng.permutation(len(examples))
            for b in range(0, len(examples), bs):
                chunk = [examples[i] for i in order[b:b + bs]]
                # The L1 weight ramps linearly from 0 (AxBench): the vector first learns to steer, and the
                # sparsity pressure grows later in training.
                lam = step / total * float(params.get("l1", 0.0))
                ce, l1 = lm_step(engine, chunk, lambda g: {ctx.site: _gate_fn(w, edit_mask(g, prefix), kind, topk,
                                                                               g.store)},
                                 l1_weight=lam if kind == "reft" else None)
                if kind == "reft":
                    l1s.append(l1)
                if w.grad is None:
                    raise RuntimeError(f"{kind} concept {cid}: no gradient reached the vector at {ctx.site}")
                if kind == "reft":
                    # AxBench's order: clip, put w on the unit sphere, remove the radial gradient g - (g·w) w,
                    # then AdamW. Only w's direction is learnt; the gate a_bar carries the magnitude.
                    torch.nn.utils.clip_grad_norm_([w], float(params["grad_clip"]))
                    with torch.no_grad():
                        w.div_(w.norm().clamp_min(1e-12))
                        w.grad.sub_((w.grad @ w) * w)
                opt.step()
                sched.step()
                opt.zero_grad()
                losses.append(ce)
                n_tokens += n_targets(chunk)
                step += 1
    vec = w.detach().float().cpu().numpy()
    if kind == "reft":
        vec = vec / max(float(np.linalg.norm(vec)), 1e-12)
    info: dict[str, Any] = {
        "loss": [round(v, 5) for v in losses], "steps": step, "n_examples": len(examples),
        "n_response_tokens": n_tokens, "seconds": round(time.perf_counter() - t0, 3),
        "final_norm": float(np.linalg.norm(w.detach().float().cpu().numpy())),
        "epochs": int(params["epochs"]), "max_train_tokens": int(params["max_train_tokens"]),
        **engine.stats(),
    }
    if kind == "reft":
        info["l1"] = [round(v, 5) for v in l1s]
    return vec.astype(np.float32), info


# ---- the LM-loss methods --------------------------------------------------------------------------


class _LMLossMethod(Method):
    """A vector trained through the model with `train_lm_vector` (``kind``); psi ``ReLU(h·w)``, steering ``α w``."""

    kind: ClassVar[str]
    needs_model_grad = True
    numeric = integers = ("epochs", "max_train_tokens", "max_examples")
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"engine": ("auto", "full")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        p = self.params(ctx)
        w, info = train_lm_vector(ctx, cid, kind=self.kind, params=p)
        return self._fitted(cid, w, steer_vector=w, score="relu", info=info)


@register_method
class SteeringVector(_LMLossMethod):
    """SSV (§5.5): a vector added at every non-prefix position, trained with the LM loss on positives.

    Maths: ``min_w CE(LM(h + w))`` on the positives' responses; score ``ReLU(h·w)``.

    ``w`` starts at 0.01 in every coordinate and is not normalised; the model reads
    ``h_t + w`` at ``ctx.site`` for positions ``prefix_length`` to the end, and the loss is
    next-token cross-entropy on the response tokens only (the chat-templated instruction is
    context). Detection psi ``ReLU(h·w)``; steering adds ``α w``. AxBench: batch 6, 3 epochs,
    lr 1e-2, weight decay 0, positives only, responses of 128 tokens. Adaptation: ``epochs`` and
    ``max_train_tokens`` left at None mean AxBench's 3 and 128 when the model is on a GPU, 1 and 64
    on a CPU (one step of SmolLM2-135M at layer 12 over 6 examples with 128-token responses: 11.3 s
    on one CPU thread through the cached-prefix engine, 15.9 s through the full forward; AxBench's
    schedule would be ~15 min per concept); the values used are in ``info``. ``engine`` ``"full"``
    forces the full-forward path (`_engine.training_engine`). ``max_examples`` caps the training examples (None: all).
    """

    name, label = "ssv", "SSV"
    order = 5
    kind = "ssv"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": None, "batch_size": 6, "lr": 1e-2, "weight_decay": 0.0, "max_train_tokens": None,
        "max_examples": None, "init": 0.01, "engine": "auto",
    }
    positive = ("epochs", "batch_size", "lr", "max_train_tokens", "max_examples")


@register_method
class ReFTr1(_LMLossMethod):
    """ReFT-r1 (§5.6): a unit vector with a top-k gated addition and a ramped L1 on the other latents.

    Latents ``a_t = ReLU(h_t·w)`` at every non-prefix position; training adds ``ā·w`` where ``ā``
    is the mean of the sequence's top-``k`` latents; loss = response-only next-token cross-entropy
    over positives and negatives + ``λ_t · L1`` (mean over examples of the summed non-top-k latents
    per valid position, ``λ_t`` ramping linearly from 0 to ``l1``); each step clips the gradient
    norm at 1, unit-normalises ``w``, removes the parallel gradient, then AdamW (linear LR decay to
    0). ``w`` is unit-normed at the end. Detection psi ``ReLU(h·w)``; steering adds ``α w`` (no
    gate). AxBench 2B: batch 6, 3 epochs, lr 1e-2, wd 0, k 8, L1 5e-3, 128-token responses.
    Adaptation as for `SteeringVector`: ``epochs``/``max_train_tokens`` None = 3/128 on a GPU, 1/64
    on a CPU; ``max_examples`` caps the examples (positives and negatives drawn together).
    """

    name, label = "reft-r1", "ReFT-r1"
    order = 6
    kind = "reft"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": None, "batch_size": 6, "lr": 1e-2, "weight_decay": 0.0, "topk": 8, "l1": 5e-3,
        "grad_clip": 1.0, "max_train_tokens": None, "max_examples": None, "init": 0.01, "engine": "auto",
    }
    positive = ("epochs", "batch_size", "lr", "topk", "max_train_tokens", "max_examples", "grad_clip")
