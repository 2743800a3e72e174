"""``--layer auto``: the benchmark's layer chosen on the training texts alone (`interpkit.bench._layers`)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from interpkit.bench import (
    _context,  # noqa: F401  (bound before a test patches token_activations)
    bench,
    load_task,
)
from interpkit.bench._acts import TokenActs
from interpkit.bench._layers import candidate_layers, choose_layer, train_cv_auroc

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASK = Path(__file__).resolve().parents[1] / "data" / "axbench_quick_l10"


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def _acts(n_texts: int, labels: np.ndarray, signal: float, seed: int, d: int = 8, length: int = 5) -> TokenActs:
    """Random token activations; a positive text's *first* token carries ``signal`` on dim 0 (max-pooling finds it)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_texts * length, d)).astype(np.float16)
    for i in np.flatnonzero(labels):
        values[i * length, 0] += signal
    offsets = np.arange(0, n_texts * length + 1, length, dtype=np.int64)
    return TokenActs(values=values, offsets=offsets, token_ids=np.zeros(n_texts * length, np.int32), site="x",
                     n_excluded=0)


def test_candidate_layers_span_20_to_80_percent_of_the_depth():
    assert candidate_layers(30) == [6, 9, 12, 15, 18, 21, 24]
    assert candidate_layers(26) == [5, 8, 10, 13, 16, 18, 21]  # includes AxBench's Gemma-2-2B layer 10
    assert candidate_layers(2) == [0, 1] and candidate_layers(1) == [0]
    with pytest.raises(ValueError, match="at least one layer"):
        candidate_layers(0)


def test_train_cv_auroc_separates_a_planted_signal_from_noise():
    labels = np.array([True] * 12 + [False] * 12)
    rows = np.arange(24)
    strong = train_cv_auroc(_acts(24, labels, 8.0, 0), rows, labels, rng=np.random.default_rng(0))
    none = train_cv_auroc(_acts(24, labels, 0.0, 0), rows, labels, rng=np.random.default_rng(0))
    assert strong > 0.95
    assert none < 0.8
    # one class only: no fold can be scored
    assert np.isnan(train_cv_auroc(_acts(24, labels, 8.0, 0), rows[:12], labels[:12], rng=np.random.default_rng(0)))


def test_train_cv_auroc_uses_the_same_folds_for_the_same_generator():
    labels = np.array([True] * 9 + [False] * 9)
    acts = _acts(18, labels, 1.5, 3)
    a = train_cv_auroc(acts, np.arange(18), labels, rng=np.random.default_rng([42, 0, 11]))
    b = train_cv_auroc(acts, np.arange(18), labels, rng=np.random.default_rng([42, 0, 11]))
    assert a == b


def test_choose_layer_picks_the_layer_whose_training_texts_separate(tiny, monkeypatch):
    task = load_task(TASK)
    n = len(task.train)
    labels = np.zeros(n, dtype=bool)
    for c in task.concepts:
        rows = task.train_rows(c.id)
        labels[rows.index.to_numpy()[rows["label"].to_numpy() == 1]] = True
    seen = {}

    def fake(model, texts, sites, **kw):
        seen["n_texts"], seen["sites"] = len(texts), list(sites)
        # layer 0: noise; layer 1: the positives' first token carries the concept
        return {s: _acts(len(texts), labels, 0.0 if s.startswith("layer0") else 6.0, 1) for s in sites}

    monkeypatch.setattr("interpkit.bench._acts.token_activations", fake)
    choice = choose_layer(task, tiny, cache_dir=None, progress=False)
    assert choice.layer == 1
    assert seen == {"n_texts": n, "sites": ["layer0.resid_post", "layer1.resid_post"]}  # training texts only
    assert choice.scores[1] > 0.95 > choice.scores[0]
    assert set(choice.per_concept[1]) == {c.id for c in task.concepts}
    d = choice.to_dict()
    assert d["layer"] == 1 and set(d["train_cv_auroc"]) == {"0", "1"} and "no eval text" in d["rule"]


def test_choose_layer_breaks_a_tie_towards_the_shallower_layer(tiny, monkeypatch):
    task = load_task(TASK)
    monkeypatch.setattr("interpkit.bench._acts.token_activations",
                        lambda model, texts, sites, **kw: {s: _acts(len(texts), np.zeros(len(texts), bool), 0.0, 5)
                                                           for s in sites})
    # the same activations at both layers: equal scores, the shallower wins
    assert choose_layer(task, tiny, cache_dir=None, progress=False).layer == 0


def test_choose_layer_refuses_bad_candidates_and_folds(tiny):
    task = load_task(TASK)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        choose_layer(task, tiny, candidates=[0, 5], cache_dir=None, progress=False)
    with pytest.raises(ValueError, match="folds"):
        choose_layer(task, tiny, folds=1, cache_dir=None, progress=False)


def test_bench_layer_auto_records_the_choice_and_runs_there(tiny, tmp_path):
    res = bench("detect", TASK, model=tiny, layer="auto", methods=["diffmean"], max_length=60,
                cache_dir=tmp_path / "cache", progress=False)
    sel = res["layer_selection"]
    assert res["layer"] == sel["layer"] and res["site"] == f"layer{sel['layer']}.resid_post"
    assert set(sel["train_cv_auroc"]) == {"0", "1"}
    assert res["layer_choice"].startswith("auto:")
    # the same rule, the same seed: the same choice
    again = choose_layer(load_task(TASK), tiny, max_length=60, cache_dir=tmp_path / "cache", progress=False)
    assert again.layer == sel["layer"]
    with pytest.raises(ValueError, match="integer or 'auto'"):
        bench("detect", TASK, model=tiny, layer="twelve", methods=["diffmean"], cache_dir=None, progress=False)


def test_cli_layer_argument_takes_an_index_or_auto():
    from interpkit.cli._bench import _layer_arg

    assert _layer_arg("12") == 12 and _layer_arg("auto") == "auto"
    with pytest.raises(argparse.ArgumentTypeError, match="'auto'"):
        _layer_arg("middle")
