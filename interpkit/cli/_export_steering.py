"""``interpkit export-steering``: one report feature as a steering artifact (vector, strength, held-out evidence)."""

from __future__ import annotations

import argparse

from interpkit.cli._export_records import BACKEND_CHOICES, load_model_for_cli

HELP = "write a report feature as a versioned steering artifact (refused without held-out causal evidence)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--report", required=True, help="report folder or report.json written by interpkit inspect")
    p.add_argument("--feature", required=True, help="the feature id, as the report's ranking names it")
    p.add_argument("--out", required=True, help="artifact folder to write (steering.json + vector.safetensors)")
    p.add_argument("--model", default=None, help="the report's model (default: the model the report names)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=None, help="activation backend")
    p.add_argument("--directions", default=None,
                   help="DirectionSet folder for direction features (export-hf-contrast writes <records>.directions)")
    p.add_argument("--interventions", default=None,
                   help="the report's intervention records, if they moved (their sha256 must match the report's)")
    p.add_argument("--strength", type=float, default=None,
                   help="steering strength (default: the one chosen on the train split in the records)")
    p.add_argument("--force", action="store_true",
                   help="write an artifact marked validated: false when the held-out evidence does not validate it")


def run(args: argparse.Namespace) -> int:
    from interpkit.causal import export_steering
    from interpkit.records import read_report

    report = read_report(args.report)
    model = load_model_for_cli(args.model or report.model, args.backend)
    art = export_steering(report, args.feature, args.out, model=model, directions=args.directions,
                          interventions=args.interventions, strength=args.strength, force=args.force,
                          command=args._command)
    ev = art.evidence
    status = "validated" if art.validated else "NOT validated (forced)"
    effect = "" if ev is None else (f"; held-out {ev['intervention']} effect {ev['effect']:.4g} "
                                    f"[{ev['ci_low']:.4g}, {ev['ci_high']:.4g}], n={ev['n']}")
    print(f"wrote steering artifact {args.out}: {art.feature} at {art.site}, strength {art.strength:g} "
          f"(chosen on {art.strength_chosen_on}), {status}{effect}")
    return 0
