"""The sparse-autoencoder module every architecture shares, its config and the registry.

Parameters follow the field's names and shapes (SAELens, dictionary_learning after transposing):
``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``. An
architecture subclass supplies the activation function (``_activate``) and its sparsity penalty
(``sparsity_loss``); everything else (normalisation, encode/decode, AuxK against dead latents, the
unit-norm decoder constraint) lives here.

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
        k: active latents per row (``topk``; the mean per row for ``batchtopk``).
        sparsity_coefficient: weight of the sparsity penalty (L1 for ``relu``, L0 for ``jumprelu``).
        jumprelu_bandwidth: straight-through bandwidth of the JumpReLU threshold gradient.
        jumprelu_init_threshold: initial threshold of every JumpReLU latent.
        apply_b_dec_to_input: subtract ``b_dec`` from the input before encoding.
        normalize_activations: one of `NORMALIZATIONS`.
        norm_scaling_factor: the fixed input scale of ``expected_average_only_in`` (set by training).
        aux_k: dead latents used by the auxiliary (AuxK) loss; None: ``d_in // 2`` capped at d_sae.
        aux_coefficient: weight of the AuxK loss (0 turns it off).
        dtype: parameter dtype name.
        model: the model the SAE reads (name), when known.
        site: interpkit site name (``"layer6.resid_post"``), when known.
        hook_name: the producer's own hook name (e.g. ``"blocks.6.hook_resid_post"``), when known.
        layer: the layer index, when known.
        metadata: anything else (kept verbatim through save/load).
    """

    architecture: str
    d_in: int
    d_sae: int
    k: int | None = None
    sparsity_coefficient: float = 0.0
    jumprelu_bandwidth: float = 0.001
    jumprelu_init_threshold: float = 0.001
    apply_b_dec_to_input: bool = True
    normalize_activations: str = "none"
    norm_scaling_factor: float | None = None
    aux_k: int | None = None
    aux_coefficient: float = 1.0 / 32.0
    dtype: str = "float32"
    model: str | None = None
    site: str | None = None
    hook_name: str | None = None
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
        ARCHITECTURES[self.architecture].check_config(self)
        if self.normalize_activations not in NORMALIZATIONS:
            raise ValueError(f"SAEConfig.normalize_activations must be one of {', '.join(NORMALIZATIONS)}, "
                             f"got {self.normalize_activations!r}")
        torch_dtype(self.dtype)
        object.__setattr__(self, "metadata", dict(self.metadata))

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
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, dtype=dtype))

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        """Raise ``ValueError`` when ``cfg`` lacks what this architecture needs."""

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Tied initialisation: random unit decoder rows, ``W_enc = W_dec^T``, zero biases."""
        # Tied init (Gao et al. 2024; Conerly et al. 2024): with W_enc = W_dec^T every latent starts as a
        # matched filter for its own decoder direction, which reduces dead latents early in training.
        with torch.no_grad():
            w = torch.randn(self.cfg.d_sae, self.cfg.d_in, generator=generator, dtype=torch.float32)
            w = w / w.norm(dim=-1, keepdim=True)
            self.W_dec.copy_(w.to(self.W_dec.dtype))
            self.W_enc.copy_(w.T.to(self.W_enc.dtype))
            self.b_enc.zero_()
            self.b_dec.zero_()

    # ---- normalisation -----------------------------------------------------------------------

    def _scale(self, x: torch.Tensor) -> torch.Tensor | float:
        mode = self.cfg.normalize_activations
        if mode == "expected_average_only_in":
            return 1.0 if self.cfg.norm_scaling_factor is None else float(self.cfg.norm_scaling_factor)
        if mode == "constant_norm_rescale":
            # Per-row scale to norm sqrt(d_in) (each coordinate ~ unit scale); clamp_min keeps a zero row finite.
            return math.sqrt(self.cfg.d_in) / x.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        return 1.0

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

    def decode(self, codes: torch.Tensor, *, scale: torch.Tensor | float = 1.0) -> torch.Tensor:
        """``(codes W_dec + b_dec) / scale``: the reconstruction in the input's units."""
        # W_dec and b_dec live in normalised units (s·x); dividing by s returns to the input's units.
        return (codes @ self.W_dec + self.b_dec) / scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(reconstruction, codes)``."""
        codes = self.encode(x)
        return self.decode(codes, scale=self._scale(x)).to(x.dtype), codes

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction of ``x`` (same shape and dtype)."""
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

    def loss(self, x: torch.Tensor, dead: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Training losses on a batch ``x [n, d_in]``.

        Args:
            x: the batch.
            dead: ``[d_sae]`` bool mask of latents counted as dead; feeds the AuxK loss.

        Returns:
            ``loss`` (total), ``mse`` (mean squared error per element, in normalised units),
            ``sparsity``, ``aux``, ``l0`` (mean active latents per row) and ``fired``
            (``[d_sae]`` bool: latents active on some row), all but ``loss`` detached.
        """
        xs = x.to(self.W_enc.dtype) * self._scale(x)
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
        err = xs - recon
        # Mean over rows and dimensions of the scaled input, so the MSE scale does not depend on d_in or the
        # model's activation norm (with a normalisation on).
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
            err: the residual ``s·x - x̂`` (detached) ``[n, d_in]``.
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
        k_aux = min(self.cfg.aux_k or max(self.cfg.d_in // 2, 1), int(dead_idx.numel()))
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

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every stored tensor by name (the four standard ones plus the architecture's extras)."""
        return {name: t.detach() for name, t in self.state_dict().items()}

    def __repr__(self) -> str:
        c = self.cfg
        extra = f", k={c.k}" if c.k is not None else ""
        where = f", site={c.site!r}" if c.site else ""
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
