"""One training step of the LM-loss methods, old path vs new: full forward vs the cached-prefix engine.

The same batch (``--batch`` positives of one concept, responses cut to ``--tokens``) and the same
edit (SSV's ``h + w`` or ReFT-r1's gated addition at ``--site``) go through
``FullForward`` (``model.forward(grad=True)`` with an ``Apply`` edit, the path before the engine)
and ``PrefixEngine`` (prefix computed once without gradients, then only the blocks above the site
per step). Each step is forward + backward; the script prints the median seconds per step of
each, their ratio, the one-off prefix cost per example, the losses of both (they must agree) and
an estimate of the training time per concept for AxBench's schedule (3 epochs over
``--examples`` examples).

Run (2 CPU cores, a few minutes): OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lm_train_speed.py
     [--site layer12.resid_post] [--tokens 128] [--batch 6] [--steps 3] [--kind reft]
"""

from __future__ import annotations

import argparse
import statistics
import time
from types import SimpleNamespace


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/work/shared/data/axbench-concept10/prod_2b_l10_v1")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--site", default="layer12.resid_post")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--kind", choices=("ssv", "reft"), default="reft")
    ap.add_argument("--examples", type=int, default=144, help="training examples per concept (estimate)")
    args = ap.parse_args()

    import numpy as np
    import torch

    import interpkit
    from interpkit.bench._task import load_task
    from interpkit.bench.methods._engine import FullForward, PrefixEngine, edit_mask, lm_step, training_engine
    from interpkit.bench.methods._lmloss import _gate_fn, frozen, lm_examples

    model = interpkit.load_model(args.model, "nnsight")
    task = load_task(args.data)
    ctx = SimpleNamespace(model=model, task=task, max_length=None)
    rows = np.flatnonzero(task.train["concept_id"].to_numpy() == task.concepts[0].id)[: args.batch]
    examples = lm_examples(ctx, rows, max_train_tokens=args.tokens)
    print(f"{args.model} @ {args.site}, {args.kind}, batch {len(examples)}, lengths "
          f"{[len(ids) for ids, _ in examples]}, response tokens <= {args.tokens}, torch threads "
          f"{torch.get_num_threads()}")

    w = torch.nn.Parameter(torch.full((model.d_model,), 0.01))
    engine = training_engine(model, [args.site])
    if not isinstance(engine, PrefixEngine):
        raise SystemExit(f"no cached-prefix engine for {args.model} ({type(engine).__name__})")
    t0 = time.perf_counter()
    engine.prefixes(examples)
    prefix_s = (time.perf_counter() - t0) / len(examples)

    def step(eng) -> tuple[float, float]:
        w.grad = None
        start = time.perf_counter()
        with frozen(model):
            ce, _ = lm_step(eng, examples, lambda g: {args.site: _gate_fn(w, edit_mask(g, 1), args.kind, 8, g.store)},
                            l1_weight=1e-3 if args.kind == "reft" else None)
        return time.perf_counter() - start, ce

    times: dict[str, list[float]] = {}
    losses: dict[str, float] = {}
    for name, eng in (("old (full forward)", FullForward(model)), ("new (cached prefix)", engine)):
        step(eng)  # warm-up
        runs = [step(eng) for _ in range(args.steps)]
        times[name] = [t for t, _ in runs]
        losses[name] = runs[-1][1]
    old, new = (statistics.median(v) for v in times.values())
    for name, v in times.items():
        print(f"{name:22s} {statistics.median(v):7.3f} s/step  (runs {', '.join(f'{t:.3f}' for t in v)}; "
              f"loss {losses[name]:.6f})")
    print(f"ratio old/new: {old / new:.2f}x; prefix (once per example, no grad): {prefix_s:.3f} s/example")
    steps = 3 * -(-args.examples // args.batch)
    print(f"AxBench schedule, {args.examples} examples x 3 epochs = {steps} steps: old ~{steps * old / 60:.1f} min, "
          f"new ~{(steps * new + args.examples * prefix_s) / 60:.1f} min per concept")


if __name__ == "__main__":
    main()
