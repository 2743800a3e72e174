"""SAE latents as features: sparse tables and activation records (the edits live in ``_edits``).

An SAE turns one model site into ``d_sae`` features, ``"<site>:sae<i>"``. `encode_texts` encodes
every kept token of each text and pools per text (encoding is non-linear, so pooling comes after
it); `sae_table` packs that into a sparse `~interpkit.table.FeatureTable` (``source="sae"``,
decoder rows as decoder vectors) that `interpkit.rank` ranks; `sae_records` writes codes as
activation records for ``inspect --backend records``.

Example:
    >>> import torch
    >>> from interpkit._testing import tiny_model
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="topk", d_in=16, d_sae=32, k=4,
    ...                          site="layer1.resid_post"), seed=0)
    >>> table = sae_table(sae, tiny_model(), ["a cat", "the dog"], progress=False)
    >>> table.shape, table.is_sparse, table.feature_ids[3]
    ((2, 32), True, 'layer1.resid_post:sae3')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:

    from interpkit.records import ActivationRecord
    from interpkit.sources import StreamOptions
    from interpkit.table import FeatureTable

    from ._base import SAE

__all__ = [
    "encode_texts",
    "sae_feature_ids",
    "sae_records",
    "sae_table",
]

_POOLINGS = ("max", "mean", "last")
_ENCODE_ROWS = 2048  # token rows encoded at once: bounds the [rows, d_sae] code block


@contextmanager
def inference(sae: SAE) -> Iterator[SAE]:
    """Run ``sae`` in eval mode inside the block (BatchTopK's training mode codes whole batches
    and moves its threshold); the previous mode comes back after."""
    was = sae.training
    sae.eval()
    try:
        yield sae
    finally:
        sae.train(was)


def _site(sae: SAE, site: str | None, model: Any = None) -> str:
    """``site`` checked against ``model``, or the site the SAE's config names."""
    if site is not None:
        return model.resolve_site(site) if model is not None else site
    from ._site import sae_site

    return sae_site(sae, model)


def _default_prefix(sae: SAE) -> str:
    try:
        site = _site(sae, None)
    except ValueError:
        site = "sae"
    return f"{site}:sae"


def sae_feature_ids(sae: SAE, prefix: str | None = None) -> list[str]:
    """Feature ids of the latents: ``f"{prefix}{i}"``.

    The default prefix is ``"<site>:sae"`` with the SAE's own site (``cfg.site``, else the one its
    ``hook_name`` or ``layer`` names, see ``sae_site``), or ``"sae:sae"`` when it names none. Every
    function here defaults to these ids, so tables, records and intervention records of one SAE
    join on them.

    Example:
        >>> from interpkit.sae import SAEConfig, make_sae
        >>> sae = make_sae(SAEConfig(architecture="relu", d_in=4, d_sae=3, site="layer6.resid_post"))
        >>> sae_feature_ids(sae)
        ['layer6.resid_post:sae0', 'layer6.resid_post:sae1', 'layer6.resid_post:sae2']
    """
    if prefix is None:
        prefix = _default_prefix(sae)
    return [f"{prefix}{i}" for i in range(sae.d_sae)]


# ---- encoding ---------------------------------------------------------------------------------


def _stream_options(stream: StreamOptions | None, caller: str, options: dict[str, Any]) -> StreamOptions:
    """``stream`` with ``options`` over it; without ``stream``, ``StreamOptions(progress=False)`` (the SAE
    functions' one default that differs from `stream_activations`')."""
    from interpkit.sources import StreamOptions

    return StreamOptions.merge(stream, caller=caller, default=StreamOptions(progress=False), **options)


def _pooled_blocks(
    sae: SAE, model: Any, texts: list[str], site: str, *, pooling: str, stream: StreamOptions,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, Any]]:
    """Per block of examples: ``(example_idx [m], pooled codes [m, d_sae], argmax row [m, d_sae]
    (max pooling) or None, the chunk)``; argmax rows index into the chunk's token rows."""
    import torch

    from interpkit.sources import stream_activations

    if pooling not in _POOLINGS:
        raise ValueError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
    result = stream_activations(model, texts, site, pooling="tokens", stream=stream)
    if (site, "tokens") not in result.sets:
        return
    dev = sae.W_enc.device
    for chunk in result[site, "tokens"].iter_chunks():
        if chunk.values.shape[1] != sae.d_in:
            raise ValueError(f"{site} has width {chunk.values.shape[1]}, but the SAE reads d_in={sae.d_in}")
        ex, starts, counts = np.unique(chunk.example_idx, return_index=True, return_counts=True)
        if counts.sum() != len(chunk) or np.any(np.diff(starts) != counts[:-1]):
            raise RuntimeError("token rows of an example are not contiguous in the activation chunk")
        lo = 0
        while lo < len(ex):  # group whole examples into blocks of about _ENCODE_ROWS token rows
            hi = lo + 1
            while hi < len(ex) and starts[hi] + counts[hi] - starts[lo] <= _ENCODE_ROWS:
                hi += 1
            r0, r1 = int(starts[lo]), int(starts[hi - 1] + counts[hi - 1])
            with torch.no_grad(), inference(sae):
                codes = sae.encode(torch.from_numpy(chunk.values[r0:r1]).to(dev)).float().cpu()
            pooled = torch.zeros(hi - lo, sae.d_sae)
            argmax = torch.zeros(hi - lo, sae.d_sae, dtype=torch.long) if pooling == "max" else None
            for j in range(hi - lo):
                s = int(starts[lo + j]) - r0
                seg = codes[s : s + int(counts[lo + j])]
                if pooling == "max":
                    pooled[j], idx = seg.max(0)
                    argmax[j] = idx + s + r0
                elif pooling == "mean":
                    pooled[j] = seg.mean(0)
                else:
                    pooled[j] = seg[-1]
            yield ex[lo:hi], pooled.numpy(), None if argmax is None else argmax.numpy(), chunk
            lo = hi


def encode_texts(
    sae: SAE,
    model: Any,
    texts: Iterable[Any],
    *,
    site: str | None = None,
    pooling: str = "max",
    stream: StreamOptions | None = None,
    **options: Any,
) -> np.ndarray:
    """SAE codes of each text, pooled over its tokens: ``[n_texts, d_sae]`` float32.

    Each kept token's activation is encoded, then the codes are pooled per text (``max``,
    ``mean``, or ``last`` kept token). Positions follow `stream_activations`: BOS is excluded by
    default; a text with no kept token gets a zero row.

    Args:
        sae: the SAE.
        model: an interpkit ``ModelWrapper``.
        texts: strings or rows with a ``text`` attribute.
        site: the site the SAE reads (default: from its config).
        pooling: ``"max"``, ``"mean"`` or ``"last"``.
        stream: how the model runs over the texts: a `~interpkit.sources.StreamOptions`
            (default ``StreamOptions(progress=False)``: no progress bar, unlike `stream_activations`).
        **options: any ``StreamOptions`` field (``batch_size=4``, ``max_length=32``, ...), over
            ``stream``'s value.

    Returns:
        Dense codes (use `sae_table` for a sparse table).

    Raises:
        TypeError: a keyword that is not a ``StreamOptions`` field.
        ValueError: a bad pooling or option, or a site whose width is not the SAE's ``d_in``.
    """
    opts = _stream_options(stream, "encode_texts", options)
    texts = [t if isinstance(t, str) else t.text for t in texts]
    site = _site(sae, site, model)
    out = np.zeros((len(texts), sae.d_sae), dtype=np.float32)
    for ex, pooled, _, _ in _pooled_blocks(sae, model, texts, site, pooling=pooling, stream=opts):
        out[ex] = pooled
    return out


def sae_table(
    sae: SAE,
    model: Any,
    rows: Any,
    *,
    site: str | None = None,
    pooling: str = "max",
    top_tokens: int = 8,
    feature_ids: Sequence[str] | None = None,
    decoder_vectors: bool = True,
    stream: StreamOptions | None = None,
    **options: Any,
) -> FeatureTable:
    """A sparse FeatureTable of the SAE's latents on a prompt dataset (one row per prompt).

    Built like `~interpkit.sources.neuron_table`: examples carry ``example_id``, ``text``,
    ``criterion_score`` and ``split`` from the rows; features are ``"<site>:sae<i>"`` with
    ``source="sae"``, ``site``, ``layer`` and a ``latent`` column. Values are CSR (memory ~
    non-zeros). With ``max`` pooling, ``tokens`` holds where each of an example's ``top_tokens``
    most active latents peaked.

    Args:
        sae: the SAE.
        model: an interpkit ``ModelWrapper``.
        rows: prompt rows (`PromptRow`, dicts, bare texts) or a ``Path`` to a prompt-dataset JSONL.
        site: the site the SAE reads (default: from its config).
        pooling: ``"max"``, ``"mean"`` or ``"last"`` over the kept tokens.
        top_tokens: token maxima kept per example (``max`` pooling; 0: none).
        feature_ids: ids for the latents (default `sae_feature_ids`).
        decoder_vectors: attach each latent's write-out direction (`latent_feature`'s).
        stream: how the model runs over the texts, as in `encode_texts` (default
            ``StreamOptions(progress=False)``).
        **options: any ``StreamOptions`` field, over ``stream``'s value.

    Returns:
        ``[n_examples, d_sae]`` sparse table.

    Raises:
        TypeError: a keyword that is not a ``StreamOptions`` field.
        ValueError: a bad pooling or option, a width mismatch, or ``feature_ids`` of the wrong length.
    """
    import pandas as pd

    from interpkit.sources.neurons import examples_frame, load_rows, site_layer, table_meta
    from interpkit.table import FeatureTable
    from interpkit.table._frames import scipy_sparse

    opts = _stream_options(stream, "sae_table", options)
    site = _site(sae, site, model)
    data = load_rows(rows)
    ids = list(feature_ids) if feature_ids is not None else sae_feature_ids(sae)
    if len(ids) != sae.d_sae:
        raise ValueError(f"feature_ids has {len(ids)} ids for an SAE with {sae.d_sae} latents")
    texts = [r.text for r in data]
    indptr_rows: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    tok: dict[str, list[Any]] = {k: [] for k in ("example_idx", "feature_idx", "token_index", "token", "activation")}
    for ex, pooled, argmax, chunk in _pooled_blocks(sae, model, texts, site, pooling=pooling, stream=opts):
        for j, e in enumerate(ex.tolist()):
            nz = np.flatnonzero(pooled[j])
            indptr_rows[e] = (nz.astype(np.int32), pooled[j, nz])
            if argmax is None or top_tokens <= 0 or not len(nz):
                continue
            top = nz[np.argsort(-pooled[j, nz], kind="stable")[:top_tokens]]
            for f in top.tolist():
                r = int(argmax[j, f])
                tok["example_idx"].append(e)
                tok["feature_idx"].append(f)
                tok["token_index"].append(int(chunk.token_index[r]))
                tok["token"].append(chunk.tokens[r])
                tok["activation"].append(float(pooled[j, f]))
    indptr = np.zeros(len(data) + 1, dtype=np.int64)
    for e, (cols, _) in indptr_rows.items():
        indptr[e + 1] = len(cols)
    indptr = np.cumsum(indptr)
    order = sorted(indptr_rows)
    empty = (np.zeros(0, np.int32), np.zeros(0, np.float32))
    indices = np.concatenate([indptr_rows[e][0] for e in order] or [empty[0]])
    vals = np.concatenate([indptr_rows[e][1] for e in order] or [empty[1]]).astype(np.float32)
    values = scipy_sparse().csr_array((vals, indices, indptr), shape=(len(data), sae.d_sae))

    examples = examples_frame(data)
    name = getattr(model, "name", None)
    layer = site_layer(model, site)
    if layer is None:
        layer = sae.cfg.layer
    features = pd.DataFrame({
        "feature_id": ids,
        "model": [name] * len(ids),
        "site": [site] * len(ids),
        "layer": [layer] * len(ids),
        "label": [None] * len(ids),
        "source": ["sae"] * len(ids),
        "latent": list(range(len(ids))),
    })
    decoders = None
    if decoder_vectors:
        w = _write_direction_matrix(sae)
        decoders = {fid: w[i] for i, fid in enumerate(ids)}
    tokens = pd.DataFrame(tok) if pooling == "max" and top_tokens > 0 and len(data) else None
    meta = table_meta(data, model=name, site=site, pooling=pooling, source="sae", stream=opts,
                      top_tokens=top_tokens if tokens is not None else 0,
                      sae={"architecture": sae.cfg.architecture, "d_in": sae.d_in, "d_sae": sae.d_sae,
                           "k": sae.cfg.k, "hook_name": sae.cfg.hook_name, "model": sae.cfg.model})
    return FeatureTable(values, examples, features, decoder_vectors=decoders, tokens=tokens, meta=meta)


def _write_direction_matrix(sae: SAE) -> np.ndarray:
    w = sae.W_dec.detach().float().cpu()
    scale = _unit_scale(sae)
    return (w / scale if scale != 1.0 else w).numpy()


def _unit_scale(sae: SAE) -> float:
    """The fixed input scale of ``expected_average_only_in`` SAEs (1 otherwise): write-out
    directions are ``W_dec`` divided by it, and controls of `_displace` multiplied by it."""
    if sae.cfg.normalize_activations == "expected_average_only_in" and sae.cfg.norm_scaling_factor:
        return float(sae.cfg.norm_scaling_factor)
    return 1.0


# ---- records ------------------------------------------------------------------------------------


_CARRIED_EXTRAS = ("split", "token_index", "token", "synthetic")


def _row_fields(row: Any, i: int) -> tuple[Any, str, float | None, dict[str, Any]]:
    """``(prompt_id, text, criterion_score, extras to carry)`` of a PromptRow, record, dict or text."""
    from interpkit.records import ActivationRecord
    from interpkit.sources import PromptRow

    if isinstance(row, str):
        return i, row, None, {}
    if isinstance(row, Mapping):
        row = PromptRow.from_dict(row) if "features" not in row else ActivationRecord.from_dict(row)
    if isinstance(row, ActivationRecord):
        extra = {k: row.extra[k] for k in _CARRIED_EXTRAS if k in row.extra}
        return row.prompt_id, row.text, row.criterion_score, extra
    if isinstance(row, PromptRow):
        return row.prompt_id, row.text, row.criterion_score, {} if row.split is None else {"split": row.split}
    raise TypeError(f"row {i}: expected a PromptRow, an ActivationRecord, a dict or a text, got {type(row).__name__}")


def sae_records(
    sae: SAE,
    codes: Any,
    rows: Sequence[Any],
    *,
    model_name: str,
    top_k_features: int | None = None,
    feature_ids: Sequence[str] | None = None,
    include_decoder: bool = False,
) -> list[ActivationRecord]:
    """Activation records of SAE codes, one per row, for ``inspect --backend records``.

    Each record keeps the row's non-zero latents (or its ``top_k_features`` largest by
    ``|activation|``, ties in latent order), most active first, with ``layer = cfg.layer``
    (``cfg.site`` when the layer is unknown). The row's ``split`` (and ``token_index``/``token``
    /``synthetic`` of token-level records) are kept.

    Args:
        sae: the SAE the codes come from.
        codes: ``[n, d_sae]`` codes (numpy, torch or scipy sparse), e.g. from `encode_texts`.
        rows: the ``n`` rows: `PromptRow` / `ActivationRecord` objects, their dicts, or texts
            (ids ``0..n-1``).
        model_name: the ``model`` field of every record.
        top_k_features: keep at most this many latents per row (None: all non-zero).
        feature_ids: ids of the latents (default `sae_feature_ids`).
        include_decoder: write each latent's write-out direction as ``decoder_signature``.

    Returns:
        The records, in row order.

    Raises:
        ValueError: shapes that do not match, or a bad ``top_k_features``.
    """
    from interpkit.records import ActivationRecord, FeatureActivation
    from interpkit.table._frames import is_sparse

    sparse = is_sparse(codes)
    if sparse:
        codes = codes.tocsr()
    elif hasattr(codes, "detach"):
        codes = codes.detach().cpu().numpy()
    else:
        codes = np.asarray(codes)
    shape = codes.shape
    if len(shape) != 2 or shape[1] != sae.d_sae:
        raise ValueError(f"codes must have shape [n, {sae.d_sae}] (the SAE's d_sae), got {tuple(shape)}")
    if shape[0] != len(rows):
        raise ValueError(f"codes has {shape[0]} rows but {len(rows)} rows were given")
    if top_k_features is not None and int(top_k_features) < 1:
        raise ValueError(f"top_k_features must be >= 1, got {top_k_features}")
    ids = list(feature_ids) if feature_ids is not None else sae_feature_ids(sae)
    if len(ids) != sae.d_sae:
        raise ValueError(f"feature_ids has {len(ids)} ids for an SAE with {sae.d_sae} latents")
    layer = sae.cfg.layer if sae.cfg.layer is not None else sae.cfg.site
    w = _write_direction_matrix(sae) if include_decoder else None
    out = []
    for i, row in enumerate(rows):
        pid, text, score, extra = _row_fields(row, i)
        v = np.asarray(codes[[i]].toarray() if sparse else codes[i], dtype=np.float64).reshape(-1)
        nz = np.flatnonzero(v)
        nz = nz[np.argsort(-np.abs(v[nz]), kind="stable")]
        if top_k_features is not None:
            nz = nz[: int(top_k_features)]
        feats = tuple(
            FeatureActivation(feature_id=ids[j], activation=float(v[j]), layer=layer,
                              decoder_signature=None if w is None else tuple(float(x) for x in w[j]))
            for j in nz.tolist()
        )
        out.append(ActivationRecord(model=model_name, prompt_id=pid, text=text, criterion_score=score,
                                    features=feats, extra=extra))
    return out
