"""The real-model demo: a criterion on SmolLM2-135M, from prompts to a causally tested report.

``run_demo`` uses the packaged prompt set ``interpkit/data/measurement_units.jsonl`` (criterion:
"the next token should be a physical measurement unit", with its target tokens) and runs the data
path end to end through the same functions as the export commands and ``inspect``:

1. neuron activation records at one layer (last-token pooling) — ``export-hf-records``;
2. the contrast (DiffMean) direction learned on the train split, its steering strength chosen on
   train and its effect measured on test against random directions of the same norm —
   ``export-hf-contrast``;
3. ``inspect`` ranks neurons, the direction and its controls (held-out association);
4. the top features are ablated on held-out prompts — ``export-hf-interventions``;
5. ``inspect`` again, now with causal evidence, writes the final report.

Every intermediate file lands in ``out/inputs/`` in the interchange formats, so each step can be
re-run from the command line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

DEMO_DATASET = "measurement_units"


def demo_dataset() -> tuple[Path, dict[str, Any]]:
    """Path of the packaged demo prompt set and its criterion card (criterion, target tokens)."""
    root = resources.files("interpkit") / "data"
    card = json.loads((root / f"{DEMO_DATASET}.json").read_text(encoding="utf-8"))
    return Path(str(root / f"{DEMO_DATASET}.jsonl")), card


def _merge_records(*groups: Any) -> list[Any]:
    """One activation record per prompt with the features of every group (same prompts, same order)."""
    from dataclasses import replace

    merged: dict[str, Any] = {}
    for group in groups:
        for rec in group:
            key = str(rec.prompt_id)
            if key not in merged:
                merged[key] = rec
            else:
                base = merged[key]
                merged[key] = replace(base, features=tuple(base.features) + tuple(rec.features),
                                      extra={**dict(rec.extra), **dict(base.extra)})
    return list(merged.values())


def run_demo(
    out: str | Path,
    *,
    model: str = "smollm2-135m",
    backend: str = "nnsight",
    layer: int | None = None,
    strengths: tuple[float, ...] = (2.0, 4.0, 8.0, 16.0),
    top_k: int = 8,
    seed: int = 0,
    log: Callable[[str], None] = lambda _msg: None,
) -> Any:
    """Run the demo and return the final :class:`~interpkit.report.Report` (saved in ``out``).

    Args:
        out: output folder (``report.json``, ``report.md``, ``inputs/``).
        model: a model name ``load_model`` accepts (default: the packaged SmolLM2-135M-Instruct).
        backend: ``"nnsight"`` or ``"transformer_lens"``.
        layer: block whose residual stream is studied (default: the middle layer).
        strengths: steering strengths swept for the contrast direction (chosen on train).
        top_k: features detailed in the report and ablated in step 4.
        seed: seed for splits, controls and statistics.
        log: receives one line per step (the CLI prints them).
    """
    from interpkit.causal import export_contrast, export_interventions, export_records
    from interpkit.inspect import inspect
    from interpkit.models import load_model
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    out = Path(out)
    inputs = out / "inputs"
    dataset, card = demo_dataset()
    criterion, targets = card["criterion"], tuple(card["target_tokens"])
    rows = read_prompt_dataset(dataset)
    t0 = time.perf_counter()
    wrapper = load_model(model, backend=backend)
    layer = wrapper.n_layers // 2 if layer is None else layer
    log(f"loaded {wrapper.name} ({backend}, {wrapper.n_layers} layers) in {time.perf_counter() - t0:.1f}s; "
        f"criterion: {criterion!r}; {len(rows)} prompts; layer {layer}")

    t = time.perf_counter()
    contrast = export_contrast(wrapper, rows, criterion, layer=layer, strengths=strengths,
                               target_tokens=targets, seed=seed)
    log(f"contrast direction at layer {layer}: strength {contrast.sweep.strength:g} chosen on train; "
        f"{len(contrast.interventions)} held-out steering rows (with controls) in {time.perf_counter() - t:.1f}s")

    t = time.perf_counter()
    neurons = export_records(wrapper, rows, layers=[layer], pool="last", top_k_features=None)
    records = _merge_records(neurons, contrast.records)
    write_jsonl(inputs / "records.jsonl", records)
    write_jsonl(inputs / "interventions_contrast.jsonl", contrast.interventions)
    contrast.directions.save(inputs / "directions")
    log(f"records: {len(records)} prompts x {wrapper.d_model} neurons + contrast and controls "
        f"in {time.perf_counter() - t:.1f}s")

    stage1 = inspect(wrapper.name, criterion, backend="records", records=inputs / "records.jsonl",
                     interventions=inputs / "interventions_contrast.jsonl", top_k=top_k,
                     out=inputs / "stage1", seed=seed)

    t = time.perf_counter()
    ablations = export_interventions(wrapper, stage1, rows, criterion, top_k=top_k,
                                     directions=contrast.directions, kinds=("ablate",), ablate_mode="mean",
                                     target_tokens=targets, seed=seed)
    write_jsonl(inputs / "interventions.jsonl", [*contrast.interventions, *ablations])
    log(f"ablated the top {top_k} features on held-out prompts: {len(ablations)} rows "
        f"in {time.perf_counter() - t:.1f}s")

    report = inspect(wrapper.name, criterion, backend="records", records=inputs / "records.jsonl",
                     interventions=inputs / "interventions.jsonl", top_k=top_k, out=out, seed=seed)
    log(f"total {time.perf_counter() - t0:.1f}s")
    return report
