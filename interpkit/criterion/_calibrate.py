"""Calibration helpers every criterion compiler shares: raw scores -> [0, 1] posteriors -> labels.

A compiler produces one raw number per text (a similarity difference, a judge rating, a probability
mass). `calibrate` maps them to posteriors ``p`` in [0, 1] that increase with the raw score, then
`label_posteriors` cuts ``p`` into ``"positive"`` (``p >= hi``), ``"negative"`` (``p <= lo``) and
``"uncertain"`` (the band in between, recorded so a reader knows what was left out). Compiling a
dataset then drops the uncertain texts, evens the classes (`balance_classes`) and assigns a
stratified, seeded train/test split (`stratified_splits`).

Example:
    >>> cal = calibrate([0.0, 0.05, 0.1, 0.8, 0.85, 0.9] * 4, method="gmm")
    >>> cal.labels[:6], cal.band
    (('negative', 'negative', 'negative', 'positive', 'positive', 'positive'), (0.2, 0.8))
    >>> stratified_splits(["positive"] * 4 + ["negative"] * 4, test_fraction=0.25, seed=0).count("test")
    2
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

__all__ = [
    "LABELS",
    "Calibration",
    "balance_classes",
    "calibrate",
    "label_posteriors",
    "stratified_splits",
]

LABELS = ("positive", "negative", "uncertain")
Method = Literal["auto", "gmm", "logistic", "identity", "threshold"]

MIN_GMM = 20
"""Fewer scores than this and ``method="auto"`` uses the fixed logistic map instead of a mixture."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Calibration:
    """Calibrated posteriors and labels for one batch of raw scores."""

    posteriors: np.ndarray
    """float64 ``[n]`` in [0, 1], non-decreasing in the raw score (NaN where the raw score was NaN)."""
    labels: tuple[str | None, ...]
    """``"positive"``/``"negative"``/``"uncertain"`` per score; None where the raw score was NaN."""
    lo: float
    """Posteriors at or below this are negative."""
    hi: float
    """Posteriors at or above this are positive."""
    method: str
    """The map actually used (``"gmm"``, ``"logistic"``, ``"identity"`` or ``"threshold"``)."""
    params: dict[str, Any] = field(default_factory=dict)
    """The fitted map's parameters (JSON-ready), for provenance."""

    @property
    def band(self) -> tuple[float, float]:
        """The uncertain band ``(lo, hi)`` on the posterior scale."""
        return (self.lo, self.hi)

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: method, band, parameters, label counts."""
        counts = {lab: self.labels.count(lab) for lab in LABELS}
        return {"method": self.method, "band": [self.lo, self.hi], "params": dict(self.params), "counts": counts}


def label_posteriors(posteriors: Sequence[float] | np.ndarray, lo: float, hi: float) -> tuple[str | None, ...]:
    """Labels for posteriors: positive ``p >= hi``, negative ``p <= lo``, uncertain between, None for NaN.

    Raises:
        ValueError: the band is not ``0 <= lo <= hi <= 1``.
    """
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"uncertain band must satisfy 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}")
    out: list[str | None] = []
    for p in np.asarray(posteriors, dtype=np.float64):
        if math.isnan(p):
            out.append(None)
        elif p >= hi:
            out.append("positive")
        elif p <= lo:
            out.append("negative")
        else:
            out.append("uncertain")
    return tuple(out)


def calibrate(
    raw: Sequence[float] | np.ndarray,
    *,
    method: Method = "auto",
    lo: float = 0.2,
    hi: float = 0.8,
    center: float = 0.0,
    scale: float = 0.05,
    threshold: float | None = None,
) -> Calibration:
    """Map raw scores to posteriors in [0, 1] and label them with an explicit uncertain band.

    Methods:
        ``"gmm"``: a two-component 1-D Gaussian mixture fitted by EM (started from a bulk at the
        median and a tail at the top decile); the posterior of the higher-mean component, made
        strictly increasing in the raw score so ranking never changes. Needs spread-out scores.
        ``"logistic"``: fixed map ``sigmoid((raw - center) / scale)``, for pools too small to fit.
        ``"identity"``: raw scores already in [0, 1] (judge ratings), clipped.
        ``"threshold"``: raw scores in [0, 1] (probability masses) cut at ``threshold`` (default:
        the median); posteriors are the raw scores, labels are positive above the threshold and
        negative at or below it (no uncertain band; ``lo == hi == threshold``).
        ``"auto"``: ``"gmm"`` with at least `MIN_GMM` finite scores, else ``"logistic"``.

    Args:
        raw: one raw score per text (NaN = could not score; kept as NaN, label None).
        method: see above.
        lo: posterior at or below which a text is negative.
        hi: posterior at or above which a text is positive.
        center: logistic midpoint on the raw scale.
        scale: logistic width on the raw scale (> 0).
        threshold: cut for ``"threshold"``.

    Returns:
        A `Calibration` (posteriors, labels, band, fitted parameters).

    Raises:
        ValueError: unknown method, a bad band or a non-positive scale.
    """
    if method not in get_args(Method):
        raise ValueError(f"calibration method must be one of {get_args(Method)}, got {method!r}")
    if scale <= 0:
        raise ValueError(f"logistic scale must be > 0, got {scale}")
    x = np.asarray(raw, dtype=np.float64).reshape(-1)
    ok = ~np.isnan(x)
    if method == "auto":
        method = "gmm" if ok.sum() >= MIN_GMM and np.ptp(x[ok]) > 0 else "logistic"
    p = np.full_like(x, np.nan)
    params: dict[str, Any]
    if method == "gmm":
        posterior, params = _fit_gmm(x[ok])
        p[ok] = posterior(x[ok])
    elif method == "logistic":
        p[ok] = _sigmoid((x[ok] - center) / scale)
        params = {"center": center, "scale": scale}
    elif method == "identity":
        p[ok] = np.clip(x[ok], 0.0, 1.0)
        params = {}
    else:
        p[ok] = np.clip(x[ok], 0.0, 1.0)
        cut = float(np.median(p[ok])) if threshold is None and ok.any() else float(threshold or 0.0)
        labels = tuple(None if not k else ("positive" if v > cut else "negative") for k, v in zip(ok, p, strict=True))
        return Calibration(posteriors=p, labels=labels, lo=cut, hi=cut, method=method,
                           params={"threshold": cut, "threshold_from": "median" if threshold is None else "given"})
    return Calibration(posteriors=p, labels=label_posteriors(p, lo, hi), lo=lo, hi=hi, method=method, params=params)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _fit_gmm(x: np.ndarray, *, iters: int = 300, tol: float = 1e-10) -> tuple[Any, dict[str, Any]]:
    """EM for two 1-D Gaussians; returns a monotone posterior function of the high component.

    Initialised for the common case of a bulk of non-matching texts plus a tail of matching ones:
    the low component at the median (MAD scale), the high one at the top decile. With unequal
    variances the log-odds is quadratic; beyond its vertex the posterior is held at the vertex
    value, and a 1e-6 logistic term keeps the result strictly increasing (no ties for ranking).
    """
    n = len(x)
    med = float(np.median(x))
    sd0 = max(1.4826 * float(np.median(np.abs(x - med))), float(np.std(x)) * 0.1, 1e-6)
    top = np.sort(x)[-max(2, n // 10):]
    m0, v0 = med, sd0**2
    m1, v1 = float(top.mean()), max(float(top.var()), sd0**2 * 0.25)
    pi1 = 0.1
    floor = max(float(np.var(x)) * 1e-4, 1e-12)
    for _ in range(iters):
        r = _sigmoid(_log_odds(x, m0, v0, m1, v1, pi1))
        n1 = float(r.sum())
        if n1 < 1e-6 or n - n1 < 1e-6:
            break
        new = (float((r * x).sum() / n1), float(((1 - r) * x).sum() / (n - n1)))
        nv1 = max(float((r * (x - new[0]) ** 2).sum() / n1), floor)
        nv0 = max(float(((1 - r) * (x - new[1]) ** 2).sum() / (n - n1)), floor)
        npi = float(np.clip(n1 / n, 1e-6, 1 - 1e-6))
        done = abs(new[0] - m1) + abs(new[1] - m0) + abs(nv1 - v1) + abs(nv0 - v0) < tol
        m1, m0, v1, v0, pi1 = new[0], new[1], nv1, nv0, npi
        if done:
            break
    if m1 < m0:  # the "positive" component is the higher one
        m0, m1, v0, v1, pi1 = m1, m0, v1, v0, 1 - pi1
    a = 0.5 / v0 - 0.5 / v1
    b = m1 / v1 - m0 / v0
    vertex = -b / (2 * a) if abs(a) > 1e-12 else None
    mid, spread = 0.5 * (m0 + m1), math.sqrt(0.5 * (v0 + v1))

    def posterior(z: np.ndarray) -> np.ndarray:
        zc = z
        if vertex is not None:
            zc = np.maximum(z, vertex) if a > 0 else np.minimum(z, vertex)
        p = _sigmoid(_log_odds(zc, m0, v0, m1, v1, pi1))
        return np.clip((1 - 1e-6) * p + 1e-6 * _sigmoid((z - mid) / spread), 0.0, 1.0)

    params = {"mean_low": m0, "std_low": math.sqrt(v0), "mean_high": m1, "std_high": math.sqrt(v1),
              "weight_high": pi1, "vertex": vertex}
    return posterior, params


def _log_odds(x: np.ndarray, m0: float, v0: float, m1: float, v1: float, pi1: float) -> np.ndarray:
    return (-(x - m1) ** 2 / (2 * v1) + (x - m0) ** 2 / (2 * v0) - 0.5 * math.log(v1 / v0)
            + math.log(pi1 / (1 - pi1)))


def stratified_splits(labels: Sequence[str | None], *, test_fraction: float = 0.25, seed: int = 0) -> list[str]:
    """A stratified, seeded train/test split: each label keeps about ``test_fraction`` in test.

    Every stratum with at least two members puts at least one in test and one in train, so both
    classes appear in both splits whenever that is possible.

    Args:
        labels: one label per item (the stratum key; None is its own stratum).
        test_fraction: share of each stratum in ``"test"`` (0 < f < 1).
        seed: shuffle seed (same labels + seed -> same split).

    Returns:
        ``"train"`` or ``"test"`` per item, aligned with ``labels``.

    Raises:
        ValueError: ``test_fraction`` outside (0, 1).
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    out = ["train"] * len(labels)
    strata: dict[str | None, list[int]] = {}
    for i, lab in enumerate(labels):
        strata.setdefault(lab, []).append(i)
    for key in sorted(strata, key=str):
        idx = strata[key]
        n_test = round(len(idx) * test_fraction)
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        for j in rng.permutation(len(idx))[:n_test]:
            out[idx[j]] = "test"
    return out


def balance_classes(
    labels: Sequence[str | None], *, max_per_class: int | None = None, seed: int = 0
) -> list[int]:
    """Indices to keep so positives and negatives are equally many (seeded subsample, original order).

    Positives and negatives are both cut to ``min(#pos, #neg, max_per_class)``; any other label
    (e.g. ``"uncertain"`` when the caller keeps it) is only capped at ``max_per_class``.

    Args:
        labels: one label per item.
        max_per_class: optional cap per label.
        seed: subsampling seed.

    Returns:
        Sorted indices into ``labels``.
    """
    rng = np.random.default_rng(seed)
    groups: dict[str | None, list[int]] = {}
    for i, lab in enumerate(labels):
        groups.setdefault(lab, []).append(i)
    n_pair = min(len(groups.get("positive", [])), len(groups.get("negative", [])))
    keep: list[int] = []
    for lab in sorted(groups, key=str):
        idx = groups[lab]
        n = n_pair if lab in ("positive", "negative") else len(idx)
        if max_per_class is not None:
            n = min(n, max_per_class)
        chosen = idx if n >= len(idx) else [idx[j] for j in rng.choice(len(idx), size=n, replace=False)]
        keep.extend(chosen)
    return sorted(keep)
