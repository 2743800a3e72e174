"""Layer sweep for the AxBench benchmark on a model: DiffMean detection AUROC at several layers.

One forward pass per task caches the per-token activations at every listed layer (the same cache
`interpkit bench` reads, so the chosen layer's run afterwards skips the model). For each layer,
DiffMean is fitted per concept on the training rows and scored on the eval rows (AUROC of
positives vs negatives, AxBench §3). The benchmark's layer is fixed a priori (AxBench's ~40 %
depth rule); this sweep is reported beside it so a reader sees how much the choice matters.

Run: .venv/bin/python benchmarks/axbench_layers.py [--data /work/shared/data/axbench-concept10]
     [--tasks prod_2b_l10_v1,prod_2b_l20_v1] [--layers 6,9,12,15,18,21,24] [--model smollm2-135m]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/axbench-concept10")
    ap.add_argument("--tasks", default="prod_2b_l10_v1,prod_2b_l20_v1")
    ap.add_argument("--layers", default="6,9,12,15,18,21,24")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()
    from interpkit.bench._acts import token_activations
    from interpkit.bench._context import build_context
    from interpkit.bench._metrics import concept_detection
    from interpkit.bench._task import load_task
    from interpkit.bench.methods import get_method
    from interpkit.models import load_model

    model = load_model(args.model, "nnsight")
    layers = [int(x) for x in args.layers.split(",")]
    rows = []
    for name in args.tasks.split(","):
        task = load_task(Path(args.data) / name)
        t0 = time.perf_counter()
        # one pass fills the cache for every layer
        ctx0 = build_context(task, model, layer=layers[0], max_length=args.max_length, progress=False,
                             cache_dir=True)
        from interpkit.models.zoo import cache_dir
        kw = {"prefix_length": ctx0.prefix_length, "prepend_bos": ctx0.prepend_bos, "max_length": args.max_length,
              "cache_dir": cache_dir() / "bench_acts", "progress": True}
        sites = [f"layer{layer}.resid_post" for layer in layers]
        token_activations(model, ctx0.train_texts, sites, **kw)
        token_activations(model, ctx0.eval_texts, sites, **kw)
        print(f"{name}: activations for {len(layers)} layers in {time.perf_counter() - t0:.0f} s", flush=True)
        for layer in layers:
            ctx = build_context(task, model, layer=layer, max_length=args.max_length, progress=False)
            method = get_method("diffmean")
            aucs = []
            for c in task.concepts:
                fitted = method.fit(ctx, c.id)
                idx = ctx.eval_split(c.id)
                aucs.append(concept_detection(method.scores(ctx, fitted, "eval", idx), ctx.eval_categories(c.id))["auroc"])
            rows.append((name, layer, float(np.mean(aucs))))
            print(f"{name} layer {layer:>2}: DiffMean mean AUROC {np.mean(aucs):.3f}  "
                  f"(per concept {' '.join(f'{a:.2f}' for a in aucs)})", flush=True)
    print("\n| task | " + " | ".join(f"L{layer}" for layer in layers) + " |")
    print("|---|" + "---|" * len(layers))
    for name in args.tasks.split(","):
        print(f"| {name} | " + " | ".join(f"{a:.3f}" for t, _, a in rows if t == name) + " |")


if __name__ == "__main__":
    main()
