"""Choosing the benchmark's layer from the training texts alone: ``--layer auto``.

AxBench fixes its sites by depth (Gemma-2-2B layers 10 and 20 of 26). A model of another depth and
width has no such table, and picking the layer whose *eval* AUROC is best would be choosing on the
test set. `choose_layer` applies a rule fixed before any eval text is scored:

    For each candidate layer and each concept, DiffMean is cross-validated on the concept's
    **training** texts (its positives and genre-matched negatives): ``folds``-fold, grouped by text
    (a text's tokens never straddle folds) and stratified by label, each held-out fold scored by the
    AUROC of the max-pooled projection, the detection metric. The layer's score is the mean over
    folds and concepts; the chosen layer is the best-scoring one, the shallower on a tie within
    ``tie``.

DiffMean is the selector because it has no hyper-parameter to tune per layer and it is cheap (one
mean per fold); the one forward pass that caches every candidate's training activations serves
every later run at those layers (`token_activations`' cache). Candidates default to every
tenth of the depth from 20 % to 80 % (SmolLM2's 30 blocks: 6, 9, ..., 24).

Example:
    >>> from interpkit.bench._layers import candidate_layers
    >>> candidate_layers(30)
    [6, 9, 12, 15, 18, 21, 24]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LAYER_RULE", "LayerChoice", "candidate_layers", "choose_layer", "train_cv_auroc"]

LAYER_RULE = ("auto: the candidate layer with the best DiffMean AUROC cross-validated on the training texts "
              "({folds}-fold, grouped by text, stratified; mean over folds and concepts; the shallower within "
              "{tie}); no eval text is read")


def candidate_layers(n_layers: int) -> list[int]:
    """Every tenth of the depth from 20 % to 80 % (at least one layer apart), deduplicated."""
    n = int(n_layers)
    if n < 1:
        raise ValueError(f"candidate_layers: a model needs at least one layer, got {n}")
    return sorted({min(n - 1, max(0, int(round(f / 10 * n)))) for f in range(2, 9)})


@dataclass
class LayerChoice:
    """The rule's outcome: the chosen layer and every candidate's cross-validated score."""

    layer: int
    scores: dict[int, float]
    """Mean held-out training AUROC per candidate layer."""
    per_concept: dict[int, dict[int, float]] = field(default_factory=dict)
    """``{layer: {concept id: mean held-out AUROC}}``."""
    rule: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "rule": self.rule, "seconds": round(self.seconds, 1),
                "train_cv_auroc": {str(k): round(v, 4) for k, v in self.scores.items()},
                "per_concept": {str(k): {str(c): round(a, 4) for c, a in v.items()}
                                for k, v in self.per_concept.items()}}


def _folds(labels: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """A fold id per text, stratified: each class's texts are shuffled and dealt round-robin."""
    folds = np.empty(len(labels), dtype=np.int64)
    for cls in (True, False):
        where = np.flatnonzero(labels == cls)
        folds[rng.permutation(where)] = np.arange(len(where)) % k
    return folds


def train_cv_auroc(acts: Any, rows: np.ndarray, labels: np.ndarray, *, folds: int = 3,
                   rng: np.random.Generator) -> float:
    """Mean held-out AUROC of DiffMean over ``folds`` text-grouped folds of the given training rows.

    Args:
        acts: the `TokenActs` of the training texts at one site.
        rows: the concept's training text indices into ``acts``.
        labels: True for a positive text (aligned with ``rows``).
        folds: number of folds (each needs both classes in and out of it; folds that do not are skipped).
        rng: the generator of the fold assignment (the same for every layer, so layers see the same folds).

    Returns:
        The mean held-out AUROC, or NaN when no fold had both classes on both sides.
    """
    from .methods._base import held_out_auroc

    rows = np.asarray(rows, dtype=np.int64)
    labels = np.asarray(labels, dtype=bool)
    fold_of = _folds(labels, int(folds), rng)
    x, owner = acts.gather(rows)
    x = np.asarray(x, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    tok_label = labels[owner]
    out = []
    for k in range(int(folds)):
        held = fold_of == k
        fit = ~held[owner]
        y_fit, y_held = tok_label[fit], labels[held]
        if y_fit.all() or not y_fit.any() or y_held.all() or not y_held.any():
            continue
        diff = x[fit][y_fit].mean(axis=0) - x[fit][~y_fit].mean(axis=0)
        out.append(held_out_auroc(x, owner, labels, held, diff / (np.linalg.norm(diff) or 1.0)))
    return float(np.mean(out)) if out else float("nan")


def choose_layer(
    task: Any,
    model: Any,
    *,
    candidates: Sequence[int] | None = None,
    folds: int = 3,
    tie: float = 0.001,
    max_length: int | None = 256,
    batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None | bool = True,
    seed: int = 42,
    tokens: str = "all",
    concepts: Sequence[int] | None = None,
    progress: bool = True,
) -> LayerChoice:
    """Pick the benchmark layer by the training-text rule of this module (no eval text is read).

    Args:
        task: an `AxBenchTask` (or its folder).
        model: a ``ModelWrapper``.
        candidates: block indices to try (default `candidate_layers`).
        folds: cross-validation folds per concept.
        tie: scores within this of the best count as tied; the shallowest tied layer wins.
        max_length / batch_size / cache_dir / tokens: as `build_context` (the same cache keys, so the
            chosen layer's training activations are reused by the run).
        seed: seed of the fold assignment.
        concepts: concept ids to average over (default: all).
        progress: progress bar of the activation pass.
    """
    from ._acts import token_activations
    from ._context import acts_cache_root, format_rows, response_mask
    from ._task import AxBenchTask, load_task

    t0 = time.perf_counter()
    if not isinstance(task, AxBenchTask):
        task = load_task(task)
    layers = sorted({int(c) for c in (candidates if candidates is not None else candidate_layers(model.n_layers))})
    bad = [c for c in layers if not 0 <= c < int(model.n_layers)]
    if not layers or bad:
        raise ValueError(f"choose_layer: candidate layers must be in 0..{int(model.n_layers) - 1}, got {bad or layers}")
    if int(folds) < 2:
        raise ValueError(f"choose_layer: folds must be >= 2, got {folds}")
    texts, prefix, bos = format_rows(model.tokenizer, task.train)
    sites = [model.resolve_site(f"layer{c}.resid_post") for c in layers]
    acts = token_activations(model, texts, sites, prefix_length=prefix, prepend_bos=bos, max_length=max_length,
                             batch_size=batch_size, cache_dir=acts_cache_root(cache_dir), progress=progress)
    cids = [c.id for c in task.concepts] if concepts is None else [int(c) for c in concepts]
    splits = {}
    for cid in cids:
        rows = task.train_rows(cid)
        splits[cid] = (rows.index.to_numpy(dtype=np.int64), rows["label"].to_numpy() == 1)
    per: dict[int, dict[int, float]] = {}
    for layer, site in zip(layers, sites, strict=True):
        a = acts[site]
        if tokens == "response":
            a = a.select(response_mask(model.tokenizer, a))
        per[layer] = {cid: train_cv_auroc(a, idx, lab, folds=folds, rng=np.random.default_rng([int(seed), cid, 11]))
                      for cid, (idx, lab) in splits.items()}
    scores = {layer: float(np.nanmean(list(v.values()))) if any(np.isfinite(list(v.values()))) else float("nan")
              for layer, v in per.items()}
    finite = {k: v for k, v in scores.items() if np.isfinite(v)}
    if not finite:
        raise ValueError("choose_layer: no concept had both classes in its training folds; give a --layer")
    best = max(finite.values())
    chosen = min(k for k, v in finite.items() if v >= best - tie)
    return LayerChoice(layer=chosen, scores=scores, per_concept=per,
                       rule=LAYER_RULE.format(folds=int(folds), tie=tie), seconds=time.perf_counter() - t0)
