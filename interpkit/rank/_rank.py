"""``rank``: score every feature of a table against a criterion and order them by evidence tier."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Literal, get_args

import numpy as np

from interpkit.rank import _components as comp
from interpkit.rank import _stats
from interpkit.rank._result import (
    TIERS,
    Association,
    Causal,
    FeatureRanking,
    RankingResult,
    RankSettings,
    _clean,
)
from interpkit.rank._splits import hash_splits

NullKind = Literal["permutation", "asymptotic", "auto"]
_MIN_CLASS_TEST = 2
_NO_CAUSAL = Causal(
    status="no causal evidence", value=None, ci_low=None, ci_high=None, n=0, n_dropped_mismatch=0
)


def _splits_of(table: Any, test_fraction: float, seed: int) -> tuple[np.ndarray, str]:
    ex = table.examples
    given = ex["split"] if "split" in ex.columns else None
    if given is not None:
        vals = given.astype(object).where(given.notna(), None).to_numpy()
        if any(v is not None for v in vals):
            bad = {v for v in vals if v is not None and v not in ("train", "test")}
            if bad:
                raise ValueError(
                    f"examples.split must be 'train', 'test' or missing, got {sorted(map(str, bad))}"
                )
            hashed = hash_splits(ex["text"].astype(str), test_fraction, seed)
            return np.where(vals == None, hashed, vals), "table"  # noqa: E711
    return hash_splits(ex["text"].astype(str), test_fraction, seed), "hash"


def _tier(assoc: Association, causal: Causal) -> int:
    if causal.status == "promotes":
        return 0 if assoc.significant else 1
    if causal.status == "suppresses":
        return 2
    if assoc.significant:
        return 4 if causal.status == "inert" else 3
    return 5


def rank(
    table: Any,
    criterion_scores: Any = None,
    interventions: Iterable[Any] | None = None,
    *,
    criterion: str | None = None,
    test_fraction: float = 0.5,
    n_permutations: int = 1000,
    null: NullKind = "permutation",
    n_bootstrap: int = 50,
    fdr_alpha: float = 0.05,
    seed: int = 0,
    side_effect_weight: float = 1.0,
    causal_margin: float = 0.05,
    ci_level: float = 0.95,
    allow_intervention_criterion_mismatch: bool = False,
) -> RankingResult:
    """Rank the table's features for a criterion: held-out association, specificity, causal, stability.

    Args:
        table: a :class:`~interpkit.table.FeatureTable` (dense or sparse values).
        criterion_scores: one score per example (binary or in [0, 1]); default
            ``table.examples.criterion_score``. NaN scores are excluded (counted in settings).
        interventions: :class:`~interpkit.records.InterventionRecord` objects (or their dicts).
        criterion: criterion text; records naming another criterion are dropped. Default
            ``table.meta['criterion']``.
        test_fraction: held-out share when the table has no ``split`` column.
        n_permutations: permutations of the held-out criterion for the null.
        null: ``"permutation"`` (exact-valid), ``"asymptotic"`` (Spearman t approximation; use it
            when ``1 / (1 + n_permutations)`` is too coarse for FDR over many features), or ``"auto"``:
            permutation unless the table has so many features that even the smallest permutation
            p-value could not pass the FDR correction (``n_features / (1 + n_permutations) >
            fdr_alpha``, e.g. an SAE's thousands of latents), then asymptotic.
            ``result.settings.null`` says which null was used.
        n_bootstrap: train resamples for stability.
        fdr_alpha: Benjamini-Hochberg level.
        seed: seed for hashed splits, permutations and bootstrap resamples.
        side_effect_weight: weight of ``|side_effect_score|`` subtracted from each causal measurement.
        causal_margin: equivalence half-width for a causally ``"inert"`` feature.
        ci_level: confidence level of causal intervals.
        allow_intervention_criterion_mismatch: keep records whose criterion differs.

    Returns:
        A :class:`RankingResult` in ranked order.

    Raises:
        ValueError: on bad arguments, misaligned scores, or an empty split.
    """
    if null not in get_args(NullKind):
        raise ValueError(f"null must be one of {get_args(NullKind)}, got {null!r}")
    if null == "permutation" and n_permutations < 1:
        raise ValueError("n_permutations must be >= 1 with null='permutation'")
    if not 0 < fdr_alpha < 1:
        raise ValueError(f"fdr_alpha must be in (0, 1), got {fdr_alpha!r}")
    values = table.values
    if comp._is_sparse(values):
        values = comp._sparse().csc_array(values)  # column blocks are sliced twice; convert once
    n_examples, n_features = values.shape
    if null == "auto":  # the smallest permutation p-value is 1 / (1 + n_permutations): see `null`
        too_coarse = n_permutations < 1 or n_features / (1 + n_permutations) > fdr_alpha
        null = "asymptotic" if too_coarse else "permutation"
    if criterion_scores is None:
        criterion_scores = table.examples["criterion_score"]
    scores = np.asarray(criterion_scores, dtype=np.float64).reshape(-1)
    if scores.shape[0] != n_examples:
        raise ValueError(f"criterion_scores has {scores.shape[0]} entries for {n_examples} examples")
    meta = getattr(table, "meta", None) or {}
    if criterion is None:
        criterion = meta.get("criterion")
    splits, split_source = _splits_of(table, test_fraction, seed)
    finite = ~np.isnan(scores)
    train = np.flatnonzero(finite & (splits == "train"))
    test = np.flatnonzero(finite & (splits == "test"))
    if train.size == 0 or test.size == 0:
        raise ValueError(
            f"need examples with scores in both splits, got {train.size} train and {test.size} test"
        )
    y_tr, y_te = scores[train] >= 0.5, scores[test] >= 0.5
    s_tr_rank = _stats.rank_columns(scores[train][:, None])[:, 0]
    s_te_rank = _stats.rank_columns(scores[test][:, None])[:, 0]
    y_te_rank = _stats.rank_columns(y_te[:, None].astype(np.float64))[:, 0]
    n_pos, n_neg = int(y_te.sum()), int((~y_te).sum())
    train_ok = bool(y_tr.any() and not y_tr.all())
    test_ok = min(n_pos, n_neg) >= _MIN_CLASS_TEST and train_ok
    warnings: list[str] = []
    if not test_ok:
        warnings.append(
            f"insufficient n: held-out split has {n_pos} positive / {n_neg} negative examples and the train "
            f"split {int(y_tr.sum())} / {int((~y_tr).sum())}; association is not tested"
        )

    st = comp.BlockStats.empty(n_features)
    rho_tr = np.full(n_features, np.nan)
    for a, X_tr in comp.iter_column_blocks(values, train):
        b = a + X_tr.shape[1]
        R_tr = _stats.rank_columns(X_tr)
        st.auroc_train[a:b] = _stats.auroc_from_ranks(R_tr, y_tr)
        rho_tr[a:b] = _stats.spearman_from_ranks(R_tr, s_tr_rank)
        st.effect_sign[a:b] = comp.effect_signs(st.auroc_train[a:b], rho_tr[a:b])
        if train_ok and n_bootstrap > 0:
            boot = _stats.bootstrap_aurocs(X_tr, y_tr, n_bootstrap=n_bootstrap, seed=seed + 1)
            st.stability[a:b], st.stability_sd[a:b] = comp.stability(boot, st.effect_sign[a:b])
    for a, X_te in comp.iter_column_blocks(values, test):
        b = a + X_te.shape[1]
        R_te = _stats.rank_columns(X_te)
        st.auroc_test[a:b] = _stats.auroc_from_ranks(R_te, y_te)
        st.spearman_test[a:b] = _stats.spearman_from_ranks(R_te, s_te_rank)
        if not test_ok:
            continue
        if null == "permutation":
            _, st.p_value[a:b] = _stats.permutation_test(
                R_te, y_te_rank, n_permutations=n_permutations, seed=seed + 2
            )
        else:
            _, st.p_value[a:b] = _stats.asymptotic_test(R_te, y_te_rank)
        st.specificity[a:b] = comp.specificity(X_te, y_te, st.effect_sign[a:b])
    q = _stats.benjamini_hochberg(st.p_value)
    if test_ok and null == "permutation" and n_features / (1 + n_permutations) > fdr_alpha:
        warnings.append(
            f"with {n_features} features and n_permutations={n_permutations} the smallest p-value is "
            f"{1 / (1 + n_permutations):.2g}, too coarse for FDR at {fdr_alpha} unless many features are "
            "real; raise n_permutations or use null='asymptotic'"
        )

    feature_ids = [str(f) for f in table.features["feature_id"]]
    causal_by_id: dict[str, Causal] = {}
    n_records, n_dropped, records_synthetic = 0, 0, False
    if interventions is not None:
        recs = list(interventions)
        n_records = len(recs)
        causal_by_id, w, n_dropped, records_synthetic = comp.aggregate_causal(
            recs,
            feature_ids,
            criterion=criterion,
            allow_mismatch=allow_intervention_criterion_mismatch,
            side_effect_weight=side_effect_weight,
            margin=causal_margin,
            level=ci_level,
        )
        warnings += w

    labels = table.features["label"] if "label" in table.features.columns else None
    rows = []
    for j, fid in enumerate(feature_ids):
        sign = int(st.effect_sign[j])
        auc_te = _clean(float(st.auroc_test[j]))
        effect = None if auc_te is None else abs(2.0 * auc_te - 1.0)
        agrees = None if auc_te is None or auc_te == 0.5 else bool(np.sign(auc_te - 0.5) == sign)
        qv = _clean(float(q[j]))
        assoc = Association(
            status="ok" if test_ok else "insufficient n",
            auroc_train=_clean(float(st.auroc_train[j])),
            auroc_test=auc_te,
            spearman_test=_clean(float(st.spearman_test[j])),
            effect_sign=sign,
            effect_size=effect,
            sign_agrees=agrees,
            n_train=int(train.size),
            n_test=int(test.size),
            n_pos_test=n_pos,
            n_neg_test=n_neg,
            p_value=_clean(float(st.p_value[j])),
            q_value=qv,
            significant=bool(qv is not None and qv < fdr_alpha and agrees),
        )
        causal = causal_by_id.get(fid, _NO_CAUSAL)
        stab = _clean(float(st.stability[j]))
        score = (effect or 0.0) * (stab or 0.0)
        tier = _tier(assoc, causal)
        label = None if labels is None else labels.iloc[j]
        label = None if label is None or (isinstance(label, float) and np.isnan(label)) else str(label)
        rows.append(
            FeatureRanking(
                feature_id=fid,
                label=label,
                index=j,
                rank=0,
                association=assoc,
                specificity=_clean(float(st.specificity[j])),
                stability=stab,
                stability_auroc_sd=_clean(float(st.stability_sd[j])),
                causal=causal,
                tier=TIERS[tier],
                tier_rank=tier,
                score=score,
                combined=2.0 * (len(TIERS) - 1 - tier) + score,
            )
        )
    rows.sort(key=lambda r: (r.tier_rank, -r.score, r.index))
    rows = [replace(r, rank=i + 1) for i, r in enumerate(rows)]
    settings = RankSettings(
        n_permutations=n_permutations if null == "permutation" else 0,
        null=null,
        n_bootstrap=n_bootstrap,
        fdr_alpha=fdr_alpha,
        seed=seed,
        side_effect_weight=side_effect_weight,
        causal_margin=causal_margin,
        ci_level=ci_level,
        allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch,
        binarize_threshold=0.5,
        split_source=split_source,
        test_fraction=test_fraction,
        n_examples=int(n_examples),
        n_excluded_nan=int((~finite).sum()),
        n_train=int(train.size),
        n_test=int(test.size),
        n_features=int(n_features),
        n_interventions=n_records,
        n_interventions_dropped_mismatch=n_dropped,
    )
    synthetic = bool(getattr(table, "synthetic", False) or meta.get("synthetic", False) or records_synthetic)
    return RankingResult(
        rows=tuple(rows),
        criterion=criterion,
        settings=settings,
        synthetic=synthetic,
        warnings=tuple(warnings),
    )
