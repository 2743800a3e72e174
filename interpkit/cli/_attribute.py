"""``interpkit attribute``: a prompt's attribution graph over per-layer transcoders, pruned, validated, saved.

Maps its flags onto `interpkit.circuits.attribute` (then `AttributionGraph.prune`, optionally
`interpkit.circuits.validate_graph` on held-out prompts) and writes one folder with ``graph.json``
(interpkit's format), ``neuronpedia.json`` (the Neuronpedia / circuit-tracer viewer's format),
``graph.md`` and, with ``--validate``, ``validation.json``. Transcoders come from ``--transcoders``
(a ``train-sae --transcoders`` folder or a circuit-tracer YAML), ``--transcoder LAYER=PATH``, or are
trained on demand (`interpkit.circuits.ensure_transcoders`, cached by content).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from interpkit.cli._export_records import BACKEND_CHOICES, load_model_for_cli, parse_ints

HELP = ("attribution graph of a next-token logit (or a logit difference) over per-layer transcoders: "
        "pruned, scored, optionally validated by ablation on held-out prompts")

_EPILOG = """examples:
  interpkit attribute --model smollm2-135m --prompt "The capital of France is" --target " Paris" --out G/
  interpkit attribute --model smollm2-135m --prompt "The capital of France is" --target " Paris" --minus " London" \\
      --layers 3,9,15,21 --validate heldout.jsonl --out G/
  interpkit attribute --model M --prompt "..." --transcoders transcoders/ --max-feature-nodes 2048 --out G/
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.epilog = _EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--model", required=True, help="zoo name (smollm2-135m), hub id or local folder (Llama family)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="nnsight",
                   help="activation backend (default nnsight: the HF module is used as is)")
    p.add_argument("--prompt", required=True, help="the prompt text")
    p.add_argument("--out", required=True, help="folder for graph.json, neuronpedia.json, graph.md (replaced whole)")
    t = p.add_argument_group("the target")
    t.add_argument("--target", default=None, help="target token, e.g. ' Paris' (default: the model's top tokens)")
    t.add_argument("--minus", default=None, help="with --target: explain the logit difference target - minus")
    t.add_argument("--top-k", type=int, default=1, help="without --target: this many top tokens (default 1)")
    t.add_argument("--position", type=int, default=-1, help="position the target is read at (default last)")
    t.add_argument("--no-demean", action="store_true", help="raw logit (default: logit minus the mean logit)")
    d = p.add_argument_group("transcoders (given, or trained on demand and cached)")
    d.add_argument("--transcoders", default=None, help="a train-sae --transcoders folder or a circuit-tracer YAML")
    d.add_argument("--transcoder", action="append", default=[], metavar="LAYER=PATH",
                   help="one layer's transcoder (repeatable)")
    d.add_argument("--layers", default=None, help="layers to train transcoders for (default: 4 spread over depth)")
    d.add_argument("--train-texts", default=None, help="prompt JSONL to train on (default: the packaged text pool)")
    d.add_argument("--train-tokens", type=int, default=30_000, help="training tokens per layer (default 30000)")
    d.add_argument("--latent-dim", type=int, default=None, help="latents per transcoder (default 4 x d_model)")
    d.add_argument("--k", type=int, default=16, help="TopK active latents (default 16)")
    g = p.add_argument_group("the graph")
    g.add_argument("--max-feature-nodes", type=int, default=1024,
                   help="features that get a row, by influence (default 1024; 0: every active one)")
    g.add_argument("--batch-size", type=int, default=64, help="rows per batched backward pass (default 64)")
    g.add_argument("--mlp", choices=("frozen-gate", "error"), default="frozen-gate",
                   help="layers without a transcoder: linear with frozen gates (default) or error nodes")
    g.add_argument("--zero-first", action="store_true",
                   help="no feature nodes at the first position (the attention sink; its latents join its error "
                        "node, as circuit-tracer does for BOS)")
    g.add_argument("--node-threshold", type=float, default=0.8, help="pruning: node influence kept (default 0.8)")
    g.add_argument("--edge-threshold", type=float, default=0.98, help="pruning: edge influence kept (default 0.98)")
    g.add_argument("--slug", default=None, help="the Neuronpedia slug (default: from the prompt)")
    v = p.add_argument_group("validation by ablation")
    v.add_argument("--validate", default=None, metavar="PROMPTS",
                   help="held-out prompt JSONL (prompt_id, text; target_tokens optional, else --target or each "
                        "prompt's top token): ablate top-k vs random same-layer features, predicted vs measured")
    v.add_argument("--ks", default="1,2,4,8,16", help="numbers of features ablated (default 1,2,4,8,16)")
    v.add_argument("--n-random", type=int, default=4, help="random same-layer sets per k (default 4)")
    v.add_argument("--seed", type=int, default=0)


def _transcoders(args: argparse.Namespace, model: Any) -> dict[int, Any]:
    from interpkit.circuits import ensure_transcoders

    if args.transcoder:
        from interpkit.sae import load_sae

        out: dict[int, Any] = {}
        for text in args.transcoder:
            key, sep, path = text.partition("=")
            layer = key.removeprefix("layer").removeprefix("L")
            if not sep or not layer.isdigit() or not path:
                raise ValueError(f"--transcoder {text!r}: expected LAYER=PATH (e.g. 6=tc/layer6)")
            if int(layer) in out:
                raise ValueError(f"--transcoder: layer {layer} given twice")
            try:
                out[int(layer)] = load_sae(path)
            except (FileNotFoundError, ValueError) as exc:
                raise ValueError(f"--transcoder {text!r}: {exc}") from None
        return out
    layers = parse_ints(args.layers, "--layers")
    if args.transcoders:
        try:
            return ensure_transcoders(model, layers, path=args.transcoders)
        except (FileNotFoundError, ValueError) as exc:
            raise ValueError(f"--transcoders {args.transcoders}: {exc}") from None
    texts = None
    if args.train_texts:
        from interpkit.sources import read_prompt_dataset

        texts = [row.text for row in read_prompt_dataset(args.train_texts, scores_optional=True)]
    return ensure_transcoders(model, layers, texts=texts, latent_dim=args.latent_dim, k=args.k,
                              max_tokens=args.train_tokens, log=print)


def _check(args: argparse.Namespace) -> None:
    if args.minus is not None and args.target is None:
        raise ValueError("--minus needs --target (the logit difference is target - minus)")
    if args.transcoders and args.transcoder:
        raise ValueError("--transcoders and --transcoder: give one")
    for name in ("validate", "train_texts"):
        path = getattr(args, name)
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"--{name.replace('_', '-')}: no such file: {path}")
    if args.transcoders and not Path(args.transcoders).exists():
        raise FileNotFoundError(f"--transcoders: nothing at {args.transcoders}")
    for flag, value, low in (("--top-k", args.top_k, 1), ("--batch-size", args.batch_size, 1),
                             ("--n-random", args.n_random, 0), ("--max-feature-nodes", args.max_feature_nodes, 0)):
        if value < low:
            raise ValueError(f"{flag}: expected an integer >= {low}, got {value}")
    for flag, value in (("--node-threshold", args.node_threshold), ("--edge-threshold", args.edge_threshold)):
        if not 0 < value <= 1:
            raise ValueError(f"{flag}: expected a number in (0, 1], got {value}")


def run(args: argparse.Namespace) -> int:
    from interpkit.circuits import CircuitError, attribute, save_graph, top_path, validate_graph

    _check(args)
    ks = parse_ints(args.ks, "--ks") or []
    model = load_model_for_cli(args.model, args.backend)
    tcs = _transcoders(args, model)
    target: Any = None if args.target is None else (args.target if args.minus is None else (args.target, args.minus))
    cap = None if args.max_feature_nodes == 0 else args.max_feature_nodes
    kw = {"demean": not args.no_demean, "max_feature_nodes": cap, "batch_size": args.batch_size, "mlp": args.mlp,
          "zero_first": args.zero_first}
    try:
        graph = attribute(model, args.prompt, target, transcoders=tcs, position=args.position, top_k=args.top_k,
                          log=print, **kw).prune(args.node_threshold, args.edge_threshold)
    except CircuitError as exc:
        raise ValueError(f"attribute: {exc}") from None
    extra: dict[str, bytes] = {}
    if args.validate:
        from interpkit.sources import read_prompt_dataset

        rows = read_prompt_dataset(args.validate, scores_optional=True)
        if not rows:
            raise ValueError(f"--validate {args.validate}: the file has no prompts")
        targets = [(row.target_tokens[0] if row.target_tokens else None) if args.target is None else target
                   for row in rows]
        try:
            res = validate_graph(model, [row.text for row in rows], transcoders=tcs, targets=targets, ks=ks,
                                 n_random=args.n_random, seed=args.seed, node_threshold=args.node_threshold,
                                 edge_threshold=args.edge_threshold, log=print, **kw)
        except CircuitError as exc:
            raise ValueError(f"--validate {args.validate}: {exc}") from None
        extra["validation.json"] = (json.dumps(res.to_dict(), indent=1) + "\n").encode()
    save_graph(graph, args.out, slug=args.slug, extra_files=extra)
    scores = graph.scores()
    print(f"target {graph.target_labels[0]} = {graph.activations[-1]:.4g}; {scores['features']} active features, "
          f"{scores['kept_features']} kept")
    print(f"replacement score {scores['replacement_score']:.3f}, completeness {scores['completeness_score']:.3f}, "
          f"kept influence {scores['kept_influence']:.3f}; exact to {graph.settings['max_row_gap']:.2g}")
    path = [graph.node_id(i) for i in top_path(graph)]
    if path:
        print("top path: " + " -> ".join(path))
    if args.validate:
        s = json.loads(extra["validation.json"])["summary"]
        for sel in ("top", "random"):
            if sel in s:
                print(f"validation {sel}: r {s[sel]['pearson_r']:.3f}, slope {s[sel]['slope']:.3f} "
                      f"over {s[sel]['n']} ablations")
    print(f"wrote {args.out}")
    return 0

