"""The work behind ``interpkit export-hf-records``, ``export-hf-contrast`` and ``export-hf-interventions``.

Each function takes a loaded ``ModelWrapper`` and prompt rows and returns records (the CLI writes
them with `~interpkit.records.write_jsonl`). Every activation record carries a ``split`` extra: the
row's own split, else the hash split that ``interpkit inspect`` would assign (seed 0), so the
ranking's train/test split and the interventions' split agree.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interpkit.records import (
    ActivationRecord,
    FeatureActivation,
    InterventionRecord,
    control_owner,
    normalize_criterion,
)

from ._metric import metric_for_criterion
from ._runner import CausalFeature, neuron_feature, run_interventions
from ._sweep import SweepResult, assign_prompt_splits, split_by_score, sweep_strengths

if TYPE_CHECKING:
    from interpkit.records import ReportRecord
    from interpkit.sources import PromptRow
    from interpkit.sources.directions import DirectionSet

__all__ = ["ContrastExport", "default_layer", "export_contrast", "export_interventions", "export_records"]


def default_layer(model: Any) -> int:
    """The middle block, ``n_layers // 2`` (layer 15 of SmolLM2-135M's 30)."""
    return int(model.n_layers) // 2


def _rows(rows: Any) -> list[PromptRow]:
    from interpkit.sources.neurons import load_rows

    if isinstance(rows, (str, os.PathLike)):
        rows = Path(rows)
    return load_rows(rows)


def _pooled(
    model: Any, rows: Sequence[PromptRow], sites: Sequence[str], pool: str, batch_size: int, max_length: int | None
) -> dict[str, np.ndarray]:
    """Pooled activations ``[n_rows, d]`` per site, from one streaming pass over every site (BOS excluded)."""
    from interpkit.sources import stream_activations

    result = stream_activations(model, [r.text for r in rows], list(sites), pooling=pool, batch_size=batch_size,
                                max_length=max_length, progress=False)
    out = {}
    for site in sites:
        chunk = result[site, pool].to_chunk()
        values = np.zeros((len(rows), chunk.values.shape[1]), dtype=np.float32)
        values[chunk.example_idx] = chunk.values
        out[site] = values
    return out


def export_records(
    model: Any,
    rows: Any,
    *,
    layers: Sequence[int] | None = None,
    site_kind: str = "resid_post",
    pool: str = "max",
    top_k_features: int | None = 64,
    batch_size: int = 8,
    max_length: int | None = 128,
) -> list[ActivationRecord]:
    """Neuron activation records: one row per prompt, its ``top_k_features`` neurons by |activation|.

    Args:
        model: an interpkit ``ModelWrapper``.
        rows: prompt rows or a prompt-dataset JSONL path.
        layers: block indices (default: `default_layer`); sites are ``layer{L}.{site_kind}``.
        site_kind: ``resid_post``, ``resid_pre``, ``mlp_out`` or ``attn_out``.
        pool: ``max``, ``mean`` or ``last`` over each prompt's tokens (BOS excluded).
        top_k_features: neurons kept per row, largest |activation| first (None: all). Neurons left
            out of a row read as 0 when the records are turned into a table.
        batch_size: prompts per forward pass.
        max_length: truncation length in tokens.

    Returns:
        Records with feature ids ``"layer{L}.{site_kind}:n{i}"`` (as `neuron_table` names them).
    """
    data = _rows(rows)
    if not data:
        raise ValueError("the dataset holds no prompts")
    layers = [default_layer(model)] if not layers else [int(x) for x in layers]
    sites = [model.resolve_site(f"layer{layer}.{site_kind}") for layer in layers]
    pooled = _pooled(model, data, sites, pool, batch_size, max_length)
    ids: list[str] = []
    layer_of: list[int] = []
    for layer, site in zip(layers, sites, strict=True):
        ids += [f"{site}:n{i}" for i in range(pooled[site].shape[1])]
        layer_of += [layer] * pooled[site].shape[1]
    values = np.concatenate([pooled[site] for site in sites], axis=1)
    splits = assign_prompt_splits(data)
    k = values.shape[1] if top_k_features is None else min(int(top_k_features), values.shape[1])
    out = []
    for i, row in enumerate(data):
        order = np.argsort(-np.abs(values[i]), kind="stable")[:k]
        feats = [FeatureActivation(feature_id=ids[j], activation=float(values[i, j]), layer=layer_of[j])
                 for j in sorted(order)]
        out.append(ActivationRecord(model=model.name, prompt_id=row.prompt_id, text=row.text,
                                    criterion_score=row.criterion_score, features=tuple(feats),
                                    extra={"split": splits[i], "pool": pool}))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class ContrastExport:
    """What `export_contrast` produced."""

    records: tuple[ActivationRecord, ...]
    """Projections of each prompt onto the contrast direction and its random controls."""
    interventions: tuple[InterventionRecord, ...]
    """Test-split steering rows at the chosen strength (direction and controls)."""
    directions: DirectionSet
    """The contrast direction (first) and the control directions."""
    sweep: SweepResult
    """The strength choice on the train split."""


def export_contrast(
    model: Any,
    rows: Any,
    criterion: str,
    *,
    layer: int | None = None,
    strengths: Sequence[float] = (8.0,),
    target_tokens: Sequence[str] | None = None,
    pool: str = "last",
    n_controls: int = 2,
    controls: Sequence[str] | str = ("random",),
    threshold: float = 0.5,
    kind: str = "steer",
    side_effect_weight: float = 1.0,
    seed: int = 0,
    batch_size: int = 8,
    max_length: int | None = 128,
) -> ContrastExport:
    """Learn the positive-minus-negative direction on train prompts, sweep its strength, report on test.

    Args:
        model: an interpkit ``ModelWrapper``.
        rows: prompt rows or a prompt-dataset JSONL path (scored: ``criterion_score >= threshold``
            is positive).
        criterion: the user's criterion text.
        layer: block index (default `default_layer`); the site is ``layer{L}.resid_post``.
        strengths: candidate steering strengths (the direction has unit norm).
        target_tokens: the criterion's target tokens (default: the dataset's ``target_tokens``).
        pool: pooling of the activations the direction is learnt from and projected with.
        n_controls: controls per control kind, written as control features (``contrast:layer{L}::control{k}``
            for random unit directions, ``::matched_frequency{k}`` / ``::placebo{k}`` for the others)
            in the records, the interventions and the DirectionSet.
        controls: control kinds: ``random``, ``matched_frequency``, ``placebo`` (see `run_interventions`);
            the data-dependent kinds are built from the test split's prompts, where they run.
        threshold: score threshold between negatives and positives.
        kind: ``steer`` or ``amplify``.
        side_effect_weight: the sweep picks the strength with the best ``effect - side_effect_weight *
            side_effect`` on train (1: a unit of next-token TV on the negatives costs as much as a unit
            of criterion effect; smaller values accept more disturbance of unrelated prompts).
        seed: seeds the controls.
        batch_size: prompts per forward pass.
        max_length: truncation length in tokens.

    Raises:
        MissingTargetTokensError: no target tokens given or in the dataset.
        ValueError: a class or a split is empty.
    """
    from interpkit.sources.directions import DirectionSet, contrast_direction, direction_table

    data = _rows(rows)
    metric = metric_for_criterion(criterion, target_tokens=target_tokens, rows=data)
    layer = default_layer(model) if layer is None else int(layer)
    site = model.resolve_site(f"layer{layer}.resid_post")
    splits = assign_prompt_splits(data)
    scored = [(r, s) for r, s in zip(data, splits, strict=True) if r.criterion_score is not None]
    train = [r for r, s in scored if s == "train"]
    labels = [r.criterion_score >= threshold for r in train]
    if all(labels) or not any(labels):
        raise ValueError("the train split needs both positive and negative prompts to learn a contrast direction")
    acts = _pooled(model, train, [site], pool, batch_size, max_length)[site]
    direction = contrast_direction(acts, labels, normalize=True)
    fid = f"contrast:layer{layer}"
    feature = CausalFeature(feature_id=fid, site=site, direction=direction)
    from ._controls import make_controls

    pos = [(r, s) for r, s in scored if r.criterion_score >= threshold]
    neg = [(r, s) for r, s in scored if r.criterion_score < threshold]
    test_pos = [r.text for r, s in pos if s == "test"]
    if not test_pos:
        raise ValueError("the test split has no positive prompts: the held-out steering effect cannot be measured; "
                         "add rows or set their 'split' field")
    controls = make_controls(model, feature, controls, n_controls, test_pos + [r.text for r, s in neg if s == "test"],
                             len(test_pos), seed=seed, batch_size=batch_size)
    directions = DirectionSet(
        names=(fid, *(c.feature_id for c in controls)),
        vectors=np.stack([direction, *(c.direction for c in controls)]),
        site=site, kind="contrast", model=model.name,
        metadata={"criterion": criterion, "pool": pool, "threshold": threshold, "learned_on": "train",
                  "controls": [c.feature_id for c in controls]},
    )
    table = direction_table(model, data, directions, pooling=pool, top_tokens=0, batch_size=batch_size,
                            max_length=max_length, progress=False)
    values = np.asarray(table.dense(), dtype=np.float32)
    records = []
    for i, row in enumerate(data):
        feats = []
        for j, name in enumerate(directions.names):
            extra = {"control": True, "control_of": fid, "control_kind": controls[j - 1].control_kind} if j else {}
            feats.append(FeatureActivation(feature_id=name, activation=float(values[i, j]), layer=layer, extra=extra))
        records.append(ActivationRecord(model=model.name, prompt_id=row.prompt_id, text=row.text,
                                        criterion_score=row.criterion_score, features=tuple(feats),
                                        extra={"split": splits[i], "pool": pool}))
    sweep = sweep_strengths(
        model, feature, [r for r, _ in pos], [r for r, _ in neg], metric, list(strengths), kind=kind,
        splits=([s for _, s in pos], [s for _, s in neg]), side_effect_weight=side_effect_weight,
        control_features=controls, seed=seed,
        batch_size=batch_size,
    )
    return ContrastExport(records=tuple(records), interventions=sweep.records, directions=directions, sweep=sweep)


def export_interventions(
    model: Any,
    report: ReportRecord | str | os.PathLike[str],
    rows: Any,
    criterion: str,
    *,
    top_k: int = 10,
    directions: DirectionSet | str | os.PathLike[str] | None = None,
    kinds: Sequence[str] = ("ablate",),
    target_tokens: Sequence[str] | None = None,
    ablate_mode: str = "zero",
    strength: float = 8.0,
    n_controls: int = 1,
    controls: Sequence[str] | str = ("random",),
    threshold: float = 0.5,
    split: str | None = "test",
    seed: int = 0,
    batch_size: int = 8,
) -> list[InterventionRecord]:
    """Edit the report's top features on the dataset's prompts and return intervention records.

    Feature ids map back to edits: neuron ids ``"<site>:n<i>"`` (as `neuron_table` and
    `export_records` name them) directly, direction ids through ``directions`` (the DirectionSet
    `export_contrast` saves next to its records).

    Args:
        model: an interpkit ``ModelWrapper``.
        report: a ``Report`` (any `~interpkit.records.ReportRecord`) or the path of its ``report.json``.
        rows: prompt rows or a prompt-dataset JSONL path.
        criterion: the user's criterion text (must match the report's).
        top_k: how many of the report's features to edit.
        directions: a DirectionSet or its folder, for direction features.
        kinds: intervention kinds (``ablate``, ``steer``, ``amplify``).
        target_tokens: the criterion's target tokens (default: the dataset's).
        ablate_mode: ``zero`` or ``mean``.
        strength: strength for steer/amplify.
        n_controls: controls per feature and control kind (features that are controls get none).
        controls: control kinds (``random``, ``matched_frequency``, ``placebo``; see `run_interventions`).
        threshold: score threshold between negatives and positives.
        split: run on this split only (the ranking selected features on train); None: all rows.
        seed: seeds the controls.
        batch_size: prompts per forward pass.

    Raises:
        ValueError: a feature id that maps to no edit, a criterion that differs from the report's,
            or no positive prompts in the split.
    """
    from interpkit.records import ReportRecord, read_report
    from interpkit.sources.directions import DirectionSet

    if not isinstance(report, ReportRecord):  # a Report is one too
        report = read_report(report)
    if normalize_criterion(report.criterion) != normalize_criterion(criterion):
        raise ValueError(f"--criterion {criterion!r} differs from the report's criterion {report.criterion!r}")
    if directions is not None and not isinstance(directions, DirectionSet):
        directions = DirectionSet.load(directions)
    data = _rows(rows)
    metric = metric_for_criterion(criterion, target_tokens=target_tokens, rows=data)
    features = [_feature_for(model, f.feature_id, directions) for f in report.features[: int(top_k)]]
    if not features:
        raise ValueError("the report lists no features")
    if split is not None:
        data = [r for r, s in zip(data, assign_prompt_splits(data), strict=True) if s == split]
    pos, neg = split_by_score(data, threshold=threshold)
    if not pos:
        raise ValueError(f"no positive prompts (criterion_score >= {threshold}) in the {split or 'whole'} split")
    from ._controls import check_controls

    controls = check_controls(controls)
    out: list[InterventionRecord] = []
    extra = {"split": split} if split is not None else None
    for feat in features:
        n = 0 if control_owner(feat.feature_id) is not None else n_controls
        out += run_interventions(model, [feat], pos, neg, metric, kinds=kinds, strength=strength, n_controls=n,
                                 controls=controls, ablate_mode=ablate_mode, seed=seed, batch_size=batch_size, extra=extra)
    return out


def _feature_for(model: Any, feature_id: str, directions: DirectionSet | None) -> CausalFeature:
    if directions is not None and feature_id in directions.names:
        j = directions.names.index(feature_id)
        return CausalFeature(feature_id=feature_id, site=model.resolve_site(directions.site),
                             direction=directions.vectors[j])
    try:
        feat = neuron_feature(feature_id)
    except ValueError:
        hint = "it is not in the given --directions set" if directions is not None else (
            "direction features need their vectors: pass --directions FOLDER (export-hf-contrast saves "
            "it as <records-out>.directions)")
        raise ValueError(f"feature {feature_id!r} is not a neuron id ('<site>:n<i>'), and {hint}") from None
    model.resolve_site(feat.site)
    if not 0 <= int(feat.neuron) < int(model.d_model):
        raise ValueError(f"feature {feature_id!r}: neuron index out of range for d_model {model.d_model}")
    return feat
