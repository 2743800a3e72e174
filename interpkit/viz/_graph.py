"""`graph_chart`: an attribution graph drawn as layers left to right (``interpkit.circuits``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["graph_chart", "graph_chart_data"]

KIND_COLOURS = {"embedding": "#8c8c8c", "feature": "#4c78a8", "error": "#e45756", "target": "#54a24b"}
SIGN_COLOURS = {"positive": "#d6604d", "negative": "#4393c3"}


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _as_graph(graph: Any) -> Any:
    from interpkit.circuits import AttributionGraph, graph_from_record

    return graph if isinstance(graph, AttributionGraph) else graph_from_record(graph)


def graph_chart_data(graph: Any, *, max_nodes: int = 60, labels: Mapping[str, str] | None = None
                     ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows `graph_chart` draws: ``(nodes, edges)``.

    The nodes are the kept ones (all of them before `~interpkit.circuits.AttributionGraph.prune`):
    every embedding and target, and the ``max_nodes`` features and error nodes of most influence; the
    edges are the kept edges between them. ``column`` is 0 for embeddings, ``layer + 1`` for a layer's
    nodes and ``n_layers + 1`` for the targets; ``y`` is the position, nodes sharing a layer and a
    position spread around it by influence.

    Args:
        graph: an `~interpkit.circuits.AttributionGraph` or a `~interpkit.records.GraphRecord`.
        max_nodes: most feature and error nodes drawn.
        labels: node labels by id, over the graph's own.

    Raises:
        ValueError: ``max_nodes`` below 1.
    """
    if int(max_nodes) < 1:
        raise ValueError(f"max_nodes must be at least 1, got {max_nodes!r}")
    g = _as_graph(graph)
    n = len(g)
    ids = [g.node_id(i) for i in range(n)]
    kept = g.kept if g.kept is not None else np.ones(n, dtype=bool)
    infl = g.influence()
    middle = np.flatnonzero(kept & (g.mask("feature") | g.mask("error")))
    middle = middle[np.argsort(-infl[middle], kind="stable")][: int(max_nodes)]
    show = np.zeros(n, dtype=bool)
    show[middle] = True
    show |= kept & (g.mask("embedding") | g.mask("target"))
    names = {**g.labels, **(labels or {})}
    columns = np.where(g.mask("embedding"), 0, np.where(g.mask("target"), g.n_layers + 1, g.layers + 1))
    cells: dict[tuple[int, int], list[int]] = {}
    for i in np.flatnonzero(show):
        cells.setdefault((int(columns[i]), int(g.positions[i])), []).append(int(i))
    y = {}
    for members in cells.values():
        members.sort(key=lambda i: -infl[i])
        for k, i in enumerate(members):
            y[i] = float(g.positions[i]) + (0.0 if len(members) == 1 else 0.7 * (k / (len(members) - 1) - 0.5))
    nodes = []
    for i in sorted(y):
        nid, pos = ids[i], int(g.positions[i])
        nodes.append({
            "id": nid, "kind": g.kinds[i], "layer": int(g.layers[i]), "column": int(columns[i]), "position": pos,
            "y": y[i], "token": g.tokens[pos] if 0 <= pos < len(g.tokens) else "",
            "latent": int(g.latents[i]) if g.kinds[i] == "feature" else None,
            "activation": _num(g.activations[i]), "influence": _num(infl[i]), "label": names.get(nid, "")})
    adj = g.adjacency
    mask = adj != 0
    if g.edge_mask is not None:
        mask &= g.edge_mask
    mask &= show[:, None] & show[None, :]
    t, s = np.nonzero(mask)
    edges = [{"source": ids[a], "target": ids[b], "weight": float(adj[b, a]),
              "abs_weight": abs(float(adj[b, a])), "sign": "positive" if adj[b, a] > 0 else "negative",
              "x": int(columns[a]), "y": y[int(a)], "x2": int(columns[b]), "y2": y[int(b)]}
             for b, a in zip(t.tolist(), s.tolist(), strict=True)]
    return nodes, edges


def graph_chart(graph: Any, *, max_nodes: int = 60, labels: Mapping[str, str] | None = None) -> Any:
    """An attribution graph as an altair chart: layers left to right, positions top to bottom.

    Embeddings are the first column and the targets the last; a node's size is its influence, its
    colour its kind, its tooltip its id, token, latent, activation, influence and label. Edges are
    lines, as wide as ``|weight|``, red when the source raises the target and blue when it lowers it.

    Args:
        graph: an `~interpkit.circuits.AttributionGraph` (pruned: only the kept part) or a
            `~interpkit.records.GraphRecord`.
        max_nodes: most feature and error nodes drawn (those of most influence).
        labels: node labels by id, over the graph's own (e.g. from ``interpkit.explain``).

    Returns:
        An ``altair.LayerChart`` (edges under nodes).

    Raises:
        ValueError: ``max_nodes`` below 1.
    """
    import altair as alt

    g = _as_graph(graph)
    nodes, edges = graph_chart_data(g, max_nodes=max_nodes, labels=labels)
    col_names = ["emb"] + [f"L{i}" for i in range(g.n_layers)] + ["target"]
    positions = sorted({n["position"] for n in nodes})
    tokens = {n["position"]: n["token"] for n in nodes}
    token_names = [tokens.get(p, "") for p in range(max(positions, default=0) + 1)]
    x_axis = alt.Axis(values=list(range(len(col_names))), labelExpr=f"{json.dumps(col_names)}[datum.value]",
                      title="layer", grid=False)
    y_axis = alt.Axis(values=positions, title="position (token)", grid=False,
                      labelExpr=f"datum.value + ' ' + {json.dumps(token_names, ensure_ascii=False)}[datum.value]")
    x_scale = alt.Scale(domain=[-0.5, len(col_names) - 0.5])
    y_scale = alt.Scale(domain=[-0.6, max(positions, default=0) + 0.6], reverse=True)
    edge_layer = alt.Chart(alt.Data(values=edges)).mark_rule(opacity=0.6).encode(
        x=alt.X("x:Q", scale=x_scale, axis=x_axis), y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
        x2="x2:Q", y2="y2:Q",
        color=alt.Color("sign:N", scale=alt.Scale(domain=list(SIGN_COLOURS), range=list(SIGN_COLOURS.values())),
                        title="edge"),
        strokeWidth=alt.StrokeWidth("abs_weight:Q", scale=alt.Scale(range=[0.5, 6]), title="|weight|"),
        tooltip=["source:N", "target:N", alt.Tooltip("weight:Q", format=".4g")])
    node_layer = alt.Chart(alt.Data(values=nodes)).mark_circle(opacity=0.9, stroke="white", strokeWidth=0.5).encode(
        x=alt.X("column:Q", scale=x_scale, axis=x_axis), y=alt.Y("y:Q", scale=y_scale, axis=y_axis),
        size=alt.Size("influence:Q", scale=alt.Scale(range=[40, 600]), title="influence"),
        color=alt.Color("kind:N", scale=alt.Scale(domain=list(KIND_COLOURS), range=list(KIND_COLOURS.values())),
                        title="node"),
        tooltip=["id:N", "token:N", "latent:Q", alt.Tooltip("activation:Q", format=".4g"),
                 alt.Tooltip("influence:Q", format=".3g"), "label:N"])
    width = min(1200, 110 * len(col_names))
    height = min(900, max(160, 40 * len(positions)))
    return alt.layer(edge_layer, node_layer).resolve_scale(color="independent").properties(
        width=width, height=height, title="attribution graph")
