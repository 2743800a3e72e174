"""The ``match`` step when ``interpkit match`` is not installed: ``interpkit.match.compare`` directly.

Its arguments are the ones the SPEC gives ``interpkit match``; ``weights`` may be a mapping in the
config (``{"activation": 1, "explanation": 0.5}``) or the command-line text ``activation=1,...``.

Example:
    >>> from interpkit.runs._match_step import parse_weights
    >>> parse_weights("activation=1,explanation=0.5")
    {'activation': 1.0, 'explanation': 0.5}
"""

from __future__ import annotations

import argparse
import importlib.util


def available() -> bool:
    """Whether ``interpkit.match`` exists in this install."""
    return importlib.util.find_spec("interpkit.match") is not None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--left", required=True, help="left report.json")
    p.add_argument("--right", required=True, help="right report.json")
    p.add_argument("--out", required=True, help="matches.json to write (matches.md beside it)")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--min-score", type=float, default=None)
    p.add_argument("--weights", default=None, help="component=weight,... ")
    p.add_argument("--left-table", default=None)
    p.add_argument("--right-table", default=None)


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``"a=1,b=0.5"`` -> ``{"a": 1.0, "b": 0.5}``; None stays None."""
    if not text:
        return None
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"--weights: expected component=number, got {item!r}") from None
        if not sep:
            raise ValueError(f"--weights: expected component=number, got {item!r}")
    return out


def run(args: argparse.Namespace) -> int:
    from interpkit.match import compare

    kw = {"top_k": args.top_k, "min_score": args.min_score}
    weights = parse_weights(args.weights)
    if weights is not None:
        kw["weights"] = weights
    if args.left_table or args.right_table:
        from interpkit.table import FeatureTable

        kw["left_table"] = FeatureTable.load(args.left_table) if args.left_table else None
        kw["right_table"] = FeatureTable.load(args.right_table) if args.right_table else None
    result = compare(args.left, args.right, out=args.out, **kw)
    print(f"wrote {args.out} ({len(result.matches)} matches)")  # noqa: T201 - a command's report line
    return 0
