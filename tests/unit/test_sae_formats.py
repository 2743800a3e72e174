"""SAE formats: round trips, foreign layouts checked against their libraries' formulas, strict errors,
detection, hub resolution (download monkeypatched)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from interpkit.sae import SAEConfig, _hub, make_sae
from interpkit.sae._formats import FORMATS, SAEFormatError, detect_format, load_sae, save_sae

D_IN, D_SAE, K = 6, 12, 3
ARCHS = {"topk": {"k": K}, "batchtopk": {"k": K}, "relu": {}, "jumprelu": {}}


def _sae(arch: str, seed: int = 0, **kw):
    cfg = SAEConfig(architecture=arch, d_in=D_IN, d_sae=D_SAE, model="tiny", site="layer1.resid_post",
                    hook_name="blocks.1.hook_resid_post", layer=1, **ARCHS[arch], **kw)
    sae = make_sae(cfg, seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # non-trivial biases and thresholds so a dropped tensor would show
        sae.b_enc.copy_(torch.randn(D_SAE, generator=g) * 0.1)
        sae.b_dec.copy_(torch.randn(D_IN, generator=g))
        if arch == "jumprelu":
            sae.threshold.copy_(torch.rand(D_SAE, generator=g) * 0.2)
        if arch == "batchtopk":
            sae.threshold.fill_(0.05)
    return sae.eval()


def _without_source(cfg: SAEConfig) -> SAEConfig:
    return cfg.replace(metadata={k: v for k, v in cfg.metadata.items() if k != "saelens"})


def _assert_same(a, b):
    ta, tb = a.tensors(), b.tensors()
    assert ta.keys() == tb.keys()
    for name in ta:
        assert torch.equal(ta[name], tb[name]), name


# ---- round trips -----------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["native", "saelens"])
@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_round_trip_bit_exact(tmp_path, arch, fmt):
    sae = _sae(arch)
    folder = save_sae(sae, tmp_path / "sae", format=fmt)
    assert detect_format(folder) == fmt
    back = load_sae(folder)
    _assert_same(sae, back)
    assert _without_source(back.cfg) == sae.cfg
    x = torch.randn(5, D_IN)
    assert torch.equal(back.encode(x), sae.encode(x))
    first = json.loads((folder / "cfg.json").read_text())
    save_sae(back, folder, format=fmt)
    assert json.loads((folder / "cfg.json").read_text()) == first
    _assert_same(load_sae(folder), sae)


def test_batchtopk_without_threshold_saelens(tmp_path):
    sae = _sae("batchtopk")
    with torch.no_grad():
        sae.threshold.fill_(-1.0)
    folder = save_sae(sae, tmp_path / "s", format="saelens")
    assert json.loads((folder / "cfg.json").read_text())["architecture"] == "topk"  # per-row top-k in SAELens
    back = load_sae(folder)
    assert back.cfg.architecture == "batchtopk"
    _assert_same(sae, back)


def _saelens_folder(tmp_path: Path, cfg: dict, tensors: dict, name: str = "sl") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "cfg.json").write_text(json.dumps(cfg))
    save_file(tensors, str(folder / "sae_weights.safetensors"))
    return folder


def _std_tensors(seed: int = 0, *, threshold: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {"W_enc": torch.randn(D_IN, D_SAE, generator=g), "b_enc": torch.randn(D_SAE, generator=g) * 0.1,
           "W_dec": torch.randn(D_SAE, D_IN, generator=g), "b_dec": torch.randn(D_IN, generator=g)}
    if threshold:
        out["threshold"] = torch.rand(D_SAE, generator=g) * 0.3
    return out


OLD_FLAT = {"model_name": "gpt2-small", "hook_point": "blocks.3.hook_resid_pre", "hook_point_layer": 3,
            "hook_point_head_index": None, "d_in": D_IN, "d_sae": D_SAE, "dtype": "torch.float32", "device": "mps",
            "l1_coefficient": 8e-05, "lr": 0.0004, "expansion_factor": 2, "context_size": 128,
            "b_dec_init_method": "geometric_median", "seed": 42}
NEW_NESTED = {"architecture": "jumprelu", "d_in": D_IN, "d_sae": D_SAE, "dtype": "float32", "device": "cpu",
              "apply_b_dec_to_input": False, "normalize_activations": "none", "reshape_activations": "none",
              "metadata": {"model_name": "gemma-2-2b", "hook_name": "blocks.12.hook_resid_post",
                           "sae_lens_version": "6.5.0", "neuronpedia_id": "x/y", "context_size": 1024}}


@pytest.mark.parametrize(("cfg", "threshold"), [(OLD_FLAT, False), (NEW_NESTED, True)], ids=["flat", "nested"])
def test_saelens_foreign_round_trip_and_formula(tmp_path, cfg, threshold):
    tensors = _std_tensors(threshold=threshold)
    folder = _saelens_folder(tmp_path, cfg, tensors)
    (folder / "sparsity.safetensors").write_bytes(b"ignored")  # beside the weights: not an error
    sae = load_sae(folder)
    x = torch.randn(7, D_IN)
    # sae_lens/saes/{standard,jumprelu}_sae.py: sae_in = x - b_dec * apply_b_dec_to_input
    sae_in = x - tensors["b_dec"] * cfg.get("apply_b_dec_to_input", True)
    pre = sae_in @ tensors["W_enc"] + tensors["b_enc"]
    ref = pre.relu() * (pre > tensors["threshold"].relu()) if threshold else pre.relu()
    torch.testing.assert_close(sae.encode(x), ref)
    meta = cfg.get("metadata", cfg)
    assert sae.cfg.model == meta["model_name"]
    assert sae.cfg.layer == (3 if cfg is OLD_FLAT else 12)
    out = save_sae(sae, tmp_path / "again", format="saelens")
    assert json.loads((out / "cfg.json").read_text()) == cfg
    from safetensors.torch import load_file
    written = load_file(str(out / "sae_weights.safetensors"))
    assert written.keys() == tensors.keys() and all(torch.equal(written[n], tensors[n]) for n in tensors)


def test_saelens_topk_rescale_folds_decoder_norm(tmp_path):
    tensors = _std_tensors()
    cfg = {**NEW_NESTED, "architecture": "topk", "k": K, "rescale_acts_by_decoder_norm": True,
           "apply_b_dec_to_input": True}
    sae = load_sae(_saelens_folder(tmp_path, cfg, tensors))
    x = torch.randn(4, D_IN)
    norms = tensors["W_dec"].norm(dim=-1)
    # sae_lens/saes/topk_sae.py: hidden_pre * ||W_dec||, top-k, decode (acts / ||W_dec||) @ W_dec + b_dec
    pre = ((x - tensors["b_dec"]) @ tensors["W_enc"] + tensors["b_enc"]) * norms
    vals, idx = pre.topk(K, dim=-1)
    acts = torch.zeros_like(pre).scatter(-1, idx, vals.relu())
    torch.testing.assert_close(sae.encode(x), acts)
    torch.testing.assert_close(sae.reconstruct(x), (acts / norms) @ tensors["W_dec"] + tensors["b_dec"])


# ---- sparsify --------------------------------------------------------------------------------

def _sparsify_folder(root: Path, hookpoint: str = "layers.2", seed: int = 0, cfg: dict | None = None,
                     tensors: dict | None = None) -> Path:
    folder = root / hookpoint
    folder.mkdir(parents=True)
    base = {"activation": "topk", "expansion_factor": 2, "normalize_decoder": True, "num_latents": 0, "k": K,
            "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D_IN}
    (folder / "cfg.json").write_text(json.dumps(cfg if cfg is not None else base))
    g = torch.Generator().manual_seed(seed)
    default = {"encoder.weight": torch.randn(D_SAE, D_IN, generator=g),
               "encoder.bias": torch.randn(D_SAE, generator=g) * 0.1,
               "W_dec": torch.randn(D_SAE, D_IN, generator=g), "b_dec": torch.randn(D_IN, generator=g)}
    save_file(tensors if tensors is not None else default, str(folder / "sae.safetensors"))
    return folder


def test_sparsify_formula(tmp_path):
    folder = _sparsify_folder(tmp_path)
    from safetensors.torch import load_file
    t = load_file(str(folder / "sae.safetensors"))
    sae = load_sae(folder)
    assert detect_format(folder) == "sparsify" and sae.cfg.layer == 2 and sae.cfg.hook_name == "layers.2"
    x = torch.randn(5, D_IN)
    # sparsify/sparse_coder.py + fused_encoder.py: relu(encoder(x - b_dec)).topk(k)
    pre = torch.nn.functional.linear(x - t["b_dec"], t["encoder.weight"], t["encoder.bias"]).relu()
    vals, idx = pre.topk(K, dim=-1)
    ref = torch.zeros_like(pre).scatter(-1, idx, vals)
    torch.testing.assert_close(sae.encode(x), ref)
    torch.testing.assert_close(sae.reconstruct(x), ref @ t["W_dec"] + t["b_dec"])
    assert load_sae(tmp_path).cfg.hook_name == "layers.2"  # a parent holding one hookpoint


def test_sparsify_several_hookpoints(tmp_path):
    _sparsify_folder(tmp_path, "layers.1")
    _sparsify_folder(tmp_path, "layers.2")
    with pytest.raises(SAEFormatError, match=r"layers\.1, layers\.2"):
        load_sae(tmp_path)


# ---- dictionary_learning -----------------------------------------------------------------------

def _dl_folder(root: Path, dict_class: str, state: dict, trainer: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    torch.save(state, root / "ae.pt")
    if trainer is not False:
        cfg = {"dict_class": dict_class, "activation_dim": D_IN, "dict_size": D_SAE, "layer": 4,
               "lm_name": "EleutherAI/pythia-70m-deduped", "submodule_name": "resid_post_layer_4",
               **(trainer or {})}
        (root / "config.json").write_text(json.dumps({"trainer": cfg, "buffer": {"ctx_len": 128}}))
    return root


def _linear_state(g, bias_name: str) -> dict:
    return {"encoder.weight": torch.randn(D_SAE, D_IN, generator=g), "encoder.bias": torch.randn(D_SAE, generator=g),
            "decoder.weight": torch.randn(D_IN, D_SAE, generator=g), bias_name: torch.randn(D_IN, generator=g)}


def test_dictionary_learning_autoencoder(tmp_path):
    s = _linear_state(torch.Generator().manual_seed(0), "bias")
    sae = load_sae(_dl_folder(tmp_path / "trainer_0", "AutoEncoder", s))
    x = torch.randn(5, D_IN)
    # dictionary.py AutoEncoder: encode relu(encoder(x - bias)); decode decoder(f) + bias
    f = torch.nn.functional.linear(x - s["bias"], s["encoder.weight"], s["encoder.bias"]).relu()
    torch.testing.assert_close(sae.encode(x), f)
    torch.testing.assert_close(sae.reconstruct(x), f @ s["decoder.weight"].T + s["bias"])
    assert (sae.cfg.architecture, sae.cfg.layer, sae.cfg.model) == ("relu", 4, "EleutherAI/pythia-70m-deduped")
    assert load_sae(tmp_path).cfg.hook_name == "resid_post_layer_4"


@pytest.mark.parametrize("cls", ["AutoEncoderTopK", "BatchTopKSAE"])
def test_dictionary_learning_topk(tmp_path, cls):
    s = _linear_state(torch.Generator().manual_seed(1), "b_dec")
    s.update(k=torch.tensor(K, dtype=torch.int), threshold=torch.tensor(0.2))
    sae = load_sae(_dl_folder(tmp_path, cls, s, {"k": K}))
    x = torch.randn(6, D_IN)
    post = torch.nn.functional.linear(x - s["b_dec"], s["encoder.weight"], s["encoder.bias"]).relu()
    if cls == "AutoEncoderTopK":  # trainers/top_k.py encode(): per-row top-k
        vals, idx = post.topk(K, dim=-1)
        ref = torch.zeros_like(post).scatter(-1, idx, vals)
    else:  # BatchTopKSAE.encode(use_threshold=True)
        ref = post * (post > s["threshold"])
    torch.testing.assert_close(sae.eval().encode(x), ref)


def test_dictionary_learning_jumprelu(tmp_path):
    s = _std_tensors(2, threshold=True)
    sae = load_sae(_dl_folder(tmp_path, "JumpReluAutoEncoder", s, trainer=False))  # no config.json
    x = torch.randn(5, D_IN)
    pre = x @ s["W_enc"] + s["b_enc"]  # apply_b_dec_to_input = False
    torch.testing.assert_close(sae.encode(x), (pre * (pre > s["threshold"])).relu())
    assert detect_format(tmp_path / "ae.pt") == "dictionary_learning"


def test_dictionary_learning_refuses_pickles(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    torch.save({"encoder.weight": torch.zeros(2, 2), "note": Path("x")}, tmp_path / "ae.pt")
    with pytest.raises(SAEFormatError, match=r"ae\.pt.*weights_only"):
        load_sae(tmp_path)


# ---- malformed folders -------------------------------------------------------------------------

def _saved(tmp_path, fmt="saelens", arch="jumprelu"):
    return save_sae(_sae(arch), tmp_path / "m", format=fmt)


def _edit_weights(path: Path, fn):
    from safetensors.torch import load_file
    t = load_file(str(path))
    fn(t)
    save_file(t, str(path))


@pytest.mark.parametrize(("fmt", "weights"), [("saelens", "sae_weights.safetensors"), ("native", "sae.safetensors")])
def test_missing_extra_wrong_shape(tmp_path, fmt, weights):
    folder = _saved(tmp_path, fmt)
    _edit_weights(folder / weights, lambda t: t.pop("threshold"))
    with pytest.raises(SAEFormatError, match=rf"{weights}: tensor 'threshold' is missing") as err:
        load_sae(folder)
    assert err.value.tensor == "threshold" and err.value.path.name == weights
    _edit_weights(folder / weights, lambda t: t.update(threshold=torch.zeros(D_SAE), extra=torch.zeros(1)))
    with pytest.raises(SAEFormatError, match="tensor 'extra' is not expected"):
        load_sae(folder)
    _edit_weights(folder / weights, lambda t: (t.pop("extra"), t.update(W_dec=t["W_dec"].T.contiguous())))
    with pytest.raises(SAEFormatError, match=rf"{weights}: tensor 'W_dec': expected shape \[12, 6\], got \[6, 12\]"):
        load_sae(folder)


@pytest.mark.parametrize(("fmt", "field", "value"), [
    ("saelens", "d_sae", "12"), ("saelens", "apply_b_dec_to_input", "yes"), ("saelens", "architecture", "gated"),
    ("native", "k", "3"), ("native", "d_in", None), ("native", "layer", 1.5),
])
def test_bad_cfg_field(tmp_path, fmt, field, value):
    folder = _saved(tmp_path, fmt, arch="topk")
    cfg = json.loads((folder / "cfg.json").read_text())
    if value is None:
        del cfg[field]
    else:
        cfg[field] = value
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(SAEFormatError, match=rf"cfg\.json: config field '{field}'") as err:
        load_sae(folder)
    assert err.value.field == field


def test_sparsify_bad_cfg_and_tensor(tmp_path):
    folder = _sparsify_folder(tmp_path / "a", cfg={"d_in": D_IN, "k": "32", "expansion_factor": 2})
    with pytest.raises(SAEFormatError, match="config field 'k' must be int"):
        load_sae(folder)
    folder = _sparsify_folder(tmp_path / "b", tensors={"encoder.weight": torch.zeros(D_SAE, D_IN),
                                                       "encoder.bias": torch.zeros(D_SAE), "b_dec": torch.zeros(D_IN)})
    with pytest.raises(SAEFormatError, match=r"sae\.safetensors: tensor 'W_dec' is missing"):
        load_sae(folder)


def test_dictionary_learning_wrong_shape(tmp_path):
    s = _linear_state(torch.Generator().manual_seed(0), "bias")
    s["decoder.weight"] = s["decoder.weight"].T.contiguous()
    with pytest.raises(SAEFormatError, match=r"ae\.pt: tensor 'decoder.weight': expected shape \[6, 12\]"):
        load_sae(_dl_folder(tmp_path, "AutoEncoder", s))


# ---- detection and writing -------------------------------------------------------------------

def test_detect_each_and_unknown(tmp_path):
    assert detect_format(_saved(tmp_path / "n", "native")) == "native"
    assert detect_format(_saved(tmp_path / "s", "saelens") / "cfg.json") == "saelens"
    assert detect_format(_sparsify_folder(tmp_path / "p")) == "sparsify"
    s = _linear_state(torch.Generator().manual_seed(0), "bias")
    assert detect_format(_dl_folder(tmp_path / "d", "AutoEncoder", s)) == "dictionary_learning"
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "weights.bin").write_bytes(b"")
    with pytest.raises(SAEFormatError, match=r"no SAE layout recognised \(found: weights\.bin\)"):
        detect_format(tmp_path / "junk")
    with pytest.raises(SAEFormatError, match="looks like 'saelens'"):
        load_sae(tmp_path / "s" / "m", format="dictionary_learning")
    assert set(FORMATS) == {"native", "saelens", "sparsify", "dictionary_learning", "circuit-tracer"}


def test_save_replaces_atomically_and_keeps_other_files(tmp_path, monkeypatch):
    folder = save_sae(_sae("relu", seed=0), tmp_path / "out")
    (folder / "metrics.json").write_text('{"fvu": 0.1}')
    (folder / "checkpoints").mkdir()
    new = _sae("relu", seed=5)
    save_sae(new, folder)
    _assert_same(load_sae(folder), new)
    assert (folder / "metrics.json").read_text() == '{"fvu": 0.1}' and (folder / "checkpoints").is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folders left

    import interpkit.sae._formats as formats

    def boom(*_a, **_k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(formats, "_write_safetensors", boom)
    with pytest.raises(RuntimeError):
        save_sae(_sae("relu", seed=9), folder)
    _assert_same(load_sae(folder), new)  # the old folder is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_save_read_only_format_and_dtype(tmp_path):
    with pytest.raises(ValueError, match="cannot write SAE format 'sparsify'"):
        save_sae(_sae("topk"), tmp_path / "x", format="sparsify")
    folder = save_sae(_sae("topk"), tmp_path / "y")
    half = load_sae(folder, dtype=torch.bfloat16)
    assert half.W_enc.dtype == torch.bfloat16 and half.cfg.dtype == "bfloat16"


# ---- hub ---------------------------------------------------------------------------------------

def _fake_download(calls, files=("cfg.json", "sae_weights.safetensors")):
    def snapshot_download(*, repo_id, allow_patterns, cache_dir=None):
        calls.append({"repo_id": repo_id, "allow_patterns": allow_patterns, "cache_dir": cache_dir})
        root = Path(cache_dir) / "snap"
        folder = root / allow_patterns[0].removesuffix("/*")
        folder.mkdir(parents=True, exist_ok=True)
        for name in files:
            (folder / name).write_text("{}")
        return str(root)

    return snapshot_download


def test_resolve_known_release(tmp_path, monkeypatch):
    import huggingface_hub

    calls: list[dict] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _fake_download(calls))
    path = _hub.resolve_saelens("gpt2-small-res-jb", "blocks.8.hook_resid_pre", cache_dir=tmp_path)
    assert calls == [{"repo_id": "jbloom/GPT2-Small-SAEs-Reformatted",
                      "allow_patterns": ["blocks.8.hook_resid_pre/*"], "cache_dir": str(tmp_path)}]
    assert path == tmp_path / "snap" / "blocks.8.hook_resid_pre"
    _hub.resolve_saelens("google/gemma-scope-2b-pt-res", "layer_12/width_16k/average_l0_82", cache_dir=tmp_path)
    assert calls[-1]["repo_id"] == "google/gemma-scope-2b-pt-res"
    assert calls[-1]["allow_patterns"] == ["layer_12/width_16k/average_l0_82/*"]


def test_resolve_local_unknown_and_offline(tmp_path, monkeypatch):
    import huggingface_hub

    (tmp_path / "blocks.0.hook_resid_pre").mkdir()
    assert _hub.resolve_saelens(str(tmp_path), "blocks.0.hook_resid_pre") == tmp_path / "blocks.0.hook_resid_pre"
    with pytest.raises(ValueError, match="unknown SAE release 'nope'"):
        _hub.resolve_saelens("nope", "x")
    with pytest.raises(ValueError, match="canonical id"):
        _hub.resolve_saelens("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical")

    def offline(**_kw):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", offline)
    with pytest.raises(_hub.SAEDownloadError, match=r"'gpt2-small-res-jb' sae_id 'blocks.1.hook_resid_pre'"):
        _hub.resolve_saelens("gpt2-small-res-jb", "blocks.1.hook_resid_pre")
