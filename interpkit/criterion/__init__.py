"""Criteria: turn a natural-language criterion into scored prompts.

A `Criterion` says in words what a feature should respond to. A compiler (`get_compiler`) scores
texts against it, each score in [0, 1] with a calibrated label (positive / negative / uncertain)
and provenance: ``labelled`` (the user's own scores), ``keyword`` (keywords or regexes),
``embedding`` (MiniLM similarity to the criterion minus to its contrast), ``logit`` (a model's
next-token mass on target tokens), ``judge`` (a chat model rates each text) and ``generative`` (a
chat model writes positive and negative examples). `compile_criterion` builds a balanced, split
prompt dataset from a pool (the packaged AxBench `text_pool` by default); `score_prompts`
re-scores an existing dataset row for row. Compilers load on first use.

Example:
    >>> from interpkit.criterion import compile_criterion
    >>> rows = compile_criterion("numbers", "keyword", ["1 2 3", "four", "7 up", "cat", "dog", "0"],
    ...                          keywords=[r"\\d"])
    >>> sorted({r.extra["criterion_label"] for r in rows}), len(rows)
    (['negative', 'positive'], 6)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports

from ._base import (
    COMPILERS,
    Criterion,
    CriterionCompiler,
    ScoredExample,
    as_criterion,
    compile_criterion,
    get_compiler,
    list_compilers,
    register_compiler,
    score_prompts,
)
from ._calibrate import Calibration, balance_classes, calibrate, label_posteriors, stratified_splits

if TYPE_CHECKING:
    from ._embedding import EmbeddingCompiler
    from ._generative import GenerativeCompiler
    from ._judge import LMJudgeCompiler
    from ._keyword import KeywordCompiler, derive_keywords
    from ._labelled import LabelledCompiler, read_labelled
    from ._logit import LogitCompiler, LogitTargetMetric, MissingTargetTokensError, next_token_probs
    from ._pool import text_pool

_LAZY = {
    "EmbeddingCompiler": "._embedding",
    "GenerativeCompiler": "._generative",
    "LMJudgeCompiler": "._judge",
    "KeywordCompiler": "._keyword",
    "derive_keywords": "._keyword",
    "LabelledCompiler": "._labelled",
    "read_labelled": "._labelled",
    "LogitCompiler": "._logit",
    "LogitTargetMetric": "._logit",
    "MissingTargetTokensError": "._logit",
    "next_token_probs": "._logit",
    "text_pool": "._pool",
}

__all__ = [
    "COMPILERS",
    "Calibration",
    "Criterion",
    "CriterionCompiler",
    "EmbeddingCompiler",
    "GenerativeCompiler",
    "KeywordCompiler",
    "LMJudgeCompiler",
    "LabelledCompiler",
    "LogitCompiler",
    "LogitTargetMetric",
    "MissingTargetTokensError",
    "ScoredExample",
    "as_criterion",
    "balance_classes",
    "calibrate",
    "compile_criterion",
    "derive_keywords",
    "get_compiler",
    "label_posteriors",
    "list_compilers",
    "next_token_probs",
    "read_labelled",
    "register_compiler",
    "score_prompts",
    "stratified_splits",
    "text_pool",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
