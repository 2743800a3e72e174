"""Streaming conversion between activation records and a FeatureTable.

`build_from_records` reads one row at a time and appends the row's non-zeros to compact COO
buffers (``array`` of int32/float32), so memory grows with the non-zeros, never with
examples x features. Token rows of one prompt are merged while they arrive contiguously; a
prompt whose token rows are scattered is merged at the end by a sort on (example, feature,
-activation), which also keeps the position of each maximum.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ._frames import TableError, scipy_sparse

if TYPE_CHECKING:
    from interpkit.records import ActivationRecord

    from ._table import FeatureTable

_INTERPRETED = ("split", "token_index", "token", "synthetic")


def _iter_input(records: Any, lenient: bool, source_name: str | None) -> Iterator[ActivationRecord]:
    from interpkit.records import ActivationRecord, RecordError, iter_activation_records

    if isinstance(records, (str, os.PathLike)):
        yield from iter_activation_records(records, lenient=lenient, source_name=source_name)
        return
    name = source_name or "<records>"
    for i, rec in enumerate(records):
        if isinstance(rec, ActivationRecord):
            yield rec
        elif isinstance(rec, Mapping):
            try:
                yield ActivationRecord.from_dict(rec, lenient=lenient)
            except RecordError as err:
                raise err.located(path=name, line=i + 1) from None
        else:
            raise TypeError(
                f"{name}: row {i + 1} is a {type(rec).__name__}, expected an ActivationRecord or dict"
            )


class _Builder:
    """Accumulates examples, features and COO entries from a stream of records."""

    def __init__(self, level: str) -> None:
        self.level = level
        self.ex_index: dict[str, int] = {}
        self.ex: dict[str, list[Any]] = {
            k: []
            for k in (
                "example_id",
                "text",
                "criterion_score",
                "split",
                "model",
                "extra",
                "prompt_id",
                "token_index",
                "token",
            )
        }
        self.ex_tokens: list[int] = []  # token rows seen per example; 0 = a plain prompt row
        self.positions: set[tuple[int, int]] = set()
        self.ft_index: dict[str, int] = {}
        self.ft: dict[str, list[Any]] = {k: [] for k in ("feature_id", "model", "site", "layer", "label")}
        self.decoders: dict[str, tuple[float, ...]] = {}
        self.rows, self.cols, self.counts = array("i"), array("i"), array("i")
        self.vals = array("f")
        self.tok_pos, self.tok_id = array("q"), array("i")
        self.tok_names: dict[str, int] = {}
        self.pending: dict[int, list[Any]] = {}
        self.pending_ex = -1
        self.flushed: set[int] = set()
        self.rescatter = False
        self.models: dict[str, None] = {}
        self.synthetic = False
        self.n_rows = 0
        self.aggregated_scores = False

    def _token_id(self, token: str | None) -> int:
        if token is None:
            return -1
        return self.tok_names.setdefault(token, len(self.tok_names))

    def _feature(self, fa: Any, model: str) -> int:
        fid = str(fa.feature_id)
        j = self.ft_index.get(fid)
        if j is None:
            j = self.ft_index[fid] = len(self.ft_index)
            self.ft["feature_id"].append(fid)
            self.ft["model"].append(model)
            self.ft["label"].append(None)
            self.ft["layer"].append(None)
            self.ft["site"].append(None)
        if fa.label is not None and self.ft["label"][j] is None:
            self.ft["label"][j] = fa.label
        if fa.layer is not None and self.ft["layer"][j] is None and self.ft["site"][j] is None:
            self.ft["layer" if isinstance(fa.layer, int) else "site"][j] = fa.layer
        if fa.decoder_signature is not None and fid not in self.decoders:
            self.decoders[fid] = fa.decoder_signature
        return j

    def _example(self, rec: ActivationRecord, key: str, token_row: bool) -> int:
        i = self.ex_index.get(key)
        extra = {k: v for k, v in rec.extra.items() if k not in _INTERPRETED}
        if i is None:
            i = self.ex_index[key] = len(self.ex_index)
            self.ex["example_id"].append(key)
            self.ex["text"].append(rec.text)
            self.ex["criterion_score"].append(rec.criterion_score)
            self.ex["split"].append(rec.split)
            self.ex["model"].append(rec.model)
            self.ex["extra"].append(json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None)
            self.ex["prompt_id"].append(str(rec.prompt_id))
            self.ex["token_index"].append(rec.token_index)
            self.ex["token"].append(rec.token)
            self.ex_tokens.append(1 if token_row else 0)
            return i
        if not token_row or self.ex_tokens[i] == 0:
            raise TableError(
                f"prompt_id {key!r} appears in more than one row; repeated rows of a prompt must each "
                "carry a distinct token_index (token-level rows)"
            )
        self.ex_tokens[i] += 1
        if len(rec.text) > len(self.ex["text"][i]):
            self.ex["text"][i] = rec.text  # token rows may carry growing prefixes; keep the fullest
        old = self.ex["criterion_score"][i]
        if rec.criterion_score is not None and old != rec.criterion_score:
            self.aggregated_scores = self.aggregated_scores or old is not None
            self.ex["criterion_score"][i] = (
                rec.criterion_score if old is None else max(old, rec.criterion_score)
            )
        if rec.split is not None and self.ex["split"][i] not in (None, rec.split):
            raise TableError(
                f"prompt_id {key!r} has token rows in different splits ({self.ex['split'][i]!r}, {rec.split!r})"
            )
        if rec.split is not None:
            self.ex["split"][i] = rec.split
        return i

    def add(self, rec: ActivationRecord) -> None:
        self.n_rows += 1
        self.models.setdefault(rec.model, None)
        self.synthetic = self.synthetic or rec.synthetic
        ti = rec.token_index
        if self.level == "token" and ti is not None:
            key, token_row = f"{rec.prompt_id}@{ti}", False
        else:
            key, token_row = str(rec.prompt_id), ti is not None
        i = self._example(rec, key, token_row)
        if token_row:
            if (i, ti) in self.positions:
                raise TableError(f"prompt_id {key!r} has two rows for token_index {ti}")
            self.positions.add((i, ti))
        if i != self.pending_ex:
            self.flush()
            self.pending_ex = i
            if i in self.flushed:
                self.rescatter = True
        row_tok = self._token_id(rec.token) if token_row else -1
        pending = self.pending
        for fa in rec.features:
            j = self._feature(fa, rec.model)
            if token_row:
                pos, tok = ti, row_tok
            else:
                pos = fa.extra.get("token_index", -1)
                tok = self._token_id(fa.extra.get("token")) if pos >= 0 else -1
            cur = pending.get(j)
            if cur is None:
                pending[j] = [fa.activation, 1, pos, tok]
            else:
                cur[1] += 1
                if fa.activation > cur[0]:
                    cur[0], cur[2], cur[3] = fa.activation, pos, tok

    def flush(self) -> None:
        if self.pending_ex < 0:
            return
        i = self.pending_ex
        for j, (val, count, pos, tok) in self.pending.items():
            self.rows.append(i)
            self.cols.append(j)
            self.vals.append(val)
            self.counts.append(count)
            self.tok_pos.append(pos)
            self.tok_id.append(tok)
        self.flushed.add(i)
        self.pending = {}
        self.pending_ex = -1


def _merge(b: _Builder) -> tuple[np.ndarray, ...]:
    """COO arrays with one entry per (example, feature): the max, its position, missing rows as 0."""
    rows = np.frombuffer(b.rows, dtype=np.int32)
    cols = np.frombuffer(b.cols, dtype=np.int32)
    vals = np.frombuffer(b.vals, dtype=np.float32).copy()
    counts = np.frombuffer(b.counts, dtype=np.int32)
    pos = np.frombuffer(b.tok_pos, dtype=np.int64).copy()
    tok = np.frombuffer(b.tok_id, dtype=np.int32)
    if b.rescatter and len(rows):
        order = np.lexsort((-vals, cols, rows))
        rows, cols, vals, counts, pos, tok = (a[order] for a in (rows, cols, vals, counts, pos, tok))
        start = np.ones(len(rows), dtype=bool)
        start[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
        first = np.flatnonzero(start)
        counts = np.add.reduceat(counts, first).astype(np.int32)
        rows, cols, vals, pos, tok = (a[first] for a in (rows, cols, vals, pos, tok))
    n_rows = np.maximum(np.asarray(b.ex_tokens, dtype=np.int32), 1)
    absent_somewhere = counts < n_rows[rows]
    lift = absent_somewhere & (vals < 0)
    vals[lift] = 0.0
    pos[lift] = -1
    bad = ~np.isfinite(vals)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise TableError(
            f"activation of feature {b.ft['feature_id'][cols[k]]!r} on example "
            f"{b.ex['example_id'][rows[k]]!r} does not fit in float32"
        )
    nz = vals != 0
    return rows[nz], cols[nz], vals[nz], pos[nz], tok[nz]


def build_from_records(
    cls: type[FeatureTable],
    records: Any,
    *,
    sparse: Any,
    level: str,
    density_threshold: float,
    meta: Mapping[str, Any] | None,
    lenient: bool,
    source_name: str | None,
) -> FeatureTable:
    """Implementation of `FeatureTable.from_records` (see there)."""
    if level not in ("prompt", "token"):
        raise ValueError(f"level must be 'prompt' or 'token', got {level!r}")
    if sparse not in (True, False, "auto"):
        raise ValueError(f"sparse must be True, False or 'auto', got {sparse!r}")
    b = _Builder(level)
    for rec in _iter_input(records, lenient, source_name):
        b.add(rec)
    b.flush()
    rows, cols, vals, pos, tok = _merge(b)
    shape = (len(b.ex_index), len(b.ft_index))
    size = shape[0] * shape[1]
    use_sparse = sparse is True or (sparse == "auto" and size > 0 and len(vals) / size <= density_threshold)
    if use_sparse:
        values: Any = scipy_sparse().csr_array((vals, (rows, cols)), shape=shape, dtype=np.float32)
        values.sum_duplicates()
    else:
        values = np.zeros(shape, dtype=np.float32)
        values[rows, cols] = vals
    names = np.array(list(b.tok_names) + [None], dtype=object)
    has_pos = pos >= 0
    tokens = None
    if has_pos.any():
        order = np.lexsort((cols[has_pos], rows[has_pos]))
        tokens = pd.DataFrame(
            {
                "example_idx": rows[has_pos][order].astype(np.int64),
                "feature_idx": cols[has_pos][order].astype(np.int64),
                "token_index": pos[has_pos][order],
                "token": names[tok[has_pos][order]],
                "activation": vals[has_pos][order],
            }
        )
    examples = pd.DataFrame(
        {
            "example_id": b.ex["example_id"],
            "text": b.ex["text"],
            "criterion_score": [math.nan if s is None else s for s in b.ex["criterion_score"]],
            "split": pd.Series(b.ex["split"], dtype=object),
            "model": pd.Series(b.ex["model"], dtype=object),
            "extra": pd.Series(b.ex["extra"], dtype=object),
        }
    )
    if level == "token":
        examples["prompt_id"] = pd.Series(b.ex["prompt_id"], dtype=object)
        examples["token_index"] = pd.array(b.ex["token_index"], dtype="Int64")
        examples["token"] = pd.Series(b.ex["token"], dtype=object)
    features = pd.DataFrame({**{k: pd.Series(v, dtype=object) for k, v in b.ft.items()}, "source": "records"})
    models = list(b.models)
    info: dict[str, Any] = {
        "source": "records",
        "model": models[0] if len(models) == 1 else None,
        "models": models,
        "n_rows": b.n_rows,
        "level": level,
    }
    if b.aggregated_scores:
        info["criterion_score_aggregation"] = "max over token rows"
    if b.synthetic:
        info["synthetic"] = True
    info.update(meta or {})
    return cls(
        values,
        examples,
        features,
        decoder_vectors=b.decoders,
        tokens=tokens,
        meta=info,
        synthetic=b.synthetic,
    )


def iter_table_records(
    table: FeatureTable, *, top_k: int | None, include_decoder: bool
) -> Iterator[ActivationRecord]:
    """Implementation of `FeatureTable.to_records` (see there)."""
    from interpkit.records import ActivationRecord, FeatureActivation

    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    ex, ft = table.examples, table.features
    fids, labels, sites = list(ft["feature_id"]), list(ft["label"]), list(ft["site"])
    layers = [None if pd.isna(v) else int(v) for v in ft["layer"]]
    feat_models = [m for m in ft["model"] if m is not None]
    default_model = table.meta.get("model") or (feat_models[0] if feat_models else None) or "unknown"
    models = list(ex["model"]) if "model" in ex.columns else [None] * table.n_examples
    extras = list(ex["extra"]) if "extra" in ex.columns else [None] * table.n_examples
    token_level = {"prompt_id", "token_index"} <= set(ex.columns)
    tok_by_ex: dict[int, dict[int, tuple[int, Any]]] = {}
    if table.tokens is not None:
        t = table.tokens
        for e, f, p, s in zip(t["example_idx"], t["feature_idx"], t["token_index"], t["token"], strict=True):
            tok_by_ex.setdefault(int(e), {})[int(f)] = (int(p), s)
    csr = table.values if table.is_sparse else None
    for i in range(table.n_examples):
        if csr is not None:
            lo, hi = csr.indptr[i], csr.indptr[i + 1]
            idx, vals = csr.indices[lo:hi], csr.data[lo:hi]
        else:
            row = table.values[i]
            idx = np.flatnonzero(row)
            vals = row[idx]
        keep = vals != 0
        idx, vals = idx[keep], vals[keep]
        if top_k is not None and len(idx) > top_k:
            order = np.lexsort((idx, -vals))[:top_k]
            idx, vals = idx[order], vals[order]
        toks = tok_by_ex.get(i, {})
        feats = []
        for j, v in zip(idx.tolist(), vals.tolist(), strict=True):
            fx: dict[str, Any] = {}
            if j in toks:
                fx["token_index"], token = toks[j]
                if token is not None:
                    fx["token"] = token
            feats.append(
                FeatureActivation(
                    feature_id=fids[j],
                    activation=v,
                    label=labels[j],
                    layer=layers[j] if layers[j] is not None else sites[j],
                    decoder_signature=table.decoder_vectors[fids[j]].tolist()
                    if include_decoder and fids[j] in table.decoder_vectors
                    else None,
                    extra=fx,
                )
            )
        extra = json.loads(extras[i]) if isinstance(extras[i], str) else {}
        split = ex["split"].iat[i]
        if split is not None:
            extra["split"] = split
        if table.synthetic:
            extra["synthetic"] = True
        prompt_id = ex["example_id"].iat[i]
        if token_level and not pd.isna(ex["token_index"].iat[i]):
            prompt_id = ex["prompt_id"].iat[i]
            extra["token_index"] = int(ex["token_index"].iat[i])
            if "token" in ex.columns and isinstance(ex["token"].iat[i], str):
                extra["token"] = ex["token"].iat[i]
        score = float(ex["criterion_score"].iat[i])
        yield ActivationRecord(
            model=models[i] or default_model,
            prompt_id=prompt_id,
            text=ex["text"].iat[i],
            criterion_score=None if math.isnan(score) else score,
            features=tuple(feats),
            extra=extra,
        )
