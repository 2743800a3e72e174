"""Canonical column types of the FeatureTable's metadata frames.

Frames are normalised on construction and again after loading, so a table that went through
parquet compares equal to the one that was saved: string columns are ``object`` with ``None`` for
missing (stable across pandas 2 and 3), ``layer`` is nullable ``Int64``, scores are ``float64``.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import numpy as np
import pandas as pd

EXAMPLE_COLUMNS = ("example_id", "text", "criterion_score", "split")
FEATURE_COLUMNS = ("feature_id", "model", "site", "layer", "label", "source", "has_decoder")
TOKEN_COLUMNS = ("example_idx", "feature_idx", "token_index", "token", "activation")


def scipy_sparse() -> Any:
    """``scipy.sparse``, imported on first use (it costs about 0.2 s)."""
    import scipy.sparse

    return scipy.sparse


def is_sparse(x: Any) -> bool:
    """True for any scipy sparse matrix or array (without importing scipy when nothing could be one)."""
    mod = sys.modules.get("scipy.sparse")
    return mod is not None and bool(mod.issparse(x))


class TableError(ValueError):
    """A FeatureTable's parts do not fit together, or a saved table folder is missing or corrupt."""


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def str_column(values: Any, name: str, *, allow_none: bool = True, ids: bool = False) -> pd.Series:
    """An ``object`` column of ``str`` (``None`` for missing when ``allow_none``).

    With ``ids``, integers are accepted and turned into their decimal string.
    """
    out = []
    for i, v in enumerate(values):
        if isinstance(v, str):
            out.append(v)
        elif _missing(v):
            if not allow_none:
                raise TableError(f"column '{name}': row {i} is missing; every row needs a value")
            out.append(None)
        elif ids and isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            out.append(str(int(v)))
        else:
            raise TableError(
                f"column '{name}': row {i} is {v!r}; expected a string{' or None' if allow_none else ''}"
            )
    return pd.Series(out, dtype=object, name=name)


def _integral(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return math.isfinite(v) and float(v) == int(v)


def int_column(values: Any, name: str) -> pd.Series:
    """A nullable ``Int64`` column; integral floats are accepted, fractions refused."""
    out: list[Any] = []
    for i, v in enumerate(values):
        if _missing(v):
            out.append(pd.NA)
        elif _integral(v):
            out.append(int(v))
        else:
            raise TableError(f"column '{name}': row {i} is {v!r}; expected an integer or None")
    return pd.Series(pd.array(out, dtype="Int64"), name=name)


def _unique(col: pd.Series, name: str) -> None:
    dup = col[col.duplicated()]
    if len(dup):
        raise TableError(f"column '{name}' must be unique; {dup.iloc[0]!r} appears more than once")


def _passthrough(df: pd.DataFrame, known: tuple[str, ...]) -> dict[str, pd.Series]:
    out = {}
    for col in df.columns:
        if col in known:
            continue
        if not isinstance(col, str):
            raise TableError(f"column names must be strings, got {col!r}")
        series = df[col].reset_index(drop=True)
        if pd.api.types.is_string_dtype(series.dtype) and series.dtype != object:
            series = str_column(series, col)
        out[col] = series
    return out


def _checked_frame(df: pd.DataFrame | None, n: int, what: str, id_col: str, axis: str) -> tuple[pd.DataFrame, pd.Series]:
    """``df`` (default ids ``"0".."n-1"`` when None) checked as the ``what`` frame of ``n`` entries, and its ids."""
    if df is None:
        df = pd.DataFrame({id_col: [str(i) for i in range(n)]})
    if not isinstance(df, pd.DataFrame):
        raise TableError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    if len(df) != n:
        raise TableError(f"{what} has {len(df)} rows but values has {n} {axis}")
    if id_col not in df.columns:
        raise TableError(f"{what} needs an '{id_col}' column" if id_col[0] in "aeiou" else f"{what} needs a '{id_col}' column")
    ids = str_column(df[id_col], id_col, allow_none=False, ids=True)
    _unique(ids, id_col)
    return df, ids


def normalize_examples(df: pd.DataFrame | None, n: int) -> pd.DataFrame:
    """The examples frame with canonical columns and types; ``None`` gives ids ``"0".."n-1"``."""
    df, ids = _checked_frame(df, n, "examples", "example_id", "rows (one per example)")
    text = str_column(df["text"], "text") if "text" in df.columns else pd.Series([""] * n, dtype=object)
    text = text.where(text.notna(), "").astype(object)
    if "criterion_score" in df.columns:
        try:
            score = pd.to_numeric(df["criterion_score"].reset_index(drop=True), errors="raise")
        except (TypeError, ValueError) as err:
            raise TableError(f"column 'criterion_score' must be numeric (NaN when unknown): {err}") from None
        score = pd.Series(score.to_numpy(dtype="float64", na_value=np.nan))
    else:
        score = pd.Series(np.full(n, np.nan), dtype="float64")
    split = str_column(df["split"], "split") if "split" in df.columns else pd.Series([None] * n, dtype=object)
    out = {"example_id": ids, "text": text, "criterion_score": score, "split": split}
    out.update(_passthrough(df, EXAMPLE_COLUMNS))
    return pd.DataFrame({k: v.reset_index(drop=True) for k, v in out.items()})


def normalize_features(df: pd.DataFrame | None, n: int, has_decoder: np.ndarray) -> pd.DataFrame:
    """The features frame with canonical columns; ``has_decoder`` is always recomputed."""
    df, ids = _checked_frame(df, n, "features", "feature_id", "columns (one per feature)")
    out: dict[str, pd.Series] = {"feature_id": ids}
    for col in ("model", "site", "label"):
        out[col] = str_column(df[col], col) if col in df.columns else pd.Series([None] * n, dtype=object)
    out["layer"] = (
        int_column(df["layer"], "layer") if "layer" in df.columns else int_column([None] * n, "layer")
    )
    source = (
        str_column(df["source"], "source") if "source" in df.columns else pd.Series([None] * n, dtype=object)
    )
    out["source"] = source.where(source.notna(), "unknown").astype(object)
    out["has_decoder"] = pd.Series(np.asarray(has_decoder, dtype=bool))
    out.update(_passthrough(df, FEATURE_COLUMNS))
    return pd.DataFrame({k: v.reset_index(drop=True) for k, v in out.items()})


def normalize_tokens(df: pd.DataFrame | None, shape: tuple[int, int]) -> pd.DataFrame | None:
    """The long-form token-maxima frame with exact dtypes, index ranges checked."""
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise TableError(f"tokens must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in TOKEN_COLUMNS if c not in df.columns]
    if missing:
        raise TableError(f"tokens is missing column(s) {missing}; expected {list(TOKEN_COLUMNS)}")
    out: dict[str, Any] = {}
    for col, limit in (("example_idx", shape[0]), ("feature_idx", shape[1]), ("token_index", None)):
        arr = df[col].to_numpy()
        if len(arr) and not np.issubdtype(arr.dtype, np.integer):
            raise TableError(f"tokens column '{col}' must hold integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False)
        if len(arr) and (arr.min() < 0 or (limit is not None and arr.max() >= limit)):
            bound = f"[0, {limit})" if limit is not None else ">= 0"
            raise TableError(f"tokens column '{col}' has values outside {bound}")
        out[col] = arr
    out["token"] = str_column(df["token"], "token")
    act = df["activation"].to_numpy(dtype=np.float32)
    if not np.isfinite(act).all():
        raise TableError("tokens column 'activation' must be finite")
    out["activation"] = act
    extra = {c: df[c].reset_index(drop=True) for c in df.columns if c not in TOKEN_COLUMNS}
    frame = pd.DataFrame({k: pd.Series(v) if isinstance(v, np.ndarray) else v for k, v in out.items()})
    for c, s in extra.items():
        frame[c] = s
    return frame
