"""The model-driven and Neuronpedia tables of ``inspect``: from a criterion text to a scored FeatureTable.

``criterion_rows`` turns a criterion into scored prompt rows (the user's dataset, or the packaged
text pool, scored by a criterion compiler; the compiler's uncertain band is left out and the classes
are balanced). ``model_table`` streams those rows through the model once per pooling at one site and
builds a FeatureTable of its neurons plus, optionally, the DiffMean contrast direction learned on the
train split only (so the held-out association the ranking reports stays honest). ``neuronpedia_table``
builds a table from Neuronpedia features, scoring their listed examples with the compiler.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_COMPILER = "embedding"


class CriterionRowsError(ValueError):
    """The criterion could not be turned into scored prompts; the message says what to change."""


def criterion_rows(
    criterion: str,
    *,
    dataset: str | Path | None,
    compiler: str | None,
    compiler_options: Mapping[str, Any] | None,
    max_per_class: int | None,
    seed: int,
) -> tuple[list[Any], dict[str, Any]]:
    """Scored prompt rows for ``criterion`` with a fixed train/test split.

    A dataset whose rows all carry a ``criterion_score`` is used as it is unless a compiler is
    named; otherwise the dataset (or the packaged text pool) is scored by ``compiler``.

    Returns:
        ``(rows, provenance)``; provenance describes where the scores came from.
    """
    from interpkit.rank import hash_splits
    from interpkit.sources import read_prompt_dataset

    if dataset is not None:
        pool = read_prompt_dataset(dataset)
        if not pool:
            raise CriterionRowsError(f"--dataset: {dataset} holds no prompts")
        pool_name = str(dataset)
    else:
        from interpkit.criterion import text_pool

        pool = text_pool()
        pool_name = "interpkit text pool (AxBench concept10 texts, Apache-2.0)"
    scored = [r for r in pool if r.criterion_score is not None]
    if compiler is None and dataset is not None and len(scored) == len(pool):
        rows = list(pool)
        prov: dict[str, Any] = {"compiler": None, "scores": "dataset", "pool": pool_name}
    else:
        from interpkit.criterion import Criterion, get_compiler

        name = compiler or DEFAULT_COMPILER
        comp = get_compiler(name, **dict(compiler_options or {}))
        # half the prompts held out: the ranking's association is measured there
        examples = comp.compile(Criterion(text=criterion), pool=pool, max_per_class=max_per_class, seed=seed,
                                test_fraction=0.5)
        rows = [ex.to_prompt_row(ex.prompt_id if ex.prompt_id is not None else f"c{i}")
                for i, ex in enumerate(examples)]
        prov = {"compiler": name, "settings": comp.describe(), "pool": pool_name, "pool_size": len(pool)}
    if not rows:
        raise CriterionRowsError(f"the {prov.get('compiler') or 'dataset'} scores left no prompts to rank")
    n_pos = sum(1 for r in rows if r.criterion_score is not None and r.criterion_score >= 0.5)
    n_neg = sum(1 for r in rows if r.criterion_score is not None and r.criterion_score < 0.5)
    prov.update(n_rows=len(rows), n_positive=n_pos, n_negative=n_neg)
    if n_pos < 4 or n_neg < 4:
        raise CriterionRowsError(
            f"criterion {criterion!r}: only {n_pos} positive and {n_neg} negative prompts after scoring "
            f"({prov.get('compiler') or 'dataset scores'}); give a dataset with more matching texts "
            "(--dataset) or another compiler (--compiler)")
    hashed = hash_splits([r.text for r in rows], 0.5, seed)
    rows = [r if r.split is not None else replace(r, split=str(s)) for r, s in zip(rows, hashed, strict=True)]
    return rows, prov


def default_site(wrapper: Any) -> str:
    """The middle block's residual stream: ``layer{n_layers // 2}.resid_post``."""
    return f"layer{int(wrapper.n_layers) // 2}.resid_post"


def model_table(
    wrapper: Any,
    rows: Sequence[Any],
    *,
    site: str | None,
    pooling: str,
    directions: bool,
    batch_size: int,
    max_length: int | None,
    exclude_positions: Sequence[str] = ("bos", "massive"),
    progress: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """Neurons at ``site`` (+ the train-split DiffMean direction) over ``rows``; one cached stream.

    BOS and attention-sink ("massive") positions are left out of pooling by default: a sink token's
    activation is hundreds of times the others' and would decide every max-pooled value.

    Returns:
        ``(table, info)`` with the site and, when learned, the direction's train-split sizes.
    """
    from interpkit.sources import (
        ActivationCache,
        DirectionSet,
        StreamOptions,
        contrast_direction,
        direction_table,
        neuron_table,
    )
    from interpkit.table import FeatureTable

    site = wrapper.resolve_site(site or default_site(wrapper))
    cache = ActivationCache()
    opts = StreamOptions(batch_size=batch_size, max_length=max_length, progress=progress,
                         exclude_positions=tuple(exclude_positions))
    poolings = (pooling, "mean") if directions and pooling != "mean" else (pooling,)
    cache.get_or_compute(wrapper, [r.text for r in rows], site, pooling=poolings, stream=opts)
    table = neuron_table(wrapper, list(rows), site, pooling=pooling, cache=cache, stream=opts)
    info: dict[str, Any] = {"site": site, "pooling": pooling, "exclude_positions": list(opts.exclude_positions)}
    if not directions:
        return table, info
    train = [i for i, r in enumerate(rows) if r.split == "train" and r.criterion_score is not None]
    labels = np.array([rows[i].criterion_score >= 0.5 for i in train])
    if labels.all() or not labels.any():
        info["direction"] = "skipped: the train split lacks positives or negatives"
        return table, info
    mean = cache.get_or_compute(wrapper, [r.text for r in rows], site, pooling="mean",
                                stream=opts)[site, "mean"].to_numpy()
    vec = contrast_direction(mean[train], labels)
    name = f"{site}:diffmean"
    dset = DirectionSet(names=(name,), vectors=vec[None, :], site=site, kind="contrast",
                        model=getattr(wrapper, "name", None),
                        metadata={"method": "DiffMean of mean-pooled activations, train split only",
                                  "n_train_positive": int(labels.sum()), "n_train_negative": int((~labels).sum())})
    dtable = direction_table(wrapper, list(rows), dset, pooling=pooling, cache=cache, stream=opts)
    info["direction"] = {"feature_id": name, "n_train_positive": int(labels.sum()),
                         "n_train_negative": int((~labels).sum())}
    return FeatureTable.hstack([table, dtable]), info


def score_texts(
    criterion: str, texts: Sequence[str], *, compiler: str | None, compiler_options: Mapping[str, Any] | None
) -> tuple[dict[str, float], str]:
    """``{text: criterion score}`` for ``texts`` from ``compiler`` (default embedding), and the compiler's name.

    Texts the compiler leaves unscored are left out.
    """
    from interpkit.criterion import Criterion, get_compiler

    comp = get_compiler(compiler or DEFAULT_COMPILER, **dict(compiler_options or {}))
    scored = comp.score_texts(Criterion(text=criterion), list(texts))
    return {t: s.score for t, s in zip(texts, scored, strict=True) if s.score is not None}, comp.name


def neuronpedia_table(
    refs: Sequence[str],
    files: Sequence[str | Path],
    criterion: str,
    *,
    compiler: str | None,
    compiler_options: Mapping[str, Any] | None,
    offline: bool,
) -> tuple[Any, dict[str, dict[str, Any]], list[str], str]:
    """A table of Neuronpedia features over their listed examples, scored for ``criterion``.

    Returns:
        ``(table, explanations by feature id, warnings, model name)``.
    """
    from interpkit.sources.dumps import table_from_feature_dumps
    from interpkit.sources.neuronpedia import NeuronpediaClient, load_neuronpedia_features

    client = NeuronpediaClient(offline=offline)
    loaded = load_neuronpedia_features(list(refs), client=client, files=list(files))
    if not loaded:
        raise CriterionRowsError("no Neuronpedia features: pass --neuronpedia REF (or --neuronpedia-file FILE)")
    dumps = [d for d, _ in loaded]
    texts: list[str] = []
    seen: set[str] = set()
    for d in dumps:
        for ex in d.examples:
            text = ex.get("text") if isinstance(ex, Mapping) else None
            if isinstance(text, str) and text not in seen:
                seen.add(text)
                texts.append(text)
    if not texts:
        raise CriterionRowsError("the Neuronpedia features list no example texts to score for the criterion")
    scores, compiler_name = score_texts(criterion, texts, compiler=compiler, compiler_options=compiler_options)
    table, warnings, _ = table_from_feature_dumps(dumps, scores=scores)
    warnings = [*warnings, f"criterion scores of the {len(texts)} Neuronpedia example texts come from the "
                f"{compiler_name} compiler"]
    explanations = {str(d.feature_id): dict(e) for d, e in loaded}
    model = ",".join(sorted({d.model for d in dumps}))
    return table, explanations, warnings, model
