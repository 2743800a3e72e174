"""`train_sae`'s training loop (``method="torch"``): data-dependent init, Adam steps, dead latents,
checkpoints, and ``torch.distributed`` (one process group per run, each rank every ``world``-th batch).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._base import SAE, SAEConfig, make_sae
from ._data import ActivationSource
from ._train_settings import RESUMABLE_CHANGES, resume_key

__all__ = ["init_world", "train_device", "train_torch"]

_INIT_ROWS = 16384  # rows read to estimate the input scale and the initial b_dec


class _LossModule(nn.Module):
    """Wraps `SAE.loss` as ``forward`` so DistributedDataParallel hooks its backward."""

    def __init__(self, sae: SAE) -> None:
        super().__init__()
        self.sae = sae

    def forward(self, x: torch.Tensor, dead: torch.Tensor | None,
                target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return self.sae.loss(x, dead=dead, target=target)


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(x, y)`` of a paired (transcoder) batch, ``(x, None)`` of a plain one."""
    if isinstance(batch, tuple | list):
        return batch[0], batch[1]
    return batch, None


def init_world() -> tuple[int, int, bool]:
    """(rank, world_size, whether this call initialised the process group)."""
    import torch.distributed as dist

    if not dist.is_available():
        return 0, 1, False
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size(), True
    return 0, 1, False


def train_device(device: Any, world: int) -> torch.device:
    """``device``, else CUDA (this rank's ``LOCAL_RANK`` under torchrun) when available, else the CPU."""
    if device is not None:
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else 0)
    return torch.device("cpu")


def _batches(source: ActivationSource, epoch: int, batch_size: int, seed: int, skip: int) -> Iterator[torch.Tensor]:
    import inspect

    if skip and "start" in inspect.signature(source.batches).parameters:
        return source.batches(epoch, batch_size, seed, start=skip)  # type: ignore[call-arg]
    return itertools.islice(source.batches(epoch, batch_size, seed), skip, None)


def _factor(rows: torch.Tensor) -> float:
    """The fixed scale that gives ``rows`` a mean norm of ``sqrt(width)``."""
    mean_norm = float(rows.norm(dim=-1).mean())
    return math.sqrt(rows.shape[-1]) / mean_norm if mean_norm > 0 else 1.0


def _init_from_data(sae: SAE, source: ActivationSource, batch_size: int, seed: int) -> None:
    """Fix the input scale and start ``b_dec`` at the mean of the first training batches (a
    transcoder: the output scale too, and ``b_dec`` at the mean scaled target)."""
    xs, ys, n = [], [], 0
    for batch in source.batches(0, batch_size, seed):
        x, y = _pair(batch)
        xs.append(x)
        if y is not None:
            ys.append(y)
        n += x.shape[0]
        if n >= _INIT_ROWS:
            break
    if not n:
        raise ValueError("the source yielded no training rows")
    x = torch.cat(xs).double()
    factor = _factor(x)
    if sae.cfg.is_transcoder:
        if not ys:
            raise ValueError(f"{sae!r} is a transcoder, but the source yields no (x, y) pairs")
        y = torch.cat(ys).double()
        factor_out = _factor(y)
        sae.cfg = sae.cfg.replace(normalize_activations="expected_average_only_in", norm_scaling_factor=factor,
                                  norm_scaling_factor_out=factor_out)
        start = (y * factor_out).mean(0)
    else:
        sae.cfg = sae.cfg.replace(normalize_activations="expected_average_only_in", norm_scaling_factor=factor)
        start = (x * factor).mean(0)
    with torch.no_grad():
        sae.b_dec.copy_(start.to(sae.b_dec.dtype))


def train_torch(
    src: ActivationSource, cfg: SAEConfig, settings: dict[str, Any], dev: torch.device, *, rank: int, world: int,
    out: Path | None, checkpoint_every: int | None, resume: bool, progress: bool, say: Callable[[str], None],
    stop_after_steps: int | None, log_every: int,
) -> dict[str, Any]:
    """Adam over seeded batches (every ``world``-th on this rank), resuming from ``out``'s latest checkpoint.

    Returns ``{"sae", "steps", "history", ...}`` (``"stopped": True`` after ``stop_after_steps``).
    """
    from ._checkpoint import latest_checkpoint, load_checkpoint, rng_from_json, rng_to_json, save_checkpoint

    seed, bs, dead_steps = settings["seed"], settings["batch_size"], settings["dead_steps"]
    ckpt = latest_checkpoint(out) if (out is not None and resume) else None
    if ckpt is not None:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        sae = make_sae(SAEConfig.from_dict(state["cfg"]), seed=None)
    else:
        sae = make_sae(cfg, seed=seed)
        _init_from_data(sae, src, bs, seed)
    sae.to(dev).train()
    opt = torch.optim.Adam(sae.parameters(), lr=settings["lr"])
    since = torch.zeros(sae.d_sae, dtype=torch.long, device=dev)
    history: list[dict[str, Any]] = []
    step = epoch0 = skip = rows = 0
    if ckpt is not None:
        state = load_checkpoint(ckpt, sae, opt)
        if resume_key(state["settings"]) != resume_key(settings):
            diff = sorted(k for k in set(state["settings"]) | set(settings)
                          if k not in RESUMABLE_CHANGES and state["settings"].get(k) != settings.get(k))
            raise ValueError(f"{ckpt}: checkpoint made with other settings ({', '.join(diff)}); "
                             "pass resume=False or another out folder")
        step, epoch0, skip, rows = state["step"], state["epoch"], state["batch_index"], state["rows"]
        since = torch.tensor(state["steps_since_fired"], dtype=torch.long, device=dev)
        history = state["history"]
        torch.set_rng_state(rng_from_json(state["torch_rng"]))
        say(f"resumed from {ckpt} (step {step}, epoch {epoch0}, batch {skip})")
    net: nn.Module = _LossModule(sae)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(net, device_ids=[dev.index] if dev.type == "cuda" else None)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        total = None if src.n_rows is None else settings["epochs"] * math.ceil(src.n_rows / bs) // world
        bar = tqdm(total=total, initial=step, desc="train-sae", unit="step")
    t0, rows_run = time.perf_counter(), 0
    try:
        for epoch in range(epoch0, settings["epochs"]):
            consumed = skip if epoch == epoch0 else 0
            it = _batches(src, epoch, bs, seed, consumed)
            while True:
                group = list(itertools.islice(it, world))
                if len(group) < world:  # ranks must take the same number of steps
                    break
                consumed += world
                x, y = _pair(group[rank])
                x = x.to(dev, non_blocking=True)
                y = None if y is None else y.to(dev, non_blocking=True)
                out_d = net(x, since >= dead_steps, y)
                out_d["loss"].backward()
                sae.remove_parallel_decoder_grad()
                opt.step()
                opt.zero_grad(set_to_none=True)
                sae.after_step()
                fired = out_d["fired"]
                if world > 1:
                    import torch.distributed as dist

                    fired = fired.to(torch.int32)
                    dist.all_reduce(fired, op=dist.ReduceOp.MAX)
                    fired = fired.bool()
                since += 1
                since.masked_fill_(fired, 0)
                step += 1
                n_rows = sum(int(_pair(b)[0].shape[0]) for b in group)
                rows += n_rows
                rows_run += n_rows
                if bar is not None:
                    bar.update(1)
                if step % log_every == 0:
                    history.append({"step": step, "epoch": epoch, "loss": float(out_d["loss"].detach()),
                                    "mse": float(out_d["mse"]), "sparsity": float(out_d["sparsity"]),
                                    "aux": float(out_d["aux"]), "l0": float(out_d["l0"]),
                                    "dead_fraction": float((since >= dead_steps).float().mean())})
                if checkpoint_every and step % checkpoint_every == 0 and rank == 0:
                    state = {"step": step, "epoch": epoch, "batch_index": consumed, "rows": rows,
                             "steps_since_fired": since.tolist(), "torch_rng": rng_to_json(torch.get_rng_state()),
                             "history": history, "settings": settings}
                    save_checkpoint(out, sae, opt, state)
                    say(f"checkpoint at step {step}")
                if stop_after_steps is not None and step >= stop_after_steps:
                    return {"sae": sae, "steps": step, "history": history, "stopped": True}
            say(f"epoch {epoch + 1}/{settings['epochs']} done (step {step})")
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    return {"sae": sae, "steps": step, "epochs": settings["epochs"], "rows": rows, "rows_run": rows_run,
            "seconds": seconds, "history": history,
            "dead_fraction_train": float((since >= dead_steps).float().mean())}
