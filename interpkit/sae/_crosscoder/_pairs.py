"""Pairs across sources: row-aligned activation pairs from models in, latent and feature pairs out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ._model import Crosscoder, _as_rows

# ---- shared and source-specific latents -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class LatentPair:
    """One latent seen from two sources (the paper's relative decoder norm).

    Attributes:
        latent: the latent index.
        source_a: first source name.
        source_b: second source name.
        norm_a: ``‖W_dec_a[latent]‖`` (scaled units, so comparable across sources).
        norm_b: ``‖W_dec_b[latent]‖``.
        relative_norm: ``norm_a / (norm_a + norm_b)``: 1 = only in a, 0 = only in b, 0.5 = balanced.
        cosine: cosine between the two decoder rows (None when the widths differ).
        frequency: share of the given rows on which the latent fires (None when no rows were given).
        kind: ``"shared"``, ``"a"`` (specific to source a), ``"b"`` or ``"dead"`` (never fires on
            the given rows, or has no decoder norm).
    """

    latent: int
    source_a: str
    source_b: str
    norm_a: float
    norm_b: float
    relative_norm: float
    cosine: float | None
    frequency: float | None
    kind: str

    @property
    def feature_a(self) -> str:
        """``"<source_a>:cc<latent>"``."""
        return f"{self.source_a}:cc{self.latent}"

    @property
    def feature_b(self) -> str:
        """``"<source_b>:cc<latent>"``."""
        return f"{self.source_b}:cc{self.latent}"

    @property
    def source(self) -> str | None:
        """The source a specific latent belongs to (None for shared or dead ones)."""
        return {"a": self.source_a, "b": self.source_b}.get(self.kind)


def _pick_pair(crosscoder: Crosscoder, sources: Sequence[str] | None) -> tuple[str, str]:
    names = crosscoder.cfg.sources
    pair = tuple(sources) if sources is not None else names[:2]
    if len(pair) != 2 or pair[0] == pair[1]:
        raise ValueError(f"sources must name two different sources of the crosscoder, got {sources!r}")
    for s in pair:
        crosscoder.cfg.index(s)
    return pair[0], pair[1]


def shared_latents(crosscoder: Crosscoder, *, sources: Sequence[str] | None = None,
                   min_norm_fraction: float = 0.1, rows: Mapping[str, Any] | None = None,
                   batch_size: int = 4096) -> list[LatentPair]:
    """Classify every latent as shared between two sources or specific to one.

    A latent is shared when each source holds at least ``min_norm_fraction`` of its summed decoder
    norm (relative norm in ``[f, 1 - f]``), specific to a source otherwise. A latent that never
    fires keeps its initial, balanced decoder, so pass ``rows`` to mark those ``"dead"``.

    Args:
        crosscoder: the crosscoder.
        sources: the two sources to compare (default: the first two).
        min_norm_fraction: the smaller source's share of decoder norm needed to count as shared.
        rows: row-aligned activations of every source (e.g. held-out rows) to measure firing on.
        batch_size: rows per forward pass over ``rows``.

    Returns:
        One `LatentPair` per latent, in latent order.

    Raises:
        ValueError: an unknown source or a fraction outside ``[0, 0.5]``.
    """
    if not 0 <= min_norm_fraction <= 0.5:
        raise ValueError(f"min_norm_fraction must be in [0, 0.5], got {min_norm_fraction}")
    a, b = _pick_pair(crosscoder, sources)
    ia, ib = crosscoder.cfg.index(a), crosscoder.cfg.index(b)
    norms = crosscoder.decoder_norms().float()
    na, nb = norms[ia], norms[ib]
    cos = None
    if crosscoder.cfg.d_in[ia] == crosscoder.cfg.d_in[ib]:
        wa, wb = crosscoder.W_dec[ia].detach().float(), crosscoder.W_dec[ib].detach().float()
        cos = (wa * wb).sum(-1) / (na * nb).clamp_min(1e-12)
    freq = None if rows is None else _firing(crosscoder, rows, batch_size)
    out = []
    for i in range(crosscoder.cfg.d_sae):
        total = float(na[i] + nb[i])
        rel = float(na[i]) / total if total > 1e-12 else 0.5
        if total <= 1e-12 or (freq is not None and freq[i] == 0):
            kind = "dead"
        elif rel > 1 - min_norm_fraction:
            kind = "a"
        elif rel < min_norm_fraction:
            kind = "b"
        else:
            kind = "shared"
        out.append(LatentPair(latent=i, source_a=a, source_b=b, norm_a=float(na[i]), norm_b=float(nb[i]),
                              relative_norm=rel, cosine=None if cos is None else float(cos[i]),
                              frequency=None if freq is None else float(freq[i]), kind=kind))
    return out


def _firing(crosscoder: Crosscoder, rows: Mapping[str, Any], batch_size: int) -> torch.Tensor:
    data = _as_rows(rows)
    n = next(iter(data.values())).shape[0]
    count = torch.zeros(crosscoder.cfg.d_sae)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            count += (crosscoder.encode({s: t[start:start + batch_size] for s, t in data.items()}) != 0).sum(0)
    return count / n


@dataclass(frozen=True, slots=True, kw_only=True)
class CrossSourcePair:
    """A feature pair across two sources, given by one shared crosscoder latent.

    Attributes:
        feature_a: ``"<source_a>:cc<i>"``.
        feature_b: ``"<source_b>:cc<i>"``.
        score: ``2 · min(r, 1 - r)`` for relative norm ``r`` (1: equal weight in both sources),
            times the decoder cosine when the widths agree and ``use_cosine`` is set.
        latent: the latent index ``i``.
        relative_norm: ``r``.
        cosine: decoder cosine (None when widths differ).
    """

    feature_a: str
    feature_b: str
    score: float
    latent: int
    relative_norm: float
    cosine: float | None


def cross_source_pairs(crosscoder: Crosscoder, *, sources: Sequence[str] | None = None,
                       min_norm_fraction: float = 0.1, rows: Mapping[str, Any] | None = None,
                       use_cosine: bool = False, min_score: float = 0.0) -> list[CrossSourcePair]:
    """The shared latents of `shared_latents` as feature id pairs, best score first.

    Args:
        crosscoder: the crosscoder.
        sources: the two sources (default: the first two).
        min_norm_fraction: as in `shared_latents`.
        rows: as in `shared_latents` (latents that never fire on them are left out).
        use_cosine: multiply the score by the decoder cosine (only when widths agree, e.g. the
            same layer of two fine-tunes; across layers the bases differ and cosine means little).
        min_score: drop pairs scoring below this.

    Returns:
        `CrossSourcePair` records sorted by descending score, then latent.
    """
    pairs = []
    for lp in shared_latents(crosscoder, sources=sources, min_norm_fraction=min_norm_fraction, rows=rows):
        if lp.kind != "shared":
            continue
        score = 2 * min(lp.relative_norm, 1 - lp.relative_norm)
        if use_cosine and lp.cosine is not None:
            score *= lp.cosine
        if score >= min_score:
            pairs.append(CrossSourcePair(feature_a=lp.feature_a, feature_b=lp.feature_b, score=score,
                                         latent=lp.latent, relative_norm=lp.relative_norm, cosine=lp.cosine))
    return sorted(pairs, key=lambda p: (-p.score, p.latent))


# ---- aligned sources from models -------------------------------------------------------------------------


def paired_activations(
    models_and_sites: Sequence[tuple[Any, str]],
    texts: Sequence[Any],
    *,
    pooling: str = "tokens",
    batch_size: int = 8,
    max_length: int | None = 128,
    names: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """Row-aligned activations of several (model, site) sources over the same texts.

    Token rows (``pooling="tokens"``, BOS left out) align across sources only when every model
    cuts every text into the same tokens: always for several sites of one model, and for
    different models only when their tokenizations agree (checked on the decoded token strings).
    Otherwise use a pooled row per text (``"mean"``, ``"max"`` or ``"last"``).

    Args:
        models_and_sites: ``(ModelWrapper, site)`` pairs; sites of one model run in one pass.
        texts: strings or rows with a ``text`` attribute.
        pooling: ``"tokens"`` (one row per kept token) or a per-text pooling.
        batch_size: texts per forward pass.
        max_length: truncate each tokenised text to this many tokens.
        names: source names (default: the site when there is one model, else ``"<model>@<site>"``).

    Returns:
        Source name -> float32 array ``[rows, d]``, the same rows in every source.

    Raises:
        ValueError: token pooling over models whose tokenizations differ (naming the first text
            where they part), duplicate source names, or too few sources.
    """
    from interpkit.sources._stream import POOLINGS, stream_activations, tokenized_ids

    pairs = [(m, str(s)) for m, s in models_and_sites]
    if len(pairs) < 2:
        raise ValueError("paired_activations needs at least two (model, site) pairs")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    texts = [t if isinstance(t, str) else t.text for t in texts]
    models = list({id(m): m for m, _ in pairs}.values())
    if names is None:
        names = [s if len(models) == 1 else f"{getattr(m, 'name', type(m).__name__)}@{s}" for m, s in pairs]
    names = [str(n) for n in names]
    if len(names) != len(pairs) or len(set(names)) != len(names):
        raise ValueError(f"source names must be unique, one per pair; got {names} (pass names=...)")
    if pooling == "tokens" and len(models) > 1:
        _check_same_tokens(models, texts, max_length, tokenized_ids)
    out: dict[str, np.ndarray] = {}
    index: dict[str, np.ndarray] = {}
    for model in models:
        sites = [s for m, s in pairs if m is model]
        res = stream_activations(model, texts, sites, pooling=pooling, batch_size=batch_size,
                                 max_length=max_length, progress=False)
        for name, (m, s) in zip(names, pairs, strict=True):
            if m is model:
                chunk = res[model.resolve_site(s) if hasattr(model, "resolve_site") else s, pooling].to_chunk()
                out[name] = chunk.values
                index[name] = np.stack([chunk.example_idx, chunk.token_index if chunk.token_index is not None
                                        else np.zeros_like(chunk.example_idx)])
    first = names[0]
    for name in names[1:]:
        if index[name].shape != index[first].shape or not np.array_equal(index[name], index[first]):
            raise ValueError(f"rows of {name!r} and {first!r} do not line up "
                             f"({index[name].shape[1]} vs {index[first].shape[1]} rows)")
    return {name: out[name] for name in names}


def _check_same_tokens(models: Sequence[Any], texts: Sequence[str], max_length: int | None,
                       tokenized_ids: Callable[..., list[list[int]]]) -> None:
    def pieces(model: Any) -> list[list[str]]:
        bos = getattr(model.tokenizer, "bos_token_id", None)
        rows = tokenized_ids(model, texts, max_length=max_length)
        return [[model.tokenizer.decode([i]) for i in (r[1:] if r and r[0] == bos else r)] for r in rows]

    ref = pieces(models[0])
    for other in models[1:]:
        for j, (a, b) in enumerate(zip(ref, pieces(other), strict=True)):
            if a != b:
                raise ValueError(
                    f"pooling='tokens' needs the same tokens in every model, but "
                    f"{getattr(models[0], 'name', 'model 0')} and {getattr(other, 'name', 'another model')} "
                    f"tokenize text {j} ({texts[j][:40]!r}) differently: {a[:8]} vs {b[:8]}; "
                    "use a per-text pooling such as pooling='mean'")
