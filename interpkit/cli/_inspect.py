"""``interpkit inspect``: rank a criterion's features from records, feature dumps or the toy backend."""

from __future__ import annotations

import argparse

HELP = "rank the features that carry a criterion and write report.json + report.md"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model name (default: taken from the records)")
    p.add_argument("--criterion", required=True, help="the criterion, as text")
    p.add_argument("--backend", choices=("toy", "records", "features"), default=None,
                   help="where features come from (default: records/features when given; toy only for --model toy)")
    p.add_argument("--records", default=None, help="activation records JSONL")
    p.add_argument("--features", default=None, help="feature dumps JSONL")
    p.add_argument("--interventions", default=None, help="intervention records JSONL (causal evidence)")
    p.add_argument("--allow-intervention-criterion-mismatch", action="store_true",
                   help="use intervention rows whose criterion text differs from --criterion")
    p.add_argument("--top-k", type=int, default=10, help="features detailed in the report (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-permutations", type=int, default=1000)
    p.add_argument("--n-bootstrap", type=int, default=50)
    p.add_argument("--out", required=True, help="output folder")


def run(args: argparse.Namespace) -> int:
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
    )
    print(f"wrote {report.path} and {report.path.with_suffix('.md')}")
    if report.synthetic:
        print("note: SYNTHETIC data (toy backend) — planted ground truth, not a model")
    for f in report.features:
        label = f" — {f.label}" if f.label else ""
        print(f"  {f.rank:>2}. {f.feature_id}{label}  [{f.components.get('tier', '')}]")
    return 0
