"""Training and evaluating a crosscoder on row-aligned activations of several sources."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._model import Crosscoder, CrosscoderConfig, _as_rows, make_crosscoder


@dataclass(frozen=True)
class CrosscoderResult:
    """What `train_crosscoder` returns.

    Attributes:
        crosscoder: the trained module (eval mode, on CPU).
        metrics: held-out metrics from `evaluate_crosscoder` plus ``n_train_rows``,
            ``n_eval_rows``, ``steps`` and ``epochs``.
        history: one dict per epoch (``epoch``, ``step``, ``loss``, ``mse`` by source,
            ``dead_fraction``).
    """

    crosscoder: Crosscoder
    metrics: dict[str, Any]
    history: list[dict[str, Any]]



def evaluate_crosscoder(crosscoder: Crosscoder, rows: Mapping[str, Any], *,
                        batch_size: int = 4096) -> dict[str, Any]:
    """Reconstruction and sparsity of ``crosscoder`` on row-aligned ``rows``.

    Args:
        crosscoder: the crosscoder.
        rows: source name -> ``[n, d_s]``.
        batch_size: rows per forward pass.

    Returns:
        ``fvu`` and ``mse`` (dicts by source; FVU = Σ‖x - x̂‖² / Σ‖x - mean‖²), ``fvu_mean`` (their
        mean), ``l0`` (mean active latents per row) and ``dead_fraction`` (latents never active).
    """
    data = _as_rows(rows)
    names = crosscoder.cfg.sources
    n = next(iter(data.values())).shape[0]
    sq = dict.fromkeys(names, 0.0)
    fired = torch.zeros(crosscoder.cfg.d_sae, dtype=torch.bool)
    active = 0.0
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = {s: data[s][start:start + batch_size] for s in names}
            recon, codes = crosscoder(batch)
            nz = codes != 0
            fired |= nz.any(0)
            active += float(nz.sum())
            for s in names:
                sq[s] += float((batch[s] - recon[s].float()).pow(2).sum())
    var = {s: float((data[s] - data[s].mean(0)).pow(2).sum()) for s in names}
    fvu = {s: sq[s] / max(var[s], 1e-12) for s in names}
    return {"fvu": fvu, "fvu_mean": float(np.mean(list(fvu.values()))),
            "mse": {s: sq[s] / (n * data[s].shape[1]) for s in names}, "l0": active / n,
            "dead_fraction": float((~fired).float().mean())}


def train_crosscoder(
    sources: Mapping[str, Any],
    *,
    d_sae: int | None = None,
    expansion_factor: float = 4.0,
    architecture: str = "topk",
    k: int | None = None,
    sparsity_coefficient: float | None = None,
    epochs: int = 10,
    batch_size: int = 256,
    lr: float | None = None,
    seed: int = 0,
    eval_fraction: float = 0.1,
    normalize: bool = True,
    dead_steps: int | None = None,
    aux_coefficient: float = 1 / 32,
    metadata: Mapping[str, Any] | None = None,
    log: Callable[[str], None] | None = None,
) -> CrosscoderResult:
    """Train a crosscoder on row-aligned activations of several sources.

    Args:
        sources: source name -> array ``[n, d_s]`` (numpy or torch); row ``j`` of every source
            must come from the same token or text (see `paired_activations`).
        d_sae: number of latents (default ``expansion_factor × max d_s``).
        expansion_factor: used when ``d_sae`` is None.
        architecture: ``"topk"`` or ``"relu"``.
        k: active latents per row for ``topk`` (default ``min(32, d_sae // 4)``).
        sparsity_coefficient: λ of the decoder-norm-weighted L1 for ``relu`` (default 0.1).
        epochs: passes over the training rows.
        batch_size: rows per optimiser step.
        lr: Adam learning rate (default ``2e-4 / sqrt(d_sae / 2**14)``, capped at 1e-2, as sparsify).
        seed: seeds the split, the initialisation and the batch order.
        eval_fraction: share of rows held out for the metrics (0: measure on the training rows).
        normalize: scale each source to mean norm ``sqrt(d_s)`` (the factors are saved in the config).
        dead_steps: steps without firing after which a latent counts as dead for AuxK (default:
            one epoch, at least 50).
        aux_coefficient: weight of the AuxK loss (``topk``).
        metadata: stored in the config (e.g. models and sites).
        log: called with one line per epoch.

    Returns:
        A `CrosscoderResult`.

    Raises:
        ValueError: fewer than two sources, rows not aligned, bad shapes or settings.
    """
    data = _as_rows(sources)
    names = tuple(data)
    n = next(iter(data.values())).shape[0]
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    widths = tuple(int(t.shape[1]) for t in data.values())
    d_sae = int(d_sae or round(expansion_factor * max(widths)))
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(n, generator=gen)
    n_eval = min(max(1, round(n * eval_fraction)), n - 1) if eval_fraction > 0 else 0
    eval_idx, train_idx = order[:n_eval], order[n_eval:]
    train = {s: t[train_idx] for s, t in data.items()}
    scales = None
    if normalize:
        scales = tuple(math.sqrt(t.shape[1]) / max(float(t.norm(dim=-1).mean()), 1e-12) for t in train.values())
    cfg = CrosscoderConfig(
        sources=names, d_in=widths, d_sae=d_sae, architecture=architecture,
        k=(k or max(1, min(32, d_sae // 4))) if architecture == "topk" else k,
        sparsity_coefficient=0.1 if sparsity_coefficient is None else float(sparsity_coefficient),
        norm_scaling_factors=scales, metadata=dict(metadata or {}),
    )
    cc = make_crosscoder(cfg, seed=int(seed))
    with torch.no_grad():
        for b, t, c in zip(cc.b_dec, train.values(), cc.scales(), strict=True):
            b.copy_(t.mean(0) * c)
    lr = lr or min(2e-4 / math.sqrt(d_sae / 2**14), 1e-2)
    opt = torch.optim.Adam(cc.parameters(), lr=lr)
    n_train = train_idx.numel()
    steps_per_epoch = math.ceil(n_train / batch_size)
    dead_steps = dead_steps or max(50, steps_per_epoch)
    since_fired = torch.zeros(d_sae, dtype=torch.long)
    history: list[dict[str, Any]] = []
    step = 0
    cc.train()
    for epoch in range(epochs):
        perm = torch.randperm(n_train, generator=gen)
        tot, mse_tot = 0.0, torch.zeros(len(names))
        for start in range(0, n_train, batch_size):
            idx = perm[start:start + batch_size]
            out = cc.loss({s: t[idx] for s, t in train.items()}, dead=since_fired >= dead_steps,
                          aux_coefficient=aux_coefficient)
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            cc.remove_parallel_decoder_grad()
            opt.step()
            cc.after_step()
            fired = (out["codes"] != 0).any(0)
            since_fired = torch.where(fired, 0, since_fired + 1)
            tot, mse_tot, step = tot + float(out["loss"].detach()), mse_tot + out["mse_per_source"], step + 1
        row = {"epoch": epoch + 1, "step": step, "loss": tot / steps_per_epoch,
               "mse": {s: float(m) / steps_per_epoch for s, m in zip(names, mse_tot, strict=True)},
               "dead_fraction": float((since_fired >= dead_steps).float().mean())}
        history.append(row)
        if log is not None:
            mse = ", ".join(f"{s} {v:.4f}" for s, v in row["mse"].items())
            log(f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.4f}; mse {mse}")
    cc.eval()
    held = {s: t[eval_idx] for s, t in data.items()} if n_eval else train
    metrics = evaluate_crosscoder(cc, held)
    metrics |= {"n_train_rows": int(n_train), "n_eval_rows": int(n_eval), "steps": step, "epochs": epochs}
    return CrosscoderResult(crosscoder=cc, metrics=metrics, history=history)
