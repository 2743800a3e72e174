"""Feature dumps: one feature per row, with everything a producer knows about it.

JSONL shape (field names fixed; other keys kept in ``extra``)::

    {"feature_id": 1234, "model": "gemma-2-2b", "layer": 12, "label": "test-taking",
     "examples": ["...", {"text": "...", "activation": 4.1}],
     "activation_signature": [0.1, 0.0], "decoder_signature": [0.02, -0.3],
     "causal_effects": {"eval_awareness": -0.4}, "source": "neuronpedia"}

Only ``feature_id`` and ``model`` are required; the other fields default to empty or null.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._checks import (
    check_float,
    check_id,
    check_layer,
    check_mapping,
    check_str,
    check_vector,
    freeze_extra,
    split_fields,
)
from ._errors import RecordError

__all__ = ["FeatureDump"]

_FD_FIELDS = (
    "feature_id",
    "model",
    "layer",
    "label",
    "examples",
    "activation_signature",
    "decoder_signature",
    "causal_effects",
    "source",
)
_FD_REQUIRED = {"feature_id": "a non-empty string or an integer id", "model": "a non-empty string"}


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureDump:
    """Everything a producer knows about one feature."""

    feature_id: str | int
    """The feature's id as written by the producer."""
    model: str
    """Name of the model the feature belongs to."""
    layer: int | str | None = None
    """Layer index or site name, when known."""
    label: str | None = None
    """Human-readable label, when known."""
    examples: tuple[str | Mapping[str, Any], ...] = ()
    """Example contexts: plain strings or JSON objects (kept verbatim)."""
    activation_signature: tuple[float, ...] | None = None
    """A vector summarising where the feature fires (for matching across models)."""
    decoder_signature: tuple[float, ...] | None = None
    """The feature's decoder (write-out) direction, when known."""
    causal_effects: Mapping[str, float] = field(default_factory=dict)
    """Measured effects by name (``{"eval_awareness": -0.4}``)."""
    source: str | None = None
    """Where the dump came from (``"neuronpedia"``, ``"sae"``, ...)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keys of the row, kept verbatim and written back."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "feature_id", check_id(self.feature_id, "feature_id"))
        s(self, "model", check_str(self.model, "model", nonempty=True))
        s(self, "layer", check_layer(self.layer, "layer"))
        s(self, "label", check_str(self.label, "label", optional=True))
        s(self, "examples", _check_examples(self.examples))
        s(self, "activation_signature", check_vector(self.activation_signature, "activation_signature"))
        s(self, "decoder_signature", check_vector(self.decoder_signature, "decoder_signature"))
        s(self, "causal_effects", _check_effects(self.causal_effects))
        s(self, "source", check_str(self.source, "source", optional=True))
        s(self, "extra", freeze_extra(self.extra, _FD_FIELDS))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> FeatureDump:
        """Parse one feature-dump row; unknown keys go to ``extra``.

        ``null`` for ``examples`` or ``causal_effects`` reads as empty.

        Raises:
            RecordError: a field is missing or malformed.
        """
        known, extra = split_fields(d, _FD_FIELDS, _FD_REQUIRED, lenient=lenient)
        if known.get("examples", ()) is None:
            known["examples"] = ()
        if known.get("causal_effects", {}) is None:
            known["causal_effects"] = {}
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with every interchange field, extras last."""
        out: dict[str, Any] = {
            "feature_id": self.feature_id,
            "model": self.model,
            "layer": self.layer,
            "label": self.label,
            "examples": [dict(e) if isinstance(e, Mapping) else e for e in self.examples],
            "activation_signature": _list_or_none(self.activation_signature),
            "decoder_signature": _list_or_none(self.decoder_signature),
            "causal_effects": dict(self.causal_effects),
            "source": self.source,
        }
        out.update(self.extra)
        return out


def _list_or_none(vec: tuple[float, ...] | None) -> list[float] | None:
    return None if vec is None else list(vec)


def _check_examples(examples: Any) -> tuple[str | Mapping[str, Any], ...]:
    if isinstance(examples, (str, bytes, Mapping)) or not hasattr(examples, "__iter__"):
        raise RecordError("a list of example strings or objects", examples, field="examples")
    out: list[str | Mapping[str, Any]] = []
    for i, item in enumerate(examples):
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(MappingProxyType(dict(check_mapping(item, f"examples[{i}]"))))
        else:
            raise RecordError("a string or a JSON object", item, field=f"examples[{i}]")
    return tuple(out)


def _check_effects(effects: Any) -> Mapping[str, float]:
    if not isinstance(effects, Mapping):
        raise RecordError("a JSON object of {name: number}", effects, field="causal_effects")
    out: dict[str, float] = {}
    for name, value in effects.items():
        if not isinstance(name, str) or not name:
            raise RecordError("non-empty string names", name, field="causal_effects")
        out[name] = check_float(value, f"causal_effects.{name}")
    return MappingProxyType(out)
