"""The sparse-autoencoder module every architecture shares, its config and the registry.

Parameters follow the field's names and shapes (SAELens, dictionary_learning after transposing):
``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_out]``, ``b_dec [d_out]``, where
``d_out = d_in`` for an ordinary SAE. A *transcoder* (``d_out`` and/or ``site_out`` set) reads one
site and reconstructs another (an MLP's input -> its output); its ``b_dec`` lives in output space,
so it is never subtracted from the input, and it may carry a linear skip ``W_skip [d_out, d_in]``
(SAELens's ``skip_transcoder``, circuit-tracer's skip transcoders). An architecture subclass
supplies the activation function (``_activate``) and its sparsity penalty (``sparsity_loss``);
everything else (normalisation, encode/decode, AuxK against dead latents, the unit-norm decoder
constraint) lives here.

Example:
    >>> import torch
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="topk", d_in=8, d_sae=32, k=4), seed=0)
    >>> codes = sae.encode(torch.randn(5, 8))
    >>> int((codes != 0).sum(-1).max()) <= 4
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from interpkit._registry import register

NORMALIZATIONS = ("none", "expected_average_only_in", "constant_norm_rescale")
"""Input normalisations (SAELens's names). ``expected_average_only_in`` scales inputs by a fixed
``norm_scaling_factor`` so their mean norm is ``sqrt(d_in)`` and un-scales the reconstruction;
``constant_norm_rescale`` rescales each input to norm ``sqrt(d_in)`` and restores its norm after."""

_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16,
           "bfloat16": torch.bfloat16}


def torch_dtype(name: str) -> torch.dtype:
    """``"float32"`` (or ``"torch.float32"``) -> ``torch.float32``."""
    key = str(name).removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unsupported dtype {name!r}; choose one of {', '.join(_DTYPES)}")
    return _DTYPES[key]


@dataclass(frozen=True, kw_only=True)
class SAEConfig:
    """Everything needed to rebuild an SAE's module (not its training settings).

    Attributes:
        architecture: a registered name: ``topk``, ``batchtopk``, ``relu``, ``jumprelu``.
        d_in: width of the activations it reads.
        d_sae: number of latents.
        d_out: width of what it reconstructs (a transcoder's output site); None: ``d_in``.
        k: active latents per row (``topk``; the mean per row for ``batchtopk``).
        sparsity_coefficient: weight of the sparsity penalty (L1 for ``relu``, L0 for ``jumprelu``).
        jumprelu_bandwidth: straight-through bandwidth of the JumpReLU threshold gradient.
        jumprelu_init_threshold: initial threshold of every JumpReLU latent.
        apply_b_dec_to_input: subtract ``b_dec`` from the input before encoding (must be False for
            a transcoder: its ``b_dec`` is in output space).
        skip_connection: a transcoder's linear skip ``W_skip [d_out, d_in]`` is added to the output.
        normalize_activations: one of `NORMALIZATIONS`.
        norm_scaling_factor: the fixed input scale of ``expected_average_only_in`` (set by training).
        norm_scaling_factor_out: a transcoder's fixed output scale under ``expected_average_only_in``
            (targets are multiplied by it in training; `SAE.decode` divides by it).
        aux_k: dead latents used by the auxiliary (AuxK) loss; None: ``d_in // 2`` capped at d_sae.
        aux_coefficient: weight of the AuxK loss (0 turns it off).
        dtype: parameter dtype name.
        model: the model the SAE reads (name), when known.
        site: interpkit site name (``"layer6.resid_post"``), when known.
        hook_name: the producer's own hook name (e.g. ``"blocks.6.hook_resid_post"``), when known.
        site_out: a transcoder's output site (``"layer6.mlp_out"``), when known.
        hook_name_out: the producer's hook name of the output site, when known.
        layer: the layer index, when known.
        metadata: anything else (kept verbatim through save/load).
    """

    architecture: str
    d_in: int
    d_sae: int
    d_out: int | None = None
    k: int | None = None
    sparsity_coefficient: float = 0.0
    jumprelu_bandwidth: float = 0.001
    jumprelu_init_threshold: float = 0.001
    apply_b_dec_to_input: bool = True
    skip_connection: bool = False
    normalize_activations: str = "none"
    norm_scaling_factor: float | None = None
    norm_scaling_factor_out: float | None = None
    aux_k: int | None = None
    aux_coefficient: float = 1.0 / 32.0
    dtype: str = "float32"
    model: str | None = None
    site: str | None = None
    hook_name: str | None = None
    site_out: str | None = None
    hook_name_out: str | None = None
    layer: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown SAE architecture {self.architecture!r}; "
                             f"choose one of {', '.join(sorted(ARCHITECTURES))}")
        for name in ("d_in", "d_sae"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"SAEConfig.{name} must be a positive integer, got {v!r}")
        if self.d_out is not None and (not isinstance(self.d_out, int) or isinstance(self.d_out, bool)
                                       or self.d_out < 1):
            raise ValueError(f"SAEConfig.d_out must be a positive integer or None, got {self.d_out!r}")
        ARCHITECTURES[self.architecture].check_config(self)
        if self.normalize_activations not in NORMALIZATIONS:
            raise ValueError(f"SAEConfig.normalize_activations must be one of {', '.join(NORMALIZATIONS)}, "
                             f"got {self.normalize_activations!r}")
        self._check_transcoder()
        torch_dtype(self.dtype)
        object.__setattr__(self, "metadata", dict(self.metadata))

    def _check_transcoder(self) -> None:
        where = f"d_out={self.d_out!r}, site={self.site!r}, site_out={self.site_out!r}"
        if not self.is_transcoder:
            for name in ("norm_scaling_factor_out", "skip_connection"):
                if getattr(self, name):
                    raise ValueError(f"SAEConfig.{name} is for a transcoder only; set d_out or site_out too")
            return
        if self.apply_b_dec_to_input:
            raise ValueError(f"SAEConfig: a transcoder ({where}) needs apply_b_dec_to_input=False: its b_dec "
                             f"has the output's width ({self.output_dim}) and lives in output space, so it "
                             "cannot be subtracted from the input")
        if self.normalize_activations == "constant_norm_rescale":
            raise ValueError(f"SAEConfig: a transcoder ({where}) cannot use normalize_activations="
                             "'constant_norm_rescale' (a per-input norm says nothing about the output's); "
                             "use 'expected_average_only_in' or 'none'")

    @property
    def is_transcoder(self) -> bool:
        """True when the dictionary reconstructs another site (``d_out``, ``site_out`` or ``hook_name_out`` set)."""
        return self.d_out is not None or self.site_out is not None or self.hook_name_out is not None

    @property
    def output_dim(self) -> int:
        """Width of the reconstruction: ``d_out``, else ``d_in``."""
        return self.d_in if self.d_out is None else self.d_out

    @property
    def expansion_factor(self) -> float:
        """``d_sae / d_in``."""
        return self.d_sae / self.d_in

    def replace(self, **changes: Any) -> SAEConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (every field)."""
        return {f.name: (dict(v) if isinstance(v := getattr(self, f.name), Mapping) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SAEConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown SAEConfig field(s): {', '.join(unknown)}")
        return cls(**dict(d))


class SAE(nn.Module):
    """A sparse autoencoder ``x -> f = act(W_enc^T (x - b_dec) + b_enc) -> x̂ = f W_dec + b_dec``.

    A transcoder (``cfg.is_transcoder``) maps ``x -> f = act(W_enc^T x + b_enc) -> ŷ = f W_dec +
    b_dec (+ x W_skip^T)``, ``ŷ`` being the prediction of the output site.

    Subclasses set ``architecture`` and implement ``_activate`` (pre-activations -> codes) and
    ``sparsity_loss``. Use `make_sae` rather than the constructors.
    """

    architecture: ClassVar[str] = ""
    unit_norm_decoder: ClassVar[bool] = True
    """Keep decoder rows at unit norm during training (and project their gradient)."""
    extra_parameters: ClassVar[dict[str, str]] = {}
    """Extra tensors this architecture stores, name -> shape spec (``"d_sae"`` or ``"scalar"``)."""

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dtype = torch_dtype(cfg.dtype)
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, dtype=dtype))
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae, dtype=dtype))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.output_dim, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.output_dim, dtype=dtype))
        if cfg.skip_connection:
            self.W_skip = nn.Parameter(torch.zeros(cfg.output_dim, cfg.d_in, dtype=dtype))

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        """Raise ``ValueError`` when ``cfg`` lacks what this architecture needs."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Tied initialisation: random unit decoder rows, ``W_enc = W_dec^T``, zero biases.

        When ``d_out != d_in`` (a transcoder between sites of different widths) the encoder cannot be
        tied: its columns are drawn independently, also of unit norm. ``W_skip`` starts at zero.
        """
        # Tied init (Gao et al. 2024; Conerly et al. 2024): with W_enc = W_dec^T every latent starts as a
        # matched filter for its own decoder direction, which reduces dead latents early in training.
        with torch.no_grad():
            w = torch.randn(self.cfg.d_sae, self.cfg.output_dim, generator=generator, dtype=torch.float32)
            w = w / w.norm(dim=-1, keepdim=True)
            self.W_dec.copy_(w.to(self.W_dec.dtype))
            if self.cfg.output_dim == self.cfg.d_in:
                self.W_enc.copy_(w.T.to(self.W_enc.dtype))
            else:
                # unit-norm columns: on inputs of norm sqrt(d_in) each pre-activation starts at unit scale, as tied
                e = torch.randn(self.cfg.d_in, self.cfg.d_sae, generator=generator, dtype=torch.float32)
                self.W_enc.copy_((e / e.norm(dim=0, keepdim=True)).to(self.W_enc.dtype))
            self.b_enc.zero_()
            self.b_dec.zero_()
            if self.cfg.skip_connection:
                self.W_skip.zero_()

    # ---- normalisation -----------------------------------------------------------------------

    def _scale(self, x: torch.Tensor) -> torch.Tensor | float:
        mode = self.cfg.normalize_activations
        if mode == "expected_average_only_in":
            return 1.0 if self.cfg.norm_scaling_factor is None else float(self.cfg.norm_scaling_factor)
        if mode == "constant_norm_rescale":
            # Per-row scale to norm sqrt(d_in) (each coordinate ~ unit scale); clamp_min keeps a zero row finite.
            return math.sqrt(self.cfg.d_in) / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return 1.0

    def _out_scale(self, x: torch.Tensor) -> torch.Tensor | float:
        """The scale of the reconstruction: the input's own for an SAE, the fixed output scale for a transcoder."""
        if not self.cfg.is_transcoder:
            return self._scale(x)
        return self.output_scale()

    def output_scale(self) -> float:
        """The fixed scale of the output space (``norm_scaling_factor_out`` of a transcoder under
        ``expected_average_only_in``, ``norm_scaling_factor`` of such an SAE, else 1): ``W_dec`` rows
        divided by it are write-out directions in the model's units."""
        if self.cfg.normalize_activations != "expected_average_only_in":
            return 1.0
        factor = self.cfg.norm_scaling_factor_out if self.cfg.is_transcoder else self.cfg.norm_scaling_factor
        return 1.0 if factor is None else float(factor)

    # ---- forward -----------------------------------------------------------------------------

    def encoder_bias(self) -> torch.Tensor:
        """``b_enc - b_dec W_enc`` (or ``b_enc``): the bias of the encoder as applied to ``s·x``."""
        if self.cfg.apply_b_dec_to_input:
            # (x - b_dec) W_enc written as x W_enc - b_dec W_enc: the same value, but the backward
            # pass gets b_dec's gradient from a vector-matrix product instead of a third
            # [n, d_sae] x [d_sae, d_in] matmul
            return self.b_enc - self.b_dec @ self.W_enc
        return self.b_enc

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        """``W_enc^T (s·x - b_dec) + b_enc`` for input scale ``s`` (``[..., d_sae]``)."""
        return (x.to(self.W_enc.dtype) * self._scale(x)) @ self.W_enc + self.encoder_bias()

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Sparse codes ``[..., d_sae]`` of ``x [..., d_in]``."""
        return self._activate(self.pre_activations(x))

    def decode(self, codes: torch.Tensor, *, scale: torch.Tensor | float | None = None) -> torch.Tensor:
        """``(codes W_dec + b_dec) / scale`` ``[..., d_out]``, without the skip term (see `skip`).

        Args:
            codes: ``[..., d_sae]``.
            scale: the scale to undo. None: a transcoder's fixed output scale (so the result is in the
                output site's units); 1 for an SAE (normalised units; pass ``sae._scale(x)`` for the input's).
        """
        # W_dec and b_dec live in normalised units (s·x, or s_out·y); dividing by s returns to the model's units.
        if scale is None:
            scale = self.output_scale() if self.cfg.is_transcoder else 1.0
        return (codes @ self.W_dec + self.b_dec) / scale

    def skip(self, x: torch.Tensor) -> torch.Tensor | float:
        """A skip transcoder's linear term ``(s·x) W_skip^T / s_out`` in output units (0 without a skip)."""
        if not self.cfg.skip_connection:
            return 0.0
        return (x.to(self.W_enc.dtype) * self._scale(x)) @ self.W_skip.T / self.output_scale()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, codes)``; a transcoder's reconstruction is its prediction of the output site."""
        codes = self.encode(x)
        out = self.decode(codes, scale=self._out_scale(x)) + self.skip(x)
        return out.to(x.dtype), codes

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x`` (same dtype; same shape unless ``d_out != d_in``)."""
        return self.forward(x)[0]

    # ---- training ----------------------------------------------------------------------------

    def sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The architecture's sparsity penalty, already weighted (a scalar)."""
        return pre.new_zeros(())

    def _sparse_encode(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(values, indices)`` ``[n, k]`` of the active latents of the scaled input ``xs`` when the
        architecture has a fixed number per row (TopK), else None. Training then decodes with a
        gather of ``k`` decoder rows, and the encoder's weight gradient is a sparse product,
        instead of dense ``[n, d_sae]`` products."""
        return None

    def loss(self, x: torch.Tensor, dead: torch.Tensor | None = None,
             target: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training losses on a batch ``x [n, d_in]``.

        Args:
            x: the batch.
            dead: ``[d_sae]`` bool mask of latents counted as dead; feeds the AuxK loss.
            target: a transcoder's target rows ``[n, d_out]`` (the output site); an SAE's target is ``x``.

        Returns:
            ``loss`` (total), ``mse`` (mean squared error per element, in normalised units),
            ``sparsity``, ``aux``, ``l0`` (mean active latents per row) and ``fired``
            (``[d_sae]`` bool: latents active on some row), all but ``loss`` detached.

        Raises:
            ValueError: a transcoder without ``target``, or a target of the wrong width.
        """
        xs = x.to(self.W_enc.dtype) * self._scale(x)
        if target is None:
            if self.cfg.is_transcoder:
                raise ValueError(f"{self!r} is a transcoder: its loss needs target= (rows of {self.cfg.site_out or 'the output site'})")
            ys = xs
        else:
            if target.shape[-1] != self.cfg.output_dim or target.shape[0] != x.shape[0]:
                raise ValueError(f"target has shape {tuple(target.shape)}; {self!r} needs [{x.shape[0]}, {self.cfg.output_dim}]")
            ys = target.to(self.W_enc.dtype) * self._out_scale(target)
        sparse = self._sparse_encode(xs)
        pre = None
        if sparse is not None:
            vals, idx = sparse
            # embedding_bag = sum_j vals[:, j] * W_dec[idx[:, j]]: only the k chosen decoder rows per input.
            recon = torch.nn.functional.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum")
            recon = recon + self.b_dec
            active = vals.detach() > 0
            fired = torch.zeros(self.cfg.d_sae, dtype=torch.bool, device=x.device)
            fired[idx[active]] = True
            l0 = active.sum(-1).float().mean()
            sparsity = xs.new_zeros(())
        else:
            pre = xs @ self.W_enc + self.encoder_bias()
            codes = self._activate(pre)
            recon = codes @ self.W_dec + self.b_dec
            active = codes.detach() != 0
            fired = active.any(0)
            l0 = active.sum(-1).float().mean()
            sparsity = self.sparsity_loss(pre, codes)
        if self.cfg.skip_connection:
            recon = recon + xs @ self.W_skip.T
        err = ys - recon
        # Mean over rows and dimensions of the scaled target, so the MSE scale does not depend on the width or
        # the model's activation norm (with a normalisation on). A transcoder's error is against its target, so
        # AuxK below revives dead latents on the target's residual.
        mse = err.pow(2).mean()
        aux = xs.new_zeros(())
        if dead is not None and self.cfg.aux_coefficient != 0 and bool(dead.any()):
            dead_idx = dead.nonzero().squeeze(1)
            if pre is not None:
                pre_dead = pre[:, dead_idx]
            else:  # only the dead latents' pre-activations: a product as wide as they are few
                pre_dead = xs @ self.W_enc[:, dead_idx] + self.encoder_bias()[dead_idx]
            aux = self._aux(err.detach(), pre_dead, dead_idx)
        total = mse + sparsity + self.cfg.aux_coefficient * aux
        return {"loss": total, "mse": mse.detach(), "sparsity": sparsity.detach(), "aux": aux.detach(),
                "l0": l0.detach(), "fired": fired}

    def aux_loss(self, err: torch.Tensor, pre: torch.Tensor, dead: torch.Tensor | None) -> torch.Tensor:
        """AuxK (Gao et al. 2024): reconstruct the residual error from the top dead latents.

        Args:
            err: the residual ``s·x - x̂`` (a transcoder's: ``s_out·y - ŷ``), detached, ``[n, d_out]``.
            pre: every latent's pre-activation ``[n, d_sae]``.
            dead: ``[d_sae]`` bool mask of dead latents.

        The loss is the squared error of that reconstruction relative to the residual's variance,
        so it is comparable across layers; zero when no latent is dead.
        """
        if dead is None or self.cfg.aux_coefficient == 0 or not bool(dead.any()):
            return pre.new_zeros(())
        dead_idx = dead.nonzero().squeeze(1)
        return self._aux(err, pre[:, dead_idx], dead_idx)

    def _aux(self, err: torch.Tensor, pre_dead: torch.Tensor, dead_idx: torch.Tensor) -> torch.Tensor:
        # Gao et al. 2024: the k_aux ~ d_in / 2 dead latents with the largest pre-activations try to model
        # the main reconstruction's residual; the residual is detached, so the gradient revives the dead
        # latents instead of changing the main reconstruction.
        k_aux = min(self.cfg.aux_k or max(self.cfg.output_dim // 2, 1), int(dead_idx.numel()))
        vals, idx = torch.relu(pre_dead).topk(k_aux, dim=-1, sorted=False)
        aux_recon = torch.nn.functional.embedding_bag(dead_idx[idx], self.W_dec, per_sample_weights=vals,
                                                      mode="sum")
        # Normalised MSE: divide by the residual's total variance (batch-centred), so aux_coefficient (1/32 in
        # Gao et al.) has the same meaning whatever the residual's magnitude.
        denom = (err - err.mean(0, keepdim=True)).pow(2).sum(-1).mean().clamp_min(1e-8)
        return (err - aux_recon).pow(2).sum(-1).mean() / denom

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm (the encoder columns take the inverse scale so the
        function is unchanged for ReLU-type codes)."""
        if not self.unit_norm_decoder:
            return
        # pre_i scales by n_i, so ReLU / JumpReLU codes scale by n_i and codes·W_dec is unchanged. For TopK
        # the choice of top k can shift slightly; with the radial gradient removed the norms stay ~1, so the
        # change per step is second order.
        norms = self.W_dec.norm(dim=-1).clamp_min(1e-8)
        self.W_dec.div_(norms.unsqueeze(-1))
        self.W_enc.mul_(norms.unsqueeze(0))
        self.b_enc.mul_(norms)
        self._rescale_extra(norms)

    def _rescale_extra(self, norms: torch.Tensor) -> None:
        """Scale architecture tensors that live in code units (JumpReLU's threshold)."""

    @torch.no_grad()
    def remove_parallel_decoder_grad(self) -> None:
        """Project out the part of each decoder row's gradient parallel to the row."""
        if not self.unit_norm_decoder or self.W_dec.grad is None:
            return
        unit = self.W_dec / self.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        # Keeping only the gradient tangent to each row's unit sphere (as SAELens / Gao et al.) stops the
        # optimiser from spending steps growing norms that normalize_decoder would undo.
        parallel = (self.W_dec.grad * unit).sum(-1, keepdim=True)
        self.W_dec.grad.sub_(parallel * unit)

    def after_step(self) -> None:
        """Called by the trainer after every optimiser step."""
        self.normalize_decoder()

    # ---- conveniences --------------------------------------------------------------------------

    @property
    def d_in(self) -> int:
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        return self.cfg.d_sae

    @property
    def d_out(self) -> int:
        """Width of the reconstruction (``d_in`` for an SAE)."""
        return self.cfg.output_dim

    @property
    def is_transcoder(self) -> bool:
        """True for a transcoder (see `SAEConfig.is_transcoder`)."""
        return self.cfg.is_transcoder

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every stored tensor by name (the four standard ones, ``W_skip`` if any, and the architecture's extras)."""
        return {name: t.detach() for name, t in self.state_dict().items()}

    def __repr__(self) -> str:
        c = self.cfg
        extra = f", k={c.k}" if c.k is not None else ""
        where = f", site={c.site!r}" if c.site else ""
        if c.is_transcoder:
            where += f", d_out={c.output_dim}" + (f", site_out={c.site_out!r}" if c.site_out else "")
        return f"{type(self).__name__}(d_in={c.d_in}, d_sae={c.d_sae}{extra}{where})"


ARCHITECTURES: dict[str, type[SAE]] = {}
"""Registered architectures, name -> SAE subclass."""


def register_architecture(name: str) -> Callable[[type[SAE]], type[SAE]]:
    """Class decorator: register an `SAE` subclass under ``name``."""

    def wrap(cls: type[SAE]) -> type[SAE]:
        cls.architecture = name
        return register(ARCHITECTURES, name, cls, "SAE architecture")

    return wrap


def make_sae(cfg: SAEConfig, *, seed: int | None = 0) -> SAE:
    """Build the module for ``cfg``; ``seed`` initialises it (None: leave zeros, e.g. to load)."""
    sae = ARCHITECTURES[cfg.architecture](cfg)
    if seed is not None:
        gen = torch.Generator().manual_seed(int(seed))
        sae.reset_parameters(gen)
    return sae
