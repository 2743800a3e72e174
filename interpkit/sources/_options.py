"""`StreamOptions`: how a model runs over texts, shared by every function that streams activations.

`stream_activations`, `ActivationCache.get_or_compute`, `neuron_table`, `direction_table` and the
SAE functions `~interpkit.sae.encode_texts` / `~interpkit.sae.sae_table` each take
``stream=StreamOptions(...)`` and the same fields as loose keywords (``batch_size=4``), keywords
over ``stream``; `StreamOptions.merge` combines the two and names the function when a keyword is
not a field. Passes inside the package hand one `StreamOptions` down.

Example:
    >>> opts = StreamOptions(batch_size=4, exclude_positions="bos")
    >>> opts.exclude_positions
    ('bos',)
    >>> StreamOptions.merge(opts, caller="neuron_table", max_length=32).max_length
    32
    >>> StreamOptions.merge(None, caller="neuron_table", max_lenght=32)
    Traceback (most recent call last):
    ...
    TypeError: neuron_table() got an unexpected keyword argument 'max_lenght' (did you mean 'max_length'?); ...
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["EXCLUSIONS", "Exclusion", "StreamOptions"]

Exclusion = Literal["bos", "chat_template", "massive"]
EXCLUSIONS: tuple[str, ...] = get_args(Exclusion)


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamOptions:
    """The settings of one streaming pass of a model over texts (defaults: `stream_activations`').

    Attributes:
        batch_size: texts per forward pass (an integer >= 1).
        max_length: truncate each tokenised text to this many tokens (None: no truncation).
        exclude_positions: positions left out of pooling and token rows: ``"bos"`` (the first
            token when it is the tokenizer's BOS), ``"chat_template"`` (the tokens the chat
            template adds around the text; only with ``chat_template=True``) and ``"massive"``
            (attention-sink positions whose norm at the site exceeds
            `~interpkit.sources._stream.MASSIVE_FACTOR` x the text's median; decided per site on
            the raw activations, before any projection). A single name is taken as a 1-tuple.
        chat_template: wrap each text as a user turn of the tokenizer's chat template, with the
            generation prompt. Template tokens are found by matching the template's own prefix
            and suffix ids; an example whose prefix does not match (a tokenizer merged across the
            join) keeps them and counts a warning, and a suffix cut by truncation stays.
        prepend_bos: passed to ``model.tokenize`` (turned off when the template starts with BOS).
        progress: show a ``tqdm.auto`` progress bar.
        memory_budget_mb: megabytes of results held in memory before every set spills to a
            shard (> 0). Checked after each window of ``16 * batch_size`` texts, so the peak
            stays below the budget plus one window's results.
        spill_dir: folder for shards (default: a temporary folder removed with the sets).
        sort_by_length: sort texts by length inside each window to cut padding.

    Raises:
        ValueError: a ``batch_size`` below 1, a ``max_length`` below 1, a ``memory_budget_mb``
            that is not a positive finite number, or an unknown exclusion.
    """

    batch_size: int = 8
    max_length: int | None = 128
    exclude_positions: tuple[str, ...] = ("bos",)
    chat_template: bool = False
    prepend_bos: bool = True
    progress: bool = True
    memory_budget_mb: float = 512.0
    spill_dir: str | os.PathLike[str] | None = None
    sort_by_length: bool = True

    def __post_init__(self) -> None:
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (an integer), got {self.batch_size!r}")
        object.__setattr__(self, "batch_size", int(self.batch_size))
        if self.max_length is not None:
            if not _is_int(self.max_length) or self.max_length < 1:
                raise ValueError(f"max_length must be None or an integer >= 1, got {self.max_length!r}")
            object.__setattr__(self, "max_length", int(self.max_length))
        budget = self.memory_budget_mb
        if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not math.isfinite(budget) \
                or budget <= 0:
            raise ValueError(f"memory_budget_mb must be a positive finite number, got {budget!r}")
        object.__setattr__(self, "exclude_positions", _exclusions(self.exclude_positions))

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The field names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def merge(
        cls, base: StreamOptions | None = None, /, *, caller: str, default: StreamOptions | None = None,
        **overrides: Any,
    ) -> StreamOptions:
        """``base`` (else ``default``, else ``StreamOptions()``) with ``overrides`` replacing its fields.

        Args:
            base: the options a caller passed as ``stream=`` (None: not given).
            caller: the function's name, for the error messages.
            default: the function's own defaults when they differ from ``StreamOptions()``.
            **overrides: field values (a function's loose keywords).

        Raises:
            TypeError: ``base`` is not a `StreamOptions`, or an override is not one of its fields
                (the message names ``caller``, the keyword and the fields).
            ValueError: an override fails validation.
        """
        if base is not None and not isinstance(base, cls):
            raise TypeError(f"{caller}() takes stream=StreamOptions(...), got {type(base).__name__}")
        known = cls.fields()
        unknown = [k for k in overrides if k not in known]
        if unknown:
            raise TypeError(_unknown_message(caller, unknown, known))
        start = base if base is not None else default if default is not None else cls()
        return dataclasses.replace(start, **overrides) if overrides else start


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _exclusions(value: str | Sequence[str]) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else tuple(value)
    if any(e not in EXCLUSIONS for e in names):
        raise ValueError(f"exclude_positions must be among {EXCLUSIONS}, got {value!r}")
    return names


def _unknown_message(caller: str, unknown: Sequence[str], known: Sequence[str]) -> str:
    quoted = ", ".join(repr(k) for k in unknown)
    noun = "argument" if len(unknown) == 1 else "arguments"
    close = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if len(unknown) == 1 and close else ""
    return (f"{caller}() got an unexpected keyword {noun} {quoted}{hint}; its streaming options are "
            f"the StreamOptions fields: {', '.join(known)}")
