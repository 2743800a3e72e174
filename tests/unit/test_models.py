"""interpkit.models on tiny config-built models: both backends, sites, early stop, edits, remote."""

from __future__ import annotations

import copy
import subprocess
import sys

import numpy as np
import pytest
import torch

from interpkit import _testing as T
from interpkit.models import (
    Ablate,
    AddVector,
    Clamp,
    InterpkitRemoteError,
    Patch,
    UnknownSiteError,
    load_model,
)

BACKENDS = ("transformer_lens", "nnsight")
PROMPTS = ["hello there, friend", "hi", "what a day!"]


def _pair(hf):
    """The same weights behind both backends (the bridge rewires its module, so each gets a copy)."""
    return {
        backend: load_model(copy.deepcopy(hf), backend, tokenizer=T.tiny_tokenizer(), name="tiny")
        for backend in BACKENDS
    }


@pytest.fixture(scope="module")
def gpt2_pair():
    return _pair(T.tiny_hf_gpt2())


@pytest.fixture(scope="module")
def llama_pair():
    return _pair(T.tiny_hf_llama())


@pytest.fixture(params=BACKENDS)
def model(request, gpt2_pair):
    return gpt2_pair[request.param]


@pytest.fixture(scope="module")
def batch(gpt2_pair):
    return gpt2_pair["nnsight"].tokenize(PROMPTS)


def _blocks(wrapper):
    return wrapper.hf_model.transformer.h


# ---- loading and the package surface -------------------------------------------------------------


def test_import_is_lazy():
    code = (
        "import sys, interpkit.models; "
        "print(sorted(m for m in ('transformer_lens', 'nnsight', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_one_wrapper_type_whatever_the_input(gpt2_pair):
    bridge_wrapper = load_model(T.tiny_bridge(), tokenizer=T.tiny_tokenizer())
    nnsight_wrapper = load_model(T.tiny_nnsight())
    native = load_model(T.tiny_native_bridge(), tokenizer=T.tiny_tokenizer())
    wrappers = [*gpt2_pair.values(), bridge_wrapper, nnsight_wrapper, native]
    assert len({type(w) for w in wrappers}) == 1
    assert [w.backend for w in wrappers] == [*BACKENDS, "transformer_lens", "nnsight", "transformer_lens"]
    for w in wrappers:
        assert (w.n_layers, w.d_model) == (2, 16)
        acts = w.capture(PROMPTS, "layer1.resid_post")["layer1.resid_post"]
        assert acts.shape[::2] == (3, 16)


def test_load_model_rejects_bad_combinations():
    with pytest.raises(ValueError, match="backend must be one of"):
        load_model(T.tiny_hf_gpt2(), "jax", tokenizer=T.tiny_tokenizer())
    with pytest.raises(ValueError, match="tokenizer"):
        load_model(T.tiny_hf_gpt2(), "nnsight")
    with pytest.raises(ValueError, match="backend='transformer_lens'"):
        load_model(T.tiny_bridge(), "nnsight")
    with pytest.raises(ValueError, match="backend='nnsight'"):
        load_model(T.tiny_nnsight(), "transformer_lens")


# ---- same activations on both backends ----------------------------------------------------------------


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_mlp_in_is_the_mlp_modules_input(backend, arch):
    """layer0.mlp_in is what block 0's MLP reads: after the pre-MLP norm, its weight included
    (the norm's weight is made non-trivial, so a pre-weight hook such as ln2.hook_normalized would differ)."""
    import torch

    from interpkit.models import site_from_hook_name
    from interpkit.sources import stream_activations

    model = T.tiny_model(backend, arch)
    blocks = model.hf_model.transformer.h if arch == "gpt2" else model.hf_model.model.layers
    norm = blocks[0].ln_2 if arch == "gpt2" else blocks[0].post_attention_layernorm
    with torch.no_grad():
        norm.weight.mul_(torch.linspace(0.5, 2.0, norm.weight.numel()))
    seen = []
    handle = blocks[0].mlp.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        res = stream_activations(model, PROMPTS, "layer0.mlp_in", pooling="tokens", exclude_positions=(), sort_by_length=False,
                                 batch_size=len(PROMPTS), progress=False)
    finally:
        handle.remove()
    assert len(seen) == 1
    batch = model.tokenize(PROMPTS)
    mask = batch.attention_mask.bool()
    expected = seen[0][mask.to(seen[0].device)].cpu().numpy()
    chunk = res["layer0.mlp_in", "tokens"].to_chunk(max_bytes=None)
    order = np.lexsort([chunk.token_index, chunk.example_idx])
    np.testing.assert_allclose(chunk.values[order], expected, atol=1e-5)
    assert site_from_hook_name("blocks.0.mlp.hook_in") == "layer0.mlp_in"
    if backend == "transformer_lens":  # the pre-norm and the pre-weight hooks are other tensors
        raw = model.capture(batch, ["blocks.0.ln2.hook_normalized", "blocks.0.hook_resid_mid"])
        for name, value in raw.items():
            assert (value.cpu() - seen[0].cpu()).abs().max() > 0.1, name


@pytest.mark.parametrize("pair_name", ["gpt2_pair", "llama_pair"])
def test_backends_give_the_same_activations(pair_name, request):
    pair = request.getfixturevalue(pair_name)
    tl, nn = pair["transformer_lens"], pair["nnsight"]
    assert tl.sites() == nn.sites()
    assert len(tl.sites()) == 10  # 2 layers x resid_pre, attn_out, mlp_in, mlp_out, resid_post
    batch = tl.tokenize(PROMPTS)
    a_tl = tl.capture(batch, "layer*.*")
    a_nn = nn.capture(batch, "layer*.*")
    assert list(a_tl) == tl.sites()
    for site in tl.sites():
        assert a_tl[site].shape == (3, batch.input_ids.shape[1], 16)
        assert (a_tl[site] - a_nn[site]).abs().max().item() < 1e-5, site
    assert (tl.forward(batch) - nn.forward(batch)).abs().max().item() < 1e-5


def test_capture_is_right_padded_with_mask(model):
    batch = model.tokenize(PROMPTS)
    lengths = [len(p) + 1 for p in PROMPTS]  # characters + BOS
    assert batch.lengths.tolist() == lengths
    assert batch.input_ids.shape == (3, max(lengths))
    assert batch.input_ids[1, lengths[1]:].eq(model.pad_token_id).all()
    assert batch.input_ids[:, 0].eq(1).all()
    unpadded = model.capture(PROMPTS[1], "layer1.resid_post")["layer1.resid_post"]
    padded = model.capture(batch, "layer1.resid_post")["layer1.resid_post"]
    assert torch.allclose(padded[1, : lengths[1]], unpadded[0], atol=1e-5)


def test_logit_lens_reads_the_final_logits(model, batch):
    assert model.W_U.shape == (16, T.VOCAB_SIZE)
    resid = model.capture(batch, "layer1.resid_post")["layer1.resid_post"]
    assert torch.allclose(model.logit_lens(resid), model.forward(batch), atol=1e-5)


# ---- site vocabulary --------------------------------------------------------------------------------


def test_unknown_site_lists_the_valid_ones(model, batch):
    with pytest.raises(UnknownSiteError) as info:
        model.capture(batch, "layer7.resid_post")
    message = str(info.value)
    assert "'layer7.resid_post'" in message
    for site in model.sites():
        assert site in message
    assert "model.sites(raw=True)" in message
    with pytest.raises(ValueError, match="unknown site 'layer9.*'"):
        model.capture(batch, "layer9.*")
    with pytest.raises(UnknownSiteError), model.edits(AddVector("resid_post", torch.zeros(16))):
        pass


def test_patterns_expand_in_forward_order(model):
    assert model.resolve_sites("layer*.resid_post") == ["layer0.resid_post", "layer1.resid_post"]
    assert model.resolve_sites(["layer1.*"]) == [f"layer1.{k}" for k in ("resid_pre", "attn_out", "mlp_in", "mlp_out", "resid_post")]


@pytest.mark.parametrize(
    ("backend", "raw", "canonical"),
    [
        ("transformer_lens", "blocks.1.hook_resid_post", "layer1.resid_post"),
        ("transformer_lens", "blocks.0.hook_mlp_out", "layer0.mlp_out"),
        ("nnsight", "transformer.h.0.mlp", "layer0.mlp_out"),
        ("nnsight", "transformer.h.1", "layer1.resid_post"),
    ],
)
def test_raw_backend_names_are_sites(gpt2_pair, batch, backend, raw, canonical):
    model = gpt2_pair[backend]
    assert raw in model.sites(raw=True)
    acts = model.capture(batch, [raw, canonical])
    assert torch.equal(acts[raw], acts[canonical])


def test_raw_sites_before_canonical_ones_still_capture(gpt2_pair, batch):
    # Module order in the tree is not call order for every model; the nnsight backend probes it.
    model = gpt2_pair["nnsight"]
    acts = model.capture(batch, ["layer1.resid_post", "transformer.h.0.ln_1", "transformer.h.1.attn.c_proj"])
    assert acts["transformer.h.0.ln_1"].shape == (3, batch.input_ids.shape[1], 16)


# ---- early stop ---------------------------------------------------------------------------------------


def _count_block_calls(model, fn):
    """How many times block 0, block 1 and block 1's MLP were entered while ``fn`` ran."""
    calls = [0, 0, 0]
    block1 = _blocks(model)[1]
    mlp1 = next(m for name, m in block1.named_modules() if name.endswith("mlp"))
    handles = [
        module.register_forward_pre_hook(lambda m, a, i=i: calls.__setitem__(i, calls[i] + 1))
        for i, module in enumerate([_blocks(model)[0], block1, mlp1])
    ]
    try:
        result = fn()
    finally:
        for handle in handles:
            handle.remove()
    return calls, result


def test_early_stop_skips_later_layers(model, batch):
    calls, early = _count_block_calls(model, lambda: model.capture(batch, "layer0.resid_post"))
    assert calls == [1, 0, 0]
    calls, full = _count_block_calls(
        model, lambda: model.capture(batch, "layer0.resid_post", stop_at_deepest=False)
    )
    assert calls == [1, 1, 1]
    assert torch.equal(early["layer0.resid_post"], full["layer0.resid_post"])
    calls, _ = _count_block_calls(model, lambda: model.capture(batch, ["layer1.attn_out", "layer0.mlp_out"]))
    assert calls == [1, 1, 0]  # stopped inside block 1, right after its attention


def test_capture_returns_only_what_was_asked(model, batch):
    acts = model.capture(batch, ["layer1.mlp_out", "layer0.attn_out"])
    assert list(acts) == ["layer1.mlp_out", "layer0.attn_out"]


# ---- edits --------------------------------------------------------------------------------------------


def _acts(model, batch, *sites):
    return model.capture(batch, list(sites), stop_at_deepest=False)


def test_zero_ablation_zeroes_the_site_and_flows_downstream(model, batch):
    base = _acts(model, batch, "layer0.mlp_out", "layer0.resid_post")
    with model.edits(Ablate("layer0.mlp_out")):
        acts = _acts(model, batch, "layer0.resid_pre", "layer0.attn_out", "layer0.mlp_out", "layer0.resid_post")
    assert acts["layer0.mlp_out"].abs().max() == 0
    downstream = acts["layer0.resid_pre"] + acts["layer0.attn_out"]
    assert torch.allclose(acts["layer0.resid_post"], downstream, atol=1e-6)
    assert not torch.allclose(acts["layer0.resid_post"], base["layer0.resid_post"])


def test_mean_ablation_and_dims(model, batch):
    mean = torch.arange(16, dtype=torch.float32)
    with model.edits(Ablate("layer1.resid_pre", mode="mean", mean=mean, dims=[2, 5])):
        acts = _acts(model, batch, "layer1.resid_pre")["layer1.resid_pre"]
    base = _acts(model, batch, "layer1.resid_pre")["layer1.resid_pre"]
    assert acts[..., 2].eq(2.0).all() and acts[..., 5].eq(5.0).all()
    keep = [d for d in range(16) if d not in (2, 5)]
    assert torch.equal(acts[..., keep], base[..., keep])
    with pytest.raises(ValueError, match="mean="):
        Ablate("layer0.mlp_out", mode="mean")


def test_add_vector_shifts_the_site_by_strength_times_vector(model, batch):
    vector = torch.randn(16, generator=torch.Generator().manual_seed(1))
    base = _acts(model, batch, "layer0.resid_post", "layer1.resid_post")
    with model.edits(AddVector("layer0.resid_post", vector, strength=2.5)):
        acts = _acts(model, batch, "layer0.resid_post", "layer1.resid_post")
    delta = acts["layer0.resid_post"] - base["layer0.resid_post"]
    assert torch.allclose(delta, (2.5 * vector).expand_as(delta), atol=1e-5)
    assert not torch.allclose(acts["layer1.resid_post"], base["layer1.resid_post"])
    with model.edits(AddVector("layer0.resid_post", vector, strength=1.0, positions=[2])):
        acts = _acts(model, batch, "layer0.resid_post")["layer0.resid_post"]
    delta = acts - base["layer0.resid_post"]
    assert torch.allclose(delta[:, 2], vector.expand(3, -1), atol=1e-5)
    assert delta[:, [0, 1, 3]].abs().max() == 0


def test_clamp_dims_and_direction(model, batch):
    with model.edits(Clamp("layer0.mlp_out", dims=[3], value=4.0)):
        acts = _acts(model, batch, "layer0.mlp_out")["layer0.mlp_out"]
    assert acts[..., 3].eq(4.0).all()
    direction = torch.randn(16, generator=torch.Generator().manual_seed(2))
    with model.edits(Clamp("layer0.resid_post", direction=direction, value=-3.0)):
        acts = _acts(model, batch, "layer0.resid_post")["layer0.resid_post"]
    projection = acts @ (direction / direction.norm())
    assert torch.allclose(projection, torch.full_like(projection, -3.0), atol=1e-4)
    with pytest.raises(ValueError, match="exactly one"):
        Clamp("layer0.mlp_out", value=1.0)


def test_patch_copies_source_activations(model):
    source_batch = model.tokenize(["what a day!"])
    target_batch = model.tokenize(["hello there, friend"])
    source = model.capture(source_batch, "layer0.resid_post")["layer0.resid_post"]
    base = _acts(model, target_batch, "layer0.resid_post", "layer1.resid_post")
    with model.edits(Patch("layer0.resid_post", source, positions=[1, 2, 3])):
        acts = _acts(model, target_batch, "layer0.resid_post", "layer1.resid_post")
    assert torch.equal(acts["layer0.resid_post"][:, 1:4], source[:, 1:4])
    assert torch.equal(acts["layer0.resid_post"][:, 4:], base["layer0.resid_post"][:, 4:])
    assert not torch.allclose(acts["layer1.resid_post"][:, 1:4], base["layer1.resid_post"][:, 1:4])
    with model.edits(Patch("layer0.resid_post", source)):  # every position the source covers
        acts = _acts(model, target_batch, "layer0.resid_post")["layer0.resid_post"]
    n = source.shape[1]
    assert torch.equal(acts[:, :n], source)
    assert torch.equal(acts[:, n:], base["layer0.resid_post"][:, n:])


def test_edits_compose_and_nest(model, batch):
    v1 = torch.randn(16, generator=torch.Generator().manual_seed(3))
    v2 = torch.randn(16, generator=torch.Generator().manual_seed(4))
    base = _acts(model, batch, "layer0.resid_post")["layer0.resid_post"]
    with model.edits(AddVector("layer0.resid_post", v1)), model.edits(AddVector("layer0.resid_post", v2, strength=2.0)):
        assert len(model.active_edits) == 2
        acts = _acts(model, batch, "layer0.resid_post")["layer0.resid_post"]
    assert torch.allclose(acts - base, (v1 + 2 * v2).expand_as(base), atol=1e-5)
    # Different sites in one call, applied in forward order: the ablation runs first.
    with model.edits(AddVector("layer0.resid_post", v1), Ablate("layer0.mlp_out")):
        acts = _acts(model, batch, "layer0.resid_pre", "layer0.attn_out", "layer0.resid_post")
    expected = acts["layer0.resid_pre"] + acts["layer0.attn_out"] + v1
    assert torch.allclose(acts["layer0.resid_post"], expected, atol=1e-5)


def test_leaving_the_context_restores_exact_logits(model, batch):
    baseline = model.forward(batch)
    vector = torch.randn(16)
    with model.edits(AddVector("layer0.resid_post", vector, strength=5.0), Ablate("layer1.mlp_out")):
        edited = model.forward(batch)
    assert not torch.allclose(edited, baseline)
    assert model.active_edits == ()
    assert torch.equal(model.forward(batch), baseline)
    with pytest.raises(RuntimeError), model.edits(Ablate("layer0.attn_out")):
        raise RuntimeError("boom")
    assert torch.equal(model.forward(batch), baseline)


def test_both_backends_edit_identically(gpt2_pair, batch):
    vector = torch.randn(16, generator=torch.Generator().manual_seed(5))
    edits = (AddVector("layer0.attn_out", vector, strength=3.0), Clamp("layer1.resid_pre", dims=[0], value=1.0))
    logits = {}
    for backend, model in gpt2_pair.items():
        with model.edits(*edits):
            logits[backend] = model.forward(batch)
    assert (logits["transformer_lens"] - logits["nnsight"]).abs().max() < 1e-5


# ---- generation ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pair_name", ["gpt2_pair", "llama_pair"])
def test_generation_steering_changes_output_and_restores(pair_name, request):
    pair = request.getfixturevalue(pair_name)
    vector = torch.randn(16, generator=torch.Generator().manual_seed(6)) * 10
    outputs = {}
    for backend, model in pair.items():
        baseline = model.generate(["hello", "what a"], max_new_tokens=6)
        with model.edits(AddVector("layer0.resid_post", vector, strength=3.0)):
            steered = model.generate(["hello", "what a"], max_new_tokens=6)
        assert steered != baseline, backend
        assert model.generate(["hello", "what a"], max_new_tokens=6) == baseline, backend
        outputs[backend] = (baseline, steered)
    assert outputs["transformer_lens"] == outputs["nnsight"]


@pytest.mark.parametrize(
    "edit",
    [
        Ablate("layer1.mlp_out"),
        Clamp("layer0.resid_post", dims=[0, 1, 2, 3], value=30.0),
        AddVector("layer1.attn_out", torch.randn(16, generator=torch.Generator().manual_seed(7)) * 8, positions=[6, 7]),
    ],
    ids=["ablate", "clamp", "add-positions"],
)
def test_every_edit_kind_steers_generation(model, edit):
    prompt = ["the cat"]  # 8 tokens with BOS
    baseline = model.generate(prompt, max_new_tokens=8)
    with model.edits(edit):
        edited = model.generate(prompt, max_new_tokens=8)
    assert edited != baseline
    assert model.generate(prompt, max_new_tokens=8) == baseline


@pytest.mark.parametrize("pair_name", ["gpt2_pair", "llama_pair"])
def test_generation_matches_the_plain_hf_model_and_uses_no_deprecated_argument(pair_name, request):
    # Both backends generate through the HF module's own KV-cached loop; the TL bridge rewires that
    # module in place, so its attention must still read the cache (transformers 5.24 renamed the
    # keyword). The reference is an untouched copy of the same weights, with the cache off.
    import warnings

    pair = request.getfixturevalue(pair_name)
    plain = T.tiny_hf_llama() if pair_name == "llama_pair" else T.tiny_hf_gpt2()
    for backend, model in pair.items():
        ids = model.tokenize("what a").input_ids
        with torch.no_grad():
            want = plain.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                  use_cache=False, pad_token_id=model.pad_token_id, eos_token_id=None)
        with warnings.catch_warnings():
            warnings.simplefilter("error", FutureWarning)
            warnings.simplefilter("error", DeprecationWarning)
            got = model.generate_ids([ids[0].tolist()], max_new_tokens=8)[0]
        eos = model.tokenizer.eos_token_id
        expected = want[0, ids.shape[1]:].tolist()
        if eos in expected:
            expected = expected[: expected.index(eos) + 1]
        assert got == expected, backend


def test_positions_follow_cached_generation_steps(gpt2_pair):
    # An edit at a position past the prompt must fire exactly at that generated step.
    model = gpt2_pair["transformer_lens"]
    prompt_len = model.tokenize("what a").input_ids.shape[1]
    baseline = model.generate("what a", max_new_tokens=6)
    vector = torch.randn(16, generator=torch.Generator().manual_seed(8)) * 20
    later = AddVector("layer0.resid_post", vector, positions=[prompt_len + 3])
    with model.edits(later):
        edited = model.generate("what a", max_new_tokens=6)
    assert len(baseline[0]) == 6
    assert edited[0][:4] == baseline[0][:4] and edited != baseline
    other = gpt2_pair["nnsight"]
    with other.edits(later):
        assert other.generate("what a", max_new_tokens=6) == edited


# ---- nnsight remote ----------------------------------------------------------------------------------------


@pytest.fixture
def remote_model():
    model = load_model(T.tiny_hf_gpt2(), "nnsight", tokenizer=T.tiny_tokenizer(), name="tiny")
    yield model
    model.impl.remote = False


def test_remote_without_key_says_how_to_fix(remote_model, batch, monkeypatch):
    monkeypatch.delenv("NDIF_API_KEY", raising=False)
    from nnsight import CONFIG

    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    remote_model.impl.remote = True
    with pytest.raises(InterpkitRemoteError, match="NDIF_API_KEY"):
        remote_model.capture(batch, "layer1.resid_post")


def test_remote_needs_a_hub_model(remote_model, batch, monkeypatch):
    monkeypatch.setenv("NDIF_API_KEY", "test-key")
    remote_model.impl.remote = True
    with pytest.raises(InterpkitRemoteError, match="load it by hub id"):
        remote_model.capture(batch, "layer1.resid_post")


def test_remote_round_trip_matches_local(remote_model, batch):
    # remote="local" serializes the trace exactly as for NDIF, deserializes it and runs it here.
    vector = torch.randn(16)
    local = remote_model.capture(batch, ["layer0.mlp_out", "layer1.resid_post"])
    with remote_model.edits(AddVector("layer0.resid_post", vector)):
        local_logits = remote_model.forward(batch)
        local_text = remote_model.generate("hello", max_new_tokens=5)
    remote_model.impl.remote = "local"
    simulated = remote_model.capture(batch, ["layer0.mlp_out", "layer1.resid_post"])
    for site, value in local.items():
        assert torch.equal(simulated[site], value)
    with remote_model.edits(AddVector("layer0.resid_post", vector)):
        assert torch.equal(remote_model.forward(batch), local_logits)
        assert remote_model.generate("hello", max_new_tokens=5) == local_text


def test_remote_builds_the_same_trace_and_fails_clearly_offline(remote_model, batch, monkeypatch):
    import httpx
    import nnsight.schema.request as request_module
    from nnsight.intervention.backends.remote import RemoteBackend

    sources, requests = [], []
    reduce_block = request_module.reduce_block

    def recording_reduce_block(node, globals_, locals_):
        reduced = reduce_block(node, globals_, locals_)
        sources.append(reduced[0] if isinstance(reduced, tuple) else reduced)
        return reduced

    def offline_request(self, request, tracer):
        requests.append(request)
        self._serialize(tracer)  # build the payload exactly as a real submission would
        raise httpx.ConnectError("network is unreachable (mocked)")

    monkeypatch.setattr(request_module, "reduce_block", recording_reduce_block)
    monkeypatch.setattr(RemoteBackend, "request", offline_request)
    lm = remote_model.impl.lm
    key = 'nnsight.modeling.transformers.TransformersModel:{"repo_id": "tiny/gpt2", "revision": "main"}'
    monkeypatch.setattr(type(lm), "to_model_key", lambda self: key)
    monkeypatch.setenv("NDIF_API_KEY", "test-key")

    remote_model.impl.remote = "local"
    remote_model.capture(batch, "layer1.resid_post")
    remote_model.impl.remote = True
    with pytest.raises(InterpkitRemoteError) as info:
        remote_model.capture(batch, "layer1.resid_post")
    message = str(info.value)
    assert "network is unreachable" in message and "remote=False" in message
    assert requests and requests[0].model_key == key
    assert len(sources) == 2 and sources[0] == sources[1]
    assert "tracer.stop()" in str(sources[0])
