"""Per-component similarity of fingerprints and the blocked top-k candidate search.

Every component becomes a row matrix per side, aligned over shared keys, and is compared by
cosine of its rows:

- ``activation``: signatures over the probes both sides have (by ``probe_ids``), centred over the
  probes, so the cosine is the Pearson correlation;
- ``explanation``: embeddings (cosine; skipped when the two sides' dimensions differ);
- ``decoder``: token -> logit effect over the union of tokens (cosine);
- ``causal``: effect name -> signed effect over the names both sides have; the pair score is
  ``a.b / max(|a|, |b|)^2``: the cosine times the size ratio, so sign *and* size count;
- ``examples``: top example texts as indicator vectors (cosine = Ochiai overlap).

`blocked_topk` never holds the full ``n x m`` similarity matrix: it multiplies ``block`` rows at a
time and keeps each row's top ``k`` (memory ``O(block * m)``).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> right = rng.normal(size=(50, 16)).astype(np.float32)
    >>> left = right[::-1] + 0.1 * rng.normal(size=(50, 16)).astype(np.float32)
    >>> idx, sim = blocked_topk(left, right, k=3, block=8)
    >>> bool((idx[:, 0] == np.arange(50)[::-1]).all()), idx.shape
    (True, (50, 3))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fingerprint import COMPONENTS, FeatureFingerprint


class MatchError(ValueError):
    """Inputs that cannot be matched (empty sides, misaligned probes, bad weights); the message says where."""


def normalize_rows(x: np.ndarray, *, center: bool = False) -> np.ndarray:
    """Float32 copy with rows (optionally centred, then) scaled to unit norm; zero rows stay zero."""
    x = np.array(x, dtype=np.float32, copy=True)
    if x.ndim != 2:
        raise MatchError(f"expected a 2-d [features, dims] array, got shape {x.shape}")
    if center:
        x -= x.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    np.divide(x, norms, out=x, where=norms > 1e-12)
    x[(norms <= 1e-12)[:, 0]] = 0.0
    return x


def blocked_topk(
    left: np.ndarray,
    right: np.ndarray,
    k: int,
    *,
    block: int = 2048,
    center: bool = True,
    normalize: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Each left row's ``k`` most similar right rows, ``block`` left rows at a time.

    Args:
        left: ``[n, d]`` signatures.
        right: ``[m, d]`` signatures (same ``d``).
        k: candidates per left row (clipped to ``m``).
        block: left rows per matrix product; peak extra memory is about ``block * m * 4`` bytes.
        center: centre each row over its ``d`` entries first (cosine becomes Pearson).
        normalize: scale rows to unit norm (cosine); False scores raw dot products (for inputs
            already prepared, e.g. weighted concatenations of normalised components).

    Returns:
        ``(idx, sim)``: ``[n, k]`` int64 right indices and float32 similarities, best first.
    """
    import torch

    left, right = np.asarray(left), np.asarray(right)
    if left.ndim != 2 or right.ndim != 2 or left.shape[1] != right.shape[1]:
        raise MatchError(f"blocked_topk: shapes {left.shape} and {right.shape} do not share a signature dimension")
    n, m = left.shape[0], right.shape[0]
    if k < 1 or block < 1:
        raise MatchError(f"blocked_topk: k and block must be >= 1, got k={k}, block={block}")
    k = min(k, m)
    idx = np.zeros((n, k), dtype=np.int64)
    sim = np.zeros((n, k), dtype=np.float32)
    if n == 0 or m == 0:
        return idx, sim
    if normalize:
        left, right = normalize_rows(left, center=center), normalize_rows(right, center=center)
    elif center:
        raise MatchError("blocked_topk: center=True needs normalize=True")
    right_t = torch.from_numpy(np.ascontiguousarray(right, dtype=np.float32)).T
    left_t = torch.from_numpy(np.ascontiguousarray(left, dtype=np.float32))
    out = torch.empty((min(block, n), m), dtype=torch.float32)
    with torch.inference_mode():
        for start in range(0, n, block):
            stop = min(start + block, n)
            buf = out[: stop - start]
            torch.mm(left_t[start:stop], right_t, out=buf)
            vals, inds = torch.topk(buf, k, dim=1, largest=True, sorted=True)
            idx[start:stop] = inds.numpy()
            sim[start:stop] = vals.numpy()
    return idx, sim


@dataclass
class ComponentData:
    """One component's aligned rows for both sides (see the module docstring)."""

    name: str
    left: np.ndarray
    right: np.ndarray
    left_has: np.ndarray
    right_has: np.ndarray
    keys: int
    """Aligned dimensions (probes, tokens, effect names, texts)."""
    raw_left: np.ndarray | None = None
    raw_right: np.ndarray | None = None
    """Unnormalised rows (causal only: the pair score uses sizes)."""

    def pair_scores(self, li: np.ndarray, ri: np.ndarray) -> np.ndarray:
        """Scores of pairs ``(li[t], ri[t])``; NaN where either side lacks the component."""
        if self.raw_left is not None and self.raw_right is not None:
            a, b = self.raw_left[li], self.raw_right[ri]
            size = np.maximum((a * a).sum(1), (b * b).sum(1))
            s = np.divide((a * b).sum(1), size, out=np.zeros(len(li), dtype=np.float64), where=size > 0)
        else:
            s = np.einsum("ij,ij->i", self.left[li], self.right[ri]).astype(np.float64)
        return np.where(self.left_has[li] & self.right_has[ri], s, np.nan)


def _rows(n: int, dim: int) -> np.ndarray:
    return np.zeros((n, dim), dtype=np.float32)


def _activation(left: Sequence[FeatureFingerprint], right: Sequence[FeatureFingerprint]) -> ComponentData | str:
    fl = [fp for fp in left if fp.activation_signature is not None]
    fr = [fp for fp in right if fp.activation_signature is not None]
    with_ids = {fp.probe_ids is not None for fp in (*fl, *fr)}
    if with_ids == {False}:
        lengths = {fp.activation_signature.shape[0] for fp in (*fl, *fr)}
        if len(lengths) != 1:
            raise MatchError(f"activation signatures without probe_ids must all have one length, got {sorted(lengths)}")
        probes: list[Any] | None = None
        dim = lengths.pop()
    elif with_ids == {True}:
        def union(fps: Sequence[FeatureFingerprint]) -> dict[str, None]:
            seen: dict[tuple[str, ...], None] = {}
            for fp in fps:
                seen.setdefault(fp.probe_ids, None)
            return dict.fromkeys(p for ids in seen for p in ids)

        right_probes = union(fr)
        probes = [p for p in union(fl) if p in right_probes]
        dim = len(probes)
        if dim < 2:
            return f"only {dim} probe(s) shared by the two sides' activation signatures (need 2)"
    else:
        raise MatchError("activation signatures: some fingerprints have probe_ids and some do not; give all or none")
    col = None if probes is None else {p: j for j, p in enumerate(probes)}
    cache: dict[tuple[str, ...], tuple[np.ndarray, np.ndarray]] = {}

    def build(fps: Sequence[FeatureFingerprint]) -> np.ndarray:
        out = _rows(len(fps), dim)
        for i, fp in enumerate(fps):
            sig = fp.activation_signature
            if sig is None:
                continue
            if col is None:
                out[i] = sig
                continue
            if fp.probe_ids not in cache:
                pos = [(s, col[p]) for s, p in enumerate(fp.probe_ids) if p in col]
                cache[fp.probe_ids] = (np.array([s for s, _ in pos], dtype=np.int64),
                                       np.array([c for _, c in pos], dtype=np.int64))
            src, dst = cache[fp.probe_ids]
            out[i, dst] = sig[src]
        return normalize_rows(out, center=True)

    lm, rm = build(left), build(right)
    return ComponentData("activation", lm, rm, np.abs(lm).sum(1) > 0, np.abs(rm).sum(1) > 0, dim)


def _explanation(left: Sequence[FeatureFingerprint], right: Sequence[FeatureFingerprint]) -> ComponentData | str:
    dims = {(side, fp.explanation_embedding.shape[0]) for side, fps in (("l", left), ("r", right))
            for fp in fps if fp.explanation_embedding is not None}
    if len({d for _, d in dims}) != 1:
        return f"explanation embeddings have different dimensions {sorted({d for _, d in dims})} (different encoders?)"
    dim = dims.pop()[1]

    def build(fps: Sequence[FeatureFingerprint]) -> np.ndarray:
        out = _rows(len(fps), dim)
        for i, fp in enumerate(fps):
            if fp.explanation_embedding is not None:
                out[i] = fp.explanation_embedding
        return normalize_rows(out)

    lm, rm = build(left), build(right)
    return ComponentData("explanation", lm, rm, np.abs(lm).sum(1) > 0, np.abs(rm).sum(1) > 0, dim)


def _keyed(name: str, left: Sequence[FeatureFingerprint], right: Sequence[FeatureFingerprint],
           get: Any, *, shared_only: bool, binary: bool = False) -> ComponentData | str:
    keys_l = dict.fromkeys(k for fp in left for k in get(fp))
    keys_r = dict.fromkeys(k for fp in right for k in get(fp))
    keys = [k for k in keys_l if k in keys_r] if shared_only else list(dict.fromkeys([*keys_l, *keys_r]))
    if not keys:
        return f"no {name} keys shared by the two sides"
    col = {k: j for j, k in enumerate(keys)}

    def build(fps: Sequence[FeatureFingerprint]) -> np.ndarray:
        out = _rows(len(fps), len(keys))
        for i, fp in enumerate(fps):
            items = get(fp)
            for key in items:
                if key in col:
                    out[i, col[key]] = 1.0 if binary else items[key]
        return out

    raw_l, raw_r = build(left), build(right)
    lm, rm = normalize_rows(raw_l), normalize_rows(raw_r)
    data = ComponentData(name, lm, rm, np.abs(lm).sum(1) > 0, np.abs(rm).sum(1) > 0, len(keys))
    if name == "causal":
        data.raw_left, data.raw_right = raw_l, raw_r
    return data


def component_data(
    left: Sequence[FeatureFingerprint], right: Sequence[FeatureFingerprint], components: Sequence[str]
) -> tuple[dict[str, ComponentData], dict[str, str]]:
    """Aligned matrices for each requested component both sides have, and why others were skipped."""
    built: dict[str, ComponentData] = {}
    skipped: dict[str, str] = {}
    for name in components:
        if name not in COMPONENTS:
            raise MatchError(f"unknown component {name!r}; expected some of {list(COMPONENTS)}")
        on_left = sum(name in fp.components() for fp in left)
        on_right = sum(name in fp.components() for fp in right)
        if not on_left or not on_right:
            side = "either side" if not on_left and not on_right else ("left" if not on_left else "right")
            skipped[name] = f"absent on {side}"
            continue
        if name == "activation":
            got = _activation(left, right)
        elif name == "explanation":
            got = _explanation(left, right)
        elif name == "decoder":
            got = _keyed(name, left, right, lambda fp: fp.decoder_signature or {}, shared_only=False)
        elif name == "causal":
            got = _keyed(name, left, right, lambda fp: fp.causal_effects, shared_only=True)
        else:
            got = _keyed(name, left, right, lambda fp: dict.fromkeys(fp.examples, 1.0), shared_only=True,
                         binary=True)
        if isinstance(got, str):
            skipped[name] = got
        else:
            built[name] = got
    return built, skipped


def combined_scores(data: dict[str, ComponentData], weights: dict[str, float], li: np.ndarray,
                    ri: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Weighted mean of the component scores each pair has (weights renormalised per pair)."""
    num = np.zeros(len(li))
    den = np.zeros(len(li))
    per: dict[str, np.ndarray] = {}
    for name, comp in data.items():
        s = comp.pair_scores(li, ri)
        per[name] = s
        ok = ~np.isnan(s)
        num[ok] += weights[name] * s[ok]
        den[ok] += weights[name]
    score = np.divide(num, den, out=np.full(len(li), np.nan), where=den > 0)
    return score, per
