"""interp-lab 0.1.0's files (tests/data/interp_lab) read as they are, with notes; malformed ones still fail."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from interpkit.cli import main
from interpkit.rank._components import aggregate_causal
from interpkit.records import InterventionRecord, RecordError, read_feature_dumps, read_intervention_records
from interpkit.runs import ConfigError, load_config, run_config
from interpkit.sources import read_prompt_dataset
from interpkit.sources.dumps import is_interp_lab_dumps

DATA = Path(__file__).resolve().parents[1] / "data" / "interp_lab"
CRIT = "the model is aware it is being evaluated"
FAST = ["--n-permutations", "50", "--n-bootstrap", "5", "--no-explain"]


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def test_layout_detection():
    assert is_interp_lab_dumps(read_feature_dumps(DATA / "features.jsonl"))
    ours = [{"feature_id": 1, "model": "m", "examples": [{"text": "a", "activation": 1.0}]}]
    from interpkit.records import FeatureDump

    assert not is_interp_lab_dumps([FeatureDump.from_dict(d) for d in ours])


def test_features_with_records_rank_with_notes(tmp_path, capsys):
    out = tmp_path / "o"
    rc = main(["inspect", "--features", str(DATA / "features.jsonl"), "--records",
               str(DATA / "activation_records.jsonl"), "--criterion", CRIT, "--out", str(out), *FAST])
    assert rc == 0
    rep = _report(out)
    assert [f["feature_id"] for f in rep["features"]] == ["L18:F104921", "L21:F55012"]  # L9 is in no dump
    notes = [w for w in rep["warnings"] if "interp-lab layout" in w]
    assert any("field 'examples'" in w and "activation_records.jsonl" in w for w in notes)
    assert any("field 'causal_effects'" in w for w in notes)
    assert rep["features"][0]["imported_causal_effects"] == {"criterion": 0.78, "specificity": 0.69,
                                                             "side_effect": 0.12}


def test_features_alone_rank_their_listed_texts(tmp_path):
    out = tmp_path / "o"
    # seed 3: the four listed texts fall into both splits (seeds 0-2 put all four in train)
    rc = main(["inspect", "--features", str(DATA / "features.jsonl"), "--compiler", "keyword", "--seed", "3",
               "--criterion", "test benchmark evaluate", "--out", str(out), *FAST])
    assert rc == 0
    rep = _report(out)
    assert {f["feature_id"] for f in rep["features"]} == {"L18:F104921", "L21:F55012"}
    assert any("activation 1.0 on its own listed texts" in w for w in rep["warnings"])
    assert any("keyword compiler" in w for w in rep["warnings"])


@pytest.mark.parametrize("row, field", [
    ({"feature_id": "L1:F1", "model": "m", "examples": 5}, "examples"),  # interp-lab-shaped, broken
    ({"feature_id": "L1:F1", "model": "m", "examples": ["a"], "causal_effects": {"criterion": "high"}},
     "causal_effects.criterion"),
    ({"feature_id": "L1:F1", "examples": ["a"]}, "model"),
    ({"feature_id": 3, "model": "m", "examples": [{"text": "a", "activation": 1}], "layer": [1]}, "layer"),  # ours
])
def test_malformed_dumps_fail_with_file_line_field(tmp_path, capsys, row, field):
    bad = tmp_path / "bad.jsonl"
    good = (DATA / "features.jsonl").read_text().splitlines()[0]
    bad.write_text(good + "\n" + json.dumps(row) + "\n")
    with pytest.raises(RecordError) as err:
        read_feature_dumps(bad)
    assert "bad.jsonl:2" in str(err.value) and field in str(err.value)
    rc = main(["inspect", "--features", str(bad), "--criterion", CRIT, "--out", str(tmp_path / "o"), *FAST])
    assert rc == 2 and "bad.jsonl:2" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_prompt_sets_and_interventions_read_as_they_are():
    rows = read_prompt_dataset(DATA / "hf_prompts_unit_prediction.jsonl")
    assert len(rows) == 12 and rows[0].prompt_id == "unit-1" and rows[0].criterion_score == 1.0
    assert len(read_prompt_dataset(DATA / "hf_prompts_measurements.jsonl")) == 12
    recs = read_intervention_records(DATA / "interventions.jsonl")
    assert {r.kind for r in recs} >= {"ablate", "amplify"} and recs[0].side_effect_score == 0.04


@pytest.fixture
def il_run(tmp_path, monkeypatch):
    """interp-lab's README layout: run from the folder holding examples/ (its paths are relative to it)."""
    (tmp_path / "examples").mkdir()
    for f in ("run_records.json", "activation_records.jsonl"):
        shutil.copy(DATA / f, tmp_path / "examples" / f)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "examples" / "run_records.json"


def test_run_records_config_translates_and_runs(il_run, tmp_path):
    cfg = load_config(il_run)
    assert [s.kind for s in cfg.steps] == ["inspect"]
    assert cfg.steps[0].args["backend"] == "records" and cfg.steps[0].args["top_k"] == 5
    manifest = run_config(il_run, out=tmp_path / "run", echo=lambda *a: None)
    assert manifest["status"] == "complete"
    assert any("interp-lab run config" in w for w in manifest["warnings"])
    assert any("field 'records'" in w and "working folder" in w for w in manifest["warnings"])
    rep = _report(tmp_path / "run" / "inspect")
    assert len(rep["features"]) == 3
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["config"]["content"]["model"] == \
        "toy-records/model"


def test_interp_lab_steps_form_with_argv_list(il_run, tmp_path):
    il_run.write_text(json.dumps({"out": "r", "steps": [
        {"name": "a", "command": "inspect",
         "args": ["--records", "examples/activation_records.jsonl", "--criterion", CRIT, "--top-k", "2"]}]}))
    cfg = load_config(il_run)
    assert cfg.steps[0].args["top_k"] == 2 and cfg.steps[0].args["backend"] == "toy"
    assert any("argv list" in n for n in cfg.notes)


@pytest.mark.parametrize("change, message", [
    ({"modle": "x"}, "field 'modle'"),
    ({"backend": "sae"}, "field 'backend'"),
    ({"require_interventions": True}, "field 'require_interventions'"),
    ({"top_k": "five"}, "args.top_k"),
    ({"steps": [{"command": "nope"}]}, "steps[0]: field 'command'"),
])
def test_malformed_interp_lab_configs_fail_naming_the_field(il_run, change, message):
    data = json.loads(il_run.read_text())
    data.update(change)
    il_run.write_text(json.dumps(data))
    with pytest.raises(ConfigError) as err:
        load_config(il_run)
    assert message in str(err.value) and "run_records.json" in str(err.value)


def _rec(fid, base, new, **extra):
    return InterventionRecord(model="m", feature_id=fid, intervention="steer", criterion="c", prompt_id=f"{fid}{base}",
                              baseline_score=base, intervention_score=new, extra=extra)


def test_causal_status_must_beat_every_control_kind():
    main_recs = [_rec("f", 0.1, 0.1 + d) for d in (0.30, 0.32, 0.31, 0.29)]
    rnd = [_rec("f::control0", 0.1, 0.1 + d, control=True, control_of="f", control_kind="random")
           for d in (0.0, 0.01, -0.01)]
    kw = dict(criterion="c", allow_mismatch=False, side_effect_weight=0.5, margin=0.02, level=0.95)
    out, warnings, _, _ = aggregate_causal(main_recs + rnd, ["f"], **kw)
    assert out["f"].status == "promotes" and not warnings
    old = [_rec("f::control0", 0.1, 0.1, control=True, control_of="f")]  # no control_kind: random
    assert aggregate_causal(main_recs + old, ["f"], **kw)[0]["f"].status == "promotes"
    placebo = [_rec("f::placebo0", 0.1, 0.1 + d, control=True, control_of="f", control_kind="placebo")
               for d in (0.35, 0.33, 0.34)]
    out, warnings, _, _ = aggregate_causal(main_recs + rnd + placebo, ["f"], **kw)
    assert out["f"].status == "inconclusive"
    assert any("placebo controls" in w for w in warnings)
