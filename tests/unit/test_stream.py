"""Streaming activations: pooling vs manual computation, padding invariance, masking, spilling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit.sources._stream import ActivationSet, stream_activations  # noqa: E402

WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "is",
    "red",
    "blue",
    "big",
    "small",
    "and",
    "or",
    "of",
    "to",
    "in",
    "user",
    "assistant",
    ":",
    ".",
]
SITE = "layer1.resid_post"
TEXTS = [
    "the cat sat on the mat",
    "a dog",
    "red",
    "the big blue dog sat on a small red mat and the cat is in the mat",
    "",
    "cat or dog",
    "of to in the",
    "blue blue blue",
    "a cat is a cat",
]


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<unk>": 2}
    for word in WORDS:
        vocab[word] = len(vocab)
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", pad_token="<pad>", unk_token="<unk>"
    )
    tok.chat_template = (
        "{{ bos_token }}{% for m in messages %}user : {{ m['content'] }} .{% endfor %}"
        "{% if add_generation_prompt %} assistant :{% endif %}"
    )
    return tok


def tiny_wrapper(seed: int = 0, name: str = "tiny-gpt2"):
    from transformers import GPT2Config, GPT2LMHeadModel

    from interpkit.models import load_model

    torch.manual_seed(seed)
    cfg = GPT2Config(
        n_layer=2,
        n_embd=16,
        n_head=2,
        vocab_size=64,
        n_positions=64,
        bos_token_id=1,
        eos_token_id=1,
        pad_token_id=0,
    )
    return load_model(GPT2LMHeadModel(cfg), backend="nnsight", tokenizer=tiny_tokenizer(), name=name)


@pytest.fixture(scope="module")
def model():
    return tiny_wrapper()


def manual(model, text, *, exclude_bos=True):
    """Per-token activations of one unpadded text, the reference for every pooling."""
    batch = model.tokenize([text], max_length=128)
    acts = model.capture(batch, SITE)[SITE][0].float()
    if exclude_bos:
        acts = acts[1:]
    return acts.numpy()


def test_pooling_matches_manual_and_padding_is_inert(model):
    with pytest.warns(UserWarning, match="no position left"):
        res1 = stream_activations(model, TEXTS, SITE, batch_size=1, progress=False)
    with pytest.warns(UserWarning, match="no position left"):
        res4 = stream_activations(model, TEXTS, SITE, batch_size=4, progress=False)
    for pooling in ("max", "mean", "last"):
        a, b = res1[SITE, pooling].to_numpy(), res4[SITE, pooling].to_numpy()
        assert a.shape == (len(TEXTS), 16)
        np.testing.assert_allclose(a, b, atol=1e-5)
    for i, text in enumerate(TEXTS):
        ref = manual(model, text)
        if len(ref) == 0:  # the empty text keeps nothing once BOS is out: zeros, with a warning
            for pooling in ("max", "mean", "last"):
                assert not res4[SITE, pooling].to_numpy()[i].any()
            continue
        np.testing.assert_allclose(res4[SITE, "max"].to_numpy()[i], ref.max(0), atol=1e-5)
        np.testing.assert_allclose(res4[SITE, "mean"].to_numpy()[i], ref.mean(0), atol=1e-5)
        np.testing.assert_allclose(res4[SITE, "last"].to_numpy()[i], ref[-1], atol=1e-5)
    assert res4.n_empty == 1


def test_bos_kept_when_not_excluded(model):
    res = stream_activations(model, TEXTS[:3], SITE, pooling="mean", exclude_positions=(), progress=False)
    for i, text in enumerate(TEXTS[:3]):
        ref = manual(model, text, exclude_bos=False)
        np.testing.assert_allclose(res[SITE, "mean"].to_numpy()[i], ref.mean(0), atol=1e-5)
    with_bos = res[SITE, "mean"].to_numpy()
    without = stream_activations(model, TEXTS[:3], SITE, pooling="mean", progress=False)[
        SITE, "mean"
    ].to_numpy()
    assert not np.allclose(with_bos, without)


def test_token_mode_rows(model):
    res = stream_activations(model, TEXTS[:2], SITE, pooling="tokens", batch_size=2, progress=False)
    chunk = res[SITE, "tokens"].to_chunk()
    assert chunk.tokens == ("the", "cat", "sat", "on", "the", "mat", "a", "dog")
    assert chunk.example_idx.tolist() == [0] * 6 + [1] * 2
    assert chunk.token_index.tolist() == [1, 2, 3, 4, 5, 6, 1, 2]
    np.testing.assert_allclose(chunk.values[:6], manual(model, TEXTS[0]), atol=1e-5)


def test_keep_argmax_points_at_the_maximum(model):
    res = stream_activations(model, TEXTS[:4], SITE, pooling="max", keep_argmax=True, progress=False)
    chunk = res[SITE, "max"].to_chunk()
    for i, text in enumerate(TEXTS[:4]):
        ref = manual(model, text, exclude_bos=False)
        np.testing.assert_array_equal(chunk.argmax[i], ref[1:].argmax(0) + 1)


def test_projection_pools_after_projecting(model):
    rng = np.random.default_rng(0)
    proj = rng.normal(size=(16, 3)).astype(np.float32)
    res = stream_activations(
        model, TEXTS[:4], SITE, pooling=("max", "mean"), projections={SITE: proj}, progress=False
    )
    for i, text in enumerate(TEXTS[:4]):
        ref = manual(model, text) @ proj
        np.testing.assert_allclose(res[SITE, "max"].to_numpy()[i], ref.max(0), atol=1e-4)
        np.testing.assert_allclose(res[SITE, "mean"].to_numpy()[i], ref.mean(0), atol=1e-4)


def test_chat_template_positions_excluded(model):
    res = stream_activations(
        model,
        ["the cat", "a dog sat"],
        SITE,
        pooling="tokens",
        chat_template=True,
        exclude_positions=("bos", "chat_template"),
        progress=False,
    )
    chunk = res[SITE, "tokens"].to_chunk()
    assert chunk.tokens == ("the", "cat", "a", "dog", "sat")
    kept_all = stream_activations(
        model, ["the cat"], SITE, pooling="tokens", chat_template=True, exclude_positions=(), progress=False
    )[SITE, "tokens"].to_chunk()
    assert kept_all.tokens == ("<bos>", "user", ":", "the", "cat", ".", "assistant", ":")


def test_stop_at_deepest_and_multiple_sites(model):
    calls = []
    real = model.capture

    def spy(batch, sites, *, stop_at_deepest=True):
        calls.append((tuple(sites), stop_at_deepest))
        return real(batch, sites, stop_at_deepest=stop_at_deepest)

    model.capture = spy
    try:
        res = stream_activations(model, TEXTS[:3], ["layer0.mlp_out", SITE], pooling="last", progress=False)
    finally:
        del model.capture
    assert set(res.sets) == {("layer0.mlp_out", "last"), (SITE, "last")}
    assert all(flag for _, flag in calls) and calls[0][0] == ("layer0.mlp_out", SITE)


def test_spill_bounded_memory_and_identical_results(model, tmp_path):
    texts = [TEXTS[i % len(TEXTS)] + " cat" for i in range(130)]
    in_memory = stream_activations(
        model, texts, SITE, pooling=("max", "tokens"), batch_size=4, progress=False
    )
    row_bytes = 16 * 4 + 8
    budget_mb = 40 * row_bytes / 2**20  # far fewer rows than the dataset holds
    spilled = stream_activations(
        model,
        texts,
        SITE,
        pooling=("max", "tokens"),
        batch_size=4,
        progress=False,
        memory_budget_mb=budget_mb,
        spill_dir=tmp_path,
    )
    for pooling in ("max", "tokens"):
        s = spilled[SITE, pooling]
        assert len(s.shards) >= 2 and all(p.parent == tmp_path and p.exists() for p in s.shards)
        a, b = in_memory[SITE, pooling].to_chunk(), s.to_chunk()
        np.testing.assert_array_equal(a.values, b.values)
        np.testing.assert_array_equal(a.example_idx, b.example_idx)
        assert a.tokens == b.tokens
    assert in_memory[SITE, "max"].shards == ()
    # peak: the budget plus at most one window (64 texts) of results, far below holding everything
    total = sum(in_memory[SITE, p].bytes_in_memory for p in ("max", "tokens"))
    window = sum(max(c.nbytes for c in in_memory[SITE, p].iter_chunks()) for p in ("max", "tokens"))
    assert spilled.peak_bytes <= budget_mb * 2**20 + window < total
    assert sum(spilled[SITE, p].bytes_in_memory for p in ("max", "tokens")) <= budget_mb * 2**20 + window
    assert [len(c) for c in spilled[SITE, "max"].iter_chunks()] and spilled[SITE, "max"].n_rows == 130


def test_generator_input_and_row_objects(model):
    from interpkit.sources._datasets import PromptRow

    rows = (PromptRow(prompt_id=i, text=t) for i, t in enumerate(TEXTS[:3]))
    res = stream_activations(model, rows, SITE, pooling="mean", progress=False)
    assert res.n_examples == 3 and res[SITE, "mean"].to_numpy().shape == (3, 16)


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="pooling"):
        stream_activations(model, TEXTS, SITE, pooling="median", progress=False)
    with pytest.raises(ValueError, match="exclude_positions"):
        stream_activations(model, TEXTS, SITE, exclude_positions=("eos",), progress=False)
    with pytest.raises(ValueError, match="unknown site"):
        stream_activations(model, TEXTS, "layer9.resid_post", progress=False)


def test_to_numpy_refuses_oversized(model):
    res = stream_activations(model, TEXTS[:4], SITE, pooling="mean", progress=False)
    with pytest.raises(MemoryError, match="iter_chunks"):
        res[SITE, "mean"].to_numpy(max_bytes=10)
    assert isinstance(res[SITE, "mean"], ActivationSet)


def test_progress_bar_has_description(model, capsys):
    stream_activations(model, TEXTS[:2], SITE, pooling="mean", progress=True)
    assert "activations @ layer1.resid_post" in capsys.readouterr().err


def test_spill_without_spill_dir_uses_a_temporary_folder(model):
    import gc

    res = stream_activations(
        model, TEXTS[:3] * 30, SITE, pooling="mean", progress=False, memory_budget_mb=1e-4
    )
    shards = res[SITE, "mean"].shards
    assert shards and all(p.exists() for p in shards)
    folder = shards[0].parent
    del res, shards
    gc.collect()
    assert not folder.exists()


def test_massive_exclusion_drops_attention_sink_positions(model):
    from interpkit.models import Apply

    texts = ["hello there friend", "good night moon"]
    site = "layer1.resid_post"
    sink = Apply(site, lambda x: x * 1000.0, positions=(1,), name="sink")
    with model.edits(sink):
        plain = stream_activations(model, texts, site, pooling=("max", "tokens"), progress=False)
        masked = stream_activations(model, texts, site, pooling=("max", "tokens"),
                                    exclude_positions=("bos", "massive"), progress=False)
    tok_plain, tok_masked = plain[site, "tokens"].to_chunk(), masked[site, "tokens"].to_chunk()
    assert 1 in set(tok_plain.token_index.tolist()) and 1 not in set(tok_masked.token_index.tolist())
    assert len(tok_masked.token_index) == len(tok_plain.token_index) - len(texts)
    # the masked max is the max over the remaining tokens, far below the sink's value
    kept = tok_plain.token_index != 1
    for e in range(len(texts)):
        rows = (tok_plain.example_idx == e) & kept
        np.testing.assert_allclose(masked[site, "max"].to_numpy()[e], tok_plain.values[rows].max(axis=0), rtol=1e-5)
    assert masked[site, "max"].to_numpy().max() < plain[site, "max"].to_numpy().max() / 10
