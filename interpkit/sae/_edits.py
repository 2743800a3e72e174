"""Edits of SAE latents: steer along a latent's decoder row, clamp or ablate it, splice the SAE in.

`latent_feature` is a `~interpkit.causal.CausalFeature` whose steering adds
``strength × W_dec[i]``; `clamp_latent` sets latent ``i`` to a value while keeping the SAE's
error term (``x + (value - f_i(x)) W_dec[i]``), `splice` replaces the activation by its
reconstruction; `transcoder_splice` replaces a transcoder's output site (an MLP's output) by its
prediction from the input site of the same pass; `sae_interventions` runs them with random
controls into intervention records.

Example:
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="topk", d_in=16, d_sae=32, k=4,
    ...                          site="layer1.resid_post"), seed=0)
    >>> clamp_latent(sae, 3, 0.0).name, latent_feature(sae, 3).feature_id
    ('sae-clamp-3', 'layer1.resid_post:sae3')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._features import _default_prefix, _site, _unit_scale, inference, sae_feature_ids

if TYPE_CHECKING:
    import torch

    from interpkit.causal import CausalFeature
    from interpkit.models import Apply
    from interpkit.records import InterventionRecord

    from ._base import SAE

__all__ = ["clamp_latent", "latent_feature", "sae_interventions", "splice", "transcoder_splice"]


def _check_latent(sae: SAE, i: int) -> int:
    i = int(i)
    if not 0 <= i < sae.d_sae:
        raise ValueError(f"latent {i} out of range for an SAE with {sae.d_sae} latents")
    return i


def _write_direction(sae: SAE, i: int) -> torch.Tensor:
    """Latent ``i``'s write-out direction in the model's units: ``W_dec[i]`` divided by the fixed
    input scale of ``expected_average_only_in`` (per-input scales cannot be folded in)."""
    w = sae.W_dec[i].detach()
    scale = sae.output_scale() if sae.is_transcoder else _unit_scale(sae)  # a transcoder writes in output units
    return w / scale if scale != 1.0 else w


def latent_feature(sae: SAE, i: int, *, feature_id: str | None = None, site: str | None = None) -> CausalFeature:
    """Latent ``i`` as a `~interpkit.causal.CausalFeature`: steering adds ``strength × W_dec[i]``.

    The direction is ``W_dec[i]`` in the model's units (divided by ``norm_scaling_factor`` for
    ``expected_average_only_in`` SAEs; ``constant_norm_rescale`` has no fixed unit, so ``W_dec[i]``
    as is).

    Args:
        sae: the SAE.
        i: latent index.
        feature_id: the id written into records (default ``sae_feature_ids(sae)[i]``).
        site: where it writes (default: from the SAE's config).

    Raises:
        ValueError: ``i`` out of range, a zero decoder row, or no known site.
    """
    from interpkit.causal import CausalFeature

    i = _check_latent(sae, i)
    if site is None and sae.is_transcoder:  # a transcoder's latents write into its output site
        from ._site import sae_site_out

        site = sae_site_out(sae)
    site = _site(sae, site)
    fid = feature_id if feature_id is not None else f"{_default_prefix(sae)}{i}"
    return CausalFeature(feature_id=fid, site=site, direction=_write_direction(sae, i).float().cpu().numpy())


def splice(sae: SAE, site: str | None = None, *, positions: Sequence[int] | None = None) -> Apply:
    """An edit replacing the site activation by the SAE's reconstruction (``name="sae-splice"``).

    Args:
        sae: the SAE.
        site: where (default: from the SAE's config).
        positions: absolute positions to splice (None: all, BOS included; `lm_loss_recovered`
            passes every position but BOS).

    Raises:
        ValueError: no known site; at run time, a site whose width is not ``d_in``.
    """
    from interpkit.models import Apply

    site = _site(sae, site)

    def fn(x: torch.Tensor) -> torch.Tensor:
        _check_width(sae, site, x)
        with inference(sae):
            return sae.reconstruct(x.to(sae.W_dec.device)).to(x.device)

    return Apply(site, fn, positions=positions, name="sae-splice")


def transcoder_splice(sae: SAE, site: str | None = None, site_out: str | None = None, *,
                      positions: Sequence[int] | None = None) -> tuple[Apply, Apply]:
    """Two edits that replace a transcoder's output site by its prediction (``name="transcoder-splice"``).

    The first edit keeps the input site's activation (unchanged) as the forward pass goes by; the
    second replaces the output site's activation, at the same positions, by the transcoder's
    output on it. Apply both together (``model.edits(*transcoder_splice(tc))``); the input site
    must come before the output site in the forward pass (``mlp_in`` before ``mlp_out``).

    Args:
        sae: the transcoder.
        site: the input site (default: from the config, see `~interpkit.sae.sae_site`).
        site_out: the output site (default: ``cfg.site_out``).
        positions: absolute positions to splice (None: all).

    Raises:
        ValueError: not a transcoder, or no known site; at run time, widths that do not match, or
            the output site reached before the input site.
    """
    from interpkit.models import Apply

    from ._site import sae_site_out

    if not sae.is_transcoder:
        raise ValueError(f"{sae!r} is not a transcoder; use splice()")
    site = _site(sae, site)
    site_out = site_out if site_out is not None else sae_site_out(sae)
    seen: dict[str, torch.Tensor] = {}

    def keep(x: torch.Tensor) -> torch.Tensor:
        _check_width(sae, site, x)
        seen["x"] = x
        return x

    def replace(y: torch.Tensor) -> torch.Tensor:
        x = seen.pop("x", None)
        if x is None:
            raise ValueError(f"transcoder splice: {site_out} ran before {site}, so there is no input to read")
        if y.shape[-1] != sae.d_out or x.shape[:-1] != y.shape[:-1]:
            raise ValueError(f"{site_out} has shape {tuple(y.shape)}, but the transcoder writes d_out={sae.d_out} "
                             f"for inputs of shape {tuple(x.shape)}")
        with inference(sae):
            return sae.reconstruct(x.to(sae.W_dec.device)).to(y.device, y.dtype)

    return (Apply(site, keep, positions=positions, name="transcoder-read"),
            Apply(site_out, replace, positions=positions, name="transcoder-splice"))


def _check_width(sae: SAE, site: str, x: torch.Tensor) -> None:
    if x.shape[-1] != sae.d_in:
        raise ValueError(f"{site} has width {x.shape[-1]}, but the SAE reads d_in={sae.d_in}")


def _displace(sae: SAE, i: int, value: Any, direction: torch.Tensor | None, site: str,
              positions: Sequence[int] | None, name: str) -> Apply:
    """``x + (target - f_i(x)) · direction / scale(x)`` (direction: ``W_dec[i]`` unless given)."""
    from interpkit.models import Apply

    def fn(x: torch.Tensor) -> torch.Tensor:
        _check_width(sae, site, x)
        xs = x.to(sae.W_dec.device)
        with inference(sae):
            f = sae.encode(xs)[..., i]
        target = value(f) if callable(value) else float(value)
        w = sae.W_dec[i] if direction is None else direction.to(sae.W_dec.device, sae.W_dec.dtype)
        scale = sae._scale(xs)
        delta = (target - f).unsqueeze(-1) * w
        return (xs + (delta / scale).to(xs.dtype)).to(x.device)

    return Apply(site, fn, positions=positions, name=name)


def clamp_latent(
    sae: SAE,
    i: int,
    value: float | Callable[[torch.Tensor], torch.Tensor],
    *,
    site: str | None = None,
    positions: Sequence[int] | None = None,
) -> Apply:
    """An edit setting latent ``i`` to ``value`` and keeping the SAE's error term.

    ``x -> x + (value - f_i(x)) · W_dec[i]`` (divided by the SAE's input scale when it normalises),
    i.e. the reconstruction with latent ``i`` replaced plus the part of ``x`` the SAE does not
    explain; no other latent changes. ``value=0`` ablates the latent; a callable maps the current
    activation to the new one (``lambda f: 2 * f`` doubles it, ``lambda f: f`` is a no-op).

    Args:
        sae: the SAE.
        i: latent index.
        value: the clamped activation, or a function of the current one.
        site: where (default: from the SAE's config).
        positions: absolute positions to edit (None: all).

    Raises:
        ValueError: ``i`` out of range or no known site.
    """
    i = _check_latent(sae, i)
    return _displace(sae, i, value, None, _site(sae, site), positions, f"sae-clamp-{i}")


def sae_interventions(
    sae: SAE,
    model: Any,
    latents: Iterable[int],
    positives: Sequence[Any],
    negatives: Sequence[Any],
    metric: Any,
    *,
    kinds: Sequence[str] = ("steer",),
    strength: float = 1.0,
    clamp_value: float | None = None,
    n_controls: int = 1,
    seed: int = 0,
    batch_size: int = 16,
    site: str | None = None,
    feature_ids: Sequence[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> list[InterventionRecord]:
    """Intervention records for SAE latents, with random same-norm controls.

    Kinds:

    - ``steer`` / ``amplify``: `~interpkit.causal.run_interventions` on `latent_feature` (adds
      ``strength × W_dec[i]``; controls are random directions of the same norm);
    - ``clamp``: `clamp_latent` to ``clamp_value`` (default ``strength``), recorded as kind
      ``"clamp"`` with ``clamp_value`` in the extras;
    - ``ablate``: `clamp_latent` to 0 (the latent's own contribution removed, error term kept),
      recorded with ``ablate_mode="sae_latent"``; the runner's projection ablation of the decoder
      direction would also remove other latents' share of it.

    Controls of ``clamp``/``ablate`` move ``x`` by the same amount ``target - f_i(x)`` along a random
    direction of ``W_dec[i]``'s norm (ids ``"<feature>::control<k>"``, as the runner writes them).
    Records come steer/amplify first (the runner's order), then per latent the other kinds.

    Args:
        sae: the SAE.
        model: an interpkit ``ModelWrapper``.
        latents: latent indices.
        positives: prompts where the criterion should hold (one record each).
        negatives: prompts for the side effect (mean TV distance of the next-token distribution).
        metric: a criterion metric (`~interpkit.causal.metric_for_criterion`).
        kinds: among ``steer``, ``amplify``, ``clamp``, ``ablate``.
        strength: steering strength.
        clamp_value: the value ``clamp`` sets (None: ``strength``).
        n_controls: random controls per latent and kind.
        seed: seeds the controls.
        batch_size: prompts per forward pass.
        site: where the SAE reads (default: from its config).
        feature_ids: ids of all ``d_sae`` latents (default `sae_feature_ids`).
        extra: keys written into every record.

    Raises:
        ValueError: an unknown kind, a latent out of range, or no positive prompt.
    """
    from interpkit.causal import EditSession, control_features, run_interventions
    from interpkit.records import canonical_intervention
    from interpkit.sources._datasets import as_prompt_rows

    site = _site(sae, site, model)
    latents = [_check_latent(sae, i) for i in latents]
    ids = list(feature_ids) if feature_ids is not None else sae_feature_ids(sae)
    if len(ids) != sae.d_sae:
        raise ValueError(f"feature_ids has {len(ids)} ids for an SAE with {sae.d_sae} latents")
    kinds = [canonical_intervention(k) for k in kinds]
    bad = [k for k in kinds if k not in ("steer", "amplify", "clamp", "ablate")]
    if bad:
        raise ValueError(f"sae_interventions supports steer, amplify, clamp and ablate, got {bad}")
    feats = [latent_feature(sae, i, feature_id=ids[i], site=site) for i in latents]
    out: list[InterventionRecord] = []
    steer_kinds = [k for k in kinds if k in ("steer", "amplify")]
    if steer_kinds and feats:
        out.extend(run_interventions(model, feats, positives, negatives, metric, kinds=steer_kinds,
                                     strength=strength, n_controls=n_controls, seed=seed,
                                     batch_size=batch_size, extra=extra))
    edit_kinds = [k for k in kinds if k in ("clamp", "ablate")]
    if not edit_kinds or not feats:
        return out
    pos_rows, neg_rows = as_prompt_rows(positives), as_prompt_rows(negatives)
    if not pos_rows:
        raise ValueError("sae_interventions needs at least one positive prompt")
    session = EditSession(model, metric, pos_rows, neg_rows, batch_size=batch_size)
    d_model = int(model.d_model)
    for i, feat in zip(latents, feats, strict=True):
        for kind in edit_kinds:
            target = 0.0 if kind == "ablate" else float(strength if clamp_value is None else clamp_value)
            row_extra = dict(extra or {})
            if kind == "clamp":
                row_extra["clamp_value"] = target
            controls = control_features(feat, n_controls, d_model=d_model, seed=seed)
            for f in [feat, *controls]:
                direction = None if f is feat else _torch(f.direction) * _unit_scale(sae)
                edit = _displace(sae, i, target, direction, site, None, f"sae-{kind}-{i}")
                out.extend(session.records(f, kind, edit, ablate_mode="sae_latent" if kind == "ablate" else None,
                                           extra=row_extra))
    return out


def _torch(v: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(np.asarray(v, dtype=np.float32).copy())
