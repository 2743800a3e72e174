"""Sparse autoencoders: architectures, training, metrics, formats, latents as features, crosscoders.

Architectures register by name (`ARCHITECTURES`): ``topk``, ``batchtopk``, ``relu`` (L1) and
``jumprelu``. Every SAE stores ``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec [d_sae, d_in]``,
``b_dec`` (plus ``threshold`` for JumpReLU / BatchTopK).

Example:
    >>> import torch
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="relu", d_in=4, d_sae=8), seed=0)
    >>> sae.reconstruct(torch.zeros(2, 4)).shape
    torch.Size([2, 4])
"""

from __future__ import annotations

from . import _batchtopk, _jumprelu, _relu, _topk  # noqa: F401  (register the architectures)
from ._base import ARCHITECTURES, NORMALIZATIONS, SAE, SAEConfig, make_sae, register_architecture

__all__ = [
    "ARCHITECTURES",
    "NORMALIZATIONS",
    "SAE",
    "SAEConfig",
    "make_sae",
    "register_architecture",
]
