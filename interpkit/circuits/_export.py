"""Saving and loading attribution graphs: `AttributionGraph` ⇄ `~interpkit.records.GraphRecord`, and one folder per graph.

`save_graph` writes, as one folder swapped in whole (``interpkit._io.atomic_dir``)::

    <out>/graph.json         interpkit's format (every nonzero edge, so a reloaded graph prunes again)
    <out>/links.safetensors  the edges, for graphs with more than records' INLINE_LINKS of them
    <out>/neuronpedia.json   the JSON circuit-tracer writes and Neuronpedia's viewer reads (kept nodes and edges)
    <out>/graph.md           a short summary: targets, scores, the most influential nodes, the strongest edges

`load_graph` reads the folder, either JSON file, or a graph downloaded from Neuronpedia.

Example:
    >>> from interpkit.circuits import attribute, planted_circuit
    >>> pc = planted_circuit()
    >>> g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()
    >>> back = graph_from_record(graph_record(g))
    >>> bool((back.adjacency == g.adjacency).all()), back.edges_frame()["source"].tolist()
    (True, ['emb.p4', 'L0.p4.f0', 'L1.p6.f0', 'L2.p6.f0'])
"""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._io import atomic_dir
from interpkit.records import (
    NEURONPEDIA_JSON_NAME,
    GraphNodeRecord,
    GraphRecord,
    GraphTarget,
    neuronpedia_graph,
    read_graph_file,
)
from interpkit.records._graph import graph_record_files

from ._graph import AttributionGraph

__all__ = ["GRAPH_MD_NAME", "graph_from_record", "graph_markdown", "graph_record", "load_graph", "save_graph"]

GRAPH_MD_NAME = "graph.md"


def _num(x: Any) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _target_token(label: str) -> str | None:
    """The token of a logit target's label (``logit ' Paris'`` → `` Paris``), None when it is not one."""
    if not label.startswith("logit ") or " − " in label:
        return None
    try:
        value = ast.literal_eval(label[len("logit "):])
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, str) else None


def graph_record(graph: AttributionGraph) -> GraphRecord:
    """The `~interpkit.records.GraphRecord` of ``graph``: every node, every nonzero edge, kept flags after `prune`.

    Node influences are the full graph's (`AttributionGraph.influence`); ``scores`` are `AttributionGraph.scores`.
    """
    n = len(graph)
    infl = graph.influence()
    kept = graph.kept
    ids = [graph.node_id(i) for i in range(n)]
    nodes = tuple(
        GraphNodeRecord(
            id=ids[i], kind=graph.kinds[i], layer=int(graph.layers[i]), position=int(graph.positions[i]),
            latent=int(graph.latents[i]) if graph.kinds[i] == "feature" else None,
            activation=_num(graph.activations[i]), influence=_num(infl[i]),
            kept=True if kept is None else bool(kept[i]), label=graph.labels.get(ids[i]) or None,
            attributed=bool(graph.attributed[i]))
        for i in range(n))
    t, s = np.nonzero(graph.adjacency)
    link_kept = None
    if kept is not None:
        link_kept = graph.edge_mask[t, s] if graph.edge_mask is not None else kept[t] & kept[s]
    token_ids = graph.settings.get("target_token_ids") or []
    tnodes = np.flatnonzero(graph.mask("target"))
    targets = []
    for j, (label, weight, node) in enumerate(zip(graph.target_labels, graph.target_weights, tnodes, strict=True)):
        tids = tuple(int(x) for x in token_ids[j]) if j < len(token_ids) else ()
        kind = {1: "logit", 2: "logit_diff"}.get(len(tids), "direction" if j < len(token_ids) else None)
        targets.append(GraphTarget(label=str(label), weight=float(weight), value=_num(graph.activations[node]),
                                   kind=kind, token_ids=tids, token=_target_token(str(label)) if kind == "logit" else None))
    return GraphRecord(
        prompt=graph.prompt, tokens=tuple(graph.tokens), token_ids=tuple(int(x) for x in graph.token_ids),
        model=graph.model, n_layers=int(graph.n_layers), targets=tuple(targets), nodes=nodes,
        link_source=s, link_target=t, link_weight=graph.adjacency[t, s], link_kept=link_kept,
        dictionaries={str(k): v for k, v in graph.dictionaries.items()}, settings=dict(graph.settings),
        scores=graph.scores())


def graph_from_record(record: GraphRecord) -> AttributionGraph:
    """The `AttributionGraph` of ``record``: the adjacency rebuilt from its edges, ``kept``/``edge_mask`` when pruned.

    Unknown activations (a graph from Neuronpedia has none on error and embedding nodes) are NaN.
    """
    n = len(record.nodes)
    adj = np.zeros((n, n), dtype=np.float32)
    adj[record.link_target, record.link_source] = record.link_weight
    kept = edge_mask = None
    if record.pruned:
        kept = np.array([node.kept for node in record.nodes], dtype=bool)
        edge_mask = np.zeros((n, n), dtype=bool)
        edge_mask[record.link_target, record.link_source] = record.link_kept
    dicts = {int(k) if str(k).lstrip("-").isdigit() else k: dict(v) for k, v in record.dictionaries.items()}
    return AttributionGraph(
        prompt=record.prompt, tokens=list(record.tokens), token_ids=list(record.token_ids), model=record.model,
        n_layers=record.n_layers, kinds=[node.kind for node in record.nodes],
        layers=np.array([node.layer for node in record.nodes], dtype=np.int64),
        positions=np.array([node.position for node in record.nodes], dtype=np.int64),
        latents=np.array([-1 if node.latent is None else node.latent for node in record.nodes], dtype=np.int64),
        activations=np.array([np.nan if node.activation is None else node.activation for node in record.nodes]),
        adjacency=adj, attributed=np.array([node.attributed for node in record.nodes], dtype=bool),
        target_labels=[t.label for t in record.targets],
        target_weights=np.array([t.weight for t in record.targets], dtype=np.float64),
        dictionaries=dicts, settings=dict(record.settings), kept=kept, edge_mask=edge_mask,
        labels={node.id: node.label for node in record.nodes if node.label})


def _cell(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("\n", "⏎")


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}g}"


def graph_markdown(record: GraphRecord, *, top: int = 10) -> str:
    """``graph.md``: the prompt, targets, scores, the ``top`` most influential nodes and strongest kept edges."""
    nodes = record.nodes
    tok = record.tokens
    lines = [f"# Attribution graph: {_cell(record.prompt)}", "",
             f"- model: `{_cell(record.model)}` ({record.n_layers} layers), {len(tok)} tokens",
             f"- nodes: {len(nodes)} ({sum(n.kind == 'feature' for n in nodes)} features), edges: {record.n_links}"]
    if record.pruned:
        s = record.settings
        lines.append(f"- pruned (node threshold {s.get('node_threshold')}, edge threshold {s.get('edge_threshold')}): "
                     f"{sum(n.kept for n in nodes)} nodes and {int(record.link_kept.sum())} edges kept")
    lines += ["", "## Targets", "", "| target | weight | value |", "|---|---|---|"]
    lines += [f"| {_cell(t.label)} | {t.weight:.3g} | {_fmt(t.value)} |" for t in record.targets]
    if record.scores:
        lines += ["", "## Scores", ""]
        lines += [f"- {k}: {v:.4g}" if isinstance(v, float) else f"- {k}: {v}" for k, v in record.scores.items()]
    ranked = sorted((i for i, n in enumerate(nodes) if n.kind in ("feature", "error") and n.kept),
                    key=lambda i: -(nodes[i].influence or 0.0))[:top]
    lines += ["", f"## Top {len(ranked)} nodes by influence", "",
              "| node | token | activation | influence | label |", "|---|---|---|---|---|"]
    lines += [f"| `{nodes[i].id}` | `{_cell(repr(tok[nodes[i].position]))}` | {_fmt(nodes[i].activation)} | "
              f"{_fmt(nodes[i].influence)} | {_cell(nodes[i].label or '')} |" for i in ranked]
    use = np.flatnonzero(record.link_kept) if record.pruned else np.arange(record.n_links)
    use = use[np.argsort(-np.abs(record.link_weight[use]), kind="stable")][:top]

    def name(i: int) -> str:
        return f"`{nodes[i].id}`" + (f" ({_cell(nodes[i].label)})" if nodes[i].label else "")

    lines += ["", f"## Top {len(use)} edges by |weight|", "", "| source | target | weight |", "|---|---|---|"]
    lines += [f"| {name(int(record.link_source[k]))} | {name(int(record.link_target[k]))} | "
              f"{float(record.link_weight[k]):.4g} |" for k in use]
    return "\n".join(lines) + "\n"


def save_graph(graph: AttributionGraph | GraphRecord, out_dir: str | os.PathLike[str], *,
               slug: str | None = None, extra_files: Mapping[str, bytes] | None = None) -> Path:
    """Write ``graph.json`` (+ sidecar), ``neuronpedia.json`` and ``graph.md`` as the folder ``out_dir``.

    Args:
        graph: the graph (pruned or not; ``neuronpedia.json`` holds the kept part of a pruned one).
        out_dir: the folder, replaced as a whole (a crash leaves the old folder or the new one).
        slug: the Neuronpedia slug (default: a slug of the prompt).
        extra_files: more files of the same folder, ``{name: bytes}`` (e.g. ``validation.json``).

    Returns:
        ``out_dir``.
    """
    record = graph if isinstance(graph, GraphRecord) else graph_record(graph)
    files = graph_record_files(record)  # everything rendered before the folder is touched
    files[NEURONPEDIA_JSON_NAME] = (json.dumps(neuronpedia_graph(record, slug=slug), indent=2, ensure_ascii=False,
                                               allow_nan=False) + "\n").encode("utf-8")
    files[GRAPH_MD_NAME] = graph_markdown(record).encode("utf-8")
    for name, blob in (extra_files or {}).items():
        if name in files or "/" in name or name.startswith("."):
            raise ValueError(f"save_graph: extra file name {name!r} is taken or not a plain file name")
        files[name] = blob
    final = Path(out_dir)
    with atomic_dir(final) as tmp:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
    return final


def load_graph(path: str | os.PathLike[str]) -> AttributionGraph:
    """An `AttributionGraph` from a `save_graph` folder, a ``graph.json``, or a Neuronpedia graph JSON.

    Raises:
        FileNotFoundError: nothing at ``path`` (a folder: neither ``graph.json`` nor ``neuronpedia.json``).
        interpkit.records.RecordError: a malformed file (the message names the file and field).
    """
    return graph_from_record(read_graph_file(path))

