"""One-to-one assignment over a sparse candidate graph (from `blocked_topk`).

1. Mutual nearest neighbours are fixed first: left ``i`` whose best candidate is ``j`` while ``i``
   is ``j``'s best among the left rows that list ``j`` (mutual *within the top-k graph*: a left row
   that does not list ``j`` scores below its own k-th candidate there).
2. The remaining candidate edges split into connected components; each is solved by
   ``scipy.optimize.linear_sum_assignment`` (maximising the summed score) on a dense matrix over
   that component's rows and columns only; pairs without a candidate edge are never assigned. A
   component too large for a dense matrix (``max_dense`` cells) goes to scipy's sparse solver
   ``min_weight_full_bipartite_matching`` on the same edges (padded so a full matching exists).

Each assigned pair carries its runner-up: the best other candidate of its row or its column.

Example:
    >>> import numpy as np
    >>> idx = np.array([[0, 1], [0, 1]]); sim = np.array([[0.9, 0.8], [0.85, 0.1]])
    >>> [(p.left, p.right, p.mutual) for p in assign_one_to_one(idx, sim, n_right=2)]
    [(0, 0, True), (1, 1, False)]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, slots=True)
class Pair:
    """An assigned pair of row indices, its candidate score and its runner-up score (NaN: none)."""

    left: int
    right: int
    score: float
    mutual: bool
    runner_up: float


def _order(keys: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """Order by ``keys`` ascending, then ``vals`` descending (one float sort: faster than lexsort)."""
    lo, hi = float(vals.min()), float(vals.max())
    rank = (hi - vals) / (hi - lo) if hi > lo else np.zeros_like(vals)  # in [0, 1], 0 = best
    # Integer keys spaced by 2 with rank in [0, 1] never overlap, so one sort gives (key asc, value desc);
    # values are told apart to about 2 * key * 2**-52 of their range (ample unless keys reach ~1e12).
    return np.argsort(keys * 2.0 + rank, kind="stable")


def _edges(idx: np.ndarray, sim: np.ndarray, min_score: float | None, n_right: int,
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])
    cols, vals = idx.reshape(-1), sim.reshape(-1).astype(np.float64)
    keep = np.isfinite(vals) & (cols >= 0)
    if min_score is not None:
        keep &= vals >= min_score
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if len(rows) == 0:
        return rows, cols, vals
    # one edge per (row, col), the best; edges end sorted by (row, col)
    key = rows * n_right + cols
    order = _order(key, vals)
    key = key[order]
    first = np.r_[True, key[1:] != key[:-1]]
    return rows[order][first], cols[order][first], vals[order][first]


def _best_per(keys: np.ndarray, vals: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per key: index (into the edge arrays) of its best edge and the runner-up value (NaN: none)."""
    order = _order(keys, vals)
    k_sorted = keys[order]
    starts = np.flatnonzero(np.r_[True, k_sorted[1:] != k_sorted[:-1]])
    best = np.full(n, -1, dtype=np.int64)
    second = np.full(n, np.nan)
    best[k_sorted[starts]] = order[starts]
    has2 = np.r_[starts[1:], len(order)] - starts > 1
    second[k_sorted[starts[has2]]] = vals[order[starts[has2] + 1]]
    return best, second


def _solve_component(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, max_dense: int) -> list[tuple[int, int]]:
    from scipy.optimize import linear_sum_assignment

    ur, ri = np.unique(rows, return_inverse=True)
    uc, ci = np.unique(cols, return_inverse=True)
    if len(ur) * len(uc) <= max_dense:
        lo = vals.min() - 1.0
        # Non-edges get a score far below every real edge, so the solver (which must fill min(rows, cols) pairs)
        # uses as many real edges as possible, then maximises their sum; non-edge picks are discarded below.
        dense = np.full((len(ur), len(uc)), lo - 1e6 * max(1.0, abs(lo)))
        dense[ri, ci] = vals
        r, c = linear_sum_assignment(dense, maximize=True)
        ok = dense[r, c] > lo - 1.0
        return list(zip(ur[r[ok]].tolist(), uc[c[ok]].tolist(), strict=True))
    return _solve_sparse(ur, uc, ri, ci, vals)


def _solve_sparse(ur: np.ndarray, uc: np.ndarray, ri: np.ndarray, ci: np.ndarray,
                  vals: np.ndarray) -> list[tuple[int, int]]:
    """Max-weight matching via a padded min-cost full matching (dummies absorb the unmatched)."""
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    nr, nc = len(ur), len(uc)
    cost = (vals.max() + 1.0) - vals  # >= 1, lower is better
    penalty = cost.max() + 1.0  # skipping a row and a column (2 * penalty) costs more than any edge
    eps = 1e-9
    # rows: real rows [0, nr) then one dummy per real column; columns: real columns then one dummy per real row
    # Real row i can fall back to its own dummy column (nc + i) and real column j to its own dummy row
    # (nr + j) at `penalty` each; dummy row nr + j and dummy column nc + i pair at ~0 cost along each real
    # edge (i, j), so a full matching always exists, and any real edge costs less than the two penalties of
    # leaving its row and column unmatched.
    r = np.concatenate([ri, np.arange(nr), nr + np.arange(nc), nr + ci])
    c = np.concatenate([ci, nc + np.arange(nr), np.arange(nc), nc + ri])
    w = np.concatenate([cost, np.full(nr, penalty), np.full(nc, penalty), np.full(len(ri), eps)])
    graph = sp.csr_array((w, (r, c)), shape=(nr + nc, nr + nc))
    row_ind, col_ind = min_weight_full_bipartite_matching(graph)
    real = (row_ind < nr) & (col_ind < nc)
    return list(zip(ur[row_ind[real]].tolist(), uc[col_ind[real]].tolist(), strict=True))


def assign_one_to_one(
    idx: np.ndarray,
    sim: np.ndarray,
    n_right: int,
    *,
    min_score: float | None = None,
    max_dense: int = 4_000_000,
) -> list[Pair]:
    """One-to-one pairs from candidate lists ``idx``/``sim`` (``[n_left, k]``, best first).

    Args:
        idx: right indices per left row (-1 = no candidate).
        sim: their scores.
        n_right: number of right rows.
        min_score: candidate edges below this are dropped before assignment.
        max_dense: largest component (rows x columns) solved densely by ``linear_sum_assignment``.

    Returns:
        Pairs sorted by score, best first (ties: left index).
    """
    from scipy.sparse.csgraph import connected_components

    n_left = idx.shape[0]
    rows, cols, vals = _edges(np.asarray(idx), np.asarray(sim), min_score, n_right)
    if len(rows) == 0:
        return []
    row_best, row_second = _best_per(rows, vals, n_left)
    col_best, col_second = _best_per(cols, vals, n_right)
    has_row = row_best >= 0
    mutual_rows = np.flatnonzero(has_row)
    # Mutual best pairs are fixed first: each side is the other's top candidate, so the pair is stable and
    # unambiguous. This is greedy (it can cost the global sum a little) but leaves far smaller components.
    mutual_rows = mutual_rows[col_best[cols[row_best[mutual_rows]]] == row_best[mutual_rows]]
    chosen: dict[int, int] = {int(i): int(cols[row_best[i]]) for i in mutual_rows}
    taken_cols = np.zeros(n_right, dtype=bool)
    taken_cols[list(chosen.values())] = True
    taken_rows = np.zeros(n_left, dtype=bool)
    taken_rows[mutual_rows] = True
    rest = ~taken_rows[rows] & ~taken_cols[cols]
    if rest.any():
        r, c, v = rows[rest], cols[rest], vals[rest]
        graph = sp.coo_array((np.ones(len(r)), (r, n_left + c)), shape=(n_left + n_right,) * 2)
        # Bipartite graph on n_left + n_right nodes (right node j is n_left + j). Components share no edge, so
        # solving each separately gives the same optimum as one global assignment at a fraction of the size.
        _, label = connected_components(graph, directed=False)
        comp = label[r]
        order = np.argsort(comp, kind="stable")
        bounds = np.flatnonzero(np.r_[True, comp[order][1:] != comp[order][:-1], True])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            sel = order[a:b]
            if b - a == 1:
                chosen[int(r[sel[0]])] = int(c[sel[0]])
                continue
            for i, j in _solve_component(r[sel], c[sel], v[sel], max_dense):
                chosen[i] = j
    li = np.fromiter(chosen.keys(), dtype=np.int64, count=len(chosen))
    rj = np.fromiter(chosen.values(), dtype=np.int64, count=len(chosen))
    key = rows * n_right + cols  # edges are sorted by (row, col), so keys are sorted
    score = vals[np.searchsorted(key, li * n_right + rj)]
    # runner-up: the best other candidate of the row or of the column
    rb, cb = row_best[li], col_best[rj]
    row_other = np.where(cols[rb] == rj, row_second[li], vals[rb])
    col_other = np.where(rows[cb] == li, col_second[rj], vals[cb])
    # The margin score - runner_up says how contested a pair is; fmax ignores a side with no other candidate.
    runner = np.fmax(row_other, col_other)
    is_mutual = taken_rows[li]
    order = np.lexsort((li, -score))
    return [Pair(int(li[t]), int(rj[t]), float(score[t]), bool(is_mutual[t]), float(runner[t])) for t in order]
