"""End-to-end tests of the export-hf-* commands on a tiny model, ranked by ``inspect --backend records``."""

from __future__ import annotations

import json

import pytest

import interpkit.models
from interpkit._testing import tiny_model
from interpkit.cli import main
from interpkit.records import read_activation_records, read_intervention_records
from interpkit.report import load_report
from interpkit.sources.directions import DirectionSet

CRITERION = "the next character is a vowel"
POS = ["hello there", "good night", "see you soon", "a cat sat", "the sea", "one more"]
NEG = ["abc def", "zzz", "why not", "it is", "bring it", "quick fox"]


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("nnsight")


@pytest.fixture
def cli(tiny, monkeypatch):
    """The CLI with ``--model`` resolved to the tiny model (no hub, no zoo)."""
    seen = []

    def fake_load(name, backend=None, **kw):
        seen.append((name, backend))
        return tiny

    monkeypatch.setattr(interpkit.models, "load_model", fake_load)
    return seen


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "prompts.jsonl"
    with open(path, "w") as fh:
        for i, text in enumerate(POS):
            split = "train" if i % 2 == 0 else "test"
            fh.write(json.dumps({"prompt_id": f"pos{i}", "text": text, "criterion_score": 1.0, "split": split,
                                 "target_tokens": ["a", "e"]}) + "\n")
        for i, text in enumerate(NEG):
            split = "train" if i % 2 == 0 else "test"
            fh.write(json.dumps({"prompt_id": f"neg{i}", "text": text, "criterion_score": 0.0,
                                 "split": split}) + "\n")
    return path


def _inspect(tmp_path, records, interventions=None, name="rep"):
    args = ["inspect", "--backend", "records", "--records", str(records), "--criterion", CRITERION,
            "--out", str(tmp_path / name), "--n-permutations", "50", "--n-bootstrap", "5", "--top-k", "5"]
    if interventions is not None:
        args += ["--interventions", str(interventions)]
    assert main(args) == 0
    return load_report(tmp_path / name / "report.json")


def test_export_records_then_inspect(cli, dataset, tmp_path, tiny):
    out = tmp_path / "records.jsonl"
    rc = main(["export-hf-records", "--model", "tiny", "--dataset", str(dataset), "--out", str(out),
               "--layers", "0,1", "--pool", "mean", "--top-k-features", "5", "--backend", "nnsight"])
    assert rc == 0 and cli == [("tiny", "nnsight")]
    recs = read_activation_records(out)
    assert len(recs) == len(POS) + len(NEG)
    assert all(len(r.features) == 5 and r.split in ("train", "test") for r in recs)
    assert {str(f.feature_id).split(":")[0] for r in recs for f in r.features} <= {"layer0.resid_post",
                                                                                  "layer1.resid_post"}
    assert recs[0].criterion_score == 1.0 and recs[0].model == tiny.name
    report = _inspect(tmp_path, out)
    assert report.features and report.criterion == CRITERION


def test_export_contrast_sweep_then_interventions(cli, dataset, tmp_path):
    recs_out, int_out = tmp_path / "contrast.jsonl", tmp_path / "contrast_int.jsonl"
    rc = main(["export-hf-contrast", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
               "--records-out", str(recs_out), "--interventions-out", str(int_out), "--layer", "1",
               "--strength-sweep", "1,5,20", "--n-controls", "2"])
    assert rc == 0
    recs = read_activation_records(recs_out)
    ids = {str(f.feature_id) for r in recs for f in r.features}
    assert ids == {"contrast:layer1", "contrast:layer1::control0", "contrast:layer1::control1"}
    directions = DirectionSet.load(f"{recs_out}.directions")
    assert directions.names[0] == "contrast:layer1" and directions.site == "layer1.resid_post"
    ints = read_intervention_records(int_out)
    sweep = json.loads((tmp_path / "contrast_int.jsonl.sweep.json").read_text())
    assert sweep["strength"] in (1.0, 5.0, 20.0) and len(sweep["train"]) == 3
    assert {r.prompt_id for r in ints} == {"pos1", "pos3", "pos5"}  # test-split positives only
    assert all(r.kind == "steer" and r.extra["strength"] == sweep["strength"] for r in ints)
    assert {r.feature_id for r in ints} == ids
    assert all(r.criterion == CRITERION and r.side_effect_score is not None for r in ints)

    report = _inspect(tmp_path, recs_out, int_out)
    entry = next(f for f in report.features if f.feature_id == "contrast:layer1")
    assert entry.causal_records

    # ablate the report's top features, direction ids resolved through the saved DirectionSet
    abl = tmp_path / "ablate.jsonl"
    rc = main(["export-hf-interventions", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
               "--report", str(tmp_path / "rep" / "report.json"), "--out", str(abl), "--top-k", "2",
               "--directions", f"{recs_out}.directions"])
    assert rc == 0
    rows = read_intervention_records(abl)
    assert rows and all(r.kind == "ablate" and r.extra["split"] == "test" for r in rows)
    assert any(r.extra.get("control") for r in rows)
    _inspect(tmp_path, recs_out, abl, name="rep2")


def test_export_interventions_on_neurons(cli, dataset, tmp_path):
    out = tmp_path / "records.jsonl"
    assert main(["export-hf-records", "--model", "tiny", "--dataset", str(dataset), "--out", str(out),
                 "--layers", "1", "--top-k-features", "0"]) == 0
    _inspect(tmp_path, out)
    ints = tmp_path / "ints.jsonl"
    rc = main(["export-hf-interventions", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
               "--report", str(tmp_path / "rep" / "report.json"), "--out", str(ints), "--top-k", "3",
               "--ablate-mode", "mean", "--kind", "ablate", "--kind", "steer", "--strength", "4"])
    assert rc == 0
    rows = read_intervention_records(ints)
    top = [f.feature_id for f in load_report(tmp_path / "rep" / "report.json").features[:3]]
    assert {r.feature_id for r in rows if not r.extra["control"]} == set(top)
    assert {r.kind for r in rows} == {"ablate", "steer"}
    report = _inspect(tmp_path, out, ints, name="rep2")
    assert any(f.causal_records for f in report.features)


def test_export_errors_are_clear(cli, dataset, tmp_path, capsys):
    no_targets = tmp_path / "plain.jsonl"
    no_targets.write_text("\n".join(
        json.dumps({"prompt_id": i, "text": t, "criterion_score": float(i < 2)}) for i, t in enumerate(POS)) + "\n")
    rc = main(["export-hf-contrast", "--model", "tiny", "--dataset", str(no_targets), "--criterion", "units",
               "--records-out", str(tmp_path / "r.jsonl"), "--interventions-out", str(tmp_path / "i.jsonl")])
    assert rc == 2 and "--target-tokens" in capsys.readouterr().err
    assert cli == []  # failed before loading the model

    out = tmp_path / "records.jsonl"
    recs_out = tmp_path / "c.jsonl"
    assert main(["export-hf-contrast", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
                 "--records-out", str(recs_out), "--interventions-out", str(tmp_path / "ci.jsonl")]) == 0
    _inspect(tmp_path, recs_out)
    rc = main(["export-hf-interventions", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
               "--report", str(tmp_path / "rep" / "report.json"), "--out", str(out)])
    assert rc == 2 and "--directions" in capsys.readouterr().err
    rc = main(["export-hf-interventions", "--model", "tiny", "--dataset", str(dataset), "--criterion", "other",
               "--report", str(tmp_path / "rep" / "report.json"), "--out", str(out)])
    assert rc == 2 and "differs" in capsys.readouterr().err


def test_export_contrast_with_every_control_kind(cli, dataset, tmp_path):
    from interpkit.dossier import add_to_dossier

    recs_out, int_out = tmp_path / "contrast.jsonl", tmp_path / "contrast_int.jsonl"
    assert main(["export-hf-contrast", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
                 "--records-out", str(recs_out), "--interventions-out", str(int_out), "--layer", "1",
                 "--strength-sweep", "1,5", "--n-controls", "1", "--controls", "random,matched_frequency,placebo"]) == 0
    fid = "contrast:layer1"
    controls = [f"{fid}::control0", f"{fid}::matched_frequency0", f"{fid}::placebo0"]
    directions = DirectionSet.load(f"{recs_out}.directions")
    assert list(directions.names) == [fid, *controls]
    ints = read_intervention_records(int_out)
    kinds = {r.feature_id: r.extra.get("control_kind") for r in ints}
    assert kinds == {fid: None, controls[0]: "random", controls[1]: "matched_frequency", controls[2]: "placebo"}
    # the records' control features are the DirectionSet's vectors: the placebo is orthogonal to the feature
    v, placebo = directions.vectors[0], directions.vectors[3]
    assert abs(float(v @ placebo)) < 1e-4 * float(v @ v)
    recs = read_activation_records(recs_out)
    assert {f.extra.get("control_kind") for r in recs for f in r.features if f.extra.get("control")} == {
        "random", "matched_frequency", "placebo"}
    _inspect(tmp_path, recs_out, int_out)
    dossier = next(d for d in add_to_dossier(tmp_path / "project", tmp_path / "rep") if d.feature["feature_id"] == fid)
    got = {c["feature_id"]: c["kind"] for c in dossier.entries[0]["causal"]["controls"]}
    assert got == dict(zip(controls, ("random", "matched_frequency", "placebo"), strict=True))


def test_bad_control_kind_is_refused_before_the_model_loads(cli, dataset, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["export-hf-contrast", "--model", "tiny", "--dataset", str(dataset), "--criterion", CRITERION,
              "--records-out", str(tmp_path / "r.jsonl"), "--interventions-out", str(tmp_path / "i.jsonl"),
              "--controls", "random,shuffled"])
    assert exc.value.code == 2 and "controls must be among" in capsys.readouterr().err and cli == []
