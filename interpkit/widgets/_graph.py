"""`GraphView`: an attribution graph in the notebook: layers left to right, click a node for its card.

The nodes and edges are `interpkit.viz.graph_chart_data`'s rows (the kept part of a pruned graph,
the ``max_nodes`` most influential features and error nodes), synced as JSON-ready lists; the
front end (``widgets/graph.js``) draws them as SVG and sets ``selected`` to the clicked node's id.
A node's card (label, token, activation, influence, strongest incoming and outgoing edges, and its
explanation when one was given) is built in the front end from the same lists; `GraphView.card`
builds the same card in Python.

Example:
    >>> from interpkit.circuits import attribute, planted_circuit
    >>> pc = planted_circuit()
    >>> g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()
    >>> view = GraphView(g, explanations={"L0.p4.f0": {"label": "the letter c"}})
    >>> view.selected = "L0.p4.f0"
    >>> card = view.card()
    >>> card["token"], [e["target"] for e in card["outgoing"]], card["explanation"]["label"]
    ('c', ['L1.p6.f0'], 'the letter c')
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import anywidget
import numpy as np
import traitlets

from ._static import asset

__all__ = ["GraphView"]

TOP_EDGES = 5
"""Incoming and outgoing edges a card lists."""


def _plain(value: Any) -> Any:
    """JSON-ready: numpy to Python, tuples to lists, NaN and inf to None, keys to strings."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if hasattr(value, "to_dict"):
        return _plain(value.to_dict())
    return str(value)


class GraphView(anywidget.AnyWidget):
    """An attribution graph with a per-node card.

    Args:
        graph: an `~interpkit.circuits.AttributionGraph` (pruned: its kept part) or a
            `~interpkit.records.GraphRecord`.
        explanations: ``{node id: dict}`` shown on the node's card, e.g. an ``interpkit.explain``
            explanation (``label``, ``top_examples`` with ``text`` and ``activation``); a ``label`` in
            it also labels the node.
        labels: node labels by id, over the graph's own.
        max_nodes: most feature and error nodes drawn.

    Raises:
        ValueError: ``max_nodes`` below 1, or an explanation for a node the view does not draw.
    """

    _esm = asset("graph.js")
    _css = asset("graph.css")

    nodes = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One row per drawn node: ``id``, ``kind``, ``layer``, ``column``, ``position``, ``y``, ``token``,
    ``latent``, ``activation``, ``influence``, ``label``."""
    links = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One row per drawn edge: ``source``, ``target``, ``weight``."""
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Column titles, left to right: ``emb``, ``L0`` ... ``target``."""
    tokens = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """The prompt's tokens."""
    targets = traitlets.List(traitlets.Dict()).tag(sync=True)
    """The targets: ``label``, ``weight``."""
    explanations = traitlets.Dict().tag(sync=True)
    """``{node id: explanation}`` (JSON-ready)."""
    selected = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """The clicked node's id (None: none)."""

    def __init__(self, graph: Any, *, explanations: Mapping[str, Mapping[str, Any]] | None = None,
                 labels: Mapping[str, str] | None = None, max_nodes: int = 200, **kwargs: Any) -> None:
        from interpkit.circuits import AttributionGraph, graph_from_record
        from interpkit.viz import graph_chart_data

        g = graph if isinstance(graph, AttributionGraph) else graph_from_record(graph)
        explained = {str(k): _plain(dict(v)) for k, v in (explanations or {}).items()}
        names = {**{k: v["label"] for k, v in explained.items() if isinstance(v.get("label"), str)}, **(labels or {})}
        nodes, edges = graph_chart_data(g, max_nodes=max_nodes, labels=names)
        drawn = {n["id"] for n in nodes}
        missing = sorted(set(explained) - drawn)
        if missing:
            raise ValueError(f"explanations for nodes the view does not draw: {missing[:5]} (pruned away, or past "
                             f"max_nodes={max_nodes})")
        super().__init__(
            nodes=_plain(nodes), links=[{k: e[k] for k in ("source", "target", "weight")} for e in edges],
            columns=["emb"] + [f"L{i}" for i in range(g.n_layers)] + ["target"], tokens=list(g.tokens),
            targets=[{"label": str(lab), "weight": float(w)}
                     for lab, w in zip(g.target_labels, g.target_weights, strict=True)],
            explanations=explained, **kwargs)

    def card(self, node_id: str | None = None) -> dict[str, Any]:
        """The card the front end shows for ``node_id`` (default: the selected node).

        Returns:
            The node's row plus ``incoming`` and ``outgoing`` (the `TOP_EDGES` strongest edges by
            ``|weight|``: ``source``, ``target``, ``weight``) and ``explanation`` (None when none was given).

        Raises:
            KeyError: no node is selected, or the view draws no such node.
        """
        node_id = self.selected if node_id is None else node_id
        node = next((n for n in self.nodes if n["id"] == node_id), None)
        if node is None:
            raise KeyError(f"no node {node_id!r} in this view")

        def top(side: str) -> list[dict[str, Any]]:
            rows = [e for e in self.links if e[side] == node_id]
            return sorted(rows, key=lambda e: -abs(e["weight"]))[:TOP_EDGES]

        return {**node, "incoming": top("target"), "outgoing": top("source"),
                "explanation": self.explanations.get(node_id)}
