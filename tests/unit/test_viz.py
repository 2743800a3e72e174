"""Chart builders: specs checked through ``to_dict()``; ``save_chart`` writes real PNG/SVG/HTML/JSON offline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import interpkit
from interpkit.viz import (
    activation_histogram,
    auroc_bars,
    match_heatmap,
    ranking_bars,
    roc_curves,
    save_chart,
    steering_curve,
)


@pytest.fixture(scope="module")
def toy():
    data = interpkit.make_toy_table(n_examples=120, n_features=8, seed=0)
    return data, interpkit.rank(data.table, interventions=data.interventions, n_permutations=50)


def _values(spec):
    return spec["data"]["values"] if "data" in spec else spec["datasets"][next(iter(spec["datasets"]))]


def test_ranking_bars_show_each_component_of_the_top_features(toy):
    data, result = toy
    spec = ranking_bars(result, k=3).to_dict()
    assert spec["mark"]["type"] == "bar"
    assert {"x", "y", "yOffset", "color"} <= set(spec["encoding"])
    rows = _values(spec)
    assert len(rows) == 3 * 4 and rows[0]["feature"].startswith(f"#1 {data.truth.carrier}")
    assert spec["encoding"]["y"]["sort"][0] == rows[0]["feature"]
    assert "SYNTHETIC DATA" in spec["title"]["subtitle"]


def test_activation_histogram_counts_every_example_once(toy):
    data, _ = toy
    spec = activation_histogram(data.table, data.truth.carrier, bins=12).to_dict()
    rows = _values(spec)
    assert sum(r["count"] for r in rows) == data.table.n_examples
    assert {r["class"] for r in rows} == {"positive", "negative"}


def test_roc_curves_from_scores_and_from_bench_results():
    rng = np.random.default_rng(0)
    y = rng.random(200) < 0.5
    spec = roc_curves({"good": (y + rng.normal(0, 0.5, 200), y), "chance": (rng.random(200), y)}).to_dict()
    curves = {r["curve"] for layer in spec["layer"] for r in _values(layer) if "curve" in r}
    assert any(c.startswith("good (AUROC 0.9") for c in curves)
    with pytest.raises(ValueError, match="positive and negative"):
        roc_curves({"x": ([1, 2], [1, 1])})
    bench = {"kind": "interpkit.bench", "methods": {"DiffMean": {"mean_auroc": 0.9, "per_concept": {
        "0": {"auroc": 0.9, "roc": {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]}}}}}}
    assert "facet" in roc_curves(bench).to_dict()
    assert auroc_bars(bench).to_dict()["layer"][0]["mark"]["type"] == "bar"


def test_steering_curve_from_rows_and_a_sweep_result():
    rows = [{"feature": "v", "strength": s, "criterion_score": 0.1 * s, "perplexity": 5 + s * s} for s in (-2, 0, 2)]
    spec = steering_curve(rows).to_dict()
    assert spec["resolve"]["scale"]["y"] == "independent" and len(spec["layer"]) == 2
    assert steering_curve(rows, side=None).to_dict()["mark"]["type"] == "line"
    from interpkit.causal import SweepResult

    sweep = SweepResult(strength=1.0, train=({"strength": 1.0, "effect": 0.2, "side_effect": 0.01,
                                              "specificity": 0.5},))
    assert steering_curve(sweep).to_dict()["layer"][0]["encoding"]["y"]["title"] == "effect"
    with pytest.raises(ValueError, match="strength"):
        steering_curve([{"x": 1}])


def test_match_heatmap_from_matches_and_from_the_widget():
    from interpkit.match import FeatureFingerprint, match_fingerprints
    from interpkit.widgets import FingerprintHeatmap

    rng = np.random.default_rng(1)
    sigs = rng.normal(size=(5, 24))
    left = [FeatureFingerprint(feature_id=f"a{i}", activation_signature=s) for i, s in enumerate(sigs)]
    right = [FeatureFingerprint(feature_id=f"b{i}", activation_signature=s + 0.1 * rng.normal(size=24))
             for i, s in enumerate(sigs)]
    result = match_fingerprints(left, right, null_samples=100)
    spec = match_heatmap(result).to_dict()
    assert spec["mark"]["type"] == "rect" and len(_values(spec)) == len(result.matches)
    dense = match_heatmap(FingerprintHeatmap.from_fingerprints(left, right), layer="activation").to_dict()
    assert len(_values(dense)) == 25
    with pytest.raises(ValueError, match="layer"):
        match_heatmap(FingerprintHeatmap.from_fingerprints(left, right), layer="causal")


def test_save_chart_writes_png_svg_html_and_json_offline(toy, tmp_path):
    pytest.importorskip("vl_convert")
    _, result = toy
    chart = ranking_bars(result, k=4)
    png = save_chart(chart, tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    svg = save_chart(chart, tmp_path / "r.svg").read_text()
    assert svg.lstrip().startswith("<svg") and "effect size" in svg
    page = save_chart(chart, tmp_path / "r.html").read_text()
    assert not re.search(r"<script[^>]+src=[\"']https?://", page)  # vega is inlined
    assert json.loads(save_chart(chart, tmp_path / "r.vl.json").read_text())["mark"]["type"] == "bar"
    with pytest.raises(ValueError, match="format"):
        save_chart(chart, tmp_path / "r.gif")
