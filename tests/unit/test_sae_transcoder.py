"""Transcoders (one site -> another): config, architectures, training, metrics, formats, circuit-tracer files."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from interpkit.cli import main
from interpkit.models import UnknownSiteError
from interpkit.sae import (
    ARCHITECTURES,
    SAEConfig,
    SAEFormatError,
    evaluate_sae,
    load_sae,
    load_transcoder_set,
    make_sae,
    read_transcoder_index,
    save_sae,
    train_sae,
    train_transcoders,
    transcoder_splice,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

_WORDS = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away", "big", "small", "red", "blue", "green", "house", "tree", "car"]


def _texts(n=160, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(rng.randint(8, 20))) for _ in range(n)]


@pytest.fixture(scope="module")
def llama():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight", arch="llama")


def _cfg(arch, **kw):
    extra = {"k": 4} if arch in ("topk", "batchtopk") else {}
    return SAEConfig(architecture=arch, d_in=8, d_sae=32, d_out=5, apply_b_dec_to_input=False, **extra, **kw)


# ---- config and module ---------------------------------------------------------------------------


def test_transcoder_config_is_validated():
    with pytest.raises(ValueError, match="apply_b_dec_to_input=False"):
        SAEConfig(architecture="relu", d_in=8, d_sae=16, d_out=4)
    with pytest.raises(ValueError, match="apply_b_dec_to_input=False"):
        SAEConfig(architecture="relu", d_in=8, d_sae=16, site_out="layer0.mlp_out")
    with pytest.raises(ValueError, match="d_out must be a positive integer"):
        SAEConfig(architecture="relu", d_in=8, d_sae=16, d_out=0, apply_b_dec_to_input=False)
    with pytest.raises(ValueError, match="constant_norm_rescale"):
        _cfg("relu", normalize_activations="constant_norm_rescale")
    with pytest.raises(ValueError, match="for a transcoder only"):
        SAEConfig(architecture="relu", d_in=8, d_sae=16, skip_connection=True)
    plain = SAEConfig(architecture="relu", d_in=8, d_sae=16)
    assert not plain.is_transcoder and plain.output_dim == 8
    assert _cfg("relu").is_transcoder and _cfg("relu").output_dim == 5


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_decodes_into_the_output_width(arch):
    tc = make_sae(_cfg(arch), seed=0)
    assert tc.is_transcoder and tc.d_out == 5
    assert tuple(tc.W_dec.shape) == (32, 5) and tuple(tc.b_dec.shape) == (5,)
    x = torch.randn(7, 8)
    codes = tc.encode(x)
    assert tuple(codes.shape) == (7, 32)
    assert tuple(tc.decode(codes).shape) == (7, 5) and tuple(tc(x)[0].shape) == (7, 5)
    # the untied init: unit encoder columns and unit decoder rows, independent of each other
    assert torch.allclose(tc.W_enc.norm(dim=0), torch.ones(32), atol=1e-5)
    assert torch.allclose(tc.W_dec.norm(dim=1), torch.ones(32), atol=1e-5)
    tc.train()
    out = tc.loss(x, dead=torch.ones(32, dtype=torch.bool), target=torch.randn(7, 5))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and tc.W_dec.grad is not None
    with pytest.raises(ValueError, match="needs target="):
        tc.loss(x)


def test_decode_undoes_the_output_scale_and_adds_the_skip():
    cfg = _cfg("relu", skip_connection=True, normalize_activations="expected_average_only_in",
               norm_scaling_factor=2.0, norm_scaling_factor_out=4.0)
    tc = make_sae(cfg, seed=0)
    with torch.no_grad():
        tc.W_skip.copy_(torch.randn(5, 8))
        tc.b_enc.fill_(0.3)
    x = torch.randn(6, 8)
    f = torch.relu((2.0 * x) @ tc.W_enc + tc.b_enc)
    expected = (f @ tc.W_dec + tc.b_dec) / 4.0 + (2.0 * x) @ tc.W_skip.T / 4.0
    torch.testing.assert_close(tc.encode(x), f)
    torch.testing.assert_close(tc.decode(f), (f @ tc.W_dec + tc.b_dec) / 4.0)
    torch.testing.assert_close(tc(x)[0], expected)


# ---- training -------------------------------------------------------------------------------------


def test_paired_arrays_train_a_transcoder():
    rng = np.random.default_rng(0)
    atoms_in, atoms_out = rng.normal(size=(6, 10)), rng.normal(size=(6, 4))
    codes = rng.uniform(0, 2, size=(1200, 6)) * (rng.uniform(size=(1200, 6)) < 0.3)
    x, y = codes @ atoms_in, codes @ atoms_out + 3.0  # an offset b_dec must absorb
    res = train_sae((x.astype("float32"), y.astype("float32")), latent_dim=24, k=3, epochs=20, batch_size=64, lr=3e-3)
    tc = res.sae
    assert tc.is_transcoder and tc.d_in == 10 and tc.d_out == 4
    assert tc.cfg.norm_scaling_factor_out is not None and tc.cfg.norm_scaling_factor_out != tc.cfg.norm_scaling_factor
    assert res.metrics["d_out"] == 4 and res.metrics["fvu"] < 0.2, res.metrics
    with pytest.raises(ValueError, match="needs targets="):
        evaluate_sae(tc, torch.as_tensor(x[:10], dtype=torch.float32))
    with pytest.raises(ValueError, match="row"):
        train_sae((x[:10], y[:9]))


def test_a_transcoder_from_mlp_in_to_mlp_out_learns_the_mlp(llama, tmp_path):
    texts = _texts()
    res = train_sae(llama, texts=texts, site="layer0.mlp_in", target_site="layer0.mlp_out", latent_dim=64, k=8,
                    epochs=8, batch_size=64, max_length=32, lr=3e-3, out=tmp_path / "tc")
    tc, m = res.sae, res.metrics
    assert tc.cfg.site == "layer0.mlp_in" and tc.cfg.site_out == "layer0.mlp_out" and tc.cfg.layer == 0
    # held-out FVU of the MLP output: about 0.2 with these settings (0.18-0.25 across architectures); the mean
    # predictor scores 1, so 0.4 leaves room for noise and still needs a real map from input to output.
    assert m["fvu"] < 0.4, m
    assert 0 < m["l0"] <= 8 and m["d_out"] == 16
    # the splice replaces the MLP's output by the transcoder's prediction (no longer the clean loss)
    assert {"ce_clean", "ce_sae", "ce_zero", "recovered"} <= set(m) and m["ce_sae"] != m["ce_clean"]
    assert res.settings["target_site"] == "layer0.mlp_out" and res.source_info["target_site"] == "layer0.mlp_out"
    back = load_sae(tmp_path / "tc")
    assert back.cfg == tc.cfg.replace(dtype=back.cfg.dtype)
    # a resumed run with another target is refused (target_site is part of the resume key)
    train_sae(llama, texts=texts, site="layer0.mlp_in", target_site="layer1.mlp_out", latent_dim=64, k=8, epochs=2,
              batch_size=64, max_length=32, out=tmp_path / "tc2", checkpoint_every=5, stop_after_steps=5)
    with pytest.raises(ValueError, match="target_site"):
        train_sae(llama, texts=texts, site="layer0.mlp_in", target_site="layer0.mlp_out", latent_dim=64, k=8,
                  epochs=2, batch_size=64, max_length=32, out=tmp_path / "tc2")


def test_bad_transcoder_sites_say_what_is_wrong(llama):
    with pytest.raises(UnknownSiteError, match=r"target_site='layer9.mlp_out'.*layer0.mlp_in"):
        train_sae(llama, texts=_texts(10), site="layer0.mlp_in", target_site="layer9.mlp_out")
    with pytest.raises(ValueError, match="target_site= is for a model source"):
        train_sae(np.zeros((10, 4), dtype="float32"), target_site="layer0.mlp_out")


def test_train_transcoders_reads_every_layer_from_the_same_passes(llama, tmp_path):
    texts = _texts(60)
    res = train_transcoders(llama, texts, layers=[0, 1], out=tmp_path / "tcs", latent_dim=32, k=4, epochs=2,
                            batch_size=64, max_length=24)
    assert list(res) == [0, 1]
    assert [r.sae.cfg.site_out for r in res.values()] == ["layer0.mlp_out", "layer1.mlp_out"]
    index = json.loads((tmp_path / "tcs" / "transcoders.json").read_text())
    assert index["layers"] == [0, 1] and index["transcoders"][1]["path"] == "layer1"
    assert "fvu" in index["transcoders"][0]["metrics"]
    assert read_transcoder_index(tmp_path / "tcs") == {0: tmp_path / "tcs" / "layer0", 1: tmp_path / "tcs" / "layer1"}
    assert load_sae(tmp_path / "tcs" / "layer1").cfg.site == "layer1.mlp_in"
    with pytest.raises(ValueError, match="out of range"):
        train_transcoders(llama, texts, layers=[5])


def test_one_forward_pass_feeds_both_sites(llama):
    from interpkit.sae import ModelSource

    src = ModelSource(llama, _texts(20), "layer0.mlp_in", target_site="layer0.mlp_out",
                      read_sites=["layer1.mlp_in", "layer1.mlp_out"], max_length=16, eval_fraction=0.2)
    x, y = next(iter(src.batches(0, 32, seed=0)))
    assert src.model_passes == 16  # the 16 training texts ran once, for all four sites
    view = src.with_sites("layer1.mlp_in", "layer1.mlp_out")
    x1, y1 = next(iter(view.batches(0, 32, seed=0)))
    assert view.model_passes == 0 and x1.shape == x.shape and not torch.equal(x1, x)
    plain = ModelSource(llama, _texts(20), "layer1.mlp_out", max_length=16, eval_fraction=0.2)
    torch.testing.assert_close(next(iter(plain.batches(0, 32, seed=0))), y1)
    with pytest.raises(ValueError, match="not read by this source"):
        src.with_sites("layer1.resid_post")


# ---- formats --------------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["relu", "jumprelu", "topk"])
def test_native_round_trip_keeps_the_transcoder_fields(tmp_path, arch):
    tc = make_sae(_cfg(arch, site="layer2.mlp_in", site_out="layer2.mlp_out", hook_name_out="blocks.2.hook_mlp_out",
                       normalize_activations="expected_average_only_in", norm_scaling_factor=1.5,
                       norm_scaling_factor_out=0.5, skip_connection=arch == "relu"), seed=1)
    back = load_sae(save_sae(tc, tmp_path / "tc"))
    assert back.cfg == tc.cfg
    for name, t in tc.tensors().items():
        torch.testing.assert_close(back.tensors()[name], t)


def test_saelens_transcoders_round_trip_or_refuse(tmp_path):
    tc = make_sae(_cfg("relu", skip_connection=True, site_out="layer0.mlp_out",
                       normalize_activations="expected_average_only_in", norm_scaling_factor=2.0,
                       norm_scaling_factor_out=0.5), seed=0)
    with torch.no_grad():
        tc.W_skip.normal_()
    folder = save_sae(tc, tmp_path / "sl", format="saelens")
    raw = json.loads((folder / "cfg.json").read_text())
    assert raw["architecture"] == "skip_transcoder" and raw["d_out"] == 5 and raw["apply_b_dec_to_input"] is False
    back = load_sae(folder)
    assert back.is_transcoder and back.cfg.skip_connection and back.cfg.site_out == "layer0.mlp_out"
    x = torch.randn(9, 8)
    torch.testing.assert_close(back(x)[0], tc(x)[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="SAELens's transcoders"):
        save_sae(make_sae(_cfg("topk")), tmp_path / "bad", format="saelens")


# ---- circuit-tracer ------------------------------------------------------------------------------
# circuit_tracer/transcoder/single_layer_transcoder.py: load_relu_transcoder reads safetensors with W_enc
# [d_sae, d_model] and W_dec [d_model, d_sae] (transposed on load), b_enc, b_dec, W_skip [d_model, d_model];
# load_gemma_scope_transcoder reads params.npz with W_enc [d_model, d_sae], W_dec [d_sae, d_model], threshold.


def _ct_relu(path, d_model=6, d_sae=10, seed=0):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    t = {"W_enc": torch.randn(d_sae, d_model, generator=g), "W_dec": torch.randn(d_model, d_sae, generator=g),
         "b_enc": torch.randn(d_sae, generator=g), "b_dec": torch.randn(d_model, generator=g),
         "W_skip": torch.randn(d_model, d_model, generator=g)}
    save_file(t, str(path))
    return t


def _ct_gemma(path, d_model=6, d_sae=10, seed=0):
    rng = np.random.default_rng(seed)
    t = {"W_enc": rng.normal(size=(d_model, d_sae)), "W_dec": rng.normal(size=(d_sae, d_model)),
         "b_enc": rng.normal(size=d_sae), "b_dec": rng.normal(size=d_model), "threshold": rng.uniform(0.1, 1.0, d_sae)}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **{k: v.astype("float32") for k, v in t.items()})
    return {k: torch.as_tensor(v, dtype=torch.float32) for k, v in t.items()}


def test_circuit_tracer_relu_skip_transcoder_matches_its_formula(tmp_path):
    t = _ct_relu(tmp_path / "layer_3.safetensors")
    tc = load_sae(tmp_path / "layer_3.safetensors", format="circuit-tracer")
    assert tc.cfg.architecture == "relu" and tc.cfg.layer == 3 and tc.cfg.skip_connection
    assert tc.cfg.hook_name == "blocks.3.mlp.hook_in" and tc.cfg.site == "layer3.mlp_in"  # ReplacementModel's default
    assert tc.cfg.metadata["circuit_tracer"]["hooks_assumed"] is True
    x = torch.randn(5, 6)
    # SingleLayerTranscoder: encode relu(x @ W_enc.T... after load_relu_transcoder's transpose), decode + x @ W_skip.T
    acts = torch.relu(x @ t["W_enc"].T + t["b_enc"])
    torch.testing.assert_close(tc.encode(x), acts)
    torch.testing.assert_close(tc(x)[0], acts @ t["W_dec"].T + t["b_dec"] + x @ t["W_skip"].T)


def test_circuit_tracer_set_reads_the_yaml_and_gemma_scope_npz(tmp_path):
    t0 = _ct_gemma(tmp_path / "layer_0" / "width_16k" / "average_l0_5" / "params.npz", seed=0)
    _ct_gemma(tmp_path / "layer_1" / "width_16k" / "average_l0_5" / "params.npz", seed=1)
    (tmp_path / "set.yaml").write_text(
        'model_name: "google/gemma-2-2b"\nfeature_input_hook: "ln2.hook_normalized"\n'
        "feature_output_hook: 'hook_mlp_out'\n\ntranscoders:\n"
        '  - id: "t1"\n    layer: 1\n    filepath: "layer_1/width_16k/average_l0_5/params.npz"\n'
        '  - id: "t0"\n    layer: 0\n    filepath: "layer_0/width_16k/average_l0_5/params.npz"\n')
    tcs = load_transcoder_set(tmp_path / "set.yaml")
    assert list(tcs) == [0, 1]
    tc = tcs[0]
    assert tc.cfg.architecture == "jumprelu" and tc.cfg.model == "google/gemma-2-2b"
    # ln2.hook_normalized is before the norm's weight: no canonical site, the raw hook is kept
    assert tc.cfg.site is None and tc.cfg.hook_name == "blocks.0.ln2.hook_normalized"
    assert tc.cfg.site_out == "layer0.mlp_out" and tc.cfg.hook_name_out == "blocks.0.hook_mlp_out"
    x = torch.randn(7, 6) * 2
    pre = x @ t0["W_enc"] + t0["b_enc"]
    acts = pre * (pre > t0["threshold"])  # circuit-tracer's JumpReLU
    torch.testing.assert_close(tc.encode(x), acts)
    torch.testing.assert_close(tc(x)[0], acts @ t0["W_dec"] + t0["b_dec"])


def test_circuit_tracer_bad_files_say_what_is_wrong(tmp_path):
    from safetensors.torch import save_file

    save_file({"W_enc": torch.zeros(4, 3), "W_dec": torch.zeros(3, 4), "b_enc": torch.zeros(4),
               "b_dec": torch.zeros(3), "log_thresholds": torch.zeros(4)}, str(tmp_path / "a.safetensors"))
    with pytest.raises(SAEFormatError, match="log_thresholds"):
        load_sae(tmp_path / "a.safetensors", format="circuit-tracer")
    save_file({"W_enc": torch.zeros(4, 3), "W_dec": torch.zeros(5, 4), "b_enc": torch.zeros(4),
               "b_dec": torch.zeros(3)}, str(tmp_path / "b.safetensors"))
    with pytest.raises(SAEFormatError, match="'W_dec'"):
        load_sae(tmp_path / "b.safetensors", format="circuit-tracer")
    (tmp_path / "hub.yaml").write_text("feature_input_hook: hook_resid_mid\nfeature_output_hook: mlp.hook_out\n"
                                       "transcoders:\n  - {id: x, layer: 0, filepath: 'hf://a/b/layer_0.safetensors'}\n")
    with pytest.raises(SAEFormatError, match="download it"):
        load_transcoder_set(tmp_path / "hub.yaml")


# ---- splice and CLI ------------------------------------------------------------------------------


def test_transcoder_splice_replaces_the_mlp_output(llama):
    tc = make_sae(SAEConfig(architecture="relu", d_in=16, d_sae=32, d_out=16, apply_b_dec_to_input=False,
                            site="layer0.mlp_in", site_out="layer0.mlp_out"), seed=0)
    batch = llama.tokenize(_texts(2))
    clean = llama.capture(batch, ["layer0.mlp_in", "layer0.mlp_out"])
    with llama.edits(*transcoder_splice(tc)):
        spliced = llama.capture(batch, ["layer0.mlp_in", "layer0.mlp_out"])
    torch.testing.assert_close(spliced["layer0.mlp_in"], clean["layer0.mlp_in"])
    with torch.no_grad():
        expected = tc(clean["layer0.mlp_in"])[0]
    torch.testing.assert_close(spliced["layer0.mlp_out"], expected, atol=1e-5, rtol=1e-5)


def test_cli_target_site_flags_are_checked(tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"prompt_id": "p", "text": "a b", "criterion_score": 0.0}) + "\n")
    base = ["train-sae", "--model", "x", "--dataset", str(data), "--out", str(tmp_path / "o")]
    assert main([*base, "--layers", "1,2"]) == 2
    assert "--layers goes with --transcoders" in capsys.readouterr().err
    assert main([*base, "--transcoders", "--layers", "1,x"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    assert main([*base, "--target-site", "layer0.mlp_out"]) == 2
    assert "--target-site needs --site" in capsys.readouterr().err
