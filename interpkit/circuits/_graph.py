"""`AttributionGraph`: the nodes, the direct-effect adjacency, influence, pruning and the graph's scores.

Nodes come in circuit-tracer's order: active dictionary latents (``feature``), one error node per
layer and position (``error``: the part of the MLP output the transcoder misses, or the whole MLP
output at a layer without one), the token embeddings (``embedding``) and the targets (``target``).
``adjacency[t, s]`` is the direct effect of source ``s`` on target ``t``: on a feature, its
pre-activation; on a target, the target's value (linear in the frozen model, so a row sums, with
the biases, to the value). Rows are filled for the targets and for the features that were
attributed; error and embedding rows are zero (they are only sources).

Influence (circuit-tracer's `compute_influence`): with ``Â = |A|`` row-normalised, a node's
influence on the targets is ``w (Â + Â² + …)``, ``w`` the targets' weights. `AttributionGraph.prune`
keeps the features and error nodes carrying ``node_threshold`` of the total influence, then the
edges carrying ``edge_threshold`` of the edge influence, and drops sources left without an edge out
(and features without an edge in); embedding and target nodes always stay. `AttributionGraph.scores` reports circuit-tracer's
replacement score (the share of the influence reaching the embeddings rather than the errors) and
completeness score (the influence-weighted share of every node's input that is not error), plus
the kept share of the full graph's influence after pruning.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from interpkit.records._graph import NODE_KINDS as KINDS
from interpkit.records._graph import graph_node_id

__all__ = ["KINDS", "AttributionGraph", "compute_influence", "normalize_rows"]


def normalize_rows(a: np.ndarray) -> np.ndarray:
    """``|a|`` with each row divided by its sum (zero rows stay zero)."""
    m = np.abs(a).astype(np.float64)
    return m / np.maximum(m.sum(1, keepdims=True), 1e-10)


def compute_influence(a_norm: np.ndarray, weights: np.ndarray, max_iter: int = 10_000) -> np.ndarray:
    """``w Â + w Â² + …`` for a row-normalised DAG adjacency (stops when the series is exhausted).

    Raises:
        ValueError: the series does not terminate (the adjacency has a cycle).
    """
    current = weights @ a_norm
    total = current.copy()
    for _ in range(max_iter):
        if not np.any(current > 1e-300):
            return total
        current = current @ a_norm
        total += current
    raise ValueError("influence did not converge: the adjacency matrix is not a DAG")


def _threshold(scores: np.ndarray, fraction: float) -> float:
    s = np.sort(scores.ravel())[::-1]
    total = s.sum()
    if total <= 0:
        return np.inf
    cum = np.cumsum(s) / total
    i = min(int(np.searchsorted(cum, fraction)), len(s) - 1)
    return float(s[i])


@dataclass
class AttributionGraph:
    """A prompt's attribution graph (see the module docstring).

    Attributes:
        prompt: the prompt text (or its ids joined).
        tokens: the prompt's tokens (strings), one per position.
        token_ids: their ids.
        model: the model's name.
        n_layers: the model's depth.
        kinds, layers, positions, latents: per node (``latents`` is -1 except for features; the
            embeddings' layer is -1, the targets' ``n_layers``).
        activations: per node: a feature's activation, an error node's norm, an embedding's norm,
            a target's value.
        adjacency: ``[nodes, nodes]`` float32, ``[target, source]``.
        attributed: per node, whether its row was computed.
        target_labels: a label per target (``'logit " Paris"'``).
        target_weights: the targets' weights in the influence (sum 1).
        dictionaries: per layer with a transcoder: what it is (site, architecture, width, source).
        settings: how the graph was built (target, thresholds, batch size, timing).
        kept: after `prune`, the kept nodes (else all True); ``edge_mask`` the kept edges.
        labels: optional per-node labels (``explain``), by node id.
    """

    prompt: str
    tokens: list[str]
    token_ids: list[int]
    model: str
    n_layers: int
    kinds: list[str]
    layers: np.ndarray
    positions: np.ndarray
    latents: np.ndarray
    activations: np.ndarray
    adjacency: np.ndarray
    attributed: np.ndarray
    target_labels: list[str]
    target_weights: np.ndarray
    dictionaries: dict[int, dict[str, Any]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    kept: np.ndarray | None = None
    edge_mask: np.ndarray | None = None
    labels: dict[str, str] = field(default_factory=dict)

    # ---- nodes -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.kinds)

    def mask(self, kind: str) -> np.ndarray:
        """Boolean mask of the nodes of ``kind`` (one of `KINDS`)."""
        if kind not in KINDS:
            raise ValueError(f"unknown node kind {kind!r}; choose one of {', '.join(KINDS)}")
        return np.array([k == kind for k in self.kinds], dtype=bool)

    def node_id(self, i: int) -> str:
        """A stable id: ``L3.p5.f123`` (feature), ``L3.p5.err``, ``emb.p5``, ``target0``."""
        kind = self.kinds[i]
        target = self.kinds[:i].count("target") if kind == "target" else 0
        return graph_node_id(kind, int(self.layers[i]), int(self.positions[i]), int(self.latents[i]), target)

    def index(self, node_id: str) -> int:
        """The node index of ``node_id`` (see `node_id`).

        Raises:
            KeyError: no node has that id.
        """
        ids = {self.node_id(i): i for i in range(len(self))}
        if node_id not in ids:
            raise KeyError(f"no node {node_id!r} in this graph")
        return ids[node_id]

    def nodes_frame(self) -> Any:
        """A pandas frame of the nodes (id, kind, layer, position, token, latent, activation, influence, kept)."""
        import pandas as pd

        infl = self.influence()
        return pd.DataFrame({
            "node_id": [self.node_id(i) for i in range(len(self))],
            "kind": self.kinds,
            "layer": self.layers,
            "position": self.positions,
            "token": [self.tokens[p] if 0 <= p < len(self.tokens) else "" for p in self.positions],
            "latent": self.latents,
            "activation": self.activations,
            "influence": infl,
            "kept": self.kept if self.kept is not None else np.ones(len(self), dtype=bool),
            "label": [self.labels.get(self.node_id(i), "") for i in range(len(self))],
        })

    def edges_frame(self, *, kept_only: bool = True, min_abs: float = 0.0) -> Any:
        """A pandas frame of the edges (source, target, weight), the kept ones after `prune` by default."""
        import pandas as pd

        a = self.adjacency
        mask = a != 0
        if kept_only and self.edge_mask is not None:
            mask &= self.edge_mask
        if min_abs > 0:
            mask &= np.abs(a) >= min_abs
        t, s = np.nonzero(mask)
        return pd.DataFrame({"source": [self.node_id(i) for i in s], "target": [self.node_id(i) for i in t],
                             "weight": a[t, s]})

    # ---- influence, pruning, scores ------------------------------------------------------

    def weights_vector(self) -> np.ndarray:
        """Per node, the target weight (zero except on targets)."""
        w = np.zeros(len(self))
        w[self.mask("target")] = self.target_weights
        return w

    def influence(self, adjacency: np.ndarray | None = None) -> np.ndarray:
        """Each node's total (indirect) influence on the weighted targets (see the module docstring)."""
        a = self.adjacency if adjacency is None else adjacency
        return compute_influence(normalize_rows(a), self.weights_vector())

    def prune(self, node_threshold: float = 0.8, edge_threshold: float = 0.98) -> AttributionGraph:
        """A copy with ``kept`` and ``edge_mask`` set (circuit-tracer's rule; see the module docstring).

        Raises:
            ValueError: a threshold outside (0, 1].
        """
        for name, v in (("node_threshold", node_threshold), ("edge_threshold", edge_threshold)):
            if not 0.0 < float(v) <= 1.0:
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")
        w = self.weights_vector()
        feat = self.mask("feature")
        sources = feat | self.mask("error")
        always = ~sources  # embeddings and targets
        infl = self.influence()
        node_mask = always | (sources & (infl >= _threshold(infl[sources], node_threshold)) & (infl > 0))
        pruned = np.where(node_mask[:, None] & node_mask[None, :], self.adjacency, 0.0)
        a_norm = normalize_rows(pruned)
        edge_scores = a_norm * (compute_influence(a_norm, w) + w)[:, None]
        edge_mask = (edge_scores >= _threshold(edge_scores[edge_scores > 0], edge_threshold)) & (edge_scores > 0)
        while True:
            old = node_mask.copy()
            edge_mask &= node_mask[:, None] & node_mask[None, :]
            has_out = edge_mask.any(0)
            has_in = edge_mask.any(1)
            node_mask = node_mask & ~(sources & ~has_out) & ~(feat & ~has_in)
            node_mask |= always
            if np.array_equal(node_mask, old):
                break
        settings = {**self.settings, "node_threshold": float(node_threshold), "edge_threshold": float(edge_threshold)}
        return replace(self, kept=node_mask, edge_mask=edge_mask, settings=settings)

    def scores(self) -> dict[str, float]:
        """Replacement and completeness scores of the full graph and, after `prune`, of the kept graph.

        ``kept_influence`` is the share of the full graph's feature influence that the kept features carry;
        ``error_influence`` the share of the end-to-end influence ending on error nodes.
        """
        out = _scores(self.adjacency, self.weights_vector(), self.mask("error"), self.mask("embedding"))
        if self.kept is not None:
            m = self.kept
            pruned = np.where(self.edge_mask if self.edge_mask is not None else (m[:, None] & m[None, :]),
                              self.adjacency, 0.0)
            kept = _scores(pruned, self.weights_vector(), self.mask("error"), self.mask("embedding"))
            out.update({f"pruned_{k}": v for k, v in kept.items()})
            infl = self.influence()
            feat = self.mask("feature")
            total = float(infl[feat].sum())
            out["kept_influence"] = float(infl[feat & m].sum()) / total if total > 0 else 1.0
            out["kept_features"] = int((feat & m).sum())
        out["features"] = int(self.mask("feature").sum())
        out["attributed_features"] = int((self.mask("feature") & self.attributed).sum())
        return out


def _scores(a: np.ndarray, w: np.ndarray, err: np.ndarray, emb: np.ndarray) -> dict[str, float]:
    a_norm = normalize_rows(a)
    infl = compute_influence(a_norm, w)
    token, error = float(infl[emb].sum()), float(infl[err].sum())
    replacement = token / (token + error) if token + error > 0 else 1.0
    non_error = 1.0 - a_norm[:, err].sum(1)
    out_infl = infl + w
    completeness = float((non_error * out_infl).sum() / out_infl.sum()) if out_infl.sum() > 0 else 1.0
    return {"replacement_score": replacement, "completeness_score": completeness,
            "error_influence": 1.0 - replacement}
