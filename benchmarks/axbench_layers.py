"""Layer sweep for the AxBench benchmark on a model: the training-text layer rule beside the eval AUROC.

For each task, `interpkit.bench._layers.choose_layer` caches the training texts' activations at every
candidate layer in one forward pass and scores each layer by DiffMean cross-validated on the
training texts (the rule of ``interpkit bench --layer auto``; no eval text is read). The sweep then
reads the eval texts at the same layers (a second pass, also cached) and reports, per layer, the
eval mean AUROC of the listed methods, so a reader sees how far the rule's pick is from the best
layer in hindsight. Both passes fill the cache `interpkit bench` reads, so a run at any of these
layers afterwards skips the model.

Writes ``benchmarks/results/<task>-layers-<date>/results.json`` (kind ``interpkit.bench.layers``; the
command, the package versions) that `benchmarks/tables.py` turns into docs/benchmarks.md's layer table.

Run: .venv/bin/python benchmarks/axbench_layers.py [--data /work/shared/data/axbench-concept10]
     [--tasks prod_2b_l10_v1,prod_2b_l20_v1] [--layers 6,9,12,15,18,21,24] [--methods diffmean,probe]
     [--model smollm2-135m] [--out-root benchmarks/results]
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/axbench-concept10")
    ap.add_argument("--tasks", default="prod_2b_l10_v1,prod_2b_l20_v1")
    ap.add_argument("--layers", default=None, help="candidate layers (default: the rule's, 20-80 %% depth)")
    ap.add_argument("--methods", default="diffmean,probe")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--out-root", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    from interpkit._doctor import environment
    from interpkit._io import atomic_write_text
    from interpkit.bench._acts import token_activations
    from interpkit.bench._context import acts_cache_root, build_context, format_rows
    from interpkit.bench._layers import candidate_layers, choose_layer
    from interpkit.bench._metrics import concept_detection
    from interpkit.bench._task import load_task
    from interpkit.bench.methods import get_method
    from interpkit.models import load_model

    model = load_model(args.model, "nnsight")
    layers = [int(x) for x in args.layers.split(",")] if args.layers else candidate_layers(model.n_layers)
    methods = args.methods.split(",")
    date = datetime.date.today().isoformat()
    for name in args.tasks.split(","):
        task = load_task(Path(args.data) / name)
        t0 = time.perf_counter()
        choice = choose_layer(task, model, candidates=layers, max_length=args.max_length)
        print(f"{name}: training-text rule over {layers} in {choice.seconds:.0f} s -> layer {choice.layer} "
              f"({', '.join(f'L{k} {v:.3f}' for k, v in choice.scores.items())})", flush=True)
        # one pass over the eval texts fills the cache of every layer (build_context then reads it)
        texts, prefix, bos = format_rows(model.tokenizer, task.eval)
        token_activations(model, texts, [f"layer{layer}.resid_post" for layer in layers], prefix_length=prefix,
                          prepend_bos=bos, max_length=args.max_length, cache_dir=acts_cache_root(True))
        per_layer = {}
        for layer in layers:
            ctx = build_context(task, model, layer=layer, max_length=args.max_length, progress=True)
            row = {"train_cv_auroc": choice.scores[layer], "methods": {}}
            for mname in methods:
                method = get_method(mname)
                aucs = []
                for c in task.concepts:
                    fitted = method.fit(ctx, c.id)
                    idx = ctx.eval_split(c.id)
                    aucs.append(concept_detection(method.scores(ctx, fitted, "eval", idx),
                                                  ctx.eval_categories(c.id))["auroc"])
                row["methods"][method.label] = {"mean_auroc": float(np.mean(aucs)),
                                                "per_concept": [round(float(a), 4) for a in aucs]}
                print(f"{name} layer {layer:>2}: {method.label} eval mean AUROC {np.mean(aucs):.3f}  "
                      f"(per concept {' '.join(f'{a:.2f}' for a in aucs)})", flush=True)
            per_layer[str(layer)] = row
        result = {"kind": "interpkit.bench.layers", "schema": 1, "task": {"name": name},
                  "model": getattr(model, "name", args.model), "candidates": layers,
                  "layer_selection": choice.to_dict(), "layers": per_layer,
                  "seconds": round(time.perf_counter() - t0, 1), "environment": environment(),
                  "command": " ".join(["python", *map(shlex.quote, sys.argv)])}
        out = Path(args.out_root) / f"{name}-layers-{date}"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "results.json", json.dumps(result, indent=1) + "\n")
        print(f"wrote {out / 'results.json'}", flush=True)
        print("\n| layer | train-CV DiffMean | " + " | ".join(f"eval {m}" for m in per_layer[str(layers[0])]["methods"])
              + " |")
        for layer in layers:
            row = per_layer[str(layer)]
            mark = " (rule)" if layer == choice.layer else ""
            print(f"| {layer}{mark} | {row['train_cv_auroc']:.3f} | "
                  + " | ".join(f"{v['mean_auroc']:.3f}" for v in row["methods"].values()) + " |")


if __name__ == "__main__":
    main()
