"""``interpkit attribute`` end to end on the planted circuit, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

import interpkit.models
from interpkit.circuits import load_graph, planted_circuit
from interpkit.cli import main


@pytest.fixture(scope="module")
def pc():
    return planted_circuit()


@pytest.fixture
def files(pc, tmp_path, monkeypatch):
    from interpkit.sae import save_sae

    monkeypatch.setattr(interpkit.models, "load_model", lambda name, backend=None, **kw: pc.model)
    for layer in range(3):
        save_sae(pc.transcoders[layer], tmp_path / f"tc{layer}")
    (tmp_path / "heldout.jsonl").write_text("".join(
        json.dumps({"prompt_id": f"h{i}", "text": t, "target_tokens": ["t"]}) + "\n"
        for i, t in enumerate(["a cat cut", "cold act at"])))
    return tmp_path


def _tc_args(d):
    return [a for layer in range(3) for a in ("--transcoder", f"{layer}={d / f'tc{layer}'}")]


def test_cli_attribute_writes_the_graph_and_validation(files, capsys):
    d = files
    code = main(["attribute", "--model", "planted", "--prompt", "dog cat", "--target", "t", "--no-demean",
                 *_tc_args(d), "--validate", str(d / "heldout.jsonl"), "--ks", "1,2", "--n-random", "2",
                 "--out", str(d / "G")])
    assert code == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "top path: emb.p4 -> L0.p4.f0 -> L1.p6.f0 -> L2.p6.f0 -> target0" in out
    assert sorted(p.name for p in (d / "G").iterdir()) == ["graph.json", "graph.md", "neuronpedia.json",
                                                          "validation.json"]
    g = load_graph(d / "G")
    kept = {g.node_id(i) for i in np.flatnonzero(g.kept & g.mask("feature"))}
    assert kept == {"L0.p4.f0", "L1.p6.f0", "L2.p6.f0"}
    val = json.loads((d / "G" / "validation.json").read_text())
    assert val["summary"]["top"]["slope"] == pytest.approx(1.0, abs=1e-3)
    assert val["summary"]["prompts"] == 2
    viewer = json.loads((d / "G" / "neuronpedia.json").read_text())
    assert {"metadata", "nodes", "links"} <= set(viewer)


@pytest.mark.parametrize("args, message", [
    (["--minus", "a"], "--minus needs --target"),
    (["--target", "tt"], "2 tokens"),
    (["--transcoder", "x=nowhere"], "--transcoder 'x=nowhere'"),
    (["--transcoder", "0=/no/such/folder"], "--transcoder '0=/no/such/folder'"),
    (["--validate", "/no/such.jsonl"], "--validate: no such file"),
    (["--node-threshold", "0"], "--node-threshold"),
    (["--transcoders", "/no/such/dir"], "--transcoders: nothing at"),
])
def test_cli_attribute_bad_input_is_one_error_line(files, capsys, args, message):
    d = files
    argv = ["attribute", "--model", "planted", "--prompt", "dog cat", "--out", str(d / "bad")]
    if "--transcoder" not in args and "--transcoders" not in args:
        argv += _tc_args(d)
    assert main(argv + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (d / "bad").exists()
