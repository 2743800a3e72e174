"""``interpkit match``: match the features of two reports one-to-one; write matches.json + matches.md."""

from __future__ import annotations

import argparse

HELP = "match two reports' features across models (fingerprints, one-to-one, null); write matches.json + .md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--left", required=True, help="left report.json (or its folder)")
    p.add_argument("--right", required=True, help="right report.json (or its folder)")
    p.add_argument("--out", default="matches.json",
                   help="output JSON path (matches.md is written beside it) or a folder (default matches.json)")
    p.add_argument("--top-k", type=int, default=10, help="candidates per left feature (default 10)")
    p.add_argument("--min-score", type=float, default=None, help="never match pairs scoring below this")
    p.add_argument("--weights", default=None,
                   help="component weights, e.g. activation=1,explanation=0.5,decoder=0.5,causal=0.25,examples=0.25 "
                        "(components left out get 0; default: those values)")
    p.add_argument("--left-table", default=None,
                   help="saved FeatureTable folder of the left report (full activation signatures; default: "
                        "<report folder>/table when present, else the explanation's example activations)")
    p.add_argument("--right-table", default=None, help="saved FeatureTable folder of the right report")
    p.add_argument("--embed", action="store_true",
                   help="embed labels and top examples with the packaged MiniLM encoder (explanation component)")
    p.add_argument("--null-samples", type=int, default=2000, help="shuffled pairs scored for the null (default 2000)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from interpkit.match import compare

    if args.top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {args.top_k}")
    encoder = None
    if args.embed:
        from interpkit.models import sentence_encoder

        encoder = sentence_encoder()
    result = compare(
        args.left, args.right, args.out,
        left_table=args.left_table, right_table=args.right_table, encoder=encoder,
        weights=args.weights, top_k=args.top_k, min_score=args.min_score,
        null_samples=args.null_samples, seed=args.seed,
    )
    null = result.null
    print(f"{len(result.matches)} matches ({len(result.confident())} confident); null mean "
          f"{null['mean']:.3f} sd {null['std']:.3f}; components {', '.join(result.settings['components_used'])}")
    for name, why in result.settings["skipped_components"].items():
        print(f"skipped component {name}: {why}")
    for m in result.matches[:5]:
        print(f"  {m.left_id} -> {m.right_id}  score {m.score:.3f}  z {m.null_z or 0:.1f}  confidence {m.confidence:.2f}")
    from pathlib import Path

    out = Path(args.out)
    out = out if out.suffix.lower() == ".json" else out / "matches.json"
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0
