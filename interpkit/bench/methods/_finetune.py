"""Steering by fine-tuning (AxBench §5.12): LoRA on the attention output projections, and SFT.

Both learn from the concept's positives with the LM loss of `_lmloss` (chat-templated instruction
as context, next-token cross-entropy on the response tokens only, `lm_examples`), and both steer by
generating with the adapted weights: their `Fitted` has no direction, only a
`~interpkit.bench.methods.SteerContext` that ignores the factor (AxBench §4.3 scores one sample
per factor row). Neither leaves the model changed: LoRA's adapters live on forward hooks that are
removed on exit (`LoRAAdapters.attached`), SFT's tuned weights are copied in and the originals
copied back (`swapped`), byte for byte.

Example:
    >>> proportional_layers(30), proportional_layers(26), proportional_layers(2)
    ([6, 12, 17, 23], [5, 10, 15, 20], [0, 1])
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, SteerContext, register_method
from ._engine import make_group, response_ce_sum
from ._lmloss import frozen, grad_forward_available, lm_examples, resolve_schedule

__all__ = [
    "ATTN_OUT",
    "SFT",
    "LoRA",
    "LoRAAdapters",
    "proportional_layers",
    "response_loss",
    "swapped",
]

AXBENCH_LORA_LAYERS = (5, 10, 15, 20)
"""AxBench's LoRA layers for Gemma-2-2B (``sweep/wuzhengx/2b/l10/lora.yaml``, ``lora_layers``)."""
AXBENCH_N_LAYERS = 26
"""Gemma-2-2B's block count, the reference of `proportional_layers`."""
ATTN_OUT = ("self_attn.o_proj", "attn.o_proj", "attn.c_proj", "attention.dense", "self_attn.out_proj")
"""Names (relative to a block) of the attention output projection: Llama/Gemma/SmolLM2, GPT-2, NeoX, OPT."""


def proportional_layers(n_layers: int, reference: Sequence[int] = AXBENCH_LORA_LAYERS,
                        reference_n: int = AXBENCH_N_LAYERS) -> list[int]:
    """AxBench's layers mapped to a model with ``n_layers`` blocks at the same relative depth.

    ``floor(l · n_layers / reference_n + 1/2)`` for each reference layer ``l``, clipped to the
    model's blocks, duplicates dropped (SmolLM2-135M's 30 blocks: [6, 12, 17, 23]).
    """
    return sorted({min(max(int(math.floor(layer * n_layers / reference_n + 0.5)), 0), n_layers - 1)
                   for layer in reference})


def _attn_out_modules(hf_model: Any, layers: Sequence[int]) -> list[tuple[str, Any]]:
    """``(qualified name, module)`` of the attention output projection of each block in ``layers``."""
    from interpkit.models._hf import find_blocks

    path, blocks = find_blocks(hf_model)
    found = []
    for layer in layers:
        if not 0 <= int(layer) < len(blocks):
            raise ValueError(f"LoRA layer {layer} out of range for a model with {len(blocks)} blocks")
        block = blocks[int(layer)]
        named = dict(block.named_modules())
        name = next((n for n in ATTN_OUT if n in named), None)
        if name is None:
            raise ValueError(f"block {layer} of {type(hf_model).__name__} has no attention output projection "
                             f"(looked for {', '.join(ATTN_OUT)})")
        found.append((f"{path}.{int(layer)}.{name}", named[name]))
    return found


def _linear_dims(module: Any) -> tuple[int, int]:
    """``(d_in, d_out)`` of an ``nn.Linear`` or a GPT-2 ``Conv1D`` (weight stored ``[d_in, d_out]``)."""
    if hasattr(module, "in_features"):
        return int(module.in_features), int(module.out_features)
    if type(module).__name__ == "Conv1D":
        return int(module.weight.shape[0]), int(module.weight.shape[1])
    raise TypeError(f"LoRA wraps linear maps; {type(module).__name__} is not one")


def _lora_module(d_in: int, d_out: int, rank: int, alpha: float, dropout: float) -> Any:
    import torch
    from torch import nn

    class LoRAAdapter(nn.Module):
        """``Δ(x) = (α/√r) · B A dropout(x)``, added to a frozen linear map's output (rsLoRA scaling).

        ``A [r, d_in]`` starts Kaiming-uniform and ``B [d_out, r]`` at zero (peft's init), so an
        untrained adapter changes nothing.
        """

        def __init__(self) -> None:
            super().__init__()
            self.A = nn.Parameter(torch.empty(rank, d_in))
            self.B = nn.Parameter(torch.zeros(d_out, rank))
            nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
            self.drop = nn.Dropout(dropout)
            # rsLoRA (Kalajdzievski 2023): alpha / sqrt(r) keeps the update's scale stable across ranks.
            self.scale = float(alpha) / math.sqrt(rank)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.scale * (self.drop(x.float()) @ self.A.T) @ self.B.T

        def hook(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor:
            del module
            return output + self(inputs[0]).to(output.dtype)

    return LoRAAdapter()


class LoRAAdapters:
    """Rank-``r`` adapters on named linear maps of a model, attached only inside `attached`.

    Args:
        modules: ``(name, module)`` pairs (the attention output projections of `_attn_out_modules`).
        rank, alpha, dropout: the adapter's ``r``, ``α`` and input dropout.
    """

    def __init__(self, modules: Sequence[tuple[str, Any]], *, rank: int, alpha: float, dropout: float) -> None:
        self.names = [n for n, _ in modules]
        self.targets = [m for _, m in modules]
        self.adapters = [_lora_module(*_linear_dims(m), rank, alpha, dropout) for m in self.targets]
        for adapter, target in zip(self.adapters, self.targets, strict=True):
            weight = target.weight
            adapter.to(device=weight.device)

    def parameters(self) -> list[Any]:
        """Every adapter's ``A`` and ``B``."""
        return [p for a in self.adapters for p in a.parameters()]

    def train(self, mode: bool = True) -> LoRAAdapters:
        """Dropout on (training) or off (steering)."""
        for a in self.adapters:
            a.train(mode)
        return self

    @contextmanager
    def attached(self) -> Iterator[LoRAAdapters]:
        """Add each adapter's output to its module's for the block (forward hooks, removed on exit).

        The wrapped modules and their weights are never modified; nested or repeated use is safe.
        """
        handles = []
        try:
            for adapter, target in zip(self.adapters, self.targets, strict=True):
                handles.append(target.register_forward_hook(adapter.hook))
            yield self
        finally:
            for h in handles:
                h.remove()

    def state(self) -> dict[str, np.ndarray]:
        """``{"<module>.A" | "<module>.B": float32 array}`` (for saving or inspection)."""
        out = {}
        for name, a in zip(self.names, self.adapters, strict=True):
            out[f"{name}.A"] = a.A.detach().float().cpu().numpy()
            out[f"{name}.B"] = a.B.detach().float().cpu().numpy()
        return out


@contextmanager
def swapped(params: Mapping[str, Any], values: Mapping[str, Any]) -> Iterator[None]:
    """Copy ``values[name]`` into each parameter for the block, then copy the originals back exactly."""
    import torch

    saved = {n: p.detach().clone() for n, p in params.items()}
    try:
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(values[n])
        yield
    finally:
        # no_grad only around the copies: the block itself may train (SFT's fit).
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(saved[n])


def response_loss(model: Any, examples: Sequence[tuple[list[int], int]], *, batch_size: int = 8) -> float:
    """Mean next-token cross-entropy on the response tokens of ``examples`` under the active state."""
    import torch

    from interpkit.models._wrapper import TokenBatch

    total, n = 0.0, 0
    with torch.no_grad():
        for b in range(0, len(examples), batch_size):
            g = make_group(list(examples[b:b + batch_size]), model.pad_token_id, model.device)
            logits = model.forward(TokenBatch(input_ids=g.ids, attention_mask=g.mask))
            total += float(response_ce_sum(logits[:, :-1], g.ids, g.resp))
            n += int(g.resp[:, 1:].sum())
    return total / max(n, 1)


def _positive_examples(ctx: Any, cid: int, p: Mapping[str, Any], seed: int) -> list[tuple[list[int], int]]:
    idx, labels = ctx.train_split(cid)
    rows = np.asarray(idx, dtype=np.int64)[np.asarray(labels, dtype=bool)]
    if p.get("max_examples"):
        rng = np.random.default_rng(seed)
        rows = rows[np.sort(rng.permutation(len(rows))[: int(p["max_examples"])])]
    examples = lm_examples(ctx, rows, max_train_tokens=int(p["max_train_tokens"]))
    if not examples:
        raise ValueError(f"concept {cid}: no positive training examples with a response")
    return examples


def train_weights(ctx: Any, cid: int, trainable: Sequence[Any], p: Mapping[str, Any], *,
                  attach: AbstractContextManager[Any] | None = None, label: str) -> dict[str, Any]:
    """AdamW on ``trainable`` with the response-only LM loss on the concept's positives.

    Linear LR decay to 0 without warm-up over the optimiser steps, ``grad_accum`` micro-batches per
    step (the loss divided by it), gradient-norm clipping at ``grad_clip`` when set, data shuffled
    with a seeded generator (AxBench's loop in ``models/lora.py`` and ``models/sft.py``). The
    model's other parameters are frozen for the duration. Returns the info dict.
    """
    import torch

    from interpkit.models._wrapper import TokenBatch

    model = ctx.model
    if not grad_forward_available(model):
        raise RuntimeError(f"{type(model).__name__}.forward has no grad= argument; {label} needs it")
    t0 = time.perf_counter()
    seed = int(getattr(ctx, "seed", 42)) * 1000 + int(cid)
    examples = _positive_examples(ctx, cid, p, seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.AdamW(list(trainable), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
    bs, accum = int(p["batch_size"]), int(p["grad_accum"])
    n_batches = -(-len(examples) // bs)
    # AxBench: n_epochs * max(1, len(dataloader) // accumulation) optimiser steps, a last partial group stepping too.
    per_epoch = -(-n_batches // accum)
    total = int(p["epochs"]) * per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
    losses, step, n_tokens, micro = [], 0, 0, []
    with frozen(model), attach if attach is not None else nullcontext():
        for t in trainable:
            t.requires_grad_(True)
        for _ in range(int(p["epochs"])):
            order = rng.permutation(len(examples))
            for k, b in enumerate(range(0, len(examples), bs)):
                g = make_group([examples[i] for i in order[b:b + bs]], model.pad_token_id, model.device)
                logits = model.forward(TokenBatch(input_ids=g.ids, attention_mask=g.mask), grad=True)
                n_target = int(g.resp[:, 1:].sum())
                ce = response_ce_sum(logits[:, :-1], g.ids, g.resp) / n_target
                (ce / accum).backward()
                micro.append(float(ce.detach()))
                n_tokens += n_target
                if (k + 1) % accum == 0 or k + 1 == n_batches:
                    if p.get("grad_clip"):
                        torch.nn.utils.clip_grad_norm_(list(trainable), float(p["grad_clip"]))
                    opt.step()
                    sched.step()
                    opt.zero_grad(set_to_none=True)
                    losses.append(float(np.mean(micro)))
                    micro, step = [], step + 1
    return {"loss": [round(v, 5) for v in losses], "steps": step, "n_examples": len(examples),
            "n_response_tokens": n_tokens, "seconds": round(time.perf_counter() - t0, 3),
            **{k: p[k] for k in ("epochs", "batch_size", "grad_accum", "max_train_tokens", "lr")}}


def _hf(ctx: Any, label: str) -> Any:
    hf = getattr(ctx.model, "hf_model", None)
    if hf is None:
        raise ValueError(f"{label} adapts the weights of an HF module; {getattr(ctx.model, 'name', ctx.model)} has none")
    return hf


class _FinetuneMethod(Method):
    """A steer-only method whose `Fitted` carries a factor-free `SteerContext` and is never cached."""

    detects = False
    needs_model_grad = True
    cacheable = False
    numeric = integers = ("epochs", "batch_size", "grad_accum", "max_train_tokens", "max_examples")
    positive = ("epochs", "batch_size", "grad_accum", "max_train_tokens", "max_examples", "lr")


@register_method
class LoRA(_FinetuneMethod):
    """LoRA (§5.12): rank-4 adapters on the attention output projection of 4 blocks, LM loss on positives.

    Maths: ``o_proj(x) + (α/√r) · B A dropout(x)`` at each adapted block (``A [r, d]``, ``B [d, r]``,
    B = 0 at the start), ``min_{A,B} CE`` of the response tokens of the concept's positives;
    steering = generating with the adapters attached (the factor is ignored).

    AxBench (``axbench/models/lora.py`` lines 27-33, ``sweep/wuzhengx/2b/l10/lora.yaml``): peft
    ``LoraConfig(r=4, lora_alpha=32, use_rslora=True, lora_dropout=0.05,
    target_modules=["o_proj"], layers_to_transform=[5, 10, 15, 20])``, AdamW lr 9e-4, weight decay
    0, batch 18, gradient accumulation 2, 24 epochs, linear decay, no clipping, positives only
    (AXBENCH.md §5.12). Layers: ``layers=None`` maps Gemma-2-2B's [5, 10, 15, 20] of 26 blocks to
    the same relative depths (`proportional_layers`: SmolLM2-135M's 30 blocks give [6, 12, 17, 23]).
    The adapters are plain torch (no peft) on forward hooks, so the model is never modified.
    Adaptation for a 135M model on 2 CPU cores: ``epochs``, ``batch_size``, ``grad_accum`` and
    ``max_train_tokens`` left at None mean AxBench's 24 / 18 / 2 / 128 on a GPU and 1 / 6 / 1 / 64
    on a CPU (a 6-example step is ~15 s there; 72 positives give 12 steps); the values used are in
    ``info``. The perplexity of §4.5 is taken under the unadapted model (AxBench's includes the
    adapter, a quirk).
    """

    name, label = "lora", "LoRA"
    order = 15
    defaults: ClassVar[dict[str, Any]] = {
        "rank": 4, "alpha": 32.0, "dropout": 0.05, "layers": None, "lr": 9e-4, "weight_decay": 0.0,
        "epochs": None, "batch_size": None, "grad_accum": None, "max_train_tokens": None, "max_examples": None,
        "grad_clip": 0.0,
    }
    positive = (*_FinetuneMethod.positive, "rank", "alpha")
    integers = (*_FinetuneMethod.integers, "rank")
    GPU: ClassVar[dict[str, int]] = {"epochs": 24, "batch_size": 18, "grad_accum": 2, "max_train_tokens": 128}
    CPU: ClassVar[dict[str, int]] = {"epochs": 1, "batch_size": 6, "grad_accum": 1, "max_train_tokens": 64}

    def adapters(self, ctx: Any, cid: int) -> LoRAAdapters:
        """Fresh (untrained) adapters for ``ctx.model`` at the method's layers, seeded per concept."""
        import torch

        p = self.params(ctx)
        hf = _hf(ctx, self.label)
        layers = proportional_layers(ctx.model.n_layers) if p["layers"] is None else [int(x) for x in p["layers"]]
        torch.manual_seed(int(getattr(ctx, "seed", 42)) * 1000 + int(cid))
        return LoRAAdapters(_attn_out_modules(hf, layers), rank=int(p["rank"]), alpha=float(p["alpha"]),
                            dropout=float(p["dropout"]))

    def fit(self, ctx: Any, cid: int) -> Fitted:
        p = resolve_schedule(ctx.model, self.params(ctx), gpu=self.GPU, cpu=self.CPU)
        lora = self.adapters(ctx, cid)
        lora.train(True)
        info = train_weights(ctx, cid, lora.parameters(), p, attach=lora.attached(), label=self.label)
        lora.train(False)
        info.update(modules=lora.names, rank=int(p["rank"]), alpha=float(p["alpha"]), dropout=float(p["dropout"]),
                    scale=float(p["alpha"]) / math.sqrt(int(p["rank"])))

        def open_(model: Any, strength: float) -> AbstractContextManager[Any]:
            del model, strength  # the adapters are bound to this model's modules; the factor is ignored
            return lora.attached()

        return self._fitted(cid, None, steer_vector=None, info=info,
                            state=lora, steer_context=SteerContext(open=open_, uses_strength=False, kind="lora"))


@register_method
class SFT(_FinetuneMethod):
    """SFT (§5.12): the model fine-tuned on the concept's positives; steering generates with it.

    Maths: ``min_θ CE`` of the response tokens of the positives over the trainable weights ``θ``,
    gradient norm clipped at 1; steering = generating with ``θ_tuned`` (the factor is ignored).

    AxBench (``axbench/models/sft.py`` lines 144-189, ``sweep/wuzhengx/2b/l10/sft.yaml``): all
    weights, AdamW lr 4e-5, weight decay 0, batch 18, gradient accumulation 4, 8 epochs, linear
    decay, ``clip_grad_norm_(..., 1.0)``, positives only, first 20 concepts only (here: the
    concepts you run). The tuned weights are kept as a copy (``state``; one model's worth of memory
    per concept) and the originals restored after training and after each steered generation,
    byte for byte (`swapped`). The model stays in eval mode (SmolLM2 has no dropout).
    ``trainable="all"`` trains every parameter; any other string is a comma-separated list of
    name substrings (``"layers.12.,layers.13."``) selecting a subset. Adaptation for a 135M model
    on 2 CPU cores: ``epochs``/``batch_size``/``grad_accum``/``max_train_tokens`` None mean
    AxBench's 8 / 18 / 4 / 128 on a GPU and 1 / 6 / 1 / 64 on a CPU (12 steps for 72 positives).
    """

    name, label = "sft", "SFT"
    order = 16
    defaults: ClassVar[dict[str, Any]] = {
        "trainable": "all", "lr": 4e-5, "weight_decay": 0.0, "grad_clip": 1.0, "epochs": None, "batch_size": None,
        "grad_accum": None, "max_train_tokens": None, "max_examples": None,
    }
    GPU: ClassVar[dict[str, int]] = {"epochs": 8, "batch_size": 18, "grad_accum": 4, "max_train_tokens": 128}
    CPU: ClassVar[dict[str, int]] = {"epochs": 1, "batch_size": 6, "grad_accum": 1, "max_train_tokens": 64}

    def trainable(self, ctx: Any) -> dict[str, Any]:
        """``{name: parameter}`` of the HF module that ``trainable`` selects."""
        spec = str(self.params(ctx)["trainable"]).strip()
        named = dict(_hf(ctx, self.label).named_parameters())
        if spec == "all":
            return named
        keys = [k.strip() for k in spec.split(",") if k.strip()]
        chosen = {n: p for n, p in named.items() if any(k in n for k in keys)}
        if not chosen:
            raise ValueError(f"method 'sft': trainable={spec!r} matches no parameter name")
        return chosen

    def fit(self, ctx: Any, cid: int) -> Fitted:
        p = resolve_schedule(ctx.model, self.params(ctx), gpu=self.GPU, cpu=self.CPU)
        params = self.trainable(ctx)
        # Training writes into the model's own weights: swapping in a copy of themselves and restoring on exit
        # brings the originals back byte for byte, whatever training does (or if it fails).
        with swapped(params, {n: t.detach().clone() for n, t in params.items()}):
            info = train_weights(ctx, cid, list(params.values()), p, label=self.label)
            tuned = {n: t.detach().clone() for n, t in params.items()}
        info.update(trainable=str(p["trainable"]), n_trainable=int(sum(t.numel() for t in tuned.values())),
                    grad_clip=float(p["grad_clip"]))

        def open_(model: Any, strength: float) -> AbstractContextManager[Any]:
            del model, strength
            return swapped(params, tuned)

        return self._fitted(cid, None, steer_vector=None, info=info, state=tuned,
                            steer_context=SteerContext(open=open_, uses_strength=False, kind="sft"))
