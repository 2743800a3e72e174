"""Raw neurons as features: one table column per dimension of a site's activation.

`neuron_table` streams a prompt dataset through the model, pools each example's activations at
``site`` (``max`` by default, BOS excluded) and returns a `~interpkit.table.FeatureTable` whose
features are ``"{site}:n{i}"`` with ``source="neuron"``. With ``max`` pooling the table also keeps
token maxima, bounded on purpose: an argmax token for every (example, neuron) pair would be as
large as the table itself, so each example keeps only its ``top_tokens`` most active neurons
(position, decoded token, activation). The same helper builds direction tables
(`interpkit.sources.directions`).

Example:
    >>> from interpkit._testing import tiny_model
    >>> table = neuron_table(tiny_model(), ["hello there", "good night"], "layer1.resid_post",
    ...                      neurons=[0, 5], progress=False)
    >>> table.feature_ids
    ['layer1.resid_post:n0', 'layer1.resid_post:n5']
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._datasets import PromptRow, as_prompt_rows, dataset_hash, iter_prompt_dataset
from ._stream import resolve_sites, stream_activations, tokenized_ids

if TYPE_CHECKING:
    from interpkit.table import FeatureTable

    from ._cache import ActivationCache

__all__ = ["neuron_table"]

Rows = Iterable[PromptRow | Mapping[str, Any] | str] | os.PathLike[str]


def load_rows(rows: Rows) -> list[PromptRow]:
    """Prompt rows from a JSONL path (a ``Path``), or from rows, dicts or bare texts."""
    if isinstance(rows, os.PathLike):
        return list(iter_prompt_dataset(Path(rows)))
    return as_prompt_rows(rows)


def site_layer(model: Any, site: str) -> int | None:
    """The block index of ``site`` (None for raw backend names)."""
    layer_of = getattr(model, "layer_of", None)
    if layer_of is not None:
        return layer_of(site)
    from interpkit.models import parse_site

    parsed = parse_site(site)
    return None if parsed is None else parsed[0]


def examples_frame(rows: Sequence[PromptRow]) -> Any:
    """The examples frame of a table built from prompt rows: ``example_id``, ``text``,
    ``criterion_score`` (NaN when unscored), ``split`` (+ ``target_tokens`` when any row has them)."""
    import pandas as pd

    examples = pd.DataFrame(
        {
            "example_id": [str(r.prompt_id) for r in rows],
            "text": [r.text for r in rows],
            "criterion_score": [np.nan if r.criterion_score is None else r.criterion_score for r in rows],
            "split": [r.split for r in rows],
        }
    )
    if any(r.target_tokens is not None for r in rows):
        examples["target_tokens"] = [None if r.target_tokens is None else list(r.target_tokens) for r in rows]
    return examples


def table_meta(
    rows: Sequence[PromptRow],
    *,
    model: str | None,
    site: str,
    pooling: str,
    source: str,
    max_length: int | None,
    exclude_positions: str | Sequence[str],
    chat_template: bool,
    top_tokens: int,
    **extra: Any,
) -> dict[str, Any]:
    """The ``meta`` of a table streamed from a model over ``rows`` (how to reproduce it)."""
    return {
        "model": model,
        "site": site,
        "pooling": pooling,
        "source": source,
        "max_length": max_length,
        "exclude_positions": [exclude_positions] if isinstance(exclude_positions, str) else list(exclude_positions),
        "chat_template": chat_template,
        "dataset_hash": dataset_hash(rows),
        "top_tokens_per_example": top_tokens,
        **extra,
    }


def pooled_table(
    model: Any,
    rows: list[PromptRow],
    site: str,
    *,
    feature_ids: Sequence[str],
    projection: np.ndarray | None,
    pooling: str,
    source: str,
    feature_extra: Mapping[str, Sequence[Any]] | None = None,
    decoder_vectors: Mapping[str, np.ndarray] | None = None,
    meta_extra: Mapping[str, Any] | None = None,
    top_tokens: int,
    batch_size: int,
    max_length: int | None,
    exclude_positions: str | Sequence[str],
    chat_template: bool,
    cache: ActivationCache | None,
    progress: bool,
    memory_budget_mb: float,
) -> FeatureTable:
    """Stream ``rows`` once, pool at ``site`` (optionally projected) and assemble the table."""
    import pandas as pd

    from interpkit.table import FeatureTable

    if pooling == "tokens":
        raise ValueError("a FeatureTable needs one value per example: pool with 'max', 'mean' or 'last'")
    texts = [r.text for r in rows]
    projections = {site: projection} if projection is not None else None
    kw: dict[str, Any] = {
        "pooling": pooling,
        "batch_size": batch_size,
        "max_length": max_length,
        "exclude_positions": exclude_positions,
        "chat_template": chat_template,
        "projections": projections,
        "progress": progress,
        "memory_budget_mb": memory_budget_mb,
    }
    if cache is not None:
        result = cache.get_or_compute(model, texts, site, **kw)
    else:
        result = stream_activations(model, texts, site, keep_argmax=pooling == "max", **kw)
    chunk = result[site, pooling].to_chunk()
    values = np.zeros((len(rows), len(feature_ids)), dtype=np.float32)
    values[chunk.example_idx] = chunk.values
    examples = examples_frame(rows)
    name = getattr(model, "name", None)
    features = pd.DataFrame(
        {
            "feature_id": list(feature_ids),
            "model": [name] * len(feature_ids),
            "site": [site] * len(feature_ids),
            "layer": [site_layer(model, site)] * len(feature_ids),
            "label": [None] * len(feature_ids),
            "source": [source] * len(feature_ids),
        }
    )
    for col, vals in (feature_extra or {}).items():
        features[col] = list(vals)
    tokens = None
    if pooling == "max" and top_tokens > 0 and chunk.argmax is not None and len(rows):
        argmax = np.zeros(values.shape, dtype=np.int64)
        argmax[chunk.example_idx] = chunk.argmax
        tokens = _token_maxima(model, texts, values, argmax, top_tokens, max_length, chat_template)
    meta = table_meta(rows, model=name, site=site, pooling=pooling, source=source, max_length=max_length,
                      exclude_positions=exclude_positions, chat_template=chat_template,
                      top_tokens=top_tokens if tokens is not None else 0, **dict(meta_extra or {}))
    return FeatureTable(values, examples, features, decoder_vectors=decoder_vectors, tokens=tokens, meta=meta)


def _token_maxima(
    model: Any,
    texts: list[str],
    values: np.ndarray,
    argmax: np.ndarray,
    k: int,
    max_length: int | None,
    chat_template: bool,
) -> Any:
    """Long-form rows for each example's ``k`` most active features, most active first."""
    import pandas as pd

    k = min(k, values.shape[1])
    # Per example, the k features with the largest pooled value; argmax holds the token position (in the
    # right-padded batch, so also in the unpadded ids) where each reached its max.
    top = np.argsort(-values, axis=1, kind="stable")[:, :k]
    ex = np.repeat(np.arange(values.shape[0]), k)
    feat = top.reshape(-1)
    pos = argmax[ex, feat]
    act = values[ex, feat]
    keep = act != 0  # a zero maximum is an empty example or an inactive feature: nothing to show
    ex, feat, pos, act = ex[keep], feat[keep], pos[keep], act[keep]
    ids = tokenized_ids(model, texts, max_length=max_length, chat_template=chat_template)
    decode = model.tokenizer.decode
    memo: dict[int, str] = {}
    tokens = []
    for e, p in zip(ex.tolist(), pos.tolist(), strict=True):
        tid = ids[e][p]
        if tid not in memo:
            memo[tid] = decode([tid])
        tokens.append(memo[tid])
    return pd.DataFrame(
        {"example_idx": ex, "feature_idx": feat, "token_index": pos, "token": tokens, "activation": act}
    )


def neuron_table(
    model: Any,
    rows: Rows,
    site: str,
    *,
    pooling: str = "max",
    neurons: Sequence[int] | None = None,
    top_tokens: int = 8,
    batch_size: int = 8,
    max_length: int | None = 128,
    exclude_positions: str | Sequence[str] = ("bos",),
    chat_template: bool = False,
    cache: ActivationCache | None = None,
    progress: bool = True,
    memory_budget_mb: float = 512.0,
) -> FeatureTable:
    """A FeatureTable of raw neurons at one site.

    Args:
        model: an interpkit ``ModelWrapper``.
        rows: prompt rows (`PromptRow`, dicts with the JSONL fields, or bare texts with ids
            ``0..n-1``), or a ``Path`` to a prompt-dataset JSONL file.
        site: one site name (``"layer3.mlp_out"``).
        pooling: ``"max"``, ``"mean"`` or ``"last"`` over the kept positions.
        neurons: indices to keep (default: all ``d_model``); selected per token before pooling.
        top_tokens: with ``max`` pooling, keep token maxima for this many of each example's most
            active neurons (0: none).
        batch_size: texts per forward pass.
        max_length: truncation length in tokens.
        exclude_positions: see `stream_activations`.
        chat_template: wrap texts in the tokenizer's chat template (see `stream_activations`).
        cache: an `ActivationCache` to read from and fill (None: always run the model).
        progress: show a progress bar.
        memory_budget_mb: streaming budget before spilling to shards.

    Returns:
        ``[n_examples, n_neurons]`` dense table; features ``"{site}:n{i}"``, ``source="neuron"``.

    Raises:
        ValueError: a bad pooling, a neuron index out of range, or ``site`` matching several sites.
    """
    sites = resolve_sites(model, site)
    if len(sites) != 1:
        raise ValueError(f"neuron_table takes one site; {site!r} matches {sites}")
    site = sites[0]
    data = load_rows(rows)
    d_model = int(model.d_model)
    projection = None
    index = list(range(d_model))
    if neurons is not None:
        index = [int(i) for i in neurons]
        bad = [i for i in index if not 0 <= i < d_model]
        if bad or len(set(index)) != len(index):
            raise ValueError(f"neurons must be distinct indices in [0, {d_model}), got {list(neurons)}")
        # A one-hot [d_model, n_neurons] projection selects the neurons per token before pooling, so neuron and
        # direction tables share one streaming path (and max-pooling stays per neuron).
        projection = np.zeros((d_model, len(index)), dtype=np.float32)
        projection[index, np.arange(len(index))] = 1.0
    return pooled_table(
        model,
        data,
        site,
        feature_ids=[f"{site}:n{i}" for i in index],
        projection=projection,
        pooling=pooling,
        source="neuron",
        feature_extra={"neuron": index},
        top_tokens=top_tokens,
        batch_size=batch_size,
        max_length=max_length,
        exclude_positions=exclude_positions,
        chat_template=chat_template,
        cache=cache,
        progress=progress,
        memory_budget_mb=memory_budget_mb,
    )
