"""FeatureTable: activations of many features on many examples, with the metadata of both.

Think of it as one matrix and three aligned frames::

    values     [example, feature]  float32, dense ndarray or scipy CSR (SAE latents)
    examples   one row per example: example_id, text, criterion_score (NaN = unknown), split
    features   one row per feature: feature_id, model, site, layer, label, source, has_decoder
    tokens     optional long form: where in the example each feature peaked (for highlighting)

plus ``decoder_vectors`` (feature_id -> write-out direction, only for features that have one),
``meta`` (JSON-ready provenance) and ``synthetic`` (True for made-up data; every artifact built
from the table carries it). Feature and example ids are strings. Memory is proportional to the
non-zeros when ``values`` is sparse.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from ._frames import (
    TableError,
    is_sparse,
    normalize_examples,
    normalize_features,
    normalize_tokens,
    scipy_sparse,
)

if TYPE_CHECKING:
    import scipy.sparse as sp

    from interpkit.records import ActivationRecord

__all__ = ["FeatureTable"]

Selector = Sequence[int] | Sequence[str] | Sequence[bool] | np.ndarray | slice


def _canonical_values(values: Any) -> np.ndarray | sp.csr_array:
    if is_sparse(values):
        if values.ndim != 2:
            raise TableError(f"values must be 2-D [example, feature], got shape {values.shape}")
        out = scipy_sparse().csr_array(values, dtype=np.float32)
        if out is values or not out.has_canonical_format:
            out = out.copy()
            out.sum_duplicates()
        if not np.isfinite(out.data).all():
            raise TableError("values must be finite (found NaN or inf)")
        return out
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim != 2:
        raise TableError(f"values must be 2-D [example, feature], got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise TableError("values must be finite (found NaN or inf)")
    return arr


def _canonical_decoders(vectors: Mapping[Any, Any] | None, ids: Mapping[str, int]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, vec in (vectors or {}).items():
        fid = str(key)
        if fid not in ids:
            raise TableError(f"decoder_vectors has feature id {fid!r}, which is not a feature of the table")
        arr = np.asarray(vec, dtype=np.float32)
        if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all():
            raise TableError(f"decoder vector of feature {fid!r} must be a non-empty finite 1-D vector")
        out[fid] = arr
    return out


def _resolve(sel: Any, n: int, lookup: Mapping[str, int], what: str) -> np.ndarray:
    """Turn a slice, bool mask, int indices or ids into unique int64 indices (order kept)."""
    if isinstance(sel, slice):
        return np.arange(n, dtype=np.int64)[sel]
    if isinstance(sel, (str, int, np.integer)):
        sel = [sel]
    items = list(sel) if not isinstance(sel, np.ndarray) else sel
    arr = np.asarray(items)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise IndexError(f"{what} mask has length {arr.shape[0]}, expected {n}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.size and arr.dtype.kind in "USO":
        missing = [str(x) for x in items if str(x) not in lookup]
        if missing:
            raise KeyError(f"unknown {what} id(s): {missing[:5]}")
        idx = np.array([lookup[str(x)] for x in items], dtype=np.int64)
    else:
        idx = arr.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"{what} index out of range for {n} {what}s")
        idx = np.where(idx < 0, idx + n, idx)
    if len(np.unique(idx)) != len(idx):
        raise IndexError(f"{what} selection repeats an entry; ids must stay unique")
    return idx


class FeatureTable:
    """Examples x features activations with example and feature metadata.

    Args:
        values: ``[n_examples, n_features]`` activations, a dense array or any scipy sparse
            matrix/array (stored as float32 ndarray or ``scipy.sparse.csr_array``).
        examples: one row per example (``example_id`` required; ``text``, ``criterion_score``,
            ``split`` filled in when absent; other columns kept). None: ids ``"0".."n-1"``.
        features: one row per feature (``feature_id`` required; ``model``, ``site``, ``layer``,
            ``label``, ``source`` filled in when absent; ``has_decoder`` is recomputed).
        decoder_vectors: feature id -> decoder direction, for the features that have one.
        tokens: long-form token maxima (``example_idx, feature_idx, token_index, token,
            activation``).
        meta: JSON-serialisable provenance (model, criterion, ...).
        synthetic: True for made-up data (also set by ``meta["synthetic"]``).

    Raises:
        TableError: shapes, ids or types do not fit together.
    """

    def __init__(
        self,
        values: Any,
        examples: pd.DataFrame | None = None,
        features: pd.DataFrame | None = None,
        *,
        decoder_vectors: Mapping[Any, Any] | None = None,
        tokens: pd.DataFrame | None = None,
        meta: Mapping[str, Any] | None = None,
        synthetic: bool = False,
    ) -> None:
        self.values = _canonical_values(values)
        n_ex, n_feat = self.values.shape
        self.examples = normalize_examples(examples, n_ex)
        self.features = normalize_features(features, n_feat, np.zeros(n_feat, dtype=bool))
        lookup = {fid: j for j, fid in enumerate(self.features["feature_id"])}
        self.decoder_vectors = _canonical_decoders(decoder_vectors, lookup)
        self.features["has_decoder"] = np.array([fid in self.decoder_vectors for fid in lookup], dtype=bool)
        self.tokens = normalize_tokens(tokens, (n_ex, n_feat))
        self.meta = dict(meta or {})
        try:
            json.dumps(self.meta, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TableError(f"meta must be JSON-serialisable (it is saved in cfg.json): {err}") from None
        self.synthetic = bool(synthetic) or bool(self.meta.get("synthetic", False))
        self._feature_lookup: dict[str, int] | None = lookup
        self._example_lookup: dict[str, int] | None = None
        self._csc: sp.csc_array | None = None

    # -- shape and access ------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_examples, n_features)``."""
        return self.values.shape  # type: ignore[return-value]

    @property
    def n_examples(self) -> int:
        """Number of examples (rows)."""
        return self.values.shape[0]

    @property
    def n_features(self) -> int:
        """Number of features (columns)."""
        return self.values.shape[1]

    @property
    def is_sparse(self) -> bool:
        """True when ``values`` is a scipy CSR array."""
        return is_sparse(self.values)

    @property
    def nnz(self) -> int:
        """Number of stored non-zero activations."""
        if self.is_sparse:
            return int(self.values.count_nonzero())
        return int(np.count_nonzero(self.values))

    @property
    def density(self) -> float:
        """Fraction of non-zero activations."""
        size = self.n_examples * self.n_features
        return self.nnz / size if size else 0.0

    @property
    def feature_ids(self) -> list[str]:
        """Feature ids in column order."""
        return list(self.features["feature_id"])

    @property
    def example_ids(self) -> list[str]:
        """Example ids in row order."""
        return list(self.examples["example_id"])

    def dense(self) -> np.ndarray:
        """``values`` as a dense float32 array (the array itself when already dense)."""
        return self.values.toarray() if self.is_sparse else self.values

    def column(self, j: int | str) -> np.ndarray:
        """Activations of one feature (index or id) over all examples, as a 1-D float32 array.

        Sparse tables build a CSC copy on first use so that repeated column reads stay cheap.
        """
        if isinstance(j, str):
            j = self.feature_index(j)
        if not self.is_sparse:
            return np.ascontiguousarray(self.values[:, j])
        if self._csc is None:
            self._csc = self.values.tocsc()
        out = np.zeros(self.n_examples, dtype=np.float32)
        lo, hi = self._csc.indptr[j], self._csc.indptr[j + 1]
        out[self._csc.indices[lo:hi]] = self._csc.data[lo:hi]
        return out

    def feature_index(self, feature_id: str | int) -> int:
        """Column index of a feature id (ints are matched as their string form).

        Raises:
            KeyError: no such feature.
        """
        if self._feature_lookup is None:
            self._feature_lookup = {fid: j for j, fid in enumerate(self.features["feature_id"])}
        try:
            return self._feature_lookup[str(feature_id)]
        except KeyError:
            raise KeyError(
                f"no feature {str(feature_id)!r} in this table of {self.n_features} features"
            ) from None

    def example_index(self, example_id: str | int) -> int:
        """Row index of an example id.

        Raises:
            KeyError: no such example.
        """
        if self._example_lookup is None:
            self._example_lookup = {eid: i for i, eid in enumerate(self.examples["example_id"])}
        try:
            return self._example_lookup[str(example_id)]
        except KeyError:
            raise KeyError(
                f"no example {str(example_id)!r} in this table of {self.n_examples} examples"
            ) from None

    # -- new tables ------------------------------------------------------------------------

    def _derive(self, rows: np.ndarray | None, cols: np.ndarray | None, values: Any = None) -> FeatureTable:
        vals = self.values if values is None else values
        if rows is not None:
            vals = vals[rows]
        if cols is not None:
            vals = vals[:, cols]
        examples = self.examples if rows is None else self.examples.iloc[rows]
        features = self.features if cols is None else self.features.iloc[cols]
        tokens = self.tokens
        if tokens is not None and (rows is not None or cols is not None):
            ex_map = _inverse(rows, self.n_examples)
            ft_map = _inverse(cols, self.n_features)
            new_ex = ex_map[tokens["example_idx"].to_numpy()]
            new_ft = ft_map[tokens["feature_idx"].to_numpy()]
            keep = (new_ex >= 0) & (new_ft >= 0)
            tokens = tokens[keep].reset_index(drop=True)
            tokens["example_idx"] = new_ex[keep]
            tokens["feature_idx"] = new_ft[keep]
        ids = set(features["feature_id"])
        decoders = {k: v for k, v in self.decoder_vectors.items() if k in ids}
        return FeatureTable(
            vals,
            examples.reset_index(drop=True),
            features.reset_index(drop=True),
            decoder_vectors=decoders,
            tokens=tokens,
            meta=self.meta,
            synthetic=self.synthetic,
        )

    def select_features(self, idx: Selector) -> FeatureTable:
        """A new table with the chosen features (indices, a bool mask, ids or a slice), in that order."""
        lookup = {fid: j for j, fid in enumerate(self.features["feature_id"])}
        return self._derive(None, _resolve(idx, self.n_features, lookup, "feature"))

    def select_examples(self, mask_or_idx: Selector) -> FeatureTable:
        """A new table with the chosen examples (a bool mask, indices, ids or a slice), in that order."""
        lookup = {eid: i for i, eid in enumerate(self.examples["example_id"])}
        return self._derive(_resolve(mask_or_idx, self.n_examples, lookup, "example"), None)

    @classmethod
    def hstack(cls, tables: Sequence[FeatureTable]) -> FeatureTable:
        """The features of several tables over the same examples, side by side.

        Example ids must be equal and in the same order; feature ids must not repeat. Values stay
        dense unless every part is sparse; decoders and token maxima are carried (token rows get
        their feature index shifted); ``meta`` is the first table's, with the others' kept under
        ``meta["parts"]``.

        Raises:
            TableError: no tables, different examples, or a repeated feature id.
        """
        tables = list(tables)
        if not tables:
            raise TableError("hstack needs at least one table")
        first = tables[0]
        ids = list(first.examples["example_id"])
        for k, t in enumerate(tables[1:], start=1):
            if list(t.examples["example_id"]) != ids:
                raise TableError(f"hstack: table {k} has different examples (ids or order) than table 0")
        feats = pd.concat([t.features for t in tables], ignore_index=True)
        dup = feats["feature_id"][feats["feature_id"].duplicated()].tolist()
        if dup:
            raise TableError(f"hstack: feature id(s) {dup[:5]} appear in more than one table")
        if all(t.is_sparse for t in tables):
            values: Any = scipy_sparse().hstack([t.values for t in tables], format="csr")
        else:
            values = np.hstack([t.dense() for t in tables])
        decoders: dict[str, np.ndarray] = {}
        token_parts = []
        offset = 0
        for t in tables:
            decoders.update(t.decoder_vectors)
            if t.tokens is not None:
                part = t.tokens.copy()
                part["feature_idx"] = part["feature_idx"] + offset
                token_parts.append(part)
            offset += t.n_features
        tokens = pd.concat(token_parts, ignore_index=True) if token_parts else None
        meta = dict(first.meta)
        if len(tables) > 1:
            meta["parts"] = [dict(t.meta) for t in tables[1:]]
        return cls(values, first.examples.copy(), feats.drop(columns=["has_decoder"], errors="ignore"),
                   decoder_vectors=decoders, tokens=tokens, meta=meta,
                   synthetic=any(t.synthetic for t in tables))

    def to_sparse(self) -> FeatureTable:
        """The same table with CSR values."""
        return self if self.is_sparse else self._derive(None, None, scipy_sparse().csr_array(self.values))

    def to_dense(self) -> FeatureTable:
        """The same table with dense values."""
        return self._derive(None, None, self.values.toarray()) if self.is_sparse else self

    # -- construction, persistence ------------------------------------------------------------

    @classmethod
    def from_records(
        cls,
        records: Iterable[ActivationRecord | Mapping[str, Any]] | str | os.PathLike[str],
        *,
        sparse: bool | Literal["auto"] = "auto",
        level: Literal["prompt", "token"] = "prompt",
        density_threshold: float = 0.3,
        meta: Mapping[str, Any] | None = None,
        lenient: bool = False,
        source_name: str | None = None,
    ) -> FeatureTable:
        """Build a table from activation records, streaming (memory ~ non-zeros).

        One example per ``prompt_id`` (``level="prompt"``): rows of the same prompt with a
        ``token_index`` are token positions, the example's activation is each feature's maximum
        over them (a feature missing from a token row counts as 0 there), and the position of
        that maximum goes into ``tokens``. With ``level="token"`` every token row is its own
        example, ``"<prompt_id>@<token_index>"``. Features are the union of feature ids in
        first-seen order; labels, layers and decoder signatures come from their first mention.

        Args:
            records: `ActivationRecord` objects, dicts, or a JSONL path (read streaming).
            sparse: ``True``/``False`` force the storage; ``"auto"`` picks dense above
                ``density_threshold``.
            level: ``"prompt"`` or ``"token"`` examples, as above.
            density_threshold: the density above which ``"auto"`` stores dense values.
            meta: provenance merged into the table's ``meta``.
            lenient: passed to the record parser for dict rows and paths.
            source_name: name for error messages when ``records`` is not a path.

        Returns:
            The table (``synthetic`` when any row is marked synthetic).

        Raises:
            RecordError: a row is malformed (file/row, line and field named).
            TableError: rows contradict each other (a prompt given twice, a split that changes).
        """
        from ._build import build_from_records

        return build_from_records(
            cls,
            records,
            sparse=sparse,
            level=level,
            density_threshold=density_threshold,
            meta=meta,
            lenient=lenient,
            source_name=source_name,
        )

    def to_records(
        self, *, top_k: int | None = None, include_decoder: bool = False
    ) -> Iterator[ActivationRecord]:
        """Stream the table back as activation records, one per example (round-trips with JSONL).

        Each record lists the example's non-zero features (or its ``top_k`` largest, ties in
        column order); token maxima travel as ``token_index``/``token`` on the feature entries,
        ``split`` and an ``extra`` JSON column as row extras, and ``synthetic: true`` is set on
        every row of a synthetic table.

        Args:
            top_k: keep only the k largest activations per example.
            include_decoder: add ``decoder_signature`` to entries of features that have one.
        """
        from ._build import iter_table_records

        return iter_table_records(self, top_k=top_k, include_decoder=include_decoder)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True) -> str:
        """Save to a folder (cfg.json, values.safetensors, parquet frames); no pickle.

        The folder is written beside the target and renamed into place, so a crash never leaves
        a half-written table. An existing table folder is replaced when ``overwrite``; a
        non-empty folder that is not a table is never touched.

        Returns:
            The folder path.
        """
        from ._io import save_table

        return save_table(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify: bool = True) -> FeatureTable:
        """Load a folder written by `save`, checking every file (and its sha256 when ``verify``).

        Raises:
            FileNotFoundError: the folder does not exist.
            TableError: a file is missing, corrupt, or does not match cfg.json (named).
        """
        from ._io import load_table

        return load_table(cls, path, verify=verify)

    # -- comparison and display ------------------------------------------------------------

    def equals(self, other: FeatureTable) -> bool:
        """Bit-exact equality of values, frames, tokens, decoders, meta and the synthetic flag."""
        if (
            not isinstance(other, FeatureTable)
            or self.shape != other.shape
            or self.is_sparse != other.is_sparse
        ):
            return False
        if self.is_sparse:
            a, b = self.values, other.values
            same = (
                np.array_equal(a.indptr, b.indptr)
                and np.array_equal(a.indices, b.indices)
                and np.array_equal(a.data.view(np.uint32), b.data.view(np.uint32))
            )
        else:
            same = np.array_equal(self.values.view(np.uint32), other.values.view(np.uint32))
        tokens_same = (self.tokens is None and other.tokens is None) or (
            self.tokens is not None and other.tokens is not None and self.tokens.equals(other.tokens)
        )
        return (
            same
            and tokens_same
            and self.examples.equals(other.examples)
            and self.features.equals(other.features)
            and self.decoder_vectors.keys() == other.decoder_vectors.keys()
            and all(np.array_equal(v, other.decoder_vectors[k]) for k, v in self.decoder_vectors.items())
            and self.meta == other.meta
            and self.synthetic == other.synthetic
        )

    def __repr__(self) -> str:
        kind = f"sparse, nnz={self.nnz} ({self.density:.2%})" if self.is_sparse else "dense"
        parts = [f"{self.n_examples} examples x {self.n_features} features", kind]
        if self.tokens is not None:
            parts.append(f"{len(self.tokens)} token maxima")
        if self.decoder_vectors:
            parts.append(f"{len(self.decoder_vectors)} decoder vectors")
        if self.synthetic:
            parts.append("synthetic")
        return f"FeatureTable({', '.join(parts)})"

    def summary(self) -> str:
        """A few lines describing the table: shape, storage, scores, splits, models, sources."""
        scores = self.examples["criterion_score"].to_numpy()
        known = scores[~np.isnan(scores)]
        splits = self.examples["split"].value_counts(dropna=False)
        split_txt = ", ".join(
            f"{'none' if k is None or (isinstance(k, float) and math.isnan(k)) else k}={v}"
            for k, v in splits.items()
        )
        models = sorted({m for m in self.features["model"] if m is not None})
        sources = sorted(set(self.features["source"]))
        score_txt = (
            f"{len(known)}/{self.n_examples} scored, range [{known.min():.3g}, {known.max():.3g}]"
            if len(known)
            else f"0/{self.n_examples} scored"
        )
        lines = [
            repr(self),
            f"  criterion scores: {score_txt}",
            f"  splits: {split_txt or 'none'}",
            f"  models: {', '.join(models) or 'unknown'}; sources: {', '.join(sources)}",
            f"  labelled features: {int(self.features['label'].notna().sum())}/{self.n_features}",
        ]
        return "\n".join(lines)


def _inverse(sel: np.ndarray | None, n: int) -> np.ndarray:
    if sel is None:
        return np.arange(n, dtype=np.int64)
    inv = np.full(n, -1, dtype=np.int64)
    inv[sel] = np.arange(len(sel), dtype=np.int64)
    return inv
