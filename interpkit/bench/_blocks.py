"""Concept-block detection: a rank reads activations only for its concepts, a block at a time.

The in-memory path (`build_context` on the whole task) holds every text's activations, on every
rank. For a Concept500 task (36k training and 38k eval texts) that is the whole dataset per rank.
Here each rank takes its concepts (every ``world``-th, as the in-memory shards do), in blocks of
``size``: a block's context is `build_context` on ``task.subset(concepts=block)``, i.e. the block's
positives, the shared pool negatives of its genres (AxBench §2.3: all concepts of a genre train
against the same 72) and the block's eval rows, so a method fits and scores exactly the rows it
would in memory; the block is dropped before the next one. Activations are cached per block (the
usual key: model, site, texts, settings); with no disk cache a temporary folder holds them for the run.

The imbalanced F1 pools the eval negatives of *every* concept against each concept's positives.
Instead of activations, ranks exchange the fits and the positives' scores (small), score the eval
negatives of their own blocks with every concept's fit, and keep only `NegativeCounts` (how many
negatives reach each positive score), which rank 0 sums: the F1 equals the in-memory one.

Methods whose fit reads the whole task (``Method.task_wide``: SAE, SAE-A, Criterion-only) do not
run in blocks. `peak_rss_mb` and `rank_resources` are the memory report of both paths.

Example:
    >>> concept_blocks([0, 2, 4, 6, 8], 2)
    [[0, 2], [4, 6], [8]]
"""

from __future__ import annotations

import gc
import resource
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["AUTO_BLOCK", "AUTO_BLOCK_ABOVE", "BlockRun", "concept_blocks", "detect_in_blocks", "peak_rss_mb",
           "resolve_block", "add_pooled_f1"]

AUTO_BLOCK = 32
"""Concepts per block when the block size is chosen automatically."""
AUTO_BLOCK_ABOVE = 64
"""``concept_block=None`` runs in blocks when more concepts than this are run (Concept10 stays in memory)."""


def concept_blocks(cids: Sequence[int], size: int) -> list[list[int]]:
    """``cids`` cut into consecutive blocks of at most ``size``."""
    cids = [int(c) for c in cids]
    return [cids[i : i + size] for i in range(0, len(cids), max(1, int(size)))]


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB (``getrusage``; Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def rank_resources(rank: int, held_acts_bytes: int, **extra: Any) -> dict[str, Any]:
    """One rank's memory report: peak RSS and the most activation bytes it held at once."""
    return {"rank": int(rank), "peak_rss_mb": peak_rss_mb(), "held_acts_mb": round(held_acts_bytes / 2**20, 1),
            **extra}


def resolve_block(concept_block: int | None, *, mode: str, n_concepts: int, methods: Sequence[Any]) -> int:
    """The block size a run uses: 0 = in memory.

    ``None`` chooses: blocks of `AUTO_BLOCK` for a detection run of more than `AUTO_BLOCK_ABOVE`
    concepts whose methods all fit per concept; otherwise in memory (a warning names the
    task-wide methods that kept a large run in memory).

    Raises:
        ValueError: a block size for steering, a negative size, or blocks with a task-wide method.
    """
    import warnings

    from .methods import get_method

    wide = [m for m in methods if getattr(get_method(m) if isinstance(m, str) else m, "task_wide", False)]
    if concept_block is None:
        if mode != "detect" or n_concepts <= AUTO_BLOCK_ABOVE:
            return 0
        if wide:
            warnings.warn(f"{n_concepts} concepts run in memory (every rank holds every text's activations): "
                          f"{', '.join(map(str, wide))} read the whole task; leave them out to run in concept "
                          "blocks", stacklevel=3)
            return 0
        return AUTO_BLOCK
    size = int(concept_block)
    if size < 0:
        raise ValueError(f"concept_block must be >= 0 (0: in memory), got {concept_block!r}")
    if size and mode != "detect":
        raise ValueError("concept_block applies to detection runs only (steering holds one task context)")
    if size and wide:
        raise ValueError(f"concept_block: {', '.join(map(str, wide))} fit on the whole task (Method.task_wide) and "
                         "cannot run in concept blocks; run them with concept_block=0")
    return size


@dataclass
class BlockRun:
    """What one rank's block run returns (rank 0 merges them with `add_pooled_f1`).

    Attributes:
        parts: one `run_detect` result per block.
        counts: ``{(label, cid): NegativeCounts}`` over this rank's pool blocks.
        resources: this rank's memory report (`rank_resources`).
        describe: `BenchContext.describe` of the first block, with this rank's token counts per
            row (`merge_describe` unites the ranks').
        model: the loaded ``ModelWrapper``.
        site / layer / options: as the blocks' contexts had them.
    """

    parts: list[dict[str, Any]]
    counts: dict[tuple[str, int], Any]
    resources: dict[str, Any]
    describe: dict[str, Any]
    model: Any = field(repr=False)
    site: str = ""
    layer: int = -1
    options: dict[str, Any] = field(default_factory=dict)


def _shareable(fitted: Any) -> Any:
    # a steering context holds closures (not picklable, and detection does not use it)
    return replace(fitted, steer_context=None) if fitted.steer_context is not None else fitted


def detect_in_blocks(
    task: Any,
    model: Any,
    methods: Sequence[str | Any],
    *,
    concepts: Sequence[int],
    size: int,
    rank: int = 0,
    world: int = 1,
    context: Mapping[str, Any],
    imbalance_ratio: float | None = 100.0,
    gather: Callable[[Any], list[Any]] | None = None,
    log: Callable[[str], None] | None = None,
) -> BlockRun:
    """Run detection for this rank's share of ``concepts`` in blocks of ``size`` (see the module docstring).

    Args:
        task: the whole `AxBenchTask`.
        model: a ``ModelWrapper`` or a name (loaded once, by the first block).
        methods: method names or objects (none `task_wide`).
        concepts: the run's concept ids; this rank takes ``concepts[rank::world]``.
        size: concepts per block.
        rank / world: this process among ``world``.
        context: keyword arguments of `build_context` (``cache_dir``, ``max_length``, ``tokens``...).
        imbalance_ratio: as `run_detect`; None skips the pooled F1.
        gather: all-gather of a picklable object over the ranks (needed when ``world > 1``).
        log: as `run_detect`.
    """
    from ._context import build_context
    from ._metrics import NegativeCounts
    from ._run import run_detect
    from .methods import get_method

    kw = dict(context)
    tmp = None
    if not kw.get("cache_dir"):
        # the pool pass reads each eval block a second time: keep them on disk for the run, not in memory
        tmp = tempfile.mkdtemp(prefix="interpkit-blocks-")
        kw["cache_dir"] = Path(tmp)
    parts: list[dict[str, Any]] = []
    positives: dict[str, dict[int, Any]] = {}
    fits: dict[str, dict[int, Any]] = {}
    held = 0
    train_len = np.full(len(task.train), -1, dtype=np.int64)
    eval_len = np.full(len(task.eval), -1, dtype=np.int64)
    excluded = 0
    first = shared = None
    try:
        for block in concept_blocks(list(concepts)[rank::world], size):
            ctx = build_context(task.subset(concepts=block), model, **kw)
            model = ctx.model
            if first is None:
                first = {"describe": ctx.describe(), "site": ctx.site, "layer": ctx.layer, "options": ctx.options}
            if shared is not None:
                ctx._chat, ctx._encoder = shared
            held = max(held, ctx.train_acts.values.nbytes + ctx.eval_acts.values.nbytes)
            train_len[_train_positions(task, block)] = ctx.train_acts.lengths()
            eval_len[_eval_positions(task, block)] = ctx.eval_acts.lengths()
            excluded += ctx.train_acts.n_excluded + ctx.eval_acts.n_excluded
            fitted: dict[str, dict[int, Any]] = {}
            parts.append(run_detect(ctx, methods, imbalance_ratio=None, keep_fitted=fitted,
                                    keep_positive_scores=positives, log=log))
            for label, per in fitted.items():
                fits.setdefault(label, {}).update({cid: _shareable(f) for cid, f in per.items()})
            shared = (ctx._chat, ctx._encoder)
            del ctx  # before the next block is built
            gc.collect()
        counts: dict[tuple[str, int], Any] = {}
        if imbalance_ratio:
            shared_fits = {label: {cid: (fits[label][cid], pos) for cid, pos in per.items()}
                           for label, per in positives.items()}
            if world > 1:
                assert gather is not None, "detect_in_blocks: world > 1 needs gather"
                merged: dict[str, dict[int, Any]] = {}
                for part in gather(shared_fits):
                    for label, per in part.items():
                        merged.setdefault(label, {}).update(per)
                shared_fits = merged
            by_label = {}
            for spec in methods:
                m = get_method(spec, **(kw.get("options") or {}).get(spec, {})) if isinstance(spec, str) else spec
                by_label[m.label] = m
            counts = {(label, cid): NegativeCounts.start(pos)
                      for label, per in shared_fits.items() for cid, (_, pos) in per.items()}
            for block in concept_blocks([c.id for c in task.concepts][rank::world], size):
                sub = task.subset(concepts=block)
                pctx = build_context(replace(sub, train=sub.train.iloc[:0]), model, **kw)
                held = max(held, pctx.eval_acts.values.nbytes)
                eval_len[_eval_positions(task, block)] = pctx.eval_acts.lengths()
                neg = np.flatnonzero(pctx.task.eval["category"].to_numpy() == "negative")
                if neg.size:
                    for label, per in shared_fits.items():
                        for cid, scores in _pool_scores(pctx, by_label[label], per, neg):
                            counts[(label, cid)].add(scores)
                del pctx
                gc.collect()
        if first is None:  # more ranks than concepts: this rank only scored pool negatives (or nothing)
            sub = task.subset(concepts=[task.concepts[0].id])
            ctx = build_context(replace(sub, train=sub.train.iloc[:0], eval=sub.eval.iloc[:0]), model, **kw)
            first = {"describe": ctx.describe(), "site": ctx.site, "layer": ctx.layer, "options": ctx.options}
            model = ctx.model
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    describe = {**first["describe"], "n_train_texts": len(task.train), "n_eval_texts": len(task.eval),
                "n_train_tokens": train_len, "n_eval_tokens": eval_len, "excluded_sink_positions": excluded}
    res = rank_resources(rank, held, concept_block=int(size),
                         n_blocks=len(concept_blocks(list(concepts)[rank::world], size)))
    return BlockRun(parts=parts, counts=counts, resources=res, describe=describe, model=model,
                    site=first["site"], layer=first["layer"], options=first["options"])


def _pool_scores(ctx: Any, method: Any, fits: Mapping[int, tuple[Any, Any]], idx: np.ndarray):
    """``(cid, scores of texts idx)`` for every fit: `Method.scores`, with one gather per chunk for directions.

    For a method scoring by max-pooled psi (`pooled_scores`), each chunk of token rows is gathered
    once for all the fits (the per-fit arithmetic and the chunks are `pooled_scores`' own).
    """
    from .methods import Method
    from .methods._base import _acts, group_max, iter_token_chunks

    direct = {cid: f for cid, (f, _) in fits.items() if f.score in ("linear", "relu", "jumprelu")
              and f.vector is not None} if type(method).scores is Method.scores else {}
    for cid, (f, _) in fits.items():
        if cid not in direct:
            yield cid, method.scores(ctx, f, "eval", idx)
    if not direct:
        return
    out = {cid: np.zeros(len(idx), dtype=np.float32) for cid in direct}
    for start, stop, x, owner in iter_token_chunks(_acts(ctx, "eval"), np.asarray(idx, dtype=np.int64)):
        for cid, f in direct.items():
            out[cid][start:stop] = group_max(f.psi(f.pre(x)).astype(np.float32), owner - start, stop - start)
    yield from out.items()


def _train_positions(task: Any, block: Sequence[int]) -> np.ndarray:
    """Rows of ``task.train`` that ``task.subset(concepts=block)`` keeps, in its order."""
    df = task.train
    genres = {task.concept(c).genre for c in block}
    keep = df["concept_id"].isin(block) | ((df["concept_id"] == -1) & df["concept_genre"].isin(genres))
    return np.flatnonzero(keep.to_numpy())


def _eval_positions(task: Any, block: Sequence[int]) -> np.ndarray:
    return np.flatnonzero(task.eval["concept_id"].isin(block).to_numpy())


def merge_describe(parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One settings dict from the ranks' `BlockRun.describe`: token counts per row united (a row once)."""
    out = dict(parts[0])
    for key in ("n_train_tokens", "n_eval_tokens"):
        lengths = np.max(np.stack([np.asarray(p[key]) for p in parts]), axis=0)
        out[key] = int(lengths[lengths > 0].sum())
    out["excluded_sink_positions"] = int(sum(p["excluded_sink_positions"] for p in parts))
    return out


def add_pooled_f1(parts: Sequence[dict[str, Any]], counts: Sequence[Mapping[tuple[str, int], Any]], *,
                  ratio: float) -> None:
    """Sum the ranks' `NegativeCounts` and write ``f1_imbalanced`` into each concept's entry (in place).

    The entry keeps `run_detect`'s key order (detection metrics, ``f1_imbalanced``, ``info``).
    """
    from ._metrics import imbalanced_f1

    total: dict[tuple[str, int], Any] = {}
    for part in counts:
        for key, c in part.items():
            if key in total:
                total[key].merge(c)
            else:
                total[key] = replace(c, at_least=c.at_least.copy())
    for part in parts:
        for label, entry in part["methods"].items():
            per = entry["per_concept"]
            for cid, res in per.items():
                key = (label, int(cid))
                if key not in total or res.get("auroc") is None:
                    continue
                f1 = imbalanced_f1(total[key].positives, total[key], ratio=ratio)
                info = res.pop("info", None)
                res["f1_imbalanced"] = f1
                if info is not None:
                    res["info"] = info
