"""Regenerate the result tables of docs/benchmarks.md from the committed results files.

Every number in a generated table comes from a ``results.json`` that ``interpkit bench`` wrote,
committed under ``benchmarks/results/<task>-<method-set>-<date>/`` with the command that made it and
the package versions (``command`` and ``environment`` in the file). A table sits in the doc between

    <!-- BEGIN generated: NAME (benchmarks/tables.py) -->
    <!-- END generated: NAME -->

and is replaced whole. ``--check`` changes nothing and exits 1 when a table differs from what the
files give (tests/unit/test_benchmark_tables.py runs it), so a doc number cannot drift from its
file.

For each (task, method) the newest results folder that holds the method is used (folders sort by
their date suffix, then name); the table says which folder each row comes from.

    .venv/bin/python benchmarks/tables.py            # rewrite the tables
    .venv/bin/python benchmarks/tables.py --check    # exit 1 when the doc is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOC = ROOT / "docs" / "benchmarks.md"

#: short column names of the AxBench tasks
TASK_NAMES = {"prod_2b_l10_v1": "2B-L10", "prod_2b_l20_v1": "2B-L20", "prod_9b_l20_v1": "9B-L20",
              "prod_9b_l31_v1": "9B-L31"}
#: AxBench's Gemma-2-2B mean AUROC on Concept500, L10 / L20 (paper Table 2; docs/AXBENCH.md)
AXBENCH_2B = {"DiffMean": "0.948 / 0.946", "Probe": "0.940 / 0.946", "ReFT-r1": "0.952 / 0.965",
              "SSV": "0.934 / 0.950", "SAE-A": "0.924 / 0.911", "SAE": "0.735 / 0.755", "BoW": "0.909 / 0.931",
              "PCA": "0.714 / 0.712", "LAT": "0.742 / 0.809", "Prompt": "0.910 / 0.921"}
_MARK = re.compile(r"(<!-- BEGIN generated: (?P<name>[\w-]+) \(benchmarks/tables.py\) -->\n)(?P<body>.*?)"
                   r"(<!-- END generated: (?P=name) -->)", re.S)


KINDS = ("interpkit.bench", "interpkit.bench.layers")
"""Results files read: `interpkit bench`'s and the layer sweep's (`benchmarks/axbench_layers.py`)."""


def load_results(root: Path = RESULTS, kind: str = "interpkit.bench") -> list[tuple[str, dict[str, Any]]]:
    """``(folder name, results)`` of every ``<root>/*/results.json`` of ``kind``, oldest first (by the date suffix)."""
    found = []
    for path in sorted(root.glob("*/results.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("kind") not in KINDS:
            raise ValueError(f"{path}: field 'kind': expected one of {KINDS}, got {data.get('kind')!r}")
        if data["kind"] == kind:
            found.append((path.parent.name, data))
    date = re.compile(r"(\d{4}-\d{2}-\d{2})$")
    return sorted(found, key=lambda item: ((m.group(1) if (m := date.search(item[0])) else ""), item[0]))


def _f(x: Any, spec: str = ".3f") -> str:
    return "—" if x is None else format(float(x), spec)


def _latest(results: list[tuple[str, dict[str, Any]]], mode: str,
            auto: bool = False) -> dict[tuple[str, str], tuple[str, dict]]:
    """(task, method label) -> (folder, the method's results), the newest folder winning; ``auto``: only runs
    whose layer was chosen by ``--layer auto`` (``layer_selection``), else only the others."""
    out: dict[tuple[str, str], tuple[str, dict]] = {}
    for folder, data in results:
        if data.get("mode") != mode or ("layer_selection" in data) != auto:
            continue
        task = data["task"]["name"]
        methods = data["methods"] if mode == "detect" else data["steering"]["methods"]
        for label, m in methods.items():
            # out of the task's concepts, not only those the run covered (a one-concept run says "1 of 10")
            n = int(data["task"].get("n_concepts") or len(m.get("per_concept", {})))
            out[(task, label)] = (folder, {**m, "_site": data.get("site"), "_layer": data.get("layer"), "_n": n})
    return out


def _task_order(tasks: Any) -> list[str]:
    return sorted(set(tasks), key=lambda t: (list(TASK_NAMES).index(t) if t in TASK_NAMES else 99, t))


def render_detection(results: list[tuple[str, dict[str, Any]]], *, auto: bool = False) -> str:
    """The detection table: per method, per task, mean AUROC (95 % CI), hard-negative accuracy, F1 at 1:100.

    ``auto``: the runs at the layer ``--layer auto`` chose (each task's layer named in its column head).
    """
    latest = _latest(results, "detect", auto=auto)
    tasks = _task_order(t for t, _ in latest)
    methods = sorted({m for _, m in latest},
                     key=lambda m: -max((latest[(t, m)][1].get("mean_auroc") or 0) for t in tasks if (t, m) in latest))
    head = ["method"]
    for t in tasks:
        name = TASK_NAMES.get(t, t)
        if auto:
            layers = sorted({r["_layer"] for (tt, _), (_, r) in latest.items() if tt == t})
            name += " (layer " + "/".join(str(x) for x in layers) + ")"
        head += [f"{name} AUROC (95% CI)", "hard-neg", "F1@1:100"]
    head += ["AxBench Gemma-2-2B (L10 / L20)", "results file"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in methods:
        cells, sources = [m], []
        for t in tasks:
            if (t, m) not in latest:
                cells += ["not run", "", ""]
                continue
            folder, r = latest[(t, m)]
            ci = r.get("ci95")
            ci_text = f" ({_f(ci[0])}-{_f(ci[1])})" if ci else ""
            n_ok = sum(1 for c in r["per_concept"].values() if c.get("auroc") is not None)
            partial = f" ({n_ok} of {r['_n']})" if n_ok < r["_n"] else ""
            cells += [f"{_f(r.get('mean_auroc'))}{ci_text}{partial}", _f(r.get("mean_hard_negative_acc")),
                      _f(r.get("mean_f1_imbalanced"))]
            sources.append(f"`{folder}`")
        cells += [AXBENCH_2B.get(m, "—"), ", ".join(dict.fromkeys(sources))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_layers(sweeps: list[tuple[str, dict[str, Any]]]) -> str:
    """The layer sweep: per layer, the training-text rule's score and each method's eval AUROC, per task."""
    latest: dict[str, tuple[str, dict[str, Any]]] = {}
    for folder, data in sweeps:
        latest[data["task"]["name"]] = (folder, data)
    tasks = _task_order(latest)
    layers = sorted({int(k) for t in tasks for k in latest[t][1]["layers"]})
    methods = list(dict.fromkeys(m for t in tasks for row in latest[t][1]["layers"].values() for m in row["methods"]))
    head = ["layer"]
    for t in tasks:
        name = TASK_NAMES.get(t, t)
        head += [f"{name} train-CV DiffMean (rule)"] + [f"{name} eval {m}" for m in methods]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for layer in layers:
        cells = [str(layer)]
        for t in tasks:
            data = latest[t][1]
            row = data["layers"].get(str(layer))
            if row is None:
                cells += ["not run"] + [""] * len(methods)
                continue
            chosen = " **chosen**" if data["layer_selection"]["layer"] == layer else ""
            best = {m: max(r["methods"][m]["mean_auroc"] for r in data["layers"].values() if m in r["methods"])
                    for m in methods}
            cells.append(_f(row["train_cv_auroc"]) + chosen)
            for m in methods:
                v = row["methods"].get(m, {}).get("mean_auroc")
                cells.append(("**" + _f(v) + "**") if v is not None and v == best[m] else _f(v))
        lines.append("| " + " | ".join(cells) + " |")
    files = ", ".join(f"`{latest[t][0]}`" for t in tasks)
    return "\n".join(lines) + f"\n\nBold: the best eval value of a column (in hindsight). Results files: {files}.\n"


RENDERERS = {
    "detection": lambda root: render_detection(load_results(root)),
    "detection-auto": lambda root: render_detection(load_results(root), auto=True),
    "layers": lambda root: render_layers(load_results(root, "interpkit.bench.layers")),
}


def update(doc: Path = DOC, root: Path = RESULTS, *, check: bool = False) -> list[str]:
    """Rewrite (or, with ``check``, only compare) every generated table of ``doc``; return the stale names."""
    text = doc.read_text(encoding="utf-8")
    stale: list[str] = []

    def replace(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in RENDERERS:
            raise ValueError(f"{doc}: generated table {name!r} has no renderer (known: {sorted(RENDERERS)})")
        body = RENDERERS[name](root)
        if body != m.group("body"):
            stale.append(name)
        return m.group(1) + body + m.group(4)

    new = _MARK.sub(replace, text)
    if not check and new != text:
        tmp = doc.with_suffix(".md.tmp")
        tmp.write_text(new, encoding="utf-8")
        tmp.replace(doc)
    return stale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a table is stale")
    args = parser.parse_args()
    stale = update(check=args.check)
    if args.check and stale:
        print(f"{DOC}: stale generated tables {stale}: run benchmarks/tables.py", file=sys.stderr)
        return 1
    print(("stale: " if args.check else "updated: ") + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
