"""``interpkit inspect``: rank a criterion's features from records, feature dumps or the toy backend."""

from __future__ import annotations

import argparse

HELP = "rank the features that carry a criterion and write report.json + report.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (default: taken from the records)")
    p.add_argument("--criterion", required=True, help="the criterion, as text")
    p.add_argument("--backend", choices=("toy", "records", "features", "saelens"), default=None,
                   help="where features come from (default: records/features/saelens when given; toy only for "
                        "--model toy)")
    p.add_argument("--records", default=None, help="activation records JSONL")
    p.add_argument("--features", default=None, help="feature dumps JSONL")
    p.add_argument("--interventions", default=None, help="intervention records JSONL (causal evidence)")
    p.add_argument("--allow-intervention-criterion-mismatch", action="store_true",
                   help="use intervention rows whose criterion text differs from --criterion")
    g = p.add_argument_group("saelens backend (an SAE run on --model over --dataset)")
    g.add_argument("--saelens-release", default=None,
                   help="SAELens release name, hub repo id, or a local folder in SAELens layout")
    g.add_argument("--saelens-sae-id", default=None, help="the SAE's id inside the release (its subfolder)")
    g.add_argument("--saelens-feature-indexes", default=None,
                   help="comma-separated latent indexes to rank (default: all)")
    g.add_argument("--dataset", default=None, help="prompt dataset JSONL (prompt_id, text, criterion_score)")
    g.add_argument("--model-backend", choices=("transformer_lens", "nnsight"), default=None,
                   help="how the model is run (default: transformer_lens)")
    g.add_argument("--pooling", choices=("max", "mean", "last"), default="max",
                   help="pooling of each latent over a prompt's tokens (default max)")
    g.add_argument("--batch-size", type=int, default=8)
    g.add_argument("--max-length", type=int, default=128)
    p.add_argument("--top-k", type=int, default=10, help="features detailed in the report (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-permutations", type=int, default=1000)
    p.add_argument("--n-bootstrap", type=int, default=50)
    p.add_argument("--null", choices=("auto", "permutation", "asymptotic"), default="auto",
                   help="association null (default auto: permutation unless there are too many features for it "
                        "to pass the FDR correction)")
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
    from interpkit.cli._export_records import parse_ints
    from interpkit.inspect_ import inspect

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
    )
    print(f"wrote {report.path} and {report.path.with_suffix('.md')}")
    if report.synthetic:
        print("note: SYNTHETIC data (toy backend) — planted ground truth, not a model")
    for f in report.features:
        label = f" — {f.label}" if f.label else ""
        print(f"  {f.rank:>2}. {f.feature_id}{label}  [{f.components.get('tier', '')}]")
    return 0
