"""The four ranking components, computed column-block by column-block over a feature table.

Association and stability use the criterion binarised at 0.5 (``score >= 0.5`` is positive);
Spearman uses the raw scores. Association statistics are computed on both splits: the train split
fixes each feature's sign, the held-out split gives the reported AUROC, Spearman and p-value.
Specificity is measured on the held-out split, oriented by the train sign. Causal evidence comes
from intervention records, aggregated per feature (:func:`aggregate_causal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from interpkit.rank import _stats
from interpkit.rank._result import Causal

_BLOCK_FLOATS = 1 << 23


def _sparse() -> Any:
    import scipy.sparse

    return scipy.sparse


def _is_sparse(values: Any) -> bool:
    """scipy.sparse.issparse without importing scipy for dense inputs."""
    return not isinstance(values, np.ndarray) and _sparse().issparse(values)


def iter_column_blocks(
    values: Any, rows: np.ndarray, block: int | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, dense float64 block [len(rows), width])`` without densifying a sparse table whole."""
    n_features = values.shape[1]
    if block is None:
        # About 2**23 float64 (64 MiB) per dense block, at most 1024 columns; the rank, permutation and
        # bootstrap work arrays are small multiples of the block, so memory stays bounded for any table width.
        block = int(max(1, min(1024, _BLOCK_FLOATS // max(len(rows), 1))))
    if _is_sparse(values):
        # CSC makes column slices cheap; rows are selected after the column slice so only one block is densified.
        csc = _sparse().csc_array(values)
        for a in range(0, n_features, block):
            sub = csc[:, a : a + block]
            yield a, np.asarray(sub[rows].toarray(), dtype=np.float64)
    else:
        arr = np.asarray(values)
        for a in range(0, n_features, block):
            yield a, np.asarray(arr[rows, a : a + block], dtype=np.float64)


@dataclass(slots=True)
class BlockStats:
    """Per-feature arrays filled block by block (private working state of :func:`rank`)."""

    auroc_train: np.ndarray
    auroc_test: np.ndarray
    spearman_test: np.ndarray
    effect_sign: np.ndarray
    p_value: np.ndarray
    specificity: np.ndarray
    stability: np.ndarray
    stability_sd: np.ndarray

    @classmethod
    def empty(cls, n: int) -> BlockStats:
        """All-NaN arrays for ``n`` features (sign +1)."""
        nan = lambda: np.full(n, np.nan)  # noqa: E731
        return cls(nan(), nan(), nan(), np.ones(n, dtype=np.int64), nan(), nan(), nan(), nan())


def effect_signs(auroc_train: np.ndarray, rho_train: np.ndarray) -> np.ndarray:
    """+1/-1 per feature from the train AUROC; Spearman breaks AUROC == 0.5 or NaN; else +1."""
    # The sign is chosen on train only, so the held-out AUROC / p-value are not inflated by picking the
    # better-looking direction on the data they are reported on (a test of a pre-registered direction).
    d = np.nan_to_num(auroc_train - 0.5)
    sign = np.sign(d)
    fallback = np.sign(np.nan_to_num(rho_train))
    sign = np.where(sign == 0, fallback, sign)
    return np.where(sign == 0, 1, sign).astype(np.int64)


def specificity(X: np.ndarray, y: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """Held-out specificity of every column, in [0, 1].

    Let T be the class the feature points to (criterion-positive examples when ``sign = +1``,
    negatives when -1) and O the other class. Activations are shifted to be non-negative,
    ``a = x - min(0, min x)`` (non-negative features such as SAE latents are unchanged).
    ``balance = mean_T(a) / (mean_T(a) + mean_O(a))`` is the base-rate-free share of activation
    mass on T, ``fire_O`` the fraction of O examples with ``a > 0``, and
    ``specificity = max(0, 2 * balance - 1) * (1 - fire_O)``: 1 for a feature that fires on T and
    never on O, 0 for one that fires equally on both or on every O example. Dense features
    (neurons, directions) fire everywhere and so score near 0: the measure is meant for sparse
    dictionaries. NaN when a class is absent.
    """
    y = np.asarray(y, dtype=bool)
    if y.all() or not y.any():
        return np.full(X.shape[1], np.nan)
    # The shift (computed on this held-out block) makes "fires" mean "above the column's floor" for signed
    # features; class means (not sums) make balance independent of the class sizes.
    a = X - np.minimum(X.min(axis=0, keepdims=True), 0.0)
    m_pos, m_neg = a[y].mean(axis=0), a[~y].mean(axis=0)
    f_pos, f_neg = (a[y] > 0).mean(axis=0), (a[~y] > 0).mean(axis=0)
    m_t, m_o = np.where(sign > 0, m_pos, m_neg), np.where(sign > 0, m_neg, m_pos)
    fire_o = np.where(sign > 0, f_neg, f_pos)
    total = m_t + m_o
    with np.errstate(divide="ignore", invalid="ignore"):
        # A feature that never fires (total 0) gets balance 0.5, hence specificity 0.
        balance = np.where(total > 0, m_t / total, 0.5)
    return np.clip(2.0 * balance - 1.0, 0.0, 1.0) * (1.0 - fire_o)


def stability(boot: np.ndarray, sign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sign reproducibility and AUROC spread from bootstrap AUROCs ``[n_bootstrap, feature]``.

    ``agree`` is the fraction of resamples whose AUROC lies on the train sign's side of 0.5
    (exact ties count one half); ``stability = clip(2 * agree - 1, 0, 1)`` so a coin flip scores 0
    and a sign that never changes scores 1. Resamples missing a class are skipped.

    Returns:
        ``(stability, auroc_sd)`` per feature (NaN when no resample was usable).
    """
    valid = ~np.isnan(boot)
    # Stability asks whether the *train* sign survives resampling of train rows: it measures sampling noise of
    # the direction choice, not generalisation (that is the held-out test's job).
    d = np.sign(np.nan_to_num(boot - 0.5)) * sign[None, :]
    hits = np.where(valid, (d > 0) + 0.5 * (d == 0), 0.0).sum(axis=0)
    n = valid.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        agree = np.where(n > 0, hits / n, np.nan)
    # a sample SD needs two usable resamples; computed only where there are (nanstd with ddof=1 warns
    # "degrees of freedom <= 0" otherwise, and np.errstate does not silence that warning)
    sd = np.full(boot.shape[1], np.nan)
    enough = n > 1
    if enough.any():
        sd[enough] = np.nanstd(np.where(valid, boot, np.nan)[:, enough], axis=0, ddof=1)
    return np.clip(2.0 * agree - 1.0, 0.0, 1.0), sd


def _record_fields(rec: Any) -> tuple[str, float, float | None, bool]:
    """(feature_id, signed_effect, side_effect_score, synthetic) of an InterventionRecord."""
    extra = getattr(rec, "extra", None) or {}
    side = rec.side_effect_score
    return (
        str(rec.feature_id),
        float(rec.signed_effect),
        None if side is None else float(side),
        bool(extra.get("synthetic", False)),
    )


def aggregate_causal(
    records: Iterable[Any],
    feature_ids: Sequence[str],
    *,
    criterion: str | None,
    allow_mismatch: bool,
    side_effect_weight: float,
    margin: float,
    level: float,
) -> tuple[dict[str, Causal], list[str], int, bool]:
    """Per-feature causal component from intervention records.

    Each record contributes one measurement of the criterion effect, ``signed_effect`` (positive when
    the feature promotes the criterion), and, when measured, a side effect ``|side_effect_score|``.
    With n >= 3 measurements the status comes from the Student-t interval of the signed effects,
    in this order: ``"inert"`` if the whole interval lies inside ``(-margin, margin)`` (practically
    zero, an equivalence test), ``"promotes"`` if it lies above 0, ``"suppresses"`` if below 0, else
    ``"inconclusive"``. The side effect does not decide what a feature does to the criterion (an
    edit that disturbs unrelated text is not thereby a suppressor); it penalises the reported value,
    ``mean effect - side_effect_weight * mean side effect`` (the net benefit of the edit). With 1-2 measurements the
    status is ``"insufficient n"`` and no number is given; without records, ``"no causal evidence"``.

    Returns:
        ``(causal by feature id, warnings, records dropped for criterion mismatch, any synthetic)``.
    """
    from interpkit.records import InterventionRecord, filter_interventions

    known = set(feature_ids)
    groups: dict[str, list[Any]] = {}
    controls: dict[str, dict[str, list[Any]]] = {}  # feature -> control kind -> its controls' records
    unknown: dict[str, int] = {}
    for rec in records:
        if isinstance(rec, Mapping):
            rec = InterventionRecord.from_dict(rec)
        fid = str(rec.feature_id)
        extra = rec.extra or {}
        is_control = bool(extra.get("control")) and str(extra.get("control_of")) in known
        if is_control:  # also ranked as a feature of its own when the table holds it
            kind = str(extra.get("control_kind") or "random")  # records before control kinds: random
            controls.setdefault(str(extra["control_of"]), {}).setdefault(kind, []).append(rec)
        if fid in known:
            groups.setdefault(fid, []).append(rec)
        elif not is_control:
            unknown[fid] = unknown.get(fid, 0) + 1
    warnings: list[str] = []
    if unknown:
        shown = ", ".join(f"{k!r} ({v})" for k, v in list(unknown.items())[:10])
        more = "" if len(unknown) <= 10 else f" and {len(unknown) - 10} more"
        warnings.append(
            f"skipped {sum(unknown.values())} intervention record(s) naming feature ids not in the "
            f"table: {shown}{more}"
        )
    out: dict[str, Causal] = {}
    dropped_total = 0
    synthetic = False
    for fid in feature_ids:
        recs = groups.get(fid, [])
        if criterion is None:
            kept, dropped = recs, 0
        else:
            kept, dropped = filter_interventions(recs, criterion, allow_mismatch=allow_mismatch)
        dropped_total += dropped
        effects, sides = [], []
        for rec in kept:
            _, eff, side, syn = _record_fields(rec)
            synthetic |= syn
            effects.append(eff)
            if side is not None:
                sides.append(abs(side))
        n = len(effects)
        if n == 0:
            out[fid] = Causal(
                status="no causal evidence",
                value=None,
                ci_low=None,
                ci_high=None,
                n=0,
                n_dropped_mismatch=dropped,
            )
            continue
        if n < 3:
            out[fid] = Causal(
                status="insufficient n",
                value=None,
                ci_low=None,
                ci_high=None,
                n=n,
                n_dropped_mismatch=dropped,
            )
            continue
        # "inert" is tested first: an interval inside the equivalence margin is a measured null (in the spirit of a
        # TOST equivalence test; using the ci_level interval rather than TOST's (1 - 2 alpha) one is conservative),
        # and it must not be reported as "promotes" just because a tiny effect is precisely estimated above 0.
        mean, lo, hi = _stats.t_interval(np.asarray(effects), level)
        if -margin < lo and hi < margin:
            status = "inert"
        elif lo > 0:
            status = "promotes"
        elif hi < 0:
            status = "suppresses"
        else:
            status = "inconclusive"
        if status in ("promotes", "suppresses") and fid in controls:
            status = _beats_controls(fid, status, lo, hi, controls[fid], criterion, allow_mismatch, warnings)
        side_mean = float(np.mean(sides)) if sides else None
        value = mean - side_effect_weight * side_mean if side_mean is not None else mean
        out[fid] = Causal(status=status, value=value, ci_low=lo, ci_high=hi, n=n, n_dropped_mismatch=dropped,
                          effect=mean, side_effect=side_mean)
    if dropped_total:
        warnings.append(
            f"dropped {dropped_total} intervention record(s) whose criterion differs from {criterion!r} "
            "(pass allow_intervention_criterion_mismatch=True to keep them)"
        )
    if criterion is None and groups:
        warnings.append("no criterion given: intervention records were not filtered by criterion")
    return out, warnings, dropped_total, synthetic


def _beats_controls(fid: str, status: str, lo: float, hi: float, by_kind: Mapping[str, list[Any]],
                    criterion: str | None, allow_mismatch: bool, warnings: list[str]) -> str:
    """``status`` when the feature's interval clears the mean effect of every control kind, else inconclusive.

    A feature must beat all the kinds it was measured against (random, matched_frequency, placebo): an
    effect that a matched or placebo edit also produces is not evidence about this feature's direction.
    """
    from interpkit.records import filter_interventions

    for kind, recs in sorted(by_kind.items()):
        if criterion is not None:
            recs, _ = filter_interventions(recs, criterion, allow_mismatch=allow_mismatch)
        if not recs:
            continue
        ctrl = float(np.mean([float(r.signed_effect) for r in recs]))
        beaten = lo > ctrl if status == "promotes" else hi < ctrl
        if not beaten:
            warnings.append(f"feature {fid!r}: its causal interval [{lo:.4g}, {hi:.4g}] does not clear the mean "
                            f"effect of its {kind} controls ({ctrl:.4g}, {len(recs)} records): status inconclusive")
            return "inconclusive"
    return status
