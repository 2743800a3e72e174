"""Faithfulness: does ablating a graph's nodes change the target by what the graph predicts?

For each held-out prompt, `validate_graph` builds the graph and, for each ``k``, ablates

- the ``k`` most influential feature nodes, and
- ``n_random`` sets of ``k`` random feature nodes drawn from the same layers (the same number per layer),

in the exact model (`ReplacementModel.run`: each latent's ``activation × decoder row`` removed from its
layer's MLP output at its position; attention, norms and every later MLP recomputed). The graph's
prediction propagates the ablation through the linear graph: a feature downstream of an ablated one
changes its activation by the change of its pre-activation (slope 1 while it stays active), and the
target changes by its row times the features' changes (error nodes and embeddings held). The report
gives, per selection, the correlation and the least-squares slope of measured on predicted, the share
of the target removed, and the replacement error (the transcoders' reconstruction error and the
errors' share of the influence).

`top_path` is the graph's strongest embedding → … → target chain (largest product of normalised edge
weights); `ablate_nodes` measures any set of feature nodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._attribute import attribute, dictionary_parts
from ._graph import AttributionGraph, normalize_rows
from ._replacement import CircuitError, ReplacementModel
from ._targets import resolve_targets

__all__ = ["FaithfulnessResult", "ablate_nodes", "predict_ablation", "top_path", "validate_graph"]


def predict_ablation(graph: AttributionGraph, nodes: Sequence[int]) -> float:
    """The target change the linear graph predicts when feature nodes ``nodes`` are ablated.

    Features are processed in layer order (a feature's row has sources at lower layers only); a feature
    that is not ablated changes its activation by its pre-activation's change. Uses the first target.
    """
    feat = np.flatnonzero(graph.mask("feature") & graph.attributed)
    target = int(np.flatnonzero(graph.mask("target"))[0])
    delta = np.zeros(len(graph))  # change of each node's output, in units of its own contribution
    chosen = set(int(i) for i in nodes)
    bad = [i for i in chosen if graph.kinds[i] != "feature"]
    if bad:
        raise CircuitError(f"only feature nodes can be ablated; {graph.node_id(bad[0])} is a {graph.kinds[bad[0]]}")
    a = graph.adjacency.astype(np.float64)
    for layer in sorted(set(graph.layers[feat].tolist())):
        idx = feat[graph.layers[feat] == layer]
        change = a[idx] @ delta
        act = np.maximum(graph.activations[idx].astype(np.float64), 1e-12)
        delta[idx] = change / act
        for i in idx:
            if int(i) in chosen:
                delta[i] = -1.0
    return float(a[target] @ delta)


def ablate_nodes(model: Any, graph: AttributionGraph, nodes: Sequence[int], transcoders: Any, *,
                 rm: ReplacementModel | None = None) -> float:
    """The measured target change when feature nodes ``nodes`` are zero-ablated in the exact model.

    Each latent's contribution is removed as it is in the edited run: its activation is recomputed from
    the edited MLP input (so ablating a latent and one it drives does not remove the second twice).
    """
    rm = rm or ReplacementModel(model)
    return _Ablation(rm, graph, dictionary_parts(transcoders, rm)).measure(nodes)


class _Ablation:
    """One graph's prompt, target and clean target value, for measuring many ablations (`ablate_nodes`)."""

    def __init__(self, rm: ReplacementModel, graph: AttributionGraph, parts: Mapping[int, Any]) -> None:
        self.rm, self.graph, self.parts = rm, graph, parts
        self.ids = torch.as_tensor(graph.token_ids, dtype=torch.long, device=rm.param.device)
        clean = rm.run(self.ids)
        targets, _ = resolve_targets(rm, _target_spec(graph), clean["logits"], position=int(graph.positions[-1]),
                                     demean=bool(graph.settings.get("demean", True)))
        self.target = targets[0]
        self.clean = self.target.value(clean)

    def measure(self, nodes: Sequence[int]) -> float:
        graph, parts = self.graph, self.parts
        chosen: dict[int, list[tuple[int, int]]] = {}
        for i in nodes:
            if graph.kinds[i] != "feature":
                raise CircuitError(f"only feature nodes can be ablated; {graph.node_id(int(i))} is a "
                                   f"{graph.kinds[i]}")
            layer, pos, lat = int(graph.layers[i]), int(graph.positions[i]), int(graph.latents[i])
            if layer not in parts:
                raise CircuitError(f"{graph.node_id(int(i))}: no transcoder for layer {layer} was given")
            chosen.setdefault(layer, []).append((pos, lat))

        def edit(layer: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
            part = parts[layer]
            pos = torch.as_tensor([p for p, _ in chosen[layer]], dtype=torch.long)
            lat = torch.as_tensor([j for _, j in chosen[layer]], dtype=torch.long)

            def fn(m_in: torch.Tensor, m_out: torch.Tensor) -> torch.Tensor:
                # zero-ablation in this run: the latent's activation *now* (upstream edits included) comes out
                codes, _ = part.encode(m_in[pos])
                acts = codes[torch.arange(pos.numel()), lat]
                out = m_out.clone()
                out.index_add_(0, pos, (-acts[:, None] * part.write[lat]).to(out.dtype))
                return out

            return fn

        edited = self.rm.run(self.ids, mlp_edits={layer: edit(layer) for layer in chosen})
        return self.target.value(edited) - self.clean


def _target_spec(graph: AttributionGraph) -> Any:
    from ._targets import Direction

    if "target_spec" not in graph.settings:
        raise CircuitError("this graph does not record its target spec; rebuild it with attribute()")
    spec = graph.settings["target_spec"]
    if isinstance(spec, dict) and "direction" in spec:
        return Direction(spec["direction"], int(spec.get("layer", -1)), str(spec.get("label", "direction")))
    if spec is None:  # the graph's top token, fixed when it was built
        return int(graph.settings["target_token_ids"][0][0])
    return spec


def top_path(graph: AttributionGraph) -> list[int]:
    """Node indices of the strongest embedding → feature(s) → target chain through at least one feature
    (the largest product of normalised |edge| weights; the embeddings' direct edges to the target are left
    out, since nothing on them can be ablated). Empty when no feature reaches the target."""
    a = normalize_rows(graph.adjacency)
    if graph.edge_mask is not None:
        a = np.where(graph.edge_mask, a, 0.0)
    target = int(np.flatnonzero(graph.mask("target"))[0])
    feat = np.flatnonzero(graph.mask("feature"))
    emb = np.flatnonzero(graph.mask("embedding"))
    best = np.zeros(len(graph))  # best product from a feature to the target
    nxt = np.full(len(graph), -1)
    for layer in sorted(set(graph.layers[feat].tolist()), reverse=True):
        for i in feat[graph.layers[feat] == layer]:
            direct = a[target, i]
            via = a[feat, i] * best[feat]
            j = int(np.argmax(via)) if via.size else -1
            if j >= 0 and via[j] > direct:
                best[i], nxt[i] = via[j], int(feat[j])
            elif direct > 0:
                best[i], nxt[i] = direct, target
    if not emb.size or best[feat].max(initial=0.0) <= 0:
        return []
    scores = a[np.ix_(feat, emb)] * best[feat][:, None]  # [feature, embedding]
    fi, ei = np.unravel_index(int(np.argmax(scores)), scores.shape)
    if scores[fi, ei] <= 0:
        return []
    path, j = [int(emb[ei])], int(feat[fi])
    while j != target and j >= 0:
        path.append(j)
        j = int(nxt[j])
    path.append(target)
    return path


@dataclass
class FaithfulnessResult:
    """What `validate_graph` measured.

    Attributes:
        rows: a frame: prompt, k, selection (``top`` / ``random``), repeat, predicted, measured, value
            (the clean target), layers of the ablated nodes.
        summary: per selection: n, pearson r, slope and intercept of measured on predicted, the mean share
            of the target removed at each k; plus the top path's predicted and measured share, the mean
            replacement score and reconstruction error.
        graphs: the graphs built (pruned), one per prompt.
    """

    rows: Any
    summary: dict[str, Any]
    graphs: list[AttributionGraph] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the summary and the rows as records."""
        return {"summary": self.summary, "rows": self.rows.to_dict(orient="records")}


def _fit(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    out: dict[str, float] = {"n": int(pred.size)}
    if pred.size >= 2 and pred.std() > 0 and meas.std() > 0:
        out["pearson_r"] = float(np.corrcoef(pred, meas)[0, 1])
        slope, intercept = np.polyfit(pred, meas, 1)
        out["slope"], out["intercept"] = float(slope), float(intercept)
    else:
        out["pearson_r"] = out["slope"] = out["intercept"] = float("nan")
    return out


def validate_graph(
    model: Any,
    prompts: Sequence[str],
    target: Any = None,
    *,
    transcoders: Any,
    ks: Sequence[int] = (1, 2, 4, 8, 16),
    n_random: int = 4,
    seed: int = 0,
    max_feature_nodes: int | None = 1024,
    node_threshold: float = 0.8,
    edge_threshold: float = 0.98,
    targets: Sequence[Any] | None = None,
    log: Callable[[str], None] | None = None,
    **attribute_kw: Any,
) -> FaithfulnessResult:
    """Predicted vs measured ablation effects on held-out ``prompts`` (see the module docstring).

    Args:
        model: the model (a local HF Llama-family decoder).
        prompts: held-out prompts (not the transcoders' training texts).
        target: the target for every prompt (token, token pair, `Direction`, or None: each prompt's top token).
        transcoders: ``{layer: SAE}``.
        ks: numbers of nodes ablated.
        n_random: random same-layer sets per k.
        seed: seeds the random sets.
        max_feature_nodes, node_threshold, edge_threshold: graph building and pruning.
        targets: one target per prompt instead of ``target``.
        log: progress messages.
        **attribute_kw: more `attribute` arguments.

    Raises:
        CircuitError: no prompts, or ``targets`` of another length than ``prompts``.
    """
    import pandas as pd

    if not prompts:
        raise CircuitError("validate_graph needs at least one held-out prompt")
    if targets is not None and len(targets) != len(prompts):
        raise CircuitError(f"{len(targets)} targets for {len(prompts)} prompts")
    say = log or (lambda _m: None)
    rng = np.random.default_rng(seed)
    rm = ReplacementModel(model)
    parts = dictionary_parts(transcoders, rm)
    records, graphs, path_rows, repl, recon = [], [], [], [], []
    for pi, prompt in enumerate(prompts):
        spec = targets[pi] if targets is not None else target
        g = attribute(model, prompt, spec, transcoders=transcoders, max_feature_nodes=max_feature_nodes,
                      check=pi == 0, **attribute_kw).prune(node_threshold, edge_threshold)
        graphs.append(g)
        abl = _Ablation(rm, g, parts)  # the clean run and the target, once per prompt
        sc = g.scores()
        repl.append(sc["replacement_score"])
        recon.append(float(np.mean(list(g.settings["reconstruction_error"].values()))))
        value = float(g.activations[np.flatnonzero(g.mask("target"))[0]])
        feat = np.flatnonzero(g.mask("feature"))
        infl = g.influence()
        ranked = feat[np.argsort(-infl[feat], kind="stable")]
        for k in ks:
            if k > feat.size:
                continue
            top = ranked[:k]
            records.append({"prompt": pi, "k": int(k), "selection": "top", "repeat": 0,
                            "predicted": predict_ablation(g, top), "measured": abl.measure(top),
                            "value": value, "layers": sorted(g.layers[top].tolist())})
            for r in range(n_random):
                pick: list[int] = []
                for layer, count in zip(*np.unique(g.layers[top], return_counts=True), strict=True):
                    pool = feat[g.layers[feat] == layer]
                    pick += rng.choice(pool, size=min(int(count), pool.size), replace=False).tolist()
                records.append({"prompt": pi, "k": int(k), "selection": "random", "repeat": r,
                                "predicted": predict_ablation(g, pick),
                                "measured": abl.measure(pick), "value": value,
                                "layers": sorted(g.layers[pick].tolist())})
        path = [i for i in top_path(g) if g.kinds[i] == "feature"]
        if path:
            path_rows.append({"prompt": pi, "value": value, "nodes": [g.node_id(i) for i in path],
                              "predicted": predict_ablation(g, path),
                              "measured": abl.measure(path)})
        say(f"prompt {pi + 1}/{len(prompts)}: {int(g.mask('feature').sum())} features, "
            f"replacement {sc['replacement_score']:.3f}")
    rows = pd.DataFrame.from_records(records)
    summary: dict[str, Any] = {"prompts": len(prompts), "ks": [int(k) for k in ks], "n_random": int(n_random),
                               "replacement_score": float(np.mean(repl)), "reconstruction_error": float(np.mean(recon))}
    for sel in ("top", "random"):
        part = rows[rows.selection == sel] if len(rows) else rows
        if not len(part):
            continue
        fit = _fit(part.predicted.to_numpy(float), part.measured.to_numpy(float))
        share = (-part.measured / part.value.where(part.value.abs() > 1e-9)).groupby(part.k).mean()
        fit["removed_share_by_k"] = {int(k): float(v) for k, v in share.items()}
        summary[sel] = fit
    if path_rows:
        summary["top_path"] = {
            "paths": path_rows,
            "mean_removed_share": float(np.mean([-p["measured"] / p["value"] for p in path_rows if abs(p["value"]) > 1e-9]
                                                or [float("nan")])),
            "mean_predicted_share": float(np.mean([-p["predicted"] / p["value"] for p in path_rows
                                                   if abs(p["value"]) > 1e-9] or [float("nan")])),
        }
    return FaithfulnessResult(rows=rows, summary=summary, graphs=graphs)
