"""TopK SAE (Gao et al. 2024): keep the ``k`` largest ReLU pre-activations of each row."""

from __future__ import annotations

import torch

from ._base import SAE, SAEConfig, register_architecture


def topk_codes(pre: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the ``k`` largest entries of ``relu(pre)`` along the last axis."""
    acts = torch.relu(pre)
    k = min(int(k), acts.shape[-1])
    vals, idx = acts.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(acts).scatter(-1, idx, vals)


@register_architecture("topk")
class TopKSAE(SAE):
    """Exactly ``k`` (or fewer, when pre-activations are negative) active latents per row.

    Sparsity is structural, so there is no penalty; AuxK keeps dead latents learning.
    """

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        if cfg.k is None or cfg.k < 1 or cfg.k > cfg.d_sae:
            raise ValueError(f"a topk SAE needs 1 <= k <= d_sae ({cfg.d_sae}), got k={cfg.k!r}")

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        return topk_codes(pre, self.cfg.k)

    def _sparse_activate(self, pre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # topk of the raw pre-activations, then relu of the k values: the same codes as
        # topk(relu(pre)) without a full [n, d_sae] relu pass
        vals, idx = pre.reshape(-1, pre.shape[-1]).topk(min(int(self.cfg.k), pre.shape[-1]), dim=-1, sorted=False)
        return torch.relu(vals), idx
