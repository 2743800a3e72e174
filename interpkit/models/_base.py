"""The backend Protocol: the only surface :class:`ModelWrapper` uses to reach a model library.

A backend maps the site vocabulary (see ``_sites``) onto its library's hook points, runs forward
passes that capture sites and apply edits, generates under edits, and exposes the unembedding for
the logit lens. TransformerLens (``_tl``) and nnsight (``_nnsight``) implement it; nothing outside
``interpkit.models`` imports either library.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._edits import Edit, apply_edit

if TYPE_CHECKING:
    import torch


class StopForward(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised from a hook once every requested site is captured, so later layers never run."""


class InterpkitRemoteError(RuntimeError):
    """Remote (NDIF) execution could not run; the message says what to fix."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What one backend forward returns.

    Attributes:
        logits: ``[batch, pos, vocab]`` or ``None`` when the pass stopped early.
        acts: captured activations by site name, each ``[batch, pos, d_model]``.
    """

    logits: torch.Tensor | None
    acts: Mapping[str, torch.Tensor]


@runtime_checkable
class ActivationBackend(Protocol):
    """What a model library must offer interpkit (H.8)."""

    name: str
    n_layers: int
    d_model: int

    def hook_names(self) -> list[str]:
        """Raw backend site names (hook names or module paths)."""
        ...

    def canonical_sites(self) -> list[str]:
        """The canonical sites (``layer{L}.resid_post`` ...) this model supports."""
        ...

    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        capture: Sequence[str],
        edits: Sequence[Edit],
        stop_early: bool,
        grad: bool = False,
    ) -> RunResult:
        """One forward pass: apply ``edits``, capture ``capture``; stop after the deepest if asked.

        With ``grad`` autograd records the pass (logits keep their graph; captures are detached).
        """
        ...

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        edits: Sequence[Edit],
        max_new_tokens: int,
        do_sample: bool,
        eos_token_id: int | None,
        pad_token_id: int | None,
    ) -> torch.Tensor:
        """Greedy or sampled generation from one prompt ``[1, pos]``; returns the new token ids."""
        ...

    def add_hooks(
        self, mapping: Mapping[str, Callable[[torch.Tensor], torch.Tensor | None]]
    ) -> AbstractContextManager[None]:
        """Temporarily call ``fn(activation)`` at each site (a returned tensor replaces it)."""
        ...

    def unembed(self) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``(W_U [d_model, vocab], final_norm)`` for the logit lens."""
        ...


class EditApplier:
    """Applies a site's edits in order, tracking the absolute position across cached steps."""

    def __init__(self, edits: Sequence[Edit]) -> None:
        self.edits = tuple(edits)
        self.offset = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Edit ``x`` (a fresh tensor is returned) and advance the position offset."""
        for edit in self.edits:
            x = apply_edit(edit, x, self.offset)
        self.offset += x.shape[1]
        return x


def group_edits(edits: Sequence[Edit]) -> dict[str, list[Edit]]:
    """Edits grouped by site, keeping their order within each site."""
    grouped: dict[str, list[Edit]] = {}
    for edit in edits:
        grouped.setdefault(edit.site, []).append(edit)
    return grouped


def first_tensor(value: Any) -> torch.Tensor:
    """The hidden-state tensor of a module output that may be a tuple or a ModelOutput."""
    if isinstance(value, tuple | list):
        return value[0]
    return value


def replace_first(value: Any, tensor: torch.Tensor) -> Any:
    """``value`` with its hidden-state tensor replaced (tuples keep their other members)."""
    if isinstance(value, tuple):
        return (tensor, *value[1:])
    if isinstance(value, list):
        return [tensor, *value[1:]]
    return tensor


def iter_unique(items: Sequence[str]) -> Iterator[str]:
    """Yield items once each, in order."""
    seen: set[str] = set()
    for item in items:
        if item not in seen:
            seen.add(item)
            yield item
