"""The steering modes of AxBench §4.3: addition, and the clamping variants as edits.

``"addition"`` is ``h + α·w`` at every position (the default; `steer_generations` applies it).
The others replace part of the activation with a value set by α = factor × m_c:

- ``"clamping"`` (subspace clamping, any rank-1 direction ``w``): ``h ← h − ReLU(h·w) w + α w``
  from position ``prefix_length`` on (`subspace_clamp`; AxBench ``SubspaceIntervention``,
  ``axbench/models/interventions.py`` lines 286-315);
- ``"sae-clamping"``: encode with the SAE, set latent ``c`` to α, decode, add back the
  reconstruction error (`sae_clamp`; ``DictionaryAdditionIntervention``, lines 318-365);
- ``"sae-min-clamping"``: the same with latent ``c`` set to ``max(z_c, α)``
  (``DictionaryMinClampingIntervention``, lines 368-418).

The SAE modes use AxBench's own factor grid, `SAE_CLAMP_FACTORS` (`mode_factors`).

Example:
    >>> import torch
    >>> w = torch.tensor([1.0, 0.0])
    >>> h = torch.tensor([[[3.0, 1.0], [-2.0, 1.0]]])
    >>> from interpkit.models import apply_edit
    >>> apply_edit(subspace_clamp("layer0.resid_post", w, 5.0), h).tolist()
    [[[5.0, 1.0], [3.0, 1.0]]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from interpkit.bench.methods import Fitted, SteerContext
    from interpkit.models import Apply

__all__ = ["SAE_CLAMP_FACTORS", "STEER_MODES", "factor_grid", "mode_context", "mode_factors", "sae_clamp",
           "subspace_clamp"]

STEER_MODES = ("addition", "clamping", "sae-clamping", "sae-min-clamping")
"""Steering interventions (AxBench ``steering_intervention_type``: addition, clamping, min_clamping)."""

SAE_CLAMP_FACTORS = (0.4, 0.8, 1.2, 1.6, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 20.0, 40.0, 60.0, 100.0)
"""AxBench's factor grid for SAE clamping (``sweep/wuzhengx/2b/l10/gemmascope_clamp.yaml``,
``steering_factors``, "SAE clamping only"; the same in ``gemmascope_min_clamp.yaml``)."""

_MAX_POSITIONS = 8192


def subspace_clamp(site: str, vector: Any, strength: float, *, prefix_length: int = 0,
                   max_positions: int = _MAX_POSITIONS) -> Apply:
    """``h ← h − ReLU(h·w) w + α w`` at positions ``prefix_length`` to ``max_positions``.

    The positive part of ``h``'s component along ``w`` is removed and ``α w`` put in its place
    (a negative component is kept: ReLU, as AxBench). ``w`` is used as stored (AxBench's
    ``proj.weight``): for a unit vector this is a projection, for SSV's unnormalised vector it is
    AxBench's formula as written. AxBench keeps the first ``prefix_length`` positions of the padded
    prompt tensor; here they are each prompt's own first positions (the edit has ``positions``, so
    generation runs one prompt at a time and left padding cannot shift them).

    Args:
        site: where.
        vector: ``[d_model]`` direction (numpy or torch).
        strength: α.
        prefix_length: leading positions left untouched (BOS, the shared chat header).
        max_positions: the last position edited (exclusive).
    """
    import torch

    from interpkit.models import Apply

    w = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
    alpha = float(strength)

    def fn(x: torch.Tensor) -> torch.Tensor:
        v = w.to(device=x.device, dtype=torch.float32)
        h = x.float()
        latent = torch.relu(h @ v)
        return (h - latent.unsqueeze(-1) * v + alpha * v).to(x.dtype)

    positions = None if prefix_length <= 0 else range(int(prefix_length), int(max_positions))
    return Apply(site, fn, positions=positions, name="subspace-clamp")


def sae_clamp(sae: Any, latent: int, strength: float, site: str, *, minimum: bool = False) -> Apply:
    """SAE clamping: latent ``c`` set to α (``minimum``: to ``max(z_c, α)``), the error term kept.

    ``decode(z') + (h − decode(z))`` with ``z = encode(h)`` and ``z'`` equal to ``z`` except
    ``z'_c``; the decoder being linear this is ``h + (z'_c − z_c) W_dec[c] / s`` for the SAE's input
    scale ``s`` (`interpkit.sae.clamp_latent`). Every position, as AxBench.
    """
    from interpkit.sae import clamp_latent

    alpha = float(strength)
    if minimum:
        import torch

        def value(z: torch.Tensor) -> torch.Tensor:
            return torch.clamp_min(z, alpha)

        return clamp_latent(sae, int(latent), value, site=site)
    return clamp_latent(sae, int(latent), alpha, site=site)


def mode_factors(mode: str) -> tuple[float, ...]:
    """The default factor grid of a steering mode (AxBench's 14, or its SAE clamping grid)."""
    from ._steer import FACTORS

    _check(mode)
    return SAE_CLAMP_FACTORS if mode.startswith("sae-") else FACTORS


def _check(mode: str) -> None:
    if mode not in STEER_MODES:
        raise ValueError(f"steering mode must be one of {STEER_MODES}, got {mode!r}")


def _max_positions(model: Any) -> int:
    cfg = getattr(getattr(model, "hf_model", None), "config", None)
    for attr in ("max_position_embeddings", "n_positions"):
        n = getattr(cfg, attr, None)
        if isinstance(n, int) and n > 0:
            return n
    return _MAX_POSITIONS


def mode_context(mode: str, ctx: Any, fitted: Fitted) -> SteerContext | str | None:
    """How ``fitted`` steers under ``mode``: None for addition, a `SteerContext`, or why it cannot.

    ``"clamping"`` needs a ``steer_vector``; the SAE modes need a fit that is an SAE latent
    (``info["kind"] == "sae"``: SAE, SAE-A, a Criterion-only pick of a latent) and ``ctx.sae()``.
    """
    from interpkit.bench.methods import SteerContext

    _check(mode)
    if mode == "addition":
        return None
    if mode == "clamping":
        if fitted.steer_vector is None:
            return "clamping needs a steer_vector"
        vec, site = fitted.steer_vector, ctx.site
        prefix, limit = int(getattr(ctx, "prefix_length", 0) or 0), _max_positions(ctx.model)

        def open_clamp(model: Any, strength: float) -> Any:
            return model.edits(subspace_clamp(site, vec, strength, prefix_length=prefix, max_positions=limit))

        return SteerContext(open=open_clamp, kind="clamping")
    info = fitted.info or {}
    if info.get("kind") != "sae" or "latent" not in info:
        return f"{mode} needs an SAE latent (SAE, SAE-A)"
    sae, latent, site, minimum = ctx.sae(), int(info["latent"]), ctx.site, mode == "sae-min-clamping"

    def open_sae(model: Any, strength: float) -> Any:
        return model.edits(sae_clamp(sae, latent, strength, site, minimum=minimum))

    return SteerContext(open=open_sae, kind=mode)


def factor_grid(mode: str, factors: Sequence[float] | None) -> tuple[float, ...]:
    """``factors`` as given, else the mode's default grid."""
    return tuple(float(f) for f in factors) if factors else mode_factors(mode)
