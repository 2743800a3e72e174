"""Benchmark metrics: per-concept detection (AUROC, Youden threshold, hard negatives), 1:100 F1, steering.

Detection follows AxBench §3: a concept's raw max-pooled scores are min-max normalised over all its
eval rows (positives, negatives and hard negatives), AUROC uses positives against negatives only
(hard negatives are dropped, ties count one half), the Youden-J threshold is read off the same ROC
curve in normalised units, and hard-negative accuracy (§3.5) compares positives (``>= tau``) with
hard negatives (``< tau``) at that threshold. :func:`imbalanced_f1` emulates the 1:100 setting of
§2.7 by weighting negatives; the steering helpers implement §4.6-4.8 (harmonic mean with a zero veto,
factor selection on one half of the instructions, win rate with ties counted as one half).

Scores that are NaN count as the least concept-like value (the finite minimum), +inf as the finite
maximum; a concept whose scores are all NaN is an error that names it.

Example:
    >>> import numpy as np
    >>> from interpkit.bench._metrics import concept_detection, harmonic, select_factor
    >>> out = concept_detection([0.9, 0.8, 0.1, 0.3, 0.7], ["positive", "positive", "negative", "negative",
    ...                         "hard negative"], concept=3)
    >>> out["auroc"], out["n_hard_negative"], out["hard_negative"]["hard_negative_acc"]
    (1.0, 1, 1.0)
    >>> float(harmonic(2, 2, 0)), float(harmonic(2, 1, 2))
    (0.0, 1.5)
    >>> select_factor(np.array([[0.0, 1.0], [0.0, 1.0], [0.5, 0.2], [0.5, 0.4]]), [0.5, 1.0])["factor"]
    1.0
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CATEGORIES = ("positive", "negative", "hard negative")
"""Eval row categories (AxBench ``category`` column)."""

MAX_ROC_POINTS = 101
"""Most ROC points kept per concept (evenly spaced along the curve; the end points are kept)."""

TIE_TOLERANCE = 1e-6
"""Score differences below this are ties in :func:`winrate` (AxBench ``WinRateEvaluator``)."""


def _where(concept: Any) -> str:
    return f"concept {concept}" if concept is not None else "scores"


def _clean_scores(scores: Any, concept: Any = None) -> tuple[np.ndarray, int]:
    """Float64 copy with NaN -> finite min and +/-inf -> finite max/min; also the NaN count."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1).copy()
    nan = np.isnan(s)
    finite = np.isfinite(s)
    if s.size and not finite.any():
        if nan.all():
            raise ValueError(f"{_where(concept)}: all {s.size} scores are NaN")
        lo = hi = 0.0
    elif s.size:
        lo, hi = float(s[finite].min()), float(s[finite].max())
    else:
        return s, 0
    # A NaN score (a failed rating, say) must not be dropped, which would silently change the class
    # sizes; mapping it to the finite minimum ranks it as the least concept-like row.
    s[nan] = lo
    s[s == np.inf] = hi
    s[s == -np.inf] = lo
    return s, int(nan.sum())


def minmax(x: Any) -> np.ndarray:
    """Min-max normalise to [0, 1] (§3.3); all-equal or empty input gives zeros, NaN entries give 0.

    Example:
        >>> minmax([2.0, 4.0, 3.0]).tolist(), minmax([5.0, 5.0]).tolist()
        ([0.0, 1.0, 0.5], [0.0, 0.0])
    """
    s = np.asarray(x, dtype=np.float64).reshape(-1)
    out = np.zeros_like(s)
    ok = np.isfinite(s)
    if not ok.any():
        return out
    lo, hi = s[ok].min(), s[ok].max()
    if hi > lo:
        out[ok] = (s[ok] - lo) / (hi - lo)
    return out


def _downsample(n: int, k: int = MAX_ROC_POINTS) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


def concept_detection(scores: Any, categories: Sequence[str], *, concept: Any = None) -> dict[str, Any]:
    """Detection metrics of one concept from its raw sequence scores (AxBench §3.3-3.5).

    Args:
        scores: raw max-pooled score per eval row of the concept.
        categories: the rows' ``category``: ``"positive"``, ``"negative"`` or ``"hard negative"``.
        concept: the concept id, used in error messages only.

    Returns:
        ``{"auroc", "max_act", "min_act", "threshold", "roc": {"fpr", "tpr"}, "hard_negative",
        "n_positive", "n_negative", "n_hard_negative", "n_nan"}``. ``threshold`` is the Youden-J
        optimum in normalised units (the highest threshold among equal optima) (None when the curve is degenerate, i.e. no threshold beats
        chance); ``hard_negative`` is ``{"positive_acc", "hard_negative_acc", "macro_acc"}`` or None
        without hard negatives or threshold. ``roc`` holds at most :data:`MAX_ROC_POINTS` points.

    Raises:
        ValueError: lengths differ, an unknown category, no positive or no negative row, or all
            scores NaN; the message names the concept.
    """
    from sklearn.metrics import roc_curve

    from interpkit.rank._stats import auroc

    cats = np.asarray([str(c) for c in categories], dtype=object)
    raw, n_nan = _clean_scores(scores, concept)
    if raw.size != cats.size:
        raise ValueError(f"{_where(concept)}: {raw.size} scores but {cats.size} categories")
    bad = sorted({c for c in cats if c not in CATEGORIES})
    if bad:
        raise ValueError(f"{_where(concept)}: unknown categor{'ies' if len(bad) > 1 else 'y'} {bad}; "
                         f"expected one of {list(CATEGORIES)}")
    pos, neg, hard = cats == "positive", cats == "negative", cats == "hard negative"
    if not pos.any() or not neg.any():
        raise ValueError(f"{_where(concept)}: needs at least one positive and one negative row "
                         f"(got {int(pos.sum())} positive, {int(neg.sum())} negative)")
    # Min-max is increasing and affine, so the AUROC is unchanged; it only puts the Youden threshold (and
    # the hard-negative comparison) on a per-concept [0, 1] scale, as AxBench reports it.
    z = minmax(raw)
    keep = pos | neg
    y = pos[keep].astype(np.int64)
    fpr, tpr, thresholds = roc_curve(y, z[keep], drop_intermediate=True)
    # Youden's J = TPR - FPR = sensitivity + specificity - 1, the threshold farthest above the chance diagonal.
    # roc_curve's thresholds decrease and start at +inf (J = 0 there), so a curve that never beats chance
    # yields tau = inf, reported as no threshold.
    j = tpr - fpr
    best = int(np.argmax(j >= j.max() - 1e-12))  # first (highest) threshold among float-equal optima
    tau = float(thresholds[best])
    threshold = tau if np.isfinite(tau) else None
    hard_negative = None
    if threshold is not None and hard.any():
        pos_acc = float(np.mean(z[pos] >= tau))
        hn_acc = float(np.mean(z[hard] < tau))
        hard_negative = {"positive_acc": pos_acc, "hard_negative_acc": hn_acc, "macro_acc": (pos_acc + hn_acc) / 2}
    pick = _downsample(fpr.size)
    return {
        "auroc": float(auroc(z[keep], y)[0]),
        "max_act": float(raw.max()),
        "min_act": float(raw.min()),
        "threshold": threshold,
        "roc": {"fpr": fpr[pick].tolist(), "tpr": tpr[pick].tolist()},
        "hard_negative": hard_negative,
        "n_positive": int(pos.sum()),
        "n_negative": int(neg.sum()),
        "n_hard_negative": int(hard.sum()),
        "n_nan": n_nan,
    }


@dataclass
class NegativeCounts:
    """What the imbalanced F1 needs of a concept's pooled negatives, accumulable in parts.

    The best threshold of :func:`imbalanced_f1` is always one of the positives' scores (between two
    of them, a higher threshold keeps TP and lowers FP), so the negatives enter only through how many
    of them reach each positive score. A concept's pool can therefore be scored block by block (the
    concept-block path of `bench`: no rank holds the pool's activations) and the counts summed with
    :meth:`merge`; the non-finite scores are counted apart and placed as :func:`_clean_scores` does
    (NaN and -inf at the pool's finite minimum, +inf at its finite maximum) once the pool is complete.

    Example:
        >>> counts = NegativeCounts.start([3.0, 2.0])
        >>> counts.add([1.0, 2.5]); counts.add([0.0, 0.5])
        >>> imbalanced_f1(counts.positives, counts, ratio=4)["counts"]
        {'tp': 1, 'fp': 0, 'fn': 1, 'tn': 4}
    """

    positives: np.ndarray
    """The concept's positives' scores (cleaned)."""
    thresholds: np.ndarray
    """Their distinct values, descending."""
    at_least: np.ndarray
    """Finite negatives ``>=`` each threshold."""
    n: int = 0
    n_nan: int = 0
    n_posinf: int = 0
    n_neginf: int = 0
    lo: float = np.inf
    """Smallest finite negative score so far."""
    hi: float = -np.inf
    """Largest finite negative score so far."""

    @classmethod
    def start(cls, pos_scores: Any) -> NegativeCounts:
        """Empty counts at the thresholds of ``pos_scores`` (raw: cleaned here)."""
        p, _ = _clean_scores(pos_scores, "positives")
        t = np.unique(p)[::-1]
        return cls(positives=p, thresholds=t, at_least=np.zeros(t.size, dtype=np.int64))

    def add(self, neg_scores: Any) -> None:
        """Count one part of the pool."""
        s = np.asarray(neg_scores, dtype=np.float64).reshape(-1)
        finite = s[np.isfinite(s)]
        self.n += int(s.size)
        self.n_nan += int(np.isnan(s).sum())
        self.n_posinf += int((s == np.inf).sum())
        self.n_neginf += int((s == -np.inf).sum())
        if finite.size:
            self.lo, self.hi = min(self.lo, float(finite.min())), max(self.hi, float(finite.max()))
            ordered = np.sort(finite)
            self.at_least += finite.size - np.searchsorted(ordered, self.thresholds, side="left")

    def merge(self, other: NegativeCounts) -> None:
        """Add the counts of another part of the same concept's pool (same positives)."""
        if not np.array_equal(self.thresholds, other.thresholds):
            raise ValueError("NegativeCounts.merge: the parts were started from different positives")
        self.at_least += other.at_least
        self.n += other.n
        self.n_nan += other.n_nan
        self.n_posinf += other.n_posinf
        self.n_neginf += other.n_neginf
        self.lo, self.hi = min(self.lo, other.lo), max(self.hi, other.hi)

    def reaching(self) -> np.ndarray:
        """Cleaned negatives ``>=`` each threshold (the pool complete)."""
        if self.n and self.n_nan == self.n:
            raise ValueError(f"negatives: all {self.n} scores are NaN")
        lo, hi = (self.lo, self.hi) if np.isfinite(self.lo) else (0.0, 0.0)
        low = self.n_nan + self.n_neginf
        return self.at_least + low * (lo >= self.thresholds) + self.n_posinf * (hi >= self.thresholds)


def imbalanced_f1(pos_scores: Any, neg_scores: Any, ratio: float | None = 100) -> dict[str, Any]:
    """Best F1 over thresholds with negatives weighted to ``ratio`` negatives per positive (§2.7).

    AxBench pools 3,600 negatives against each concept's 36 positives (about 1 %). With fewer
    negatives each one gets weight ``ratio * n_pos / n_neg``, which gives exactly the F1 of a set in
    which every negative is repeated that many times. A text is predicted positive when its score is
    ``>= threshold``; among equal F1 the highest threshold wins (always a positive's score).

    Args:
        pos_scores: scores of the concept's positives.
        neg_scores: scores of the negatives (any units, same as ``pos_scores``), or their
            `NegativeCounts` started from the same positives.
        ratio: negative weight per positive; None keeps the natural (unweighted) balance.

    Returns:
        ``{"f1", "precision", "recall", "threshold", "ratio", "n_pos", "n_neg_unique", "neg_weight",
        "counts": {"tp", "fp", "fn", "tn"}}``; ``counts`` are unweighted row counts at the threshold.

    Example:
        >>> out = imbalanced_f1([3.0, 2.0], [1.0, 2.5, 0.0, 0.5], ratio=4)
        >>> out["threshold"], out["neg_weight"], out["counts"]
        (3.0, 2.0, {'tp': 1, 'fp': 0, 'fn': 1, 'tn': 4})
    """
    p, _ = _clean_scores(pos_scores, "positives")
    if isinstance(neg_scores, NegativeCounts):
        counts = neg_scores
        if not np.array_equal(np.unique(p)[::-1], counts.thresholds):
            raise ValueError("imbalanced_f1: the NegativeCounts were started from other positives")
    else:
        counts = NegativeCounts.start(p)
        counts.add(neg_scores)
    if p.size == 0 or counts.n == 0:
        raise ValueError(f"imbalanced_f1 needs positives and negatives (got {p.size} and {counts.n})")
    # F1 depends on the negatives only through FP, so weighting each negative by w is exactly F1 on a set
    # with every negative repeated w times (n_neg * w = ratio * n_pos): the imbalance without 100x the texts.
    w = float(ratio) * p.size / counts.n if ratio is not None else 1.0
    thresholds = counts.thresholds
    tp = (p[None, :] >= thresholds[:, None]).sum(axis=1).astype(np.float64)
    fp_rows = counts.reaching()
    fp = fp_rows * w
    fn = p.size - tp
    # F1 = 2TP / (2TP + FP + FN) (the harmonic mean of precision and recall, defined as 0 when TP = 0).
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-300)
    best = int(np.argmax(f1))
    precision = tp[best] / (tp[best] + fp[best]) if tp[best] + fp[best] > 0 else 0.0
    return {
        "f1": float(f1[best]),
        "precision": float(precision),
        "recall": float(tp[best] / p.size),
        "threshold": float(thresholds[best]),
        "ratio": None if ratio is None else float(ratio),
        "n_pos": int(p.size),
        "n_neg_unique": int(counts.n),
        "neg_weight": w,
        "counts": {"tp": int(tp[best]), "fp": int(fp_rows[best]), "fn": int(fn[best]),
                   "tn": int(counts.n - fp_rows[best])},
    }


def harmonic(concept: Any, instruction: Any, fluency: Any) -> Any:
    """Harmonic mean of the three 0-2 judge scores, 0 when any is 0 (§4.6); scalars or arrays.

    Example:
        >>> harmonic([2, 1], [2, 1], [2, 0]).tolist()
        [2.0, 0.0]
    """
    c, i, f = (np.asarray(v, dtype=np.float64) for v in (concept, instruction, fluency))
    # The harmonic mean is dominated by the worst of the three ratings: fluent on-topic text without the
    # concept, or concept word salad, scores low (AxBench §4.6). A 0 (or a failed parse) vetoes to 0; a
    # missing rating (NaN) stays NaN rather than counting as a 0.
    veto = (c <= 0) | (i <= 0) | (f <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = 3.0 / (1.0 / c + 1.0 / i + 1.0 / f)
    h = np.where(veto & ~(np.isnan(c) | np.isnan(i) | np.isnan(f)), 0.0, h)
    return h if h.ndim else np.float64(h)


def select_factor(scores: Any, factors: Sequence[float], split: float = 0.5) -> dict[str, Any]:
    """Pick the steering factor on the first instructions and report it on the rest (§4.7).

    The first ``int(n_instructions * split)`` rows (instruction ids in order, at least one and at
    most ``n - 1``) choose the factor with the highest mean score; ties go to the first factor
    (the smallest when factors are sorted). NaN scores are skipped in the means.

    Args:
        scores: ``[n_instructions, n_factors]`` aggregate (harmonic) scores.
        factors: the factor of each column.
        split: fraction of instructions in the selection half.

    Returns:
        ``{"factor", "index", "selection_score", "test_score", "factors", "selection_by_factor",
        "test_by_factor", "n_selection", "n_test"}``.
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 2 or s.shape[1] != len(factors):
        raise ValueError(f"scores must be [n_instructions, {len(factors)} factors], got shape {s.shape}")
    n = s.shape[0]
    if n < 2:
        raise ValueError(f"factor selection needs at least 2 instructions, got {n}")
    # Select on one half, report on the other: the max over 14 factors of a noisy mean is biased upwards, so
    # the reported score must come from instructions the selection never saw (AxBench §4.7).
    k = min(max(int(n * split), 1), n - 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: mean is NaN, reported as None
        sel = np.nanmean(s[:k], axis=0)
        test = np.nanmean(s[k:], axis=0)
    best = int(np.argmax(np.where(np.isnan(sel), -np.inf, sel)))
    return {
        "factor": float(factors[best]),
        "index": best,
        "selection_score": _float(sel[best]),
        "test_score": _float(test[best]),
        "factors": [float(f) for f in factors],
        "selection_by_factor": [_float(v) for v in sel],
        "test_by_factor": [_float(v) for v in test],
        "n_selection": k,
        "n_test": n - k,
    }


def _float(v: Any) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def winrate(a: Any, b: Any) -> dict[str, Any]:
    """Win rate of ``a`` over ``b`` with ties (``|a - b| < 1e-6``) counted as one half (§4.8).

    Args:
        a, b: aligned per-concept scores (sequences), or mappings concept -> score compared on the
            concepts both hold.

    Returns:
        ``{"win_rate", "wins", "losses", "ties", "n"}``.

    Example:
        >>> winrate([1.0, 0.5, 0.2], [0.5, 0.5, 0.9])
        {'win_rate': 0.5, 'wins': 1, 'losses': 1, 'ties': 1, 'n': 3}
    """
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = [k for k in _sorted_ids(a) if k in b]
        a, b = [a[k] for k in keys], [b[k] for k in keys]
    x, y = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if x.size != y.size:
        raise ValueError(f"winrate needs aligned scores, got {x.size} and {y.size}")
    if x.size == 0:
        raise ValueError("winrate needs at least one shared concept")
    d = x - y
    # Per-concept comparison with ties as one half (paper Table 3), so a method equal to the baseline scores 50 %.
    ties = int(np.sum(np.abs(d) < TIE_TOLERANCE))
    wins = int(np.sum(d >= TIE_TOLERANCE))
    return {"win_rate": (wins + ties / 2) / x.size, "wins": wins, "losses": int(x.size - wins - ties),
            "ties": ties, "n": int(x.size)}


def mean_ci(values: Any, level: float = 0.95) -> tuple[float | None, list[float] | None]:
    """Mean and Student-t confidence interval of per-concept values (None entries and NaN skipped).

    Returns ``(mean, [low, high])``; one value gives ``(value, None)`` and none ``(None, None)``.

    Example:
        >>> mean_ci([0.5, 1.0, 0.75])[0], mean_ci([0.7])
        (0.75, (0.7, None))
    """
    from interpkit.rank._stats import t_interval

    x = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64).reshape(-1)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None
    if x.size == 1:
        return float(x[0]), None
    # A t interval over concepts treats concepts as the sampled units (the paper's tests are paired over
    # concepts too); it says nothing about the noise within a concept's few texts or generations.
    mean, lo, hi = t_interval(x, level)
    return mean, [lo, hi]


def _sorted_ids(keys: Any) -> list:
    """Concept ids sorted numerically where they are integers (``"2" < "10"``), else as strings."""

    def key(k: Any) -> tuple:
        try:
            return (0, int(k), "")
        except (TypeError, ValueError):
            return (1, 0, str(k))

    return sorted(keys, key=key)


def finite_at(entry: Any, *path: str) -> float | None:
    """The finite number at ``path`` (a number met early ends the walk: ``f1_imbalanced`` may be a float)."""
    node = entry
    for name in path:
        if not isinstance(node, Mapping):
            break
        node = node.get(name)
    if isinstance(node, bool) or not isinstance(node, int | float) or not np.isfinite(node):
        return None
    return float(node)


def summarise_detection(per_concept: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Method-level detection summary from per-concept entries, over concepts in id order.

    ``mean_hard_negative_acc`` averages each concept's ``hard_negative.macro_acc`` (AxBench's
    reported hard-negative number); ``f1_imbalanced`` may be a float or an :func:`imbalanced_f1` dict.

    Returns:
        ``{"mean_auroc", "ci95", "n_concepts", "mean_hard_negative_acc", "mean_f1_imbalanced"}``.
    """
    ids = _sorted_ids(per_concept)
    mean, ci = mean_ci([finite_at(per_concept[c], "auroc") for c in ids])
    hn, _ = mean_ci([finite_at(per_concept[c], "hard_negative", "macro_acc") for c in ids])
    f1, _ = mean_ci([finite_at(per_concept[c], "f1_imbalanced", "f1") for c in ids])
    failed = [c for c in ids if isinstance(per_concept[c], Mapping) and per_concept[c].get("error")]
    return {"mean_auroc": mean, "ci95": ci, "n_concepts": len(ids), "n_failed": len(failed),
            "failed": failed, "mean_hard_negative_acc": hn, "mean_f1_imbalanced": f1}


def summarise_steering(per_concept: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Method-level steering summary: mean of each concept's ``test_score`` with its 95 % CI."""
    ids = _sorted_ids(per_concept)
    mean, ci = mean_ci([finite_at(per_concept[c], "test_score") for c in ids])
    return {"mean_score": mean, "ci95": ci, "n_concepts": len(ids)}
