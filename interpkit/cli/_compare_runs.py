"""``interpkit compare-runs``: what changed between two saved runs (``report.json`` A and B)."""

from __future__ import annotations

import argparse

HELP = ("compare two saved runs: features gained and lost, rank shifts, tier changes, association and causal "
        "intervals, changed settings; write comparison.json/.md and a chart, or print the markdown")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("a", help="run A: report.json (or its folder)")
    p.add_argument("b", help="run B: report.json (or its folder)")
    p.add_argument("--out", default=None,
                   help="folder for comparison.json, comparison.md, comparison.vl.json and comparison.html "
                        "(replaced whole, atomically); without it the markdown is printed")
    p.add_argument("--rel-tol", type=float, default=1e-6, help="relative tolerance for numbers (default 1e-6)")
    p.add_argument("--abs-tol", type=float, default=1e-9, help="absolute tolerance for numbers (default 1e-9)")


def run(args: argparse.Namespace) -> int:
    from interpkit.report import compare_runs

    if args.rel_tol < 0 or args.abs_tol < 0:
        raise ValueError(f"--rel-tol and --abs-tol must be >= 0, got {args.rel_tol} and {args.abs_tol}")
    comparison = compare_runs(args.a, args.b, rel_tol=args.rel_tol, abs_tol=args.abs_tol)
    if args.out is None:
        print(comparison.to_markdown(), end="")
        return 0
    from interpkit.viz import save_run_comparison

    paths = save_run_comparison(comparison, args.out)
    verdict = "no change" if comparison.no_change else (
        f"{len(comparison.gained)} gained, {len(comparison.lost)} lost, {len(comparison.rank_shifts)} rank shifts, "
        f"{len(comparison.tier_changes)} tier changes, {len(comparison.settings_changed)} settings changed")
    print(f"{verdict}; wrote {', '.join(str(p) for p in paths)}")
    return 0
