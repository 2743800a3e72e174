"""``interpkit export-hf-records``: stream a model's neurons over a prompt dataset into activation records.

Also holds the helpers the other ``export-hf-*`` commands share (model loading, layer lists).
"""

from __future__ import annotations

import argparse
from typing import Any

HELP = "run a model over a prompt dataset and write neuron activation records (JSONL) for inspect"

BACKEND_CHOICES = ("transformer_lens", "nnsight")


def load_model_for_cli(name: str, backend: str | None) -> Any:
    """Load ``--model`` (a zoo name, a hub id or a local folder) behind ``--backend``."""
    from interpkit.models import load_model

    return load_model(name, backend)


def parse_ints(text: str | None, flag: str) -> list[int] | None:
    """``"6,15"`` -> ``[6, 15]``; None stays None; anything else names ``flag`` in its error."""
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated integers, got {text!r}") from None


def parse_layers(text: str | None) -> list[int] | None:
    """``--layers "6,15"`` -> ``[6, 15]``; None stays None."""
    return parse_ints(text, "--layers")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """``--model``, ``--backend``, ``--dataset``, ``--batch-size`` (shared by the export commands)."""
    p.add_argument("--model", required=True, help="zoo name (smollm2-135m), hub id or local folder")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default=None,
                   help="activation backend (default: transformer_lens)")
    p.add_argument("--dataset", required=True,
                   help="prompt dataset JSONL: prompt_id, text, criterion_score (+ split, target_tokens)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default 8)")


def _control_kinds(text: str) -> tuple[str, ...]:
    from interpkit.causal import check_controls

    try:
        return check_controls(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_control_arguments(p: argparse.ArgumentParser, *, n_default: int) -> None:
    """``--n-controls`` and ``--controls`` (the control kinds, checked as argparse parses them)."""
    p.add_argument("--n-controls", type=int, default=n_default,
                   help=f"controls per feature and control kind (default {n_default})")
    p.add_argument("--controls", type=_control_kinds, default=("random",),
                   help="control kinds, comma-separated: random (same-norm random directions, default), "
                        "matched_frequency (as often active on the prompts), placebo (an on-distribution "
                        "direction orthogonal to the feature and the class contrast); see docs/ranking.md")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_model_arguments(p)
    p.add_argument("--out", required=True, help="activation records JSONL to write")
    p.add_argument("--layers", default=None, help="comma-separated block indices (default: the middle block)")
    p.add_argument("--site", default="resid_post", choices=("resid_post", "resid_pre", "mlp_out", "attn_out"),
                   help="site kind read at each layer (default resid_post)")
    p.add_argument("--pool", default="max", choices=("max", "mean", "last"),
                   help="pooling over each prompt's tokens, BOS excluded (default max)")
    p.add_argument("--top-k-features", type=int, default=64,
                   help="neurons kept per row, largest |activation| first; 0 keeps all (default 64)")
    p.add_argument("--max-length", type=int, default=128, help="truncation length in tokens (default 128)")


def run(args: argparse.Namespace) -> int:
    from interpkit.causal import export_records
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    rows = read_prompt_dataset(args.dataset)
    model = load_model_for_cli(args.model, args.backend)
    records = export_records(
        model, rows, layers=parse_layers(args.layers), site_kind=args.site, pool=args.pool,
        top_k_features=args.top_k_features or None, batch_size=args.batch_size, max_length=args.max_length,
    )
    write_jsonl(args.out, records)
    print(f"wrote {len(records)} activation records to {args.out}")
    return 0
