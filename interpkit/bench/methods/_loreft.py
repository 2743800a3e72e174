"""LoReFT (AxBench §5.12), the steering-only finetuning baseline: rank-r interventions at a few layers.

Each intervened layer ``l`` has its own ``R_l [r, d]`` (orthonormal rows) and ``W_l [r, d]``,
``b_l [r]``; the block output at the first and last 5 prompt positions becomes
``h + R_lᵀ(W_l h + b_l − R_l h)`` (pyreft's ``LoreftIntervention``), trained with the LM loss on
the positives' responses through the `_engine` (prefix cached below the lowest intervened layer).
At steering time the same edits act on the prompt's first and last 5 positions only (generated
tokens are not intervened) and the factor is ignored (§4.3).

Example:
    >>> loreft_layers(30), loreft_layers(26)
    ((6, 12, 18, 24), (5, 10, 15, 20))
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, SteerContext, register_method
from ._engine import lm_step, n_targets, training_engine
from ._lmloss import frozen, lm_examples, resolve_schedule

__all__ = ["LoReFT", "loreft_layers", "reft_positions", "train_loreft"]

GPU_SCHEDULE = {"epochs": 24, "max_train_tokens": 128}
"""AxBench's LoReFT schedule (sweep/wuzhengx/2b/l20/loreft.yaml: n_epochs 24, output_length 128)."""
CPU_SCHEDULE = {"epochs": 3, "max_train_tokens": 64}
"""The CPU adaptation (measured: benchmarks/lm_train_speed.py; see the class docstring)."""


def loreft_layers(n_layers: int, k: int = 4) -> tuple[int, ...]:
    """``floor(i · n / (k + 1))`` for ``i = 1..k``: Gemma-2-2B's 26 layers give AxBench's 5, 10, 15, 20."""
    return tuple(int(i * n_layers // (k + 1)) for i in range(1, k + 1))


def reft_positions(prompt_len: int, first: int = 5, last: int = 5) -> list[int]:
    """pyreft's ``f5+l5`` locations: the first and last ``min(n // 2, 5)`` positions of an ``n``-token prompt."""
    f, la = min(prompt_len // 2, first), min(prompt_len // 2, last)
    return [*range(f), *range(prompt_len - la, prompt_len)]


class _Intervention:
    """One layer's LoReFT parameters: ``R`` (orthogonal parametrisation), ``W`` and ``b``."""

    def __init__(self, d: int, rank: int, device: Any, generator: Any) -> None:
        import torch
        from torch.nn.utils.parametrizations import orthogonal

        rot = torch.nn.Linear(d, rank, bias=False)
        torch.nn.init.orthogonal_(rot.weight, generator=generator)
        # The orthogonal parametrisation keeps R's rows orthonormal through every AdamW step (pyreft's
        # LowRankRotateLayer under torch.nn.utils.parametrizations.orthogonal).
        self.rotate = orthogonal(rot).to(device)
        self.source = torch.nn.Linear(d, rank).to(device)
        bound = 1 / np.sqrt(d)
        with torch.no_grad():
            self.source.weight.uniform_(-bound, bound, generator=generator)
            self.source.bias.uniform_(-bound, bound, generator=generator)

    def parameters(self) -> list[Any]:
        return [*self.rotate.parameters(), *self.source.parameters()]

    def __call__(self, x: Any) -> Any:
        h = x.float()
        r = self.rotate.weight  # [rank, d], orthonormal rows
        return (h + (self.source(h) - h @ r.T) @ r).to(x.dtype)

    def arrays(self) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            return {"R": self.rotate.weight.detach().float().cpu().numpy(),
                    "W": self.source.weight.detach().float().cpu().numpy(),
                    "b": self.source.bias.detach().float().cpu().numpy()}


def _masked(fn: Any, where: Any) -> Any:
    """``fn`` applied where ``where [g, T]`` is 1, identity elsewhere."""

    def edit(x: Any) -> Any:
        m = where[:, : x.shape[1], None].to(x.dtype)
        return x + m * (fn(x) - x)

    return edit


def train_loreft(ctx: Any, cid: int, params: Mapping[str, Any]) -> tuple[dict[int, _Intervention], dict[str, Any]]:
    """Train one concept's LoReFT interventions; ``({layer: intervention}, info)``.

    Raises:
        ValueError: no training examples, or an intervened layer outside the model.
    """
    import torch

    t0 = time.perf_counter()
    model = ctx.model
    params = resolve_schedule(model, params, gpu=GPU_SCHEDULE, cpu=CPU_SCHEDULE)
    n = int(model.n_layers)
    layers = tuple(sorted({int(x) for x in (params["layers"] or loreft_layers(n))}))
    if not layers or layers[0] < 0 or layers[-1] >= n:
        raise ValueError(f"LoReFT layers {layers} outside the model's 0..{n - 1}")
    idx, labels = ctx.train_split(cid)
    rows = np.asarray(idx, dtype=np.int64)[np.asarray(labels, dtype=bool)]  # positives only (AxBench)
    seed = int(getattr(ctx, "seed", 42)) * 1000 + int(cid)
    rng = np.random.default_rng(seed)
    if params.get("max_examples"):
        rows = rows[np.sort(rng.permutation(len(rows))[: int(params["max_examples"])])]
    examples = lm_examples(ctx, rows, max_train_tokens=int(params["max_train_tokens"]))
    if not examples:
        raise ValueError(f"loreft concept {cid}: no training examples with a response")
    gen = torch.Generator().manual_seed(seed)
    # The orthogonal parametrisation completes R to a square basis with torch's global RNG: seed it too.
    torch.manual_seed(seed)
    rank, device = int(params["rank"]), model.device
    ivs = {layer: _Intervention(int(model.d_model), rank, device, gen) for layer in layers}
    trainable = [p for iv in ivs.values() for p in iv.parameters()]
    opt = torch.optim.AdamW(trainable, lr=float(params["lr"]), weight_decay=float(params["weight_decay"]),
                            betas=(0.9, 0.999), eps=1e-8)
    bs, accum = int(params["batch_size"]), int(params["grad_accum"])
    n_batches = -(-len(examples) // bs)
    total = int(params["epochs"]) * max(1, n_batches // accum)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    sites = [f"layer{layer}.resid_post" for layer in layers]
    engine = training_engine(model, sites, prefer=str(params["engine"]))

    def make_edits(group: Any) -> dict[str, Any]:
        where = torch.zeros_like(group.mask)
        for i, start in enumerate(group.starts):
            where[i, reft_positions(start)] = 1
        return {s: _masked(ivs[layer], where) for s, layer in zip(sites, layers, strict=True)}

    losses, steps, n_tokens = [], 0, 0
    with frozen(model):
        for _ in range(int(params["epochs"])):
            order = rng.permutation(len(examples))
            for b in range(n_batches):
                chunk = [examples[i] for i in order[b * bs:(b + 1) * bs]]
                # AxBench's loop calls backward on each micro-batch's mean loss before any division, so the
                # accumulated gradient is the sum over the grad_accum micro-batches (models/reft.py, train()).
                ce, _ = lm_step(engine, chunk, make_edits)
                losses.append(ce)
                n_tokens += n_targets(chunk)
                if (b + 1) % accum == 0 or b + 1 == n_batches:
                    torch.nn.utils.clip_grad_norm_(trainable, float(params["grad_clip"]))
                    opt.step()
                    sched.step()
                    opt.zero_grad()
                    steps += 1
    info = {"loss": [round(v, 5) for v in losses], "steps": steps, "n_examples": len(examples),
            "n_response_tokens": n_tokens, "layers": list(layers), "rank": rank,
            "epochs": int(params["epochs"]), "max_train_tokens": int(params["max_train_tokens"]),
            "seconds": round(time.perf_counter() - t0, 3), **engine.stats()}
    return ivs, info


class _SteerEdits:
    """Strength -> the LoReFT edits on the prompt's first and last 5 positions (the strength is ignored)."""

    def __init__(self, ivs: Mapping[int, _Intervention], first: int = 5, last: int = 5) -> None:
        self.ivs, self.first, self.last = dict(ivs), int(first), int(last)

    def __call__(self, strength: float = 1.0) -> tuple[Any, ...]:  # noqa: ARG002 - LoReFT has no factor (§4.3)
        import torch

        from interpkit.models import Apply

        def prompt_only(iv: _Intervention) -> Any:
            @torch.no_grad()
            def fn(x: Any) -> Any:
                # Only the prompt pass (batch of one, so no padding) is edited; cached decoding steps see one
                # position and pass through, as pyvene's generate with prompt-only unit locations.
                if x.shape[1] < 2:
                    return x
                where = torch.zeros((x.shape[0], x.shape[1]), dtype=torch.long, device=x.device)
                where[:, reft_positions(x.shape[1], self.first, self.last)] = 1
                return _masked(iv, where)(x)

            return fn

        edits = [Apply(f"layer{layer}.resid_post", prompt_only(iv), name="loreft") for layer, iv in self.ivs.items()]
        # An edit with positions makes generation run one prompt at a time (left padding would move the first
        # five positions); this one changes nothing.
        return (*edits, Apply(edits[0].site, lambda x: x, positions=(0,), name="loreft-unbatched"))


@register_method
class LoReFT(Method):
    """LoReFT (§5.12): rank-4 low-rank representation finetuning at four layers; steers, does not detect.

    Maths: at each intervened layer ``l``, on the first and last 5 prompt positions,
    ``h ← h + R_lᵀ(W_l h + b_l − R_l h)`` with ``R_l [r, d]`` kept orthonormal (pyreft's
    ``LoreftIntervention``); ``min CE`` of the positives' responses (prompt tokens masked) over
    ``R_l, W_l, b_l``, the model frozen. AdamW (betas 0.9/0.999, eps 1e-8), linear decay to 0 with
    no warm-up over ``epochs · ⌊batches / grad_accum⌋`` steps, gradient-norm clip 1, gradients
    summed over ``grad_accum`` micro-batches (AxBench's loop). Steering applies the same edits on
    the prompt's first/last 5 positions (generated tokens untouched) through a `SteerContext`; the
    factor is ignored (§4.3), so each factor row is one more independent sample (its own seed).

    AxBench defaults (axbench/sweep/wuzhengx/2b/l20/loreft.yaml, lines 18-31): rank 4, layers
    [5, 10, 15, 20] of Gemma-2-2B's 26, positions f5+l5, batch 18, grad-accum 2, 24 epochs, lr 9e-4,
    weight decay 0, positives only. Adaptations: ``layers`` None means `loreft_layers`
    (``floor(i·n/5)``, i = 1..4: 6, 12, 18, 24 on SmolLM2's 30; the rule gives AxBench's layers on
    Gemma-2-2B and ignores the benchmark site, as AxBench does for its L10 and L20 runs);
    ``epochs``/``max_train_tokens`` None mean 24/128 on a GPU and 3/64 on a CPU. Generation runs
    one prompt at a time (the first five positions move under left padding).
    """

    name, label = "loreft", "LoReFT"
    order = 12
    detects = False
    needs_model_grad = True
    cacheable = False
    defaults: ClassVar[dict[str, Any]] = {
        "rank": 4, "layers": None, "epochs": None, "batch_size": 18, "grad_accum": 2, "lr": 9e-4,
        "weight_decay": 0.0, "grad_clip": 1.0, "max_train_tokens": None, "max_examples": None,
        "engine": "auto",
    }
    positive = ("rank", "epochs", "batch_size", "grad_accum", "lr", "max_train_tokens", "max_examples", "grad_clip")
    numeric = integers = ("epochs", "max_train_tokens", "max_examples")
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"engine": ("auto", "full")}

    def _check_value(self, key: str, value: Any, where: str) -> Any:
        if key == "layers" and value is not None:
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or not value or not all(
                    isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0 for v in value):
                raise ValueError(f"method {self.name!r}: option 'layers' in {where} must be a list of layer "
                                 f"indices, got {value!r}")
            return [int(v) for v in value]
        return super()._check_value(key, value, where)

    def fit(self, ctx: Any, cid: int) -> Fitted:
        ivs, info = train_loreft(ctx, cid, self.params(ctx))
        edits = _SteerEdits(ivs)
        # the factor is ignored (AxBench §4.3): each factor row is one more independent sample, as for LoRA and SFT
        steer = SteerContext(open=lambda model, strength: model.edits(*edits(strength)), uses_strength=False,
                             kind="loreft", edits=edits)
        return self._fitted(cid, None, steer_vector=None, steer_context=steer, info=info,
                            state={layer: iv.arrays() for layer, iv in ivs.items()})

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval",  # noqa: ARG002 - no detection score
               idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Zeros: LoReFT does not detect (AxBench skips it in detection); steering ignores the magnitude."""
        n = len(ctx.eval_texts if which == "eval" else ctx.train_texts) if idx is None else len(idx)
        return np.zeros(n, dtype=np.float32)
