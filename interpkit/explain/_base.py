"""The pieces every verbalizer shares: `FeatureContext`, the `Verbalizer` ABC, `FeatureExplanation`.

A verbalizer turns one feature of a `~interpkit.table.FeatureTable` into a JSON-ready fragment of
the explanation schema (``top_examples``, ``logit_effects``, ``label``...). `explain_feature`
merges the fragments into a `FeatureExplanation`, whose `~FeatureExplanation.to_dict` is exactly
the ``explanation`` dict that reports and HTML cards read (Neuronpedia imports produce the same
shape, so the dict carries no ``kind``/``schema_version`` keys of its own: the report's schema
version covers it).

Example:
    >>> e = FeatureExplanation(feature_id="layer3.resid_post:n7", label="dates", density=0.25)
    >>> FeatureExplanation.from_dict(e.to_dict()) == e
    True
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

__all__ = ["FeatureContext", "FeatureExplanation", "Verbalizer"]


@dataclass(slots=True, kw_only=True)
class FeatureContext:
    """Everything a verbalizer may read about one feature."""

    table: Any
    """The `~interpkit.table.FeatureTable` holding the feature's column."""
    feature_id: str
    """The feature to explain."""
    model: Any = None
    """The interpkit ``ModelWrapper`` the table was built from (None: table-only verbalizers)."""
    reader: Any = None
    """A `~interpkit.explain.FeatureReader` for per-token activations (None: no highlights)."""
    chat: Any = None
    """A chat model (``complete(messages, max_tokens=, temperature=)``, ``name``) for labels."""
    encoder: Any = None
    """A sentence encoder (``similarity(a, b)``, ``name``) for label scoring."""
    seed: int = 0
    """Seed for every random draw (quantile samples, held-out splits)."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Scratch space shared by the verbalizers of one `explain_features` call (measured scales)."""

    @property
    def column(self) -> Any:
        """The feature's activations over the table's examples (float32 ``[n_examples]``)."""
        return self.table.column(self.feature_id)


class Verbalizer(ABC):
    """Turns one feature into a fragment of the explanation dict.

    Subclasses set ``name`` (the key under which a failure lands in ``errors``) and implement
    `explain`. A verbalizer raises when it cannot work; `explain_feature` records the message.
    """

    name: ClassVar[str]

    @abstractmethod
    def explain(self, ctx: FeatureContext) -> dict[str, Any]:
        """A JSON-ready fragment with keys of the explanation schema."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureExplanation:
    """The explanation of one feature (every field but ``feature_id`` optional).

    The dict form is the ``explanation`` schema of ``FeatureEntry``. Example dicts
    (``top_examples`` items and ``quantile_examples[*]["examples"]`` items) hold ``example_id``,
    ``text``, ``activation`` (the table's pooled value) and, when a reader ran the model,
    ``tokens`` and ``token_activations`` (the kept tokens: BOS and other excluded positions are
    left out, as they are from pooling).
    """

    feature_id: str
    """The feature's id in its table."""
    label: str | None = None
    """A short natural-language label."""
    label_source: str | None = None
    """Who wrote the label: a chat model's name, ``"neuronpedia"``, ..."""
    label_score: float | None = None
    """How well the label predicts activity on held-out examples (see ``label_scoring``)."""
    label_scoring: Mapping[str, Any] | None = None
    """How ``label_score`` was computed: method, metric, class sizes."""
    top_examples: list[dict[str, Any]] | None = None
    """The most activating examples, highest first."""
    quantile_examples: list[dict[str, Any]] | None = None
    """``{"name", "lo", "hi", "examples"}`` per activation quantile bin, lowest bin first."""
    histogram: Mapping[str, Any] | None = None
    """``{"edges": [n+1], "counts": [n]}`` of the feature's column."""
    density: float | None = None
    """Fraction of examples with activation > 0."""
    logit_effects: Mapping[str, Any] | None = None
    """``{"method", "promoted": [{"token", "value"}], "suppressed": [...]}``."""
    self_explanation: Mapping[str, Any] | None = None
    """``{"method": "patchscope", "prompt", "layer", "scale", "text", ...}``."""
    errors: Mapping[str, str] = field(default_factory=dict)
    """Verbalizer name -> why it failed."""

    def to_dict(self) -> dict[str, Any]:
        """The explanation dict (JSON-ready; absent parts are None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["errors"] = dict(self.errors)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> FeatureExplanation:
        """Inverse of `to_dict`.

        Args:
            d: an explanation dict.
            lenient: ignore unknown keys instead of raising.

        Raises:
            ValueError: ``feature_id`` is missing, or an unknown key appears (strict mode).
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown and not lenient:
            raise ValueError(f"explanation dict: unknown key(s) {unknown}; known: {sorted(known)}")
        if not d.get("feature_id"):
            raise ValueError("explanation dict: feature_id is missing")
        kw = {k: v for k, v in d.items() if k in known}
        kw["feature_id"] = str(kw["feature_id"])
        kw["errors"] = dict(kw.get("errors") or {})
        return cls(**kw)

    def merged(self, fragment: Mapping[str, Any]) -> FeatureExplanation:
        """A copy with the keys of ``fragment`` set (unknown keys raise ValueError)."""
        return FeatureExplanation.from_dict({**self.to_dict(), **fragment})
