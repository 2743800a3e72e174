"""Activation edits: frozen descriptions of what to change at a site, plus their maths.

An edit names a site and says how to rewrite the activation ``x [batch, pos, d_model]`` there.
Edits are plain data; each backend applies them with :func:`apply_edit` (TransformerLens hooks,
nnsight assignments inside a trace), so one edit means the same thing on every backend and during
generation. ``positions`` are absolute token positions of the sequence (prompt token 0 is position
0; while generating, the token produced at step ``k`` sits at ``prompt_len + k - 1``); ``None``
means every position.

Example:
    >>> import torch
    >>> x = torch.ones(1, 3, 4)
    >>> apply_edit(AddVector("layer0.resid_post", torch.ones(4), strength=2.0), x)[0, 0]
    tensor([3., 3., 3., 3.])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    import torch

AblateMode = Literal["zero", "mean"]


def _tuple(values: Sequence[int] | int | None) -> tuple[int, ...] | None:
    if values is None:
        return None
    if isinstance(values, int):
        return (values,)
    return tuple(int(v) for v in values)


@dataclass(frozen=True, slots=True, eq=False)
class Ablate:
    """Replace the activation with zeros or with a mean activation.

    Attributes:
        site: where to edit.
        mode: ``"zero"`` or ``"mean"`` (then ``mean`` is required).
        mean: ``[d_model]`` mean activation used by ``mode="mean"``.
        dims: restrict the edit to these hidden dimensions (neurons); ``None`` = all.
        positions: restrict the edit to these absolute positions; ``None`` = all.
    """

    site: str
    _: KW_ONLY
    mode: AblateMode = "zero"
    mean: torch.Tensor | None = None
    dims: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.mode not in get_args(AblateMode):
            raise ValueError(f"Ablate.mode must be one of {get_args(AblateMode)}, got {self.mode!r}")
        if self.mode == "mean" and self.mean is None:
            raise ValueError("Ablate(mode='mean') needs mean=<[d_model] tensor>")
        object.__setattr__(self, "dims", _tuple(self.dims))
        object.__setattr__(self, "positions", _tuple(self.positions))


@dataclass(frozen=True, slots=True, eq=False)
class Clamp:
    """Set selected dimensions, or the projection onto a direction, to a fixed value.

    Attributes:
        site: where to edit.
        value: the value to clamp to.
        direction: ``[d_model]`` direction; its unit-norm projection is set to ``value``.
        dims: hidden dimensions set to ``value`` (give exactly one of ``direction``/``dims``).
        positions: absolute positions to edit; ``None`` = all.
    """

    site: str
    _: KW_ONLY
    value: float
    direction: torch.Tensor | None = None
    dims: tuple[int, ...] | None = None
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if (self.direction is None) == (self.dims is None):
            raise ValueError("Clamp needs exactly one of direction= or dims=")
        object.__setattr__(self, "dims", _tuple(self.dims))
        object.__setattr__(self, "positions", _tuple(self.positions))


@dataclass(frozen=True, slots=True, eq=False)
class AddVector:
    """Add ``strength * vector`` to the activation (steering).

    Attributes:
        site: where to edit.
        vector: ``[d_model]`` direction, used as given (not normalised).
        strength: multiplier.
        positions: absolute positions to steer; ``None`` = all.
    """

    site: str
    vector: torch.Tensor
    _: KW_ONLY
    strength: float = 1.0
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _tuple(self.positions))
        if not hasattr(self.vector, "to"):  # a numpy array or a list: hold a float32 tensor
            import numpy as np
            import torch

            object.__setattr__(self, "vector", torch.as_tensor(np.array(self.vector, dtype=np.float32)))


@dataclass(frozen=True, slots=True, eq=False)
class Patch:
    """Overwrite the activation with one recorded on another input (activation patching).

    Attributes:
        site: where to edit.
        source: ``[batch or 1, src_pos, d_model]`` (or ``[src_pos, d_model]``) activations, e.g.
            ``model.capture(source_prompt, site)[site]``. Positions past ``src_pos`` are untouched.
        positions: absolute positions to patch; ``None`` = every position the source covers.
    """

    site: str
    source: torch.Tensor
    _: KW_ONLY
    positions: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _tuple(self.positions))


@dataclass(frozen=True, slots=True, eq=False)
class Apply:
    """Replace the activation with ``fn(x)`` (e.g. an SAE's reconstruction, or a latent clamp).

    The escape hatch for edits that are a function of the activation itself; like the others it
    applies on every backend, during forward, capture and generation.

    Attributes:
        site: where to edit.
        fn: maps ``x [batch, pos, d_model]`` to a tensor of the same shape (must not modify ``x``
            in place).
        positions: absolute positions to edit; ``None`` = all.
        name: a label shown in ``repr`` (e.g. ``"sae-splice"``).
    """

    site: str
    fn: Callable[[torch.Tensor], torch.Tensor]
    _: KW_ONLY
    positions: tuple[int, ...] | None = None
    name: str = "apply"

    def __post_init__(self) -> None:
        object.__setattr__(self, "positions", _tuple(self.positions))


Edit = Ablate | Clamp | AddVector | Patch | Apply


def _position_index(edit: Edit, seq_len: int, offset: int, limit: int | None = None):
    """Local indices (into the current ``pos`` axis) the edit applies to, or ``None`` for all."""
    import torch

    end = offset + seq_len if limit is None else min(offset + seq_len, limit)
    if edit.positions is None:
        if limit is None:
            return None
        absolute = list(range(offset, end))
    else:
        absolute = [p for p in edit.positions if offset <= p < end]
    return torch.tensor([p - offset for p in absolute], dtype=torch.long)


def apply_edit(edit: Edit, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
    """Return the edited copy of ``x [batch, pos, d_model]``; ``x`` itself is not modified.

    Args:
        edit: what to do.
        x: the activation at ``edit.site``.
        offset: absolute position of ``x[:, 0]`` (non-zero in cached generation steps).

    Returns:
        A new tensor with the same shape and dtype.
    """
    # Edit a copy: backends may hold x elsewhere (hook caches, autograd graphs when training through an
    # edit), and an in-place change would leak into them.
    out = x.clone()
    limit = None
    if isinstance(edit, Patch):
        source = edit.source if edit.source.dim() == 3 else edit.source.unsqueeze(0)
        limit = source.shape[1]
    index = _position_index(edit, x.shape[1], offset, limit)
    if index is not None and index.numel() == 0:
        return out
    # Indexing with a tensor of positions copies, so edits below work on that copy and are written back at
    # the end; with every position, view aliases out and is returned directly.
    view = out if index is None else out[:, index]

    if isinstance(edit, Ablate):
        dims = list(edit.dims) if edit.dims is not None else slice(None)
        if edit.mode == "zero":
            view[..., dims] = 0.0
        else:
            mean = edit.mean.to(device=x.device, dtype=x.dtype)
            view[..., dims] = mean[dims]
    elif isinstance(edit, Clamp):
        if edit.dims is not None:
            view[..., list(edit.dims)] = float(edit.value)
        else:
            unit = edit.direction.to(device=x.device, dtype=x.dtype)
            unit = unit / unit.norm()
            # x <- x + (value - x·u) u: only the component along u changes (to exactly `value`), the orthogonal
            # complement is untouched.
            projection = view @ unit
            view = view + (float(edit.value) - projection).unsqueeze(-1) * unit
    elif isinstance(edit, AddVector):
        view = view + float(edit.strength) * edit.vector.to(device=x.device, dtype=x.dtype)
    elif isinstance(edit, Apply):
        new = edit.fn(view)
        if tuple(new.shape) != tuple(view.shape):
            raise ValueError(f"edit {edit.name!r} at {edit.site}: fn returned shape {tuple(new.shape)}, "
                             f"expected {tuple(view.shape)}")
        view = new.to(dtype=x.dtype)
    elif isinstance(edit, Patch):
        # Source positions are absolute too: during cached generation (offset > 0) the new token at absolute
        # position p reads the source's row p, if the source reaches that far.
        absolute = index.to(source.device) + offset  # Patch always has an index (limit is set)
        view = source.to(device=x.device, dtype=x.dtype)[:, absolute].expand_as(view).clone()
    else:
        raise TypeError(f"not an edit: {edit!r}")

    if index is None:
        return view
    out[:, index] = view
    return out

