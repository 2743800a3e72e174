"""``interpkit compile-criterion`` and ``interpkit score-prompts``: criteria into prompt datasets.

``compile-criterion`` turns a criterion text into a balanced, train/test-split prompt dataset
chosen from a pool (the packaged AxBench text pool by default); ``score-prompts`` re-scores an
existing prompt dataset row for row. Both write prompt-dataset JSONL atomically; rows carry
``criterion_score`` plus ``criterion_label`` and ``criterion_provenance`` extras.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

HELP = "compile a criterion text into a balanced, split prompt dataset (JSONL) from a pool of texts"
SCORE_HELP = "score every row of a prompt dataset (JSONL) for a criterion; ids and order kept"

COMPILER_NAMES = ("embedding", "keyword", "judge", "generative", "logit", "labelled")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--criterion", required=True, help="the criterion, as text")
    p.add_argument("--compiler", default="embedding",
                   help=f"how texts are scored: {', '.join(COMPILER_NAMES)} (default embedding)")
    p.add_argument("--contrast", default=None, help="what the criterion is NOT (embedding compiler)")
    p.add_argument("--keywords", default=None,
                   help="comma-separated keywords or regexes (keyword compiler; default: from the criterion)")
    p.add_argument("--target-tokens", default=None,
                   help="target tokens for the logit compiler: comma-separated (spaces kept), a JSON list, "
                        "or a JSON file")
    p.add_argument("--judge", default="local",
                   help="chat model for the judge/generative compilers: local (SmolLM2) or api "
                        "(INTERPKIT_LLM_BASE_URL / INTERPKIT_LLM_MODEL / INTERPKIT_LLM_API_KEY)")
    p.add_argument("--model", default="smollm2-135m", help="model for the logit compiler (default smollm2-135m)")
    g = p.add_argument_group("labelled compiler (your own labels or scores)")
    g.add_argument("--labels", default=None, help="labelled data: .jsonl, .csv, .tsv or .parquet")
    g.add_argument("--text-column", default="text")
    g.add_argument("--score-column", default=None, help="column of scores in [0, 1]")
    g.add_argument("--label-column", default=None, help="column of labels")
    g.add_argument("--positive-labels", default="1,positive,true,yes",
                   help="comma-separated labels meaning positive (default 1,positive,true,yes)")
    g.add_argument("--negative-labels", default=None,
                   help="comma-separated labels meaning negative (default: every other label)")
    p.add_argument("--out", required=True, help="output prompt dataset JSONL")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``compile-criterion``."""
    _common(p)
    p.add_argument("--pool", default=None, help="prompt dataset JSONL to choose from (default: packaged text pool)")
    p.add_argument("--n", type=int, default=None, help="at most N positives and N negatives")
    p.add_argument("--include-uncertain", action="store_true", help="keep texts in the uncertain band")
    p.add_argument("--test-fraction", type=float, default=0.25, help="share of each class in test (default 0.25)")
    p.add_argument("--seed", type=int, default=0)


def add_score_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``score-prompts``."""
    p.add_argument("--dataset", required=True, help="prompt dataset JSONL to score")
    _common(p)


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v for v in value.split(",") if v.strip()]
    return items or None


def _criterion(args: argparse.Namespace, rows: Sequence[Any] = ()) -> Any:
    from interpkit.causal._metric import read_target_tokens
    from interpkit.criterion import Criterion

    tokens: Any = args.target_tokens
    if tokens is not None:
        text = tokens.strip()
        tokens = read_target_tokens(tokens) if text.startswith("[") or text.endswith(".json") else _split_list(tokens)
    elif args.compiler == "logit":
        seen: list[str] = []
        for row in rows:
            seen += [t for t in (row.target_tokens or ()) if t not in seen]
        tokens = seen or None
    keywords = [k.strip() for k in _split_list(args.keywords) or []] or None
    return Criterion(text=args.criterion, contrast=args.contrast, target_tokens=tokens, keywords=keywords)


def _compiler(args: argparse.Namespace) -> Any:
    from interpkit.criterion import get_compiler

    name = args.compiler
    options: dict[str, Any] = {}
    if name in ("judge", "generative"):
        options["chat"] = args.judge
    elif name == "logit":
        options["model"] = args.model
    elif name in ("labelled", "labeled"):
        if args.labels is None:
            raise ValueError("--compiler labelled needs --labels FILE (with --score-column or --label-column)")
        options = {"path": args.labels, "text_column": args.text_column, "score_column": args.score_column,
                   "label_column": args.label_column,
                   "positive_labels": [v.strip() for v in args.positive_labels.split(",")]}
        if args.negative_labels is not None:
            options["negative_labels"] = [v.strip() for v in args.negative_labels.split(",")]
    return get_compiler(name, **options)


def _summary(rows: list[Any]) -> str:
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r.extra.get('criterion_label')}" + (f"/{r.split}" if r.split else "")
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def run(args: argparse.Namespace) -> int:
    """``compile-criterion``: write the compiled dataset; exit 2 on bad input."""
    from interpkit.criterion import compile_criterion
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    pool = read_prompt_dataset(args.pool) if args.pool is not None else None
    rows = compile_criterion(_criterion(args, pool or []), _compiler(args), pool, max_per_class=args.n,
                             include_uncertain=args.include_uncertain, seed=args.seed,
                             test_fraction=args.test_fraction)
    write_jsonl(args.out, rows)
    print(f"wrote {len(rows)} prompts to {args.out} ({_summary(rows)})")
    return 0


def run_score(args: argparse.Namespace) -> int:
    """``score-prompts``: write every row back with its new score; exit 2 on bad input."""
    from interpkit.criterion import score_prompts
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    # the command adds the scores, so rows may come without them (the other readers require the field)
    rows = read_prompt_dataset(args.dataset, scores_optional=True)
    scored = score_prompts(rows, _criterion(args, rows), _compiler(args))
    write_jsonl(args.out, scored)
    unscored = sum(r.criterion_score is None for r in scored)
    print(f"wrote {len(scored)} scored prompts to {args.out} ({_summary(scored)}"
          + (f"; {unscored} could not be scored" if unscored else "") + ")")
    return 0
