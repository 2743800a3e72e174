"""What a report entry shows of one feature, read from a FeatureTable and intervention records.

The one home of these readings (``FeatureEntry.from_table`` uses them): feature metadata cells as
plain values, the ranking table's highest-activating examples, and intervention records summed up
per feature and intervention kind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np


def meta_value(row: Any, name: str) -> Any:
    """A feature-metadata cell as a plain Python value; None for a missing column, NaN or pandas NA."""
    import pandas as pd

    v = row.get(name)
    if v is None or (np.ndim(v) == 0 and pd.isna(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def top_examples(table: Any, j: int, n: int) -> tuple[dict[str, Any], ...]:
    """The ``n`` examples on which feature column ``j`` is highest (only the first when none is positive)."""
    col = np.asarray(table.column(j), dtype=np.float64)
    order = np.argsort(-col, kind="stable")[:n]
    ex = table.examples
    out = []
    for i in order:
        if col[i] <= 0 and out:
            break
        row = ex.iloc[int(i)]
        split = row.get("split") if "split" in ex.columns else None
        out.append(
            {
                "example_id": str(row["example_id"]),
                "text": str(row["text"]),
                "activation": float(col[i]),
                "criterion_score": None if np.isnan(row["criterion_score"]) else float(row["criterion_score"]),
                "split": None if split is None or (isinstance(split, float) and np.isnan(split)) else str(split),
            }
        )
    return tuple(out)


def causal_summary(interventions: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    """Per feature id, one row per intervention kind: count, mean signed effect, mean side effect."""
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for rec in interventions:
        groups[(str(rec.feature_id), rec.intervention)].append(rec)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (fid, kind), recs in sorted(groups.items()):
        sides = [r.side_effect_score for r in recs if r.side_effect_score is not None]
        out[fid].append(
            {
                "intervention": kind,
                "n": len(recs),
                "mean_signed_effect": float(np.mean([r.signed_effect for r in recs])),
                "mean_side_effect": float(np.mean(sides)) if sides else None,
            }
        )
    return out
