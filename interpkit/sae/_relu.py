"""ReLU SAE with an L1 penalty (Bricken et al. 2023; SAELens "standard")."""

from __future__ import annotations

import torch

from ._base import SAE, SAEConfig, register_architecture


@register_architecture("relu")
class ReLUSAE(SAE):
    """``f = relu(pre)``; the penalty is ``sparsity_coefficient × mean_rows Σ_i |f_i| ‖W_dec[i]‖``."""

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        if cfg.sparsity_coefficient < 0:
            raise ValueError(f"sparsity_coefficient must be >= 0, got {cfg.sparsity_coefficient}")

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre)

    def sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        # L1 weighted by decoder norms (Anthropic's April 2024 update; SAELens's scaled penalty) cannot be
        # lowered by shrinking codes and growing W_dec rows. With the unit-norm rows enforced here the weights
        # stay ~1 (so in practice a plain L1); the weighting keeps it correct if unit_norm_decoder is off.
        weighted = codes.abs() * self.W_dec.norm(dim=-1)
        return self.cfg.sparsity_coefficient * weighted.sum(-1).mean()
