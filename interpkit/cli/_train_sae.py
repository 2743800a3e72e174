"""``interpkit train-sae``: train a sparse autoencoder on a model layer or on activation records,
or transcoders (one site -> another, e.g. an MLP's input -> its output; one per layer with
``--transcoders``)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = ("train an SAE (TopK, BatchTopK, ReLU+L1, JumpReLU) on a model layer or on activation records, "
        "or per-layer transcoders (MLP in -> MLP out)")

_EPILOG = """examples:
  interpkit train-sae --model smollm2-135m --dataset prompts.jsonl --layer 15 --preset production --out sae/
  interpkit train-sae --records records.jsonl --preset minimal --latent-dim 256 --out sae/ --records-out latents.jsonl
  torchrun --nproc-per-node 4 -m interpkit train-sae --model gpt2 --dataset corpus.jsonl --layer 6 --out sae/
  interpkit train-sae --model gpt2 --dataset corpus.jsonl --site layer6.mlp_in --target-site layer6.mlp_out --out tc/
  interpkit train-sae --model gpt2 --dataset corpus.jsonl --transcoders --layers 3,6,9 --out transcoders/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = _EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    src = p.add_argument_group("what to train on (a model and a dataset, or activation records)")
    src.add_argument("--model", default=None, help="zoo name (smollm2-135m), hub id or local folder")
    src.add_argument("--backend", choices=("transformer_lens", "nnsight"), default=None,
                     help="how the model is run (default: transformer_lens)")
    src.add_argument("--dataset", default=None, help="prompt dataset JSONL (prompt_id, text, criterion_score)")
    src.add_argument("--layer", type=int, default=None, help="block index; the site is layer{L}.resid_post")
    src.add_argument("--site", default=None, help="site name (default: layer{--layer}.resid_post)")
    src.add_argument("--target-site", default=None, metavar="SITE",
                     help="train a transcoder: read --site, reconstruct SITE (e.g. --site layer6.mlp_in "
                          "--target-site layer6.mlp_out; both from the same forward passes)")
    src.add_argument("--transcoders", action="store_true",
                     help="train one transcoder per layer (layer{L}.mlp_in -> layer{L}.mlp_out) into "
                          "--out/layer{L}/, indexed by --out/transcoders.json")
    src.add_argument("--layers", default=None,
                     help="comma-separated layers for --transcoders (default: every layer)")
    src.add_argument("--records", default=None, help="activation records JSONL (each record is one row)")
    src.add_argument("--max-records", type=int, default=None,
                     help="reservoir-sample this many records (deterministic with --seed)")
    src.add_argument("--max-length", type=int, default=128, help="truncation length in tokens (default 128)")
    src.add_argument("--max-tokens", type=int, default=None, help="stop reading the model after this many rows")

    tr = p.add_argument_group("the SAE and its training")
    tr.add_argument("--preset", choices=("minimal", "production"), default="production",
                    help="minimal: one pooled row per prompt, small and quick; production: token rows, "
                         "top-k codes, held-out metrics, dead-latent report (default production)")
    tr.add_argument("--architecture", choices=("topk", "batchtopk", "relu", "jumprelu"), default=None,
                    help="default: topk")
    size = tr.add_mutually_exclusive_group()
    size.add_argument("--latent-dim", type=int, default=None, help="number of latents")
    size.add_argument("--expansion-factor", type=float, default=None, help="latents = factor x d_in")
    tr.add_argument("--top-k", type=int, default=None, help="active latents per row (topk, batchtopk)")
    tr.add_argument("--sparsity-coefficient", type=float, default=None, help="L1 (relu) / L0 (jumprelu) weight")
    tr.add_argument("--epochs", type=int, default=None)
    tr.add_argument("--batch-size", type=int, default=None, help="rows per optimiser step")
    tr.add_argument("--lr", type=float, default=None)
    tr.add_argument("--method", choices=("torch", "sklearn"), default="torch",
                    help="sklearn: MiniBatchDictionaryLearning, the deterministic small-run alternative")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-every", type=int, default=None, help="optimiser steps between checkpoints")
    tr.add_argument("--no-resume", action="store_true", help="start afresh even if --out holds checkpoints")

    out = p.add_argument_group("outputs")
    out.add_argument("--out", required=True, help="folder for the SAE (cfg.json + safetensors), metrics.json "
                                                  "and checkpoints")
    out.add_argument("--format", choices=("native", "saelens"), default="native", help="layout of the saved SAE")
    out.add_argument("--records-out", default=None,
                     help="activation records JSONL of the learned latents (rank with inspect --backend records)")
    out.add_argument("--records-pooling", choices=("max", "mean", "last"), default="max",
                     help="pooling of each latent over a prompt's tokens in --records-out (default max)")
    out.add_argument("--top-k-features", type=int, default=64,
                     help="latents kept per exported record; 0 keeps every non-zero one (default 64)")
    out.add_argument("--causal-out", default=None,
                     help="intervention records JSONL: steer the latents most associated with --criterion")
    out.add_argument("--criterion", default=None, help="criterion text for --causal-out")
    out.add_argument("--causal-dataset", default=None, help="prompts for --causal-out (default: --dataset)")
    out.add_argument("--causal-top-k", type=int, default=5, help="latents steered for --causal-out (default 5)")
    out.add_argument("--target-tokens", default=None,
                     help="comma-separated target tokens of the criterion (default: the dataset's)")
    out.add_argument("--strengths", default="2,4,8",
                     help="candidate steering strengths, in units of each latent's typical activation")


def _check_transcoders(args: argparse.Namespace) -> None:
    if args.layers is not None and not args.transcoders:
        raise ValueError("--layers goes with --transcoders (one transcoder per layer); for one SAE use --layer")
    _layers(args.layers)
    if args.target_site is None and not args.transcoders:
        return
    flag = "--transcoders" if args.transcoders else "--target-site"
    if args.transcoders and args.target_site is not None:
        raise ValueError("--transcoders picks each layer's mlp_in -> mlp_out itself; drop --target-site")
    if args.transcoders and (args.site is not None or args.layer is not None):
        raise ValueError("--transcoders takes --layers, not --site / --layer")
    if args.model is None or args.records is not None:
        raise ValueError(f"{flag} needs --model and --dataset (the two sites are read from the model)")
    if args.method != "torch":
        raise ValueError(f"{flag} trains with --method torch")
    if args.causal_out is not None:
        raise ValueError(f"--causal-out steers SAE latents at the site they read; it does not apply to {flag}")
    if args.transcoders and args.records_out is not None:
        raise ValueError("--records-out exports one SAE's latents; it does not apply to --transcoders")
    if args.target_site is not None and args.site is None and args.layer is None:
        raise ValueError("--target-site needs --site (the transcoder's input, e.g. layer6.mlp_in)")


def _layers(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--layers must be comma-separated integers, got {text!r}") from None


def _check(args: argparse.Namespace) -> None:
    _check_transcoders(args)
    if args.records is None and (args.model is None or args.dataset is None):
        raise ValueError("train-sae needs --records FILE, or --model and --dataset")
    if args.records is not None and args.dataset is not None and args.model is None:
        raise ValueError("--dataset goes with --model; with --records the records are the data")
    if args.model is not None and args.records is None and args.layer is None and args.site is None \
            and not args.transcoders:
        raise ValueError("train-sae on a model needs --layer or --site")
    if args.causal_out is not None:
        if args.criterion is None:
            raise ValueError("--causal-out needs --criterion")
        if args.model is None:
            raise ValueError("--causal-out needs --model (the latents are steered in the model)")
        if args.dataset is None and args.causal_dataset is None:
            raise ValueError("--causal-out needs --dataset or --causal-dataset (prompts with criterion scores)")
    for name in ("records", "dataset", "causal_dataset"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')}: no such file: {path}")


def run(args: argparse.Namespace) -> int:
    from interpkit.records import write_jsonl
    from interpkit.sae import format_metrics, save_sae, train_sae

    _check(args)
    model = rows = None
    if args.model is not None:
        from interpkit.cli._export_records import load_model_for_cli

        model = load_model_for_cli(args.model, args.backend)
    if args.dataset is not None:
        from interpkit.sources import read_prompt_dataset

        rows = read_prompt_dataset(args.dataset)
    if args.transcoders:
        return _run_transcoders(args, model, rows)
    source = args.records if args.records is not None else model
    result = train_sae(
        source,
        texts=rows if args.records is None else None,
        site=args.site,
        layer=args.layer,
        target_site=args.target_site,
        architecture=args.architecture or "topk",
        preset=args.preset,
        latent_dim=args.latent_dim,
        expansion_factor=args.expansion_factor,
        k=args.top_k,
        sparsity_coefficient=args.sparsity_coefficient,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_records=args.max_records,
        max_tokens=args.max_tokens,
        max_length=args.max_length,
        seed=args.seed,
        method=args.method,
        out=args.out,
        checkpoint_every=args.checkpoint_every,
        resume=not args.no_resume,
        progress=True,
        log=print,
    )
    if result.out is None:  # not the writing rank of a distributed run
        return 0
    if args.format != "native":
        save_sae(result.sae, args.out, format=args.format)
    print(format_metrics(result.metrics))
    print(f"wrote {args.out}")
    top_k = None if args.top_k_features == 0 else args.top_k_features
    if args.records_out is not None:
        _write_records(args, result, model, rows, top_k)
    if args.causal_out is not None:
        from interpkit.causal import parse_strengths
        from interpkit.sae import export_sae_interventions
        from interpkit.sources import read_prompt_dataset

        crows = read_prompt_dataset(args.causal_dataset) if args.causal_dataset else rows
        targets = [t for t in args.target_tokens.split(",") if t] if args.target_tokens else None
        exp = export_sae_interventions(result.sae, model, crows, args.criterion, top_k=args.causal_top_k,
                                       strengths=parse_strengths(args.strengths), target_tokens=targets,
                                       seed=args.seed, max_length=args.max_length)
        n = write_jsonl(args.causal_out, exp.records)
        print(f"wrote {n} intervention records for latents {list(exp.latents)} to {args.causal_out}")
    return 0


def _run_transcoders(args: argparse.Namespace, model, rows) -> int:  # noqa: ANN001
    from interpkit.sae import format_metrics, save_sae, train_transcoders

    results = train_transcoders(
        model, rows, layers=_layers(args.layers), out=args.out, max_length=args.max_length, max_tokens=args.max_tokens,
        seed=args.seed, log=print, architecture=args.architecture or "topk", preset=args.preset,
        latent_dim=args.latent_dim, expansion_factor=args.expansion_factor, k=args.top_k,
        sparsity_coefficient=args.sparsity_coefficient, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        checkpoint_every=args.checkpoint_every, resume=not args.no_resume, progress=True,
    )
    for layer, result in results.items():
        if result.out is None:  # not the writing rank of a distributed run
            continue
        if args.format != "native":
            save_sae(result.sae, result.out, format=args.format)
        print(format_metrics(result.metrics, title=f"transcoder layer{layer}.mlp_in -> layer{layer}.mlp_out"))
    print(f"wrote {args.out}")
    return 0


def _write_records(args: argparse.Namespace, result, model, rows, top_k: int | None) -> None:  # noqa: ANN001
    from interpkit.records import write_jsonl
    from interpkit.sae import export_sae_records

    if args.records is None:
        recs = export_sae_records(result.sae, rows, model=model, pooling=args.records_pooling,
                                  top_k_features=top_k, max_length=args.max_length)
    else:
        from interpkit.records import iter_activation_records

        recs = export_sae_records(result.sae, list(iter_activation_records(args.records)), from_records=True,
                                  top_k_features=top_k)
    n = write_jsonl(args.records_out, recs)
    print(f"wrote {n} activation records of {result.sae.d_sae} latents to {args.records_out}")
