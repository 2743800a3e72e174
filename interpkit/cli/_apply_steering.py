"""``interpkit apply-steering``: baseline and steered generations of prompts under a steering artifact."""

from __future__ import annotations

import argparse

from interpkit.cli._export_records import BACKEND_CHOICES, load_model_for_cli

HELP = "steer prompts with a steering artifact: baseline vs steered generations with their scores (JSONL)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifact", required=True, help="steering artifact folder written by export-steering")
    p.add_argument("--prompts", required=True, help="prompt JSONL: prompt_id, text (scores optional)")
    p.add_argument("--out", required=True, help="generations JSONL to write")
    p.add_argument("--strength", type=float, default=None, help="override the artifact's strength")
    p.add_argument("--model", default=None, help="model to steer (default: the artifact's model name)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=None, help="activation backend")
    p.add_argument("--allow-other-model", action="store_true",
                   help="steer a model whose fingerprint differs from the artifact's (recorded in every row)")
    p.add_argument("--criterion", default=None, help="score the continuations for this (default: the artifact's)")
    p.add_argument("--compiler", default="embedding",
                   help="criterion compiler for the score (default embedding; keyword needs no model)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="tokens per generation (default: artifact, else 32)")
    # two plain flags (not BooleanOptionalAction) so that config runs read them too; neither: the artifact's
    chat = p.add_mutually_exclusive_group()
    chat.add_argument("--chat", action="store_true", help="wrap prompts in the chat template")
    chat.add_argument("--no-chat", action="store_true", help="do not wrap prompts in the chat template")
    p.add_argument("--seed", type=int, default=None)


def run(args: argparse.Namespace) -> int:
    from interpkit.causal import apply_steering
    from interpkit.records import read_steering_artifact

    art = read_steering_artifact(args.artifact)
    model = load_model_for_cli(args.model or art.model_name, args.backend)
    rows = apply_steering(art, model, args.prompts, args.out, strength=args.strength,
                          allow_other_model=args.allow_other_model, criterion=args.criterion,
                          compiler=args.compiler, max_new_tokens=args.max_new_tokens,
                          chat=True if args.chat else False if args.no_chat else None, seed=args.seed)
    changed = sum(r["baseline"]["text"] != r["steered"]["text"] for r in rows)
    print(f"wrote {len(rows)} generations to {args.out} ({changed} steered continuations differ from baseline)")
    return 0
