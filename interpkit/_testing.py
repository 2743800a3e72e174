"""Tiny config-built models for tests and doctests (no hub, no downloads, seconds on CPU).

``tiny_tokenizer()`` is a character-level tokenizer (36 ids: pad, bos, eos, unk, a-z, space and
``.,!?'``); ``tiny_hf_gpt2()`` and ``tiny_hf_llama()`` are seeded random HF causal LMs over it;
``tiny_bridge()`` wraps a fresh copy in a TransformerBridge, ``tiny_nnsight()`` in nnsight;
``tiny_model(backend)`` returns a ready :class:`~interpkit.models.ModelWrapper`.

Example:
    >>> tiny_hf_gpt2().config.n_layer
    2
"""

from __future__ import annotations

import string
from typing import Any

VOCAB_SIZE = 50
D_MODEL = 16
_CHARS = string.ascii_lowercase + " .,!?'"


def tiny_tokenizer() -> Any:
    """A character-level ``PreTrainedTokenizerFast`` (pad=0, bos=1, eos=2, unk=3)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3}
    for char in _CHARS:
        vocab[char] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )


def _ids() -> dict[str, Any]:
    # A wide init makes the random models' greedy choices sensitive to edits, as a trained model's are.
    return {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0, "initializer_range": 0.3}


def tiny_hf_gpt2(seed: int = 0) -> Any:
    """``GPT2LMHeadModel`` with 2 layers, ``n_embd`` 16, 4 heads, vocab 50 (seeded, eval mode)."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=D_MODEL, n_head=4, vocab_size=VOCAB_SIZE, n_positions=64, **_ids())
    return GPT2LMHeadModel(config).eval()


def tiny_hf_llama(seed: int = 0) -> Any:
    """``LlamaForCausalLM`` with 2 layers, hidden 16, 4 heads (2 KV heads), vocab 50."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        num_hidden_layers=2,
        hidden_size=D_MODEL,
        intermediate_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=VOCAB_SIZE,
        max_position_embeddings=64,
        **_ids(),
    )
    return LlamaForCausalLM(config).eval()


def tiny_bridge(hf_model: Any = None) -> Any:
    """A ``TransformerBridge`` around a tiny HF model (default: ``tiny_hf_gpt2()``).

    The bridge rewires the module it wraps, so pass a model nothing else uses.
    """
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    model = hf_model if hf_model is not None else tiny_hf_gpt2()
    arch = (model.config.architectures or [type(model).__name__])[0]
    bridge = build_bridge_from_module(model, arch, hf_config=model.config)
    return bridge.eval()


def tiny_native_bridge(seed: int = 0) -> Any:
    """A TL-native ``TransformerBridge.boot_native`` model (d_model 16, 2 layers, vocab 50)."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    config = TransformerBridgeConfig(
        d_model=D_MODEL, d_head=4, n_layers=2, n_ctx=64, d_vocab=VOCAB_SIZE, seed=seed, act_fn="gelu"
    )
    return TransformerBridge.boot_native(config)


def tiny_nnsight(hf_model: Any = None) -> Any:
    """An nnsight ``TransformersModel`` around a tiny HF model (default: ``tiny_hf_gpt2()``)."""
    import warnings

    from nnsight import TransformersModel

    model = hf_model if hf_model is not None else tiny_hf_gpt2()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return TransformersModel(model, tokenizer=tiny_tokenizer())


def tiny_model(backend: str = "nnsight", arch: str = "gpt2", seed: int = 0) -> Any:
    """A :class:`~interpkit.models.ModelWrapper` over a tiny seeded model."""
    from interpkit.models import load_model

    hf = tiny_hf_gpt2(seed) if arch == "gpt2" else tiny_hf_llama(seed)
    return load_model(hf, backend, tokenizer=tiny_tokenizer(), name=f"tiny-{arch}")


