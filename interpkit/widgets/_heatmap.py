"""`FingerprintHeatmap`: the similarity matrix between two feature sets, one layer per component.

Rows are the left model's (or layer's) features, columns the right's. Layer 0 is the combined
score (the weighted mean of the component scores a pair has, as `~interpkit.match.match_fingerprints`
combines them); the others are the per-component cosines. The matrices travel to the front end as
one float32 buffer ``[n_layers, n_left, n_right]`` (NaN where a pair lacks the component); the front
end sorts, zooms and colours by any layer. Clicking a cell sets ``selected_pair``: the pair's
scores, labels, and whether it was matched and validated.

Example:
    >>> import numpy as np
    >>> hm = FingerprintHeatmap(np.eye(3), ["a0", "a1", "a2"], ["b0", "b1", "b2"])
    >>> np.frombuffer(hm.matrix, dtype="<f4").reshape(hm.shape)[0, 1, 1], hm.layers
    (np.float32(1.0), ['combined'])
    >>> hm.select(1, 1)["combined"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import numpy as np
import traitlets

from ._static import asset

__all__ = ["FingerprintHeatmap"]

MAX_CELLS = 4_000_000
"""Largest ``n_left * n_right`` sent to the front end (per layer)."""


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


class FingerprintHeatmap(anywidget.AnyWidget):
    """A sortable, zoomable similarity heatmap with a per-pair detail view.

    Args:
        source: a ``[n_left, n_right]`` combined similarity matrix, or a
            `~interpkit.match.MatchResult` (then only its matched pairs have values).
        left_ids: row feature ids (matrix source).
        right_ids: column feature ids (matrix source).
        components: ``{name: [n_left, n_right] matrix}`` per-component scores.
        left_labels: row labels.
        right_labels: column labels.
        match_result: the `~interpkit.match.MatchResult` whose pairs are outlined and whose
            confidence and validation the detail view shows.

    Raises:
        ValueError: shapes and ids disagree, or the matrix exceeds `MAX_CELLS`.
    """

    _esm = asset("fingerprint_heatmap.js")
    _css = asset("fingerprint_heatmap.css")

    matrix = traitlets.Bytes(b"").tag(sync=True)
    """float32 little-endian ``[n_layers, n_left, n_right]`` (C order), NaN = no score."""
    shape = traitlets.List(traitlets.Int(), [0, 0, 0]).tag(sync=True)
    """``[n_layers, n_left, n_right]``."""
    layers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Layer names: ``"combined"`` then the components."""
    matched = traitlets.Bytes(b"").tag(sync=True)
    """int32 little-endian ``[n_matches, 2]`` (row, column) of the assigned pairs."""
    validated = traitlets.Bytes(b"").tag(sync=True)
    """int8 ``[n_matches]``: 1 validated, 0 rejected, -1 not tested."""
    left_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Row feature ids."""
    right_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Column feature ids."""
    left_labels = traitlets.List(traitlets.Unicode(allow_none=True)).tag(sync=True)
    """Row labels ("" when none)."""
    right_labels = traitlets.List(traitlets.Unicode(allow_none=True)).tag(sync=True)
    """Column labels."""
    color_by = traitlets.Unicode("combined").tag(sync=True)
    """The layer the cells are coloured by."""
    sort = traitlets.Unicode("matched").tag(sync=True)
    """Row/column order: ``"index"``, ``"best"`` (by each row's and column's best score) or
    ``"matched"`` (assigned pairs on the diagonal, best first)."""
    selected_pair = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    """The clicked pair: ids, labels, ``combined`` and ``components`` scores, ``matched``,
    ``validated``, ``confidence``, ``null_z``."""

    def __init__(
        self,
        source: Any,
        left_ids: Sequence[str] | None = None,
        right_ids: Sequence[str] | None = None,
        *,
        components: Mapping[str, Any] | None = None,
        left_labels: Sequence[str | None] | None = None,
        right_labels: Sequence[str | None] | None = None,
        match_result: Any = None,
        **kwargs: Any,
    ) -> None:
        from interpkit.match import MatchResult

        if isinstance(source, MatchResult):
            match_result = source
            source, left_ids, right_ids, components, left_labels, right_labels = _from_matches(source)
        combined = np.asarray(source, dtype=np.float32)
        if combined.ndim != 2:
            raise ValueError(f"the similarity matrix must be 2-d, got shape {combined.shape}")
        n, m = combined.shape
        left_ids = [str(i) for i in (left_ids if left_ids is not None else range(n))]
        right_ids = [str(i) for i in (right_ids if right_ids is not None else range(m))]
        if len(left_ids) != n or len(right_ids) != m:
            raise ValueError(f"matrix {combined.shape} but {len(left_ids)} left and {len(right_ids)} right ids")
        if n * m > MAX_CELLS:
            raise ValueError(f"{n} x {m} cells is more than the heatmap shows ({MAX_CELLS}); pass a subset")
        stack = [combined]
        names = ["combined"]
        for name, mat in (components or {}).items():
            mat = np.asarray(mat, dtype=np.float32)
            if mat.shape != combined.shape:
                raise ValueError(f"component {name!r} has shape {mat.shape}, expected {combined.shape}")
            stack.append(mat)
            names.append(str(name))
        self._stack = np.ascontiguousarray(np.stack(stack), dtype="<f4")
        self.match_result = match_result
        self._pairs: dict[tuple[int, int], Any] = {}
        rows, cols = {k: i for i, k in enumerate(left_ids)}, {k: j for j, k in enumerate(right_ids)}
        for mt in getattr(match_result, "matches", None) or []:
            if mt.left_id in rows and mt.right_id in cols:
                self._pairs[(rows[mt.left_id], cols[mt.right_id])] = mt
        pairs = np.array(list(self._pairs) or np.zeros((0, 2)), dtype="<i4").reshape(-1, 2)
        flags = np.array([-1 if mt.validated is None else int(bool(mt.validated)) for mt in self._pairs.values()],
                         dtype=np.int8)
        super().__init__(
            matrix=self._stack.tobytes(), shape=list(self._stack.shape), layers=names,
            matched=pairs.tobytes(), validated=flags.tobytes(), left_ids=left_ids, right_ids=right_ids,
            left_labels=_labels(left_labels, n), right_labels=_labels(right_labels, m), **kwargs)
        self.on_msg(self._on_front_msg)

    @classmethod
    def from_fingerprints(
        cls,
        left: Sequence[Any],
        right: Sequence[Any],
        *,
        match_result: Any = None,
        weights: Mapping[str, float] | str | None = None,
        **kwargs: Any,
    ) -> FingerprintHeatmap:
        """Every pair's component and combined scores (`~interpkit.match.similarity_matrices`).

        Args:
            left: the left `~interpkit.match.FeatureFingerprint` list.
            right: the right list.
            match_result: the matches of these fingerprints (outlined; validation shown).
            weights: component weights (default `~interpkit.match.DEFAULT_WEIGHTS`).
        """
        from interpkit.match import similarity_matrices

        n, m = len(left), len(right)
        if n * m > MAX_CELLS:  # checked before the matrices are built: they grow with n * m
            raise ValueError(f"{n} x {m} cells is more than the heatmap shows ({MAX_CELLS}); pass a subset")
        sim = similarity_matrices(left, right,
                                  weights=weights if weights is not None else getattr(match_result, "weights", None))
        return cls(sim.combined, [fp.feature_id for fp in left], [fp.feature_id for fp in right],
                   components=sim.components,
                   left_labels=[fp.label for fp in left], right_labels=[fp.label for fp in right],
                   match_result=match_result, **kwargs)

    def values(self, layer: str = "combined") -> np.ndarray:
        """One layer as a ``[n_left, n_right]`` float32 array."""
        return self._stack[self.layers.index(layer)]

    def select(self, i: int, j: int) -> dict[str, Any]:
        """Set ``selected_pair`` to row ``i``, column ``j`` and return it."""
        _, n, m = self._stack.shape
        if not (0 <= i < n and 0 <= j < m):
            raise IndexError(f"cell ({i}, {j}) is outside the {n} x {m} matrix")
        mt = self._pairs.get((i, j))
        pair = {
            "i": i, "j": j, "left_id": self.left_ids[i], "right_id": self.right_ids[j],
            "left_label": self.left_labels[i] or None, "right_label": self.right_labels[j] or None,
            "combined": _num(self._stack[0, i, j]),
            "components": {name: _num(self._stack[k, i, j]) for k, name in enumerate(self.layers) if k},
            "matched": mt is not None, "validated": None if mt is None else mt.validated,
            "confidence": None if mt is None else _num(mt.confidence),
            "null_z": None if mt is None or mt.null_z is None else _num(mt.null_z),
            "mutual": None if mt is None else bool(mt.mutual),
        }
        if mt is not None:
            # the match's own component scores are the reference when the matrix is partial
            pair["components"] = {**{k: _num(v) for k, v in mt.components.items() if v is not None},
                                  **{k: v for k, v in pair["components"].items() if v is not None}}
            if mt.validation is not None:
                pair["validation"] = mt.validation
        self.selected_pair = pair
        return pair

    def _on_front_msg(self, _widget: Any, content: Any, _buffers: Sequence[Any] = ()) -> None:
        if isinstance(content, Mapping) and content.get("type") == "select":
            self.select(int(content["i"]), int(content["j"]))


def _labels(labels: Sequence[str | None] | None, n: int) -> list[str]:
    if labels is None:
        return [""] * n
    labels = ["" if x is None else str(x) for x in labels]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} features")
    return labels


def _from_matches(result: Any) -> tuple[np.ndarray, list[str], list[str], dict[str, np.ndarray], list, list]:
    """A partial matrix from a result's matches alone: each matched pair's scores, NaN elsewhere."""
    left = list(dict.fromkeys(m.left_id for m in result.matches))
    right = list(dict.fromkeys(m.right_id for m in result.matches))
    rows, cols = {k: i for i, k in enumerate(left)}, {k: j for j, k in enumerate(right)}
    names = list(dict.fromkeys(c for m in result.matches for c in m.components))
    combined = np.full((len(left), len(right)), np.nan, dtype=np.float32)
    comps = {c: np.full_like(combined, np.nan) for c in names}
    llab: list[str | None] = [None] * len(left)
    rlab: list[str | None] = [None] * len(right)
    for m in result.matches:
        i, j = rows[m.left_id], cols[m.right_id]
        combined[i, j] = m.score
        for c, v in m.components.items():
            if v is not None:
                comps[c][i, j] = v
        llab[i], rlab[j] = m.left_label, m.right_label
    return combined, left, right, comps, llab, rlab
