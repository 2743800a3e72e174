"""Attribution graphs in the JSON that circuit-tracer's ``create_graph_files`` writes and Neuronpedia's viewer reads.

The layout (circuit-tracer's ``frontend/graph_models.py``; Neuronpedia's ``graph-schema.json``)::

    {"metadata": {"slug": "dog-cat", "scan": "gemma-2-2b", "transcoder_list": [], "prompt_tokens": ["<bos>", ...],
                  "prompt": "...", "node_threshold": 0.8, "schema_version": 1, "info": {...}, ...},
     "qParams": {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""},
     "nodes": [{"node_id": "0_253_1", "feature": 506, "layer": "0", "ctx_idx": 1,
                "feature_type": "cross layer transcoder", "token_prob": 0.0, "is_target_logit": false,
                "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "0_253-0", "clerp": "", "influence": 0.41,
                "activation": 9.4}, ...],
     "links": [{"source": "E_2_0", "target": "0_253_1", "weight": 12.9}, ...]}

Node ids and layers as circuit-tracer writes them: a feature ``{layer}_{latent}_{pos}`` (``feature`` the
Cantor pairing of layer and latent), an error ``{layer}_-1_{pos}`` (``feature`` -1), an embedding
``E_{token id}_{pos}`` (layer ``"E"``, ``feature`` the position), a logit ``{n_layers + 1}_{token id}_{pos}``
(layer ``n_layers + 1``, ``feature`` the token id, ``clerp`` ``Output " Paris" (p=0.567)``). ``influence``
is circuit-tracer's cumulative influence (`cumulative_influence`: the share of the total influence
carried by the nodes at least as influential; the viewer prunes on it with ``node_threshold``), set on
every node but the logits. `neuronpedia_graph` writes the kept nodes and edges of a pruned record (a
record that was not pruned: all of them), dropping features and errors left without an edge, as
``create_graph_files`` does.

`read_neuronpedia_graph` reads such a file (a graph downloaded from Neuronpedia) into a
`GraphRecord`, strictly: a `RecordError` names the file and the field. Keys it does not use are
allowed (other producers add their own); the metadata and ``qParams`` are kept in the record's
``extra["neuronpedia"]``, so a re-export keeps the slug, scan and info. `read_graph_file` reads either
format (or a folder written by ``interpkit.circuits.save_graph``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_text, read_json_file
from .._io import slug as make_slug
from .._version import __version__
from ._checks import check_bool, check_int, check_mapping, check_number, check_required, check_str
from ._errors import RecordError
from ._graph import (
    GRAPH_JSON_NAME,
    GraphNodeRecord,
    GraphRecord,
    GraphTarget,
    graph_node_id,
    parse_graph_record,
)

__all__ = [
    "NEURONPEDIA_JSON_NAME",
    "cumulative_influence",
    "neuronpedia_graph",
    "parse_neuronpedia_graph",
    "read_graph_file",
    "read_neuronpedia_graph",
    "write_neuronpedia_graph",
]

NEURONPEDIA_JSON_NAME = "neuronpedia.json"
FEATURE_TYPES = {"feature": "cross layer transcoder", "error": "mlp reconstruction error",
                 "embedding": "embedding", "target": "logit"}
_KIND_OF = {v: k for k, v in FEATURE_TYPES.items()}
_ORDER = {"feature": 0, "error": 1, "embedding": 2, "target": 3}
_OUTPUT = re.compile(r'^Output "(.*)" \(p=[^)]*\)$', re.S)


def cantor_pairing(x: int, y: int) -> int:
    """circuit-tracer's feature number of latent ``y`` at layer ``x``."""
    return (x + y) * (x + y + 1) // 2 + y


def process_token(token: str) -> str:
    """A token as circuit-tracer shows it (newline ``⏎``, tab ``→``, carriage return ``↵``)."""
    return token.replace("\n", "⏎").replace("\t", "→").replace("\r", "↵")


def cumulative_influence(influence: np.ndarray) -> np.ndarray:
    """circuit-tracer's per-node cumulative score: sort descending, cumulative sum over the total, scattered back."""
    x = np.asarray(influence, dtype=np.float64)
    order = np.argsort(-x, kind="stable")
    total = x.sum()
    out = np.zeros_like(x)
    out[order] = np.cumsum(x[order]) / total if total > 0 else 1.0
    return out


# ---- writing -------------------------------------------------------------------------------


def _cumulative(record: GraphRecord) -> np.ndarray | None:
    if all(n.influence is not None for n in record.nodes):
        return cumulative_influence(np.array([n.influence for n in record.nodes]))
    known = (record.extra.get("neuronpedia") or {}).get("cumulative_influence") or {}
    if known:
        return np.array([known.get(n.id, np.nan) for n in record.nodes], dtype=np.float64)
    return None


def _num(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def neuronpedia_graph(record: GraphRecord, *, slug: str | None = None, scan: str | None = None) -> dict[str, Any]:
    """The Neuronpedia / circuit-tracer JSON of ``record`` (see the module docstring).

    Args:
        record: the graph.
        slug: the graph's slug (default: the one it was read with, else a slug of the prompt).
        scan: the model id Neuronpedia files it under (default: the one it was read with, else ``record.model``).
    """
    before = dict(record.extra.get("neuronpedia") or {})
    meta_before = dict(before.get("metadata") or {})
    n = len(record.nodes)
    include = np.array([n_.kept for n_ in record.nodes]) if record.pruned else np.ones(n, bool)
    use = include[record.link_source] & include[record.link_target]
    if record.link_kept is not None:
        use &= record.link_kept
    use &= record.link_weight != 0
    order = np.lexsort((record.link_source[use], record.link_target[use]))  # circuit-tracer: row-major [dst, src]
    src, dst, w = record.link_source[use][order], record.link_target[use][order], record.link_weight[use][order]
    connected = set(src.tolist()) | set(dst.tolist())
    cumulative = _cumulative(record)
    targets = iter(record.targets)
    first_target = True
    nodes, ids = [], {}
    for i, node in enumerate(record.nodes):
        target = next(targets) if node.kind == "target" else None
        if not include[i] or (node.kind in ("feature", "error") and i not in connected):
            continue
        infl = None if cumulative is None else _num(cumulative[i])
        layer, pos = node.layer, node.position
        if node.kind == "feature":
            out = {"node_id": f"{layer}_{node.latent}_{pos}", "feature": cantor_pairing(layer, node.latent),
                   "layer": str(layer), "ctx_idx": pos, "feature_type": FEATURE_TYPES["feature"],
                   "jsNodeId": f"{layer}_{node.latent}-0", "activation": _num(node.activation)}
        elif node.kind == "error":
            out = {"node_id": f"{layer}_-1_{pos}", "feature": -1, "layer": str(layer), "ctx_idx": pos,
                   "feature_type": FEATURE_TYPES["error"], "jsNodeId": f"{layer}_{pos}-0", "activation": None}
        elif node.kind == "embedding":
            vocab = record.token_ids[pos]
            out = {"node_id": f"E_{vocab}_{pos}", "feature": pos, "layer": "E", "ctx_idx": pos,
                   "feature_type": FEATURE_TYPES["embedding"], "jsNodeId": f"E_{vocab}-{pos}", "activation": None}
        else:
            assert target is not None
            vocab = target.token_ids[0] if target.token_ids else len(ids)
            prob = target.probability if target.probability is not None else target.weight
            token = process_token(target.token) if target.token is not None else target.label
            lay = str(record.n_layers + 1)
            out = {"node_id": f"{lay}_{vocab}_{pos}", "feature": vocab, "layer": lay, "ctx_idx": pos,
                   "feature_type": FEATURE_TYPES["target"], "token_prob": float(prob),
                   "is_target_logit": first_target, "jsNodeId": f"L_{vocab}-{pos}",
                   "clerp": f'Output "{token}" (p={prob:.3f})', "influence": None, "activation": None}
            first_target = False
        full = {"node_id": out["node_id"], "feature": out["feature"], "layer": out["layer"], "ctx_idx": pos,
                "feature_type": out["feature_type"], "token_prob": out.get("token_prob", 0.0),
                "is_target_logit": out.get("is_target_logit", False), "run_idx": 0, "reverse_ctx_idx": 0,
                "jsNodeId": out["jsNodeId"], "clerp": out.get("clerp", node.label or ""),
                "influence": out.get("influence", infl), "activation": out["activation"]}
        ids[i] = full["node_id"]
        nodes.append(full)
    links = [{"source": ids[s], "target": ids[t], "weight": x}
             for s, t, x in zip(src.tolist(), dst.tolist(), w.tolist(), strict=True) if s in ids and t in ids]
    settings = record.settings
    meta: dict[str, Any] = {
        "slug": slug or meta_before.get("slug") or make_slug(record.prompt, empty="graph"),
        "scan": scan or meta_before.get("scan") or record.model,
        "transcoder_list": list(meta_before.get("transcoder_list") or []),
        "prompt_tokens": [process_token(t) for t in record.tokens],
        "prompt": record.prompt,
        "node_threshold": _num(settings.get("node_threshold")) if settings.get("node_threshold") is not None else None,
        "schema_version": 1,
    }
    meta["info"] = dict(meta_before.get("info") or {
        "generator": {"name": "interpkit", "version": __version__}})
    if meta_before.get("feature_details"):
        meta["feature_details"] = meta_before["feature_details"]
    gen = {k: settings[k] for k in ("max_feature_nodes", "batch_size") if isinstance(settings.get(k), int)}
    if gen or meta_before.get("generation_settings"):
        meta["generation_settings"] = dict(meta_before.get("generation_settings") or gen)
    prune = {k: float(settings[k]) for k in ("node_threshold", "edge_threshold")
             if isinstance(settings.get(k), (int, float)) and not isinstance(settings.get(k), bool)}
    if prune:
        meta["pruning_settings"] = prune
    qparams = {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    return {"metadata": meta, "qParams": qparams, "nodes": nodes, "links": links}


def write_neuronpedia_graph(record: GraphRecord, path: str | os.PathLike[str], *, slug: str | None = None,
                            scan: str | None = None) -> Path:
    """Write `neuronpedia_graph` of ``record`` to the file ``path``, atomically; return the path."""
    data = neuronpedia_graph(record, slug=slug, scan=scan)
    return atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


# ---- reading -------------------------------------------------------------------------------


def _invalid(f: Path, exc: json.JSONDecodeError) -> RecordError:
    return RecordError("valid JSON", rendered=f"{exc.msg} at column {exc.colno}", path=str(f), line=exc.lineno)


def read_neuronpedia_graph(path: str | os.PathLike[str]) -> GraphRecord:
    """Read a Neuronpedia / circuit-tracer graph JSON file, strictly.

    Raises:
        FileNotFoundError: no such file.
        RecordError: not JSON (the line named), a missing or malformed field, an unknown
            ``feature_type``, a node id that disagrees with its layer or position, a link to an unknown
            node; the message names the file and the field.
    """
    jpath, data = read_json_file(path, name=NEURONPEDIA_JSON_NAME, missing="no Neuronpedia graph at {path}",
                                 invalid=_invalid)
    return parse_neuronpedia_graph(data, jpath)


def read_graph_file(path: str | os.PathLike[str]) -> GraphRecord:
    """Read an interpkit ``graph.json``, a Neuronpedia graph JSON, or a folder holding either (``graph.json`` first).

    Raises:
        FileNotFoundError: no such file, or a folder with neither file.
        RecordError: a file in neither format, or a malformed one (see `read_graph_record`, `read_neuronpedia_graph`).
    """
    p = Path(path)
    if p.is_dir():
        for name in (GRAPH_JSON_NAME, NEURONPEDIA_JSON_NAME):
            if (p / name).is_file():
                p = p / name
                break
        else:
            raise FileNotFoundError(f"no attribution graph in {p} (expected {GRAPH_JSON_NAME} or {NEURONPEDIA_JSON_NAME})")
    jpath, data = read_json_file(p, missing="no attribution graph at {path}", invalid=_invalid)
    if isinstance(data, Mapping) and "format" in data:
        return parse_graph_record(data, jpath)
    if isinstance(data, Mapping) and "metadata" in data and "nodes" in data:
        return parse_neuronpedia_graph(data, jpath)
    raise RecordError("an interpkit graph (\"format\": \"interpkit.graph\") or a Neuronpedia graph "
                      "(metadata, qParams, nodes, links)", rendered=f"keys {sorted(data)[:8]}"
                      if isinstance(data, Mapping) else type(data).__name__, path=str(jpath))


def parse_neuronpedia_graph(data: Any, path: str | os.PathLike[str] | None = None) -> GraphRecord:
    """The `GraphRecord` of a Neuronpedia graph's parsed JSON (see `read_neuronpedia_graph`)."""
    where = None if path is None else str(path)
    try:
        return _parse(data, where)
    except RecordError as err:
        raise (err if err.path is not None else err.located(path=where, line=None)) from None


def _id_parts(node_id: str, n: int, where: str) -> list[str]:
    parts = node_id.rsplit("_", n - 1) if not node_id.startswith("E_") else node_id.split("_")
    if len(parts) != n:
        raise RecordError(f"a node id of {n} parts joined by '_' (circuit-tracer's scheme)", node_id, field=where)
    return parts


def _int_part(text: str, node_id: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise RecordError("a node id of integers joined by '_' (circuit-tracer's scheme)", node_id,
                          field=where) from None


def _parse(data: Any, where: str | None) -> GraphRecord:
    data = check_mapping(data, None)
    meta = check_mapping(check_required(data, "metadata", "metadata"), "metadata")
    qparams = check_mapping(check_required(data, "qParams", "qParams"), "qParams")
    raw_nodes, raw_links = check_required(data, "nodes", "nodes"), check_required(data, "links", "links")
    for name, value in (("nodes", raw_nodes), ("links", raw_links)):
        if not isinstance(value, list):
            raise RecordError(f"a list of {name}", value, field=name)
    check_str(check_required(meta, "slug", "metadata.slug"), "metadata.slug")
    scan = check_str(check_required(meta, "scan", "metadata.scan"), "metadata.scan")
    prompt = check_str(check_required(meta, "prompt", "metadata.prompt"), "metadata.prompt")
    tokens = check_required(meta, "prompt_tokens", "metadata.prompt_tokens")
    if not isinstance(tokens, list):
        raise RecordError("a list of token strings", tokens, field="metadata.prompt_tokens")
    tokens = [check_str(t, f"metadata.prompt_tokens[{i}]") for i, t in enumerate(tokens)]
    node_threshold = check_number(meta.get("node_threshold"), "metadata.node_threshold", optional=True)
    n_pos = len(tokens)
    parsed, logit_layers = [], set()
    for i, raw in enumerate(raw_nodes):
        w = f"nodes[{i}]"
        raw = check_mapping(raw, w)
        node_id = check_str(check_required(raw, "node_id", f"{w}.node_id"), f"{w}.node_id", nonempty=True)
        ftype = check_str(check_required(raw, "feature_type", f"{w}.feature_type"), f"{w}.feature_type")
        if ftype not in _KIND_OF:
            raise RecordError(f"a feature_type ({', '.join(map(repr, _KIND_OF))})", ftype, field=f"{w}.feature_type")
        kind = _KIND_OF[ftype]
        feature = check_int(check_required(raw, "feature", f"{w}.feature"), f"{w}.feature", optional=True)
        layer_raw = check_required(raw, "layer", f"{w}.layer")
        pos = check_int(check_required(raw, "ctx_idx", f"{w}.ctx_idx"), f"{w}.ctx_idx", minimum=0)
        if pos >= n_pos:
            raise RecordError(f"a position in the prompt (0..{n_pos - 1})", pos, field=f"{w}.ctx_idx")
        check_str(check_required(raw, "jsNodeId", f"{w}.jsNodeId"), f"{w}.jsNodeId")
        clerp = check_str(check_required(raw, "clerp", f"{w}.clerp"), f"{w}.clerp")
        activation = check_number(raw.get("activation"), f"{w}.activation", optional=True)
        influence = check_number(raw.get("influence"), f"{w}.influence", optional=True)
        if kind == "embedding":
            if layer_raw != "E":
                raise RecordError("\"E\" (an embedding's layer)", layer_raw, field=f"{w}.layer")
            layer = -1
        else:
            if isinstance(layer_raw, bool) or not isinstance(layer_raw, (str, int)):
                raise RecordError("a layer number (a string or an integer)", layer_raw, field=f"{w}.layer")
            try:
                layer = int(layer_raw)
            except ValueError:
                raise RecordError("a layer number (a string or an integer)", layer_raw, field=f"{w}.layer") from None
        parts = _id_parts(node_id, 3, f"{w}.node_id")
        vals = [_int_part(p, node_id, f"{w}.node_id") for p in parts[1:]]
        head = layer if kind != "embedding" else None
        if kind == "error" and parts[0] == "0" and vals[0] == layer:
            head = 0  # older circuit-tracer releases wrote error nodes as 0_{layer}_{pos}
        if vals[-1] != pos or (head is not None and _int_part(parts[0], node_id, f"{w}.node_id") != head):
            raise RecordError(f"a node id naming its layer ({layer_raw}) and position ({pos})", node_id,
                              field=f"{w}.node_id")
        item = {"i": i, "node_id": node_id, "kind": kind, "layer": layer, "position": pos, "latent": None,
                "label": clerp or None, "activation": activation, "influence": influence}
        if kind == "feature":
            if vals[0] < 0:
                raise RecordError("a latent index >= 0 in the node id", node_id, field=f"{w}.node_id")
            item["latent"] = vals[0]
        elif kind == "embedding":
            item["token_id"] = vals[0]
        elif kind == "target":
            if feature is None or feature < 0:
                raise RecordError("the token id of the logit", feature, field=f"{w}.feature")
            logit_layers.add(layer)
            m = _OUTPUT.match(clerp)
            prob = check_number(raw.get("token_prob", 0.0), f"{w}.token_prob")
            item.update(token_id=feature, token=m.group(1) if m else None, probability=prob,
                        is_target=check_bool(raw.get("is_target_logit", False), f"{w}.is_target_logit"),
                        label=f"logit {m.group(1)!r}" if m else (clerp or f"logit {feature}"))
        parsed.append(item)
    if not logit_layers:
        raise RecordError("at least one node of feature_type 'logit'", rendered="none", field="nodes")
    if len(logit_layers) > 1:
        raise RecordError("one layer for every logit node (n_layers + 1)", rendered=str(sorted(logit_layers)),
                          field="nodes")
    n_layers = logit_layers.pop() - 1
    for item in parsed:
        w = f"nodes[{item['i']}]"
        if item["kind"] in ("feature", "error") and not 0 <= item["layer"] < n_layers:
            raise RecordError(f"a layer below the logits' ({n_layers + 1})", item["layer"], field=f"{w}.layer")
        if item["kind"] == "target":
            item["layer"] = n_layers
    parsed.sort(key=lambda it: (_ORDER[it["kind"]], it["layer"], it["position"], it["latent"] or 0)
                if it["kind"] != "target" else (3, 0, 0, 0))
    by_file_id, seen, nodes, targets = {}, {}, [], []
    token_ids = [-1] * n_pos
    for item in parsed:
        w = f"nodes[{item['i']}]"
        if item["node_id"] in by_file_id:
            raise RecordError("a node_id not used before", item["node_id"], field=f"{w}.node_id")
        ours = graph_node_id(item["kind"], item["layer"], item["position"], item["latent"], len(targets))
        if ours in seen:
            raise RecordError(f"one node per kind, layer and position (nodes[{seen[ours]}] is the same node)",
                              item["node_id"], field=f"{w}.node_id")
        seen[ours] = item["i"]
        by_file_id[item["node_id"]] = len(nodes)
        if item["kind"] == "embedding":
            token_ids[item["position"]] = item["token_id"]
        if item["kind"] == "target":
            targets.append(item)
        nodes.append(GraphNodeRecord(
            id=ours, kind=item["kind"], layer=item["layer"], position=item["position"], latent=item["latent"],
            activation=item["activation"] if item["kind"] == "feature" else None,
            influence=None, kept=True, label=item["label"] if item["kind"] in ("feature", "error") else None,
            attributed=item["kind"] in ("feature", "target")))
    n = len(raw_links)
    src, dst, weight = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.float32)
    pairs: dict[tuple[int, int], int] = {}
    for i, raw in enumerate(raw_links):
        w = f"links[{i}]"
        raw = check_mapping(raw, w)
        for name, arr in (("source", src), ("target", dst)):
            ref = check_required(raw, name, f"{w}.{name}")
            if not isinstance(ref, str) or ref not in by_file_id:
                raise RecordError("the node_id of a node in 'nodes'", ref, field=f"{w}.{name}")
            arr[i] = by_file_id[ref]
        weight[i] = check_number(check_required(raw, "weight", f"{w}.weight"), f"{w}.weight")
        key = (int(src[i]), int(dst[i]))
        if key in pairs:
            raise RecordError(f"one link per (source, target) pair (links[{pairs[key]}] has it)",
                              f"{raw['source']} -> {raw['target']}", field=w)
        pairs[key] = i
    probs = np.array([t["probability"] for t in targets], dtype=np.float64)
    weights = probs / probs.sum() if probs.sum() > 0 else np.full(len(targets), 1.0 / len(targets))
    record_targets = tuple(
        GraphTarget(label=t["label"], weight=float(wt), value=None, kind="logit", token_ids=(t["token_id"],),
                    token=t["token"], probability=t["probability"]) for t, wt in zip(targets, weights, strict=True))
    pruning = meta.get("pruning_settings") if isinstance(meta.get("pruning_settings"), Mapping) else {}
    settings = {"source": "neuronpedia", "node_threshold": node_threshold,
                "edge_threshold": pruning.get("edge_threshold")}
    ids = [node.id for node in nodes]
    cumulative = {ids[by_file_id[it["node_id"]]]: it["influence"] for it in parsed if it["influence"] is not None}
    extra = {"neuronpedia": {"metadata": dict(meta), "qParams": dict(qparams), "cumulative_influence": cumulative}}
    return GraphRecord(
        prompt=prompt, tokens=tuple(tokens), token_ids=tuple(token_ids), model=scan, n_layers=n_layers,
        targets=record_targets, nodes=tuple(nodes), link_source=src, link_target=dst, link_weight=weight,
        link_kept=np.ones(n, bool), dictionaries={}, settings=settings, scores={}, extra=extra,
        path=None if where is None else Path(where))
