"""Benchmark outputs: ``results.json``, ``results.md`` and a ``charts/`` folder; merging sharded results.

``results.json`` (``kind`` ``"interpkit.bench"``, ``schema`` 1) holds the run header (task, model,
site, layer and how it was chosen, quick flag, settings), per detection method its ``mean_auroc``,
``ci95`` and ``per_concept`` entries, and under ``steering`` the judge calibration and per method
its ``mean_score`` and per-concept factor choice. :func:`write_results` writes the charts first
(into a temporary folder renamed into place), then ``results.md``, then ``results.json``, each
atomically, so a crash never leaves half a report beside a complete ``results.json``.

The charts themselves are built in ``interpkit.viz`` (a layer above bench): :func:`write_results`
takes a ``charts=`` writer that fills the folder, and ``interpkit bench`` passes
`interpkit.viz.write_bench_charts` (vega-lite ``charts/*.vl.json`` plus ``charts/*.html`` pages).
The functions that read a results dict (`detection_methods`, `steering_methods`, `by_mean`,
`concept_ids`, `concept_names`, `json_ready`) are shared with those charts.

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

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._io import atomic_dir, atomic_write_text
from interpkit.bench._metrics import _sorted_ids, summarise_detection, summarise_steering, winrate
from interpkit.bench._metrics import finite_at as _num

RESULTS_KIND = "interpkit.bench"
RESULTS_SCHEMA = 1
_DIGITS = 6
"""Decimals kept for floats in ``results.json`` (ROC points keep 4)."""
_HEADER_KEYS = ("kind", "schema", "mode", "model", "site", "layer")
"""Top-level keys every shard given to :func:`merge_results` must agree on."""
ChartWriter = Callable[[Mapping[str, Any], Path], Any]
"""``writer(results, folder)``: writes chart files into ``folder`` (`interpkit.viz.write_bench_charts`)."""


# ---------------------------------------------------------------- JSON


def json_ready(obj: Any, digits: int = _DIGITS) -> Any:
    """JSON-ready copy: numpy to Python, floats rounded, NaN/inf to None, tuples to lists, order kept."""
    if isinstance(obj, Mapping):
        return {str(k): json_ready(v, 4 if k == "roc" else digits) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return json_ready(obj.tolist(), digits)
    if isinstance(obj, list | tuple):
        return [json_ready(v, digits) for v in obj]
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


def detection_methods(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """Detection method name -> its entry (``results["methods"]``; empty when absent)."""
    return results.get("methods") or {}


def steering_methods(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """Steering method name -> its entry (``results["steering"]["methods"]``; empty when absent)."""
    return (results.get("steering") or {}).get("methods") or {}


def by_mean(methods: Mapping[str, Mapping[str, Any]], key: str) -> list[str]:
    """Method names by ``key`` descending (missing last), ties in the results' order."""
    return sorted(methods, key=lambda m: -(_num(methods[m], key) if _num(methods[m], key) is not None else -math.inf))


def concept_ids(methods: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every concept id any method has a per-concept entry for, in id order."""
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
    methods = detection_methods(results)
    ids = concept_ids(methods)
    head = ["method", "mean AUROC", "95% CI", "hard-neg acc", "F1 @1:100", *ids]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in by_mean(methods, "mean_auroc"):
        m = methods[name]
        per = m.get("per_concept") or {}
        cells = [name, _fmt(_num(m, "mean_auroc")), _ci(m.get("ci95")), _fmt(_num(m, "mean_hard_negative_acc")),
                 _fmt(_num(m, "mean_f1_imbalanced")), *(_fmt(_num(per.get(c), "auroc")) for c in ids)]
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    return lines


def _steering_table(results: Mapping[str, Any]) -> list[str]:
    methods = steering_methods(results)
    ids = concept_ids(methods)
    baseline = next((m for m in methods if m.lower() == "prompt"), None)
    head = ["method", "mean score", "95% CI", *([f"win vs {baseline}"] if baseline else []), *ids]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    base = {c: _num(e, "test_score") for c, e in (methods.get(baseline, {}).get("per_concept") or {}).items()}
    for name in by_mean(methods, "mean_score"):
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
    results = json_ready(results)  # numpy scalars from notebooks
    parts = []
    if detection_methods(results):
        parts.append("\n".join(_detection_table(results)))
    if steering_methods(results):
        parts.append("\n".join(_steering_table(results)))
    return "\n\n".join(parts)


def render_markdown(results: Mapping[str, Any]) -> str:
    """The whole ``results.md``: header, detection table, steering table and judge calibration."""
    results = json_ready(results)  # numpy scalars from notebooks
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
    if detection_methods(results):
        lines += ["", "## Concept detection", "",
                  "Mean AUROC over concepts (positives vs negatives; hard negatives excluded) with its 95 % "
                  "t-interval; hard-neg acc is the macro accuracy on positives and hard negatives at the "
                  "Youden threshold; F1 @1:100 is the best F1 with negatives weighted to 100 per positive.",
                  "", *_detection_table(results)]
        failures = [(m, c, e["error"]) for m, r in detection_methods(results).items()
                    for c, e in (r.get("per_concept") or {}).items() if isinstance(e, Mapping) and e.get("error")]
        if failures:
            lines += ["", "Concepts a method could not score (left out of its mean):", ""]
            lines += [f"- {m}, concept {c}: {_cell(err)}" for m, c, err in failures]
    steering = results.get("steering") or {}
    if steering_methods(results):
        lines += ["", "## Steering", "",
                  "Mean harmonic score (0-2) on the test half of the instructions at the factor chosen on the "
                  "selection half; per concept: score (factor).", "", *_steering_table(results)]
    if steering.get("judge"):
        lines += ["", "### Judge calibration", ""]
        lines += [f"- {k}: {_value_text(v)}" for k, v in _flatten(steering["judge"])]
    if names:
        lines += ["", "## Concepts", ""] + [f"- {c}: {_cell(names[c])}" for c in _sorted_ids(names)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- writing


def write_results(results: Mapping[str, Any], out: str | os.PathLike[str], *,
                  charts: ChartWriter | None = None) -> dict[str, Path]:
    """Write ``results.json``, ``results.md`` and (with a ``charts`` writer) ``charts/`` into ``out``.

    Charts go to a temporary folder that replaces ``out/charts`` whole; then ``results.md`` and
    finally ``results.json`` are written atomically, so a complete ``results.json`` always sits
    beside the report and charts it describes. Without a writer an existing ``charts/`` is left
    untouched.

    Args:
        results: the results dict (numpy values are converted; floats rounded to 6 decimals).
        out: output folder (created).
        charts: ``writer(results, folder)`` that writes the chart files into the (empty, temporary)
            folder, e.g. `interpkit.viz.write_bench_charts`; None or False: no charts.

    Returns:
        Written paths keyed by their path relative to ``out`` (``"results.json"``,
        ``"charts/auroc_by_method.vl.json"``, ...).
    """
    if not isinstance(results, Mapping):
        raise TypeError(f"results must be a mapping, got {type(results).__name__}")
    if results.get("kind", RESULTS_KIND) != RESULTS_KIND:
        raise ValueError(f"results kind {results.get('kind')!r} is not {RESULTS_KIND!r}")
    writer = chart_writer(charts)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean = json_ready(results)
    text = json.dumps(clean, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    written: dict[str, Path] = {}
    if writer is not None:
        with atomic_dir(out / "charts", prefix=".charts.") as tmp:
            writer(clean, tmp)
        written.update({f"charts/{p.name}": p for p in sorted((out / "charts").iterdir())})
    written["results.md"] = atomic_write_text(out / "results.md", render_markdown(clean))
    written["results.json"] = atomic_write_text(out / "results.json", text)
    return written


def chart_writer(charts: Any) -> ChartWriter | None:
    """The ``charts=`` argument of `write_results` and `~interpkit.bench.bench` as a writer, or None.

    ``True`` (what these took before the charts moved to ``interpkit.viz``) is refused rather than
    ignored: bench cannot import viz, so it would silently write no charts.
    """
    if charts is None or charts is False:
        return None
    if charts is True or not callable(charts):
        raise TypeError("charts= takes a chart writer, writer(results, folder), or None: bench builds no "
                        "charts itself; pass charts=interpkit.viz.write_bench_charts")
    return charts


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
    if any(detection_methods(p) for p in parts):
        merged["methods"] = _merge_methods(parts, detection_methods, summarise_detection)
    if any(steering_methods(p) for p in parts):
        steering = {}
        for p in parts:
            for key, value in (p.get("steering") or {}).items():
                steering.setdefault(key, value)
        steering["methods"] = _merge_methods(parts, steering_methods, summarise_steering)
        merged["steering"] = steering
    return merged
