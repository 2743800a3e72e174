"""``interpkit demo``: a complete run, written to a folder.

By default the demo runs on the packaged SmolLM2-135M-Instruct (see :mod:`interpkit.demo`): neuron
and contrast-direction features for a real criterion, steering and ablation tests with random
controls, and the report. ``--toy`` runs the synthetic source instead: it writes the toy table as
activation and intervention records and inspects them through the ordinary ``records`` path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "run the main job end to end on the packaged model and write its outputs"

TOY_CRITERION = "the text mentions an animal"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--model", default="smollm2-135m", help="model (default: the packaged smollm2-135m)")
    p.add_argument("--backend", choices=("nnsight", "transformer_lens"), default="nnsight")
    p.add_argument("--layer", type=int, default=None, help="block to study (default: the middle one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-k", type=int, default=8)
    p.add_argument("--toy", action="store_true", help="run on synthetic data with planted ground truth instead")


def _run_toy(args: argparse.Namespace) -> int:
    from interpkit.inspect import inspect
    from interpkit.records import write_jsonl
    from interpkit.sources import make_toy_table

    out = Path(args.out)
    toy = make_toy_table(seed=args.seed, criterion=TOY_CRITERION)
    records_path = out / "inputs" / "records.jsonl"
    interventions_path = out / "inputs" / "interventions.jsonl"
    write_jsonl(records_path, toy.table.to_records())
    write_jsonl(interventions_path, toy.interventions)
    print(f"demo: synthetic toy table ({toy.table.n_examples} examples x {toy.table.n_features} features) "
          f"written as {records_path} and {interventions_path}")
    report = inspect(None, TOY_CRITERION, backend="records", records=records_path,
                     interventions=interventions_path, top_k=args.top_k, out=out, seed=args.seed)
    print(f"demo: wrote {report.path} and {report.path.with_suffix('.md')}")
    truth = toy.truth
    print(f"demo: planted truth — carrier {truth.carrier}, causal-only {truth.causal_only}, "
          f"decoy {truth.decoy}; the report's order:")
    for f in report.features:
        print(f"  {f.rank:>2}. {f.feature_id:<12} tier={f.components.get('tier')}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.toy:
        return _run_toy(args)
    from interpkit.demo import run_demo

    report = run_demo(args.out, model=args.model, backend=args.backend, layer=args.layer,
                      top_k=args.top_k, seed=args.seed, log=lambda msg: print(f"demo: {msg}", flush=True))
    print(f"demo: wrote {report.path} and {report.path.with_suffix('.md')}")
    for f in report.features:
        c = f.components
        auroc = c["association"]["auroc_test"]
        causal = c["causal"]
        effect = "" if causal["effect"] is None else f" effect={causal['effect']:+.4f}"
        print(f"  {f.rank:>2}. {f.feature_id:<28} {c['tier']:<28} AUROC(held-out)="
              f"{'–' if auroc is None else f'{auroc:.3f}'} causal={causal['status']}{effect}")
    return 0
