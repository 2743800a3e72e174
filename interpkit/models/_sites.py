"""The site vocabulary shared by every backend.

A *site* names one activation tensor ``[batch, pos, d_model]`` in the forward pass. Canonical
sites are backend-neutral: ``layer{L}.resid_pre`` (the residual stream entering block ``L``),
``layer{L}.attn_out``, ``layer{L}.mlp_in`` (the input of block ``L``'s MLP module: after the
pre-MLP norm, its weight included), ``layer{L}.mlp_out`` and ``layer{L}.resid_post`` (leaving
block ``L``).
Anything else is a raw backend name (a TransformerLens hook name such as
``blocks.3.hook_resid_mid``, or an nnsight/HF module path such as ``model.layers.3.mlp.down_proj``).
Patterns use ``fnmatch`` globs; canonical matches come back in forward order, raw matches
natural-sorted (``blocks.2`` before ``blocks.10``).

Example:
    >>> canonical_sites(2)[:2]
    ['layer0.resid_pre', 'layer0.attn_out']
    >>> parse_site("layer12.mlp_out")
    (12, 'mlp_out')
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

SITE_KINDS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_in", "mlp_out", "resid_post")
"""Canonical kinds, in the order they occur inside a block."""

_SITE_RE = re.compile(r"^layer(\d+)\.(resid_pre|attn_out|mlp_in|mlp_out|resid_post)$")
_NUM_RE = re.compile(r"(\d+)")


class UnknownSiteError(ValueError):
    """A site name (or pattern) that matches nothing on this model."""


def natsort_key(name: str) -> tuple:
    """Sort key that orders embedded integers numerically (``layer2`` < ``layer10``)."""
    return tuple(int(part) if part.isdigit() else part for part in _NUM_RE.split(name))


def parse_site(name: str) -> tuple[int, str] | None:
    """Split a canonical site into ``(layer, kind)``; ``None`` for raw backend names."""
    match = _SITE_RE.match(name)
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def canonical_sites(n_layers: int, kinds: Sequence[str] = SITE_KINDS) -> list[str]:
    """All canonical sites of a model with ``n_layers`` blocks, in forward order."""
    return [f"layer{layer}.{kind}" for layer in range(n_layers) for kind in SITE_KINDS if kind in kinds]


def site_order_key(name: str) -> tuple[int, int]:
    """Forward-order key of a canonical site: ``(layer, position of the kind within a block)``."""
    parsed = parse_site(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not a canonical site")
    return parsed[0], SITE_KINDS.index(parsed[1])


def _unknown(name: str, canonical: Sequence[str], raw: Sequence[str]) -> UnknownSiteError:
    shown = ", ".join(canonical) if len(canonical) <= 48 else ", ".join([*canonical[:44], "...", *canonical[-4:]])
    return UnknownSiteError(
        f"unknown site {name!r}. Valid canonical sites: {shown}. "
        f"Raw backend names ({len(raw)} on this model, e.g. {', '.join(list(raw)[:3])}) are accepted too; "
        "list them with model.sites(raw=True)."
    )


def resolve_sites(
    requested: str | Iterable[str], canonical: Sequence[str], raw: Sequence[str]
) -> list[str]:
    """Expand names and ``fnmatch`` patterns into concrete site names.

    Args:
        requested: one name or pattern, or several.
        canonical: the model's canonical sites.
        raw: the backend's raw names.

    Returns:
        The matching sites, de-duplicated, in request order (a pattern's canonical matches in
        forward order, its raw matches natural-sorted).

    Raises:
        UnknownSiteError: a name or pattern matches nothing; the message lists the valid sites.
    """
    names = [requested] if isinstance(requested, str) else list(requested)
    canonical_set, raw_set = set(canonical), set(raw)
    out: list[str] = []
    for name in names:
        if name in canonical_set or name in raw_set:
            hits = [name]
        elif any(ch in name for ch in "*?["):
            hits = sorted(fnmatch.filter(canonical, name), key=site_order_key)
            if not hits:
                hits = sorted(fnmatch.filter(raw, name), key=natsort_key)
        else:
            hits = []
        if not hits:
            raise _unknown(name, canonical, raw)
        out.extend(hit for hit in hits if hit not in out)
    return out


_HOOK_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # TransformerLens hook names (SAELens `hook_name`)
    (re.compile(r"^blocks\.(\d+)\.hook_resid_pre$"), "resid_pre"),
    (re.compile(r"^blocks\.(\d+)\.hook_resid_post$"), "resid_post"),
    (re.compile(r"^blocks\.(\d+)\.hook_mlp_out$"), "mlp_out"),
    (re.compile(r"^blocks\.(\d+)\.hook_attn_out$"), "attn_out"),
    # the MLP's own input and output hooks (TransformerLens bridges; circuit-tracer's ReplacementMLP
    # `mlp.hook_in` / `mlp.hook_out`). Not `hook_mlp_in` / `hook_resid_mid` / `ln2.hook_in`: those are
    # the residual before the pre-MLP norm. Not `ln2.hook_normalized`: that is before the norm's
    # weight (and bias), equal to the MLP input only when the weights are folded (fold_ln).
    (re.compile(r"^blocks\.(\d+)\.(?:mlp\.hook_in|ln2\.hook_out)$"), "mlp_in"),
    (re.compile(r"^blocks\.(\d+)\.mlp\.hook_out$"), "mlp_out"),
    # sparsify hookpoints (module paths; a decoder layer's output is the residual stream after it)
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)$"), "resid_post"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)\.mlp$"), "mlp_out"),
    (re.compile(r"^(?:model\.|gpt_neox\.|transformer\.)?(?:layers|h)\.(\d+)\.(?:self_attn|attn|attention)$"),
     "attn_out"),
    # dictionary_learning submodule names
    (re.compile(r"^resid_(\d+)$"), "resid_post"),
    (re.compile(r"^resid_post_layer_(\d+)$"), "resid_post"),
    (re.compile(r"^mlp_out_(\d+)$"), "mlp_out"),
    (re.compile(r"^attn_out_(\d+)$"), "attn_out"),
    # Gemma Scope folders: layer_12/width_16k/average_l0_82 (residual stream)
    (re.compile(r"^layer_(\d+)(?:/.*)?$"), "resid_post"),
)


def site_from_hook_name(name: str | None) -> str | None:
    """The canonical site of another tool's hook name, or ``None`` when it has no canonical match.

    Knows TransformerLens hook names (as SAELens and circuit-tracer store them), sparsify hookpoints (module paths),
    dictionary_learning submodule names and Gemma Scope folder names.

    Example:
        >>> site_from_hook_name("blocks.6.hook_resid_post"), site_from_hook_name("layers.3.mlp")
        ('layer6.resid_post', 'layer3.mlp_out')
        >>> site_from_hook_name("blocks.6.attn.hook_z") is None
        True
    """
    if not name:
        return None
    if parse_site(name) is not None:
        return name
    for pattern, kind in _HOOK_PATTERNS:
        match = pattern.match(name)
        if match:
            return f"layer{int(match.group(1))}.{kind}"
    return None
