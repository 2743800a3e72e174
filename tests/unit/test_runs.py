"""``interpkit run``: config parsing and validation, path rules, dry runs, manifests, determinism."""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
import pytest

from interpkit.records import ActivationRecord, FeatureActivation, write_jsonl
from interpkit.runs import (
    ConfigError,
    StepFailed,
    comparable,
    load_config,
    load_manifest,
    make_plan,
    output_hashes,
    run_config,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

QUICK = {"n_permutations": 50, "n_bootstrap": 5}


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(path, n=60, d=8, seed=0):
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(3, d))
    recs = []
    for i in range(n):
        which = rng.choice(3, size=2, replace=False)
        x = (rng.uniform(1, 3, size=2)[:, None] * atoms[which]).sum(0)
        feats = [FeatureActivation(feature_id=f"layer1.resid_post:n{j}", activation=float(x[j]), layer=1)
                 for j in range(d)]
        recs.append(ActivationRecord(model="toy-model", prompt_id=f"p{i}", text=f"text {i}",
                                     criterion_score=float(0 in which), features=tuple(feats)))
    write_jsonl(path, recs)


def _project(tmp_path, steps, **top):
    """A project folder: data/ inputs and run.json beside them."""
    (tmp_path / "data").mkdir(exist_ok=True)
    pool = [{"prompt_id": f"p{i}", "text": ("what a happy day" if i % 2 else "the form is due") + f" {i}",
             "criterion_score": None} for i in range(24)]
    (tmp_path / "data" / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pool))
    _records(tmp_path / "data" / "acts.jsonl")
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"name": "test", **top, "steps": steps}))
    return cfg


WORKFLOW = [
    {"name": "toy", "kind": "inspect", "args": {"model": "toy", "criterion": "sentiment", **QUICK}},
    {"name": "prompts", "kind": "compile-criterion",
     "args": {"criterion": "happy", "compiler": "keyword", "keywords": ["happy"], "pool": "data/pool.jsonl"}},
    {"name": "sae", "kind": "train-sae",
     "args": {"records": "data/acts.jsonl", "preset": "minimal", "latent_dim": 6, "top_k": 2, "epochs": 3,
              "batch_size": 16, "records_out": "sae/latents.jsonl", "top_k_features": 3}},
    {"name": "ranked", "kind": "inspect",
     "args": {"records": "${steps.sae.records_out}", "criterion": "uses direction 0", **QUICK}},
]


def test_the_same_config_twice_gives_identical_outputs_and_manifests(tmp_path, capsys):
    cfg = _project(tmp_path, WORKFLOW, seed=3)
    first = run_config(cfg, out=tmp_path / "run1", echo=lambda *a: None)
    second = run_config(cfg, out=tmp_path / "run2", echo=lambda *a: None)
    capsys.readouterr()
    assert first["status"] == second["status"] == "complete"
    assert first == load_manifest(tmp_path / "run1")
    hashes = output_hashes(first)
    assert hashes == output_hashes(second)
    assert {"toy/report.json", "prompts.jsonl", "sae/sae.safetensors", "sae/latents.jsonl",
            "ranked/report.json"} <= set(hashes)
    # every output file is byte-identical except the SAE's throughput, which the manifest names
    for path in hashes:
        same = _sha(tmp_path / "run1" / path) == _sha(tmp_path / "run2" / path)
        assert same or path == "sae/metrics.json", path
    metrics = next(o for o in first["steps"][2]["outputs"] if o["path"] == "sae/metrics.json")
    assert metrics["run_specific_keys"] == ["tokens_per_s"] and metrics["sha256"] == _sha(
        tmp_path / "run1" / "sae" / "metrics.json")
    assert comparable(first) == comparable(second)
    # the manifest: versions, seed, inputs with sha256, each step's arguments, timing and outputs
    assert first["tool"]["name"] == "interpkit" and first["seed"] == 3
    assert {"torch", "numpy", "transformers", "transformer-lens", "nnsight"} <= set(first["environment"]["packages"])
    assert first["config"]["sha256"] == _sha(cfg) and first["config"]["path"] == "../run.json"
    inputs = {i["path"]: i for i in first["inputs"]}
    assert inputs["../data/acts.jsonl"]["sha256"] == _sha(tmp_path / "data" / "acts.jsonl")
    assert inputs["../data/pool.jsonl"]["used_by"] == ["prompts"]
    ranked = first["steps"][3]
    assert ranked["inputs"][0]["from_step"] == "sae" and ranked["arguments"]["records"] == "sae/latents.jsonl"
    assert ranked["arguments"]["seed"] == 3 and ranked["duration_s"] >= 0 and ranked["started_at"]
    for step in first["steps"]:
        assert step["status"] == "ok" and all(len(o["sha256"]) == 64 for o in step["outputs"])
    # report.json records its input relative to the run folder, not an absolute path
    report = json.loads((tmp_path / "run1" / "ranked" / "report.json").read_text())
    assert report["inputs"][0]["path"] == "sae/latents.jsonl"


def test_json_toml_and_yaml_configs_parse_alike(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"seed": 2, "steps": [
        {"name": "toy", "kind": "inspect", "args": {"model": "toy", "criterion": "x", "top-k": 5}}]}))
    (tmp_path / "a.toml").write_text('seed = 2\n[[steps]]\nname = "toy"\nkind = "inspect"\n'
                                     'args = { model = "toy", criterion = "x", top_k = 5 }\n')
    (tmp_path / "a.yaml").write_text("seed: 2\nsteps:\n  - name: toy\n    kind: inspect\n"
                                     "    args: {model: toy, criterion: x, top_k: 5}\n")
    loaded = [load_config(tmp_path / f"a.{ext}") for ext in ("json", "toml", "yaml")]
    assert loaded[0].steps == loaded[1].steps == loaded[2].steps
    assert dict(loaded[0].steps[0].args) == {"model": "toy", "criterion": "x", "top_k": 5, "seed": 2, "out": "toy"}
    (tmp_path / "bad.toml").write_text("steps = [\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(tmp_path / "bad.toml")


TOY = {"model": "toy", "criterion": "x"}


@pytest.mark.parametrize(("steps", "pattern"), [
    ([{"kind": "inspct", "args": TOY}], r"steps\[0\]: field 'kind': unknown step kind 'inspct'"),
    ([{"name": "a", "kind": "inspect", "args": {**TOY, "top_kk": 3}}],
     r"steps\[0\] \(a\): field 'args': unknown field 'top_kk'; did you mean 'top_k'"),
    ([{"kind": "inspect", "args": TOY}, {"name": "b", "kind": "inspect", "args": {**TOY, "top_k": "ten"}}],
     r"steps\[1\] \(b\): field 'args.top_k': expected an integer, got 'ten'"),
    ([{"name": "a", "kind": "inspect", "args": {"model": "toy"}}],
     r"steps\[0\] \(a\): field 'args.criterion' is required"),
    ([{"name": "a", "kind": "inspect", "args": {**TOY, "pooling": "median"}}],
     r"field 'args.pooling': expected one of max, mean, last"),
    ([{"name": "a", "kind": "inspect", "args": TOY}, {"name": "a", "kind": "inspect", "args": TOY}],
     r"steps\[1\]: field 'name': 'a' is already"),
    ([{"name": "a", "kind": "inspect", "args": {**TOY, "records": "${steps.b.out}/r.jsonl"}},
      {"name": "b", "kind": "inspect", "args": TOY}],
     r"steps\[0\] \(a\): field 'args.records': \$\{steps.b.out\} refers to no earlier step named 'b'"),
    ([{"name": "s", "kind": "train-sae", "args": {"records": "r.jsonl", "latent_dim": 4, "expansion_factor": 2}}],
     r"steps\[0\] \(s\): fields args.latent_dim, args.expansion_factor exclude each other"),
    ([{"name": "a", "kind": "inspect", "args": TOY, "extra": 1}], r"steps\[0\]: unknown field 'extra'"),
    ([], r"field 'steps': expected a non-empty list"),
])
def test_bad_configs_name_the_file_the_step_and_the_field(tmp_path, steps, pattern):
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"steps": steps}))
    with pytest.raises(ConfigError, match=r"^bad\.json: .*" + pattern):
        make_plan(load_config(cfg))


def test_paths_may_not_leave_the_config_and_run_folders_unless_allowed(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "outside.jsonl").write_text("")
    cfg = project / "run.json"
    cases = [({"records": "../outside.jsonl"}, "args.records"), ({"out": "../../elsewhere"}, "args.out"),
             ({"records": str(tmp_path / "outside.jsonl")}, "args.records")]
    for extra, field in cases:
        cfg.write_text(json.dumps({"steps": [{"name": "a", "kind": "inspect", "args": {**TOY, **extra}}]}))
        with pytest.raises(ConfigError, match=rf"run\.json: steps\[0\] \(a\): field '{field}': .* outside"):
            make_plan(load_config(cfg))
        assert make_plan(load_config(cfg), allow_outside=True).steps[0].args
    cfg.write_text(json.dumps({"out": "../run", "steps": [{"kind": "inspect", "args": TOY}]}))
    with pytest.raises(ConfigError, match=r"run\.json: field 'out': .* outside"):
        make_plan(load_config(cfg))
    cfg.write_text(json.dumps({"allow_outside": True, "steps": [
        {"kind": "inspect", "args": {**TOY, "records": "../outside.jsonl"}}]}))
    plan = make_plan(load_config(cfg))
    assert plan.steps[0].args["records"] == "../../outside.jsonl"  # relative to the run folder project/run


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    from interpkit.cli import _run

    cfg = _project(tmp_path, WORKFLOW)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    parser = argparse.ArgumentParser()
    _run.add_arguments(parser)
    assert _run.run(parser.parse_args([str(cfg), "--dry-run"])) == 0
    printed = capsys.readouterr().out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert "[3] ranked: interpkit inspect" in printed and "reads  sae/latents.jsonl  (from step sae)" in printed
    assert "reads  ../data/pool.jsonl  (exists)" in printed and "nothing was run or written" in printed


def test_a_missing_input_stops_the_run_before_any_step(tmp_path):
    cfg = _project(tmp_path, [{"name": "a", "kind": "inspect", "args": TOY},
                              {"name": "b", "kind": "inspect", "args": {"criterion": "x", "records": "nope.jsonl"}}])
    with pytest.raises(ConfigError, match=r"run\.json: steps\[1\] \(b\): field 'args.records': no such file"):
        run_config(cfg, echo=lambda *a: None)
    assert not (tmp_path / "run").exists()


def test_a_failing_step_leaves_a_failed_manifest_and_earlier_outputs(tmp_path, capsys):
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    cfg = _project(tmp_path, [
        {"name": "toy", "kind": "inspect", "args": {**TOY, **QUICK}},
        {"name": "broken", "kind": "inspect", "args": {"criterion": "x", "records": "broken.jsonl"}},
        {"name": "never", "kind": "inspect", "args": {**TOY, **QUICK}},
    ])
    with pytest.raises(StepFailed, match=r"run\.json: steps\[1\] \(broken\) failed") as info:
        run_config(cfg, echo=lambda *a: None)
    assert info.value.__cause__ is not None
    capsys.readouterr()
    manifest = load_manifest(tmp_path / "run")
    assert manifest["status"] == "failed" and manifest["finished_at"]
    assert [s["status"] for s in manifest["steps"]] == ["ok", "failed", "pending"]
    assert "broken.jsonl" in manifest["steps"][1]["error"]
    for out in manifest["steps"][0]["outputs"]:
        assert _sha(tmp_path / "run" / out["path"]) == out["sha256"]
    assert not (tmp_path / "run" / "never").exists()
    # the CLI reports the failure in one line and exits 1
    from interpkit.cli import _run

    parser = argparse.ArgumentParser()
    _run.add_arguments(parser)
    assert _run.run(parser.parse_args([str(cfg)])) == 1
    assert "steps[1] (broken) failed" in capsys.readouterr().err


def test_a_match_step_compares_two_earlier_reports(tmp_path, capsys):
    cfg = _project(tmp_path, [
        {"name": "a", "kind": "inspect", "args": {**TOY, **QUICK}},
        {"name": "b", "kind": "inspect", "args": {**TOY, **QUICK, "seed": 1}},
        {"name": "m", "kind": "match", "args": {"left": "${steps.a.out}/report.json",
                                                "right": "${steps.b.out}/report.json"}},
    ])
    first = run_config(cfg, out=tmp_path / "r1", echo=lambda *a: None)
    second = run_config(cfg, out=tmp_path / "r2", echo=lambda *a: None)
    capsys.readouterr()
    assert "m/matches.json" in output_hashes(first)
    assert output_hashes(first) == output_hashes(second)


def test_while_a_step_runs_the_manifest_on_disk_is_a_truthful_partial_one(tmp_path, monkeypatch, capsys):
    import interpkit.cli._inspect as inspect_cli

    seen = []
    real = inspect_cli.run

    def spy(args):
        seen.append(load_manifest(tmp_path / "run"))  # what a crash at this moment would leave
        return real(args)

    monkeypatch.setattr(inspect_cli, "run", spy)
    cfg = _project(tmp_path, [{"name": "a", "kind": "inspect", "args": {**TOY, **QUICK}},
                              {"name": "b", "kind": "inspect", "args": {**TOY, **QUICK}}])
    run_config(cfg, echo=lambda *a: None)
    capsys.readouterr()
    assert [m["status"] for m in seen] == ["incomplete", "incomplete"]
    assert [s["status"] for s in seen[1]["steps"]] == ["ok", "running"]
    assert seen[1]["steps"][0]["outputs"] and seen[1]["finished_at"] is None
