"""``interpkit validate-matches``: validate a matches.json by steering both sides (`validate_matches`)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("validate the top matches of a matches.json by interventions on both models (the next-token mass "
        "on target tokens must move alike, beyond random orthogonal controls); write the validated matches")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("matches", help="matches.json written by `interpkit match` (or its folder)")
    p.add_argument("--left-model", required=True, help="the left report's model (a packaged name or hub id)")
    p.add_argument("--right-model", default=None, help="the right report's model (default: the left model)")
    p.add_argument("--model-backend", default="auto", help="model backend (auto, transformer_lens, nnsight)")
    p.add_argument("--prompts", required=True,
                   help="held-out prompts: a prompt-dataset JSONL (field text) or a text file, one prompt a line")
    p.add_argument("--target-tokens", required=True,
                   help="comma-separated strings whose next-token mass is the metric, e.g. ' 1998, published'")
    p.add_argument("--criterion", default=None, help="the metric's criterion text (default: the left report's)")
    p.add_argument("--left-table", default=None, help="left FeatureTable folder (default <left report>/table)")
    p.add_argument("--right-table", default=None, help="right FeatureTable folder (default <right report>/table)")
    p.add_argument("--top-n", type=int, default=5, help="matches validated, best first (default 5)")
    p.add_argument("--kinds", default="steer", help="comma-separated: steer, ablate (default steer)")
    p.add_argument("--strength", type=float, default=1.0, help="steering strength in site-norm units (default 1)")
    p.add_argument("--scale", default="site_norm", choices=("site_norm", "as_given"))
    p.add_argument("--n-controls", type=int, default=4, help="orthogonal controls per feature and kind (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None,
                   help="validated matches JSON (markdown beside it) or folder (default <matches>.validated.json)")


def _prompts(path: str) -> list[str]:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--prompts: {p} does not exist")
    if p.suffix == ".jsonl":
        from interpkit.sources import read_prompt_dataset

        return [r.text for r in read_prompt_dataset(p, scores_optional=True)]
    lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    return [line for line in lines if line]


def run(args: argparse.Namespace) -> int:
    from interpkit.match import read_matches, validate_saved_matches
    from interpkit.models import load_model

    tokens = [t for t in args.target_tokens.split(",") if t.strip()]
    if not tokens:
        raise ValueError("--target-tokens: give at least one token string")
    prompts = _prompts(args.prompts)
    if not prompts:
        raise ValueError(f"--prompts: {args.prompts} holds no prompts")
    result = read_matches(args.matches)  # before the models load: a bad file fails fast
    left = load_model(args.left_model, args.model_backend)
    right = left if args.right_model in (None, args.left_model) else load_model(args.right_model, args.model_backend)
    out = args.out
    if out is None:
        src = Path(args.matches)
        src = src / "matches.json" if src.is_dir() else src
        out = src.with_name(src.stem + ".validated.json")
    validated = validate_saved_matches(
        result, left, right, prompts, tokens, criterion=args.criterion, left_table=args.left_table,
        right_table=args.right_table, out=out, top_n=args.top_n,
        kinds=tuple(k.strip() for k in args.kinds.split(",") if k.strip()), strength=args.strength,
        scale=args.scale, n_controls=args.n_controls, seed=args.seed)
    for m in validated.matches:
        if m.validation is not None:
            print(f"  {m.left_id} -> {m.right_id}  validated {m.validated}  reasons {m.validation.get('reasons')}")
    out_path = Path(out) if Path(out).suffix.lower() == ".json" else Path(out) / "matches.json"
    print(f"wrote {out_path} and {out_path.with_suffix('.md')}")
    return 0
