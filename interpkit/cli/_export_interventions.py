"""``interpkit export-hf-interventions``: edit a report's top features and write intervention records."""

from __future__ import annotations

import argparse

from interpkit.cli._export_records import add_control_arguments, add_model_arguments, load_model_for_cli

HELP = "ablate (or steer) the top features of an inspect report and write intervention records"


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--report", required=True, help="report.json written by interpkit inspect")
    p.add_argument("--criterion", required=True, help="the criterion, as text (must match the report's)")
    p.add_argument("--target-tokens", default=None,
                   help="the criterion's target tokens: a JSON list or a JSON file; default: the dataset's")
    p.add_argument("--out", required=True, help="intervention records JSONL to write")
    p.add_argument("--top-k", type=int, default=10, help="how many top features to edit (default 10)")
    p.add_argument("--directions", default=None,
                   help="DirectionSet folder for direction features (export-hf-contrast writes <records>.directions)")
    p.add_argument("--kind", action="append", choices=("ablate", "steer", "amplify"), default=None,
                   help="intervention kind; repeat for several (default ablate)")
    p.add_argument("--ablate-mode", choices=("zero", "mean"), default="zero", help="default zero")
    p.add_argument("--strength", type=float, default=8.0, help="strength for steer/amplify (default 8)")
    add_control_arguments(p, n_default=1)
    p.add_argument("--threshold", type=float, default=0.5,
                   help="criterion_score at or above this is positive (default 0.5)")
    p.add_argument("--split", choices=("test", "train", "all"), default="test",
                   help="prompts to run on (default test: the ranking chose features on train)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from interpkit.causal import export_interventions, read_target_tokens
    from interpkit.records import write_jsonl
    from interpkit.report import load_report
    from interpkit.sources import read_prompt_dataset

    report = load_report(args.report)
    rows = read_prompt_dataset(args.dataset)
    target_tokens = read_target_tokens(args.target_tokens)
    if not target_tokens and not any(r.target_tokens for r in rows):
        from interpkit.causal import metric_for_criterion

        metric_for_criterion(args.criterion, rows=rows)  # raises the clear error before loading the model
    model = load_model_for_cli(args.model, args.backend)
    records = export_interventions(
        model, report, rows, args.criterion, top_k=args.top_k, directions=args.directions,
        kinds=tuple(args.kind or ("ablate",)), target_tokens=target_tokens, ablate_mode=args.ablate_mode,
        strength=args.strength, n_controls=args.n_controls, controls=args.controls, threshold=args.threshold,
        split=None if args.split == "all" else args.split, seed=args.seed, batch_size=args.batch_size,
    )
    write_jsonl(args.out, records)
    print(f"wrote {len(records)} intervention records to {args.out}")
    return 0
