"""``interpkit bench detect|steer|generate``: AxBench-style benchmarks of detection and steering methods."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "AxBench-style benchmark: concept detection (detect), steering (steer), or make a task (generate)"


def _layer_arg(value: str) -> int | str:
    """``--layer``: a block index or ``auto``."""
    if value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a block index or 'auto', got {value!r}") from None


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task", required=True, help="AxBench task folder (metadata.jsonl, train_data.parquet, "
                                                  "latent_eval_data.parquet)")
    p.add_argument("--model", default="smollm2-135m", help="model name or folder (default smollm2-135m)")
    p.add_argument("--backend", default="nnsight", choices=("nnsight", "transformer_lens"))
    where = p.add_mutually_exclusive_group()
    where.add_argument("--layer", type=_layer_arg, default=None,
                       help="block whose residual output is read and steered (default: round(0.4 * n_layers)); "
                            "'auto': chosen on the training texts (DiffMean cross-validated at 20-80 %% depth)")
    where.add_argument("--site", default=None, help="a site name instead of --layer")
    p.add_argument("--methods", default=None, help="comma-separated method names (default: all for the mode)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--quick", action="store_true", help="2 concepts, 8 rows per class, 128-token texts")
    p.add_argument("--concepts", default=None, help="only these concept ids, e.g. 0,3,5")
    p.add_argument("--max-length", type=int, default=256, help="token limit per formatted text (default 256)")
    p.add_argument("--batch-size", type=int, default=8, help="texts per forward pass (default 8)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--tokens", default="all", choices=("all", "response"),
                   help="tokens methods train on and score: all (AxBench: instruction, template and response) "
                        "or response (only the response)")
    p.add_argument("--options", default=None,
                   help='per-method overrides as JSON, e.g. \'{"probe": {"epochs": 4}, "reft-r1": {"epochs": 3}}\'')
    p.add_argument("--sae", default=None, help="SAE folder/file for the SAE rows (default: train one on the task)")
    p.add_argument("--chat", default=None,
                   help="chat model for the Prompt baseline: 'local' (the benchmarked model) or 'openai' "
                        "(INTERPKIT_LLM_BASE_URL / INTERPKIT_LLM_MODEL / INTERPKIT_LLM_API_KEY)")
    p.add_argument("--layer-choice", default=None, help="a sentence recorded in the results on how the layer was chosen")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the activation / fit cache")
    p.add_argument("--no-charts", action="store_true", help="skip the altair charts")
    p.add_argument("--quiet", action="store_true")


def _detect_options(d: argparse.ArgumentParser) -> None:
    d.add_argument("--imbalance-ratio", type=float, default=100.0,
                   help="negatives per positive for the imbalanced F1 (0 skips it; default 100)")
    d.add_argument("--concept-block", type=int, default=None,
                   help="run concepts in blocks of N, each rank reading activations only for its own blocks "
                        "(memory bounded by a block; 0: hold the whole task; default: blocks of 32 above 64 "
                        "concepts unless SAE, SAE-A or Criterion-only run)")


def _steer_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--judge", default="local",
                   help="'local' (MiniLM similarity + perplexity, calibrated on the task) or 'openai' "
                        "(LM judge with AxBench's rubric on an OpenAI-compatible endpoint)")
    s.add_argument("--factors", default=None, help="comma-separated steering factors (default AxBench's 14; "
                                                    "the SAE clamping modes: AxBench's SAE clamping grid)")
    s.add_argument("--steer-mode", default="addition",
                   choices=("addition", "clamping", "sae-clamping", "sae-min-clamping"),
                   help="steering intervention (AxBench §4.3): h + a*w (addition), subspace clamping of a "
                        "direction (clamping), an SAE latent set to a (sae-clamping) or to max(current, a) "
                        "(sae-min-clamping)")
    s.add_argument("--instructions", type=int, default=10, help="steering instructions per concept (default 10)")
    s.add_argument("--instructions-file", default=None,
                   help="steering instructions: AlpacaEval json, .jsonl or .txt (default: packaged held-out pool)")
    s.add_argument("--max-new-tokens", type=int, default=128)
    s.add_argument("--gen-batch-size", type=int, default=16)


def add_step_arguments(p: argparse.ArgumentParser) -> None:
    """The ``bench`` step of a run config: ``mode`` (detect or steer) plus both modes' options."""
    p.add_argument("--mode", required=True, choices=("detect", "steer"))
    _common(p)
    _detect_options(p)
    _steer_options(p)


def run_step(args: argparse.Namespace) -> int:
    """Run a ``bench`` config step."""
    args.bench_mode = args.mode
    return run(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="bench_mode", required=True, metavar="MODE")
    d = sub.add_parser("detect", help="concept detection: AUROC per concept, hard negatives, 1:100 F1")
    _common(d)
    _detect_options(d)
    s = sub.add_parser("steer", help="steering: factor sweep, three judge scores, factor chosen on held-out half")
    _common(s)
    _steer_options(s)
    g = sub.add_parser("generate", help="generate a new AxBench-format task from a concept list with a chat model")
    g.add_argument("--concepts", required=True, help="concept list: .txt (one per line), .json or .csv")
    g.add_argument("--out", required=True, help="task folder to write")
    g.add_argument("--chat", default="local", help="'local' (SmolLM2) or 'openai' (configured endpoint)")
    g.add_argument("--target-model", default=None, help="model that writes the shared negatives (default: none)")
    g.add_argument("--n-train", type=int, default=72)
    g.add_argument("--n-eval", type=int, default=36)
    g.add_argument("--negatives-per-genre", type=int, default=72)
    g.add_argument("--output-tokens", type=int, default=128)
    g.add_argument("--no-hard-negatives", action="store_true")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--quiet", action="store_true")


def _numbers(text: str | None, what: str, kind: type = int) -> list | None:
    """``"0,3,5"`` -> ``[0, 3, 5]`` (``kind`` int or float); None stays None."""
    if text is None:
        return None
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        noun = "integers" if kind is int else "numbers"
        raise ValueError(f"{what}: expected comma-separated {noun}, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    if args.bench_mode == "generate":
        return _generate(args)
    from interpkit.bench import bench
    from interpkit.viz import write_bench_charts

    options = None
    if args.options:
        try:
            options = json.loads(args.options)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--options: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(options, dict) or not all(isinstance(v, dict) for v in options.values()):
            raise ValueError('--options: expected {"method": {"option": value}}')
    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    kw = {}
    if args.bench_mode == "detect":
        kw["imbalance_ratio"] = args.imbalance_ratio or None
        kw["concept_block"] = getattr(args, "concept_block", None)
    else:
        kw.update(judge=args.judge, factors=_numbers(args.factors, "--factors", float), n_instructions=args.instructions,
                  instructions=args.instructions_file, max_new_tokens=args.max_new_tokens,
                  gen_batch_size=args.gen_batch_size, steer_mode=args.steer_mode)
    results = bench(
        args.bench_mode, args.task, model=args.model, backend=args.backend, layer=args.layer, site=args.site,
        methods=methods, out=args.out, quick=args.quick, concepts=_numbers(args.concepts, "--concepts"),
        max_length=args.max_length, batch_size=args.batch_size, seed=args.seed, options=options, sae=args.sae,
        chat=args.chat, layer_choice=args.layer_choice, cache_dir=not args.no_cache,
        charts=None if args.no_charts else write_bench_charts,
        tokens=args.tokens, progress=not args.quiet, log=None if args.quiet else print,
        command=getattr(args, "_command", None), **kw,
    )
    if "kind" not in results:  # a torchrun rank other than 0: its shard went to rank 0, which reports
        return 0
    if "methods" in results:
        print(f"detection on {results['task']['name']} @ {results['site']} ({results['model']}):")
        for label, r in sorted(results["methods"].items(), key=lambda kv: -(kv[1].get("mean_auroc") or 0)):
            print(f"  {label:<16} mean AUROC {r.get('mean_auroc', float('nan')):.3f}")
    if "steering" in results:
        print(f"steering on {results['task']['name']} @ {results['site']}:")
        for label, r in results["steering"].get("methods", {}).items():
            print(f"  {label:<16} mean score {r.get('mean_score', float('nan')):.3f}")
    if "resources" in results:
        print(memory_line(results))
    print(f"wrote {Path(args.out) / 'results.json'} and {Path(args.out) / 'results.md'}")
    return 0


def memory_line(results: dict) -> str:
    """``peak RSS per rank: ...`` from a results dict's ``resources``."""
    res = results["resources"]
    ranks = ", ".join(f"rank {r['rank']} {r['peak_rss_mb']:.0f} MB (activations held {r['held_acts_mb']:.1f} MB)"
                      for r in res["per_rank"])
    block = results.get("settings", {}).get("concept_block")
    how = f"concept blocks of {block}" if block else "whole task in memory"
    return f"peak RSS per rank ({how}): {ranks}"


def _generate(args: argparse.Namespace) -> int:
    from interpkit.bench import generate_task, read_concept_list
    from interpkit.models import chat_model, load_model

    concepts = read_concept_list(args.concepts)
    target = load_model(args.target_model, "nnsight") if args.target_model else None
    task = generate_task(concepts, chat=chat_model(args.chat), target_model=target, out=args.out,
                         n_train=args.n_train, n_eval=args.n_eval, n_negatives_per_genre=args.negatives_per_genre,
                         output_tokens=args.output_tokens, hard_negatives=not args.no_hard_negatives, seed=args.seed,
                         progress=not args.quiet)
    print(f"wrote task {args.out}: {len(task.concepts)} concepts, {len(task.train)} train rows, "
          f"{len(task.eval)} eval rows (generator: {task.generator.get('model') if task.generator else '?'})")
    return 0
