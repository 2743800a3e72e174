"""Benchmark outputs: ``results.json``, ``results.md`` and altair charts; merging sharded results.

``results.json`` (``kind`` ``"interpkit.bench"``, ``schema`` 1) holds the run header (task, model,
site, layer and how it was chosen, quick flag, settings), per detection method its ``mean_auroc``,
``ci95`` and ``per_concept`` entries, and under ``steering`` the judge calibration and per method
its ``mean_score`` and per-concept factor choice. :func:`write_results` writes the charts first
(into a temporary folder renamed into place), then ``results.md``, then ``results.json``, each
atomically, so a crash never leaves half a report beside a complete ``results.json``.

Charts are vega-lite specs (``charts/*.vl.json``, readable offline by any vega-lite viewer) and
``charts/*.html`` pages; the pages load vega from the jsDelivr CDN unless ``inline_html=True``
(needs ``vl-convert-python``, about 1 MB per page).

A steering per-concept entry is ``{"factor", "test_score", ...}`` plus the score per factor on each
half, either as :func:`~interpkit.bench._metrics.select_factor`'s ``factors`` /
``selection_by_factor`` / ``test_by_factor`` lists or as ``by_factor``:
``{"selection": {factor: score}, "test": {factor: score}}``.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> from interpkit.bench._report import markdown_table, write_results
    >>> results = {"kind": "interpkit.bench", "schema": 1, "mode": "detect", "task": {"name": "toy"},
    ...            "model": "tiny", "site": "layer1.resid_post", "layer": 1, "methods": {
    ...            "DiffMean": {"mean_auroc": 0.9, "ci95": None, "per_concept": {"0": {"auroc": 0.9}}}}}
    >>> print(markdown_table(results))
    | method | mean AUROC | 95% CI | hard-neg acc | F1 @1:100 | 0 |
    |---|---|---|---|---|---|
    | DiffMean | 0.900 | – | – | – | 0.900 |
    >>> paths = write_results(results, Path(tempfile.mkdtemp()), charts=False)
    >>> json.loads(paths["results.json"].read_text())["methods"]["DiffMean"]["mean_auroc"]
    0.9
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._io import atomic_write_text
from interpkit.bench._metrics import _scalar as _num
from interpkit.bench._metrics import _sorted_ids, summarise_detection, summarise_steering, winrate

RESULTS_KIND = "interpkit.bench"
RESULTS_SCHEMA = 1
_DIGITS = 6
"""Decimals kept for floats in ``results.json`` (ROC points keep 4)."""
_HEADER_KEYS = ("kind", "schema", "mode", "model", "site", "layer")
"""Top-level keys every shard given to :func:`merge_results` must agree on."""


# ---------------------------------------------------------------- JSON


def _clean(obj: Any, digits: int = _DIGITS) -> Any:
    """JSON-ready copy: numpy to Python, floats rounded, NaN/inf to None, tuples to lists, order kept."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v, 4 if k == "roc" else digits) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist(), digits)
    if isinstance(obj, list | tuple):
        return [_clean(v, digits) for v in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        x = float(obj)
        return round(x, digits) if math.isfinite(x) else None
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return obj


def read_results(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a ``results.json`` (or the folder holding one) written by :func:`write_results`."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("kind") != RESULTS_KIND:
        raise ValueError(f"{path}: not an interpkit.bench results file (kind {data.get('kind')!r})")
    if data.get("schema") != RESULTS_SCHEMA:
        raise ValueError(f"{path}: schema {data.get('schema')!r}, this interpkit reads {RESULTS_SCHEMA}")
    return data


# ---------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | np.number) and math.isfinite(float(value)):
        return f"{float(value):.{digits}f}" if isinstance(value, float | np.floating) else str(value)
    return "–" if value is None or isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _ci(ci: Any) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]" if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci else "–"


def _methods(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    return results.get("methods") or {}


def _steering_methods(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    return (results.get("steering") or {}).get("methods") or {}


def _by_mean(methods: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """Method names by ``key`` descending (missing last), ties in the results' order."""
    return sorted(methods, key=lambda m: -(_num(methods[m], key) if _num(methods[m], key) is not None else -math.inf))


def _concept_ids(methods: Mapping[str, Mapping[str, Any]]) -> list[str]:
    ids: dict[str, None] = {}
    for entry in methods.values():
        ids.update(dict.fromkeys(str(c) for c in entry.get("per_concept") or {}))
    return _sorted_ids(ids)


def concept_names(results: Mapping[str, Any]) -> dict[str, str]:
    """Concept id -> description from ``results["task"]["concepts"]`` (a list of records or a mapping)."""
    concepts = (results.get("task") or {}).get("concepts") or {}
    items: list[tuple[Any, Any]] = []
    if isinstance(concepts, Mapping):
        items = list(concepts.items())
    elif isinstance(concepts, Sequence):
        items = [(c.get("id", c.get("concept_id")), c) for c in concepts if isinstance(c, Mapping)]
    out = {}
    for cid, value in items:
        desc = value.get("description", value.get("concept")) if isinstance(value, Mapping) else value
        if cid is not None and desc is not None:
            out[str(cid)] = str(desc)
    return out


def _detection_table(results: Mapping[str, Any]) -> list[str]:
    methods = _methods(results)
    ids = _concept_ids(methods)
    head = ["method", "mean AUROC", "95% CI", "hard-neg acc", "F1 @1:100", *ids]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in _by_mean(methods, "mean_auroc"):
        m = methods[name]
        per = m.get("per_concept") or {}
        cells = [name, _fmt(_num(m, "mean_auroc")), _ci(m.get("ci95")), _fmt(_num(m, "mean_hard_negative_acc")),
                 _fmt(_num(m, "mean_f1_imbalanced")), *(_fmt(_num(per.get(c), "auroc")) for c in ids)]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return lines


def _steering_table(results: Mapping[str, Any]) -> list[str]:
    methods = _steering_methods(results)
    ids = _concept_ids(methods)
    baseline = next((m for m in methods if m.lower() == "prompt"), None)
    head = ["method", "mean score", "95% CI", *([f"win vs {baseline}"] if baseline else []), *ids]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {c: _num(e, "test_score") for c, e in (methods.get(baseline, {}).get("per_concept") or {}).items()}
    for name in _by_mean(methods, "mean_score"):
        m = methods[name]
        per = m.get("per_concept") or {}
        cells = [name, _fmt(_num(m, "mean_score")), _ci(m.get("ci95"))]
        if baseline:
            mine = {c: _num(e, "test_score") for c, e in per.items()}
            shared = {c: v for c, v in mine.items() if v is not None and base.get(c) is not None}
            cells.append(_fmt(winrate(shared, base)["win_rate"]) if shared and name != baseline else "–")
        for c in ids:
            score, factor = _num(per.get(c), "test_score"), _num(per.get(c), "factor")
            cells.append(_fmt(score) + (f" (×{factor:g})" if factor is not None and score is not None else ""))
        lines.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") for x in cells) + " |")
    return lines


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        out = []
        for k, v in obj.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, obj)]


def _value_text(value: Any, short: bool = False) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_text(v, short) for v in value) + "]"
    if short and isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return _fmt(value)


def markdown_table(results: Mapping[str, Any]) -> str:
    """The detection table (methods by mean AUROC) and, when present, the steering table."""
    results = _clean(results)  # numpy scalars from notebooks
    parts = []
    if _methods(results):
        parts.append("\n".join(_detection_table(results)))
    if _steering_methods(results):
        parts.append("\n".join(_steering_table(results)))
    return "\n\n".join(parts)


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole ``results.md``: header, detection table, steering table and judge calibration."""
    results = _clean(results)  # numpy scalars from notebooks
    task = results.get("task") or {}
    title = {"detect": "concept detection", "steer": "steering"}.get(results.get("mode"), "results")
    layer = results.get("layer")
    where = f"`{results.get('site', '?')}`" + (f" (layer {layer})" if layer is not None else "")
    lines = [f"# AxBench {title}: {task.get('name', 'task')}", "", f"- model: `{results.get('model', '?')}`",
             f"- site: {where}"]
    if results.get("layer_choice"):
        lines.append(f"- layer choice: {results['layer_choice']}")
    lines.append(f"- quick: {_fmt(bool(results.get('quick')))}")
    settings = _flatten(results.get("settings") or {})
    if settings:
        lines.append("- settings: " + ", ".join(f"{k}={_value_text(v, short=True)}" for k, v in settings))
    if results.get("interpkit_version"):
        lines.append(f"- interpkit {results['interpkit_version']}")
    names = concept_names(results)
    if _methods(results):
        lines += ["", "## Concept detection", "",
                  "Mean AUROC over concepts (positives vs negatives; hard negatives excluded) with its 95 % "
                  "t-interval; hard-neg acc is the macro accuracy on positives and hard negatives at the "
                  "Youden threshold; F1 @1:100 is the best F1 with negatives weighted to 100 per positive.",
                  "", *_detection_table(results)]
        failures = [(m, c, e["error"]) for m, r in _methods(results).items()
                    for c, e in (r.get("per_concept") or {}).items() if isinstance(e, Mapping) and e.get("error")]
        if failures:
            lines += ["", "Concepts a method could not score (left out of its mean):", ""]
            lines += [f"- {m}, concept {c}: {_cell(err)}" for m, c, err in failures]
    steering = results.get("steering") or {}
    if _steering_methods(results):
        lines += ["", "## Steering", "",
                  "Mean harmonic score (0-2) on the test half of the instructions at the factor chosen on the "
                  "selection half; per concept: score (factor).", "", *_steering_table(results)]
    if steering.get("judge"):
        lines += ["", "### Judge calibration", ""]
        lines += [f"- {k}: {_value_text(v)}" for k, v in _flatten(steering["judge"])]
    if names:
        lines += ["", "## Concepts", ""] + [f"- {c}: {_cell(names[c])}" for c in _sorted_ids(names)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- charts


def _label(cid: str, names: Mapping[str, str], width: int = 28) -> str:
    desc = names.get(cid)
    if not desc:
        return cid
    return f"{cid}: {desc if len(desc) <= width else desc[: width - 1] + '…'}"


def auroc_chart(results: Mapping[str, Any]) -> Any:
    """Bar of each method's mean AUROC (with its 95 % CI) and a point per concept (altair)."""
    import altair as alt

    results = _clean(results)  # numpy scalars from notebooks

    methods = _methods(results)
    if not methods:
        raise ValueError("results hold no detection methods")
    names = concept_names(results)
    order = _by_mean(methods, "mean_auroc")
    means, points = [], []
    for m in order:
        ci = methods[m].get("ci95")
        ci = ci if isinstance(ci, Sequence) and len(ci) == 2 and None not in ci else [None, None]
        means.append({"method": m, "mean_auroc": _num(methods[m], "mean_auroc"), "ci_low": ci[0], "ci_high": ci[1]})
        for c, e in (methods[m].get("per_concept") or {}).items():
            points.append({"method": m, "concept": _label(str(c), names), "auroc": _num(e, "auroc")})
    x = alt.X("method:N", sort=order, title=None)
    bars = alt.Chart(alt.Data(values=means)).mark_bar(opacity=0.6).encode(
        x=x, y=alt.Y("mean_auroc:Q", title="AUROC", scale=alt.Scale(domain=[0, 1])),
        tooltip=["method:N", alt.Tooltip("mean_auroc:Q", format=".3f")])
    ci = alt.Chart(alt.Data(values=means)).mark_rule(clip=True).encode(x=x, y="ci_low:Q", y2="ci_high:Q")
    dots = alt.Chart(alt.Data(values=points)).mark_circle(size=30, color="black").encode(
        x=x, y="auroc:Q", tooltip=["method:N", "concept:N", alt.Tooltip("auroc:Q", format=".3f")])
    return (bars + ci + dots).properties(title="Concept detection AUROC", width=max(200, 40 * len(order)))


def roc_chart(results: Mapping[str, Any], *, columns: int = 5) -> Any:
    """ROC curve of every method, one small panel per concept (altair)."""
    import altair as alt

    results = _clean(results)  # numpy scalars from notebooks

    methods = _methods(results)
    names = concept_names(results)
    rows = []
    panels = [_label(c, names) for c in _concept_ids(methods)]
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
            v = _num(entry, "test_score")
            return [] if v is None else [(0.0, "test", v)]
        for split in ("selection", "test"):
            for f, v in zip(flist, by.get(split) or [], strict=False):
                if f is not None and _num(v) is not None:
                    rows.append((float(f), split, float(v)))
        if not rows:
            rows = [(float(f), "all", float(v)) for f, v in zip(flist, by.get("score") or [], strict=False)
                    if f is not None and _num(v) is not None]
        return rows
    if any(k in by for k in ("selection", "test")):
        for split in ("selection", "test"):
            for f, v in (by.get(split) or {}).items():
                if _num(v) is not None:
                    rows.append((float(f), split, float(v)))
        return rows
    for f, v in by.items():
        if isinstance(v, Mapping):
            rows += [(float(f), s, float(v[s])) for s in ("selection", "test") if _num(v, s) is not None]
        elif _num(v) is not None:
            rows.append((float(f), "all", float(v)))
    return rows


def steering_chart(results: Mapping[str, Any]) -> Any:
    """Mean steering score over concepts against the factor, per method, selection and test halves."""
    import altair as alt

    results = _clean(results)  # numpy scalars from notebooks

    methods = _steering_methods(results)
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


def build_charts(results: Mapping[str, Any]) -> dict[str, Any]:
    """Every chart the results support, by file stem."""
    charts: dict[str, Any] = {}
    if _methods(results):
        charts["auroc_by_method"] = auroc_chart(results)
        with contextlib.suppress(ValueError):
            charts["roc_curves"] = roc_chart(results)
    if _steering_methods(results):
        with contextlib.suppress(ValueError):
            charts["steering_vs_factor"] = steering_chart(results)
    return charts


# ---------------------------------------------------------------- writing


def write_results(results: Mapping[str, Any], out: str | os.PathLike[str], *, charts: bool = True,
                  inline_html: bool = False) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (unless ``charts=False``) ``charts/`` into ``out``.

    Charts go to a temporary folder that replaces ``out/charts`` whole; then ``results.md`` and
    finally ``results.json`` are written atomically, so a complete ``results.json`` always sits
    beside the report and charts it describes. With ``charts=False`` an existing ``charts/`` is
    left untouched.

    Args:
        results: the results dict (numpy values are converted; floats rounded to 6 decimals).
        out: output folder (created).
        charts: also write the altair charts.
        inline_html: embed vega in the chart pages (offline; needs ``vl-convert-python``); by
            default the pages load vega from the jsDelivr CDN.

    Returns:
        Written paths keyed by their path relative to ``out`` (``"results.json"``,
        ``"charts/auroc_by_method.vl.json"``, ...).
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping, got {type(results).__name__}")
    if results.get("kind", RESULTS_KIND) != RESULTS_KIND:
        raise ValueError(f"results kind {results.get('kind')!r} is not {RESULTS_KIND!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean = _clean(results)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    written: dict[str, Path] = {}
    if charts:
        written.update(_write_charts(clean, out, inline_html=inline_html))
    written["results.md"] = atomic_write_text(out / "results.md", render_markdown(clean))
    written["results.json"] = atomic_write_text(out / "results.json", text)
    return written


def _write_charts(results: Mapping[str, Any], out: Path, *, inline_html: bool) -> dict[str, Path]:
    built = build_charts(results)
    tmp = Path(tempfile.mkdtemp(prefix=".charts.", dir=out))
    old = None
    try:
        for stem, chart in built.items():
            (tmp / f"{stem}.vl.json").write_text(chart.to_json(), encoding="utf-8")
            chart.save(str(tmp / f"{stem}.html"), format="html", inline=inline_html)
        final = out / "charts"
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=".charts.old.", dir=out))
            os.replace(final, old / "charts")
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not (out / "charts").exists():
            os.replace(old / "charts", out / "charts")
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return {f"charts/{p.name}": p for p in sorted(final.iterdir())}


# ---------------------------------------------------------------- merging shards


def _merge_methods(parts: Sequence[Mapping[str, Any]], get, summarise) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for i, part in enumerate(parts):
        for name, entry in get(part).items():
            target = merged.setdefault(name, {**entry, "per_concept": {}})
            per = target["per_concept"]
            for cid, value in (entry.get("per_concept") or {}).items():
                cid = str(cid)
                if cid in per and per[cid] != value:
                    raise ValueError(f"merge_results: method {name!r} concept {cid} differs between shards "
                                     f"(part {i} and an earlier part)")
                per[cid] = value
    for name, target in merged.items():
        seconds = [e["seconds"] for p in parts if isinstance(e := get(p).get(name), Mapping) and _num(e, "seconds")
                   is not None]
        target["per_concept"] = {c: target["per_concept"][c] for c in _sorted_ids(target["per_concept"])}
        target.update(summarise(target["per_concept"]))
        if seconds:
            target["seconds"] = float(sum(seconds))
    return merged


def merge_results(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Merge results of concept shards (e.g. one per ``torchrun`` rank) into one results dict.

    Header keys (``kind``, ``schema``, ``mode``, ``model``, ``site``, ``layer``) must agree; other
    top-level keys (task, settings, steering judge, ...) come from the first part that has them.
    Per-concept entries are united and sorted by concept id; a concept present in two shards must
    hold equal entries. Means and CIs are recomputed (:func:`summarise_detection`,
    :func:`summarise_steering`) and ``seconds`` summed over shards. Key order follows the first part.
    """
    if not parts:
        raise ValueError("merge_results needs at least one part")
    first = parts[0]
    for i, part in enumerate(parts[1:], 1):
        for key in _HEADER_KEYS:
            if part.get(key) != first.get(key):
                raise ValueError(f"merge_results: part {i} has {key} {part.get(key)!r} but part 0 has "
                                 f"{first.get(key)!r}")
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    if any(_methods(p) for p in parts):
        merged["methods"] = _merge_methods(parts, _methods, summarise_detection)
    if any(_steering_methods(p) for p in parts):
        steering = {}
        for p in parts:
            for key, value in (p.get("steering") or {}).items():
                steering.setdefault(key, value)
        steering["methods"] = _merge_methods(parts, _steering_methods, summarise_steering)
        merged["steering"] = steering
    return merged
