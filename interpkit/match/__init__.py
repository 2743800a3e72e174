"""Match features across models: fingerprints, per-component similarity, one-to-one assignment.

`FeatureFingerprint` describes a feature by components compared on their own (activation signature
over a shared probe set, explanation embedding, decoder/logit signature, causal effects, examples);
`blocked_topk` finds candidates without a dense ``n x m`` matrix; `match_fingerprints` and `compare`
assign one-to-one (mutual nearest neighbours, then scipy's ``linear_sum_assignment``) with a
confidence and a shuffled-pairing null per match; `similarity_matrices` gives every pair's scores
for a view of feature subsets.

Example:
    >>> import numpy as np
    >>> from interpkit.match import FeatureFingerprint, match_fingerprints
    >>> rng = np.random.default_rng(0)
    >>> sigs = rng.normal(size=(20, 64))
    >>> left = [FeatureFingerprint(feature_id=f"a{i}", activation_signature=s) for i, s in enumerate(sigs)]
    >>> right = [FeatureFingerprint(feature_id=f"b{i}", activation_signature=s + 0.3 * rng.normal(size=64))
    ...          for i, s in enumerate(sigs)]
    >>> result = match_fingerprints(left, right)
    >>> sum(m.left_id[1:] == m.right_id[1:] for m in result.matches)
    20
"""

from ._assign import Pair, assign_one_to_one
from ._compare import (
    DEFAULT_WEIGHTS,
    Match,
    MatchResult,
    SimilarityMatrices,
    compare,
    match_fingerprints,
    parse_weights,
    similarity_matrices,
)
from ._fingerprint import (
    COMPONENTS,
    FeatureFingerprint,
    FingerprintError,
    fingerprints_from_report,
    fingerprints_from_table,
)
from ._similarity import MatchError, blocked_topk
from ._validate import (
    REASONS,
    SideEffect,
    ValidationRule,
    decide,
    orthogonal_controls,
    target_tokens_from_contrast,
    validate_matches,
)
from ._validate_saved import features_from_table, read_matches, validate_saved_matches

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "FeatureFingerprint",
    "FingerprintError",
    "Match",
    "MatchError",
    "MatchResult",
    "Pair",
    "SimilarityMatrices",
    "assign_one_to_one",
    "blocked_topk",
    "compare",
    "fingerprints_from_report",
    "fingerprints_from_table",
    "match_fingerprints",
    "parse_weights",
    "similarity_matrices",
    "REASONS",
    "SideEffect",
    "ValidationRule",
    "decide",
    "orthogonal_controls",
    "target_tokens_from_contrast",
    "validate_matches",
    "features_from_table",
    "read_matches",
    "validate_saved_matches",
]
