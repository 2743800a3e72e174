"""`attribute`: a prompt's attribution graph over per-layer transcoders (circuit-tracer's method, on CPU).

1. `ReplacementModel.clean` runs the prompt and builds the linear graph: attention patterns and
   norm scales frozen, every MLP output a leaf.
2. Each layer's transcoder encodes that layer's MLP input: its active latents become feature nodes
   (source vector ``activation × decoder row`` at the MLP output, read vector the encoder column at
   the MLP input); the MLP output it misses is the layer's error node at each position. A layer
   without a transcoder has only error nodes (its whole MLP output).
3. A node's row (its direct effects from every source) is one backward pass from its read; passes are
   batched (``torch.autograd.grad(..., is_grads_batched=True)``: a vmap over the backward, one
   graph), ``batch_size`` rows at a time. The targets' rows come first; then the features', all of
   them when there are at most ``max_feature_nodes``, else in order of their influence on the
   targets so far (recomputed after every batch, as circuit-tracer does), until that many have rows.
4. The graph keeps the attributed features, every error and embedding node and the targets.

The linear graph is exact: each row plus the biases (transcoders' ``b_dec``, the encoder's bias)
equals the read's value in the frozen model, checked on every graph (``settings["max_row_gap"]``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from ._graph import AttributionGraph
from ._replacement import CircuitError, CleanPass, ReplacementModel
from ._targets import Target, resolve_targets

__all__ = ["DictionaryParts", "attribute", "dictionary_parts"]


class DictionaryParts:
    """A transcoder's affine pieces in the model's units (input: what it reads; output: the MLP output).

    Attributes:
        sae: the dictionary.
        layer: its layer.
        reads: ``"mlp_in"`` (the MLP's input, after the norm: interpkit's ``layer{L}.mlp_in``) or
            ``"resid_mid"`` (the residual stream before the norm: circuit-tracer's ``hook_resid_mid``).
        read: ``[d_in, d_sae]``: ``pre = x @ read + offset``.
        offset: ``[d_sae]``.
        write: ``[d_sae, d_out]``: ``recon = codes @ write + bias (+ x @ skip)``.
        bias: ``[d_out]``.
        skip: ``[d_in, d_out]`` of a skip transcoder, else None.
    """

    def __init__(self, sae: Any, layer: int, reads: str = "mlp_in") -> None:
        """See the class docstring."""
        cfg = sae.cfg
        if cfg.normalize_activations == "constant_norm_rescale":
            raise CircuitError(f"layer {layer}: a dictionary that rescales each input to a constant norm is not "
                               "affine in its input; attribution needs an affine encoder and decoder")
        s_in = float(sae._scale(sae.W_enc.new_zeros(1, cfg.d_in)))
        s_out = float(sae.output_scale())
        self.sae, self.layer, self.reads = sae, int(layer), reads
        with torch.no_grad():
            self.read = (sae.W_enc * s_in).detach().float()
            self.offset = sae.encoder_bias().detach().float()
            self.write = (sae.W_dec / s_out).detach().float()
            self.bias = (sae.b_dec / s_out).detach().float()
            w_skip = getattr(sae, "W_skip", None) if getattr(cfg, "skip_connection", False) else None
            self.skip = None if w_skip is None else (w_skip.T * (s_in / s_out)).detach().float()

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(codes, reconstruction)`` of inputs ``x [n, d]`` (the dictionary's own encode; with the skip term)."""
        with torch.no_grad():
            recon, codes = self.sae(x.to(self.sae.W_enc.dtype))
        return codes.float(), recon.float()

    def check(self, x: torch.Tensor, codes: torch.Tensor, recon: torch.Tensor) -> None:
        """Raise `CircuitError` unless the affine pieces reproduce the dictionary's own reconstruction."""
        mine = codes @ self.write + self.bias
        if self.skip is not None:
            mine = mine + x @ self.skip
        gap = float((mine - recon).abs().max()) if recon.numel() else 0.0
        if gap > 1e-3 * max(1.0, float(recon.abs().max())):
            raise CircuitError(f"layer {self.layer}: the dictionary's decoder is not affine in its codes "
                               f"(gap {gap:.3g}); attribution cannot use it")


def _reads(sae: Any, layer: int) -> str:
    """What a transcoder reads: ``mlp_in`` or ``resid_mid`` (refusing residual-stream SAEs and unknown hooks)."""
    from interpkit.models import parse_site

    cfg = sae.cfg
    site, hook = cfg.site or "", cfg.hook_name or ""
    if site:
        parsed = parse_site(site)
        if parsed is None or parsed[1] != "mlp_in":
            raise CircuitError(f"layer {layer}: {sae!r} reads {site}; attribution graphs take transcoders that "
                               f"read layer{layer}.mlp_in (or hook_resid_mid) and write layer{layer}.mlp_out")
        return "mlp_in"
    if hook.endswith(("hook_resid_mid", "hook_mlp_in")):  # TL's hook_mlp_in is the norm's input
        return "resid_mid"
    if hook.endswith(("mlp.hook_in", "ln2.hook_out")):
        return "mlp_in"
    if not hook and not site and getattr(cfg, "site_out", None):
        return "mlp_in"
    raise CircuitError(f"layer {layer}: {sae!r} does not say it reads the MLP input (site {cfg.site!r}, hook "
                       f"{cfg.hook_name!r}); attribution graphs need layer{layer}.mlp_in or hook_resid_mid")


def _layer_of(sae: Any) -> int | None:
    from interpkit.models import parse_site

    cfg = sae.cfg
    for site in (cfg.site, getattr(cfg, "site_out", None)):
        parsed = parse_site(site) if site else None
        if parsed is not None:
            return parsed[0]
    return cfg.layer


def dictionary_parts(transcoders: Any, rm: ReplacementModel) -> dict[int, DictionaryParts]:
    """``{layer: DictionaryParts}`` from ``{layer: SAE}`` or a sequence of SAEs that name their layer.

    Raises:
        CircuitError: an SAE without a layer, two for one layer, a layer outside the model, a width that is
            not the model's, or a dictionary that reads a residual-stream site (attribution graphs take
            transcoders: MLP input → MLP output).
    """
    if isinstance(transcoders, Mapping):
        items = [(int(k), v) for k, v in transcoders.items()]
    else:
        items = []
        for sae in transcoders or ():
            layer = _layer_of(sae)
            if layer is None:
                raise CircuitError(f"{sae!r} names no layer (cfg.site, cfg.layer): pass {{layer: sae}}")
            items.append((int(layer), sae))
    out: dict[int, DictionaryParts] = {}
    for layer, sae in items:
        if layer in out:
            raise CircuitError(f"two dictionaries for layer {layer}")
        if not 0 <= layer < rm.n_layers:
            raise CircuitError(f"dictionary for layer {layer}: the model has layers 0..{rm.n_layers - 1}")
        reads = _reads(sae, layer)
        d_out = getattr(sae.cfg, "d_out", None) or sae.cfg.d_in
        if sae.cfg.d_in != rm.d_model or d_out != rm.d_model:
            raise CircuitError(f"layer {layer}: dictionary widths {sae.cfg.d_in} → {d_out}, the model's "
                               f"residual stream is {rm.d_model}")
        out[layer] = DictionaryParts(sae, layer, reads)
    return dict(sorted(out.items()))


class _Sources:
    """Every source of one prompt: active features, error nodes, embeddings (in the graph's order)."""

    def __init__(self, cp: CleanPass, parts: Mapping[int, DictionaryParts], *, zero_first: bool = False) -> None:
        n = cp.ids.shape[0]
        self.leaf_layers = list(cp.leaf_layers)  # the layers with error nodes, in order
        self.feat_layer, self.feat_pos, self.feat_latent, self.feat_act = [], [], [], []
        self.feat_vec: dict[int, torch.Tensor] = {}  # layer -> [m_l, d] activation × decoder row
        self.feat_slice: dict[int, slice] = {}
        self.pos_runs: dict[int, list[tuple[int, tuple[int, int]]]] = {}  # layer -> (position, (a, b)) runs
        self.read_vec: dict[int, torch.Tensor] = {}  # layer -> [m_l, d] encoder columns
        self.errors: list[torch.Tensor] = []
        self.recon_gap: dict[int, float] = {}
        self.bias: dict[int, torch.Tensor] = {}
        start = 0
        for layer in self.leaf_layers:
            out = cp.leaves[layer].detach().float()
            if layer not in parts:
                self.errors.append(out)
                continue
            p = parts[layer]
            x = getattr(cp, p.reads)[layer].detach().float()
            codes, recon = p.encode(x)
            p.check(x, codes, recon)
            if zero_first and codes.shape[0] > 1:  # the first position's latents join its error node
                codes, recon = codes.clone(), recon.clone()
                recon[0] -= codes[0] @ p.write
                codes[0] = 0
            if p.skip is not None:  # the skip term stays in the linear graph; the leaf (out) holds the rest
                skip = x @ p.skip
                recon = recon - skip
            pos, lat = torch.nonzero(codes, as_tuple=True)
            acts = codes[pos, lat]
            m = int(pos.numel())
            self.feat_slice[layer] = slice(start, start + m)
            start += m
            self.feat_layer += [layer] * m
            self.feat_pos += pos.tolist()
            self.feat_latent += lat.tolist()
            self.feat_act += acts.tolist()
            self.feat_vec[layer] = acts[:, None] * p.write[lat]
            counts = torch.bincount(pos, minlength=x.shape[0]).tolist()
            ends = np.cumsum(counts).tolist()
            self.pos_runs[layer] = [(q, (e - c, e)) for q, (c, e) in enumerate(zip(counts, ends, strict=True)) if c]
            self.read_vec[layer] = p.read[:, lat].T.contiguous()
            self.bias[layer] = p.bias
            err = out - recon
            self.errors.append(err)
            full = cp.mlp_out[layer].detach().float()
            denom = float(full.pow(2).sum()) or 1.0
            self.recon_gap[layer] = float(err.pow(2).sum()) / denom
        self.n_features = start
        self.n_pos = n
        self.embed = cp.embed.detach().float()
        # column layout: features, errors (leaf layers, layer-major), embeddings
        self.n_err = len(self.leaf_layers) * n
        self.n_sources = self.n_features + self.n_err + n

    def rows(self, grads: Sequence[torch.Tensor | None], g_embed: torch.Tensor | None, batch: int) -> np.ndarray:
        """Direct effects ``[batch, n_sources]`` from the read gradients at the leaves."""
        out = torch.zeros(batch, self.n_sources)
        n = self.n_pos
        for j, (layer, g) in enumerate(zip(self.leaf_layers, grads, strict=True)):
            if g is None:
                continue
            g = g.float()
            base = self.n_features + j * n
            out[:, base:base + n] = torch.einsum("bnd,nd->bn", g, self.errors[j])
            if layer in self.feat_slice:
                # features come sorted by position: one [batch, d] x [d, m_p] product per position
                start, vec = self.feat_slice[layer].start, self.feat_vec[layer]
                for pos, (a, b) in self.pos_runs[layer]:
                    out[:, start + a:start + b] = g[:, pos] @ vec[a:b].T
        if g_embed is not None:
            base = self.n_features + self.n_err
            out[:, base:base + n] = torch.einsum("bnd,nd->bn", g_embed.float(), self.embed)
        return out.numpy()


def _reads_for(cp: CleanPass, reads: Sequence[tuple[tuple[str, int], int, torch.Tensor]]) -> tuple[list, list]:
    """Graph outputs and batched grad_outputs for reads ``((tensor, layer), position, vector)``."""
    keys = sorted({r[0] for r in reads})
    outputs, grads = [], []
    b = len(reads)
    for key in keys:
        name, layer = key
        t = cp.final if name == "final" else getattr(cp, name)[layer]
        g = torch.zeros((b, *t.shape), dtype=t.dtype, device=t.device)
        for i, (k, pos, vec) in enumerate(reads):
            if k == key:
                g[i, pos] = vec.to(t.dtype)
        outputs.append(t)
        grads.append(g)
    return outputs, grads


def _backward(cp: CleanPass, reads: Sequence[tuple[tuple[str, int], int, torch.Tensor]],
              state: dict[str, Any]) -> tuple[list[torch.Tensor | None], torch.Tensor | None]:
    outputs, grads = _reads_for(cp, reads)
    inputs = [cp.embed, *(cp.leaves[layer] for layer in cp.leaf_layers)]
    if state.get("batched", True):
        try:
            got = torch.autograd.grad(outputs, inputs, grads, retain_graph=True, allow_unused=True,
                                      is_grads_batched=True)
            return list(got[1:]), got[0]
        except RuntimeError as exc:  # an op without a batching rule: one backward per row instead
            state["batched"] = False
            state["fallback"] = str(exc).splitlines()[0][:200]
    rows = [torch.autograd.grad(outputs, inputs, [g[i] for g in grads], retain_graph=True, allow_unused=True)
            for i in range(len(reads))]

    def stack(j: int) -> torch.Tensor | None:
        if all(r[j] is None for r in rows):
            return None
        ref = next(r[j] for r in rows if r[j] is not None)
        return torch.stack([r[j] if r[j] is not None else torch.zeros_like(ref) for r in rows])

    return [stack(j) for j in range(1, len(inputs))], stack(0)


def _partial_influence(rows: np.ndarray, row_src: np.ndarray, n_targets: int, weights: np.ndarray,
                       n_sources: int) -> np.ndarray:
    """Influence on the targets of every source from the rows computed so far (rows: targets first)."""
    a = np.abs(rows)
    a = a / np.maximum(a.sum(1, keepdims=True), 1e-10)
    on_rows = np.zeros(rows.shape[0])
    on_rows[:n_targets] = weights
    total = np.zeros(n_sources)
    current = on_rows
    for _ in range(10_000):
        spread = current @ a  # [n_sources]
        if not np.any(spread > 1e-300):
            break
        total += spread
        current = np.zeros(rows.shape[0])
        feat_rows = row_src >= 0
        current[feat_rows] = spread[row_src[feat_rows]]
    return total


def attribute(
    model: Any,
    prompt: str | Sequence[int],
    target: Any = None,
    *,
    transcoders: Any,
    position: int = -1,
    demean: bool = True,
    top_k: int = 1,
    max_feature_nodes: int | None = 2048,
    batch_size: int = 64,
    mlp: str = "frozen-gate",
    zero_first: bool = False,
    check: bool = True,
    log: Callable[[str], None] | None = None,
) -> AttributionGraph:
    """The attribution graph of ``target`` on ``prompt`` (see the module docstring).

    Args:
        model: a `~interpkit.models.ModelWrapper` over a local HF Llama-family decoder.
        prompt: text or token ids.
        target: a token (its logit), a pair of tokens (logit difference), a `Direction`, or None (the
            ``top_k`` most likely tokens).
        transcoders: ``{layer: SAE}`` (or SAEs naming their layer): transcoders reading
            ``layer{L}.mlp_in`` and writing ``layer{L}.mlp_out``.
        position: the position the target is read at (default the last).
        demean: logit targets against the mean unembedding row.
        top_k: with ``target`` None, the number of top tokens.
        max_feature_nodes: features that get a row (and stay in the graph); None: every active one.
        batch_size: rows per batched backward pass.
        mlp: the MLPs of layers without a transcoder: ``"frozen-gate"`` (linear with their gate
            activations frozen, so effects pass through them; exact at the clean point) or ``"error"``
            (their whole output is an error node per position, as in a graph with transcoders everywhere
            but these).
        zero_first: no feature nodes at the first position: its latents go to its error node (circuit-tracer
            zeroes the BOS position the same way). The first token is the attention sink; its latents have
            very large activations and, on SmolLM2, take most of the feature influence without explaining
            the prompt.
        check: compare the layer-by-layer replica with the model's own logits first.
        log: progress messages.

    Returns:
        An `AttributionGraph` (unpruned; call `AttributionGraph.prune`).

    Raises:
        CircuitError: an unsupported model, a bad dictionary or target (the message says which).
    """
    say = log or (lambda _m: None)
    t0 = time.perf_counter()
    rm = ReplacementModel(model)
    if check:
        rm.check(prompt)
    parts = dictionary_parts(transcoders, rm)
    if not parts:
        raise CircuitError("no transcoders given: attribution graphs need at least one layer's transcoder")
    if mlp not in ("frozen-gate", "error"):
        raise CircuitError(f"mlp must be 'frozen-gate' or 'error', got {mlp!r}")
    cp = rm.clean(prompt, skips={layer: (p.reads, p.skip) for layer, p in parts.items() if p.skip is not None},
                  leaf_layers=sorted(parts) if mlp == "frozen-gate" else None)
    t_clean = time.perf_counter()
    targets, weights = resolve_targets(rm, target, cp.logits, position=position, demean=demean, top_k=top_k)
    src = _Sources(cp, parts, zero_first=zero_first)
    n_t = len(targets)
    cap = src.n_features if max_feature_nodes is None else min(int(max_feature_nodes), src.n_features)
    say(f"{src.n_features} active features over {len(parts)} layers, {cp.ids.shape[0]} tokens; "
        f"{cap} get rows")
    state: dict[str, Any] = {}
    bs = max(1, int(batch_size))
    rows = np.zeros((n_t + cap, src.n_sources), dtype=np.float32)
    row_src = np.full(n_t + cap, -1, dtype=np.int64)
    reads_t = [(t.read, t.position, t.vector) for t in targets]
    for b in range(0, n_t, bs):
        g, ge = _backward(cp, reads_t[b:b + bs], state)
        rows[b:b + len(reads_t[b:b + bs])] = src.rows(g, ge, len(reads_t[b:b + bs]))
    done = np.zeros(src.n_features, dtype=bool)
    filled = n_t
    w = np.asarray(weights, dtype=np.float64)
    n_backward = -(-n_t // bs)
    while filled < n_t + cap:
        todo = np.flatnonzero(~done)
        if cap < src.n_features:
            infl = _partial_influence(rows[:filled], row_src[:filled], n_t, w, src.n_sources)[: src.n_features]
            todo = todo[np.argsort(-infl[todo], kind="stable")]
        pick = todo[: min(bs, n_t + cap - filled)]
        reads = [((parts[src.feat_layer[i]].reads, src.feat_layer[i]), src.feat_pos[i],
                  src.read_vec[src.feat_layer[i]][i - src.feat_slice[src.feat_layer[i]].start]) for i in pick]
        g, ge = _backward(cp, reads, state)
        rows[filled:filled + len(pick)] = src.rows(g, ge, len(pick))
        row_src[filled:filled + len(pick)] = pick
        done[pick] = True
        filled += len(pick)
        n_backward += 1
    t_rows = time.perf_counter()
    graph = _assemble(rm, cp, src, parts, targets, w, rows, row_src, n_t, prompt)
    gap = _row_gap(rows[:n_t], src, targets, cp, rm)
    graph.settings.update({
        "target": [t.label for t in targets], "target_spec": _spec_json(target),
        "target_token_ids": [list(t.token_ids) for t in targets], "position": targets[0].position,
        "demean": demean,
        "max_feature_nodes": max_feature_nodes, "batch_size": bs, "active_features": src.n_features,
        "batched_backward": state.get("batched", True), "backward_passes": n_backward,
        "max_row_gap": gap, "seconds": {"clean": t_clean - t0, "rows": t_rows - t_clean,
                                        "total": time.perf_counter() - t0},
        "reconstruction_error": {str(k): v for k, v in src.recon_gap.items()}, "mlp": mlp,
        "zero_first": bool(zero_first), "error_layers": list(src.leaf_layers),
    })
    if "fallback" in state:
        graph.settings["batched_fallback"] = state["fallback"]
    say(f"graph: {len(graph)} nodes in {graph.settings['seconds']['total']:.1f} s")
    return graph


def _spec_json(target: Any) -> Any:
    """The target spec as given, JSON-ready (a `Direction` keeps its layer, label and vector)."""
    from ._targets import Direction

    if isinstance(target, Direction):
        v = torch.as_tensor(target.vector).reshape(-1).tolist()
        return {"direction": v, "layer": target.layer, "label": target.label}
    if isinstance(target, (list, tuple)):
        return list(target)
    return target


def _assemble(rm: ReplacementModel, cp: CleanPass, src: _Sources, parts: Mapping[int, DictionaryParts],
              targets: Sequence[Target], weights: np.ndarray, rows: np.ndarray, row_src: np.ndarray, n_t: int,
              prompt: Any) -> AttributionGraph:
    keep = row_src[n_t:]
    order = np.argsort(keep, kind="stable")
    feats = keep[order]  # attributed features, in the sources' (layer, position, latent) order
    n, L = src.n_pos, rm.n_layers
    n_f = int(feats.size)
    n_e = src.n_err
    n_nodes = n_f + n_e + n + n_t
    # the node index of every source column (features not attributed have none)
    col_to_node = np.full(src.n_sources, -1, dtype=np.int64)
    col_to_node[feats] = np.arange(n_f)
    col_to_node[src.n_features:] = n_f + np.arange(n_e + n)
    adj = np.zeros((n_nodes, n_nodes), dtype=np.float32)
    cols = np.flatnonzero(col_to_node >= 0)
    feature_rows = rows[n_t:][order]
    adj[:n_f, col_to_node[cols]] = feature_rows[:, cols]
    adj[n_nodes - n_t:, col_to_node[cols]] = rows[:n_t][:, cols]
    kinds = ["feature"] * n_f + ["error"] * n_e + ["embedding"] * n + ["target"] * n_t
    layers = np.concatenate([np.asarray(src.feat_layer, dtype=np.int64)[feats] if n_f else np.zeros(0, np.int64),
                             np.repeat(np.asarray(src.leaf_layers, dtype=np.int64), n), np.full(n, -1),
                             np.full(n_t, L)])
    positions = np.concatenate([np.asarray(src.feat_pos, dtype=np.int64)[feats] if n_f else np.zeros(0, np.int64),
                                np.tile(np.arange(n), len(src.leaf_layers)), np.arange(n),
                                [t.position for t in targets]])
    latents = np.concatenate([np.asarray(src.feat_latent, dtype=np.int64)[feats] if n_f else np.zeros(0, np.int64),
                              np.full(n_e + n + n_t, -1)])
    err_norm = (torch.stack(src.errors).norm(dim=-1).reshape(-1).numpy() if src.errors else np.zeros(0))
    values = {"final": cp.final, "resid_post": cp.resid_post}
    acts = np.concatenate([np.asarray(src.feat_act, dtype=np.float64)[feats] if n_f else np.zeros(0),
                           err_norm, src.embed.norm(dim=-1).numpy(), [t.value(values) for t in targets]])
    tok = getattr(rm.wrapper, "tokenizer", None)
    ids = cp.ids.tolist()
    tokens = [tok.decode([i]) for i in ids] if tok is not None else [str(i) for i in ids]
    dicts = {layer: {"site": p.sae.cfg.site or f"layer{layer}.mlp_in", "architecture": p.sae.cfg.architecture,
                     "d_sae": p.sae.cfg.d_sae, "source": (p.sae.cfg.metadata or {}).get("path")}
             for layer, p in parts.items()}
    attributed = np.zeros(n_nodes, dtype=bool)
    attributed[:n_f] = True
    attributed[n_nodes - n_t:] = True
    return AttributionGraph(
        prompt=prompt if isinstance(prompt, str) else " ".join(map(str, ids)), tokens=tokens, token_ids=ids,
        model=str(getattr(rm.wrapper, "name", type(rm.hf).__name__)), n_layers=L, kinds=kinds, layers=layers,
        positions=positions, latents=latents, activations=acts, adjacency=adj, attributed=attributed,
        target_labels=[t.label for t in targets], target_weights=np.asarray(weights, dtype=np.float64),
        dictionaries=dicts, settings={})


def _row_gap(rows: np.ndarray, src: _Sources, targets: Sequence[Target], cp: CleanPass,
             rm: ReplacementModel) -> float:
    """Largest gap between a target row's sum (over every source, attributed or not) plus the constant terms
    and the target's value: zero up to rounding, because the frozen model is linear.

    The constant terms are the reads of the frozen model with every source removed: embeddings zero, each
    transcoder layer's leaf its ``b_dec`` alone (and the frozen-gate MLPs' and attention's biases, if any)."""
    values = {"final": cp.final, "resid_post": cp.resid_post}
    leaves = {layer: (src.bias[layer].expand_as(cp.embed).to(cp.embed.dtype) if layer in src.bias
                      else torch.zeros_like(cp.embed)) for layer in cp.leaf_layers}
    const = rm.frozen(cp, torch.zeros_like(cp.embed), leaves)
    gaps = [abs(float(rows[j].astype(np.float64).sum()) + t.value(const) - t.value(values))
            for j, t in enumerate(targets)]
    return max(gaps) if gaps else 0.0
