"""`train_sae`'s settings: presets, resolving explicit arguments over them, and the new SAE's config.

A run's settings dict (``resolve_settings``) is what ``metrics.json`` records, what the SAE's
``metadata["train_settings"]`` keeps and what a checkpoint must match to be resumed (`resume_key`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._base import SAEConfig
from ._data import ActivationSource, RecordsSource

__all__ = ["METHODS", "PRESETS", "Preset", "resolve_settings", "resume_key", "sae_config"]

METHODS = ("torch", "sklearn")
_JUMPRELU_DEFAULTS = {"jumprelu_bandwidth": 0.2, "jumprelu_init_threshold": 0.5}
"""Wider than Gemma Scope's 0.001 / 0.001: short runs on inputs of mean norm ``sqrt(d_in)`` need
the threshold gradient to reach more than a sliver of pre-activations (override with
``config_overrides``)."""
RESUMABLE_CHANGES = ("epochs", "preset")
"""Settings a resumed run may differ in from its checkpoint (more epochs of the same run)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Preset:
    """Default training settings of a preset (explicit `train_sae` arguments win)."""

    pooling: str
    """Rows from a model: ``"mean"`` (one per prompt) or ``"tokens"`` (one per token)."""
    expansion_factor: float
    """``d_sae / d_in`` when ``latent_dim`` is not given."""
    k: int
    """Active latents per row for ``topk`` / ``batchtopk`` (capped at ``d_sae``)."""
    epochs: int
    """Passes over the training rows."""
    batch_size: int
    """Rows per optimiser step."""
    lr: float | None
    """Adam learning rate; None: ``2e-4 / sqrt(d_sae / 2**14)`` (Gao et al. 2024), capped at 1e-3."""


PRESETS: dict[str, Preset] = {
    "minimal": Preset(pooling="mean", expansion_factor=4, k=8, epochs=20, batch_size=64, lr=1e-3),
    "production": Preset(pooling="tokens", expansion_factor=16, k=32, epochs=5, batch_size=1024, lr=None),
}
"""``minimal``: one mean-pooled row per prompt, small and quick. ``production``: token rows, 16×
latents, top-32 codes (``preset=None`` uses these values)."""


def resolve_settings(
    source: ActivationSource, *, preset: str | None, architecture: str, latent_dim: int | None,
    expansion_factor: float | None, k: int | None, sparsity_coefficient: float | None, epochs: int | None,
    batch_size: int | None, lr: float | None, seed: int, method: str, dead_steps: int | None,
) -> dict[str, Any]:
    """The training settings: explicit arguments over the preset's values (None: the production values)."""
    p = PRESETS[preset or "production"]
    d_in = source.d_in
    d_sae = int(latent_dim) if latent_dim is not None else int(round(d_in * (expansion_factor or p.expansion_factor)))
    if d_sae < 1:
        raise ValueError(f"latent_dim must be >= 1, got {d_sae}")
    s: dict[str, Any] = {
        "preset": preset, "method": method, "architecture": architecture, "d_in": d_in, "d_sae": d_sae,
        "k": (min(k or p.k, d_sae) if architecture in ("topk", "batchtopk") else None),
        "sparsity_coefficient": sparsity_coefficient if sparsity_coefficient is not None
        else _default_sparsity(architecture, method),
        "epochs": int(epochs if epochs is not None else p.epochs),
        "batch_size": int(batch_size if batch_size is not None else p.batch_size),
        "lr": float(lr if lr is not None else p.lr or min(1e-3, 2e-4 / math.sqrt(d_sae / 2**14))),
        "seed": int(seed),
    }
    if s["epochs"] < 1 or s["batch_size"] < 1 or s["lr"] <= 0:
        raise ValueError(f"epochs, batch_size and lr must be positive, got {s['epochs']}, {s['batch_size']}, "
                         f"{s['lr']}")
    if k is not None and s["k"] is not None and k > d_sae:
        raise ValueError(f"k={k} is larger than the number of latents ({d_sae})")
    n = source.n_rows
    steps_per_epoch = None if n is None else max(1, math.ceil(n / s["batch_size"]))
    if dead_steps is None:
        # ~10M tokens (Gao et al.), scaled down: at most 1000 steps, at most two epochs
        dead_steps = min(1000, math.ceil(1e7 / s["batch_size"]), 2 * steps_per_epoch if steps_per_epoch else 1000)
    s["dead_steps"] = max(1, int(dead_steps))
    return s


def _default_sparsity(architecture: str, method: str) -> float:
    """Penalty weights for inputs scaled to mean norm ``sqrt(d_in)`` (MSE is a per-element mean)."""
    if method == "sklearn":
        return 0.1
    return {"relu": 0.03, "jumprelu": 0.05}.get(architecture, 0.0)


def resume_key(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a checkpoint must match to be resumed."""
    return {k: v for k, v in settings.items() if k not in RESUMABLE_CHANGES}


def sae_config(settings: dict[str, Any], src: ActivationSource, *, site: str | None, layer: int | None,
               model: Any) -> SAEConfig:
    """The new SAE's config: sizes and sparsity from ``settings``, site / layer / model from the source."""
    from interpkit.models._sites import parse_site

    site = getattr(src, "site", None) or site
    if site is None and layer is not None:
        site = f"layer{int(layer)}.resid_post"
    if layer is None:
        layer = getattr(src, "layer", None)
    if layer is None and site is not None and (parsed := parse_site(site)) is not None:
        layer = parsed[0]
    model_name = getattr(model, "name", None) or getattr(src, "model", None)
    metadata: dict[str, Any] = {"trainer": "interpkit", "train_settings": dict(settings)}
    if isinstance(src, RecordsSource):
        metadata["input_feature_ids"] = list(src.feature_ids)
    extra: dict[str, Any] = dict(_JUMPRELU_DEFAULTS) if settings["architecture"] == "jumprelu" else {}
    if settings.get("d_out") is not None:  # a transcoder: b_dec is in output space
        extra.update(d_out=settings["d_out"], site_out=settings.get("target_site"), apply_b_dec_to_input=False)
    return SAEConfig(
        **extra, architecture=settings["architecture"], d_in=settings["d_in"], d_sae=settings["d_sae"], k=settings["k"],
        sparsity_coefficient=settings["sparsity_coefficient"], model=model_name if isinstance(model_name, str) else None,
        site=site, layer=layer, metadata=metadata,
    )
