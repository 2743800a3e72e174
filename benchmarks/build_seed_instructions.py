"""Build interpkit/data/seed_instructions.jsonl: the instruction pools ``interpkit.bench`` draws from.

AxBench draws its instructions from seed pools (Dolly open-QA for text, GSM8K for math, a Python
instruction set for code; 1,000 train + 1,000 test each). Those datasets are not available offline,
so interpkit packages the instructions AxBench itself used in the two Gemma-2-2B Concept10 tasks
(stanfordnlp/axbench, Apache-2.0): the ``input`` column of ``train_data.parquet`` becomes split
``train`` and that of ``latent_eval_data.parquet`` split ``test``, each row's genre taken from its
``concept_genre``. Instructions are deduplicated per split (first occurrence kept, in file order:
``prod_2b_l10_v1`` then ``prod_2b_l20_v1``), stripped of surrounding whitespace only; an instruction
found in both splits is kept in ``test`` only, so the two splits are disjoint as AxBench's are.

Rows: ``{"instruction", "genre", "split", "source"}``; ``source`` names the task folder and file.

Run: .venv/bin/python benchmarks/build_seed_instructions.py [--data /work/shared/data/axbench-concept10]
     [--out interpkit/data/seed_instructions.jsonl]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import pandas as pd

from interpkit._io import atomic_write_text

TASKS = ("prod_2b_l10_v1", "prod_2b_l20_v1")
FILES = (("train_data.parquet", "train"), ("latent_eval_data.parquet", "test"))
SOURCE = "stanfordnlp/axbench concept10 {task}/{file} (Apache-2.0)"


def build(data: Path) -> list[dict]:
    """The pool rows, test split first (it wins ties), then written back in train, test order."""
    seen: dict[tuple[str, str], dict] = {}
    test_texts: set[str] = set()
    for file, split in reversed(FILES):
        for task in TASKS:
            df = pd.read_parquet(data / task / file, columns=["input", "concept_genre"])
            for text, genre in zip(df["input"], df["concept_genre"], strict=True):
                text = str(text).strip()
                if not text or (split == "train" and text in test_texts) or (text, split) in seen:
                    continue
                if split == "test":
                    test_texts.add(text)
                seen[(text, split)] = {"instruction": text, "genre": str(genre), "split": split,
                                       "source": SOURCE.format(task=task, file=file)}
    rows = list(seen.values())
    order = {"train": 0, "test": 1}
    return sorted(rows, key=lambda r: order[r["split"]])  # stable: file order kept within a split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/axbench-concept10"))
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parents[1] / "interpkit/data/seed_instructions.jsonl")
    args = parser.parse_args()
    rows = build(args.data)
    atomic_write_text(args.out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    counts = Counter((r["split"], r["genre"]) for r in rows)
    print(f"wrote {len(rows)} instructions to {args.out}: "
          + ", ".join(f"{s}/{g} {n}" for (s, g), n in sorted(counts.items())))


if __name__ == "__main__":
    main()
