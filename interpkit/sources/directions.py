"""Directions as features: project a site's activations onto any stack of vectors.

A `DirectionSet` is ``n`` named vectors ``[n, d_model]`` read at one site: contrast directions
(DiffMean: mean activation of positive examples minus that of negatives), linear-probe weights,
SAE decoder rows, PCA components. `direction_table` streams a dataset, projects every kept token
onto each direction (``a_t @ v``) and pools the projections, so ``max`` pooling is
``max_t (a_t @ v)`` rather than the projection of a max-pooled vector. Directions are used as
given: normalise them (``contrast_direction(..., normalize=True)``) if activations should compare
across directions. A probe's bias is a constant shift per direction and does not change rankings,
so it is kept in ``metadata`` only.

Example:
    >>> import numpy as np
    >>> acts = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> contrast_direction(acts, [1, 1, 0], normalize=False).tolist()
    [2.0, -1.0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interpkit._constants import CFG_NAME, SCHEMA_VERSION
from interpkit._io import atomic_temp_path, atomic_write_text

from ._stream import ActivationSet, resolve_sites
from .neurons import Rows, load_rows, pooled_table

if TYPE_CHECKING:
    from interpkit.table import FeatureTable

    from ._cache import ActivationCache

__all__ = ["DIRECTION_KINDS", "DirectionSet", "contrast_direction", "direction_table"]

DIRECTION_KINDS = ("contrast", "probe", "sae", "pca", "reft", "other")
"""Where a direction set came from; recorded in the table's ``direction_kind`` feature column."""
_VECTORS_NAME = "directions.safetensors"
_KIND = "direction_set"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class DirectionSet:
    """Named direction vectors read at one site."""

    names: tuple[str, ...]
    """One unique, non-empty name per direction; they become the table's feature ids."""
    vectors: np.ndarray
    """float32 ``[n, d_model]``, aligned with ``names``."""
    site: str
    """The site whose activations the directions apply to."""
    kind: str = "other"
    """One of `DIRECTION_KINDS`."""
    model: str | None = None
    """Name of the model the directions were found in, when known."""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    """JSON-ready extra information (probe biases, training settings, ...)."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        names = tuple(self.names) if not isinstance(self.names, str) else (self.names,)
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[0] != len(names) or vectors.shape[1] == 0:
            raise ValueError(f"vectors must be [n_names={len(names)}, d_model], got shape {vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("direction vectors must be finite")
        if any(not isinstance(n, str) or not n.strip() for n in names) or len(set(names)) != len(names):
            raise ValueError(f"names must be unique non-empty strings, got {names!r}")
        if self.kind not in DIRECTION_KINDS:
            raise ValueError(f"kind must be one of {DIRECTION_KINDS}, got {self.kind!r}")
        json.dumps(dict(self.metadata))
        vectors = np.ascontiguousarray(vectors)
        vectors.flags.writeable = False
        s(self, "names", names)
        s(self, "vectors", vectors)
        s(self, "metadata", dict(self.metadata))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def d_model(self) -> int:
        """Width of each vector."""
        return int(self.vectors.shape[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (vectors as nested lists)."""
        return {
            "kind": _KIND,
            "schema_version": SCHEMA_VERSION,
            "names": list(self.names),
            "vectors": self.vectors.tolist(),
            "site": self.site,
            "direction_kind": self.kind,
            "model": self.model,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DirectionSet:
        """Inverse of `to_dict` (strict: unknown keys raise).

        Raises:
            ValueError: unknown or missing keys, or malformed values.
        """
        known = {"kind", "schema_version", "names", "vectors", "site", "direction_kind", "model", "metadata"}
        unknown = set(d) - known
        if unknown or d.get("kind") != _KIND:
            raise ValueError(f"not a direction set (kind={d.get('kind')!r}, unknown keys {sorted(unknown)})")
        return cls(
            names=tuple(d["names"]),
            vectors=np.asarray(d["vectors"], dtype=np.float32),
            site=d["site"],
            kind=d.get("direction_kind", "other"),
            model=d.get("model"),
            metadata=d.get("metadata") or {},
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``cfg.json`` and ``directions.safetensors`` into the folder ``path``."""
        from safetensors.numpy import save_file

        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_temp_path(folder / _VECTORS_NAME) as tmp:
            save_file({"vectors": np.ascontiguousarray(self.vectors)}, str(tmp))
        cfg = {k: v for k, v in self.to_dict().items() if k != "vectors"}
        atomic_write_text(folder / CFG_NAME, json.dumps(cfg, indent=2))
        return folder

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DirectionSet:
        """Read a folder written by `save`.

        Raises:
            FileNotFoundError: a file is missing (the message names it).
        """
        from safetensors.numpy import load_file

        folder = Path(path)
        for name in (CFG_NAME, _VECTORS_NAME):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing; not a saved DirectionSet")
        cfg = json.loads((folder / CFG_NAME).read_text(encoding="utf-8"))
        cfg["vectors"] = load_file(str(folder / _VECTORS_NAME))["vectors"]
        return cls.from_dict(cfg)


def contrast_direction(
    acts: Any, labels: Sequence[Any] | np.ndarray, *, normalize: bool = True
) -> np.ndarray:
    """DiffMean: mean of the positive rows minus mean of the negative rows.

    Args:
        acts: ``[n_examples, d_model]`` pooled activations (array, tensor or pooled `ActivationSet`).
        labels: one truthy (positive) or falsy (negative) label per row.
        normalize: scale the result to unit L2 norm (a zero difference stays zero).

    Returns:
        float32 ``[d_model]``.

    Raises:
        ValueError: shapes disagree, or a class has no rows.
    """
    if isinstance(acts, ActivationSet):
        acts = acts.to_numpy()
    elif hasattr(acts, "detach"):
        acts = acts.detach().cpu().numpy()
    x = np.asarray(acts, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"acts must be [n, d] and labels [n]; got {x.shape} and {np.shape(labels)}")
    if y.all() or not y.any():
        raise ValueError("contrast_direction needs at least one positive and one negative row")
    # Class means, not sums, so the direction does not lean towards the larger class; float64 accumulation.
    # Under equal-covariance Gaussian classes this is the LDA direction with the covariance taken as identity.
    v = x[y].mean(axis=0) - x[~y].mean(axis=0)
    if normalize:
        norm = np.linalg.norm(v)
        v = v / norm if norm > 0 else v
    return v.astype(np.float32)


def direction_table(
    model: Any,
    rows: Rows,
    directions: DirectionSet,
    *,
    pooling: str = "max",
    top_tokens: int = 8,
    batch_size: int = 8,
    max_length: int | None = 128,
    exclude_positions: str | Sequence[str] = ("bos",),
    chat_template: bool = False,
    cache: ActivationCache | None = None,
    progress: bool = True,
    memory_budget_mb: float = 512.0,
) -> FeatureTable:
    """A FeatureTable of projections onto each direction of ``directions``.

    Args:
        model: an interpkit ``ModelWrapper``.
        rows: prompt rows, dicts, bare texts, or a ``Path`` to a prompt-dataset JSONL file.
        directions: the vectors and their site.
        pooling: ``"max"``, ``"mean"`` or ``"last"`` of the per-token projections.
        top_tokens: with ``max`` pooling, token maxima kept per example (its most active directions).
        batch_size: texts per forward pass.
        max_length: truncation length in tokens.
        exclude_positions: see `stream_activations`.
        chat_template: wrap texts in the tokenizer's chat template.
        cache: an `ActivationCache` (the key includes a hash of the vectors).
        progress: show a progress bar.
        memory_budget_mb: streaming budget before spilling to shards.

    Returns:
        ``[n_examples, n_directions]`` table; feature ids are the direction names,
        ``source="direction"``, a ``direction_kind`` column, and ``decoder_vectors`` = the directions.

    Raises:
        ValueError: the vectors' width differs from the model's ``d_model``.
    """
    sites = resolve_sites(model, directions.site)
    if len(sites) != 1:
        raise ValueError(f"a direction set reads one site; {directions.site!r} matches {sites}")
    site = sites[0]
    d_model = getattr(model, "d_model", directions.d_model)
    if directions.d_model != d_model:
        raise ValueError(f"directions have width {directions.d_model}, but {site} has d_model {d_model}")
    return pooled_table(
        model,
        load_rows(rows),
        site,
        feature_ids=directions.names,
        # [d_model, n_directions]: each token row a_t [d_model] times it gives the projections a_t·v_j; pooling
        # happens after projecting (max of projections, not projection of a max).
        projection=directions.vectors.T.copy(),
        pooling=pooling,
        source="direction",
        feature_extra={"direction_kind": [directions.kind] * len(directions)},
        decoder_vectors=dict(zip(directions.names, directions.vectors, strict=True)),
        meta_extra={"direction_kind": directions.kind, "directions_model": directions.model},
        top_tokens=top_tokens,
        batch_size=batch_size,
        max_length=max_length,
        exclude_positions=exclude_positions,
        chat_template=chat_template,
        cache=cache,
        progress=progress,
        memory_budget_mb=memory_budget_mb,
    )
