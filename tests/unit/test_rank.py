"""Ranking against planted ground truth, held-out statistics, nulls, and the result's round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

from interpkit.rank import TIERS, RankingResult, auroc, benjamini_hochberg, rank
from interpkit.rank._stats import permutation_test, rank_columns
from interpkit.records import InterventionRecord
from interpkit.sources import make_toy_table, shuffled_criterion
from interpkit.table import FeatureTable


def _table(values, scores, *, split=None, texts=None, synthetic=False, meta=None):
    n, m = values.shape
    examples = pd.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(n)],
            "text": texts if texts is not None else [f"text {i}" for i in range(n)],
            "criterion_score": np.asarray(scores, dtype=np.float64),
            "split": pd.Series(split if split is not None else [None] * n, dtype=object),
        }
    )
    features = pd.DataFrame(
        {
            "feature_id": [f"x{j}" for j in range(m)],
            "model": "test",
            "site": None,
            "layer": pd.array([None] * m, dtype="Int64"),
            "label": None,
            "source": "direction",
        }
    )
    return FeatureTable(values.astype(np.float32), examples, features, meta=meta, synthetic=synthetic)


def _rec(fid, effect, *, criterion="c", side=None, kind="ablate"):
    base = 0.8
    return InterventionRecord(
        model="m",
        feature_id=fid,
        criterion=criterion,
        intervention=kind,
        baseline_score=base,
        intervention_score=base - effect if kind == "ablate" else base + effect,
        side_effect_score=side,
    )


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_planted_order_is_exact(seed):
    data = make_toy_table(n_examples=400, n_features=32, seed=seed)
    result = rank(data.table, interventions=data.interventions, n_permutations=500, n_bootstrap=30)
    truth = data.truth
    planted = truth.expected_order
    assert result.features[: len(planted)] == planted
    assert set(result.features[len(planted) :]) == set(truth.noise)
    tiers = {r.feature_id: r.tier for r in result}
    assert tiers[truth.carrier] == "causal & associated"
    assert tiers[truth.causal_only] == "causal only"
    assert all(tiers[f] == "associated" for f in truth.correlated)
    assert tiers[truth.decoy] == "associated, causally inert"
    assert all(tiers[f] == "not significant" for f in truth.noise)
    assert result.row(truth.decoy).causal.status == "inert"
    assert result.row(truth.under_measured).causal.status == "insufficient n"
    assert list(result.scores) == sorted(result.scores, reverse=True)
    assert result.synthetic


def test_sparse_and_dense_tables_give_identical_results():
    dense = make_toy_table(n_examples=200, n_features=16, seed=3)
    sparse = make_toy_table(n_examples=200, n_features=16, seed=3, sparse=True)
    assert sp.issparse(sparse.table.values)
    kw = {"n_permutations": 200, "n_bootstrap": 10}
    a = rank(dense.table, interventions=dense.interventions, **kw)
    b = rank(sparse.table, interventions=sparse.interventions, **kw)
    assert a.to_dict() == b.to_dict()


def test_column_blocks_do_not_change_results(monkeypatch):
    data = make_toy_table(n_examples=150, n_features=12, seed=5, sparse=True)
    whole = rank(data.table, n_permutations=100, n_bootstrap=5)
    import importlib

    monkeypatch.setattr(importlib.import_module("interpkit.rank._components"), "_BLOCK_FLOATS", 150 * 5)
    blocked = rank(data.table, n_permutations=100, n_bootstrap=5)
    assert whole.to_dict() == blocked.to_dict()


def test_deterministic_and_seed_dependent():
    data = make_toy_table(n_examples=200, n_features=12, seed=0)
    a = rank(data.table, n_permutations=200, n_bootstrap=10, seed=7)
    b = rank(data.table, n_permutations=200, n_bootstrap=10, seed=7)
    c = rank(data.table, n_permutations=200, n_bootstrap=10, seed=8)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != c.to_dict()


def test_round_trip_is_strict_json():
    data = make_toy_table(n_examples=200, n_features=12, seed=1)
    result = rank(data.table, interventions=data.interventions, n_permutations=200, n_bootstrap=10)
    text = json.dumps(result.to_dict(), allow_nan=False)
    back = RankingResult.from_dict(json.loads(text))
    assert back == result
    d = json.loads(text)
    d["rows"][0]["surprise"] = 1
    with pytest.raises(ValueError, match="unknown field"):
        RankingResult.from_dict(d)
    assert RankingResult.from_dict(d, lenient=True).rows[0] == result.rows[0]
    d["kind"] = "report"
    with pytest.raises(ValueError, match="kind"):
        RankingResult.from_dict(d)


def test_result_views():
    data = make_toy_table(n_examples=200, n_features=12, seed=2)
    result = rank(data.table, interventions=data.interventions, n_permutations=200, n_bootstrap=10)
    assert len(result) == 12 and [r.feature_id for r in result] == list(result.features)
    assert [r.rank for r in result] == list(range(1, 13))
    assert result.top(2) == list(result.rows[:2]) and result.bottom(1) == [result.rows[-1]]
    comp = result.component(data.truth.carrier)
    assert comp["tier"] == TIERS[0] and comp["causal"]["status"] == "promotes"
    assert set(comp["association"]) >= {"auroc_test", "p_value", "q_value", "n_test", "significant"}
    df = result.to_frame()
    assert len(df) == 12 and df.attrs["synthetic"] and df["synthetic"].all()
    assert list(df["feature_id"]) == list(result.features)
    with pytest.raises(KeyError):
        result.component("nope")


def test_feature_perfect_on_train_but_random_on_held_out_is_not_significant():
    rng = np.random.default_rng(0)
    n = 200
    y = rng.random(n) < 0.5
    split = np.array(["train"] * 100 + ["test"] * 100, dtype=object)
    overfit = np.where(split == "train", y + 0.01 * rng.random(n), rng.random(n))
    real = y * 1.0 + rng.normal(0, 0.6, n)
    X = np.column_stack([overfit, real, rng.normal(size=(n, 3))])
    result = rank(_table(X, y * 1.0, split=split), n_permutations=500, n_bootstrap=10)
    assert result.settings.split_source == "table" and result.settings.n_test == 100
    over, good = result.row("x0"), result.row("x1")
    assert over.association.auroc_train == 1.0
    assert not over.association.significant and over.association.q_value > 0.05
    assert good.association.significant
    assert result.features[0] == "x1"


def test_shuffled_criterion_and_random_tables_yield_nothing_significant():
    for seed in range(3):
        data = make_toy_table(n_examples=300, n_features=32, seed=seed)
        scores = shuffled_criterion(data.table.examples["criterion_score"], seed=seed + 10)
        result = rank(data.table, scores, n_permutations=500, n_bootstrap=10)
        assert not any(r.association.significant for r in result)
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(300, 64))
        result = rank(_table(X, rng.random(300) < 0.5), n_permutations=500, n_bootstrap=10)
        assert not any(r.association.significant for r in result)
        assert all(r.tier == "not significant" for r in result)


def test_benjamini_hochberg_matches_hand_computation():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.5, np.nan])
    q = benjamini_hochberg(p)
    np.testing.assert_allclose(q[:5], [0.025, 0.05, 0.05, 0.025, 0.5])
    assert np.isnan(q[5])
    p = np.random.default_rng(0).random(50)
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p))


def test_auroc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.random(150) < 0.4
    X = rng.integers(0, 4, size=(150, 20)).astype(float)  # many ties
    X[:, 0] += 2 * y
    expected = [roc_auc_score(y, X[:, j]) for j in range(20)]
    np.testing.assert_allclose(auroc(X, y), expected, atol=1e-12)


def test_permutation_pvalues_are_sensible():
    rng = np.random.default_rng(2)
    n, n_perm = 120, 400
    y = (rng.random(n) < 0.5).astype(float)
    X = rng.normal(size=(n, 300))
    X[:, 0] += 3 * y
    rho, p = permutation_test(rank_columns(X), rank_columns(y[:, None])[:, 0], n_permutations=n_perm, seed=0)
    assert p[0] == pytest.approx(1 / (1 + n_perm))
    null = p[1:]
    assert null.min() >= 1 / (1 + n_perm) and null.max() <= 1
    assert 0.4 < null.mean() < 0.6 and (null < 0.05).mean() < 0.1
    t_p = stats.spearmanr(X[:, 1:], y[:, None]).pvalue[-1, :-1]
    assert np.corrcoef(null, t_p)[0, 1] > 0.95
    np.testing.assert_allclose(rho[1:4], [stats.spearmanr(X[:, j], y).statistic for j in (1, 2, 3)])


def test_causal_statuses_and_penalty():
    rng = np.random.default_rng(3)
    n = 160
    y = rng.random(n) < 0.5
    X = np.column_stack([y + rng.normal(0, 0.5, n), rng.normal(size=(n, 4))])
    recs = [_rec("x0", e, side=0.02) for e in (0.30, 0.35, 0.40, 0.33)]
    recs += [_rec("x1", 0.5), _rec("x1", 0.4)]
    recs += [_rec("x2", e, criterion="something else") for e in (0.3, 0.3, 0.3)]
    recs += [_rec("x3", e, kind="steer") for e in (0.01, -0.01, 0.0, 0.005)]
    recs += [_rec("ghost", 0.3)]
    table = _table(X, y * 1.0, meta={"criterion": "C."})
    result = rank(table, interventions=recs, n_permutations=200, n_bootstrap=5)
    c0 = result.row("x0").causal
    effects = np.array([0.30, 0.35, 0.40, 0.33])
    lo, hi = stats.t.interval(0.95, df=3, loc=effects.mean(), scale=stats.sem(effects))
    assert c0.status == "promotes" and c0.n == 4
    # the interval (and so the status) is of the raw effect; the value carries the side-effect penalty
    assert (c0.ci_low, c0.ci_high, c0.effect, c0.side_effect) == pytest.approx((lo, hi, effects.mean(), 0.02))
    assert c0.value == pytest.approx(effects.mean() - 0.02)
    c1 = result.row("x1").causal
    assert (c1.status, c1.value, c1.ci_low, c1.ci_high, c1.n) == ("insufficient n", None, None, None, 2)
    c2 = result.row("x2").causal
    assert (c2.status, c2.value, c2.n_dropped_mismatch) == ("no causal evidence", None, 3)
    assert result.row("x3").causal.status == "inert"
    assert result.row("x4").causal.status == "no causal evidence"
    assert result.settings.n_interventions_dropped_mismatch == 3
    assert any("ghost" in w for w in result.warnings)
    assert any("criterion differs" in w for w in result.warnings)
    kept = rank(
        table,
        interventions=recs,
        n_permutations=200,
        n_bootstrap=5,
        allow_intervention_criterion_mismatch=True,
    )
    assert kept.row("x2").causal.n == 3 and kept.row("x2").causal.n_dropped_mismatch == 0
    assert result.row("x0").tier == "causal & associated"


def test_nan_scores_excluded_and_insufficient_n_reported():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(60, 3))
    scores = (rng.random(60) < 0.5).astype(float)
    scores[:7] = np.nan
    result = rank(_table(X, scores), n_permutations=100, n_bootstrap=5)
    s = result.settings
    assert s.n_excluded_nan == 7 and s.n_train + s.n_test == 53
    one_class = np.where(np.arange(60) % 2 == 0, 1.0, 0.0)
    split = ["train"] * 50 + ["test"] * 10
    one_class[50:] = 1.0
    result = rank(_table(X, one_class, split=split), n_permutations=100, n_bootstrap=5)
    assert all(r.association.status == "insufficient n" and r.association.p_value is None for r in result)
    assert any("insufficient n" in w for w in result.warnings)


def test_specificity_extremes():
    rng = np.random.default_rng(5)
    y = rng.random(200) < 0.5
    detector = np.where(y, rng.random(200) + 0.5, 0.0)
    always_on = np.ones(200)
    X = np.column_stack([detector, always_on])
    result = rank(_table(X, y * 1.0), n_permutations=100, n_bootstrap=5)
    assert result.row("x0").specificity == pytest.approx(1.0)
    assert result.row("x1").specificity == pytest.approx(0.0)


def test_synthetic_flag_follows_inputs():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(80, 3))
    result = rank(_table(X, rng.random(80) < 0.5), n_permutations=50, n_bootstrap=5)
    assert not result.synthetic and not result.to_dict()["synthetic"]
    result = rank(_table(X, rng.random(80) < 0.5, synthetic=True), n_permutations=50, n_bootstrap=5)
    assert result.synthetic and result.to_frame().attrs["synthetic"]


def test_bootstrap_weights_equal_explicit_resampling():
    from interpkit.rank._stats import bootstrap_aurocs

    rng = np.random.default_rng(7)
    X = rng.integers(0, 5, size=(120, 15)).astype(float)
    y = rng.random(120) < 0.4
    boot = bootstrap_aurocs(X, y, n_bootstrap=6, seed=3)
    replay = np.random.default_rng(3)
    for b in range(6):
        idx = replay.integers(0, 120, size=120)
        np.testing.assert_allclose(boot[b], auroc(X[idx], y[idx]), atol=1e-12)


def test_side_effects_alone_do_not_make_a_suppressor():
    rng = np.random.default_rng(4)
    n = 120
    y = rng.random(n) < 0.5
    X = rng.normal(size=(n, 2))
    # a perturbation that leaves the criterion alone but disturbs other text
    recs = [_rec("x0", e, side=0.3) for e in (0.004, -0.003, 0.001, 0.0, -0.002)]
    result = rank(_table(X, y * 1.0, meta={"criterion": "C."}), interventions=recs,
                  n_permutations=100, n_bootstrap=5)
    c = result.row("x0").causal
    assert c.status == "inert"
    assert c.value == pytest.approx(c.effect - 0.3) and c.value < 0


def test_auto_null_is_permutation_unless_too_few_permutations_for_fdr():
    data = make_toy_table(n_examples=200, n_features=12, seed=0)  # 12 features
    kw = {"n_bootstrap": 5, "seed": 0}
    ok = rank(data.table, n_permutations=300, null="auto", **kw)  # 12 / 301 <= 0.05
    assert ok.settings.null == "permutation"
    assert ok.to_dict() == rank(data.table, n_permutations=300, null="permutation", **kw).to_dict()
    coarse = rank(data.table, n_permutations=100, null="auto", **kw)  # 12 / 101 > 0.05
    assert coarse.settings.null == "asymptotic" and coarse.settings.n_permutations == 0
    assert coarse.to_dict() == rank(data.table, n_permutations=100, null="asymptotic", **kw).to_dict()
    # the rule follows the FDR level
    assert rank(data.table, n_permutations=100, null="auto", fdr_alpha=0.2, **kw).settings.null == "permutation"
    with pytest.raises(ValueError, match="null must be one of"):
        rank(data.table, null="exact")


@pytest.mark.parametrize("first", ["import interpkit.rank._components", "from interpkit import rank",
                                   "interpkit.rank", "from interpkit.rank import RankingResult"])
def test_interpkit_rank_is_callable_whatever_is_imported_first(first):
    """``interpkit.rank`` names the subpackage and its function: the module is callable (fresh interpreters)."""
    import subprocess
    import sys

    code = (
        f"import interpkit\n{first}\n"
        "import inspect\nimport interpkit.rank as mod\nfrom interpkit.rank import rank as fn\n"
        "from interpkit.sources import make_toy_table\n"
        "assert interpkit.rank is mod and callable(mod) and fn.__name__ == 'rank'\n"
        "assert inspect.signature(mod) == inspect.signature(fn)\n"
        "t = make_toy_table(n_examples=80, n_features=6, seed=0).table\n"
        "assert mod(t, n_permutations=20, n_bootstrap=2).to_dict() == fn(t, n_permutations=20, n_bootstrap=2).to_dict()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
