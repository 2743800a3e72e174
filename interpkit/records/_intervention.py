"""Intervention records: one causal run per row, and what its score change means.

JSONL shape (field names fixed; other keys kept in ``extra``)::

    {"model": "gpt2", "feature_id": 17, "criterion": "the model is aware it is evaluated",
     "intervention": "ablate", "prompt_id": "p1", "baseline_score": 0.8,
     "intervention_score": 0.3, "side_effect_score": 0.05}

The sign convention: `InterventionRecord.signed_effect` is evidence that the feature *promotes*
the criterion. Removing a feature (ablate, zero, remove, knockout, suppress, clamp_down) promotes
when the score drops; adding it (amplify, steer, patch, patch_in, clamp, clamp_up) when it rises.
Intervention names are matched case-insensitively, with ``-`` and spaces read as ``_``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._checks import check_float, check_id, check_number, check_str, freeze_extra, split_fields
from ._errors import RecordError

__all__ = [
    "CONTROL_KINDS",
    "DECREASING_INTERVENTIONS",
    "INCREASING_INTERVENTIONS",
    "INTERVENTION_KINDS",
    "FilterResult",
    "InterventionRecord",
    "canonical_intervention",
    "control_id",
    "control_owner",
    "filter_interventions",
    "normalize_criterion",
]

DECREASING_INTERVENTIONS = frozenset({"ablate", "zero", "remove", "knockout", "suppress", "clamp_down"})
"""Kinds that take the feature away: a score drop is evidence the feature promotes the criterion."""
INCREASING_INTERVENTIONS = frozenset({"amplify", "steer", "patch", "patch_in", "clamp", "clamp_up"})
"""Kinds that push the feature in: a score rise is evidence the feature promotes the criterion."""
INTERVENTION_KINDS: Mapping[str, int] = {
    **{k: -1 for k in sorted(DECREASING_INTERVENTIONS)},
    **{k: +1 for k in sorted(INCREASING_INTERVENTIONS)},
}
"""Every known intervention kind mapped to its expected sign (-1 decreasing, +1 increasing)."""

CONTROL_KINDS: tuple[str, ...] = ("random", "matched_frequency", "placebo")
"""Kinds of control features (see `interpkit.causal._controls`), in the order they are run."""
_CONTROL_SUFFIX = re.compile(r"^(.+)::(control|" + "|".join(CONTROL_KINDS[1:]) + r")(\d+)$")


def control_id(feature_id: str, kind: str, k: int) -> str:
    """The id of ``feature_id``'s ``k``-th control of ``kind``: ``"<feature>::control<k>"`` for random
    controls (the id earlier versions wrote), ``"<feature>::<kind><k>"`` for the others.

    >>> control_id("contrast:layer15", "placebo", 0)
    'contrast:layer15::placebo0'
    """
    if kind not in CONTROL_KINDS:
        raise ValueError(f"control kind must be one of {', '.join(CONTROL_KINDS)}, got {kind!r}")
    return f"{feature_id}::{'control' if kind == 'random' else kind}{int(k)}"


def control_owner(feature_id: str) -> tuple[str, str] | None:
    """``(feature, control kind)`` when ``feature_id`` names a control (`control_id`), else None.

    >>> control_owner("contrast:layer15::control1"), control_owner("layer3.mlp_out:n7")
    (('contrast:layer15', 'random'), None)
    """
    m = _CONTROL_SUFFIX.match(str(feature_id))
    if m is None:
        return None
    return m.group(1), "random" if m.group(2) == "control" else m.group(2)


_IR_FIELDS = (
    "model",
    "feature_id",
    "criterion",
    "intervention",
    "prompt_id",
    "baseline_score",
    "intervention_score",
    "side_effect_score",
)
_IR_REQUIRED = {
    "model": "a non-empty string",
    "feature_id": "a non-empty string or an integer id",
    "intervention": "an intervention kind (" + ", ".join(INTERVENTION_KINDS) + ")",
    "baseline_score": "a finite number",
    "intervention_score": "a finite number",
}
_TRAILING_PUNCT = re.compile(r"[\s.,;:!?…]+$")


def canonical_intervention(kind: str) -> str:
    """The canonical spelling of an intervention kind (``"Clamp-Down"`` -> ``"clamp_down"``).

    Raises:
        RecordError: the kind is not one of `INTERVENTION_KINDS`.
    """
    if not isinstance(kind, str):
        raise RecordError(_IR_REQUIRED["intervention"], kind, field="intervention")
    canon = re.sub(r"[\s\-]+", "_", kind.strip().casefold())
    if canon not in INTERVENTION_KINDS:
        raise RecordError(_IR_REQUIRED["intervention"], kind, field="intervention")
    return canon


def normalize_criterion(text: str) -> str:
    """Normalise criterion text for comparison: NFKC, casefold, single spaces, no trailing punctuation.

    >>> normalize_criterion("The model is  aware.") == normalize_criterion("the model is aware")
    True
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return _TRAILING_PUNCT.sub("", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class InterventionRecord:
    """One intervention run on one feature (and usually one prompt)."""

    model: str
    """Name of the model intervened on."""
    feature_id: str | int
    """The feature intervened on."""
    intervention: str
    """Intervention kind as written (validated against `INTERVENTION_KINDS`; see `kind`)."""
    baseline_score: float
    """Criterion score without the intervention."""
    intervention_score: float
    """Criterion score with the intervention."""
    criterion: str | None = None
    """The criterion the scores measure; None means the row applies to any criterion."""
    prompt_id: str | int | None = None
    """The prompt the run used; None for runs aggregated over prompts."""
    side_effect_score: float | None = None
    """How much else the intervention changed (higher is worse); None when not measured."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keys of the row, kept verbatim and written back."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "model", check_str(self.model, "model", nonempty=True))
        s(self, "feature_id", check_id(self.feature_id, "feature_id"))
        canonical_intervention(self.intervention)
        s(self, "baseline_score", check_float(self.baseline_score, "baseline_score"))
        s(self, "intervention_score", check_float(self.intervention_score, "intervention_score"))
        s(self, "criterion", check_str(self.criterion, "criterion", optional=True))
        s(self, "prompt_id", check_id(self.prompt_id, "prompt_id", optional=True))
        s(self, "side_effect_score", check_number(self.side_effect_score, "side_effect_score", optional=True))
        s(self, "extra", freeze_extra(self.extra, _IR_FIELDS))

    @property
    def kind(self) -> str:
        """The canonical intervention kind (``"clamp_down"`` for ``"Clamp-Down"``)."""
        return canonical_intervention(self.intervention)

    @property
    def expected_sign(self) -> int:
        """-1 for kinds that remove the feature, +1 for kinds that add it."""
        return INTERVENTION_KINDS[self.kind]

    @property
    def effect(self) -> float:
        """The raw score change, ``intervention_score - baseline_score``."""
        return self.intervention_score - self.baseline_score

    @property
    def signed_effect(self) -> float:
        """Evidence that the feature promotes the criterion (positive = promotes).

        ``baseline - intervention`` for removing kinds, ``intervention - baseline`` for adding kinds.
        """
        return -self.expected_sign * (self.baseline_score - self.intervention_score)

    def applies_to(self, criterion: str | None) -> bool:
        """Whether the row measures ``criterion`` (rows without a criterion apply to any)."""
        if self.criterion is None or criterion is None:
            return True
        return normalize_criterion(self.criterion) == normalize_criterion(criterion)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> InterventionRecord:
        """Parse one intervention row; unknown keys go to ``extra``.

        Raises:
            RecordError: a field is missing or malformed, or the intervention kind is unknown.
        """
        known, extra = split_fields(d, _IR_FIELDS, _IR_REQUIRED, lenient=lenient)
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict in the interchange field order, extras last."""
        out: dict[str, Any] = {
            "model": self.model,
            "feature_id": self.feature_id,
            "criterion": self.criterion,
            "intervention": self.intervention,
            "prompt_id": self.prompt_id,
            "baseline_score": self.baseline_score,
            "intervention_score": self.intervention_score,
            "side_effect_score": self.side_effect_score,
        }
        out.update(self.extra)
        return out


class FilterResult(NamedTuple):
    """What `filter_interventions` kept, and how many rows it left out."""

    kept: list[InterventionRecord]
    """Rows that apply to the inspected criterion, in input order."""
    dropped: int
    """Rows left out because their criterion differs."""


def filter_interventions(
    records: Iterable[InterventionRecord],
    criterion: str | None,
    *,
    allow_mismatch: bool = False,
) -> FilterResult:
    """Keep the intervention rows that measure ``criterion``.

    Criteria are compared as `normalize_criterion` text. Rows with no criterion always apply;
    with ``criterion=None`` (nothing inspected) every row applies.

    Args:
        records: intervention records.
        criterion: the inspected criterion text.
        allow_mismatch: keep rows whose criterion differs too (``dropped`` is then 0).

    Returns:
        `FilterResult` ``(kept, dropped)``.
    """
    kept: list[InterventionRecord] = []
    dropped = 0
    target = None if criterion is None else normalize_criterion(criterion)
    seen: dict[str, bool] = {}
    for rec in records:
        if allow_mismatch or target is None or rec.criterion is None:
            kept.append(rec)
            continue
        match = seen.get(rec.criterion)
        if match is None:
            match = seen[rec.criterion] = normalize_criterion(rec.criterion) == target
        if match:
            kept.append(rec)
        else:
            dropped += 1
    return FilterResult(kept, dropped)
