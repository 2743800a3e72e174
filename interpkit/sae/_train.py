"""Train an SAE on activations: from a model and texts, an activation-record file, or an array.

`train_sae` resolves its settings (explicit arguments over the preset's values), builds an
`~interpkit.sae._data.ActivationSource`, and runs Adam over seeded, shuffled batches:

- inputs are scaled by a fixed ``norm_scaling_factor`` (mean row norm ``sqrt(d_in)``, estimated
  on the first batches) and ``b_dec`` starts at their mean;
- a latent counts as dead once it has not fired for ``dead_steps`` steps; the mask feeds the
  AuxK loss (`SAE.loss`);
- decoder gradients lose their component along each row before the step, and
  `SAE.after_step` renormalises the rows after it;
- checkpoints (`~interpkit.sae._checkpoint`) let a killed run resume bit-exactly;
- a transcoder (``target_site=``, or paired ``(x, y)`` arrays) reads one site and reconstructs
  another: both sites come from the same forward passes, each gets its own fixed scale
  (``norm_scaling_factor`` / ``norm_scaling_factor_out``), ``b_dec`` starts at the mean scaled
  target, and the loss (AuxK included) is against the target;
- under ``torchrun`` (or an initialised process group) the module is wrapped in
  ``DistributedDataParallel``, each rank takes every ``world_size``-th batch, rank 0 writes.

The settings and presets are `~interpkit.sae._train_settings`, the loop `~interpkit.sae._train_loop`.
Held-out metrics come from `~interpkit.sae._metrics.evaluate_sae` (plus `lm_loss_recovered` when
a model was the source); with ``out`` the SAE is saved in the native format with ``metrics.json``.

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(256, 8)).astype("float32")
    >>> res = train_sae(x, latent_dim=16, k=4, epochs=2, batch_size=64)
    >>> res.sae.d_sae, res.metrics["steps"]
    (16, 8)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ._base import ARCHITECTURES, SAE
from ._data import ActivationSource, ArraySource, ModelSource, RecordsSource, as_texts
from ._data_paired import PairedArraySource
from ._train_loop import init_world, train_device, train_torch
from ._train_settings import METHODS, PRESETS, Preset, resolve_settings, sae_config

__all__ = ["PRESETS", "Preset", "TrainResult", "train_sae"]

_RECORD_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """What `train_sae` returns."""

    sae: SAE
    """The trained SAE (in eval mode, on the training device)."""
    metrics: dict[str, Any]
    """Held-out metrics and run facts (fvu, mse, l0, dead_fraction, dense_fraction, n_train_rows,
    n_eval_rows, steps, epochs, tokens_per_s, and the lm-loss numbers for a model source)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per logged step (step, epoch, loss, mse, sparsity, aux, l0, dead_fraction)."""
    out: Path | None = None
    """The output folder, when this process wrote one (None on the non-zero ranks of a distributed run)."""
    source_info: dict[str, Any] = field(default_factory=dict)
    """`ActivationSource.describe` of the source."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The resolved training settings (preset values with the explicit arguments applied)."""


def _is_model(obj: Any) -> bool:
    from interpkit.models import ModelWrapper

    return isinstance(obj, ModelWrapper)


def _is_pair(source: Any) -> bool:
    return isinstance(source, tuple | list) and len(source) == 2 and all(
        isinstance(a, torch.Tensor) or hasattr(a, "__array__") for a in source)


def _make_source(
    source: Any, *, texts: Any, site: str | None, layer: int | None, pooling: str, max_records: int | None,
    eval_fraction: float, seed: int, model_batch_size: int, max_length: int | None, max_tokens: int | None,
    target_site: str | None = None,
) -> tuple[ActivationSource, Any]:
    """The activation source and, for a model source, the model."""
    is_model = isinstance(source, str) and not str(source).endswith(_RECORD_SUFFIXES) or _is_model(source)
    if target_site is not None and not is_model:
        raise ValueError("target_site= is for a model source (texts= and site=); for arrays pass the pair (x, y)")
    if _is_pair(source):
        return PairedArraySource(source[0], source[1], eval_fraction=eval_fraction, seed=seed), None
    if isinstance(source, ActivationSource) and not isinstance(source, str | os.PathLike):
        return source, getattr(source, "model", None) if isinstance(source, ModelSource) else None
    if isinstance(source, str | os.PathLike) and str(source).endswith(_RECORD_SUFFIXES):
        if texts is not None:
            raise ValueError("texts= is for a model source; a records file already holds its rows")
        return RecordsSource(source, max_records=max_records, eval_fraction=eval_fraction, seed=seed), None
    if max_records is not None:
        raise ValueError("max_records applies to an activation-record file (.jsonl / .jsonl.gz) only")
    if isinstance(source, str) or _is_model(source):
        if texts is None:
            raise ValueError("training from a model needs texts= (a list of texts or PromptRows, or a "
                             "prompt-dataset .jsonl path)")
        if site is None and layer is None:
            raise ValueError("training from a model needs site= (e.g. 'layer6.resid_post') or layer=")
        if isinstance(source, str):
            from interpkit.models import load_model

            source = load_model(source)
        site = site if site is not None else f"layer{int(layer)}.resid_post"
        src = ModelSource(source, as_texts(texts), site, target_site=target_site, pooling=pooling,
                          batch_size=model_batch_size,
                          max_length=max_length, eval_fraction=eval_fraction, seed=seed, max_tokens=max_tokens)
        return src, source
    if isinstance(source, torch.Tensor) or hasattr(source, "__array__"):
        return ArraySource(source, eval_fraction=eval_fraction, seed=seed), None
    raise TypeError(f"cannot train from {type(source).__name__}: pass an ActivationSource, an [n, d] array, "
                    "a pair (x, y) of row-aligned arrays (a transcoder), an activation-record .jsonl path, "
                    "or a model (ModelWrapper or name) with texts=")


def train_sae(
    source: Any,
    *,
    texts: Any = None,
    site: str | None = None,
    layer: int | None = None,
    target_site: str | None = None,
    architecture: str = "topk",
    preset: str | None = None,
    latent_dim: int | None = None,
    expansion_factor: float | None = None,
    k: int | None = None,
    sparsity_coefficient: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    max_records: int | None = None,
    seed: int = 0,
    method: str = "torch",
    out: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    eval_fraction: float = 0.1,
    device: Any = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    stop_after_steps: int | None = None,
    pooling: str | None = None,
    max_length: int | None = 128,
    max_tokens: int | None = None,
    model_batch_size: int = 8,
    dead_steps: int | None = None,
    log_every: int = 50,
    config_overrides: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train a sparse autoencoder.

    Args:
        source: an `ActivationSource`; an ``[n, d]`` array or tensor; a pair ``(x, y)`` of
            row-aligned arrays (a transcoder from ``x [n, d_in]`` to ``y [n, d_out]``); an
            activation-record ``.jsonl`` / ``.jsonl.gz`` path; or a model (``ModelWrapper`` or a
            name `load_model` understands) together with ``texts`` and ``site`` / ``layer``.
        texts: for a model: texts, `PromptRow` s, or a prompt-dataset ``.jsonl`` path.
        site: for a model: the site read (``"layer6.resid_post"``); also recorded in the SAE's config.
        layer: for a model without ``site``: reads ``layer{layer}.resid_post``.
        target_site: for a model: train a transcoder that reads ``site`` and reconstructs this
            site (``site="layer3.mlp_in", target_site="layer3.mlp_out"``), both read in the same
            forward passes.
        architecture: ``topk``, ``batchtopk``, ``relu`` or ``jumprelu`` (``method="torch"``).
        preset: ``"minimal"``, ``"production"`` or None (the production values); see `PRESETS`.
        latent_dim: number of latents (exclusive with ``expansion_factor``).
        expansion_factor: latents per input dimension.
        k: active latents per row (``topk``, ``batchtopk``).
        sparsity_coefficient: penalty weight (L1 for ``relu``, L0 for ``jumprelu``, sklearn's
            ``alpha``); default 0.03 / 0.05 / 0.1 for inputs scaled to mean norm ``sqrt(d_in)``.
        epochs: passes over the training rows.
        batch_size: rows per step.
        lr: Adam learning rate.
        max_records: records file: keep a seeded uniform sample of this many records.
        seed: seeds initialisation, the held-out split, batch order and record sampling.
        method: ``"torch"`` or ``"sklearn"`` (`~interpkit.sae._sklearn.train_sklearn`).
        out: folder for checkpoints, the SAE (native format) and ``metrics.json``.
        checkpoint_every: steps between checkpoints (default 500 when ``out`` is given).
        resume: continue from the latest checkpoint under ``out`` when there is one.
        eval_fraction: share of rows (records: prompts; model: texts) held out for metrics.
        device: training device (default: CUDA when available, per rank under torchrun).
        progress: show a progress bar.
        log: called with one-line progress messages.
        stop_after_steps: stop after this many steps without finishing (simulates a killed run;
            returns a result whose metrics hold ``stopped: True``).
        pooling: model source rows: ``"tokens"`` or ``"mean"`` (default: the preset's).
        max_length: model source: tokens per text.
        max_tokens: model source: training rows per epoch at most.
        model_batch_size: model source: texts per forward pass.
        dead_steps: steps without firing after which a latent counts as dead (default:
            ``min(1000, 1e7 / batch_size, 2 epochs)``).
        log_every: steps between history entries.
        config_overrides: `SAEConfig` fields to set on the new SAE (``aux_k``,
            ``aux_coefficient``, ``jumprelu_bandwidth``, ...).

    Returns:
        A `TrainResult`.

    Raises:
        ValueError: an unknown preset, architecture or method; both ``latent_dim`` and
            ``expansion_factor``; a model without ``texts`` or ``site``; a ``site`` /
            ``target_site`` the model lacks (`~interpkit.models.UnknownSiteError`); ``target_site``
            without a model, or a transcoder with ``method="sklearn"``; a checkpoint made with
            other settings.
        TypeError: a source of an unsupported type.
    """
    say = log or (lambda _msg: None)
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(sorted(ARCHITECTURES))}")
    if method == "sklearn" and architecture not in ("topk", "relu"):
        raise ValueError(f"method='sklearn' trains a relu dictionary; architecture={architecture!r} does not apply")
    if latent_dim is not None and expansion_factor is not None:
        raise ValueError("give latent_dim or expansion_factor, not both")
    if checkpoint_every is not None and (out is None or checkpoint_every < 1):
        raise ValueError("checkpoint_every needs out= and a positive number of steps")
    pool = pooling or PRESETS[preset or "production"].pooling
    src, model = _make_source(source, texts=texts, site=site, layer=layer, pooling=pool, max_records=max_records,
                              eval_fraction=eval_fraction, seed=seed, model_batch_size=model_batch_size,
                              max_length=max_length, max_tokens=max_tokens, target_site=target_site)
    transcoder = getattr(src, "d_out", None) is not None
    if transcoder and method == "sklearn":
        raise ValueError("method='sklearn' trains an SAE on one site; a transcoder needs method='torch'")
    settings = resolve_settings(src, preset=preset, architecture="relu" if method == "sklearn" else architecture,
                                latent_dim=latent_dim, expansion_factor=expansion_factor, k=k,
                                sparsity_coefficient=sparsity_coefficient, epochs=epochs, batch_size=batch_size,
                                lr=lr, seed=seed, method=method, dead_steps=dead_steps)
    if isinstance(src, ModelSource):
        settings["pooling"] = src.pooling
    if transcoder:  # part of the resume key: a checkpoint of another pair of sites is not resumed
        settings.update(d_out=int(src.d_out), site=getattr(src, "site", None),
                        target_site=getattr(src, "target_site", None))
    info = src.describe()
    base_cfg = sae_config(settings, src, site=site, layer=layer, model=model)
    if config_overrides:
        base_cfg = base_cfg.replace(**dict(config_overrides))
        settings["config_overrides"] = dict(config_overrides)
    out_path = None if out is None else Path(out)
    rank, world, owned = init_world()
    written = out_path if rank == 0 else None  # only rank 0 writes: the others report no folder
    finished = False
    try:
        if method == "sklearn":
            from ._sklearn import train_sklearn

            t0 = time.perf_counter()
            sae = train_sklearn(src, settings["d_sae"], alpha=settings["sparsity_coefficient"], seed=seed,
                                batch_size=settings["batch_size"], epochs=settings["epochs"], cfg=base_cfg)
            run = {"steps": 0, "epochs": settings["epochs"], "rows": 0, "seconds": time.perf_counter() - t0,
                   "history": [], "dead_fraction_train": None}
        else:
            dev = train_device(device, world)
            run = train_torch(src, base_cfg, settings, dev, rank=rank, world=world, out=out_path,
                              checkpoint_every=checkpoint_every if checkpoint_every else (500 if out else None),
                              resume=resume, progress=progress, say=say, stop_after_steps=stop_after_steps,
                              log_every=log_every)
            sae = run["sae"]
        if run.get("stopped"):
            finished = True
            return TrainResult(sae=sae, metrics={"stopped": True, "steps": run["steps"]}, history=run["history"],
                               out=written, source_info=info, settings=settings)
        sae.eval()
        metrics = _metrics(sae, src, model, run, model_batch_size=model_batch_size, max_length=max_length)
        say(_summary(metrics))
        if out_path is not None and rank == 0:
            _write_outputs(sae, out_path, metrics, settings, info)
        finished = True
        return TrainResult(sae=sae, metrics=metrics, history=run["history"], out=written, source_info=info,
                           settings=settings)
    finally:
        if owned:
            import torch.distributed as dist

            if finished:  # every rank done with its collectives before the group goes (else gloo aborts)
                dist.barrier()
            dist.destroy_process_group()


def _metrics(sae: SAE, src: ActivationSource, model: Any, run: dict[str, Any], *, model_batch_size: int,
             max_length: int | None) -> dict[str, Any]:
    rows, targets = src.eval_rows(), None
    if isinstance(rows, tuple):
        rows, targets = rows
    if rows.shape[0]:
        try:
            from ._metrics import evaluate_sae
        except ImportError:  # the metrics module is optional for training itself
            evaluate_sae = _evaluate_fallback
        kwargs = {} if targets is None else {"targets": targets}
        with torch.no_grad():
            metrics: dict[str, Any] = dict(evaluate_sae(sae, rows.to(sae.W_dec.device), **kwargs))
    else:
        metrics = {}
    rows_run, seconds = run.get("rows_run", run.get("rows", 0)), run.get("seconds", 0.0)
    metrics.update({
        "n_train_rows": src.n_rows if src.n_rows is not None else getattr(src, "epoch_rows", None),
        "n_eval_rows": int(rows.shape[0]), "steps": run["steps"], "epochs": run.get("epochs"),
        "tokens_per_s": (rows_run / seconds) if seconds > 0 and rows_run else None,
        "dead_fraction_train": run.get("dead_fraction_train"),
    })
    if isinstance(src, ModelSource) and model is not None and src.eval_texts:
        try:
            from ._metrics import lm_loss_recovered
        except ImportError:
            lm_loss_recovered = None
        if lm_loss_recovered is not None:
            lm = lm_loss_recovered(sae, model, src.eval_texts, src.site, batch_size=model_batch_size,
                                   max_length=max_length)
            metrics.update(lm)
    return metrics


def _evaluate_fallback(sae: SAE, rows: torch.Tensor, targets: torch.Tensor | None = None) -> dict[str, float]:
    x = rows.double() if targets is None else targets.double()
    recon, codes = sae(rows)
    err = (x - recon.double()).pow(2).sum()
    var = (x - x.mean(0)).pow(2).sum().clamp_min(1e-30)
    fired = (codes != 0).float()
    return {"fvu": float(err / var), "mse": float(err / x.numel()), "l0": float(fired.sum(-1).mean()),
            "dead_fraction": float((fired.sum(0) == 0).float().mean()),
            "dense_fraction": float((fired.mean(0) > 0.1).float().mean())}


def _summary(metrics: dict[str, Any]) -> str:
    keys = ("fvu", "l0", "dead_fraction", "dense_fraction", "steps", "tokens_per_s", "recovered")
    return "done: " + ", ".join(f"{k}={metrics[k]:.4g}" if isinstance(metrics[k], float) else f"{k}={metrics[k]}"
                                 for k in keys if metrics.get(k) is not None)


def _write_outputs(sae: SAE, out: Path, metrics: dict[str, Any], settings: dict[str, Any],
                   info: dict[str, Any]) -> None:
    from interpkit._io import atomic_write_text

    try:
        from ._formats import save_sae
    except ImportError:
        save_sae = _save_native_fallback
    save_sae(sae.to("cpu"), out, format="native")
    payload = {"metrics": metrics, "settings": settings, "source": info}
    atomic_write_text(out / "metrics.json", json.dumps(_jsonable(payload), indent=1) + "\n")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if dataclasses.is_dataclass(obj):
        return _jsonable(dataclasses.asdict(obj))
    if hasattr(obj, "item"):
        return obj.item()
    return obj


def _save_native_fallback(sae: SAE, path: Path, *, format: str = "native") -> Path:  # noqa: A002
    from safetensors.torch import save_file

    from interpkit._io import atomic_temp_path, atomic_write_text

    path.mkdir(parents=True, exist_ok=True)
    with atomic_temp_path(path / "sae.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in sae.tensors().items()}, str(tmp))
    cfg = {**sae.cfg.to_dict(), "format": "interpkit.sae", "version": 1}
    atomic_write_text(path / "cfg.json", json.dumps(cfg, indent=1) + "\n")
    return path
