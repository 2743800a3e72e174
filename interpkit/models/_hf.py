"""Where the canonical sites live inside a plain HuggingFace ``nn.Module``.

Used by the nnsight backend (nnsight wraps the HF module tree unchanged) and by the torch-hook
helpers. The block list is the ``ModuleList`` with ``num_hidden_layers`` children; inside a block
the attention and MLP children are found by their usual names. Encoder models with post-LN blocks
(BERT family) expose only ``resid_pre``/``resid_post``, because their attention and MLP modules
already add the residual.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._sites import SITE_KINDS

if TYPE_CHECKING:
    import torch
    from torch import nn

_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")
_POST_LN_TYPES = {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "camembert", "mpnet"}
_FINAL_NORMS = (
    "model.norm",
    "transformer.ln_f",
    "gpt_neox.final_layer_norm",
    "model.final_layernorm",
    "model.decoder.final_layer_norm",
    "norm",
    "ln_f",
)


def _config(model: nn.Module):
    return getattr(model, "config", None)


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Path and module of the transformer block list.

    Raises:
        ValueError: no ``ModuleList`` looks like the block stack.
    """
    from torch import nn

    n_layers = getattr(_config(model), "num_hidden_layers", None)
    candidates = [
        (path, module)
        for path, module in model.named_modules()
        if isinstance(module, nn.ModuleList) and len(module) > 0
    ]
    exact = [c for c in candidates if n_layers is not None and len(c[1]) == n_layers]
    pool = exact or candidates
    if not pool:
        raise ValueError(f"cannot find the block list of {type(model).__name__}")
    return max(pool, key=lambda c: (len(c[1]), -c[0].count(".")))


def hf_dims(model: nn.Module) -> tuple[int, int]:
    """``(n_layers, d_model)`` from the config (falls back to the module tree)."""
    cfg = _config(model)
    _, blocks = find_blocks(model)
    d_model = None
    for attr in ("hidden_size", "n_embd", "d_model", "dim"):
        d_model = getattr(cfg, attr, None)
        if d_model is not None:
            break
    if d_model is None:
        d_model = model.get_input_embeddings().embedding_dim
    return len(blocks), int(d_model)


def hf_site_map(model: nn.Module) -> dict[str, tuple[str, str]]:
    """Canonical site -> ``(module path, "input" | "output")``."""
    path, blocks = find_blocks(model)
    post_ln = getattr(_config(model), "model_type", "") in _POST_LN_TYPES
    sites: dict[str, tuple[str, str]] = {}
    for layer, block in enumerate(blocks):
        base = f"{path}.{layer}" if path else str(layer)
        attn = next((n for n in _ATTN_NAMES if hasattr(block, n)), None)
        mlp = next((n for n in _MLP_NAMES if hasattr(block, n)), None)
        found = {
            "resid_pre": (base, "input"),
            "attn_out": None if post_ln or attn is None else (f"{base}.{attn}", "output"),
            # the MLP module's input: the post-norm residual (norm weight included) it reads
            "mlp_in": None if post_ln or mlp is None else (f"{base}.{mlp}", "input"),
            "mlp_out": None if post_ln or mlp is None else (f"{base}.{mlp}", "output"),
            "resid_post": (base, "output"),
        }
        for kind in SITE_KINDS:
            if found[kind] is not None:
                sites[f"layer{layer}.{kind}"] = found[kind]
    return sites


def hf_unembed(model: nn.Module) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(W_U [d_model, vocab], final_norm)`` of a causal LM.

    Raises:
        ValueError: the model has no output embedding (an encoder).
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        raise ValueError(f"{type(model).__name__} has no unembedding (not a language-model head)")
    modules = dict(model.named_modules())
    norm = next((modules[p] for p in _FINAL_NORMS if p in modules), None)
    if norm is None:
        import torch

        norm = torch.nn.Identity()
    return head.weight.T, norm
