"""Where an SAE reads: its canonical site on a model."""

from __future__ import annotations

from typing import Any

from ._base import SAE


def sae_site(sae: SAE, model: Any = None) -> str:
    """The canonical site ``sae`` reads, checked against ``model`` when one is given.

    Uses, in order: ``cfg.site``; the site of ``cfg.hook_name`` (TransformerLens, sparsify,
    dictionary_learning and Gemma Scope names, see `~interpkit.models.site_from_hook_name`); a raw
    ``hook_name`` the model itself knows; ``layer{cfg.layer}.resid_post`` (not for a transcoder:
    its input is rarely the residual stream).

    Raises:
        ValueError: the SAE says nothing about where it reads, or the model lacks the site.
    """
    from interpkit.models import site_from_hook_name

    cfg = sae.cfg
    site = cfg.site or site_from_hook_name(cfg.hook_name)
    if site is None and cfg.hook_name and model is not None:
        try:
            return model.resolve_site(cfg.hook_name)
        except ValueError:
            pass
    if site is None and cfg.layer is not None and not cfg.is_transcoder:
        site = f"layer{int(cfg.layer)}.resid_post"
    if site is None:
        raise ValueError(
            f"{sae!r} does not say which site it reads (no site, hook_name {cfg.hook_name!r} or layer); "
            "pass site= explicitly")
    if model is not None:
        site = model.resolve_site(site)
    return site


def sae_site_out(sae: SAE, model: Any = None) -> str:
    """The site a transcoder writes (its output site), checked against ``model`` when one is given.

    Uses ``cfg.site_out``, the site of ``cfg.hook_name_out``, or a raw ``hook_name_out`` the model
    knows.

    Raises:
        ValueError: not a transcoder, no output site recorded, or the model lacks it.
    """
    from interpkit.models import site_from_hook_name

    cfg = sae.cfg
    if not cfg.is_transcoder:
        raise ValueError(f"{sae!r} is not a transcoder: it reconstructs its own input site")
    site = cfg.site_out or site_from_hook_name(cfg.hook_name_out)
    if site is None and cfg.hook_name_out and model is not None:
        return model.resolve_site(cfg.hook_name_out)
    if site is None:
        raise ValueError(f"{sae!r} does not say which site it writes (no site_out or hook_name_out {cfg.hook_name_out!r}); "
                         "pass the output site explicitly")
    return model.resolve_site(site) if model is not None else site
