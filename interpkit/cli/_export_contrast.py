"""``interpkit export-hf-contrast``: a contrast direction, its strength sweep, records and interventions."""

from __future__ import annotations

import argparse
import json

from interpkit.cli._export_records import add_control_arguments, add_model_arguments, load_model_for_cli

HELP = ("learn the positive-minus-negative direction at a layer, sweep its steering strength and write "
        "activation + intervention records")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--criterion", required=True, help="the criterion, as text (written into every row)")
    p.add_argument("--target-tokens", default=None,
                   help="the criterion's target tokens: a JSON list or a JSON file (a list or an object with "
                        "'target_tokens'); default: the dataset's target_tokens field")
    p.add_argument("--records-out", required=True,
                   help="activation records JSONL (projections); the directions are saved to <this>.directions/")
    p.add_argument("--interventions-out", required=True,
                   help="intervention records JSONL (test split, chosen strength, controls); the sweep "
                        "table goes to <this>.sweep.json")
    p.add_argument("--layer", type=int, default=None, help="block index (default: the middle block)")
    p.add_argument("--strength-sweep", default=None,
                   help="comma-separated strengths tried on the train split, e.g. '3,10,30,100'")
    p.add_argument("--strength", type=float, default=8.0, help="strength used without a sweep (default 8)")
    p.add_argument("--side-effect-weight", type=float, default=1.0,
                   help="the sweep picks the strength with the best train effect - WEIGHT x side effect "
                        "(next-token TV on negatives; default 1)")
    p.add_argument("--pool", default="last", choices=("max", "mean", "last"),
                   help="pooling the direction is learnt and projected with (default last)")
    add_control_arguments(p, n_default=2)
    p.add_argument("--threshold", type=float, default=0.5,
                   help="criterion_score at or above this is positive (default 0.5)")
    p.add_argument("--max-length", type=int, default=128, help="truncation length in tokens (default 128)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from interpkit._io import atomic_write_text
    from interpkit.causal import export_contrast, parse_strengths, read_target_tokens
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    rows = read_prompt_dataset(args.dataset)
    strengths = parse_strengths(args.strength_sweep) if args.strength_sweep else (args.strength,)
    target_tokens = read_target_tokens(args.target_tokens)
    if not target_tokens and not any(r.target_tokens for r in rows):
        from interpkit.causal import metric_for_criterion

        metric_for_criterion(args.criterion, rows=rows)  # raises the clear error before loading the model
    model = load_model_for_cli(args.model, args.backend)
    result = export_contrast(
        model, rows, args.criterion, layer=args.layer, strengths=strengths, target_tokens=target_tokens,
        pool=args.pool, side_effect_weight=args.side_effect_weight, n_controls=args.n_controls, controls=args.controls,
        threshold=args.threshold, seed=args.seed,
        batch_size=args.batch_size, max_length=args.max_length,
    )
    write_jsonl(args.records_out, result.records)
    result.directions.save(f"{args.records_out}.directions")
    write_jsonl(args.interventions_out, result.interventions)
    atomic_write_text(f"{args.interventions_out}.sweep.json", json.dumps(result.sweep.to_dict(), indent=2))
    print(f"wrote {len(result.records)} activation records to {args.records_out} "
          f"(directions in {args.records_out}.directions)")
    print(f"wrote {len(result.interventions)} intervention records to {args.interventions_out}")
    for row in result.sweep.train:
        mark = "  <- chosen" if row["strength"] == result.sweep.strength else ""
        print(f"  strength {row['strength']:g}: train effect {row['effect']:+.4f}, side effect "
              f"{row['side_effect']:.4f}, specificity {row['specificity']:+.4f}{mark}")
    return 0
