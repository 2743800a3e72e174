"""Attribution-graph building time against one bare forward + backward of the same prompt, same run.

The baseline is the HF model's own forward on the prompt plus a backward from one logit (median of
``--repeats``). Each graph is `interpkit.circuits.attribute` on the same prompt with transcoders at
``--layers``: the clean pass, the linear graph, and one batched backward per ``--batch-size`` rows,
for each ``--max-feature-nodes`` value. The script prints seconds, the ratio to the baseline, the
number of rows and backward passes, and writes nothing unless ``--out`` is given (a JSON file).

Transcoders: ``--transcoders DIR`` (a `train_transcoders` folder) or, by default, seeded random TopK
dictionaries (``--k`` active latents per token, ``--width`` latents): the time depends on the
number of active latents and rows, not on what the latents mean.

Goal (issue 18): at most 5x one forward + backward for a 64-token prompt with 4 transcoder layers.

Run (2 CPU cores, ~2 minutes): OMP_NUM_THREADS=2 .venv/bin/python benchmarks/attribution_speed.py
     [--layers 3,9,15,21] [--tokens 64] [--max-feature-nodes 64,128,256,512,1024]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

_TEXT = ("The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is Rome. "
         "A kilometre is a thousand metres, and a kilogram is a thousand grams. The river flows into the sea "
         "near the old harbour, where ships once carried grain and wool to distant markets. In winter the "
         "harbour froze, and the town lived on stored fish, bread and the letters that came by sledge.")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layers", default="3,9,15,21")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--max-feature-nodes", default="64,128,256,512,1024")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--transcoders", default=None, help="a train_transcoders folder (default: random TopK)")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--width", type=int, default=4608)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mlp", choices=("frozen-gate", "error"), default="frozen-gate")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    import interpkit
    from interpkit.circuits import attribute

    model = interpkit.load_model(args.model, "nnsight")
    hf = model.hf_model
    layers = [int(x) for x in args.layers.split(",")]
    if args.transcoders:
        from interpkit.sae import load_transcoders

        tcs = load_transcoders(args.transcoders)
        layers = sorted(tcs)
    else:
        from interpkit.sae import SAEConfig, make_sae

        d = model.d_model
        tcs = {layer: make_sae(SAEConfig(architecture="topk", d_in=d, d_sae=args.width, k=args.k,
                                         apply_b_dec_to_input=False, site=f"layer{layer}.mlp_in", layer=layer),
                               seed=layer).eval() for layer in layers}
    ids = model.tokenizer(_TEXT).input_ids[: args.tokens]
    if len(ids) < args.tokens:
        raise SystemExit(f"the benchmark text has {len(ids)} tokens, fewer than --tokens {args.tokens}")
    x = torch.tensor([ids])

    def fwd_bwd() -> float:
        hf.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = hf(x, use_cache=False)
        out.logits[0, -1].max().backward()
        return time.perf_counter() - t0

    fwd_bwd()  # warm-up
    base = statistics.median(fwd_bwd() for _ in range(args.repeats))
    hf.zero_grad(set_to_none=True)
    print(f"{args.model}, {len(ids)} tokens, transcoders at layers {layers}, mlp={args.mlp}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"bare forward + backward: {base:.3f} s (median of {args.repeats})")
    print(f"{'max_feature_nodes':>18} {'rows':>6} {'passes':>7} {'seconds':>8} {'ratio':>7}  clean/rows s")
    results = []
    attribute(model, ids, None, transcoders=tcs, max_feature_nodes=8, batch_size=args.batch_size)  # warm-up
    for cap in [int(c) for c in args.max_feature_nodes.split(",")]:
        t0 = time.perf_counter()
        g = attribute(model, ids, None, transcoders=tcs, max_feature_nodes=cap, batch_size=args.batch_size,
                      check=False, mlp=args.mlp)
        sec = time.perf_counter() - t0
        s = g.settings
        rows = int(g.attributed.sum())
        print(f"{cap:>18} {rows:>6} {s['backward_passes']:>7} {sec:>8.2f} {sec / base:>6.1f}x  "
              f"{s['seconds']['clean']:.2f}/{s['seconds']['rows']:.2f}   active {s['active_features']}")
        results.append({"max_feature_nodes": cap, "rows": rows, "backward_passes": s["backward_passes"],
                        "seconds": sec, "ratio": sec / base, "active_features": s["active_features"],
                        "phases": s["seconds"]})
    if args.out:
        from interpkit._io import atomic_write_text

        payload = {"command": " ".join(sys.argv), "model": args.model, "tokens": len(ids), "layers": layers,
                   "mlp": args.mlp,
                   "baseline_seconds": base, "results": results, "torch": torch.__version__,
                   "threads": torch.get_num_threads(), "machine": platform.machine()}
        atomic_write_text(Path(args.out), json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
