"""The chart builders (see the package docstring). Each takes interpkit results and returns an altair chart."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ._bench import bench_roc, bench_steering

__all__ = ["activation_histogram", "match_heatmap", "ranking_bars", "roc_curves", "steering_curve"]

COMPONENT_ORDER = ("effect size", "specificity", "stability", "causal")
"""Bars of `ranking_bars`, in order: held-out ``|2 AUROC - 1|``, specificity, stability, causal value."""

MAX_HEATMAP_CELLS = 40_000
"""Cells `match_heatmap` draws from a dense matrix (vega-lite specs carry their data inline)."""


def _alt() -> Any:
    import altair as alt

    return alt


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _is_bench(source: Any) -> bool:
    return isinstance(source, Mapping) and (source.get("kind") == "interpkit.bench" or "methods" in source
                                            or "steering" in source)


def ranking_bars(result: Any, k: int = 20) -> Any:
    """The top ``k`` features' ranking components as grouped horizontal bars, best feature on top.

    Args:
        result: a `~interpkit.rank.RankingResult`.
        k: features shown.
    """
    alt = _alt()
    rows = []
    for r in result.top(k):
        label = f"#{r.rank} {r.feature_id}" + (f" · {r.label}" if r.label else "")
        values = {"effect size": r.association.effect_size, "specificity": r.specificity,
                  "stability": r.stability, "causal": r.causal.value}
        for comp in COMPONENT_ORDER:
            rows.append({"feature": label, "rank": r.rank, "component": comp, "value": _finite(values[comp]),
                         "tier": r.tier, "auroc": _finite(r.association.auroc_test),
                         "q": _finite(r.association.q_value)})
    order = list(dict.fromkeys(row["feature"] for row in rows))
    subtitle = ["SYNTHETIC DATA"] if result.synthetic else []
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        y=alt.Y("feature:N", sort=order, title=None),
        x=alt.X("value:Q", title="component value"),
        yOffset=alt.YOffset("component:N", sort=list(COMPONENT_ORDER)),
        color=alt.Color("component:N", sort=list(COMPONENT_ORDER), title="component"),
        tooltip=["feature:N", "tier:N", "component:N", alt.Tooltip("value:Q", format=".3f"),
                 alt.Tooltip("auroc:Q", format=".3f"), alt.Tooltip("q:Q", format=".3g")],
    ).properties(title=alt.TitleParams(f"Ranking: {result.criterion or ''}".strip(), subtitle=subtitle),
                 width=360, height=alt.Step(7))


def activation_histogram(table: Any, feature: str | int, *, bins: int = 30, threshold: float = 0.5) -> Any:
    """One feature's activations over the table's examples, stacked by criterion class.

    Args:
        table: a `~interpkit.table.FeatureTable`.
        feature: feature id or column.
        bins: equal-width bins over the activation range.
        threshold: criterion scores at or above it are "positive".
    """
    alt = _alt()
    j = table.feature_index(feature)
    values = np.asarray(table.column(j), dtype=np.float64)
    scores = np.asarray(table.examples["criterion_score"], dtype=np.float64)
    classes = np.where(np.isnan(scores), "unscored", np.where(scores >= threshold, "positive", "negative"))
    finite = np.isfinite(values)
    lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    rows = []
    for cls in ("positive", "negative", "unscored"):
        sel = finite & (classes == cls)
        if not sel.any():
            continue
        counts, _ = np.histogram(values[sel], bins=edges)
        rows += [{"class": cls, "start": float(a), "end": float(b), "count": int(c)}
                 for a, b, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    fid = table.feature_ids[j]
    return alt.Chart(alt.Data(values=rows)).mark_bar().encode(
        x=alt.X("start:Q", title="activation"), x2="end:Q",
        y=alt.Y("count:Q", stack=True, title="examples"),
        color=alt.Color("class:N", sort=["positive", "negative", "unscored"], title="criterion"),
        tooltip=["class:N", alt.Tooltip("start:Q", format=".3g"), alt.Tooltip("end:Q", format=".3g"), "count:Q"],
    ).properties(title=f"Activations of {fid}", width=360, height=180)


def roc_curves(source: Any, *, columns: int = 5) -> Any:
    """ROC curves.

    Args:
        source: benchmark results (``results.json`` dict: one panel per concept, the bench chart), or
            ``{name: (scores, labels)}`` (labels truthy = positive): one curve per name, AUROC in
            the legend.
        columns: panels per row for benchmark results.

    Raises:
        ValueError: no curve to draw, or a name whose labels hold one class only.
    """
    if _is_bench(source):
        return bench_roc(source, columns=columns)
    from sklearn.metrics import roc_auc_score, roc_curve

    alt = _alt()
    rows = []
    for name, (scores, labels) in dict(source).items():
        s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(bool)
        if y.all() or not y.any():
            raise ValueError(f"roc_curves: {name!r} needs positive and negative labels")
        fpr, tpr, _ = roc_curve(y, s)
        curve = f"{name} (AUROC {roc_auc_score(y, s):.3f})"
        rows += [{"curve": curve, "i": i, "fpr": float(f), "tpr": float(t)} for i, (f, t) in enumerate(zip(fpr, tpr, strict=True))]
    if not rows:
        raise ValueError("roc_curves: nothing to draw")
    diag = alt.Chart(alt.Data(values=[{"x": 0, "y": 0}, {"x": 1, "y": 1}])).mark_line(
        strokeDash=[3, 3], color="#9aa1b0").encode(x="x:Q", y="y:Q")
    lines = alt.Chart(alt.Data(values=rows)).mark_line().encode(
        x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="true positive rate", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("curve:N", title=None), order="i:Q", tooltip=["curve:N"])
    return (diag + lines).properties(title="ROC", width=260, height=260)


def steering_curve(source: Any, *, y: str = "criterion_score", side: str | None = "perplexity") -> Any:
    """Criterion score (left axis) and a side effect (right axis, dashed) against steering strength.

    Args:
        source: rows with a ``strength`` (`~interpkit.widgets.SteeringPanel.sweep` output; a
            ``feature`` key draws one line per feature), a `~interpkit.causal.SweepResult` (its
            train table: ``effect`` and ``side_effect``), or benchmark results (the bench chart).
        y: the score column.
        side: the side-effect column (None: none).

    Raises:
        ValueError: no row has ``strength`` and ``y``.
    """
    if _is_bench(source):
        return bench_steering(source)
    alt = _alt()
    if hasattr(source, "train") and hasattr(source, "strength"):  # a SweepResult
        source = [dict(r) for r in source.train]
        y, side = ("effect", "side_effect") if y == "criterion_score" else (y, side)
    rows = [{"feature": str(r.get("feature", "")), "strength": float(r["strength"]),
             "score": _finite(r.get(y)), "side": _finite(r.get(side)) if side else None}
            for r in source if "strength" in r]
    if not any(r["score"] is not None for r in rows):
        raise ValueError(f"steering_curve: no row has both 'strength' and {y!r}")
    base = alt.Chart(alt.Data(values=rows)).encode(x=alt.X("strength:Q", title="steering strength"))
    color = alt.Color("feature:N", title="feature")
    score = base.mark_line(point=True).encode(y=alt.Y("score:Q", title=y), color=color,
                                              tooltip=["feature:N", "strength:Q", alt.Tooltip("score:Q", format=".3f")])
    chart = score
    if side and any(r["side"] is not None for r in rows):
        dashed = base.mark_line(strokeDash=[4, 3], point=alt.OverlayMarkDef(shape="triangle")).encode(
            y=alt.Y("side:Q", title=f"{side} (dashed)"), color=color,
            tooltip=["feature:N", "strength:Q", alt.Tooltip("side:Q", format=".3f")])
        chart = alt.layer(score, dashed).resolve_scale(y="independent")
    return chart.properties(title="Steering: score vs strength", width=360, height=220)


def match_heatmap(source: Any, *, layer: str = "combined", max_cells: int = MAX_HEATMAP_CELLS) -> Any:
    """Similarity of feature pairs as a heatmap (rows: left features, columns: right features).

    Args:
        source: a `~interpkit.match.MatchResult` (its matched pairs, diagonal order, validated
            pairs outlined) or a `~interpkit.widgets.FingerprintHeatmap` (its dense matrix).
        layer: ``"combined"`` or a component name.
        max_cells: largest dense matrix drawn.

    Raises:
        ValueError: an unknown layer, or a matrix over ``max_cells``.
    """
    alt = _alt()
    rows: list[dict[str, Any]] = []
    if hasattr(source, "matches"):
        ordered = sorted(source.matches, key=lambda m: -m.score)
        for m in ordered:
            value = m.score if layer == "combined" else m.components.get(layer)
            rows.append({"left": m.left_id, "right": m.right_id, "value": _finite(value),
                         "confidence": _finite(m.confidence),
                         "validated": "untested" if m.validated is None else ("yes" if m.validated else "no")})
        left = [m.left_id for m in ordered]
        right = [m.right_id for m in ordered]
    else:
        if layer not in source.layers:
            raise ValueError(f"match_heatmap: layer {layer!r} not in {source.layers}")
        mat = source.values(layer)
        if mat.size > max_cells:
            raise ValueError(f"match_heatmap: {mat.shape} is more than {max_cells} cells; use the widget")
        left, right = list(source.left_ids), list(source.right_ids)
        rows = [{"left": left[i], "right": right[j], "value": _finite(mat[i, j]), "validated": "untested",
                 "confidence": None} for i in range(mat.shape[0]) for j in range(mat.shape[1])]
    stroke = alt.Stroke("validated:N", title="validated", scale=alt.Scale(
        domain=["yes", "no", "untested"], range=["#1b7f3b", "#b3261e", "transparent"]))
    return alt.Chart(alt.Data(values=rows)).mark_rect(strokeWidth=1.5).encode(
        y=alt.Y("left:N", sort=list(dict.fromkeys(left)), title="left feature"),
        x=alt.X("right:N", sort=list(dict.fromkeys(right)), title="right feature"),
        color=alt.Color("value:Q", title=layer, scale=alt.Scale(scheme="redblue", domain=[-1, 1], reverse=True)),
        stroke=stroke,
        tooltip=["left:N", "right:N", alt.Tooltip("value:Q", format=".3f"), "validated:N",
                 alt.Tooltip("confidence:Q", format=".2f")],
    ).properties(title=f"Feature matches ({layer})")
