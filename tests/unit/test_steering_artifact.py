"""Steering artifacts: the format, export-steering's refusal and evidence, apply-steering's rows (tiny model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import interpkit.models
from interpkit._testing import tiny_model
from interpkit.causal import SteeringRefused, apply_steering, export_steering, steering_evidence
from interpkit.cli import main
from interpkit.records import (
    InterventionRecord,
    RecordError,
    SteeringArtifact,
    read_steering_artifact,
    write_steering_artifact,
)

CRITERION = "the next character is a vowel"
GOOD = "layer1.resid_post:n3"  # promotes on test, beats its control
NO_EVIDENCE = "layer1.resid_post:n5"  # ranked, never intervened on
WEAK = "layer1.resid_post:n7"  # held-out effect straddles 0
KW = "cat dog"  # keyword criterion for the continuations (no model needed)


@pytest.fixture(scope="module")
def tiny():
    return tiny_model("nnsight")


@pytest.fixture
def cli(tiny, monkeypatch):
    """The CLI with every ``--model`` resolved to the tiny model."""
    monkeypatch.setattr(interpkit.models, "load_model", lambda name, backend=None, **kw: tiny)


def _records(path, tiny):
    rng = np.random.default_rng(0)
    with open(path, "w") as fh:
        for i in range(40):
            score = float(i % 2)
            feats = [{"feature_id": GOOD, "activation": score * 2 + rng.normal(0, 0.3)},
                     {"feature_id": NO_EVIDENCE, "activation": float(rng.normal())},
                     {"feature_id": WEAK, "activation": float(rng.normal())}]
            fh.write(json.dumps({"model": tiny.name, "prompt_id": f"p{i}", "text": f"prompt {i}",
                                 "criterion_score": score, "features": feats}) + "\n")


def _iv(fid, effects, *, control_of=None, split="test", strength=4.0, control_kind=None):
    rows = []
    for i, e in enumerate(effects):
        extra = {"split": split, "strength": strength, "strength_chosen_on": "train", "site": "layer1.resid_post",
                 "control": control_of is not None}
        if control_of is not None:
            extra["control_of"] = control_of
        if control_kind is not None:
            extra["control_kind"] = control_kind
        rows.append(InterventionRecord(model="tiny", feature_id=fid, criterion=CRITERION, intervention="steer",
                                       prompt_id=f"t{i}", baseline_score=0.2, intervention_score=0.2 + e,
                                       side_effect_score=0.01, extra=extra))
    return rows


def _interventions(path):
    rows = (_iv(GOOD, [0.30, 0.34, 0.31, 0.36]) + _iv(f"{GOOD}::control0", [0.01, -0.02, 0.0, 0.01], control_of=GOOD)
            + _iv(GOOD, [0.9, 0.9, 0.9], split="train")  # train rows never count as held-out evidence
            + _iv(WEAK, [0.2, -0.25, 0.1, -0.1]) + _iv(f"{WEAK}::control0", [0.0, 0.0, 0.01, 0.0], control_of=WEAK))
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    return rows


@pytest.fixture
def report_dir(tmp_path, tiny):
    from interpkit import inspect

    _records(tmp_path / "acts.jsonl", tiny)
    _interventions(tmp_path / "iv.jsonl")
    inspect(None, CRITERION, backend="records", records=tmp_path / "acts.jsonl", interventions=tmp_path / "iv.jsonl",
            out=tmp_path / "rep", n_permutations=50, n_bootstrap=5, explain=False)
    return tmp_path / "rep"


def _artifact(**kw):
    base = {"feature": "f", "site": "layer1.resid_post", "vector": np.arange(16, dtype=np.float32),
            "model_name": "m", "model_fingerprint": "abc", "strength": 2.0, "strength_chosen_on": "user"}
    return SteeringArtifact(**{**base, **kw})


def test_format_round_trip(tmp_path):
    art = _artifact(generation={"max_new_tokens": 4}, provenance={"command": "x", "forced": False})
    write_steering_artifact(tmp_path / "a", art)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["steering.json", "vector.safetensors"]
    back = read_steering_artifact(tmp_path / "a")
    assert back == art and back.vector.dtype == np.float32 and back.path == tmp_path / "a"
    assert read_steering_artifact(tmp_path / "a" / "steering.json") == art


def _broken(tmp_path, edit):
    write_steering_artifact(tmp_path / "a", _artifact())
    j = tmp_path / "a" / "steering.json"
    data = json.loads(j.read_text())
    edit(data)
    j.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        read_steering_artifact(tmp_path / "a")
    assert str(j) in str(info.value)
    return info.value.field


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.update(kind="intervention_spec"), "kind"),
    (lambda d: d.update(schema_version=9), "schema_version"),
    (lambda d: d.update(surprise=1), "surprise"),
    (lambda d: d["strength"].pop("value"), "strength.value"),
    (lambda d: d["strength"].update(chosen_on="magic"), "strength.chosen_on"),
    (lambda d: d["model"].update(fingerprint=""), "model.fingerprint"),
    (lambda d: d["vector"].update(sha256="0" * 64), "vector.sha256"),
    (lambda d: d["vector"].update(d_model=8), "vector.d_model"),
    (lambda d: d["vector"].update(file="../x"), "vector.file"),
    (lambda d: d.update(validated=True), "evidence"),
    (lambda d: d.update(evidence={"intervention": "steer"}), "evidence.split"),
])
def test_strict_reader_names_the_field(tmp_path, edit, field):
    assert _broken(tmp_path, edit) == field


def test_reader_refuses_a_swapped_vector_file(tmp_path):
    from safetensors.numpy import save

    write_steering_artifact(tmp_path / "a", _artifact())
    (tmp_path / "a" / "vector.safetensors").write_bytes(save({"vector": np.ones(16, dtype=np.float32)}))
    with pytest.raises(RecordError, match="vector.sha256"):
        read_steering_artifact(tmp_path / "a")
    (tmp_path / "a" / "vector.safetensors").unlink()
    with pytest.raises(RecordError, match="vector.file"):
        read_steering_artifact(tmp_path / "a")


def test_evidence_is_held_out_and_compared_with_controls(tmp_path):
    rows = _interventions(tmp_path / "iv.jsonl")
    ev = steering_evidence(rows, GOOD, criterion=CRITERION)
    assert ev["n"] == 4 and ev["split"] == "test" and ev["status"] == "promotes"  # the 3 train rows left out
    assert ev["effect"] == pytest.approx(np.mean([0.30, 0.34, 0.31, 0.36]))
    assert ev["strength"] == 4.0 and ev["strength_chosen_on"] == "train"
    assert ev["controls"] == [{"feature_id": f"{GOOD}::control0", "kind": "random", "n": 4,
                               "effect": pytest.approx(0.0), "beaten": True}]
    assert steering_evidence(rows, NO_EVIDENCE, criterion=CRITERION) is None
    assert steering_evidence(rows, GOOD, criterion="another criterion") is None


def test_export_validated_artifact(report_dir, tiny, tmp_path):
    from interpkit.sources import model_fingerprint

    art = export_steering(report_dir, GOOD, tmp_path / "art", model=tiny, command="test")
    back = read_steering_artifact(tmp_path / "art")
    assert back == art and back.validated and back.strength == 4.0 and back.strength_chosen_on == "train"
    assert back.site == "layer1.resid_post" and back.vector.tolist() == np.eye(16)[3].tolist()  # neuron's basis
    assert back.model_fingerprint == model_fingerprint(tiny)
    assert back.evidence["controls"][0]["beaten"] and back.evidence["side_effect"] == pytest.approx(0.01)
    prov = back.provenance
    assert prov["report"].endswith("report.json") and len(prov["report_sha256"]) == 64
    assert prov["interventions"].endswith("iv.jsonl") and prov["command"] == "test" and prov["forced"] is False


@pytest.mark.parametrize("feature", [NO_EVIDENCE, WEAK])
def test_export_refuses_without_held_out_evidence(report_dir, tiny, tmp_path, feature):
    with pytest.raises(SteeringRefused, match="nothing written"):
        export_steering(report_dir, feature, tmp_path / "art", model=tiny, strength=2.0)
    assert not (tmp_path / "art").exists()
    art = export_steering(report_dir, feature, tmp_path / "art", model=tiny, strength=2.0, force=True)
    back = read_steering_artifact(tmp_path / "art")
    assert back == art and not back.validated and back.provenance["forced"] is True
    assert back.strength_chosen_on == "user"
    assert (back.evidence is None) == (feature == NO_EVIDENCE)


def test_export_errors(report_dir, tiny, tmp_path):
    with pytest.raises(ValueError, match="no feature 'nope'"):
        export_steering(report_dir, "nope", tmp_path / "art", model=tiny)
    with pytest.raises(ValueError, match="pass strength="):  # forced, but no strength chosen on train
        export_steering(report_dir, NO_EVIDENCE, tmp_path / "art", model=tiny, force=True)
    (tmp_path / "iv.jsonl").write_text("")  # the evidence changed after inspect read it
    with pytest.raises(ValueError, match="sha256 differs"):
        export_steering(report_dir, GOOD, tmp_path / "art", model=tiny)
    assert not (tmp_path / "art").exists()


def test_apply_rows_and_fingerprint_refusal(report_dir, tiny, tmp_path):
    export_steering(report_dir, GOOD, tmp_path / "art", model=tiny, strength=10.0,
                    generation={"max_new_tokens": 4})
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": i, "text": t}) + "\n" for i, t in enumerate(["the cat", "a dog"])))
    rows = apply_steering(tmp_path / "art", tiny, prompts, tmp_path / "g.jsonl", compiler="keyword",
                          criterion=KW)
    assert [json.loads(x) for x in (tmp_path / "g.jsonl").read_text().splitlines()] == rows
    for r in rows:
        assert r["kind"] == "steering_generation" and r["strength"] == 10.0 and r["feature"] == GOOD
        assert set(r["baseline"]) == {"text", "criterion_score", "metric", "perplexity"}
        assert r["baseline"]["criterion_score"] is not None and r["steered"]["perplexity"] is not None
        assert 0 < r["next_token_tv"] <= 1 and r["generation"]["max_new_tokens"] == 4
        assert r["model"]["matches_artifact"] and not r["model"]["allow_other_model"]
    assert any(r["baseline"]["text"] != r["steered"]["text"] for r in rows)
    half = apply_steering(tmp_path / "art", tiny, ["the cat"], strength=0.0, compiler="keyword", criterion=KW)
    assert half[0]["strength_source"] == "override" and half[0]["next_token_tv"] == 0.0


def test_apply_refuses_another_model(report_dir, tiny, tmp_path):
    from interpkit.sources import model_fingerprint

    export_steering(report_dir, GOOD, tmp_path / "art", model=tiny, generation={"max_new_tokens": 2})
    other = tiny_model("nnsight", seed=1)  # same architecture, other weights
    with pytest.raises(ValueError, match="model.fingerprint"):
        apply_steering(tmp_path / "art", other, ["the cat"], tmp_path / "g.jsonl", criterion=KW, compiler="keyword")
    assert not (tmp_path / "g.jsonl").exists()
    rows = apply_steering(tmp_path / "art", other, ["the cat"], criterion=KW, compiler="keyword",
                          allow_other_model=True)
    assert rows[0]["model"]["matches_artifact"] is False and rows[0]["model"]["allow_other_model"] is True
    assert rows[0]["model"]["fingerprint"] == model_fingerprint(other) != rows[0]["model"]["artifact_fingerprint"]


def test_cli_export_and_apply(cli, report_dir, tmp_path, capsys):
    art = tmp_path / "art"
    assert main(["export-steering", "--report", str(report_dir), "--feature", NO_EVIDENCE, "--out", str(art)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no held-out causal evidence" in err and not art.exists()
    assert main(["export-steering", "--report", str(report_dir), "--feature", GOOD, "--out", str(art)]) == 0
    assert "validated" in capsys.readouterr().out
    assert read_steering_artifact(art).provenance["command"].startswith("interpkit ")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt_id": "a", "text": "the cat"}) + "\n")
    out = tmp_path / "g.jsonl"
    assert main(["apply-steering", "--artifact", str(art), "--prompts", str(prompts), "--out", str(out),
                 "--compiler", "keyword", "--criterion", KW, "--max-new-tokens", "3", "--strength", "10"]) == 0
    row = json.loads(out.read_text())
    assert row["strength"] == 10.0 and row["generation"]["max_new_tokens"] == 3
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "steering.json").write_text("{")
    assert main(["apply-steering", "--artifact", str(bad), "--prompts", str(prompts), "--out", str(out)]) == 2
    assert "steering.json" in capsys.readouterr().err


def test_panel_exports_the_artifact_and_loads_it_back(report_dir, tiny, tmp_path):
    from interpkit.widgets import SteeringPanel

    vec = np.random.default_rng(0).normal(size=tiny.d_model).astype(np.float32)
    panel = SteeringPanel(tiny, {"v": ("layer1.resid_post", vec), "w": ("layer0.resid_post", -vec)},
                          criterion=KW, compiler="keyword", prompt="the cat", max_new_tokens=4, debounce=0,
                          live=False, strengths={"v": 2.5})
    path = panel.save_artifact(tmp_path / "panel_art")
    art = read_steering_artifact(path)
    assert art.feature == "v" and art.strength == 2.5 and art.strength_chosen_on == "panel"
    assert not art.validated and art.evidence is None and art.criterion == KW
    assert np.array_equal(art.vector, vec) and art.generation["prompt"] == "the cat"
    panel.strengths = {"v": 1.0, "w": 1.0}
    with pytest.raises(ValueError, match="name the feature"):
        panel.artifact()
    assert panel.artifact("w").site == "layer0.resid_post"

    back = SteeringPanel.from_artifact(tiny, path, compiler="keyword", debounce=0, live=False)
    assert back.strengths == {"v": 2.5} and back.prompt == "the cat" and back.max_new_tokens == 4
    assert back.run("the cat", back.strengths) == panel.run("the cat", {"v": 2.5, "w": 0.0}) | {"strengths": {"v": 2.5}}
    # an export-steering artifact loads into a running panel as one more slider
    export_steering(report_dir, GOOD, tmp_path / "art", model=tiny)
    assert back.load_artifact(tmp_path / "art") == GOOD
    assert [f["name"] for f in back.features] == ["v", GOOD] and back.strengths[GOOD] == 4.0
    with pytest.raises(ValueError, match="model.fingerprint"):
        SteeringPanel.from_artifact(tiny_model("nnsight", seed=1), path, compiler="keyword", debounce=0)


def test_run_steps_export_and_apply(cli, report_dir, tmp_path):
    from interpkit.runs import run_config

    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt_id": "a", "text": "the cat"}) + "\n")
    cfg = tmp_path / "steer.json"
    cfg.write_text(json.dumps({"name": "steer", "steps": [
        {"name": "art", "kind": "export-steering", "args": {"report": str(report_dir), "feature": GOOD}},
        {"name": "gen", "kind": "apply-steering",
         "args": {"artifact": "${steps.art.out}", "prompts": str(prompts), "compiler": "keyword", "criterion": KW,
                  "max_new_tokens": 3}}]}))
    run_config(cfg, out=tmp_path / "run", allow_outside=True, echo=lambda _: None)
    art = read_steering_artifact(tmp_path / "run" / "art")
    assert art.validated and art.feature == GOOD
    (row,) = [json.loads(x) for x in (tmp_path / "run" / "gen.jsonl").read_text().splitlines()]
    assert row["kind"] == "steering_generation" and row["artifact"]["validated"] is True


def test_mcp_steering_tools_export_and_apply(cli, report_dir, tmp_path):
    from interpkit.cli._mcp_tools import apply_steering_tool, export_steering_tool

    got = export_steering_tool(str(report_dir), GOOD, str(tmp_path / "art"))  # the report's model
    assert got["validated"] is True and read_steering_artifact(tmp_path / "art").feature == GOOD
    with pytest.raises(Exception, match="held-out"):
        export_steering_tool(str(report_dir), NO_EVIDENCE, str(tmp_path / "none"), model="tiny")
    assert not (tmp_path / "none").exists()
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt_id": "a", "text": "the cat"}) + "\n")
    applied = apply_steering_tool(str(tmp_path / "art"), str(prompts), str(tmp_path / "g.jsonl"),
                                  max_new_tokens=3, criterion=KW, compiler="keyword")
    assert applied["n"] == 1 and (tmp_path / "g.jsonl").is_file()
    assert applied["rows"][0]["steered"]["text"] is not None


def test_a_control_inside_the_interval_is_not_beaten():
    # the feature's mean (0.33) is above the placebo's (0.30), but its interval's lower end is not:
    # the ranking's rule (the interval clears the control's mean) decides, kind by kind
    rows = (_iv(GOOD, [0.30, 0.34, 0.31, 0.36])
            + _iv(f"{GOOD}::control0", [0.0, 0.01, 0.0, -0.01], control_of=GOOD)
            + _iv(f"{GOOD}::placebo0", [0.30, 0.29, 0.31, 0.30], control_of=GOOD, control_kind="placebo"))
    ev = steering_evidence(rows, GOOD, criterion=CRITERION)
    assert ev["ci_low"] < 0.30 < ev["effect"]
    assert [(c["feature_id"], c["kind"], c["beaten"]) for c in ev["controls"]] == [
        (f"{GOOD}::control0", "random", True), (f"{GOOD}::placebo0", "placebo", False)]


def test_dossier_keeps_a_steering_artifact_with_its_feature(report_dir, tiny, tmp_path):
    from interpkit.dossier import DossierError, add_to_dossier

    export_steering(report_dir, GOOD, tmp_path / "art", model=tiny)
    project = tmp_path / "project"
    [d] = add_to_dossier(project, report_dir, artifact=tmp_path / "art")  # the folder: to its feature only
    assert d.feature["feature_id"] == GOOD
    [a] = d.artifacts
    assert a["kind"] == "steering_artifact" and a["feature"] == GOOD and a["validated"] is True
    assert a["path"].endswith("steering.json") and len(a["vector_sha256"]) == 64
    with pytest.raises(DossierError, match="exported from 'layer1.resid_post:n3'"):
        add_to_dossier(project, report_dir, WEAK, artifact=tmp_path / "art")
