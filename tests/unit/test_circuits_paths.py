"""SAE-to-SAE causal paths (`interpkit.circuits.latent_paths`, `interpkit paths`) on the planted circuit.

The planted model (`interpkit.circuits.planted_circuit`) has one known path: L0 transcoder latent 0
at the "c" (position 4 of "dog cat") → layer 1's uniform attention → L1 latent 0 at position 6 (2/7)
→ L2 latent 0 (through L1's MLP only) → the logit of "t". Latent 1 of each layer is a distractor.
"""

from __future__ import annotations

import json
import math

import pytest

import interpkit.models
from interpkit.circuits import (
    CircuitError,
    Downstream,
    LatentRef,
    PathDictionaries,
    latent_paths,
    parse_downstream,
    parse_latent,
    planted_circuit,
    read_paths,
)
from interpkit.cli import main

PROMPTS = ["dog cat", "a cat sat", "cc dog", "the cow"]


@pytest.fixture(scope="module")
def pc():
    return planted_circuit()


@pytest.fixture(scope="module")
def dicts(pc):
    return {"sae": pc.residual_saes, "tc": pc.transcoders}


def _edge(pc, src_layer, dst_layer):
    return next(w for (a, b), w in pc.expected_edges.items()
                if isinstance(a, tuple) and a[0] == src_layer and isinstance(b, tuple) and b[0] == dst_layer)


# ---- the numbers ----------------------------------------------------------------------------------------


def test_direct_edge_to_layer1_is_the_planted_weight_and_direct_equals_total(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", [pc.prompt], dictionaries=dicts, read=6, n_boot=50)
    row = r.row(0)
    expected = -_edge(pc, 0, 1)  # -2/7
    assert row["total_pre"] == pytest.approx(expected, abs=1e-5)
    assert row["total"] == pytest.approx(expected, abs=1e-5)  # latent 0 fires at 6: relu(2/7) -> 0
    assert row["direct_pre"] == row["total_pre"] and row["indirect_pre"] == 0.0
    assert r.settings["direct_frozen_mlp_layers"] == []
    assert r.frame.iloc[0]["latent"] == 0 and r.frame.iloc[0]["rank"] == 1
    assert abs(r.row(1)["total_pre"]) < 1e-5  # the distractor chain
    assert r.prompts[0]["edited_positions"] == [4] and r.prompts[0]["read_positions"] == [6]


def test_layer2_effect_is_all_indirect_through_layer1s_mlp(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", 2, [pc.prompt], dictionaries={"tc": pc.transcoders}, read=6, n_boot=50)
    row = r.row(0)
    assert r.downstream == Downstream(2, "tc")
    assert r.settings["direct_frozen_mlp_layers"] == [1]
    assert row["total_pre"] == pytest.approx(-2 / 7, abs=1e-5)
    assert abs(row["direct_pre"]) < 1e-5 and abs(row["direct"]) < 1e-5
    assert row["indirect_pre"] == pytest.approx(-2 / 7, abs=1e-5)
    others = r.frame[r.frame["latent"] != 0]
    assert others[["total", "total_pre", "direct_pre"]].abs().to_numpy().max() < 1e-5
    assert r.frame.iloc[0]["latent"] == 0


def test_after_read_averages_positions_from_the_first_edit(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", [pc.prompt], dictionaries=dicts, n_boot=50)
    assert r.prompts[0]["read_positions"] == [4, 5, 6]
    assert r.row(0)["total_pre"] == pytest.approx(-(2 / 5 + 2 / 6 + 2 / 7) / 3, abs=1e-5)


def test_a_residual_sae_latent_ablates_like_the_transcoder_latent_writing_it(pc, dicts):
    # residual latent 2 is +e1 at resid_post 0: exactly what L0 transcoder latent 0 writes at the "c"
    a = latent_paths(pc.model, "L0:sae:2", "layer1.mlp_in", [pc.prompt], dictionaries=dicts, read=6, n_random=0,
                     n_boot=20)
    assert a.row(0)["total_pre"] == pytest.approx(-2 / 7, abs=1e-5)
    # downstream residual SAE at resid_post 1: +e2 (latent 4) moved by attention directly; +e3 (latent 6)
    # only through layer 1's MLP
    b = latent_paths(pc.model, "L0:tc:0", "layer1.resid_post", [pc.prompt], dictionaries=dicts, read=6,
                     n_random=0, n_boot=20)
    assert b.settings["direct_frozen_mlp_layers"] == [1]
    assert b.row(4)["direct_pre"] == pytest.approx(-2 / 7, abs=1e-5)
    assert b.row(6)["total_pre"] == pytest.approx(-2 / 7, abs=1e-5) and abs(b.row(6)["direct_pre"]) < 1e-5


def test_ablation_uses_the_decoder_row_in_model_units(pc):
    # an input-scaled SAE (norm_scaling_factor 3): ablating a latent and re-encoding the same site at that
    # position takes its pre-activation down by exactly its activation (tied rows: W_enc[:, j] . W_dec[j] = 1)
    from interpkit.circuits import ReplacementModel
    from interpkit.sae import SAEConfig, make_sae

    sae = make_sae(SAEConfig(architecture="relu", d_in=16, d_sae=8, site="layer1.resid_post", apply_b_dec_to_input=False,
                             normalize_activations="expected_average_only_in", norm_scaling_factor=3.0), seed=0)
    rm = ReplacementModel(pc.model)
    codes = sae.encode(rm.run(rm.tokenize(pc.prompt))["resid_post"][1]).detach()
    j = int(codes.sum(0).argmax())
    p = int(codes[:, j].argmax())
    r = latent_paths(rm, f"L1:sae:{j}", "layer1.resid_post", [pc.prompt], dictionaries=[sae], positions=[p], read=p,
                     n_random=0, n_boot=10)
    assert r.row(j)["total_pre"] == pytest.approx(-float(codes[p, j]), rel=1e-4)
    assert r.row(j)["total"] == pytest.approx(-float(codes[p, j]), rel=1e-4)


def test_a_generic_llama_runs_and_indirect_is_total_minus_direct():
    from interpkit._testing import tiny_model
    from interpkit.sae import SAEConfig, make_sae

    model = tiny_model("nnsight", arch="llama")
    saes = [make_sae(SAEConfig(architecture="topk", k=4, d_in=16, d_sae=32, site=f"layer{i}.resid_post"), seed=i)
            for i in range(2)]
    r = latent_paths(model, "L0:sae:0", "layer1", ["hello world", "the cat sat"], dictionaries=saes, mode="steer",
                     strength=3.0, n_random=2, n_boot=20)
    f = r.frame
    assert r.settings["direct_frozen_mlp_layers"] == [1] and r.settings["n_used"] == 2
    assert (f["indirect"] - (f["total"] - f["direct"])).abs().max() < 1e-5
    assert f["total"].abs().max() > 0


def test_steering_adds_strength_times_the_decoder_row(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", [pc.prompt], dictionaries=dicts, mode="steer", strength=7.0,
                     positions=[0], read=6, n_random=0, n_boot=20)
    assert r.prompts[0]["edited_positions"] == [0]
    assert r.row(0)["total_pre"] == pytest.approx(1.0, abs=1e-4)  # 7 e1 at position 0, read at 6 with weight 1/7


def test_random_controls_single_out_the_planted_latent_and_intervals_cover(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", PROMPTS, dictionaries=dicts, n_random=16, n_boot=200, seed=3)
    assert r.settings["n_used"] == 4 and r.prompts[2]["edited_positions"] == [0, 1]  # "cc dog"
    top = r.frame.iloc[0]
    assert top["latent"] == 0 and top["rank"] == 1
    assert abs(top["z"]) > 3 and top["frac_controls"] == 0.0
    assert top["total_lo"] <= top["total"] <= top["total_hi"] < 0
    assert r.effects["total"].shape == (r.settings["n_used"], 8)
    assert r.controls["total"].shape == (16, 8)


def test_prompts_where_the_latent_never_fires_are_left_out_and_counted(pc, dicts):
    r = latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", ["dog cat", "dog"], dictionaries=dicts, n_random=0,
                     n_boot=20)
    assert [p["status"] for p in r.prompts] == ["ok", "inactive"]
    assert r.settings["n_used"] == 1
    with pytest.raises(CircuitError, match="no prompt of 1 was edited"):
        latent_paths(pc.model, "L0:tc:0", "layer1.mlp_in", ["dog"], dictionaries=dicts, n_boot=20)


def test_seeded_results_repeat(pc, dicts):
    kw = dict(dictionaries=dicts, n_random=4, n_boot=50, seed=5)
    a = latent_paths(pc.model, "L0:tc:0", "layer2.mlp_in", PROMPTS[:2], **kw)
    b = latent_paths(pc.model, "L0:tc:0", "layer2.mlp_in", PROMPTS[:2], **kw)
    assert a.frame.equals(b.frame)


# ---- parsing and checks -------------------------------------------------------------------------------


def test_latent_specs_parse_strictly():
    assert parse_latent("L6:sae:123") == LatentRef(6, "sae", 123)
    assert parse_latent("layer2:tc:0").spec == "L2:tc:0"
    assert parse_latent(LatentRef(1, "tc", 3)).site == "layer1.mlp_in"
    for bad, part in [("L6:sae", "2 part"), ("X6:sae:1", "layer part 'X6'"), ("L6:mlp:1", "kind part 'mlp'"),
                      ("L6:sae:-1", "latent part '-1'"), ("L6:sae:1:2", "4 part"), ("L:tc:1", "layer part 'L'")]:
        with pytest.raises(CircuitError, match=part):
            parse_latent(bad)
    with pytest.raises(CircuitError, match="kind 'x'"):
        LatentRef(1, "x", 0)
    with pytest.raises(CircuitError, match="latent spec"):
        parse_latent(12)


def test_downstream_forms():
    assert parse_downstream(12) == parse_downstream("layer12") == parse_downstream("L12") == Downstream(12)
    assert parse_downstream("layer3.resid_post") == Downstream(3, "sae") == parse_downstream("L3:sae")
    assert parse_downstream("layer3.mlp_in") == Downstream(3, "tc")
    for bad in ("layer3.attn_out", "block3", "L3:xx", True):
        with pytest.raises(CircuitError, match="downstream"):
            parse_downstream(bad)


def test_dictionaries_by_kind_site_or_cfg(pc):
    flat = PathDictionaries.coerce([*pc.transcoders.values(), *pc.residual_saes.values()])
    assert sorted(flat.tc) == sorted(flat.sae) == [0, 1, 2]
    by_site = PathDictionaries.coerce({"layer1.mlp_in": pc.transcoders[1], "layer2.resid_post": pc.residual_saes[2]})
    assert list(by_site.tc) == [1] and list(by_site.sae) == [2]
    with pytest.raises(CircuitError, match="given as a residual SAE, transcoder"):
        PathDictionaries.coerce({"sae": {1: pc.transcoders[1]}})
    with pytest.raises(CircuitError, match="given for layer 2 but its cfg.site is 'layer1.mlp_in'"):
        PathDictionaries.coerce({"tc": {2: pc.transcoders[1]}})
    with pytest.raises(CircuitError, match="two transcoders for layer 1"):
        PathDictionaries.coerce([pc.transcoders[1], pc.transcoders[1]])


def test_bad_settings_and_orders_are_refused(pc, dicts):
    run = dict(dictionaries=dicts, n_boot=10)
    cases = [
        (("L1:tc:0", "layer1.mlp_in"), {}, "read before upstream L1:tc:0 writes"),
        (("L2:tc:0", "layer1.mlp_in"), {}, "read before"),
        (("L0:tc:99", "layer1"), {}, "latents 0..7"),
        (("L0:tc:0", "layer1"), {"dictionaries": {"tc": {0: pc.transcoders[0]}}}, "no dictionary"),
        (("L0:tc:0", "layer1.mlp_in"), {"dictionaries": {"tc": {0: pc.transcoders[0]}}}, "no transcoder for layer 1"),
        (("L0:tc:0", "layer9"), {}, "layers 0..2"),
        (("L0:tc:0", "layer1"), {"mode": "steer"}, "needs a strength"),
        (("L0:tc:0", "layer1"), {"strength": 2.0}, "strength is for mode 'steer'"),
        (("L0:tc:0", "layer1"), {"mode": "clamp"}, "mode 'clamp'"),
        (("L0:tc:0", "layer1"), {"read": "first"}, "read 'first'"),
        (("L0:tc:0", "layer1"), {"ci": 1.5}, "ci 1.5"),
    ]
    cases = [(k, e, m) if k[1] != "layer1" or "dictionaries" in e else ((k[0], "layer1.mlp_in"), e, m)
             for k, e, m in cases]
    for (up, down), extra, message in cases:
        with pytest.raises(CircuitError, match=message):
            latent_paths(pc.model, up, down, [pc.prompt], **{**run, **extra})
    both = {"sae": {1: pc.residual_saes[1]}, "tc": pc.transcoders}
    with pytest.raises(CircuitError, match="both a residual SAE and a transcoder"):
        latent_paths(pc.model, "L0:tc:0", "layer1", [pc.prompt], dictionaries=both, n_boot=10)


# ---- files and the CLI ----------------------------------------------------------------------------------


def test_save_writes_both_files_and_reads_back(pc, dicts, tmp_path):
    r = latent_paths(pc.model, "L0:tc:0", "layer2.resid_post", PROMPTS[:2], dictionaries=dicts, n_random=3,
                     n_boot=50)
    out = r.save(tmp_path / "p", max_latents=5)
    data = json.loads((out / "paths.json").read_text())
    assert data["format"] == "interpkit.paths" and data["schema_version"] == 1
    assert data["upstream"]["spec"] == "L0:tc:0" and data["downstream"]["site"] == "layer2.resid_post"
    assert len(data["latents"]) == 5 and data["truncated"] is True and data["n_latents"] == 32
    assert len(data["per_prompt"]["total"]) == 2 and len(data["controls"]["total"]) == 3
    assert "# Paths: L0:tc:0 → layer2.resid_post" in (out / "paths.md").read_text()
    back = read_paths(out)
    assert back.upstream == r.upstream and back.downstream == r.downstream
    assert list(back.frame["latent"]) == list(r.frame["latent"][:5])
    assert back.frame["total"].to_numpy() == pytest.approx(r.frame["total"][:5].to_numpy(), abs=1e-6)
    assert back.effects["total"].shape == (2, 5)
    assert [p.name for p in tmp_path.iterdir()] == ["p"]  # no temporary folder left


def test_the_reader_refuses_other_formats_and_newer_versions(tmp_path):
    f = tmp_path / "paths.json"
    for data, message in [({"format": "interpkit.bench"}, "field 'format'"),
                          ({"format": "interpkit.paths", "schema_version": 99}, "newer"),
                          ({"format": "interpkit.paths", "schema_version": 1}, "field 'upstream' is missing")]:
        f.write_text(json.dumps(data))
        with pytest.raises(CircuitError, match=message):
            read_paths(tmp_path)
    f.write_text("{nope")
    with pytest.raises(CircuitError, match="not JSON"):
        read_paths(f)


@pytest.fixture
def cli_files(pc, tmp_path, monkeypatch):
    from interpkit.sae import save_sae

    monkeypatch.setattr(interpkit.models, "load_model", lambda name, backend=None, **kw: pc.model)
    for layer in range(3):
        save_sae(pc.transcoders[layer], tmp_path / f"tc{layer}")
        save_sae(pc.residual_saes[layer], tmp_path / f"sae{layer}")
    prompts = tmp_path / "p.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(PROMPTS)))
    return tmp_path


def test_cli_end_to_end(cli_files, capsys):
    d = cli_files
    code = main(["paths", "--model", "planted", "--from", "L0:tc:0", "--to", "layer2", "--prompts", str(d / "p.jsonl"),
                 "--transcoder", f"layer0={d / 'tc0'}", "--transcoder", f"2={d / 'tc2'}", "--n-random", "4",
                 "--n-boot", "50", "--read", "last", "--out", str(d / "out")])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "#1 latent 0" in printed
    back = read_paths(d / "out")
    row = back.row(0)
    assert back.settings["read"] == "last" and back.settings["direct_frozen_mlp_layers"] == [1]
    assert row["total_pre"] < -0.1 and abs(row["direct_pre"]) < 1e-5
    assert not math.isnan(row["z"])


def test_cli_residual_saes_by_cfg_site(cli_files, capsys):
    d = cli_files
    code = main(["paths", "--model", "planted", "--from", "L0:sae:2", "--to", "layer1.resid_post",
                 "--prompts", str(d / "p.jsonl"), "--sae", str(d / "sae0"), "--sae", f"layer1.resid_post={d / 'sae1'}",
                 "--n-random", "0", "--n-boot", "20", "--out", str(d / "out2"), "--top", "3"])
    assert code == 0, capsys.readouterr().err
    assert (d / "out2" / "paths.md").read_text().count("\n| ") == 4  # header + 3 rows


@pytest.mark.parametrize("args, message", [
    (["--from", "L0:foo:0"], "--from: latent spec 'L0:foo:0': kind part 'foo'"),
    (["--to", "block2"], "--to: downstream 'block2'"),
    (["--transcoder", "layerX=nowhere"], "--transcoder 'layerX=nowhere'"),
    (["--transcoder", "layer0=/no/such/folder"], "--transcoder 'layer0=/no/such/folder'"),
    (["--sae", "layer1.resid_post=TC0"], "--sae: dictionary 'layer1.resid_post'"),
    (["--mode", "steer"], "--strength"),
    (["--read", "first"], "--read 'first'"),
    (["--positions", "a,b"], "--positions"),
    (["--prompts", "/no/such.jsonl"], "such.jsonl"),
])
def test_cli_bad_input_is_one_error_line_and_status_2(cli_files, capsys, args, message):
    d = cli_files
    base = {"--from": "L0:tc:0", "--to": "layer1", "--prompts": str(d / "p.jsonl"), "--out": str(d / "bad")}
    argv = ["paths", "--model", "planted", "--transcoder", f"layer0={d / 'tc0'}", "--transcoder", f"layer1={d / 'tc1'}"]
    extra = [a.replace("TC0", str(d / "tc0")) for a in args]
    for flag, value in base.items():
        if flag not in extra:
            argv += [flag, value]
    assert main(argv + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (d / "bad").exists()
