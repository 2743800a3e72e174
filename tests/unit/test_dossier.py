"""Evidence dossiers on toy reports: every grade level, idempotent adds, the strict reader, the planner."""

import json
import shutil

import numpy as np
import pytest

import interpkit
from interpkit.cli import main
from interpkit.dossier import (
    DossierError,
    add_to_dossier,
    auroc_interval,
    grade,
    list_dossiers,
    load_dossier,
    next_experiments,
    read_dossier,
)
from interpkit.records import write_jsonl

CRIT = "the text mentions an animal"
FAST = {"n_permutations": 200, "n_bootstrap": 10}


def _control_rows(toy, fid, n=8, seed=0):
    """Same-norm control records for ``fid``: effects around 0, as random directions give."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(2):
        for i in range(n):
            base = 0.7
            rows.append({"model": "toy", "feature_id": f"{fid}::control{k}", "criterion": CRIT,
                         "intervention": "steer", "prompt_id": f"toy-prompt-{i}", "baseline_score": base,
                         "intervention_score": base + float(rng.normal(0, 0.01)), "synthetic": True})
    return rows


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    d = tmp_path_factory.mktemp("dossier-toy")
    data = interpkit.make_toy_table(seed=1, criterion=CRIT)
    write_jsonl(d / "records.jsonl", data.table.to_records())
    plain = [r.to_dict() for r in data.interventions]
    write_jsonl(d / "interventions.jsonl", plain)
    controlled = plain + _control_rows(data, data.truth.carrier)
    write_jsonl(d / "controlled.jsonl", controlled)
    # the same experiment measured again: new noise on every score (another file, another sha256)
    rng = np.random.default_rng(7)
    again = [{**r, "intervention_score": r["intervention_score"] + float(rng.normal(0, 0.005))} for r in controlled]
    write_jsonl(d / "controlled-again.jsonl", again)
    # a rerun that only drew new controls: another file, but the feature's own records are the same
    write_jsonl(d / "new-controls.jsonl", plain + _control_rows(data, data.truth.carrier, seed=3))
    return data, d


def _run(toy, out, *, interventions="controlled.jsonl", seed=0, top_k=32):
    data, d = toy
    kw = {} if interventions is None else {"interventions": d / interventions}
    interpkit.inspect(None, CRIT, records=d / "records.jsonl", out=out, top_k=top_k, seed=seed, **FAST, **kw)
    return out


def test_grades_on_planted_roles(toy, tmp_path):
    data, _ = toy
    t = data.truth
    run = _run(toy, tmp_path / "run")
    project = tmp_path / "project"
    by_id = {d.feature["feature_id"]: d for d in add_to_dossier(project, run)}
    # carrier: promotes, interval beyond both controls' intervals
    g = grade(by_id[t.carrier])
    assert (g.level, g.name) == (2, "causal on held-out prompts") and g.synthetic
    c = by_id[t.carrier].entries[0]["causal"]
    assert c["beats_controls"] is True and len(c["controls"]) == 2
    assert c["ci_low"] > max(x["ci_high"] for x in c["controls"])
    # causal-only: promotes but no control measured -> not level 2; not significant either
    g = grade(by_id[t.causal_only])
    assert g.level < 2 and any("no control was measured" in m for m in g.missing)
    # correlated without interventions: correlational
    g = grade(by_id[t.correlated[0]])
    assert (g.level, g.name) == (1, "correlational")
    assert any("intervention records" in m for m in g.missing)
    a = by_id[t.correlated[0]].entries[0]["association"]
    assert a["auroc_ci_low"] < a["auroc_test"] < a["auroc_ci_high"]
    # decoy: significant but measured inert -> level 0, causally inert
    if by_id[t.decoy].entries[0]["association"]["significant"]:
        assert grade(by_id[t.decoy]).name == "causally inert"
    else:
        assert grade(by_id[t.decoy]).level == 0
    # noise: not significant
    assert (grade(by_id[t.noise[-1]]).level, grade(by_id[t.noise[-1]]).name) == (0, "not significant")


def test_controls_that_overlap_keep_level_below_two(toy, tmp_path):
    data, d = toy
    rows = [r.to_dict() for r in data.interventions]
    # controls as strong as the carrier itself: the effect is not specific to the feature's direction
    strong = [{**r, "feature_id": f"{data.truth.carrier}::control0"} for r in rows
              if r["feature_id"] == data.truth.carrier]
    write_jsonl(d / "strong.jsonl", rows + strong)
    run = _run(toy, tmp_path / "run", interventions="strong.jsonl")
    [dos] = add_to_dossier(tmp_path / "p", run, data.truth.carrier)
    assert dos.entries[0]["causal"]["beats_controls"] is False
    g = grade(dos)
    assert g.level == 1 and any("overlaps a control" in m for m in g.missing)


def test_replicated_across_seeds_and_idempotent(toy, tmp_path):
    data, _ = toy
    fid = data.truth.carrier
    project = tmp_path / "project"
    a = _run(toy, tmp_path / "a", seed=0, top_k=3)
    [d1] = add_to_dossier(project, a, fid)
    before = d1.path.read_bytes()
    [d1b] = add_to_dossier(project, a, fid)
    assert d1b.path.read_bytes() == before and len(d1b.entries) == 1  # same report twice: no change
    twin = tmp_path / "twin"
    shutil.copytree(a, twin)  # the same bytes elsewhere (a rerun of one config): one result, one more path
    [d1c] = add_to_dossier(tmp_path / "p-twin", a, fid)
    [d1c] = add_to_dossier(tmp_path / "p-twin", twin, fid)
    [d1c] = add_to_dossier(tmp_path / "p-twin", twin, fid)
    assert len(d1c.entries) == 1 and d1c.entries[0]["copies"] == [str((twin / "report.json").resolve())]
    plan = next_experiments(d1b)
    assert plan[0].raises_to == 3 and "--seed 1" in plan[0].command
    assert "--interventions NEW_INTERVENTIONS.jsonl" in plan[0].command
    assert plan[0].command.startswith("interpkit inspect --backend records")
    # another seed over the same intervention records measures the effect once: not a replication
    same_records = _run(toy, tmp_path / "same", seed=1, top_k=3)
    [d_same] = add_to_dossier(tmp_path / "p-same", a, fid)
    [d_same] = add_to_dossier(tmp_path / "p-same", same_records, fid)
    g = grade(d_same)
    assert g.level == 2 and any("share one intervention records file" in m for m in g.missing)
    # new records that repeat the feature's measurement (new controls only): still not a replication
    rerun = _run(toy, tmp_path / "rerun", seed=1, top_k=3, interventions="new-controls.jsonl")
    add_to_dossier(tmp_path / "p-rerun", a, fid)
    [d_rerun] = add_to_dossier(tmp_path / "p-rerun", rerun, fid)
    g = grade(d_rerun)
    assert g.level == 2 and any("measured the same effect and interval" in m for m in g.missing), g
    b = _run(toy, tmp_path / "b", seed=1, top_k=3, interventions="controlled-again.jsonl")
    [d2] = add_to_dossier(project, b, fid)
    assert len(d2.entries) == 2
    g = grade(d2)
    assert (g.level, g.name) == (3, "replicated") and len(g.evidence) == 2
    assert next_experiments(d2) == []
    # the same config again (same seed) is a rerun, not a replication
    c = tmp_path / "c"
    shutil.copytree(a, c)
    (c / "report.json").write_text((c / "report.json").read_text() + " ")  # another file, same run
    p2 = tmp_path / "p2"
    add_to_dossier(p2, a, fid)
    [d3] = add_to_dossier(p2, c, fid)
    assert len(d3.entries) == 2 and grade(d3).level == 2


def _matches_file(path, fid, validated, other_model="other-model"):
    m = {"left_id": fid, "right_id": "g7", "score": 0.8, "components": {"activation": 0.8}, "confidence": 0.9,
         "null_z": 6.0, "mutual": True, "margin": 0.3, "left_label": None, "right_label": "animals",
         "left_effect": 0.4, "right_effect": 0.3, "validated": validated,
         "validation": {"validated": validated, "reasons": [] if validated else ["controls"]}}
    data = {"kind": "interpkit_matches", "schema_version": 1, "weights": {"activation": 1.0},
            "null": {"mean": 0.0, "std": 0.1, "n": 100}, "n_matches": 1, "n_confident": 1,
            "settings": {"left": {"models": ["toy"]}, "right": {"models": [other_model]}}, "matches": [m]}
    path.write_text(json.dumps(data))
    return path


def test_validated_match_in_another_model_replicates(toy, tmp_path):
    data, _ = toy
    fid = data.truth.carrier
    run = _run(toy, tmp_path / "run", top_k=3)
    plan_project = tmp_path / "p"
    [d] = add_to_dossier(plan_project, run, fid, matches=_matches_file(tmp_path / "m0.json", fid, False))
    assert grade(d).level == 2 and d.matches[0]["validated"] is False
    [d] = add_to_dossier(plan_project, run, fid, matches=_matches_file(tmp_path / "m1.json", fid, True))
    g = grade(d)
    assert g.level == 3 and any("validated match g7 in other-model" in e for e in g.evidence)
    # a validated match in the same model does not count as another model
    [d] = add_to_dossier(tmp_path / "q", run, fid, matches=_matches_file(tmp_path / "m2.json", fid, True, "toy"))
    assert grade(d).level == 2


def test_artifact_recorded_by_kind_and_sha(toy, tmp_path):
    data, _ = toy
    run = _run(toy, tmp_path / "run", top_k=2)
    art = tmp_path / "steer.json"
    art.write_text(json.dumps({"kind": "interpkit_steering", "feature_id": data.truth.carrier}))
    blob = tmp_path / "vector.bin"
    blob.write_bytes(b"\x00\x01")
    [d] = add_to_dossier(tmp_path / "p", run, data.truth.carrier, artifact=art)
    [d] = add_to_dossier(tmp_path / "p", run, data.truth.carrier, artifact=art)
    [d] = add_to_dossier(tmp_path / "p", run, data.truth.carrier, artifact=blob)
    assert [(a["kind"], a["bytes"]) for a in d.artifacts] == [("interpkit_steering", art.stat().st_size), (None, 2)]
    assert all(len(a["sha256"]) == 64 for a in d.artifacts)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DossierError, match="bad.json"):
        add_to_dossier(tmp_path / "p", run, data.truth.carrier, artifact=bad)


def test_planner_asks_for_controlled_interventions(toy, tmp_path):
    data, _ = toy
    run = _run(toy, tmp_path / "run", interventions=None, top_k=3)
    [d] = add_to_dossier(tmp_path / "p", run, data.truth.carrier)
    assert grade(d).level == 1
    [s] = next_experiments(d)
    assert s.raises_to == 2 and "--interventions INTERVENTIONS.jsonl" in s.command
    assert s.placeholders == ("INTERVENTIONS.jsonl",) and "--records " in s.command


def test_model_backend_plan_uses_export_with_controls(toy, tmp_path):
    from interpkit.dossier import Dossier

    data, _ = toy
    run = _run(toy, tmp_path / "run", interventions=None, top_k=3)
    [d] = add_to_dossier(tmp_path / "p", run, data.truth.carrier)
    # the same evidence as a model-backend run would record it (no model in the fast tier)
    e = {**d.entries[0], "backend": "model", "model": "smollm2-135m", "criterion": "dates", "rank": 2,
         "settings": {**d.entries[0]["settings"], "site": "blocks.15.hook_resid_post", "max_per_class": 16,
                      "inputs": []}}
    d = Dossier(key=d.key, feature=d.feature, entries=[e])
    [s] = next_experiments(d, project_dir="/proj")
    assert s.command.startswith("interpkit export-hf-interventions --model smollm2-135m --dataset DATASET.jsonl "
                                f"--report {e['report_path']} --criterion dates --top-k 2 --n-controls 4 --split test")
    assert "&& interpkit inspect --backend model --criterion dates --model smollm2-135m" in s.command
    assert "--max-per-class 16" in s.command and s.placeholders == ("DATASET.jsonl",)


def test_strict_reader(toy, tmp_path):
    data, _ = toy
    run = _run(toy, tmp_path / "run", top_k=1)
    [d] = add_to_dossier(tmp_path / "p", run)
    good = json.loads(d.path.read_text())
    assert read_dossier(d.path.parent).to_dict() == d.to_dict()

    def bad(mutate, match):
        doc = json.loads(json.dumps(good))
        mutate(doc)
        p = tmp_path / "bad" / "dossier.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps(doc))
        with pytest.raises(DossierError, match=match):
            read_dossier(p)

    bad(lambda x: x.update(kind="other"), "field 'kind'")
    bad(lambda x: x.update(schema_version=9), "field 'schema_version'")
    bad(lambda x: x["entries"][0].pop("tier"), r"field 'entries\[0\].tier': missing")
    bad(lambda x: x["entries"][0]["association"].update(auroc_test="high"),
        r"field 'entries\[0\].association.auroc_test': expected null or number, got string")
    bad(lambda x: x["entries"][0]["association"].update(significant=1),
        r"entries\[0\].association.significant': expected boolean, got number")
    bad(lambda x: x.update(extra=1), "field 'extra': unknown field")
    bad(lambda x: x.update(key="a|b|c"), "field 'key'")
    p = tmp_path / "bad" / "dossier.json"
    p.write_text("{\n  oops")
    with pytest.raises(DossierError, match=r"dossier.json:2: not valid JSON"):
        read_dossier(p)
    with pytest.raises(FileNotFoundError, match="dossiers there"):
        load_dossier(tmp_path / "p", "nope")
    with pytest.raises(DossierError, match="not among the report's top features"):
        add_to_dossier(tmp_path / "p", run, "f999")
    assert load_dossier(tmp_path / "p", d.key).key == d.key == load_dossier(tmp_path / "p", d.slug).key
    assert [x.key for x in list_dossiers(tmp_path / "p")] == [d.key]


def test_auroc_interval():
    lo, hi = auroc_interval(0.8, 50, 50)
    assert 0.7 < lo < 0.8 < hi < 0.9
    assert auroc_interval(None, 5, 5) == (None, None) and auroc_interval(0.7, 0, 5) == (None, None)
    lo, hi = auroc_interval(1.0, 8, 8)  # perfect separation of 16 examples is not certainty
    assert hi == 1.0 and 0.85 < lo < 0.99


def test_cli(toy, tmp_path, capsys):
    data, _ = toy
    run = _run(toy, tmp_path / "run", top_k=3)
    project = str(tmp_path / "p")
    assert main(["dossier", "add", "--project", project, "--report", str(run)]) == 0
    assert "grade 2 (causal on held-out prompts)" in capsys.readouterr().out
    assert main(["dossier", "list", "--project", project]) == 0
    assert capsys.readouterr().out.count(" run(s) ") == 3
    key = f"toy||{data.truth.carrier}"  # activation records carry no site
    assert main(["dossier", "show", "--project", project, key]) == 0
    out = capsys.readouterr().out
    assert "grade 2: causal on held-out prompts  [synthetic data]" in out and "$ interpkit inspect" in out
    assert main(["dossier", "show", "--project", project, key, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["grade"]["level"] == 2
    assert main(["dossier", "show", "--project", project, "missing"]) == 2
    assert "error: no dossier 'missing'" in capsys.readouterr().err
    assert main(["dossier", "add", "--project", project, "--report", str(tmp_path / "nowhere")]) == 2


def test_a_dossier_step_adds_an_earlier_report(tmp_path):
    from interpkit.runs import run_config

    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"name": "toy-dossier", "seed": 0, "steps": [
        {"name": "a", "kind": "inspect", "args": {"model": "toy", "criterion": "x", "top_k": 2, **FAST}},
        {"name": "d", "kind": "dossier", "args": {"project": "project", "report": "${steps.a.out}/report.json"}},
    ]}))
    run_config(cfg, out=tmp_path / "r1", echo=lambda *a: None)
    dossiers = list_dossiers(tmp_path / "r1" / "project")
    assert len(dossiers) == 2 and all(len(d.entries) == 1 for d in dossiers)
    assert all(d.entries[0]["backend"] == "toy" for d in dossiers)
