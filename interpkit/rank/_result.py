"""RankingResult: every feature's measured components, its tier and its place in the ranking.

Rows are held in ranked order (best first). Each row keeps the four components apart, because they
answer different questions: ``association`` (does the feature track the criterion on held-out
examples?), ``specificity`` (does it fire *only* there?), ``causal`` (does intervening on it move the
criterion?) and ``stability`` (does its association survive resampling?). Correlational and causal
evidence are never merged into one number; the tier records which kinds of evidence a feature has.

The order is tiered, then by a within-tier score (see :mod:`interpkit.rank` for the definition):

====  ==========================  ===========================================================
rank  tier                        meaning
====  ==========================  ===========================================================
0     causal & associated         interventions promote the criterion (CI > 0) and the
                                  held-out association is significant after FDR
1     causal only                 interventions promote the criterion; association not significant
2     causal suppressor           interventions lower the criterion (CI < 0)
3     associated                  significant held-out association; no adequate causal evidence
4     associated, causally inert  significant association but interventions show an effect
                                  bounded inside +/- causal_margin (a correlated decoy)
5     not significant             none of the above
====  ==========================  ===========================================================

``to_dict()`` / ``from_dict()`` round-trip through strict JSON (NaN is never written; undefined
values are ``null``) and are what ``report.json`` embeds.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from interpkit._constants import SCHEMA_VERSION

RESULT_KIND = "ranking_result"

TIERS: tuple[str, ...] = (
    "causal & associated",
    "causal only",
    "causal suppressor",
    "associated",
    "associated, causally inert",
    "not significant",
)
"""Tier labels, best first; a row's ``tier_rank`` indexes this tuple."""

CAUSAL_STATUSES: tuple[str, ...] = (
    "no causal evidence",
    "insufficient n",
    "promotes",
    "suppresses",
    "inert",
    "inconclusive",
)
"""Causal statuses. Only the last four carry a value and an interval (n >= 3 measurements)."""


def _clean(x: Any) -> Any:
    """Python scalar for JSON: numpy scalars unwrapped, NaN/inf floats become None."""
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _check_keys(cls: type, d: Mapping[str, Any], lenient: bool, skip: tuple[str, ...] = ()) -> None:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names - set(skip)
    if unknown and not lenient:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}")
    missing = names - set(d)
    if missing:
        raise ValueError(f"{cls.__name__}: missing field(s) {sorted(missing)}")


def _simple_from_dict(cls: type, d: Mapping[str, Any], lenient: bool) -> Any:
    _check_keys(cls, d, lenient)
    return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})


def _simple_to_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _clean(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Association:
    """How well the feature separates / tracks the criterion. Selection on train, report on held-out."""

    status: str
    """``"ok"`` or ``"insufficient n"`` (a split has fewer than 2 examples of a class)."""
    auroc_train: float | None
    """AUROC on the train split (criterion binarised at 0.5); decides ``effect_sign``."""
    auroc_test: float | None
    """AUROC on the held-out split: the reported association."""
    spearman_test: float | None
    """Spearman correlation with the raw criterion scores on the held-out split (None if constant)."""
    effect_sign: int
    """+1 if on train the feature is higher on criterion-positive examples, else -1."""
    effect_size: float | None
    """Held-out ``|2 * auroc_test - 1|`` (0 = chance, 1 = perfect separation)."""
    sign_agrees: bool | None
    """Whether the held-out effect points the way the train split chose."""
    n_train: int
    """Train examples used (NaN criterion scores excluded)."""
    n_test: int
    """Held-out examples used."""
    n_pos_test: int
    """Held-out examples with criterion score >= 0.5."""
    n_neg_test: int
    """Held-out examples with criterion score < 0.5."""
    p_value: float | None
    """Two-sided held-out p-value of the Spearman statistic against the null (see settings.null)."""
    q_value: float | None
    """Benjamini-Hochberg q-value across all features."""
    significant: bool
    """``q_value < fdr_alpha`` and ``sign_agrees``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return _simple_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> Association:
        """Inverse of :meth:`to_dict`; unknown keys raise unless ``lenient``."""
        return _simple_from_dict(cls, d, lenient)


@dataclass(frozen=True, slots=True, kw_only=True)
class Causal:
    """Aggregated intervention evidence: side-effect-penalised signed effect over repeated measurements."""

    status: str
    """One of :data:`CAUSAL_STATUSES`, decided by the interval of the raw signed effect."""
    value: float | None
    """``effect - side_effect_weight * side_effect`` (positive = the feature promotes the criterion
    at an acceptable cost): the net benefit of the edit. None below n = 3."""
    ci_low: float | None
    """Lower end of the Student-t interval of the raw signed effect at ``settings.ci_level``."""
    ci_high: float | None
    """Upper end of that interval; None below n = 3."""
    effect: float | None = None
    """Mean raw signed effect on the criterion (the records' ``signed_effect``); None below n = 3."""
    side_effect: float | None = None
    """Mean ``|side_effect_score|`` of the records that measured one; None when none did."""
    n: int
    """Measurements (intervention records) used."""
    n_dropped_mismatch: int
    """Records for this feature dropped because their criterion differs from the ranking's."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return _simple_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> Causal:
        """Inverse of :meth:`to_dict`; unknown keys raise unless ``lenient``."""
        return _simple_from_dict(cls, d, lenient)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureRanking:
    """One feature's component breakdown and place in the ranking."""

    feature_id: str
    """The table's feature id."""
    label: str | None
    """Human label, if the table has one."""
    index: int
    """Column of the feature in the ranked table."""
    rank: int
    """1-based position in the ranking."""
    association: Association
    """Held-out association with its n, p and q."""
    specificity: float | None
    """Held-out specificity in [0, 1] (see :mod:`interpkit.rank`); None with insufficient n."""
    stability: float | None
    """Bootstrap sign reproducibility ``2 * agree - 1`` clipped to [0, 1]; None with insufficient n."""
    stability_auroc_sd: float | None
    """Standard deviation of the train AUROC across bootstrap resamples."""
    causal: Causal
    """Intervention evidence, or its absence."""
    tier: str
    """Tier label, one of :data:`TIERS`."""
    tier_rank: int
    """Index of ``tier`` in :data:`TIERS` (0 is best)."""
    score: float
    """Within-tier score ``effect_size * stability`` in [0, 1] (0 where undefined)."""
    combined: float
    """``2 * (len(TIERS) - 1 - tier_rank) + score``: every better tier has a larger value."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with nested ``association`` and ``causal``."""
        d = _simple_to_dict(self)
        d["association"] = self.association.to_dict()
        d["causal"] = self.causal.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> FeatureRanking:
        """Inverse of :meth:`to_dict`; unknown keys raise unless ``lenient``."""
        _check_keys(cls, d, lenient)
        kw = {f.name: d[f.name] for f in dataclasses.fields(cls)}
        kw["association"] = Association.from_dict(d["association"], lenient=lenient)
        kw["causal"] = Causal.from_dict(d["causal"], lenient=lenient)
        return cls(**kw)


ComponentRow = FeatureRanking


@dataclass(frozen=True, slots=True, kw_only=True)
class RankSettings:
    """The query that produced a ranking: every knob and the split sizes."""

    n_permutations: int
    """Permutations of the criterion scores for the held-out null (0 with ``null="asymptotic"``)."""
    null: str
    """``"permutation"`` or ``"asymptotic"`` (Spearman t approximation)."""
    n_bootstrap: int
    """Bootstrap resamples of the train split for stability."""
    fdr_alpha: float
    """Benjamini-Hochberg level for ``significant``."""
    seed: int
    """Seed for splits, permutations and bootstrap."""
    side_effect_weight: float
    """Weight of ``|side_effect_score|`` subtracted from each signed effect."""
    causal_margin: float
    """Half-width of the equivalence region for ``"inert"`` (criterion-score units)."""
    ci_level: float
    """Confidence level of causal intervals."""
    allow_intervention_criterion_mismatch: bool
    """Whether records for another criterion were kept."""
    binarize_threshold: float
    """Criterion scores ``>= threshold`` are positives for AUROC and specificity."""
    split_source: str
    """``"table"`` (examples.split) or ``"hash"`` (:func:`hash_splits`)."""
    test_fraction: float
    """Held-out share requested when splits were hashed."""
    n_examples: int
    """Examples in the table."""
    n_excluded_nan: int
    """Examples dropped because their criterion score is NaN."""
    n_train: int
    """Train examples used."""
    n_test: int
    """Held-out examples used."""
    n_features: int
    """Features ranked."""
    n_interventions: int
    """Intervention records given."""
    n_interventions_dropped_mismatch: int
    """Records dropped for naming another criterion."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return _simple_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> RankSettings:
        """Inverse of :meth:`to_dict`; unknown keys raise unless ``lenient``."""
        return _simple_from_dict(cls, d, lenient)


@dataclass(frozen=True, slots=True, kw_only=True)
class RankingResult:
    """Features in ranked order with their component breakdown, the criterion and the settings.

    Sort key: ``(tier_rank, -score, table column)`` ascending, i.e. tier first, then within-tier
    score, ties kept in the table's feature order. ``combined`` encodes the same order as one number.
    """

    rows: tuple[FeatureRanking, ...]
    """One row per feature, best first."""
    criterion: str | None
    """The criterion text the scores and interventions refer to."""
    settings: RankSettings
    """Knobs and split sizes."""
    synthetic: bool
    """True when the table (or any intervention) is synthetic; every view repeats it."""
    warnings: tuple[str, ...] = ()
    """Things the caller should know (dropped records, unknown feature ids, p-value floors)."""

    @property
    def features(self) -> tuple[str, ...]:
        """Feature ids aligned with :attr:`rows` (ranked order)."""
        return tuple(r.feature_id for r in self.rows)

    @property
    def scores(self) -> np.ndarray:
        """``combined`` values aligned with :attr:`rows`."""
        return np.array([r.combined for r in self.rows], dtype=np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[FeatureRanking]:
        return iter(self.rows)

    def top(self, k: int = 10) -> list[FeatureRanking]:
        """The ``k`` best rows, best first."""
        return list(self.rows[: max(k, 0)])

    def bottom(self, k: int = 10) -> list[FeatureRanking]:
        """The ``k`` worst rows, worst first."""
        return list(self.rows[::-1][: max(k, 0)])

    def row(self, feature_id: str | int) -> FeatureRanking:
        """The row of one feature.

        Raises:
            KeyError: if the feature was not ranked.
        """
        key = str(feature_id)
        for r in self.rows:
            if r.feature_id == key:
                return r
        raise KeyError(f"feature {key!r} is not in this ranking")

    def component(self, feature_id: str | int) -> dict[str, Any]:
        """Component breakdown of one feature as a JSON-ready dict (``FeatureRanking.to_dict``)."""
        return self.row(feature_id).to_dict()

    def to_frame(self) -> Any:
        """Flat ``pandas.DataFrame``, one row per feature in ranked order; ``attrs['synthetic']`` set."""
        import pandas as pd

        records = []
        for r in self.rows:
            d = {k: v for k, v in r.to_dict().items() if k not in ("association", "causal")}
            d.update(r.association.to_dict())
            d.update({f"causal_{k}": v for k, v in r.causal.to_dict().items()})
            d["synthetic"] = self.synthetic
            records.append(d)
        df = pd.DataFrame.from_records(records)
        df.attrs["synthetic"] = self.synthetic
        df.attrs["criterion"] = self.criterion
        return df

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict (no NaN) with ``kind`` and ``schema_version``."""
        return {
            "kind": RESULT_KIND,
            "schema_version": SCHEMA_VERSION,
            "criterion": self.criterion,
            "synthetic": bool(self.synthetic),
            "settings": self.settings.to_dict(),
            "warnings": list(self.warnings),
            "rows": [r.to_dict() for r in self.rows],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False) -> RankingResult:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            ValueError: on a wrong ``kind``/``schema_version``, or unknown keys unless ``lenient``.
        """
        if d.get("kind") != RESULT_KIND:
            raise ValueError(f"expected kind {RESULT_KIND!r}, got {d.get('kind')!r}")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported schema_version {d.get('schema_version')!r}")
        _check_keys(cls, d, lenient, skip=("kind", "schema_version"))
        return cls(
            rows=tuple(FeatureRanking.from_dict(r, lenient=lenient) for r in d["rows"]),
            criterion=d["criterion"],
            settings=RankSettings.from_dict(d["settings"], lenient=lenient),
            synthetic=bool(d["synthetic"]),
            warnings=tuple(d["warnings"]),
        )

    def __repr__(self) -> str:
        head = ", ".join(f"{r.feature_id}[{r.tier}]" for r in self.rows[:3])
        syn = ", synthetic=True" if self.synthetic else ""
        return f"RankingResult(criterion={self.criterion!r}, n_features={len(self.rows)}, top=[{head}]{syn})"
