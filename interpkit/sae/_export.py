"""What ``interpkit train-sae --records-out / --causal-out`` produce from a trained SAE.

`export_sae_records` writes the learned latents as activation records (one row per prompt, the
latents pooled over its tokens), so ``interpkit inspect --backend records`` ranks them like any
other feature. `export_sae_interventions` picks the latents most associated with a criterion on the
train split and steers each one (``strength × W_dec[i]`` added at the SAE's site), choosing the
strength on train and reporting the test split with same-norm random controls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._base import SAE
from ._site import sae_site

__all__ = ["SAEInterventionExport", "export_sae_interventions", "export_sae_records", "records_codes"]


def export_sae_records(
    sae: SAE,
    rows: Sequence[Any],
    *,
    model: Any = None,
    codes: np.ndarray | None = None,
    from_records: bool = False,
    model_name: str | None = None,
    pooling: str = "max",
    top_k_features: int | None = 64,
    batch_size: int = 8,
    max_length: int | None = 128,
) -> list[Any]:
    """Activation records of the SAE's latents, one per row.

    Args:
        sae: the trained SAE.
        rows: prompt rows (`~interpkit.sources.PromptRow`) or activation records; their ids, texts,
            criterion scores and ``split`` are carried over.
        model: a ``ModelWrapper``: the rows' texts are run through it and each latent is pooled over
            the tokens (BOS excluded). Give either ``model`` or ``codes``.
        codes: precomputed codes ``[len(rows), d_sae]``.
        from_records: ``rows`` are activation records and the SAE was trained on such records
            (``train_sae(records_path)`` stores their feature ids as the SAE's input columns in
            ``cfg.metadata["input_feature_ids"]``): each record's features become its input row.
        model_name: the ``model`` field of the records (default: the model's name, else the SAE's).
        pooling: ``max``, ``mean`` or ``last``.
        top_k_features: latents kept per row, largest |activation| first (None: every non-zero one).
        batch_size: prompts per forward pass.
        max_length: truncation length in tokens.

    Raises:
        ValueError: neither or both of ``model`` and ``codes``, or codes of the wrong shape.
    """
    from ._features import encode_texts, sae_records

    if sum(x is not None and x is not False for x in (model, codes, from_records)) != 1:
        raise ValueError("export_sae_records needs exactly one of model=, codes= or from_records=True")
    if from_records:
        codes = records_codes(sae, rows)
    elif codes is None:
        codes = encode_texts(sae, model, [r.text for r in rows], site=sae_site(sae, model), pooling=pooling,
                             batch_size=batch_size, max_length=max_length)
    codes = np.asarray(codes)
    if codes.shape != (len(rows), sae.d_sae):
        raise ValueError(f"codes have shape {codes.shape}, expected ({len(rows)}, {sae.d_sae})")
    name = model_name or getattr(model, "name", None) or sae.cfg.model or "unknown"
    return sae_records(sae, codes, rows, model_name=name, top_k_features=top_k_features)


def records_codes(sae: SAE, records: Sequence[Any], *, batch_size: int = 4096) -> np.ndarray:
    """Codes ``[len(records), d_sae]`` of activation records, for an SAE trained on such records.

    Each record's features are placed in the SAE's input columns
    (``cfg.metadata["input_feature_ids"]``); features the SAE never saw are left out (a warning
    counts them), missing ones read 0.

    Raises:
        ValueError: the SAE does not record its input feature ids (it was not trained on records).
    """
    import warnings

    import torch

    from ._features import inference

    ids = sae.cfg.metadata.get("input_feature_ids")
    if not ids:
        raise ValueError(f"{sae!r} was not trained on activation records (no input_feature_ids in its metadata)")
    if len(ids) != sae.d_in:
        raise ValueError(f"input_feature_ids lists {len(ids)} ids for an SAE with d_in {sae.d_in}")
    column = {str(fid): j for j, fid in enumerate(ids)}
    out = np.zeros((len(records), sae.d_sae), dtype=np.float32)
    unknown: set[str] = set()
    with inference(sae), torch.no_grad():
        for start in range(0, len(records), batch_size):
            block = records[start:start + batch_size]
            x = np.zeros((len(block), sae.d_in), dtype=np.float32)
            for i, rec in enumerate(block):
                for f in rec.features:
                    j = column.get(str(f.feature_id))
                    if j is None:
                        unknown.add(str(f.feature_id))
                    else:
                        x[i, j] = f.activation
            out[start:start + len(block)] = sae.encode(torch.from_numpy(x).to(sae.W_enc.dtype)).float().numpy()
    if unknown:
        warnings.warn(f"{len(unknown)} feature id(s) in the records are not inputs of the SAE (e.g. "
                      f"{sorted(unknown)[0]!r}); they were left out", stacklevel=2)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class SAEInterventionExport:
    """What `export_sae_interventions` produced."""

    records: tuple[Any, ...]
    """Test-split intervention records of every chosen latent and its controls."""
    latents: tuple[int, ...]
    """The latents steered, most associated first."""
    strengths: dict[str, float]
    """The strength chosen on train, per latent feature id."""


def export_sae_interventions(
    sae: SAE,
    model: Any,
    rows: Sequence[Any],
    criterion: str,
    *,
    top_k: int = 5,
    strengths: Sequence[float] = (2.0, 4.0, 8.0),
    target_tokens: Sequence[str] | None = None,
    threshold: float = 0.5,
    n_controls: int = 1,
    pooling: str = "max",
    seed: int = 0,
    batch_size: int = 8,
    max_length: int | None = 128,
) -> SAEInterventionExport:
    """Steer the ``top_k`` latents most associated with ``criterion`` and record the effects.

    Latents are chosen by held-out-free association only: the absolute Spearman correlation of
    each latent's pooled activation with the criterion score on the train split
    (`~interpkit.causal.assign_prompt_splits`, the split ``inspect`` uses), so the test split the
    records describe was not used to choose them. The strength is swept on train
    (`~interpkit.causal.sweep_strengths`; strengths are in units of the latent's mean activation
    on train positives, so ``4`` adds four times its typical contribution).

    Args:
        sae: the SAE.
        model: a ``ModelWrapper`` the SAE reads.
        rows: prompt rows with criterion scores (and ``target_tokens`` unless given).
        criterion: the criterion text written into the records.
        top_k: latents to steer.
        strengths: candidate strengths (multiples of the latent's typical activation).
        target_tokens: the criterion's target tokens (default: the rows').
        threshold: score threshold between negatives and positives.
        n_controls: same-norm random controls per latent.
        pooling: pooling used to associate latents with the criterion.
        seed: seeds the controls.
        batch_size: prompts per forward pass.
        max_length: truncation length in tokens.

    Raises:
        ValueError: rows without scores, or no positives/negatives in a split.
    """
    from scipy.stats import spearmanr

    from interpkit.causal import assign_prompt_splits, metric_for_criterion, split_by_score, sweep_strengths

    from ._edits import latent_feature
    from ._features import encode_texts, sae_feature_ids

    rows = list(rows)
    scores = np.asarray([np.nan if r.criterion_score is None else r.criterion_score for r in rows], dtype=float)
    if np.isnan(scores).all():
        raise ValueError("the rows carry no criterion_score; score the prompts first")
    metric = metric_for_criterion(criterion, target_tokens=target_tokens, rows=rows, batch_size=batch_size)
    site = sae_site(sae, model)
    codes = encode_texts(sae, model, [r.text for r in rows], site=site, pooling=pooling, batch_size=batch_size,
                         max_length=max_length)
    splits = np.asarray(assign_prompt_splits(rows))
    train = (splits == "train") & ~np.isnan(scores)
    if train.sum() < 4:
        raise ValueError(f"only {int(train.sum())} scored train rows; need at least 4 to choose latents")
    assoc = np.zeros(sae.d_sae)
    for i in range(sae.d_sae):
        col = codes[train, i]
        if np.ptp(col) > 0:
            rho = spearmanr(col, scores[train]).statistic
            assoc[i] = 0.0 if np.isnan(rho) else abs(rho)
    chosen = [int(i) for i in np.argsort(-assoc, kind="stable")[: int(top_k)] if assoc[i] > 0]
    if not chosen:
        raise ValueError("no latent varies with the criterion on the train split")
    pos, neg = split_by_score(rows, threshold=threshold)
    pos_train_mask = train & (scores >= threshold)
    ids = sae_feature_ids(sae)
    out: list[Any] = []
    chosen_strengths: dict[str, float] = {}
    for i in chosen:
        typical = float(codes[pos_train_mask, i].mean()) if pos_train_mask.any() else 0.0
        unit = typical if typical > 0 else 1.0
        feat = latent_feature(sae, i, feature_id=ids[i], site=site)
        sweep = sweep_strengths(model, feat, pos, neg, metric, [s * unit for s in strengths],
                                n_controls=n_controls, seed=seed, batch_size=batch_size)
        chosen_strengths[ids[i]] = float(sweep.strength)
        out.extend(sweep.records)
    return SAEInterventionExport(records=tuple(out), latents=tuple(chosen), strengths=chosen_strengths)
