"""Crosscoders: planted shared/private latents recovered, save/load strictness, aligned model sources."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from interpkit.sae._crosscoder import (  # noqa: E402
    CrosscoderConfig,
    CrosscoderFormatError,
    cross_source_pairs,
    load_crosscoder,
    make_crosscoder,
    paired_activations,
    save_crosscoder,
    shared_latents,
    train_crosscoder,
)

N_SHARED, N_PRIV = 8, 6


def planted(n=2000, d_a=24, d_b=20, p=0.06, noise=0.02, seed=0):
    """Two sources: N_SHARED latents fire together in both (own direction in each), N_PRIV per source
    fire in one only. Returns the data and the unit directions (shared_a, shared_b, priv_a, priv_b)."""
    rng = np.random.default_rng(seed)

    def dirs(m, d):
        v = rng.normal(size=(m, d))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def codes(m):
        return (rng.random((n, m)) < p) * rng.uniform(1, 3, size=(n, m))

    truth = dirs(N_SHARED, d_a), dirs(N_SHARED, d_b), dirs(N_PRIV, d_a), dirs(N_PRIV, d_b)
    fs, ga, gb = codes(N_SHARED), codes(N_PRIV), codes(N_PRIV)
    xa = fs @ truth[0] + ga @ truth[2] + noise * rng.normal(size=(n, d_a))
    xb = 5.0 * (fs @ truth[1] + gb @ truth[3] + noise * rng.normal(size=(n, d_b)))  # another scale
    return {"a": xa.astype(np.float32), "b": xb.astype(np.float32)}, truth


def unit(w):
    return w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-9)


def best_latents(w, targets):
    """For each target direction, the latent whose decoder row is closest in cosine, and the cosine."""
    cos = unit(w) @ targets.T
    return cos.argmax(0), cos.max(0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def planted_data():
    return planted()


@pytest.mark.parametrize("architecture", ["topk", "relu"])
def test_recovers_shared_and_private_latents(planted_data, architecture):
    data, (sa, sb, pa, pb) = planted_data
    kw = {"k": 4} if architecture == "topk" else {"sparsity_coefficient": 0.1}
    res = train_crosscoder(data, d_sae=48, architecture=architecture, epochs=30, batch_size=128, seed=0, **kw)
    cc = res.crosscoder
    lps = shared_latents(cc, rows=data)
    wa, wb = cc.W_dec[0].detach().numpy(), cc.W_dec[1].detach().numpy()
    cos_a, cos_b = (unit(w) @ t.T for w, t in ((wa, sa), (wb, sb)))
    idx = (cos_a + cos_b).argmax(0)  # the latent closest to each planted shared pair, in both sources
    found = np.minimum(cos_a[idx, range(N_SHARED)], cos_b[idx, range(N_SHARED)])
    assert (found > 0.8).mean() >= 0.8
    assert np.mean([lps[i].kind == "shared" for i in idx]) >= 0.8
    for w, truth, kind in ((wa, pa, "a"), (wb, pb, "b")):
        idx, cos = best_latents(w, truth)
        assert (cos > 0.8).mean() >= 0.8
        assert np.mean([lps[i].kind == kind for i in idx]) >= 0.8
    assert set(res.metrics["fvu"]) == {"a", "b"}
    assert max(res.metrics["fvu"].values()) < 0.1
    assert res.metrics["n_eval_rows"] == 200 and res.metrics["epochs"] == 30
    assert len(res.history) == 30 and res.history[-1]["loss"] < res.history[0]["loss"]
    if architecture == "topk":
        assert res.metrics["l0"] <= 4
        joint = cc.decoder_norms().pow(2).sum(0).sqrt()
        torch.testing.assert_close(joint, torch.ones_like(joint))


def test_cross_source_pairs_name_shared_latents(planted_data):
    data, _ = planted_data
    res = train_crosscoder(data, d_sae=32, k=4, epochs=3, batch_size=128, seed=1)
    pairs = cross_source_pairs(res.crosscoder, rows=data)
    by_latent = {lp.latent: lp for lp in shared_latents(res.crosscoder, rows=data)}
    assert pairs and all(by_latent[p.latent].kind == "shared" for p in pairs)
    assert [p.score for p in pairs] == sorted((p.score for p in pairs), reverse=True)
    p = pairs[0]
    assert (p.feature_a, p.feature_b) == (f"a:cc{p.latent}", f"b:cc{p.latent}")
    assert 0 < p.score <= 1 and p.cosine is None  # widths differ: no cosine
    assert res.crosscoder.feature_ids("b")[3] == "b:cc3"


def test_cosine_when_widths_agree_and_seeded_training_is_deterministic():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 6)).astype(np.float32)
    data = {"x": z, "y": -z}
    r1 = train_crosscoder(data, d_sae=12, k=3, epochs=2, batch_size=64, seed=3)
    r2 = train_crosscoder(data, d_sae=12, k=3, epochs=2, batch_size=64, seed=3)
    for name, t in r1.crosscoder.tensors().items():
        assert torch.equal(t, r2.crosscoder.tensors()[name]), name
    lps = shared_latents(r1.crosscoder, sources=("y", "x"))
    assert all(lp.cosine is not None and lp.source_a == "y" for lp in lps)


def test_relative_norm_classification_by_hand():
    cfg = CrosscoderConfig(sources=("a", "b"), d_in=(2, 2), d_sae=4, architecture="relu")
    cc = make_crosscoder(cfg, seed=None)
    with torch.no_grad():
        cc.W_dec[0].copy_(torch.tensor([[1.0, 0], [1, 0], [0.05, 0], [0, 0]]))
        cc.W_dec[1].copy_(torch.tensor([[1.0, 0], [0, 0.05], [0, 1], [0, 0]]))
    kinds = [lp.kind for lp in shared_latents(cc)]
    assert kinds == ["shared", "a", "b", "dead"]
    lp = shared_latents(cc)[0]
    assert lp.relative_norm == pytest.approx(0.5) and lp.cosine == pytest.approx(1.0)
    assert shared_latents(cc, min_norm_fraction=0.0)[1].kind == "shared"
    assert [p.latent for p in cross_source_pairs(cc)] == [0]


def test_config_and_input_validation():
    with pytest.raises(ValueError, match="CrosscoderConfig.k"):
        CrosscoderConfig(sources=("a", "b"), d_in=(2, 2), d_sae=4, architecture="topk")
    with pytest.raises(ValueError, match="CrosscoderConfig.sources"):
        CrosscoderConfig(sources=("a", "a"), d_in=(2, 2), d_sae=4, k=1)
    with pytest.raises(ValueError, match="row-aligned"):
        train_crosscoder({"a": np.zeros((5, 2)), "b": np.zeros((6, 2))})
    cc = make_crosscoder(CrosscoderConfig(sources=("a", "b"), d_in=(2, 3), d_sae=4, k=1))
    with pytest.raises(ValueError, match="source 'b': expected width 3"):
        cc.encode({"a": torch.zeros(1, 2), "b": torch.zeros(1, 2)})
    with pytest.raises(ValueError, match="unknown source 'c'"):
        shared_latents(cc, sources=("a", "c"))


# ---- save / load ------------------------------------------------------------------------------


@pytest.fixture()
def saved(tmp_path):
    cfg = CrosscoderConfig(sources=("layer0.resid_post", "layer1.resid_post"), d_in=(6, 4), d_sae=8, k=2,
                           norm_scaling_factors=(0.5, 2.0), metadata={"model": "tiny"})
    cc = make_crosscoder(cfg, seed=0)
    with torch.no_grad():
        for p in cc.parameters():
            p.add_(torch.randn(p.shape) * 0.1)
    return cc, save_crosscoder(cc, tmp_path / "cc")


def test_save_load_round_trip_is_bit_exact(saved):
    cc, path = saved
    assert sorted(p.name for p in path.iterdir()) == ["cfg.json", "crosscoder.safetensors"]
    back = load_crosscoder(path)
    assert back.cfg == cc.cfg
    for name, t in cc.tensors().items():
        assert torch.equal(back.tensors()[name], t), name
    x = {"layer0.resid_post": torch.randn(3, 6), "layer1.resid_post": torch.randn(3, 4)}
    assert torch.equal(back.encode(x), cc.encode(x))
    save_crosscoder(back, path)  # overwrite in place
    assert load_crosscoder(path).cfg == cc.cfg
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


def _rewrite(path, mutate):
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(path / "crosscoder.safetensors"))
    mutate(tensors)
    save_file(tensors, str(path / "crosscoder.safetensors"))


@pytest.mark.parametrize(
    ("mutate", "tensor", "message"),
    [
        (lambda t: t.pop("W_dec_1"), "W_dec_1", "tensor 'W_dec_1' missing"),
        (lambda t: t.update(extra=torch.zeros(2)), "extra", "unexpected tensor 'extra'"),
        (lambda t: t.update(W_enc_0=torch.zeros(8, 6)), "W_enc_0", r"expected shape \[6, 8\], got \[8, 6\]"),
    ],
)
def test_malformed_weights_name_the_tensor(saved, mutate, tensor, message):
    _, path = saved
    _rewrite(path, mutate)
    with pytest.raises(CrosscoderFormatError, match=message) as err:
        load_crosscoder(path)
    assert err.value.tensor == tensor and err.value.path.name == "crosscoder.safetensors"


def test_malformed_config_names_the_field_or_file(saved):
    _, path = saved
    cfg_path = path / "cfg.json"
    raw = json.loads(cfg_path.read_text())
    cfg_path.write_text(json.dumps({k: v for k, v in raw.items() if k != "d_sae"}))
    with pytest.raises(CrosscoderFormatError, match="missing: d_sae") as err:
        load_crosscoder(path)
    assert err.value.tensor == "d_sae"
    cfg_path.write_text(json.dumps({**raw, "d_in": [6, "4"]}))
    with pytest.raises(CrosscoderFormatError, match="CrosscoderConfig.d_in") as err:
        load_crosscoder(path)
    assert err.value.tensor == "d_in"
    cfg_path.unlink()
    with pytest.raises(CrosscoderFormatError, match="cfg.json: missing"):
        load_crosscoder(path)


# ---- aligned sources from models --------------------------------------------------------------------

TEXTS = ["the cat sat", "a dog ran far", "hi", "the red mat is big"]


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def test_two_layers_of_one_model_give_token_aligned_rows(tiny):
    acts = paired_activations([(tiny, "layer0.resid_post"), (tiny, "layer1.resid_post")], TEXTS)
    assert list(acts) == ["layer0.resid_post", "layer1.resid_post"]
    n_tokens = sum(len(t) for t in TEXTS)  # character tokenizer, BOS left out
    assert acts["layer0.resid_post"].shape == acts["layer1.resid_post"].shape == (n_tokens, 16)
    batch = tiny.tokenize(TEXTS[:1])
    ref = tiny.capture(batch, ["layer0.resid_post", "layer1.resid_post"])
    for site in acts:
        np.testing.assert_allclose(acts[site][: len(TEXTS[0])], ref[site][0, 1:].numpy(), atol=1e-5)
    res = train_crosscoder(acts, d_sae=16, k=2, epochs=1, batch_size=16)
    assert set(res.metrics["fvu"]) == set(acts)


def _word_model():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from interpkit._testing import tiny_hf_gpt2
    from interpkit.models import load_model

    words = sorted({w for t in TEXTS for w in t.split()})
    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2} | {w: i + 3 for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<bos>", pad_token="<pad>",
                                  unk_token="<unk>")
    return load_model(tiny_hf_gpt2(seed=1), "nnsight", tokenizer=tok, name="tiny-words")


def test_models_with_different_tokenizers_refuse_token_rows(tiny):
    other = _word_model()
    pairs = [(tiny, "layer1.resid_post"), (other, "layer1.resid_post")]
    with pytest.raises(ValueError, match=r"tokenize text 0 \('the cat sat'\) differently.*pooling='mean'"):
        paired_activations(pairs, TEXTS)
    acts = paired_activations(pairs, TEXTS, pooling="mean")
    assert list(acts) == ["tiny-gpt2@layer1.resid_post", "tiny-words@layer1.resid_post"]
    assert all(a.shape == (len(TEXTS), 16) for a in acts.values())


def test_models_with_the_same_tokens_allow_token_rows(tiny):
    from interpkit._testing import tiny_model

    other = tiny_model("nnsight", arch="llama")
    acts = paired_activations([(tiny, "layer1.resid_post"), (other, "layer0.resid_post")], TEXTS,
                              names=["gpt2", "llama"])
    assert acts["gpt2"].shape == acts["llama"].shape == (sum(len(t) for t in TEXTS), 16)
    with pytest.raises(ValueError, match="unique"):
        paired_activations([(tiny, "layer1.resid_post"), (other, "layer0.resid_post")], TEXTS, names=["a", "a"])
