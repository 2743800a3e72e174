"""Saving and loading a FeatureTable as a folder of cfg.json, safetensors and parquet (no pickle).

Layout::

    cfg.json            kind="feature_table", schema_version, interpkit_version, shape, sparse,
                        nnz, meta, synthetic, and the sha256 of every other file
    values.safetensors  dense "values" [example, feature], or CSR "data"/"indices"/"indptr";
                        decoder vectors grouped by width: "decoder.d<width>" [k, width] with
                        "decoder.d<width>.index" (the feature rows they belong to)
    examples.parquet    features.parquet    tokens.parquet (when there are token maxima)

The folder is built under a temporary name beside the target and renamed into place; cfg.json is
written last, so a folder without it is an interrupted save and never loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .._constants import (
    CFG_NAME,
    SCHEMA_VERSION,
    TABLE_EXAMPLES_NAME,
    TABLE_FEATURES_NAME,
    TABLE_TOKENS_NAME,
    TABLE_VALUES_NAME,
)
from .._io import atomic_dir, atomic_write_text, sha256_file
from .._version import __version__
from ._frames import TableError, scipy_sparse

if TYPE_CHECKING:
    from ._table import FeatureTable

KIND = "feature_table"


def _tensors(table: FeatureTable) -> dict[str, np.ndarray]:
    if table.is_sparse:
        v = table.values
        out = {"data": v.data, "indices": v.indices, "indptr": v.indptr}
    else:
        out = {"values": table.values}
    by_width: dict[int, list[int]] = {}
    for j, fid in enumerate(table.features["feature_id"]):
        vec = table.decoder_vectors.get(fid)
        if vec is not None:
            by_width.setdefault(vec.shape[0], []).append(j)
    ids = table.features["feature_id"]
    for width, rows in by_width.items():
        out[f"decoder.d{width}"] = np.stack([table.decoder_vectors[ids.iat[j]] for j in rows])
        out[f"decoder.d{width}.index"] = np.asarray(rows, dtype=np.int64)
    return {k: np.ascontiguousarray(a) for k, a in out.items()}


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    try:
        df.to_parquet(path, index=False, engine="pyarrow")
    except Exception as err:  # pyarrow raises several types for unstorable columns
        raise TableError(
            f"{path.name}: cannot store the frame as parquet ({err}); make each column one type"
        ) from err


def _is_table_dir(path: Path) -> bool:
    try:
        return json.loads((path / CFG_NAME).read_text(encoding="utf-8")).get("kind") == KIND
    except (OSError, ValueError, AttributeError):
        return False


def save_table(table: FeatureTable, path: str | os.PathLike[str], *, overwrite: bool) -> str:
    """Implementation of `FeatureTable.save` (see there)."""
    from safetensors.numpy import save_file

    final = Path(path)
    if final.exists():
        if not final.is_dir():
            raise FileExistsError(f"{final}: exists and is not a folder")
        if any(final.iterdir()):
            if not _is_table_dir(final):
                raise FileExistsError(
                    f"{final}: a non-empty folder that is not a FeatureTable; refusing to replace it"
                )
            if not overwrite:
                raise FileExistsError(f"{final}: a FeatureTable is already saved here (pass overwrite=True)")
    with atomic_dir(final) as tmp:
        save_file(_tensors(table), str(tmp / TABLE_VALUES_NAME), metadata={"format": f"interpkit.{KIND}"})
        _write_parquet(table.examples, tmp / TABLE_EXAMPLES_NAME)
        _write_parquet(table.features, tmp / TABLE_FEATURES_NAME)
        names = [TABLE_VALUES_NAME, TABLE_EXAMPLES_NAME, TABLE_FEATURES_NAME]
        if table.tokens is not None:
            _write_parquet(table.tokens, tmp / TABLE_TOKENS_NAME)
            names.append(TABLE_TOKENS_NAME)
        cfg = {
            "kind": KIND,
            "schema_version": SCHEMA_VERSION,
            "interpkit_version": __version__,
            "shape": list(table.shape),
            "sparse": table.is_sparse,
            "nnz": table.nnz,
            "dtype": "float32",
            "n_decoder_vectors": len(table.decoder_vectors),
            "synthetic": table.synthetic,
            "meta": table.meta,
            "files": {n: {"sha256": sha256_file(tmp / n), "bytes": (tmp / n).stat().st_size} for n in names},
        }
        atomic_write_text(tmp / CFG_NAME, json.dumps(cfg, indent=2, allow_nan=False) + "\n")
    return str(final)


def _read_cfg(folder: Path) -> dict[str, Any]:
    cfg_path = folder / CFG_NAME
    if not cfg_path.is_file():
        raise TableError(
            f"{cfg_path}: missing; {folder} is not a saved FeatureTable (or its save was interrupted)"
        )
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise TableError(f"{cfg_path}: not valid JSON ({err})") from None
    if not isinstance(cfg, dict) or cfg.get("kind") != KIND:
        got = cfg.get("kind") if isinstance(cfg, dict) else type(cfg).__name__
        raise TableError(f"{cfg_path}: kind is {got!r}, expected {KIND!r}")
    version = cfg.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise TableError(
            f"{cfg_path}: schema_version {version!r} is not readable by this interpkit (<= {SCHEMA_VERSION})"
        )
    for key, typ in (("shape", list), ("sparse", bool), ("files", dict), ("meta", dict), ("synthetic", bool)):
        if not isinstance(cfg.get(key), typ):
            raise TableError(f"{cfg_path}: field '{key}' missing or not a {typ.__name__}")
    shape = cfg["shape"]
    if len(shape) != 2 or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise TableError(f"{cfg_path}: field 'shape' must be two non-negative integers, got {shape!r}")
    return cfg


def _check_files(folder: Path, cfg: dict[str, Any], verify: bool) -> None:
    required = {TABLE_VALUES_NAME, TABLE_EXAMPLES_NAME, TABLE_FEATURES_NAME}
    missing_entries = required - cfg["files"].keys()
    if missing_entries:
        raise TableError(f"{folder / CFG_NAME}: lists no {sorted(missing_entries)}")
    for name, info in cfg["files"].items():
        if name not in required | {TABLE_TOKENS_NAME} or not isinstance(info, dict):
            raise TableError(f"{folder / CFG_NAME}: unexpected files entry {name!r}")
        path = folder / name
        if not path.is_file():
            raise TableError(f"{path}: missing (listed in {CFG_NAME})")
        if verify and sha256_file(path) != info.get("sha256"):
            raise TableError(f"{path}: corrupt (its sha256 differs from the one recorded in {CFG_NAME})")


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except Exception as err:  # pyarrow raises ArrowInvalid, OSError, ...
        raise TableError(f"{path}: cannot be read as parquet ({err})") from None


def _read_values(path: Path, cfg: dict[str, Any]) -> tuple[Any, dict[int, np.ndarray]]:
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises SafetensorError, OSError, ...
        raise TableError(f"{path}: cannot be read as safetensors ({err})") from None
    shape = tuple(cfg["shape"])
    try:
        if cfg["sparse"]:
            values: Any = scipy_sparse().csr_array(
                (tensors["data"], tensors["indices"], tensors["indptr"]), shape=shape
            )
            values.check_format(full_check=True)
        else:
            values = tensors["values"]
            if values.shape != shape:
                raise ValueError(f"values has shape {values.shape}, cfg.json says {list(shape)}")
    except KeyError as err:
        raise TableError(f"{path}: tensor {err.args[0]!r} missing") from None
    except ValueError as err:
        raise TableError(f"{path}: inconsistent values ({err})") from None
    decoders: dict[int, np.ndarray] = {}
    for key, mat in tensors.items():
        if key.startswith("decoder.d") and not key.endswith(".index"):
            index = tensors.get(f"{key}.index")
            if index is None or mat.ndim != 2 or len(index) != len(mat):
                raise TableError(f"{path}: decoder block {key!r} has no matching index")
            for row, vec in zip(index.tolist(), mat, strict=True):
                decoders[row] = vec
    return values, decoders


def load_table(cls: type[FeatureTable], path: str | os.PathLike[str], *, verify: bool) -> FeatureTable:
    """Implementation of `FeatureTable.load` (see there)."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"{folder}: no such FeatureTable folder")
    if not folder.is_dir():
        raise TableError(f"{folder}: not a folder (a saved FeatureTable is a folder with {CFG_NAME})")
    cfg = _read_cfg(folder)
    _check_files(folder, cfg, verify)
    values, decoder_rows = _read_values(folder / TABLE_VALUES_NAME, cfg)
    examples = _read_parquet(folder / TABLE_EXAMPLES_NAME)
    features = _read_parquet(folder / TABLE_FEATURES_NAME)
    tokens = _read_parquet(folder / TABLE_TOKENS_NAME) if TABLE_TOKENS_NAME in cfg["files"] else None
    ids = features["feature_id"].astype(str).tolist() if "feature_id" in features.columns else []
    bad_rows = [r for r in decoder_rows if r >= len(ids)]
    if bad_rows:
        raise TableError(
            f"{folder / TABLE_VALUES_NAME}: decoder rows {bad_rows[:5]} exceed the {len(ids)} features"
        )
    try:
        return cls(
            values,
            examples,
            features,
            decoder_vectors={ids[r]: v for r, v in decoder_rows.items()},
            tokens=tokens,
            meta=cfg["meta"],
            synthetic=cfg["synthetic"],
        )
    except TableError as err:
        raise TableError(f"{folder}: the saved parts do not fit together: {err}") from None
