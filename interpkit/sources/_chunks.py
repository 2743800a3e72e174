"""Activation chunks and sets: rows of one (site, pooling) in memory or in shards on disk.

An `ActivationSet` holds `ActivationChunk` blocks in memory until `ActivationSet.spill` writes
them to one parquet shard in its spill folder; it reads back shard by shard with
`ActivationSet.iter_chunks`. `write_chunk` / `read_chunk` are the shard I/O (the activation
cache stores its entries with them too).

Shard layout (one parquet file per spill per set): ``example_idx`` int64, ``values``
``fixed_size_list<float32>[d]``, and when present ``token_index`` int32 (token mode; position of
the last kept token for ``last``), ``token`` string (token mode) and ``argmax``
``fixed_size_list<int32>[d]`` (``max`` with ``keep_argmax``). Parquet rather than safetensors
because token rows carry strings and because pandas, duckdb and training loaders read it directly.

Example:
    >>> import numpy as np
    >>> aset = ActivationSet(site="layer1.resid_post", pooling="mean", d=2)
    >>> aset.append(ActivationChunk(example_idx=np.arange(3), values=np.ones((3, 2), np.float32)))
    >>> shard = aset.spill()
    >>> shard.name, aset.n_rows, aset.to_numpy().shape
    ('layer1.resid_post.mean.00000.parquet', 3, (3, 2))
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._io import atomic_temp_path

__all__ = ["ActivationChunk", "ActivationSet", "read_chunk", "write_chunk"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ActivationChunk:
    """A block of rows of an `ActivationSet` (one row per example, or per token in token mode)."""

    example_idx: np.ndarray
    """int64 ``[rows]``: the dataset index of each row's example."""
    values: np.ndarray
    """float32 ``[rows, d]``: the pooled (or per-token) activations."""
    token_index: np.ndarray | None = None
    """int32 ``[rows]``: token position in the tokenised sequence (token mode; ``last`` pooling)."""
    tokens: tuple[str, ...] | None = None
    """Decoded token strings (token mode only)."""
    argmax: np.ndarray | None = None
    """int32 ``[rows, d]``: position of each dimension's maximum (``max`` with ``keep_argmax``)."""

    @property
    def nbytes(self) -> int:
        """Bytes held by the arrays (token strings counted at their UTF-8 length)."""
        n = self.example_idx.nbytes + self.values.nbytes
        n += 0 if self.token_index is None else self.token_index.nbytes
        n += 0 if self.argmax is None else self.argmax.nbytes
        n += 0 if self.tokens is None else sum(len(t.encode()) + 8 for t in self.tokens)
        return n

    def __len__(self) -> int:
        return int(self.example_idx.shape[0])


def _concat(chunks: Sequence[ActivationChunk]) -> ActivationChunk:
    def cat(name: str) -> np.ndarray | None:
        parts = [getattr(c, name) for c in chunks]
        return None if parts[0] is None else np.concatenate(parts)

    tokens = (
        None if chunks[0].tokens is None else tuple(itertools.chain.from_iterable(c.tokens for c in chunks))
    )
    return ActivationChunk(
        example_idx=cat("example_idx"),
        values=cat("values"),
        token_index=cat("token_index"),
        tokens=tokens,
        argmax=cat("argmax"),
    )


def _take(chunk: ActivationChunk, order: np.ndarray) -> ActivationChunk:
    return ActivationChunk(
        example_idx=chunk.example_idx[order],
        values=chunk.values[order],
        token_index=None if chunk.token_index is None else chunk.token_index[order],
        tokens=None if chunk.tokens is None else tuple(chunk.tokens[i] for i in order),
        argmax=None if chunk.argmax is None else chunk.argmax[order],
    )


def write_chunk(path: Path, chunk: ActivationChunk) -> Path:
    """Write a chunk atomically as ``.parquet`` or ``.safetensors`` (chosen by the suffix)."""
    with atomic_temp_path(path) as tmp:
        if path.suffix == ".safetensors":
            from safetensors.numpy import save_file

            if chunk.tokens is not None:
                raise ValueError("token strings cannot be stored in safetensors; use a .parquet shard")
            arrays = {"example_idx": chunk.example_idx, "values": chunk.values}
            for name in ("token_index", "argmax"):
                if getattr(chunk, name) is not None:
                    arrays[name] = getattr(chunk, name)
            save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            def fixed(arr: np.ndarray) -> Any:
                return pa.FixedSizeListArray.from_arrays(pa.array(arr.reshape(-1)), arr.shape[1])

            cols: dict[str, Any] = {"example_idx": pa.array(chunk.example_idx), "values": fixed(chunk.values)}
            if chunk.token_index is not None:
                cols["token_index"] = pa.array(chunk.token_index)
            if chunk.tokens is not None:
                cols["token"] = pa.array(list(chunk.tokens), type=pa.string())
            if chunk.argmax is not None:
                cols["argmax"] = fixed(chunk.argmax)
            pq.write_table(pa.table(cols), str(tmp))
    return path


def read_chunk(path: Path, d: int) -> ActivationChunk:
    """Read a chunk written by `write_chunk`."""
    if path.suffix == ".safetensors":
        from safetensors.numpy import load_file

        arrays = load_file(str(path))
        return ActivationChunk(
            example_idx=arrays["example_idx"],
            values=arrays["values"],
            token_index=arrays.get("token_index"),
            argmax=arrays.get("argmax"),
        )
    import pyarrow.parquet as pq

    table = pq.read_table(str(path))
    names = set(table.column_names)

    def fixed(name: str, dtype: Any) -> np.ndarray:
        flat = table[name].combine_chunks().flatten().to_numpy(zero_copy_only=False)
        return np.ascontiguousarray(flat, dtype=dtype).reshape(-1, d)

    return ActivationChunk(
        example_idx=table["example_idx"].to_numpy().astype(np.int64),
        values=fixed("values", np.float32),
        token_index=table["token_index"].to_numpy().astype(np.int32) if "token_index" in names else None,
        tokens=tuple(table["token"].to_pylist()) if "token" in names else None,
        argmax=fixed("argmax", np.int32) if "argmax" in names else None,
    )


class ActivationSet:
    """The activations of one site under one pooling, held in memory or in shards on disk.

    Rows come back in dataset order (token mode: by example, then by position). `iter_chunks`
    never holds more than one shard; `to_numpy` materialises everything and refuses sets larger
    than ``max_bytes``.

    Attributes:
        site: the site name.
        pooling: ``"max"``, ``"mean"``, ``"last"`` or ``"tokens"``.
        d: width of each row (``d_model``, or the number of projection columns).
        n_examples: number of examples streamed.
        shards: paths of the spilled (or cached) shards, in order.
    """

    def __init__(self, *, site: str, pooling: str, d: int, spill_dir: Path | None = None):
        self.site = site
        self.pooling = pooling
        self.d = d
        self.n_examples = 0
        self._parts: list[ActivationChunk | Path] = []
        self._spill_dir = spill_dir
        self._keepalive: Any = None  # a TemporaryDirectory owning the shards, removed with the set

    @property
    def shards(self) -> tuple[Path, ...]:
        """Paths of the shards written so far."""
        return tuple(p for p in self._parts if isinstance(p, Path))

    @property
    def bytes_in_memory(self) -> int:
        """Bytes of the chunks not yet spilled."""
        return sum(p.nbytes for p in self._parts if isinstance(p, ActivationChunk))

    @property
    def n_rows(self) -> int:
        """Rows over all chunks (reads shard metadata only for parquet)."""
        total = 0
        for part in self._parts:
            if isinstance(part, ActivationChunk):
                total += len(part)
            elif part.suffix == ".parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(str(part)).metadata.num_rows
            else:
                total += len(read_chunk(part, self.d))
        return total

    def append(self, chunk: ActivationChunk) -> None:
        """Add a chunk (kept in memory until `spill`)."""
        if chunk.values.ndim != 2 or chunk.values.shape[1] != self.d:
            raise ValueError(f"chunk of shape {chunk.values.shape} for a set of width {self.d}")
        self._parts.append(chunk)

    def add_shard(self, path: Path) -> None:
        """Register an existing shard file as the next part of the set."""
        self._parts.append(Path(path))

    def spill(self) -> Path | None:
        """Write the in-memory chunks to one parquet shard and drop them; returns the shard path."""
        held = [p for p in self._parts if isinstance(p, ActivationChunk)]
        if not held:
            return None
        if self._spill_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="interpkit-spill-")
            self._keepalive, self._spill_dir = tmp, Path(tmp.name)
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.site)
        path = self._spill_dir / f"{safe}.{self.pooling}.{len(self.shards):05d}.parquet"
        write_chunk(path, _concat(held))
        first = next(i for i, p in enumerate(self._parts) if isinstance(p, ActivationChunk))
        self._parts = [p for p in self._parts if not isinstance(p, ActivationChunk)]
        self._parts.insert(first, path)
        return path

    def iter_chunks(self) -> Iterator[ActivationChunk]:
        """Yield the chunks in order, reading one shard at a time."""
        for part in self._parts:
            yield part if isinstance(part, ActivationChunk) else read_chunk(part, self.d)

    def to_chunk(self, *, max_bytes: int | None = 2**31) -> ActivationChunk:
        """All rows as one chunk (see `to_numpy` for ``max_bytes``)."""
        need = self.n_rows * self.d * 4
        if max_bytes is not None and need > max_bytes:
            raise MemoryError(
                f"{self.site} ({self.pooling}) holds {need / 2**20:.0f} MiB of values, over "
                f"max_bytes={max_bytes}; read it with iter_chunks() instead"
            )
        chunks = list(self.iter_chunks())
        if not chunks:
            return ActivationChunk(
                example_idx=np.zeros(0, np.int64), values=np.zeros((0, self.d), np.float32)
            )
        return _concat(chunks)

    def to_numpy(self, *, max_bytes: int | None = 2**31) -> np.ndarray:
        """The values as one float32 array: ``[n_examples, d]`` pooled, ``[n_tokens, d]`` per token.

        Args:
            max_bytes: refuse (MemoryError) when the values would take more; None for no limit.
        """
        return self.to_chunk(max_bytes=max_bytes).values

    def __repr__(self) -> str:
        return (
            f"ActivationSet(site={self.site!r}, pooling={self.pooling!r}, d={self.d}, "
            f"n_examples={self.n_examples}, shards={len(self.shards)})"
        )
