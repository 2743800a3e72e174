"""The packaged text pool: 880 AxBench texts criterion compilers choose a dataset from.

``interpkit/data/text_pool.jsonl`` holds 32 positives for each of the 20 concepts of the two
AxBench Concept10 Gemma-2-2B tasks and 240 genre-balanced shared negatives (texts written without
any concept), all from the training files of stanfordnlp/axbench (Apache-2.0; built by
``benchmarks/build_text_pool.py``). Rows are unscored (``criterion_score`` null); their extras keep
the provenance: ``source``, ``axbench_task``, ``concept_id`` (-1 for negatives), ``concept``,
``genre`` and ``category``.

Example:
    >>> rows = text_pool()
    >>> len(rows), sorted({r.extra["category"] for r in rows})
    (880, ['negative', 'positive'])
"""

from __future__ import annotations

import functools
from importlib import resources

from interpkit.sources import PromptRow, read_prompt_dataset

__all__ = ["text_pool"]

POOL_FILE = "text_pool.jsonl"


@functools.lru_cache(maxsize=1)
def _load() -> tuple[PromptRow, ...]:
    with resources.as_file(resources.files("interpkit") / "data" / POOL_FILE) as path:
        return tuple(read_prompt_dataset(path))


def text_pool() -> list[PromptRow]:
    """The packaged pool's rows (a fresh list; the rows themselves are immutable)."""
    return list(_load())
