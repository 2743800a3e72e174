"""``interpkit inspect``: rank and explain a criterion's features (model, SAE, records, dumps, Neuronpedia, toy)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "rank and explain the features that carry a criterion; write report.json + report.md (+ HTML cards)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (default: taken from the records)")
    p.add_argument("--criterion", required=True, help="the criterion, as text")
    p.add_argument("--backend", choices=("model", "toy", "records", "features", "saelens", "neuronpedia"),
                   default=None,
                   help="where features come from (default: records/features/saelens/neuronpedia when their input "
                        "is given; toy only for --model toy; else model: run --model over prompts scored for "
                        "the criterion)")
    p.add_argument("--records", default=None, help="activation records JSONL")
    p.add_argument("--features", default=None, help="feature dumps JSONL")
    p.add_argument("--interventions", default=None, help="intervention records JSONL (causal evidence)")
    p.add_argument("--allow-intervention-criterion-mismatch", action="store_true",
                   help="use intervention rows whose criterion text differs from --criterion")
    m = p.add_argument_group("model backend (the criterion text is enough: prompts come from the packaged pool)")
    m.add_argument("--dataset", default=None,
                   help="prompt dataset JSONL (prompt_id, text[, criterion_score]); default for the model backend: "
                        "the packaged text pool, scored by --compiler")
    m.add_argument("--compiler", default=None,
                   help="criterion compiler that scores the prompts: embedding (default), keyword, judge, generative, "
                        "logit, labelled")
    m.add_argument("--site", default=None, help="site whose neurons are ranked (default: middle block resid_post)")
    m.add_argument("--no-directions", dest="directions", action="store_false",
                   help="do not add the train-split DiffMean direction to the ranked features")
    m.add_argument("--max-per-class", type=int, default=60,
                   help="at most this many positive and negative prompts (default 60)")
    e = p.add_argument_group("explanations and HTML cards")
    e.add_argument("--no-explain", dest="explain", action="store_false", help="skip explanations")
    e.add_argument("--labeler", default="auto",
                   help="chat model that labels features: local (SmolLM2), api (INTERPKIT_LLM_* environment), none; "
                        "default auto = local for the model backend")
    e.add_argument("--self-explain", action="store_true",
                   help="also let the model describe each feature's direction (Patchscope)")
    e.add_argument("--html-out", default=None, help="write a self-contained HTML page with a card per feature")
    n = p.add_argument_group("neuronpedia backend")
    n.add_argument("--neuronpedia", action="append", default=[], metavar="REF",
                   help="feature ref: model@source:index, a feature page URL or an API URL (repeatable)")
    n.add_argument("--neuronpedia-file", action="append", default=[], metavar="FILE",
                   help="exported Neuronpedia feature JSON/JSONL (offline; repeatable)")
    n.add_argument("--offline", action="store_true", help="never go online: Neuronpedia cache and files only")
    g = p.add_argument_group("saelens backend (an SAE run on --model over --dataset)")
    g.add_argument("--saelens-release", default=None,
                   help="SAELens release name, hub repo id, or a local folder in SAELens layout")
    g.add_argument("--saelens-sae-id", default=None, help="the SAE's id inside the release (its subfolder)")
    g.add_argument("--saelens-feature-indexes", default=None,
                   help="comma-separated latent indexes to rank (default: all)")
    g.add_argument("--model-backend", choices=("transformer_lens", "nnsight"), default=None,
                   help="how the model is run (default: transformer_lens)")
    g.add_argument("--pooling", choices=("max", "mean", "last"), default="max",
                   help="pooling of each feature over a prompt's tokens (default max; model and saelens backends)")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--max-length", type=int, default=128)
    p.add_argument("--top-k", type=int, default=10, help="features detailed in the report (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-permutations", type=int, default=1000)
    p.add_argument("--n-bootstrap", type=int, default=50)
    p.add_argument("--null", choices=("auto", "permutation", "asymptotic"), default="auto",
                   help="association null (default auto: permutation unless there are too many features for it "
                        "to pass the FDR correction)")
    p.add_argument("--out", default=None,
                   help="output folder (default: interpkit-out/<criterion-slug> in the current folder)")


def default_out(criterion: str) -> str:
    """``interpkit-out/<criterion-slug>``: where ``inspect`` writes without ``--out``."""
    from interpkit._io import slug

    return str(Path("interpkit-out") / slug(criterion.lower(), max_len=60, empty="criterion"))


def run(args: argparse.Namespace) -> int:
    from interpkit.cli._export_records import parse_ints
    from interpkit.inspect import inspect

    if args.out is None:
        args.out = default_out(args.criterion)

    report = inspect(
        args.model,
        args.criterion,
        backend=args.backend,
        records=args.records,
        features=args.features,
        interventions=args.interventions,
        allow_intervention_criterion_mismatch=args.allow_intervention_criterion_mismatch,
        top_k=args.top_k,
        out=args.out,
        seed=args.seed,
        n_permutations=args.n_permutations,
        n_bootstrap=args.n_bootstrap,
        null=args.null,
        saelens_release=args.saelens_release,
        saelens_sae_id=args.saelens_sae_id,
        saelens_feature_indexes=parse_ints(args.saelens_feature_indexes, "--saelens-feature-indexes"),
        dataset=args.dataset,
        model_backend=args.model_backend,
        pooling=args.pooling,
        batch_size=args.batch_size,
        max_length=args.max_length,
        compiler=args.compiler,
        site=args.site,
        directions=args.directions,
        max_per_class=args.max_per_class,
        explain=args.explain,
        labeler=None if args.labeler == "none" else args.labeler,
        self_explain=args.self_explain,
        neuronpedia=args.neuronpedia,
        neuronpedia_files=args.neuronpedia_file,
        neuronpedia_offline=args.offline,
        html_out=args.html_out,
    )
    print(f"wrote {report.path} and {report.path.with_suffix('.md')} (output folder {args.out})")
    if args.html_out:
        print(f"wrote {args.html_out}")
    if report.synthetic:
        print("note: SYNTHETIC data (toy backend) — planted ground truth, not a model")
    for f in report.features:
        label = f" — {f.label}" if f.label else ""
        print(f"  {f.rank:>2}. {f.feature_id}{label}  [{f.components.get('tier', '')}]")
    return 0
