"""The toy source: planted roles, synthetic marking everywhere, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from interpkit.records import InterventionRecord
from interpkit.sources import TOY_CRITERION, make_toy_table, shuffled_criterion


def test_roles_partition_the_features():
    data = make_toy_table(n_examples=120, n_features=20, seed=4, n_correlated=3)
    table, interventions, truth = data
    ids = list(table.features["feature_id"])
    roles = [truth.carrier, truth.decoy, truth.causal_only, *truth.correlated, *truth.noise]
    assert sorted(roles) == sorted(ids) and len(set(roles)) == 20
    assert len(truth.correlated) == 3 and truth.under_measured in truth.noise
    assert table.values.shape == (120, 20) and table.values.dtype == np.float32
    assert (table.values >= 0).all()


def test_everything_is_marked_synthetic():
    data = make_toy_table(n_examples=80, n_features=8, seed=0)
    assert data.table.synthetic is True and data.table.meta["synthetic"] is True
    assert data.table.meta["criterion"] == TOY_CRITERION
    assert all(isinstance(r, InterventionRecord) for r in data.interventions)
    assert all(r.extra["synthetic"] is True and r.criterion == TOY_CRITERION for r in data.interventions)


def test_interventions_are_repeated_measurements():
    data = make_toy_table(n_examples=80, n_features=8, seed=0, n_measurements=6)
    truth = data.truth
    by_feature: dict[str, list] = {}
    for r in data.interventions:
        by_feature.setdefault(str(r.feature_id), []).append(r)
    for fid in (truth.carrier, truth.decoy, truth.causal_only):
        recs = by_feature[fid]
        assert len(recs) == 6 and len({r.prompt_id for r in recs}) == 6
        assert all(abs(r.side_effect_score) < 0.05 for r in recs)
    assert len(by_feature[truth.under_measured]) == 2
    assert np.mean([r.signed_effect for r in by_feature[truth.carrier]]) > 0.3
    assert abs(np.mean([r.signed_effect for r in by_feature[truth.decoy]])) < 0.03
    assert set(by_feature) == {truth.carrier, truth.decoy, truth.causal_only, truth.under_measured}


def test_deterministic_and_sparse_option():
    a = make_toy_table(n_examples=100, n_features=10, seed=9)
    b = make_toy_table(n_examples=100, n_features=10, seed=9, sparse=True)
    assert sp.issparse(b.table.values)
    np.testing.assert_array_equal(a.table.values, b.table.values.toarray())
    assert a.truth == b.truth and [r.to_dict() for r in a.interventions] == [
        r.to_dict() for r in b.interventions
    ]
    assert make_toy_table(n_examples=100, n_features=10, seed=10).truth != a.truth or not np.array_equal(
        make_toy_table(n_examples=100, n_features=10, seed=10).table.values, a.table.values
    )


def test_shuffled_criterion_is_a_permutation():
    scores = np.linspace(0, 1, 50)
    shuffled = shuffled_criterion(scores, seed=1)
    assert sorted(shuffled) == sorted(scores) and not np.array_equal(shuffled, scores)
    np.testing.assert_array_equal(shuffled, shuffled_criterion(scores, seed=1))


def test_rejects_too_few_features():
    with pytest.raises(ValueError, match="n_features"):
        make_toy_table(n_features=4)
    with pytest.raises(ValueError, match="n_measurements"):
        make_toy_table(n_measurements=2)
