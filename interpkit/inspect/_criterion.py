"""``rank_criterion``: score examples for a criterion and rank the features, in one call.

The one path from a criterion text to a ranking, shared by ``inspect`` (its ranking step, on the
table a backend built) and the notebook's ``CriterionEditor`` (on every edit). Two sources:

- a :class:`~interpkit.table.FeatureTable`: its example texts are scored by ``compiler`` (or the
  table's own ``criterion_score`` column is used when ``compiler`` is None);
- a ``ModelWrapper``: the criterion is compiled into prompt rows (:func:`criterion_rows` over a
  dataset file or the packaged text pool, or ``compile_criterion`` over given texts or rows) and
  :func:`model_table` runs the model over them (neurons at ``site`` plus the train-split DiffMean
  direction).

Pinned examples override the compiler: a table example whose text is pinned gets the pinned score;
with a model, the pinned texts are added to the prompts with their scores.

Example:
    >>> from interpkit.sources import make_toy_table
    >>> data = make_toy_table(n_examples=60, n_features=6, seed=0)
    >>> ranked = rank_criterion(data.table, "example 1", compiler="keyword", n_permutations=50)
    >>> ranked.result.settings.null, ranked.info["n_examples"]
    ('asymptotic', 60)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from interpkit.inspect._model import DEFAULT_COMPILER, criterion_rows, model_table


@dataclass(frozen=True)
class CriterionRanking:
    """What `rank_criterion` returns."""

    table: Any
    """The ranked :class:`~interpkit.table.FeatureTable` (the model's, in model mode)."""
    result: Any
    """The :class:`~interpkit.rank.RankingResult`."""
    info: dict[str, Any] = field(default_factory=dict)
    """Where the scores came from (compiler settings, pool, example counts) and, in model mode,
    the site, pooling and learned direction of the model table."""


def rank_criterion(
    source: Any,
    criterion: str,
    *,
    compiler: str | None = None,
    compiler_options: Mapping[str, Any] | None = None,
    pinned: Mapping[str, float] | None = None,
    dataset: Any = None,
    interventions: Sequence[Any] | None = None,
    allow_intervention_criterion_mismatch: bool = False,
    site: str | None = None,
    pooling: str = "max",
    directions: bool = True,
    batch_size: int = 8,
    max_length: int | None = 128,
    max_per_class: int | None = 60,
    n_permutations: int = 1000,
    n_bootstrap: int = 50,
    null: str = "auto",
    seed: int = 0,
) -> CriterionRanking:
    """Score examples for ``criterion`` and rank the features of ``source`` (see the module docstring).

    Args:
        source: a :class:`~interpkit.table.FeatureTable` or a ``ModelWrapper``.
        criterion: the criterion text (intervention records are matched to it).
        compiler: criterion compiler name. Table: None keeps the table's ``criterion_score``
            column. Model: None scores with ``embedding`` unless a dataset file already holds scores.
        compiler_options: keyword options for the compiler.
        pinned: text -> score (1 shows the criterion, 0 does not), overriding the compiler.
        dataset: model only: a prompt-dataset JSONL path, a sequence of texts or prompt rows, or
            None for the packaged text pool.
        interventions: intervention records for the causal component.
        allow_intervention_criterion_mismatch: keep records whose criterion differs.
        site, pooling, directions, batch_size, max_length, max_per_class: model only, as for
            :func:`~interpkit.inspect.inspect`.
        n_permutations, n_bootstrap, null, seed: as for :func:`~interpkit.rank.rank` (``null="auto"``
            picks the asymptotic null when there are too many features for the permutations).

    Raises:
        CriterionRowsError: model mode, the criterion left too few positive or negative prompts.
    """
    from interpkit.rank import rank
    from interpkit.table import FeatureTable

    scores: Any = None
    if isinstance(source, FeatureTable):
        table = source
        scores, info = _table_scores(table, criterion, compiler, compiler_options, pinned)
    else:
        rows, info = _prompt_rows(criterion, dataset, compiler, compiler_options, pinned,
                                  max_per_class=max_per_class, seed=seed)
        table, table_info = model_table(source, rows, site=site, pooling=pooling, directions=directions,
                                        batch_size=batch_size, max_length=max_length)
        info.update(table_info)
    result = rank(table, scores, list(interventions or ()) or None, criterion=criterion, seed=seed, n_permutations=n_permutations,
                  n_bootstrap=n_bootstrap, null=null,
                  allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch)
    return CriterionRanking(table=table, result=result, info=info)


def _table_scores(
    table: Any,
    criterion: str,
    compiler: str | None,
    compiler_options: Mapping[str, Any] | None,
    pinned: Mapping[str, float] | None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """One score per table example: the compiler's (or the table's own), pinned texts overriding."""
    texts = table.examples["text"].astype(str).tolist()
    if compiler is None:
        scores = np.array(table.examples["criterion_score"], dtype=np.float64)
        described = None
    else:
        from interpkit.criterion import Criterion, get_compiler

        comp = get_compiler(compiler, **dict(compiler_options or {}))
        scored = comp.score_texts(Criterion(text=criterion), texts)
        scores = np.array([np.nan if s.score is None else s.score for s in scored], dtype=np.float64)
        described = comp.describe()
    pinned = dict(pinned or {})
    hit = [i for i, t in enumerate(texts) if t in pinned]
    for i in hit:
        scores[i] = pinned[texts[i]]
    info = {"compiler": described, "n_examples": len(texts), "n_pinned_in_table": len(hit),
            "n_positive": int(np.sum(scores >= 0.5)), "n_negative": int(np.sum(scores < 0.5))}
    return scores, info


def _prompt_rows(
    criterion: str,
    dataset: Any,
    compiler: str | None,
    compiler_options: Mapping[str, Any] | None,
    pinned: Mapping[str, float] | None,
    *,
    max_per_class: int | None,
    seed: int,
) -> tuple[list[Any], dict[str, Any]]:
    """Scored prompt rows for the model: compiled from ``dataset`` (or the text pool), plus the pinned texts."""
    from interpkit.rank import hash_splits
    from interpkit.sources import PromptRow

    if dataset is None or isinstance(dataset, str) or hasattr(dataset, "__fspath__"):
        rows, prov = criterion_rows(criterion, dataset=dataset, compiler=compiler,
                                    compiler_options=compiler_options, max_per_class=max_per_class, seed=seed)
    else:
        from interpkit.criterion import compile_criterion

        name = compiler or DEFAULT_COMPILER
        # half the prompts held out, as criterion_rows does: the ranking's association is measured there
        rows = compile_criterion(criterion, name, list(dataset), max_per_class=max_per_class, seed=seed,
                                 test_fraction=0.5, **dict(compiler_options or {}))
        prov = {"compiler": name, "pool": "given rows", "n_rows": len(rows)}
    pinned = dict(pinned or {})
    rows = [r for r in rows if r.text not in pinned]
    splits = hash_splits(list(pinned), 0.5, seed)
    rows += [PromptRow(prompt_id=f"pinned{i}", text=t, criterion_score=v, split=str(sp))
             for i, ((t, v), sp) in enumerate(zip(pinned.items(), splits, strict=True))]
    prov["n_pinned"] = len(pinned)
    return rows, prov
