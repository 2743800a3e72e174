"""The benchmark report's charts: altair charts of bench results (``results.json`` dicts).

`auroc_bars`, `bench_roc` and `bench_steering` build one chart each; `bench_charts` builds every
chart the results support, keyed by file stem; `write_bench_charts` writes them into a folder as
``<stem>.vl.json`` (the vega-lite spec, readable offline by any vega-lite viewer) and
``<stem>.html``. It is the ``charts=`` writer that `interpkit bench` and run configs give
`~interpkit.bench.write_results` (bench sits below viz and builds no chart itself).

A steering per-concept entry is ``{"factor", "test_score", ...}`` plus the score per factor on each
half, either as `~interpkit.bench.select_factor`'s ``factors`` / ``selection_by_factor`` /
``test_by_factor`` lists, as `~interpkit.bench.evaluate_steering`'s ``by_factor`` lists aligned
with ``by_factor["factor"]``, or as ``by_factor``: ``{"selection": {factor: score}, "test": {...}}``.

Example:
    >>> from interpkit.viz import auroc_bars
    >>> results = {"kind": "interpkit.bench", "methods": {"DiffMean": {"mean_auroc": 0.9, "per_concept": {
    ...            "0": {"auroc": 0.9}}}}}
    >>> auroc_bars(results).to_dict()["layer"][0]["mark"]["type"]
    'bar'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from interpkit.bench._metrics import finite_at
from interpkit.bench._report import (
    by_mean,
    concept_ids,
    concept_names,
    detection_methods,
    json_ready,
    steering_methods,
)

__all__ = ["auroc_bars", "bench_charts", "bench_roc", "bench_steering", "write_bench_charts"]


def _label(cid: str, names: Mapping[str, str], width: int = 28) -> str:
    desc = names.get(cid)
    if not desc:
        return cid
    return f"{cid}: {desc if len(desc) <= width else desc[: width - 1] + '…'}"


def auroc_bars(results: Mapping[str, Any]) -> Any:
    """Bar of each method's mean AUROC (with its 95 % CI) and a point per concept (altair)."""
    import altair as alt

    results = json_ready(results)  # numpy scalars from notebooks

    methods = detection_methods(results)
    if not methods:
        raise ValueError("results hold no detection methods")
    names = concept_names(results)
    order = by_mean(methods, "mean_auroc")
    means, points = [], []
    for m in order:
        ci = methods[m].get("ci95")
        ci = ci if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci else [None, None]
        means.append({"method": m, "mean_auroc": finite_at(methods[m], "mean_auroc"), "ci_low": ci[0],
                      "ci_high": ci[1]})
        for c, e in (methods[m].get("per_concept") or {}).items():
            points.append({"method": m, "concept": _label(str(c), names), "auroc": finite_at(e, "auroc")})
    x = alt.X("method:N", sort=order, title=None)
    bars = alt.Chart(alt.Data(values=means)).mark_bar(opacity=0.6).encode(
        x=x, y=alt.Y("mean_auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        tooltip=["method:N", alt.Tooltip("mean_auroc:Q", format=".3f")])
    ci = alt.Chart(alt.Data(values=means)).mark_rule(clip=True).encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    dots = alt.Chart(alt.Data(values=points)).mark_circle(size=30, color="black").encode(
        x=x, y="auroc:Q", tooltip=["method:N", "concept:N", alt.Tooltip("auroc:Q", format=".3f")])
    return (bars + ci + dots).properties(title="Concept detection AUROC", width=max(200, 40 * len(order)))


def bench_roc(results: Mapping[str, Any], *, columns: int = 5) -> Any:
    """ROC curve of every method, one small panel per concept (altair)."""
    import altair as alt

    results = json_ready(results)  # numpy scalars from notebooks

    methods = detection_methods(results)
    names = concept_names(results)
    rows = []
    panels = [_label(c, names) for c in concept_ids(methods)]
    for m, entry in methods.items():
        for c, e in (entry.get("per_concept") or {}).items():
            roc = e.get("roc") if isinstance(e, Mapping) else None
            if isinstance(roc, Mapping):
                for i, (f, t) in enumerate(zip(roc.get("fpr") or [], roc.get("tpr") or [], strict=False)):
                    rows.append({"method": m, "concept": _label(str(c), names), "i": i, "fpr": f, "tpr": t})
    if not rows:
        raise ValueError("results hold no ROC curves")
    base = alt.Chart(alt.Data(values=rows)).mark_line(strokeWidth=1.2).encode(
        x=alt.X("fpr:Q", title="FPR", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="TPR", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("method:N", sort=list(methods)), order="i:Q", tooltip=["method:N", "concept:N"])
    return base.properties(width=120, height=120).facet(facet=alt.Facet("concept:N", title=None, sort=panels),
                                                        columns=columns).properties(title="ROC per concept")


def _factor_rows(entry: Any) -> list[tuple[float, str, float]]:
    """(factor, split, score) of one steering per-concept entry, whichever layout it uses."""
    if not isinstance(entry, Mapping):
        return []
    rows: list[tuple[float, str, float]] = []
    factors = entry.get("factors")
    if isinstance(factors, Sequence):
        for split, key in (("selection", "selection_by_factor"), ("test", "test_by_factor")):
            for f, v in zip(factors, entry.get(key) or [], strict=False):
                if v is not None:
                    rows.append((float(f), split, float(v)))
        if rows:
            return rows
    by = entry.get("by_factor")
    if not isinstance(by, Mapping):
        return rows
    if isinstance(by.get("factor"), Sequence) and not isinstance(by.get("factor"), str):
        # evaluate_steering's layout: lists aligned with by_factor["factor"]; None = factor-free (Prompt)
        flist = list(by["factor"])
        if all(f is None for f in flist):
            v = finite_at(entry, "test_score")
            return [] if v is None else [(0.0, "test", v)]
        for split in ("selection", "test"):
            for f, v in zip(flist, by.get(split) or [], strict=False):
                if f is not None and finite_at(v) is not None:
                    rows.append((float(f), split, float(v)))
        if not rows:
            rows = [(float(f), "all", float(v)) for f, v in zip(flist, by.get("score") or [], strict=False)
                    if f is not None and finite_at(v) is not None]
        return rows
    if any(k in by for k in ("selection", "test")):
        for split in ("selection", "test"):
            for f, v in (by.get(split) or {}).items():
                if finite_at(v) is not None:
                    rows.append((float(f), split, float(v)))
        return rows
    for f, v in by.items():
        if isinstance(v, Mapping):
            rows += [(float(f), s, float(v[s])) for s in ("selection", "test") if finite_at(v, s) is not None]
        elif finite_at(v) is not None:
            rows.append((float(f), "all", float(v)))
    return rows


def bench_steering(results: Mapping[str, Any]) -> Any:
    """Mean steering score over concepts against the factor, per method, selection and test halves."""
    import altair as alt

    results = json_ready(results)  # numpy scalars from notebooks

    methods = steering_methods(results)
    rows = [{"method": m, "concept": str(c), "factor": f, "split": s, "score": v}
            for m, entry in methods.items() for c, e in (entry.get("per_concept") or {}).items()
            for f, s, v in _factor_rows(e)]
    if not rows:
        raise ValueError("results hold no steering scores by factor")
    n_factors = {m: len({r["factor"] for r in rows if r["method"] == m}) for m in methods}
    swept = [r for r in rows if n_factors[r["method"]] > 1]
    fixed = [r for r in rows if n_factors[r["method"]] == 1 and r["split"] != "selection"]
    color = alt.Color("method:N", sort=list(methods))
    y = alt.Y("mean(score):Q", title="mean score (0-2)", scale=alt.Scale(domain=[0, 2]))
    tip = ["method:N", "split:N", alt.Tooltip("mean(score):Q", format=".3f")]
    layers = []
    if swept:
        layers.append(alt.Chart(alt.Data(values=swept)).mark_line(point=True).encode(
            x=alt.X("factor:Q", title="steering factor"), y=y, color=color,
            strokeDash=alt.StrokeDash("split:N", title="instructions"), tooltip=[*tip, "factor:Q"]))
    if fixed:  # factor-free baselines (Prompt): their test mean as a horizontal line
        layers.append(alt.Chart(alt.Data(values=fixed)).mark_rule(strokeDash=[2, 2]).encode(
            y=y, color=color, tooltip=tip))
    chart = layers[0] if len(layers) == 1 else alt.layer(*layers)
    return chart.properties(title="Steering score vs factor", width=360, height=240)


def bench_charts(results: Mapping[str, Any]) -> dict[str, Any]:
    """Every chart the results support, by file stem (``auroc_by_method``, ``roc_curves``, ``steering_vs_factor``)."""
    charts: dict[str, Any] = {}
    if detection_methods(results):
        charts["auroc_by_method"] = auroc_bars(results)
        with contextlib.suppress(ValueError):
            charts["roc_curves"] = bench_roc(results)
    if steering_methods(results):
        with contextlib.suppress(ValueError):
            charts["steering_vs_factor"] = bench_steering(results)
    return charts


def write_bench_charts(results: Mapping[str, Any], folder: str | os.PathLike[str], *,
                       inline_html: bool = False) -> list[Path]:
    """Write `bench_charts` into ``folder`` as ``<stem>.vl.json`` and ``<stem>.html``; return the paths.

    `~interpkit.bench.write_results` calls it with a fresh temporary folder that then replaces
    ``out/charts`` whole, so the files need no atomic writes of their own.

    Args:
        results: bench results.
        folder: an existing folder.
        inline_html: embed vega in the pages (offline; needs ``vl-convert-python``, about 1 MB per
            page); by default the pages load vega from the jsDelivr CDN.
    """
    folder = Path(folder)
    paths = []
    for stem, chart in bench_charts(results).items():
        spec, page = folder / f"{stem}.vl.json", folder / f"{stem}.html"
        spec.write_text(chart.to_json(), encoding="utf-8")
        chart.save(str(page), format="html", inline=inline_html)
        paths += [spec, page]
    return paths
