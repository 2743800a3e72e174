"""Attribution graphs as a file format: ``graph.json`` (``"format": "interpkit.graph"``, schema version 1).

A `GraphRecord` is one prompt's attribution graph, field for field as ``graph.json`` holds it, with
no dependency on the circuits layer (``interpkit.circuits.graph_record`` / ``graph_from_record``
convert). It keeps every nonzero edge, not only the kept ones, so a reloaded graph can be pruned
again with other thresholds::

    {"format": "interpkit.graph", "schema_version": 1, "interpkit_version": "0.x",
     "prompt": "dog cat", "tokens": ["d", "o", ...], "token_ids": [7, 18, ...],
     "model": "planted-circuit", "n_layers": 3,
     "targets": [{"node": "target0", "label": "logit 't'", "kind": "logit", "weight": 1.0,
                  "value": 0.29, "token_ids": [23], "token": "t", "probability": null}],
     "dictionaries": {"0": {"site": "layer0.mlp_in", "architecture": "relu", "d_sae": 8, "source": null}},
     "settings": {"node_threshold": 0.8, "edge_threshold": 0.98, ...},
     "scores": {"replacement_score": 1.0, ...},
     "pruned": true, "extra": {},
     "nodes": [{"id": "L0.p4.f0", "kind": "feature", "layer": 0, "position": 4, "latent": 0,
                "activation": 2.0, "influence": 1.0, "kept": true, "label": null, "attributed": true}, ...],
     "links": [{"source": "emb.p4", "target": "L0.p4.f0", "weight": 2.0, "kept": true}, ...]}

Node ids follow ``AttributionGraph.node_id``: ``L3.p5.f123`` (feature), ``L3.p5.err`` (error),
``emb.p5`` (embedding), ``target0`` (the first target); layers are -1 for embeddings and
``n_layers`` for targets. A graph with more than `INLINE_LINKS` edges keeps them in a sidecar,
``links.safetensors`` beside ``graph.json`` (int32 ``source`` and ``target`` node indices into
``nodes``, float32 ``weight``, uint8 ``kept`` when pruned), and ``links`` is then
``{"file": "links.safetensors", "count": n, "sha256": "..."}``: millions of JSON links would make
a file no one can open. `read_graph_record` is strict: every problem is a `RecordError` naming the
file and the field (and the line, for a file that is not JSON).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_dir, read_json_file, sha256_file
from .._version import __version__
from ._checks import check_bool, check_int, check_mapping, check_number, check_required, check_str
from ._errors import RecordError

__all__ = [
    "GRAPH_FORMAT",
    "GRAPH_JSON_NAME",
    "GRAPH_LINKS_NAME",
    "GRAPH_SCHEMA_VERSION",
    "NODE_KINDS",
    "GraphNodeRecord",
    "GraphRecord",
    "GraphTarget",
    "graph_node_id",
    "graph_record_files",
    "parse_graph_record",
    "read_graph_record",
    "write_graph_record",
]

GRAPH_FORMAT = "interpkit.graph"
"""``format`` of ``graph.json``."""
GRAPH_SCHEMA_VERSION = 1
GRAPH_JSON_NAME = "graph.json"
GRAPH_LINKS_NAME = "links.safetensors"
INLINE_LINKS = 50_000
"""Most edges written as JSON links; more go to the ``links.safetensors`` sidecar."""
NODE_KINDS = ("feature", "error", "embedding", "target")

_TOP = ("format", "schema_version", "interpkit_version", "prompt", "tokens", "token_ids", "model", "n_layers",
        "targets", "dictionaries", "settings", "scores", "pruned", "extra", "nodes", "links")
_NODE = ("id", "kind", "layer", "position", "latent", "activation", "influence", "kept", "label", "attributed")
_TARGET = ("node", "label", "kind", "weight", "value", "token_ids", "token", "probability")
_LINK = ("source", "target", "weight", "kept")
_SIDECAR = ("file", "count", "sha256")


def graph_node_id(kind: str, layer: int, position: int, latent: int | None = None, target_index: int = 0) -> str:
    """The node id ``AttributionGraph.node_id`` gives a node (see the module docstring)."""
    if kind == "feature":
        return f"L{layer}.p{position}.f{latent}"
    if kind == "error":
        return f"L{layer}.p{position}.err"
    if kind == "embedding":
        return f"emb.p{position}"
    return f"target{target_index}"


@dataclass(frozen=True, slots=True)
class GraphNodeRecord:
    """One node of a `GraphRecord`.

    Attributes:
        id: the node id (`graph_node_id`).
        kind: one of `NODE_KINDS`.
        layer: the layer (-1 for embeddings, ``n_layers`` for targets).
        position: the prompt position.
        latent: a feature's dictionary latent (None for the other kinds).
        activation: a feature's activation, an error or embedding node's norm, a target's value.
        influence: the node's influence on the weighted targets in the full graph (None: unknown, e.g.
            a graph read from Neuronpedia).
        kept: kept by pruning (True for every node of an unpruned graph).
        label: a label (``explain``, or a Neuronpedia ``clerp``).
        attributed: whether the node's row (its incoming edges) was computed.
    """

    id: str
    kind: str
    layer: int
    position: int
    latent: int | None = None
    activation: float | None = None
    influence: float | None = None
    kept: bool = True
    label: str | None = None
    attributed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The node's JSON object."""
        return {"id": self.id, "kind": self.kind, "layer": self.layer, "position": self.position,
                "latent": self.latent, "activation": self.activation, "influence": self.influence,
                "kept": self.kept, "label": self.label, "attributed": self.attributed}


@dataclass(frozen=True, slots=True)
class GraphTarget:
    """What the graph explains, one per ``target`` node (in node order).

    Attributes:
        label: ``'logit " Paris"'``.
        weight: its weight in the influence (the targets' weights sum to 1).
        value: its value on the prompt (None: unknown).
        kind: ``"logit"``, ``"logit_diff"``, ``"direction"`` (None: unknown).
        token_ids: the token ids it reads (a logit: one; a difference: two; a direction: none).
        token: a logit's token as text (None: unknown).
        probability: the model's probability of the token (None: unknown).
    """

    label: str
    weight: float
    value: float | None = None
    kind: str | None = None
    token_ids: tuple[int, ...] = ()
    token: str | None = None
    probability: float | None = None


@dataclass(frozen=True, kw_only=True)
class GraphRecord:
    """One prompt's attribution graph as a file holds it (see the module docstring).

    Links are arrays over node indices (positions in ``nodes``): ``link_source``, ``link_target``
    (int64), ``link_weight`` (float32) and ``link_kept`` (bool; None when the graph was not pruned).

    Raises:
        RecordError: inconsistent fields (the field named), e.g. a duplicate node id, a link to a node
            that does not exist, targets that do not match the target nodes.
    """

    prompt: str
    tokens: tuple[str, ...]
    token_ids: tuple[int, ...]
    model: str
    n_layers: int
    targets: tuple[GraphTarget, ...]
    nodes: tuple[GraphNodeRecord, ...]
    link_source: np.ndarray
    link_target: np.ndarray
    link_weight: np.ndarray
    link_kept: np.ndarray | None = None
    dictionaries: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    scores: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "tokens", tuple(self.tokens))
        set_(self, "token_ids", tuple(int(t) for t in self.token_ids))
        set_(self, "targets", tuple(self.targets))
        set_(self, "nodes", tuple(self.nodes))
        set_(self, "link_source", np.asarray(self.link_source, dtype=np.int64).reshape(-1))
        set_(self, "link_target", np.asarray(self.link_target, dtype=np.int64).reshape(-1))
        set_(self, "link_weight", np.asarray(self.link_weight, dtype=np.float32).reshape(-1))
        if self.link_kept is not None:
            set_(self, "link_kept", np.asarray(self.link_kept, dtype=bool).reshape(-1))
        for name in ("dictionaries", "settings", "scores", "extra"):
            set_(self, name, dict(getattr(self, name)))
        _validate(self)

    __hash__ = None  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GraphRecord):
            return NotImplemented
        return _json_form(self, inline=True) == _json_form(other, inline=True)

    @property
    def pruned(self) -> bool:
        """Whether ``kept`` and ``link_kept`` come from pruning."""
        return self.link_kept is not None

    @property
    def n_links(self) -> int:
        """How many edges the record holds."""
        return int(self.link_weight.size)

    def index(self) -> dict[str, int]:
        """``{node id: index in nodes}``."""
        return {n.id: i for i, n in enumerate(self.nodes)}

    def to_dict(self) -> dict[str, Any]:
        """``graph.json``'s content with every link inline."""
        return _json_form(self, inline=True)


# ---- validation ----------------------------------------------------------------------------


def _validate(rec: GraphRecord) -> None:
    check_str(rec.prompt, "prompt")
    check_str(rec.model, "model")
    check_int(rec.n_layers, "n_layers", minimum=0)
    if len(rec.tokens) != len(rec.token_ids):
        raise RecordError(f"one token id per token ({len(rec.tokens)} tokens)", list(rec.token_ids), field="token_ids")
    for i, t in enumerate(rec.tokens):
        check_str(t, f"tokens[{i}]")
    for i, t in enumerate(rec.token_ids):
        check_int(t, f"token_ids[{i}]", minimum=-1)
    n_targets = _check_nodes(rec.nodes, len(rec.tokens), rec.n_layers, rec.pruned)
    _check_targets(rec, n_targets)
    _check_links(rec)


def _check_nodes(nodes: Sequence[GraphNodeRecord], n_pos: int, n_layers: int, pruned: bool) -> int:
    """Check every node; return how many targets there are."""
    seen, n_targets = set(), 0
    for i, node in enumerate(nodes):
        where = f"nodes[{i}]"
        if node.kind not in NODE_KINDS:
            raise RecordError(f"a node kind ({', '.join(NODE_KINDS)})", node.kind, field=f"{where}.kind")
        check_int(node.position, f"{where}.position", minimum=0)
        if node.position >= n_pos:
            raise RecordError(f"a position in the prompt (0..{n_pos - 1})", node.position, field=f"{where}.position")
        check_int(node.layer, f"{where}.layer")
        want_layer = {"embedding": -1, "target": n_layers}.get(node.kind)
        if want_layer is not None and node.layer != want_layer:
            raise RecordError(f"layer {want_layer} for a {node.kind} node", node.layer, field=f"{where}.layer")
        if want_layer is None and not 0 <= node.layer < n_layers:
            raise RecordError(f"a layer of the model (0..{n_layers - 1})", node.layer, field=f"{where}.layer")
        if node.kind == "feature":
            check_int(node.latent, f"{where}.latent", minimum=0)
        elif node.latent is not None:
            raise RecordError(f"null (a {node.kind} node has no latent)", node.latent, field=f"{where}.latent")
        for name in ("activation", "influence"):
            check_number(getattr(node, name), f"{where}.{name}", optional=True)
        check_bool(node.kept, f"{where}.kept")
        check_bool(node.attributed, f"{where}.attributed")
        check_str(node.label, f"{where}.label", optional=True)
        want = graph_node_id(node.kind, node.layer, node.position, node.latent, n_targets)
        if node.id != want:
            raise RecordError(f"the id {want!r} (ids follow kind, layer, position and latent)", node.id,
                              field=f"{where}.id")
        if node.id in seen:
            raise RecordError("a node id not used before", node.id, field=f"{where}.id")
        seen.add(node.id)
        n_targets += node.kind == "target"
        if not pruned and not node.kept:
            raise RecordError("true (the graph is not pruned: every node is kept)", False, field=f"{where}.kept")
    if n_targets == 0:
        raise RecordError("at least one target node", rendered="none", field="nodes")
    return n_targets


def _check_targets(rec: GraphRecord, n_targets: int) -> None:
    if len(rec.targets) != n_targets:
        raise RecordError(f"one target per target node ({n_targets})", rendered=f"{len(rec.targets)} targets",
                          field="targets")
    for j, t in enumerate(rec.targets):
        where = f"targets[{j}]"
        check_str(t.label, f"{where}.label", nonempty=True)
        check_number(t.weight, f"{where}.weight")
        if t.weight < 0:
            raise RecordError("a weight >= 0", t.weight, field=f"{where}.weight")
        check_number(t.value, f"{where}.value", optional=True)
        check_number(t.probability, f"{where}.probability", optional=True)
        check_str(t.kind, f"{where}.kind", optional=True)
        check_str(t.token, f"{where}.token", optional=True)
        for k, tid in enumerate(t.token_ids):
            check_int(tid, f"{where}.token_ids[{k}]", minimum=0)


def _check_links(rec: GraphRecord) -> None:
    n = len(rec.nodes)
    sizes = {rec.link_source.size, rec.link_target.size, rec.link_weight.size}
    if rec.link_kept is not None:
        sizes.add(rec.link_kept.size)
    if len(sizes) != 1:
        raise RecordError("as many sources, targets, weights (and kept flags) as links", rendered=str(sorted(sizes)),
                          field="links")
    for name, arr in (("source", rec.link_source), ("target", rec.link_target)):
        bad = np.flatnonzero((arr < 0) | (arr >= n))
        if bad.size:
            raise RecordError(f"the index of a node (0..{n - 1})", int(arr[bad[0]]), field=f"links[{int(bad[0])}].{name}")
    bad = np.flatnonzero(~np.isfinite(rec.link_weight))
    if bad.size:
        raise RecordError("a finite number", rendered=str(rec.link_weight[bad[0]]), field=f"links[{int(bad[0])}].weight")
    if rec.n_links:
        key = rec.link_target * n + rec.link_source
        order = np.sort(key)
        same = np.flatnonzero(order[1:] == order[:-1])
        if same.size:
            dup = int(order[same[0]])
            raise RecordError("one link per (source, target) pair", rendered=f"{rec.nodes[dup % n].id} -> "
                              f"{rec.nodes[dup // n].id} twice", field="links")


# ---- JSON form -----------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """JSON-ready: numpy scalars and arrays to Python, tuples to lists, NaN and inf to None, keys to str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.generic,)):
        return _jsonable(value.item())
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def _json_form(rec: GraphRecord, *, inline: bool) -> dict[str, Any]:
    ids = [n.id for n in rec.nodes]
    targets = [n for n in rec.nodes if n.kind == "target"]
    data: dict[str, Any] = {
        "format": GRAPH_FORMAT, "schema_version": GRAPH_SCHEMA_VERSION, "interpkit_version": __version__,
        "prompt": rec.prompt, "tokens": list(rec.tokens), "token_ids": list(rec.token_ids), "model": rec.model,
        "n_layers": rec.n_layers,
        "targets": [{"node": node.id, "label": t.label, "kind": t.kind, "weight": float(t.weight),
                     "value": None if t.value is None else float(t.value), "token_ids": list(t.token_ids),
                     "token": t.token, "probability": None if t.probability is None else float(t.probability)}
                    for node, t in zip(targets, rec.targets, strict=True)],
        "dictionaries": _jsonable(rec.dictionaries), "settings": _jsonable(rec.settings),
        "scores": _jsonable(rec.scores), "pruned": rec.pruned, "extra": _jsonable(rec.extra),
        "nodes": [n.to_dict() for n in rec.nodes],
    }
    if inline:
        src, dst, w = rec.link_source.tolist(), rec.link_target.tolist(), rec.link_weight.tolist()
        kept = rec.link_kept.tolist() if rec.link_kept is not None else [None] * len(w)
        data["links"] = [{"source": ids[s], "target": ids[t], "weight": x, "kept": k}
                         for s, t, x, k in zip(src, dst, w, kept, strict=True)]
    return data


def _dumps(data: Mapping[str, Any]) -> str:
    """JSON with one top-level field, one node and one link per line (readable; diffs and errors point at a node)."""
    parts = []
    for key, value in data.items():
        if key in ("nodes", "links") and isinstance(value, list):
            body = ",\n".join("    " + json.dumps(v, ensure_ascii=False, allow_nan=False) for v in value)
            parts.append(f'  "{key}": [\n{body}\n  ]' if value else f'  "{key}": []')
        else:
            parts.append(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False, allow_nan=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def graph_record_files(record: GraphRecord, *, inline_links: int = INLINE_LINKS) -> dict[str, bytes]:
    """``{file name: bytes}`` of the record: ``graph.json``, and ``links.safetensors`` past ``inline_links`` edges.

    What `write_graph_record` writes, for a caller that puts the files in a folder of its own
    (``interpkit.circuits.save_graph``).
    """
    import hashlib

    from safetensors.numpy import save

    inline = record.n_links <= inline_links
    data = _json_form(record, inline=inline)
    files: dict[str, bytes] = {}
    if not inline:
        tensors = {"source": record.link_source.astype(np.int32), "target": record.link_target.astype(np.int32),
                   "weight": record.link_weight.astype(np.float32)}
        if record.link_kept is not None:
            tensors["kept"] = record.link_kept.astype(np.uint8)
        blob = save(tensors)
        files[GRAPH_LINKS_NAME] = blob
        data["links"] = {"file": GRAPH_LINKS_NAME, "count": record.n_links, "sha256": hashlib.sha256(blob).hexdigest()}
    files[GRAPH_JSON_NAME] = _dumps(data).encode("utf-8")
    return files


def write_graph_record(record: GraphRecord, path: str | os.PathLike[str], *, inline_links: int = INLINE_LINKS) -> Path:
    """Write ``record`` as the folder ``path`` (``graph.json`` [+ ``links.safetensors``]), atomically; return it.

    Args:
        record: the graph.
        path: the folder (replaced as a whole: a crash leaves the old folder or the new one).
        inline_links: most edges written as JSON links (more: the sidecar).
    """
    files = graph_record_files(record, inline_links=inline_links)
    final = Path(path)
    with atomic_dir(final) as tmp:
        for name, blob in files.items():
            (tmp / name).write_bytes(blob)
    return final


# ---- reading -------------------------------------------------------------------------------


def read_graph_record(path: str | os.PathLike[str]) -> GraphRecord:
    """Read ``graph.json`` (or a folder holding it), strictly.

    Raises:
        FileNotFoundError: no such file.
        RecordError: not JSON (the line named), not an interpkit graph, a missing or malformed field,
            a link to an unknown node, a sidecar that does not match its sha256; the message names the
            file and the field.
    """
    jpath, data = read_json_file(
        path, name=GRAPH_JSON_NAME, missing="no attribution graph at {path}",
        invalid=lambda f, exc: RecordError("valid JSON", rendered=f"{exc.msg} at column {exc.colno}", path=str(f),
                                           line=exc.lineno))
    return parse_graph_record(data, jpath)


def parse_graph_record(data: Any, path: str | os.PathLike[str] | None = None) -> GraphRecord:
    """The `GraphRecord` of ``graph.json``'s parsed content (a sidecar is read beside ``path``).

    Raises:
        RecordError: see `read_graph_record`.
    """
    where = None if path is None else str(path)
    try:
        return _parse(data, None if path is None else Path(path).parent, where)
    except RecordError as err:
        raise (err if err.path is not None else err.located(path=where, line=None)) from None


def _refuse(data: Mapping[str, Any], known: Sequence[str], where: str) -> None:
    for key in data:
        if key not in known:
            raise RecordError(f"one of the fields {list(known)}", key, field=f"{where}.{key}" if where else key)


def _list(value: Any, what: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise RecordError(what, value, field=where)
    return value


def _parse(data: Any, folder: Path | None, where: str | None) -> GraphRecord:
    data = check_mapping(data, None)
    fmt = check_required(data, "format", "format")
    if fmt != GRAPH_FORMAT:
        raise RecordError(f"{GRAPH_FORMAT!r} (this is not an interpkit graph)", fmt, field="format")
    version = check_required(data, "schema_version", "schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= GRAPH_SCHEMA_VERSION:
        raise RecordError(f"a schema version this interpkit reads (1..{GRAPH_SCHEMA_VERSION})", version,
                          field="schema_version")
    _refuse(data, _TOP, "")
    tokens = _list(check_required(data, "tokens", "tokens"), "a list of token strings", "tokens")
    token_ids = _list(check_required(data, "token_ids", "token_ids"), "a list of token ids", "token_ids")
    n_layers = check_int(check_required(data, "n_layers", "n_layers"), "n_layers", minimum=0)
    pruned = check_bool(check_required(data, "pruned", "pruned"), "pruned")
    nodes = []
    for i, raw in enumerate(_list(check_required(data, "nodes", "nodes"), "a list of nodes", "nodes")):
        w = f"nodes[{i}]"
        raw = check_mapping(raw, w)
        _refuse(raw, _NODE, w)
        latent = raw.get("latent")
        nodes.append(GraphNodeRecord(
            id=check_str(check_required(raw, "id", f"{w}.id"), f"{w}.id", nonempty=True),
            kind=check_str(check_required(raw, "kind", f"{w}.kind"), f"{w}.kind"),
            layer=check_int(check_required(raw, "layer", f"{w}.layer"), f"{w}.layer"),
            position=check_int(check_required(raw, "position", f"{w}.position"), f"{w}.position"),
            latent=None if latent is None else check_int(latent, f"{w}.latent"),
            activation=check_number(raw.get("activation"), f"{w}.activation", optional=True),
            influence=check_number(raw.get("influence"), f"{w}.influence", optional=True),
            kept=check_bool(raw.get("kept", True), f"{w}.kept"),
            label=check_str(raw.get("label"), f"{w}.label", optional=True),
            attributed=check_bool(raw.get("attributed", False), f"{w}.attributed")))
    _check_nodes(nodes, len(tokens), n_layers, pruned)
    index = {n.id: i for i, n in enumerate(nodes)}
    target_ids = [n.id for n in nodes if n.kind == "target"]
    targets = []
    for j, raw in enumerate(_list(check_required(data, "targets", "targets"), "a list of targets", "targets")):
        w = f"targets[{j}]"
        raw = check_mapping(raw, w)
        _refuse(raw, _TARGET, w)
        node = raw.get("node")
        if node is not None and (j >= len(target_ids) or node != target_ids[j]):
            raise RecordError(f"the id of target node {j} ({target_ids[j] if j < len(target_ids) else 'none'})",
                              node, field=f"{w}.node")
        tids = _list(raw.get("token_ids", []), "a list of token ids", f"{w}.token_ids")
        targets.append(GraphTarget(
            label=check_str(check_required(raw, "label", f"{w}.label"), f"{w}.label", nonempty=True),
            weight=check_number(check_required(raw, "weight", f"{w}.weight"), f"{w}.weight"),
            value=check_number(raw.get("value"), f"{w}.value", optional=True),
            kind=check_str(raw.get("kind"), f"{w}.kind", optional=True),
            token_ids=tuple(check_int(t, f"{w}.token_ids[{k}]", minimum=0) for k, t in enumerate(tids)),
            token=check_str(raw.get("token"), f"{w}.token", optional=True),
            probability=check_number(raw.get("probability"), f"{w}.probability", optional=True)))
    links = check_required(data, "links", "links")
    if isinstance(links, Mapping):
        src, dst, weight, kept = _read_sidecar(links, folder, pruned)
    else:
        src, dst, weight, kept = _inline_links(_list(links, "a list of links or a sidecar object", "links"),
                                               index, pruned)
    for name in ("dictionaries", "settings", "scores", "extra"):
        check_mapping(data.get(name) or {}, name)
    return GraphRecord(
        prompt=check_str(check_required(data, "prompt", "prompt"), "prompt"),
        tokens=tuple(check_str(t, f"tokens[{i}]") for i, t in enumerate(tokens)),
        token_ids=tuple(check_int(t, f"token_ids[{i}]", minimum=-1) for i, t in enumerate(token_ids)),
        model=check_str(check_required(data, "model", "model"), "model"), n_layers=n_layers, targets=tuple(targets),
        nodes=tuple(nodes), link_source=src, link_target=dst, link_weight=weight, link_kept=kept,
        dictionaries=data.get("dictionaries") or {}, settings=data.get("settings") or {},
        scores=data.get("scores") or {}, extra=data.get("extra") or {},
        path=None if where is None else Path(where))


def _inline_links(links: list[Any], index: Mapping[str, int], pruned: bool) -> tuple[np.ndarray, ...]:
    n = len(links)
    src, dst = np.empty(n, np.int64), np.empty(n, np.int64)
    weight, kept = np.empty(n, np.float32), np.ones(n, bool)
    for i, raw in enumerate(links):
        w = f"links[{i}]"
        raw = check_mapping(raw, w)
        _refuse(raw, _LINK, w)
        for name, arr in (("source", src), ("target", dst)):
            node = check_required(raw, name, f"{w}.{name}")
            if not isinstance(node, str) or node not in index:
                raise RecordError("the id of a node in 'nodes'", node, field=f"{w}.{name}")
            arr[i] = index[node]
        weight[i] = check_number(check_required(raw, "weight", f"{w}.weight"), f"{w}.weight")
        k = raw.get("kept")
        if pruned:
            kept[i] = check_bool(check_required(raw, "kept", f"{w}.kept"), f"{w}.kept")
        elif k is not None:
            raise RecordError("null (the graph is not pruned)", k, field=f"{w}.kept")
    return src, dst, weight, (kept if pruned else None)


def _read_sidecar(meta: Mapping[str, Any], folder: Path | None, pruned: bool) -> tuple[np.ndarray, ...]:
    from safetensors.numpy import load_file

    _refuse(meta, _SIDECAR, "links")
    name = check_str(check_required(meta, "file", "links.file"), "links.file", nonempty=True)
    count = check_int(check_required(meta, "count", "links.count"), "links.count", minimum=0)
    digest = check_str(check_required(meta, "sha256", "links.sha256"), "links.sha256", nonempty=True)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise RecordError("a file name beside graph.json", name, field="links.file")
    if folder is None or not (folder / name).is_file():
        raise RecordError(f"an existing file beside graph.json ({name} is missing)", name, field="links.file")
    fpath = folder / name
    if sha256_file(fpath) != digest:
        raise RecordError(f"the sha256 of {name}", digest, field="links.sha256")
    try:
        tensors = load_file(str(fpath))
    except Exception as exc:  # safetensors raises its own error types
        raise RecordError("a safetensors file", rendered=f"{fpath}: {exc}", field="links.file") from None
    want = ("source", "target", "weight") + (("kept",) if pruned else ())
    for key in want:
        if key not in tensors or tensors[key].shape != (count,):
            got = "missing" if key not in tensors else str(list(tensors[key].shape))
            raise RecordError(f"a tensor {key!r} of shape [{count}] in {name}", rendered=got, field="links.file")
    kept = tensors["kept"].astype(bool) if pruned else None
    return tensors["source"], tensors["target"], tensors["weight"], kept
