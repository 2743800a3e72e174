"""``interpkit run``: run a workflow config (JSON, TOML or YAML) and write its manifest."""

from __future__ import annotations

import argparse

HELP = "run a workflow of interpkit steps from a config file (.json/.toml/.yaml) and write manifest.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the run config: .json, .toml or .yaml")
    p.add_argument("--dry-run", action="store_true", help="print the plan (resolved paths); run and write nothing")
    p.add_argument("--out", default=None,
                   help="run folder (default: the config's 'out', relative to the config file; else ./run there)")
    p.add_argument("--allow-outside", action="store_true", default=None,
                   help="let paths leave the config and run folders")


def run(args: argparse.Namespace) -> int:
    import sys

    from interpkit.runs import StepFailed, run_config

    try:
        run_config(args.config, out=args.out, allow_outside=args.allow_outside, dry_run=args.dry_run)
    except StepFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
