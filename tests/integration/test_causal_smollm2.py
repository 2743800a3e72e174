"""Causal exports on SmolLM2-135M with the packaged measurement-unit prompts (8 positive + 8 negative).

The prompt set's negatives end in a number that is not a quantity ("Open your book to page 12"),
its positives in a number a unit follows ("The rope was exactly 12"). An earlier version whose
negatives ended in words gave a contrast direction that encoded "a number was just written" and
lowered the unit probability when steered; with number-ending negatives on both sides the
direction raises it on held-out positives more than same-norm random directions do, which is
what these tests check, beside the pipeline (choice on train, report on test, controls, ranking)
and a positive control (steering along the target tokens' unembedding direction).
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

pytestmark = pytest.mark.slow

LAYER = 15
SITE = f"layer{LAYER}.resid_post"


@pytest.fixture(scope="module")
def smollm2(smollm2_nnsight):
    """The session's SmolLM2 behind nnsight (tests/integration/conftest.py; skips if not installed)."""
    return smollm2_nnsight


@pytest.fixture(scope="module")
def units():
    from interpkit.sources import read_prompt_dataset

    data = resources.files("interpkit.data")
    crit = json.loads(data.joinpath("measurement_units.json").read_text(encoding="utf-8"))
    rows = read_prompt_dataset(str(data.joinpath("measurement_units.jsonl")))
    pos = [r for r in rows if r.criterion_score == 1.0][:8]
    neg = [r for r in rows if r.criterion_score == 0.0][:8]
    rows = [replace(r, split="train" if i % 2 == 0 else "test") for group in (pos, neg) for i, r in enumerate(group)]
    return crit, rows


@pytest.fixture(scope="module")
def contrast(smollm2, units):
    from interpkit.causal import export_contrast

    crit, rows = units
    return export_contrast(smollm2, rows, crit["criterion"], layer=LAYER, strengths=(3, 10, 30, 100),
                           target_tokens=crit["target_tokens"], n_controls=2)


def _mean_effect(records, feature_id):
    return float(np.mean([r.signed_effect for r in records if r.feature_id == feature_id]))


def test_contrast_export_chooses_on_train_reports_on_test(contrast, units, tmp_path):
    from interpkit.cli import main
    from interpkit.records import write_jsonl
    from interpkit.report import load_report

    crit, rows = units
    test_pos = {r.prompt_id for r in rows if r.split == "test" and r.criterion_score == 1.0}
    assert contrast.sweep.strength in (3.0, 10.0, 30.0, 100.0)
    assert [row["strength"] for row in contrast.sweep.train] == [3.0, 10.0, 30.0, 100.0]
    assert {r.prompt_id for r in contrast.interventions} == test_pos
    ids = {f"contrast:layer{LAYER}", f"contrast:layer{LAYER}::control0", f"contrast:layer{LAYER}::control1"}
    assert {r.feature_id for r in contrast.interventions} == ids
    assert all(r.extra["strength"] == contrast.sweep.strength for r in contrast.interventions)
    # side effects grow with the strength (more of the negatives' next-token distribution moves)
    sides = [row["side_effect"] for row in contrast.sweep.train]
    assert sides == sorted(sides)

    recs, ints = tmp_path / "contrast.jsonl", tmp_path / "contrast_int.jsonl"
    write_jsonl(recs, contrast.records)
    write_jsonl(ints, contrast.interventions)
    assert main(["inspect", "--backend", "records", "--records", str(recs), "--interventions", str(ints),
                 "--criterion", crit["criterion"], "--out", str(tmp_path / "rep"), "--n-permutations", "200",
                 "--n-bootstrap", "10"]) == 0
    report = load_report(tmp_path / "rep" / "report.json")
    assert {f.feature_id for f in report.features} == ids


def test_unembedding_direction_beats_random_control(smollm2, units):
    """Positive control for the metric and runner on a real model."""
    from interpkit.causal import CausalFeature, metric_for_criterion, run_interventions

    crit, rows = units
    metric = metric_for_criterion(crit["criterion"], target_tokens=crit["target_tokens"])
    w_u = smollm2.W_U.detach().float().numpy()
    v = w_u[:, list(metric.token_ids(smollm2))].mean(axis=1)
    feat = CausalFeature(feature_id="unembed:units", site=SITE, direction=v / np.linalg.norm(v))
    pos = [r for r in rows if r.split == "test" and r.criterion_score == 1.0]
    neg = [r for r in rows if r.split == "test" and r.criterion_score == 0.0]
    recs = run_interventions(smollm2, [feat], pos, neg, metric, strength=30.0, n_controls=2)
    main = _mean_effect(recs, "unembed:units")
    assert main > 0.02
    assert main > max(_mean_effect(recs, f"unembed:units::control{k}") for k in range(2))


def test_contrast_steer_raises_units_more_than_control(contrast):
    fid = f"contrast:layer{LAYER}"
    main = _mean_effect(contrast.interventions, fid)
    controls = [_mean_effect(contrast.interventions, f"{fid}::control{k}") for k in range(2)]
    assert main > 0 and main > max(controls)
