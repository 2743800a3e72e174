"""Build interpkit/data/text_pool.jsonl: the packaged pool criterion compilers choose texts from.

Source: the AxBench Concept10 training files (stanfordnlp/axbench, Apache-2.0) for the two Gemma-2-2B
tasks, ``prod_2b_l10_v1`` and ``prod_2b_l20_v1``. From each, 32 positives per concept (20 concepts in
all) and the shared negatives (concept_id -1, written by the target model without any concept;
deduplicated across the two folders, where 128 of 216 texts recur), 80 per genre (text/code/math).
Texts are the ``output`` column, stripped of surrounding whitespace only (code keeps its newlines).
Sampling is seeded, so re-running gives the same file. The benchmark (criterion_auroc.py) evaluates
on ``latent_eval_data.parquet``, so these are not the evaluated texts.

Run: .venv/bin/python benchmarks/build_text_pool.py [--data /work/shared/data/axbench-concept10]
     [--out interpkit/data/text_pool.jsonl] [--per-concept 32] [--negatives-per-genre 80] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from interpkit._io import atomic_write_text

TASKS = ("prod_2b_l10_v1", "prod_2b_l20_v1")
SOURCE = "stanfordnlp/axbench concept10 train_data.parquet (Apache-2.0)"


def build(data: Path, *, per_concept: int, negatives_per_genre: int, seed: int) -> list[dict]:
    """The pool rows: positives per concept per task, then genre-balanced shared negatives."""
    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    negatives: dict[str, dict] = {}
    for task in TASKS:
        df = pd.read_parquet(data / task / "train_data.parquet")
        for cid in sorted(int(c) for c in df.concept_id.unique() if c >= 0):
            pos = df[(df.concept_id == cid) & (df.category == "positive")].reset_index(drop=True)
            for k, i in enumerate(sorted(rng.choice(len(pos), size=per_concept, replace=False))):
                r = pos.iloc[int(i)]
                rows.append({
                    "prompt_id": f"{task}-c{cid}-{k:02d}", "text": r.output.strip(), "criterion_score": None,
                    "source": SOURCE, "axbench_task": task, "concept_id": cid, "concept": r.output_concept,
                    "genre": r.concept_genre, "category": "positive",
                })
        for r in df[df.concept_id == -1].itertuples():
            negatives.setdefault(r.output.strip(), {"task": task, "genre": r.concept_genre})
    by_genre: dict[str, list[str]] = {}
    for text, info in negatives.items():
        by_genre.setdefault(info["genre"], []).append(text)
    for genre in sorted(by_genre):
        texts = by_genre[genre]
        for k, i in enumerate(sorted(rng.choice(len(texts), size=min(negatives_per_genre, len(texts)), replace=False))):
            text = texts[int(i)]
            rows.append({
                "prompt_id": f"neg-{genre}-{k:02d}", "text": text, "criterion_score": None, "source": SOURCE,
                "axbench_task": negatives[text]["task"], "concept_id": -1, "concept": None, "genre": genre,
                "category": "negative",
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/axbench-concept10"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parents[1] / "interpkit/data/text_pool.jsonl")
    parser.add_argument("--per-concept", type=int, default=32)
    parser.add_argument("--negatives-per-genre", type=int, default=80)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = build(args.data, per_concept=args.per_concept, negatives_per_genre=args.negatives_per_genre,
                 seed=args.seed)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    n_pos = sum(r["category"] == "positive" for r in rows)
    print(f"wrote {len(rows)} rows ({n_pos} positives, {len(rows) - n_pos} negatives) to {args.out}")


if __name__ == "__main__":
    main()
