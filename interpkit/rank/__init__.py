"""Rank a table's features for a criterion, with held-out statistics and separate causal evidence.

:func:`rank` measures four components per feature and never blends them with hand-set weights:

- **association**: the train split fixes each feature's sign (higher or lower on criterion-positive
  examples, AUROC with the criterion binarised at ``score >= 0.5``); the *held-out* split gives the
  reported AUROC, Spearman (raw scores), n, a two-sided p-value from permuting the held-out criterion
  (``p = (1 + #|null| >= |obs|) / (1 + n_permutations)``) and a Benjamini-Hochberg q across features.
  ``significant`` means ``q < fdr_alpha`` with the held-out effect in the train sign's direction.
- **specificity** (held-out, in [0, 1]): share of activation mass on the class the feature points to,
  beyond chance, times the fraction of the other class on which it stays silent.
- **causal**: mean side-effect-penalised ``signed_effect`` of the intervention records with a
  Student-t interval; ``"insufficient n"`` below 3 measurements, ``"no causal evidence"`` without any.
- **stability**: how reproducibly bootstrap resamples of the train split give the same AUROC sign.

The combined order is tiered, not weighted: (0) causal & associated, (1) causal only, (2) causal
suppressor, (3) associated, (4) associated but causally inert (a correlated decoy), (5) not
significant. Interventional evidence outranks correlation because it answers the question asked
(does the feature carry the criterion?) and a measured null outranks nothing. Within a tier features
are ordered by ``score = |2 * auroc_test - 1| * stability``; ties keep the table's feature order.
``combined = 2 * (5 - tier_rank) + score`` expresses the same order as one number.

Splits come from ``examples.split`` when present, else :func:`hash_splits` (a stable hash of the
normalised text, so duplicates share a split). Synthetic inputs give ``result.synthetic = True``.

Example:
    >>> from interpkit.sources import make_toy_table
    >>> data = make_toy_table(n_examples=200, n_features=12, seed=0)
    >>> result = rank(data.table, interventions=data.interventions, n_permutations=200)
    >>> result.top(1)[0].feature_id == data.truth.carrier, result.synthetic
    (True, True)
"""

from interpkit._lazy import callable_package
from interpkit.rank._components import aggregate_causal
from interpkit.rank._rank import rank
from interpkit.rank._result import (
    CAUSAL_STATUSES,
    TIERS,
    Association,
    Causal,
    ComponentRow,
    FeatureRanking,
    RankingResult,
    RankSettings,
)
from interpkit.rank._splits import hash_splits, normalize_text
from interpkit.rank._stats import auroc, auroc_interval, benjamini_hochberg

__all__ = [
    "CAUSAL_STATUSES",
    "TIERS",
    "Association",
    "Causal",
    "ComponentRow",
    "FeatureRanking",
    "RankSettings",
    "RankingResult",
    "aggregate_causal",
    "auroc",
    "auroc_interval",
    "benjamini_hochberg",
    "hash_splits",
    "normalize_text",
    "rank",
]

# `interpkit.rank(...)` calls `rank` whether `interpkit.rank` is reached as this module or not
callable_package(__name__, rank)
