"""The crosscoder module and its config: per-source encoders and decoders around one shared code."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from .._base import torch_dtype

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


# ---- row-aligned inputs ----------------------------------------------------------------------------


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
