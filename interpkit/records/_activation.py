"""Activation records: one prompt (or one token position) per row, with its active features.

JSONL shape (field names fixed; any other key is kept in ``extra`` and written back)::

    {"model": "gpt2", "prompt_id": "p1", "text": "...", "criterion_score": 0.8,
     "features": [{"feature_id": 17, "activation": 3.2, "label": "eval talk", "layer": 6}]}

Extras that readers interpret when present: ``split`` ("train"/"test"), ``token_index`` and
``token`` (the row is one token position of the prompt), ``synthetic`` (true for made-up data).
On a feature entry, ``token_index``/``token`` name the position of that feature's maximum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._checks import (
    check_bool,
    check_id,
    check_int,
    check_layer,
    check_number,
    check_str,
    check_vector,
    freeze_extra,
    split_fields,
)
from ._errors import RecordError

__all__ = ["ActivationRecord", "FeatureActivation"]

_FA_FIELDS = ("feature_id", "activation", "label", "layer", "decoder_signature")
_FA_REQUIRED = {"feature_id": "a non-empty string or an integer id", "activation": "a finite number"}
_FA_INTERPRETED = ("token_index", "token")
_AR_FIELDS = ("model", "prompt_id", "text", "criterion_score", "features")
_AR_REQUIRED = {
    "model": "a non-empty string",
    "prompt_id": "a non-empty string or an integer id",
    "text": "a string",
    "features": "a list of {feature_id, activation} objects",
}
_AR_INTERPRETED = ("split", "token_index", "token", "synthetic")


def _check_position_extras(extra: Mapping[str, Any]) -> None:
    if "token_index" in extra:
        check_int(extra["token_index"], "token_index", minimum=0)
    if "token" in extra:
        check_str(extra["token"], "token")


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureActivation:
    """One feature's activation on one prompt or token position."""

    feature_id: str | int
    """The feature's id as the producer wrote it (string or integer; tables key it by ``str``)."""
    activation: float
    """The activation value (finite)."""
    label: str | None = None
    """A human-readable label, when the producer has one."""
    layer: int | str | None = None
    """Layer index or site name of the feature, when known."""
    decoder_signature: tuple[float, ...] | None = None
    """The feature's decoder (write-out) direction, when known."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keys of the feature entry, kept verbatim and written back."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "feature_id", check_id(self.feature_id, "feature_id"))
        s(self, "activation", check_number(self.activation, "activation"))
        s(self, "label", check_str(self.label, "label", optional=True))
        s(self, "layer", check_layer(self.layer, "layer"))
        s(self, "decoder_signature", check_vector(self.decoder_signature, "decoder_signature"))
        s(self, "extra", freeze_extra(self.extra, _FA_FIELDS))
        _check_position_extras(self.extra)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> FeatureActivation:
        """Parse one feature entry; unknown keys go to ``extra``.

        Raises:
            RecordError: a field is missing or has the wrong type.
        """
        known, extra = split_fields(d, _FA_FIELDS, _FA_REQUIRED, interpreted=_FA_INTERPRETED, lenient=lenient)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; optional fields that are None are left out, extras come last."""
        out: dict[str, Any] = {"feature_id": self.feature_id, "activation": self.activation}
        if self.label is not None:
            out["label"] = self.label
        if self.layer is not None:
            out["layer"] = self.layer
        if self.decoder_signature is not None:
            out["decoder_signature"] = list(self.decoder_signature)
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationRecord:
    """One prompt (or token position) with the activations of the features active on it."""

    model: str
    """Name of the model the activations were read from."""
    prompt_id: str | int
    """Id of the prompt; several rows share it when each row is one token position."""
    text: str
    """The prompt text."""
    criterion_score: float | None = None
    """How strongly the criterion holds on this prompt; None when unknown."""
    features: tuple[FeatureActivation, ...] = ()
    """Active features (feature ids unique within the row; absent features count as 0)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keys of the row, kept verbatim and written back (see the module docstring)."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "model", check_str(self.model, "model", nonempty=True))
        s(self, "prompt_id", check_id(self.prompt_id, "prompt_id"))
        s(self, "text", check_str(self.text, "text"))
        s(self, "criterion_score", check_number(self.criterion_score, "criterion_score", optional=True))
        s(self, "features", _check_features(self.features))
        extra = freeze_extra(self.extra, _AR_FIELDS)
        if "split" in extra:
            check_str(extra["split"], "split", optional=True, nonempty=True)
        if "synthetic" in extra:
            check_bool(extra["synthetic"], "synthetic")
        _check_position_extras(extra)
        s(self, "extra", extra)

    @property
    def split(self) -> str | None:
        """The ``split`` extra ("train"/"test"), or None."""
        return self.extra.get("split")

    @property
    def token_index(self) -> int | None:
        """The ``token_index`` extra when the row is one token position, else None."""
        return self.extra.get("token_index")

    @property
    def token(self) -> str | None:
        """The ``token`` extra (the token's text) when present."""
        return self.extra.get("token")

    @property
    def synthetic(self) -> bool:
        """True when the row is marked ``"synthetic": true``."""
        return bool(self.extra.get("synthetic", False))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> ActivationRecord:
        """Parse one activation-record row; unknown keys go to ``extra``.

        Raises:
            RecordError: a field is missing or malformed; nested errors name
                ``features[i].<field>``.
        """
        known, extra = split_fields(d, _AR_FIELDS, _AR_REQUIRED, interpreted=_AR_INTERPRETED, lenient=lenient)
        raw = known["features"]
        if not isinstance(raw, list | tuple):
            raise RecordError(_AR_REQUIRED["features"], raw, field="features")
        feats = []
        for i, item in enumerate(raw):
            if isinstance(item, FeatureActivation):
                feats.append(item)
                continue
            try:
                feats.append(FeatureActivation.from_dict(item, lenient=lenient))
            except RecordError as err:
                raise err.nested(f"features[{i}]") from None
        known["features"] = tuple(feats)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the interchange field order, extras last."""
        out: dict[str, Any] = {
            "model": self.model,
            "prompt_id": self.prompt_id,
            "text": self.text,
            "criterion_score": self.criterion_score,
            "features": [f.to_dict() for f in self.features],
        }
        out.update(self.extra)
        return out


def _check_features(features: Any) -> tuple[FeatureActivation, ...]:
    if isinstance(features, (str, bytes, Mapping)) or not hasattr(features, "__iter__"):
        raise RecordError(_AR_REQUIRED["features"], features, field="features")
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(features):
        if isinstance(item, Mapping):
            try:
                item = FeatureActivation.from_dict(item)
            except RecordError as err:
                raise err.nested(f"features[{i}]") from None
        elif not isinstance(item, FeatureActivation):
            raise RecordError("a feature object", item, field=f"features[{i}]")
        key = str(item.feature_id)
        if key in seen:
            raise RecordError(
                f"feature ids unique within a row (already at features[{seen[key]}])",
                item.feature_id,
                field=f"features[{i}].feature_id",
            )
        seen[key] = i
        out.append(item)
    return tuple(out)
