"""Vectorised statistics over many features at once: AUROC, Spearman, permutation nulls, BH, t-intervals.

Every function takes a dense block ``X [example, feature]`` and works column-wise, so callers can
stream a large (possibly sparse) table through in blocks of columns. Ranks are average ranks (ties
share the mean of their positions), which makes AUROC equal to the Mann-Whitney U / (n_pos * n_neg)
with ties counted as one half, exactly as :func:`sklearn.metrics.roc_auc_score` computes it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_PERM_CHUNK_FLOATS = 1 << 23
"""Largest permutation chunk (permutations x examples) materialised at once, about 64 MB of float64."""


def rank_columns(X: np.ndarray) -> np.ndarray:
    """Average ranks of each column of ``X`` (1-based, ties averaged), as float64."""
    from scipy import stats

    X = np.asarray(X, dtype=np.float64)
    if X.shape[0] == 0:
        return X.copy()
    return stats.rankdata(X, axis=0, method="average").astype(np.float64, copy=False)


def auroc_from_ranks(R: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of every column for binary labels ``y`` (1 = positive) from column ranks ``R``.

    Returns NaN for every column when one class is absent.
    """
    y = np.asarray(y, dtype=np.float64)
    n1 = float(y.sum())
    n0 = float(y.size - n1)
    if n1 == 0 or n0 == 0:
        return np.full(R.shape[1], np.nan)
    # Mann-Whitney: the positives' rank sum minus its minimum n1(n1+1)/2 is U = #{pos > neg} + 0.5 #{ties};
    # dividing by the n1 * n0 (pos, neg) pairs gives the AUROC. Average ranks make ties count one half.
    return (y @ R - n1 * (n1 + 1) / 2.0) / (n1 * n0)


def auroc(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of every column of ``X`` for binary labels ``y`` (ties count one half)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    return auroc_from_ranks(rank_columns(X), y)


def _centered(R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Spearman rho = Pearson correlation of the ranks, so centre once and keep the column norms.
    Rc = R - R.mean(axis=0, keepdims=True)
    return Rc, np.sqrt((Rc * Rc).sum(axis=0))


def spearman_from_ranks(R: np.ndarray, s_rank: np.ndarray) -> np.ndarray:
    """Spearman correlation of every column (given its ranks ``R``) with a ranked score vector.

    Columns or scores that are constant give NaN (the correlation is undefined).
    """
    Rc, norms = _centered(R)
    sc = s_rank - s_rank.mean()
    s_norm = float(np.sqrt(sc @ sc))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (sc @ Rc) / (norms * s_norm)
    rho[(norms == 0) | (s_norm == 0)] = np.nan
    return rho


def _permutation_chunks(n: int, n_permutations: int, seed: int) -> Iterator[np.ndarray]:
    """Yield index arrays ``[chunk, n]``, the same sequence for the same seed on every call."""
    rng = np.random.default_rng(seed)
    # The chunking depends only on (n, n_permutations) and the generator restarts from seed on every call, so
    # every column block of a table sees the same permutations (all features face the same null draws).
    chunk = max(1, min(n_permutations, _PERM_CHUNK_FLOATS // max(n, 1)))
    done = 0
    while done < n_permutations:
        k = min(chunk, n_permutations - done)
        # rng.permuted(axis=1) shuffles each row independently: k independent permutations of range(n).
        yield rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)
        done += k


def permutation_test(
    R: np.ndarray, s_rank: np.ndarray, *, n_permutations: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho of each column and its two-sided permutation p-value.

    The criterion ranks are permuted ``n_permutations`` times (the same permutations for every
    column, regenerated from ``seed``), and the null correlations for all columns come from one
    matrix product per chunk. ``p = (1 + #{|rho_null| >= |rho_obs|}) / (1 + n_permutations)``, which
    is never 0 and is exact-valid under exchangeability. For binary scores the Spearman statistic is
    an affine function of the AUROC, so this is also the permutation test of the AUROC.
    Columns with undefined rho (constant) get p = 1.

    Returns:
        ``(rho, p)`` arrays, one entry per column.
    """
    Rc, norms = _centered(R)
    sc = s_rank - s_rank.mean()
    s_norm = float(np.sqrt(sc @ sc))
    with np.errstate(divide="ignore", invalid="ignore"):
        obs = (sc @ Rc) / (norms * s_norm)
    undefined = (norms == 0) | (s_norm == 0)
    obs[undefined] = np.nan
    # compare unnormalised covariances: same ordering as rho, no division in the hot loop
    # The column norms and |sc| are invariant under permuting sc, so |cov_null| >= |cov_obs| exactly when
    # |rho_null| >= |rho_obs|. The 1e-12 relative slack lets a permutation that reproduces the observed
    # statistic up to float round-off count as ">=" (ties must count, or p would be anti-conservative).
    thresh = np.abs(sc @ Rc) * (1.0 - 1e-12)
    exceed = np.zeros(R.shape[1], dtype=np.int64)
    for idx in _permutation_chunks(R.shape[0], n_permutations, seed):
        # Permute the (centred) criterion, not each column: one [chunk, n] @ [n, features] product serves all
        # features. Under H0 (feature independent of the criterion) either side may be permuted.
        exceed += (np.abs(sc[idx] @ Rc) >= thresh).sum(axis=0)
    # +1 in numerator and denominator counts the observed labelling as one of the permutations (Phipson & Smyth
    # 2010): the p-value is never 0 and P(p <= alpha) <= alpha holds exactly, not only asymptotically.
    p = (1.0 + exceed) / (1.0 + n_permutations)
    p[undefined] = 1.0
    return obs, p


def asymptotic_test(R: np.ndarray, s_rank: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rho of each column and its two-sided p from the t approximation with n - 2 df."""
    from scipy import stats

    rho = spearman_from_ranks(R, s_rank)
    n = R.shape[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        # Under H0, t = rho sqrt((n-2) / (1-rho^2)) is approximately Student-t with n-2 df (the approximation
        # scipy.stats.spearmanr uses); the clip keeps |rho| = 1 from dividing by zero (p ~ 0 instead of NaN).
        t = rho * np.sqrt((n - 2) / np.clip(1.0 - rho * rho, 1e-300, None))
    p = 2.0 * stats.t.sf(np.abs(t), df=max(n - 2, 1))
    p[np.isnan(rho)] = 1.0
    return rho, p


def benjamini_hochberg(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values) controlling the false discovery rate.

    ``q_(i) = min_{j >= i} m * p_(j) / j`` over the p-values sorted ascending, capped at 1. NaN
    p-values are left NaN and do not count towards ``m``.

    Args:
        p_values: 1-D array of p-values in [0, 1] (NaN allowed).

    Returns:
        Array of q-values aligned with ``p_values``.
    """
    p = np.asarray(p_values, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return q
    # Step-up BH: the running minimum from the largest p downwards makes the q-values monotone, so "q < alpha"
    # selects exactly the BH rejection set. FDR (not family-wise) control because a ranking of thousands of
    # features tolerates a few false leads but Bonferroni would reject almost nothing; BH is proven under
    # independence or positive dependence (PRDS) and is the usual, robust choice otherwise.
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = p[order] * m / np.arange(1, m + 1)
    q[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return q


def bootstrap_aurocs(X: np.ndarray, y: np.ndarray, *, n_bootstrap: int, seed: int) -> np.ndarray:
    """AUROC of every column on ``n_bootstrap`` resamples (with replacement) of the rows.

    Each column is sorted once; a resample is a vector of row multiplicities, and its AUROC is the
    weighted Mann-Whitney statistic read off cumulative negative weights along the sorted order
    (ties count one half), which equals the AUROC of the explicitly resampled column. The
    multiplicities depend only on ``seed`` and the row count, so column blocks of one table see
    the same resamples. Resamples missing a class give NaN.

    Returns:
        Array ``[n_bootstrap, n_columns]``.
    """
    n, m = X.shape
    out = np.full((n_bootstrap, m), np.nan)
    if n == 0 or m == 0:
        return out
    # Per column, for every sorted position find the first (start) and last (end) index of its tie group.
    # With cum_n = cumulative resampled negative weight along the sorted order, cum_n[end] is the negative
    # weight with x <= x_i and cum_n[start - 1] the weight with x < x_i; a (positive i, negative) pair scores
    # 1 if the negative is lower and 1/2 if tied.
    order = np.argsort(X, axis=0, kind="stable")
    xs = np.take_along_axis(X, order, axis=0)
    new_group = np.ones((n, m), dtype=bool)
    new_group[1:] = xs[1:] != xs[:-1]
    pos = np.arange(n)[:, None]
    start = np.maximum.accumulate(np.where(new_group, pos, 0), axis=0)
    end_marks = np.ones((n, m), dtype=bool)
    end_marks[:-1] = new_group[1:]
    end = np.minimum.accumulate(np.where(end_marks, pos, n - 1)[::-1], axis=0)[::-1]
    cols = np.arange(m)[None, :]
    end_flat = (end * m + cols).ravel()
    less_flat = (np.maximum(start - 1, 0) * m + cols).ravel()
    has_less = start > 0
    y = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    for b in range(n_bootstrap):
        # A bootstrap resample is a multinomial vector of row multiplicities; weighting rows by it equals
        # repeating them, and it avoids re-sorting each column per resample.
        counts = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        wp, wn = counts * y, counts * ~y
        tot_p, tot_n = wp.sum(), wn.sum()
        if tot_p == 0 or tot_n == 0:
            continue
        cum_n = np.cumsum(wn[order], axis=0).ravel()
        leq = cum_n.take(end_flat).reshape(n, m)
        less = np.where(has_less, cum_n.take(less_flat).reshape(n, m), 0.0)
        # sum_i wp_i * (less_i + 0.5 * (leq_i - less_i)) / (W_pos * W_neg), written as (less + leq) / 2.
        out[b] = np.einsum("ij,ij->j", wp[order], less + leq) / (2.0 * tot_p * tot_n)
    return out


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval of repeated measurements.

    Args:
        values: at least two measurements.
        level: confidence level.

    Returns:
        ``(mean, low, high)``; a zero spread gives a degenerate interval at the mean.
    """
    from scipy import stats

    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    # Student-t (not normal) quantile: causal records per feature are few (n >= 3) and the sample sd (ddof=1)
    # comes from the same few values.
    half = float(stats.t.ppf(0.5 + level / 2.0, df=x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return mean, mean - half, mean + half


def auroc_interval(auroc: float | None, n_pos: int, n_neg: int, level: float = 0.95, *,
                   edge_width: bool = True) -> tuple[float | None, float | None]:
    """Hanley & McNeil (1982) normal interval of one AUROC from its class sizes, clipped to [0, 1].

    ``SE^2 = (A(1-A) + (n1-1)(Q1-A^2) + (n2-1)(Q2-A^2)) / (n1 n2)`` with ``Q1 = A/(2-A)``,
    ``Q2 = 2A^2/(1+A)``; ``(None, None)`` when the AUROC or a class is missing. At A = 0 or 1 the
    variance formula is 0: with ``edge_width`` it is evaluated half a discordant pair inside, at
    ``A = 1 - 1/(2 n1 n2)`` (or ``1/(2 n1 n2)``), so perfect separation of few examples keeps a width;
    without it the interval collapses to the point (what ``compare-runs`` has always shown).
    """
    import math
    from statistics import NormalDist

    if auroc is None or n_pos < 1 or n_neg < 1 or not math.isfinite(auroc):
        return None, None
    edge = 1 / (2 * n_pos * n_neg) if edge_width else 0.0
    a = min(max(float(auroc), edge), 1 - edge)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    half = NormalDist().inv_cdf(0.5 + level / 2) * math.sqrt(max(var, 0.0))
    return max(0.0, float(auroc) - half), min(1.0, float(auroc) + half)
