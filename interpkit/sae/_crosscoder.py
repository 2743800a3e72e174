"""Crosscoders (Lindsey et al. 2024, "Sparse Crosscoders"): one sparse code over several sources.

A crosscoder reads S row-aligned activation sources (two layers of one model, or two models, on
the same tokens or texts), encodes them into one code ``f = act(Σ_s (c_s x_s) W_enc_s + b_enc)``
and decodes every source from it, ``x̂_s = (f W_dec_s + b_dec_s) / c_s``. ``c_s`` is a fixed input
scale per source (mean norm ``sqrt(d_s)`` after scaling), so sources of different scale and width
weigh alike. A latent whose decoder has weight in one source only is specific to it; one with
weight in both is shared, and its two decoder rows give a feature pair across the sources.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(256, 4))
    >>> data = {"a": z @ rng.normal(size=(4, 8)), "b": z @ rng.normal(size=(4, 6))}
    >>> res = train_crosscoder(data, d_sae=16, k=4, epochs=2, batch_size=64)
    >>> sorted(res.metrics["fvu"]), len(shared_latents(res.crosscoder))
    (['a', 'b'], 16)
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from interpkit._constants import CFG_NAME
from interpkit._io import atomic_temp_path, atomic_write_text, replace_dir

from ._base import torch_dtype

__all__ = [
    "CROSSCODER_ARCHITECTURES",
    "WEIGHTS_NAME",
    "Crosscoder",
    "CrosscoderConfig",
    "CrosscoderFormatError",
    "CrosscoderResult",
    "CrossSourcePair",
    "LatentPair",
    "cross_source_pairs",
    "evaluate_crosscoder",
    "load_crosscoder",
    "make_crosscoder",
    "paired_activations",
    "save_crosscoder",
    "shared_latents",
    "train_crosscoder",
]

CROSSCODER_ARCHITECTURES = ("topk", "relu")
"""``topk``: the k largest ReLU pre-activations, jointly unit-norm decoder rows (norms across
sources stay free); ``relu``: ReLU with the paper's penalty ``λ Σ_i f_i Σ_s ‖W_dec_s[i]‖``."""
WEIGHTS_NAME = "crosscoder.safetensors"
FORMAT_TAG = "interpkit.crosscoder"


@dataclass(frozen=True, kw_only=True)
class CrosscoderConfig:
    """Everything needed to rebuild a `Crosscoder` (not its training settings).

    Attributes:
        sources: source names, in the order of the stored tensors (``W_enc_0`` is ``sources[0]``).
        d_in: width of each source, aligned with ``sources``.
        d_sae: number of shared latents.
        architecture: ``"topk"`` or ``"relu"`` (`CROSSCODER_ARCHITECTURES`).
        k: active latents per row (``topk``).
        sparsity_coefficient: weight of the decoder-norm-weighted L1 penalty (``relu``).
        norm_scaling_factors: the input scale ``c_s`` of each source (None: 1 for all).
        dtype: parameter dtype name.
        metadata: anything else (model names, sites, ...), kept verbatim through save/load.
    """

    sources: tuple[str, ...]
    d_in: tuple[int, ...]
    d_sae: int
    architecture: str = "topk"
    k: int | None = None
    sparsity_coefficient: float = 0.0
    norm_scaling_factors: tuple[float, ...] | None = None
    dtype: str = "float32"
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def fail(name: str, why: str) -> None:
            raise ValueError(f"CrosscoderConfig.{name} {why}, got {getattr(self, name)!r}")

        if isinstance(self.sources, str) or not isinstance(self.sources, Sequence):
            fail("sources", "must be a list of source names")
        object.__setattr__(self, "sources", tuple(self.sources))
        if len(self.sources) < 2 or len(set(self.sources)) != len(self.sources):
            fail("sources", "must name at least two distinct sources")
        if not all(isinstance(s, str) and s for s in self.sources):
            fail("sources", "must be non-empty strings")
        if not isinstance(self.d_in, Sequence) or len(self.d_in) != len(self.sources):
            fail("d_in", f"must give one width per source ({len(self.sources)})")
        object.__setattr__(self, "d_in", tuple(self.d_in))
        if not all(_positive_int(d) for d in self.d_in):
            fail("d_in", "must hold positive integers")
        if not _positive_int(self.d_sae):
            fail("d_sae", "must be a positive integer")
        if self.architecture not in CROSSCODER_ARCHITECTURES:
            fail("architecture", f"must be one of {', '.join(CROSSCODER_ARCHITECTURES)}")
        if self.architecture == "topk" and not (_positive_int(self.k) and self.k <= self.d_sae):
            fail("k", f"must satisfy 1 <= k <= d_sae ({self.d_sae}) for a topk crosscoder")
        if not isinstance(self.sparsity_coefficient, int | float) or self.sparsity_coefficient < 0:
            fail("sparsity_coefficient", "must be a number >= 0")
        if self.norm_scaling_factors is not None:
            scales = self.norm_scaling_factors
            if not isinstance(scales, Sequence) or len(scales) != len(self.sources):
                fail("norm_scaling_factors", "must give one scale per source")
            object.__setattr__(self, "norm_scaling_factors", tuple(float(c) for c in scales))
            if not all(math.isfinite(c) and c > 0 for c in self.norm_scaling_factors):
                fail("norm_scaling_factors", "must be finite and positive")
        torch_dtype(self.dtype)
        if not isinstance(self.metadata, Mapping):
            fail("metadata", "must be a mapping")
        object.__setattr__(self, "metadata", dict(self.metadata))

    def width(self, source: str) -> int:
        """``d_in`` of one source."""
        return self.d_in[self.index(source)]

    def index(self, source: str) -> int:
        """Position of ``source`` in `sources` (ValueError naming the known ones)."""
        if source not in self.sources:
            raise ValueError(f"unknown source {source!r}; this crosscoder reads {', '.join(self.sources)}")
        return self.sources.index(source)

    def replace(self, **changes: Any) -> CrosscoderConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every field; tuples as lists)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("sources", "d_in", "norm_scaling_factors"):
            out[name] = None if out[name] is None else list(out[name])
        out["metadata"] = dict(self.metadata)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CrosscoderConfig:
        """Inverse of `to_dict`; an unknown or missing field is an error naming it."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown CrosscoderConfig field(s): {', '.join(unknown)}")
        required = [n for n, f in fields.items() if f.default is f.default_factory is dataclasses.MISSING]
        missing = [n for n in required if n not in d]
        if missing:
            raise ValueError(f"CrosscoderConfig field(s) missing: {', '.join(missing)}")
        return cls(**dict(d))


def _positive_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


class Crosscoder(nn.Module):
    """Per-source encoders and decoders around one shared latent code.

    Inputs and outputs are mappings from source name to ``[..., d_s]`` tensors. Stored tensors
    (`tensors`): ``W_enc_<i> [d_i, d_sae]``, ``W_dec_<i> [d_sae, d_i]``, ``b_dec_<i> [d_i]`` for
    the i-th source of ``cfg.sources`` (indices, so any source name is a valid key) and the shared
    ``b_enc [d_sae]``.
    """

    def __init__(self, cfg: CrosscoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = torch_dtype(cfg.dtype)
        self.W_enc = nn.ParameterList([nn.Parameter(torch.zeros(d, cfg.d_sae, dtype=dtype)) for d in cfg.d_in])
        self.W_dec = nn.ParameterList([nn.Parameter(torch.zeros(cfg.d_sae, d, dtype=dtype)) for d in cfg.d_in])
        self.b_dec = nn.ParameterList([nn.Parameter(torch.zeros(d, dtype=dtype)) for d in cfg.d_in])
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random decoder rows of equal norm in every source (jointly unit norm), tied encoders."""
        per_source = 1.0 / math.sqrt(len(self.cfg.sources))
        for w_enc, w_dec, b_dec in zip(self.W_enc, self.W_dec, self.b_dec, strict=True):
            w = torch.randn(w_dec.shape, generator=generator, dtype=torch.float32)
            w = per_source * w / w.norm(dim=-1, keepdim=True)
            w_dec.copy_(w)
            w_enc.copy_(w.T)
            b_dec.zero_()
        self.b_enc.zero_()

    def scales(self) -> tuple[float, ...]:
        """The input scale ``c_s`` of each source."""
        return self.cfg.norm_scaling_factors or (1.0,) * len(self.cfg.sources)

    def _inputs(self, xs: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        names = self.cfg.sources
        if set(xs) != set(names):
            raise ValueError(f"crosscoder inputs must be exactly {list(names)}, got {sorted(xs)}")
        out = []
        for name, d, c in zip(names, self.cfg.d_in, self.scales(), strict=True):
            x = torch.as_tensor(xs[name])
            if x.shape[-1] != d:
                raise ValueError(f"source {name!r}: expected width {d}, got shape {tuple(x.shape)}")
            out.append(x.to(self.b_enc.dtype) * c)
        return out

    def _pre(self, scaled: Sequence[torch.Tensor]) -> torch.Tensor:
        return sum((x @ w for x, w in zip(scaled, self.W_enc, strict=True)), self.b_enc)

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        acts = torch.relu(pre)
        if self.cfg.architecture == "relu":
            return acts
        vals, idx = acts.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(acts).scatter(-1, idx, vals)

    def pre_activations(self, xs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``Σ_s (c_s x_s) W_enc_s + b_enc`` (``[..., d_sae]``)."""
        return self._pre(self._inputs(xs))

    def encode(self, xs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The shared sparse code ``[..., d_sae]``."""
        return self._activate(self.pre_activations(xs))

    def decode(self, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each source's reconstruction from ``codes``, in the source's own units."""
        return {name: (codes @ w + b) / c for name, w, b, c in
                zip(self.cfg.sources, self.W_dec, self.b_dec, self.scales(), strict=True)}

    def forward(self, xs: Mapping[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``(reconstructions by source, codes)``."""
        codes = self.encode(xs)
        return self.decode(codes), codes

    def decoder_norms(self) -> torch.Tensor:
        """``[S, d_sae]``: the norm of each latent's decoder row in each source."""
        return torch.stack([w.detach().norm(dim=-1) for w in self.W_dec])

    def loss(self, xs: Mapping[str, torch.Tensor], dead: torch.Tensor | None = None,
             aux_coefficient: float = 1 / 32) -> dict[str, torch.Tensor]:
        """Training losses on a batch (scaled units).

        Args:
            xs: the batch, ``[n, d_s]`` per source.
            dead: ``[d_sae]`` bool mask of latents counted as dead (AuxK, ``topk`` only).
            aux_coefficient: weight of the AuxK loss.

        Returns:
            ``loss``; ``mse`` (per-element mean squared error summed over sources, so every source
            counts alike whatever its width); ``mse_per_source`` ``[S]``; ``sparsity``; ``aux``;
            ``codes`` (detached).
        """
        scaled = self._inputs(xs)
        pre = self._pre(scaled)
        codes = self._activate(pre)
        errs = [x - (codes @ w + b) for x, w, b in zip(scaled, self.W_dec, self.b_dec, strict=True)]
        mse_s = torch.stack([e.pow(2).mean() for e in errs])
        sparsity = pre.new_zeros(())
        if self.cfg.architecture == "relu":
            norm_sum = torch.stack([w.norm(dim=-1) for w in self.W_dec]).sum(0)
            sparsity = self.cfg.sparsity_coefficient * (codes * norm_sum).sum(-1).mean()
        aux = self._aux_loss([e.detach() for e in errs], pre, dead)
        total = mse_s.sum() + sparsity + aux_coefficient * aux
        return {"loss": total, "mse": mse_s.sum().detach(), "mse_per_source": mse_s.detach(),
                "sparsity": sparsity.detach(), "aux": aux.detach(), "codes": codes.detach()}

    def _aux_loss(self, errs: list[torch.Tensor], pre: torch.Tensor, dead: torch.Tensor | None) -> torch.Tensor:
        # AuxK (Gao et al. 2024) over the joint residual of every source.
        if self.cfg.architecture != "topk" or dead is None or not bool(dead.any()):
            return pre.new_zeros(())
        k_aux = min(max(max(self.cfg.d_in) // 2, 1), int(dead.sum()))
        vals, idx = torch.where(dead, torch.relu(pre), 0.0).topk(k_aux, dim=-1)
        aux_codes = torch.zeros_like(pre).scatter(-1, idx, vals)
        num = sum((e - aux_codes @ w).pow(2).sum(-1).mean() for e, w in zip(errs, self.W_dec, strict=True))
        denom = sum((e - e.mean(0)).pow(2).sum(-1).mean() for e in errs)
        return num / denom.clamp_min(1e-8)

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """``topk``: project out the gradient part parallel to each latent's joint decoder row."""
        if self.cfg.architecture != "topk" or any(w.grad is None for w in self.W_dec):
            return
        joint = torch.cat([w.detach() for w in self.W_dec], dim=-1)
        unit = joint / joint.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        grad = torch.cat([w.grad for w in self.W_dec], dim=-1)
        grad -= (grad * unit).sum(-1, keepdim=True) * unit
        for w, g in zip(self.W_dec, grad.split(list(self.cfg.d_in), dim=-1), strict=True):
            w.grad.copy_(g)

    @torch.no_grad()
    def after_step(self) -> None:
        """``topk``: rescale each latent's decoder rows to joint unit norm (the split across
        sources stays free, which is what `shared_latents` reads); ``relu`` is left alone, as its
        penalty already pays for decoder norm."""
        if self.cfg.architecture != "topk":
            return
        joint = self.decoder_norms().pow(2).sum(0).sqrt().clamp_min(1e-8)
        for w in self.W_dec:
            w.div_(joint.unsqueeze(-1))

    def feature_ids(self, source: str) -> list[str]:
        """``"<source>:cc<i>"`` for every latent."""
        self.cfg.index(source)
        return [f"{source}:cc{i}" for i in range(self.cfg.d_sae)]

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every stored tensor by its file name (see the class docstring)."""
        out = {"b_enc": self.b_enc.detach()}
        for i in range(len(self.cfg.sources)):
            out[f"W_enc_{i}"] = self.W_enc[i].detach()
            out[f"W_dec_{i}"] = self.W_dec[i].detach()
            out[f"b_dec_{i}"] = self.b_dec[i].detach()
        return out

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """File name -> shape of every tensor a saved crosscoder of this config holds."""
        out: dict[str, tuple[int, ...]] = {"b_enc": (self.cfg.d_sae,)}
        for i, d in enumerate(self.cfg.d_in):
            out |= {f"W_enc_{i}": (d, self.cfg.d_sae), f"W_dec_{i}": (self.cfg.d_sae, d), f"b_dec_{i}": (d,)}
        return out

    def __repr__(self) -> str:
        c = self.cfg
        srcs = ", ".join(f"{s}[{d}]" for s, d in zip(c.sources, c.d_in, strict=True))
        extra = f", k={c.k}" if c.architecture == "topk" else ""
        return f"Crosscoder({srcs}, d_sae={c.d_sae}, {c.architecture}{extra})"


def make_crosscoder(cfg: CrosscoderConfig, *, seed: int | None = 0) -> Crosscoder:
    """Build the module for ``cfg``; ``seed`` initialises it (None: leave zeros, e.g. to load)."""
    cc = Crosscoder(cfg)
    if seed is not None:
        cc.reset_parameters(torch.Generator().manual_seed(int(seed)))
    return cc


# ---- training ----------------------------------------------------------------------------------


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


def _as_rows(sources: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    if not isinstance(sources, Mapping) or len(sources) < 2:
        raise ValueError("sources must map at least two source names to row-aligned arrays [n, d]")
    rows = {}
    for name, arr in sources.items():
        t = torch.as_tensor(np.asarray(arr) if not isinstance(arr, torch.Tensor) else arr)
        t = t.detach().to("cpu", torch.float32)
        if t.ndim != 2 or t.shape[0] < 2 or t.shape[1] < 1:
            raise ValueError(f"source {name!r}: expected an array [n >= 2, d], got shape {tuple(t.shape)}")
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"source {name!r} holds NaN or infinite values")
        rows[str(name)] = t
    counts = {name: t.shape[0] for name, t in rows.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"sources must be row-aligned (the same rows in each); row counts: {counts}")
    return rows


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


# ---- shared and source-specific latents -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LatentPair:
    """One latent seen from two sources (the paper's relative decoder norm).

    Attributes:
        latent: the latent index.
        source_a: first source name.
        source_b: second source name.
        norm_a: ``‖W_dec_a[latent]‖`` (scaled units, so comparable across sources).
        norm_b: ``‖W_dec_b[latent]‖``.
        relative_norm: ``norm_a / (norm_a + norm_b)``: 1 = only in a, 0 = only in b, 0.5 = balanced.
        cosine: cosine between the two decoder rows (None when the widths differ).
        frequency: share of the given rows on which the latent fires (None when no rows were given).
        kind: ``"shared"``, ``"a"`` (specific to source a), ``"b"`` or ``"dead"`` (never fires on
            the given rows, or has no decoder norm).
    """

    latent: int
    source_a: str
    source_b: str
    norm_a: float
    norm_b: float
    relative_norm: float
    cosine: float | None
    frequency: float | None
    kind: str

    @property
    def feature_a(self) -> str:
        """``"<source_a>:cc<latent>"``."""
        return f"{self.source_a}:cc{self.latent}"

    @property
    def feature_b(self) -> str:
        """``"<source_b>:cc<latent>"``."""
        return f"{self.source_b}:cc{self.latent}"

    @property
    def source(self) -> str | None:
        """The source a specific latent belongs to (None for shared or dead ones)."""
        return {"a": self.source_a, "b": self.source_b}.get(self.kind)


def _pick_pair(crosscoder: Crosscoder, sources: Sequence[str] | None) -> tuple[str, str]:
    names = crosscoder.cfg.sources
    pair = tuple(sources) if sources is not None else names[:2]
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ValueError(f"sources must name two different sources of the crosscoder, got {sources!r}")
    for s in pair:
        crosscoder.cfg.index(s)
    return pair[0], pair[1]


def shared_latents(crosscoder: Crosscoder, *, sources: Sequence[str] | None = None,
                   min_norm_fraction: float = 0.1, rows: Mapping[str, Any] | None = None,
                   batch_size: int = 4096) -> list[LatentPair]:
    """Classify every latent as shared between two sources or specific to one.

    A latent is shared when each source holds at least ``min_norm_fraction`` of its summed decoder
    norm (relative norm in ``[f, 1 - f]``), specific to a source otherwise. A latent that never
    fires keeps its initial, balanced decoder, so pass ``rows`` to mark those ``"dead"``.

    Args:
        crosscoder: the crosscoder.
        sources: the two sources to compare (default: the first two).
        min_norm_fraction: the smaller source's share of decoder norm needed to count as shared.
        rows: row-aligned activations of every source (e.g. held-out rows) to measure firing on.
        batch_size: rows per forward pass over ``rows``.

    Returns:
        One `LatentPair` per latent, in latent order.

    Raises:
        ValueError: an unknown source or a fraction outside ``[0, 0.5]``.
    """
    if not 0 <= min_norm_fraction <= 0.5:
        raise ValueError(f"min_norm_fraction must be in [0, 0.5], got {min_norm_fraction}")
    a, b = _pick_pair(crosscoder, sources)
    ia, ib = crosscoder.cfg.index(a), crosscoder.cfg.index(b)
    norms = crosscoder.decoder_norms().float()
    na, nb = norms[ia], norms[ib]
    cos = None
    if crosscoder.cfg.d_in[ia] == crosscoder.cfg.d_in[ib]:
        wa, wb = crosscoder.W_dec[ia].detach().float(), crosscoder.W_dec[ib].detach().float()
        cos = (wa * wb).sum(-1) / (na * nb).clamp_min(1e-12)
    freq = None if rows is None else _firing(crosscoder, rows, batch_size)
    out = []
    for i in range(crosscoder.cfg.d_sae):
        total = float(na[i] + nb[i])
        rel = float(na[i]) / total if total > 1e-12 else 0.5
        if total <= 1e-12 or (freq is not None and freq[i] == 0):
            kind = "dead"
        elif rel > 1 - min_norm_fraction:
            kind = "a"
        elif rel < min_norm_fraction:
            kind = "b"
        else:
            kind = "shared"
        out.append(LatentPair(latent=i, source_a=a, source_b=b, norm_a=float(na[i]), norm_b=float(nb[i]),
                              relative_norm=rel, cosine=None if cos is None else float(cos[i]),
                              frequency=None if freq is None else float(freq[i]), kind=kind))
    return out


def _firing(crosscoder: Crosscoder, rows: Mapping[str, Any], batch_size: int) -> torch.Tensor:
    data = _as_rows(rows)
    n = next(iter(data.values())).shape[0]
    count = torch.zeros(crosscoder.cfg.d_sae)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            count += (crosscoder.encode({s: t[start:start + batch_size] for s, t in data.items()}) != 0).sum(0)
    return count / n


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossSourcePair:
    """A feature pair across two sources, given by one shared crosscoder latent.

    Attributes:
        feature_a: ``"<source_a>:cc<i>"``.
        feature_b: ``"<source_b>:cc<i>"``.
        score: ``2 · min(r, 1 - r)`` for relative norm ``r`` (1: equal weight in both sources),
            times the decoder cosine when the widths agree and ``use_cosine`` is set.
        latent: the latent index ``i``.
        relative_norm: ``r``.
        cosine: decoder cosine (None when widths differ).
    """

    feature_a: str
    feature_b: str
    score: float
    latent: int
    relative_norm: float
    cosine: float | None


def cross_source_pairs(crosscoder: Crosscoder, *, sources: Sequence[str] | None = None,
                       min_norm_fraction: float = 0.1, rows: Mapping[str, Any] | None = None,
                       use_cosine: bool = False, min_score: float = 0.0) -> list[CrossSourcePair]:
    """The shared latents of `shared_latents` as feature id pairs, best score first.

    Args:
        crosscoder: the crosscoder.
        sources: the two sources (default: the first two).
        min_norm_fraction: as in `shared_latents`.
        rows: as in `shared_latents` (latents that never fire on them are left out).
        use_cosine: multiply the score by the decoder cosine (only when widths agree, e.g. the
            same layer of two fine-tunes; across layers the bases differ and cosine means little).
        min_score: drop pairs scoring below this.

    Returns:
        `CrossSourcePair` records sorted by descending score, then latent.
    """
    pairs = []
    for lp in shared_latents(crosscoder, sources=sources, min_norm_fraction=min_norm_fraction, rows=rows):
        if lp.kind != "shared":
            continue
        score = 2 * min(lp.relative_norm, 1 - lp.relative_norm)
        if use_cosine and lp.cosine is not None:
            score *= lp.cosine
        if score >= min_score:
            pairs.append(CrossSourcePair(feature_a=lp.feature_a, feature_b=lp.feature_b, score=score,
                                         latent=lp.latent, relative_norm=lp.relative_norm, cosine=lp.cosine))
    return sorted(pairs, key=lambda p: (-p.score, p.latent))


# ---- save and load ------------------------------------------------------------------------------------


class CrosscoderFormatError(ValueError):
    """A crosscoder folder that does not hold what its config says.

    Attributes:
        path: the offending file.
        tensor: the tensor or config field at fault (None when the whole file is).
    """

    def __init__(self, path: str | os.PathLike[str], message: str, *, tensor: str | None = None) -> None:
        self.path = Path(path)
        self.tensor = tensor
        super().__init__(f"{self.path.name}: {message} ({self.path})")


def save_crosscoder(crosscoder: Crosscoder, path: str | os.PathLike[str]) -> Path:
    """Write ``crosscoder`` as a folder: ``cfg.json`` + ``crosscoder.safetensors``.

    The folder is written beside the target (files through `interpkit._io`) and renamed into
    place; an existing folder is first renamed aside (``.<name>.old-<pid>``) and removed after, so
    a crash never leaves a half-written folder under ``path``.

    Args:
        crosscoder: what to save.
        path: the folder.

    Returns:
        The folder path.
    """
    from safetensors.torch import save_file

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        cfg = {"format": FORMAT_TAG, "version": 1, **crosscoder.cfg.to_dict()}
        atomic_write_text(tmp / CFG_NAME, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        tensors = {name: t.contiguous().cpu() for name, t in crosscoder.tensors().items()}
        with atomic_temp_path(tmp / WEIGHTS_NAME) as weights:
            save_file(tensors, str(weights), metadata={"format": FORMAT_TAG})
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def load_crosscoder(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Crosscoder:
    """Read a folder written by `save_crosscoder` (strict).

    Args:
        path: the folder.
        device: where to place the tensors.

    Returns:
        The crosscoder, in eval mode.

    Raises:
        CrosscoderFormatError: a missing file, an unreadable or invalid ``cfg.json`` (naming the
            field), or a missing, extra or mis-shaped tensor (naming it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_path, weights_path = folder / CFG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            found = sorted(q.name for q in folder.iterdir()) if folder.is_dir() else "no such folder"
            raise CrosscoderFormatError(p, f"missing (folder holds: {found})")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CrosscoderFormatError(cfg_path, f"not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_TAG:
        raise CrosscoderFormatError(cfg_path, f"not a crosscoder config (format must be {FORMAT_TAG!r})",
                                    tensor="format")
    if raw.get("version") != 1:
        raise CrosscoderFormatError(cfg_path, f"unsupported version {raw.get('version')!r}", tensor="version")
    fields = {k: v for k, v in raw.items() if k not in ("format", "version")}
    try:
        cfg = CrosscoderConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        named = re.search(r"CrosscoderConfig\.(\w+)|field\(s\)[^:]*: (\w+)", str(exc))
        bad = None if named is None else named.group(1) or named.group(2)
        raise CrosscoderFormatError(cfg_path, str(exc), tensor=bad) from exc
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CrosscoderFormatError(weights_path, f"unreadable: {exc}") from exc
    cc = Crosscoder(cfg)
    expected = cc.expected_shapes()
    for name in sorted(set(expected) - set(tensors)):
        raise CrosscoderFormatError(weights_path, f"tensor {name!r} missing", tensor=name)
    for name in sorted(set(tensors) - set(expected)):
        raise CrosscoderFormatError(weights_path, f"unexpected tensor {name!r}", tensor=name)
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise CrosscoderFormatError(
                weights_path, f"tensor {name!r}: expected shape {list(shape)}, got {list(tensors[name].shape)}",
                tensor=name)
    with torch.no_grad():
        params = {name: t for name, t in zip(cc.tensors(), _param_list(cc), strict=True)}
        for name, p in params.items():
            if tensors[name].dtype != p.dtype:
                raise CrosscoderFormatError(weights_path, f"tensor {name!r}: dtype {tensors[name].dtype}, "
                                            f"config says {cfg.dtype}", tensor=name)
            p.copy_(tensors[name])
    return cc.to(device).eval()


def _param_list(cc: Crosscoder) -> list[nn.Parameter]:
    out = [cc.b_enc]
    for i in range(len(cc.cfg.sources)):
        out += [cc.W_enc[i], cc.W_dec[i], cc.b_dec[i]]
    return out


# ---- aligned sources from models -------------------------------------------------------------------------


def paired_activations(
    models_and_sites: Sequence[tuple[Any, str]],
    texts: Sequence[Any],
    *,
    pooling: str = "tokens",
    batch_size: int = 8,
    max_length: int | None = 128,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Row-aligned activations of several (model, site) sources over the same texts.

    Token rows (``pooling="tokens"``, BOS left out) align across sources only when every model
    cuts every text into the same tokens: always for several sites of one model, and for
    different models only when their tokenizations agree (checked on the decoded token strings).
    Otherwise use a pooled row per text (``"mean"``, ``"max"`` or ``"last"``).

    Args:
        models_and_sites: ``(ModelWrapper, site)`` pairs; sites of one model run in one pass.
        texts: strings or rows with a ``text`` attribute.
        pooling: ``"tokens"`` (one row per kept token) or a per-text pooling.
        batch_size: texts per forward pass.
        max_length: truncate each tokenised text to this many tokens.
        names: source names (default: the site when there is one model, else ``"<model>@<site>"``).

    Returns:
        Source name -> float32 array ``[rows, d]``, the same rows in every source.

    Raises:
        ValueError: token pooling over models whose tokenizations differ (naming the first text
            where they part), duplicate source names, or too few sources.
    """
    from interpkit.sources._stream import POOLINGS, stream_activations, tokenized_ids

    pairs = [(m, str(s)) for m, s in models_and_sites]
    if len(pairs) < 2:
        raise ValueError("paired_activations needs at least two (model, site) pairs")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    texts = [t if isinstance(t, str) else t.text for t in texts]
    models = list({id(m): m for m, _ in pairs}.values())
    if names is None:
        names = [s if len(models) == 1 else f"{getattr(m, 'name', type(m).__name__)}@{s}" for m, s in pairs]
    names = [str(n) for n in names]
    if len(names) != len(pairs) or len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, one per pair; got {names} (pass names=...)")
    if pooling == "tokens" and len(models) > 1:
        _check_same_tokens(models, texts, max_length, tokenized_ids)
    out: dict[str, np.ndarray] = {}
    index: dict[str, np.ndarray] = {}
    for model in models:
        sites = [s for m, s in pairs if m is model]
        res = stream_activations(model, texts, sites, pooling=pooling, batch_size=batch_size,
                                 max_length=max_length, progress=False)
        for name, (m, s) in zip(names, pairs, strict=True):
            if m is model:
                chunk = res[model.resolve_site(s) if hasattr(model, "resolve_site") else s, pooling].to_chunk()
                out[name] = chunk.values
                index[name] = np.stack([chunk.example_idx, chunk.token_index if chunk.token_index is not None
                                        else np.zeros_like(chunk.example_idx)])
    first = names[0]
    for name in names[1:]:
        if index[name].shape != index[first].shape or not np.array_equal(index[name], index[first]):
            raise ValueError(f"rows of {name!r} and {first!r} do not line up "
                             f"({index[name].shape[1]} vs {index[first].shape[1]} rows)")
    return {name: out[name] for name in names}


def _check_same_tokens(models: Sequence[Any], texts: Sequence[str], max_length: int | None,
                       tokenized_ids: Callable[..., list[list[int]]]) -> None:
    def pieces(model: Any) -> list[list[str]]:
        bos = getattr(model.tokenizer, "bos_token_id", None)
        rows = tokenized_ids(model, texts, max_length=max_length)
        return [[model.tokenizer.decode([i]) for i in (r[1:] if r and r[0] == bos else r)] for r in rows]

    ref = pieces(models[0])
    for other in models[1:]:
        for j, (a, b) in enumerate(zip(ref, pieces(other), strict=True)):
            if a != b:
                raise ValueError(
                    f"pooling='tokens' needs the same tokens in every model, but "
                    f"{getattr(models[0], 'name', 'model 0')} and {getattr(other, 'name', 'another model')} "
                    f"tokenize text {j} ({texts[j][:40]!r}) differently: {a[:8]} vs {b[:8]}; "
                    "use a per-text pooling such as pooling='mean'")
