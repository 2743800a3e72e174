"""``interpkit search-features``: find features across saved reports and FeatureTables by text."""

from __future__ import annotations

import argparse

HELP = ("find features across saved reports and FeatureTables by label, explanation or top example "
        "(exact and substring hits first, then MiniLM embedding similarity)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("query", help="the text searched for")
    p.add_argument("--reports", nargs="+", required=True, metavar="PATH",
                   help="report.json files, report folders, saved FeatureTable folders, or folders holding them")
    p.add_argument("--top-k", type=int, default=20, help="hits shown (default 20)")
    p.add_argument("--no-embed", action="store_true",
                   help="text matches only (no MiniLM embedding search: nothing is loaded)")
    p.add_argument("--out", default=None, help="also write the hits as JSON (kind interpkit_feature_search)")


def run(args: argparse.Namespace) -> int:
    from interpkit.report import search_features
    from interpkit.report._search import search_hits_json

    hits = search_features(args.query, args.reports, top_k=args.top_k, embed=not args.no_embed)
    if args.out is not None:
        from interpkit._io import atomic_write_text

        atomic_write_text(args.out, search_hits_json(args.query, hits, embed=not args.no_embed))
    if not hits:
        print(f"no feature matches {args.query!r}")
    for i, h in enumerate(hits, 1):
        extra = [f"rank {h.rank}" if h.rank is not None else None, h.tier,
                 None if h.label_score is None else f"label score {h.label_score:.2f}"]
        print(f"{i:>3}. {h.feature_id}  [{h.match} {h.where} {h.score:.3f}]  {h.label or '(no label)'}  "
              f"({'; '.join(x for x in extra if x)})  {h.source}")
        if h.where != "label":
            print(f"      {h.text[:160]!r}")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0
