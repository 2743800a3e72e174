"""Benchmark metrics against hand-computed cases and sklearn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import precision_recall_curve, roc_auc_score

from interpkit.bench._metrics import (
    MAX_ROC_POINTS,
    concept_detection,
    harmonic,
    imbalanced_f1,
    mean_ci,
    minmax,
    select_factor,
    summarise_detection,
    summarise_steering,
    winrate,
)

P, N, H = "positive", "negative", "hard negative"


def test_minmax_edges():
    assert minmax([1.0, 3.0, 2.0]).tolist() == [0.0, 1.0, 0.5]
    assert minmax([4.0, 4.0, 4.0]).tolist() == [0.0, 0.0, 0.0]
    assert minmax([]).tolist() == []
    assert minmax([np.nan, 1.0, 2.0]).tolist() == [0.0, 0.0, 1.0]


def test_auroc_matches_sklearn_with_ties_and_excludes_hard_negatives():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 12, size=60).astype(float)  # small integers: many ties
    cats = np.array([P] * 20 + [N] * 25 + [H] * 15)
    scores[:20] += 3
    scores[45:] += 40  # hard negatives score high: they must not touch the AUROC
    out = concept_detection(scores * 7 + 3, cats, concept=4)
    keep = cats != H
    assert out["auroc"] == pytest.approx(roc_auc_score(cats[keep] == P, scores[keep]), abs=1e-12)
    assert (out["n_positive"], out["n_negative"], out["n_hard_negative"]) == (20, 25, 15)
    assert out["max_act"] == pytest.approx(float((scores * 7 + 3).max()))
    assert out["hard_negative"]["hard_negative_acc"] < 0.2


def test_youden_threshold_and_hard_negative_accuracy_by_hand():
    # raw 0..10 -> normalised /10. pos: 1.0, 0.8, 0.4; neg: 0.0, 0.5, 0.2; hard: 0.9, 0.3
    scores = [10, 8, 4, 0, 5, 2, 9, 3]
    cats = [P, P, P, N, N, N, H, H]
    out = concept_detection(scores, cats)
    # thresholds 1.0 (tpr 1/3, fpr 0), 0.8 (2/3, 0), 0.5 (2/3, 1/3), 0.4 (1, 1/3): J max 2/3 at 0.8 first
    assert out["threshold"] == pytest.approx(0.8)
    hn = out["hard_negative"]
    assert hn["positive_acc"] == pytest.approx(2 / 3)
    assert hn["hard_negative_acc"] == pytest.approx(0.5)  # 0.9 >= 0.8 wrong, 0.3 < 0.8 right
    assert hn["macro_acc"] == pytest.approx((2 / 3 + 0.5) / 2)
    assert out["auroc"] == pytest.approx(roc_auc_score([1, 1, 1, 0, 0, 0], [10, 8, 4, 0, 5, 2]))
    assert out["roc"]["fpr"][0] == 0.0 and out["roc"]["tpr"][-1] == 1.0


def test_no_hard_negatives_or_degenerate_threshold_gives_none():
    assert concept_detection([2, 1, 0], [P, N, N])["hard_negative"] is None
    # positives below negatives: no threshold beats chance, tau = inf
    out = concept_detection([0, 0, 1, 1, 0.5], [P, P, N, N, H])
    assert out["auroc"] == 0.0
    assert out["threshold"] is None and out["hard_negative"] is None
    # all equal: AUROC 0.5, scores normalise to 0
    tie = concept_detection([3, 3, 3, 3], [P, P, N, H])
    assert tie["auroc"] == 0.5 and tie["threshold"] is None


def test_nan_scores():
    out = concept_detection([np.nan, 2.0, 1.0, 0.0], [P, P, N, N], concept=7)
    assert out["n_nan"] == 1 and out["auroc"] == pytest.approx(2.5 / 4)  # NaN counts as the minimum (tie with 0)
    with pytest.raises(ValueError, match="concept 7: all 3 scores are NaN"):
        concept_detection([np.nan] * 3, [P, N, N], concept=7)


def test_bad_input_names_the_concept():
    with pytest.raises(ValueError, match="concept 2: unknown category"):
        concept_detection([1, 0], [P, "neutral"], concept=2)
    with pytest.raises(ValueError, match="concept 2: needs at least one positive and one negative"):
        concept_detection([1, 0], [P, H], concept=2)
    with pytest.raises(ValueError, match="concept 2: 2 scores but 3 categories"):
        concept_detection([1, 0], [P, N, N], concept=2)


def test_roc_is_downsampled():
    rng = np.random.default_rng(1)
    out = concept_detection(rng.normal(size=1000), [P] * 500 + [N] * 500)
    assert 2 < len(out["roc"]["fpr"]) <= MAX_ROC_POINTS == 101
    assert out["roc"]["fpr"][0] == 0.0 and out["roc"]["fpr"][-1] == 1.0


def _best_f1_explicit(pos, neg):
    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    precision, recall, _ = precision_recall_curve(y, np.r_[pos, neg])
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    return f1.max()


def test_weighted_f1_equals_f1_on_duplicated_negatives():
    rng = np.random.default_rng(2)
    pos = np.round(rng.normal(1.0, 1.0, size=6), 2)
    neg = np.round(rng.normal(0.0, 1.0, size=20), 2)
    out = imbalanced_f1(pos, neg, ratio=10)  # weight 10 * 6 / 20 = 3
    assert out["neg_weight"] == pytest.approx(3.0)
    assert out["f1"] == pytest.approx(_best_f1_explicit(pos, np.repeat(neg, 3)), abs=1e-12)
    assert out["n_pos"] == 6 and out["n_neg_unique"] == 20
    c = out["counts"]
    assert c["tp"] + c["fn"] == 6 and c["fp"] + c["tn"] == 20
    assert c["tp"] == int(np.sum(pos >= out["threshold"])) and c["fp"] == int(np.sum(neg >= out["threshold"]))
    plain = imbalanced_f1(pos, neg, ratio=None)
    assert plain["f1"] == pytest.approx(_best_f1_explicit(pos, neg), abs=1e-12)
    assert plain["f1"] >= out["f1"]


def test_harmonic_zero_veto_vectorised():
    assert harmonic(2, 2, 2) == 2.0
    assert harmonic(1, 2, 2) == pytest.approx(3 / (1 + 0.5 + 0.5))
    assert harmonic(0, 2, 2) == 0.0
    got = harmonic(np.array([2, 1, 2]), np.array([2, 1, 0]), np.array([1, 1, 2]))
    np.testing.assert_allclose(got, [3 / 2.0, 1.0, 0.0])
    assert np.isnan(harmonic(np.nan, 1, 1))


def test_select_factor_split_and_ties():
    scores = np.array([
        [0.0, 1.0, 1.0, 0.5],
        [0.0, 1.0, 1.0, 0.5],
        [0.2, 0.3, 1.8, 0.0],
        [0.4, 0.5, 1.6, 0.0],
    ])
    out = select_factor(scores, [0.2, 0.4, 0.6, 0.8])
    assert out["index"] == 1 and out["factor"] == 0.4  # tie with 0.6 on the selection half: first wins
    assert out["selection_score"] == 1.0 and out["test_score"] == pytest.approx(0.4)
    assert out["test_by_factor"] == pytest.approx([0.3, 0.4, 1.7, 0.0])
    assert (out["n_selection"], out["n_test"]) == (2, 2)
    odd = select_factor(np.arange(15.0).reshape(5, 3), [1, 2, 3])
    assert (odd["n_selection"], odd["n_test"]) == (2, 3)
    one = select_factor([[1.0], [0.5], [0.7]], [1.0])  # factor-free baseline
    assert one["factor"] == 1.0 and one["test_score"] == pytest.approx(0.6)
    with pytest.raises(ValueError, match="at least 2 instructions"):
        select_factor([[1.0, 2.0]], [1, 2])
    with pytest.raises(ValueError, match="3 factors"):
        select_factor(np.zeros((4, 2)), [1, 2, 3])


def test_winrate_and_mean_ci():
    assert winrate([1, 2, 3, 4], [1, 1, 5, 4 + 1e-9]) == {"win_rate": 0.5, "wins": 1, "losses": 1, "ties": 2, "n": 4}
    assert winrate({"0": 1.0, "1": 0.0, "2": 2.0}, {"1": 1.0, "0": 0.0})["n"] == 2
    from scipy import stats

    vals = [0.9, 0.95, 0.8, 0.99]
    mean, (lo, hi) = mean_ci(vals)
    half = stats.t.ppf(0.975, 3) * np.std(vals, ddof=1) / 2
    assert mean == pytest.approx(np.mean(vals)) and lo == pytest.approx(mean - half) and hi == pytest.approx(mean + half)
    assert mean_ci([0.7]) == (0.7, None)
    assert mean_ci([]) == (None, None)
    assert mean_ci([None, 0.5]) == (0.5, None)


def test_summaries():
    per = {
        "10": {"auroc": 0.5, "hard_negative": None, "f1_imbalanced": 0.2},
        "2": {"auroc": 1.0, "hard_negative": {"macro_acc": 0.8}, "f1_imbalanced": {"f1": 0.4}},
    }
    s = summarise_detection(per)
    assert list(s) == ["mean_auroc", "ci95", "n_concepts", "n_failed", "failed", "mean_hard_negative_acc",
                       "mean_f1_imbalanced"]
    assert s["mean_auroc"] == 0.75 and s["mean_hard_negative_acc"] == 0.8 and s["mean_f1_imbalanced"] == pytest.approx(0.3)
    assert summarise_steering({"0": {"test_score": 1.0}, "1": {"test_score": 0.5}})["mean_score"] == 0.75
