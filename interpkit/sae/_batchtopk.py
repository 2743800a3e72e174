"""BatchTopK SAE (Bussmann et al. 2024): keep the ``k × batch`` largest activations of a batch.

In training, rows share one budget of ``k`` active latents on average. For inference the module
uses a single threshold (``threshold``, a scalar tensor, saved with the weights): the running mean
of the smallest kept activation of each training batch, so a row's code no longer depends on the
rest of its batch. Until a threshold is learned (it is -1), inference falls back to per-row top-k.
Decoder renormalisation leaves the threshold alone: one scalar cannot follow a per-latent rescale,
and the norms stay within a hair of 1 after every step.
"""

from __future__ import annotations

import torch

from ._base import SAE, SAEConfig, register_architecture
from ._topk import topk_codes


@register_architecture("batchtopk")
class BatchTopKSAE(SAE):
    extra_parameters = {"threshold": "scalar"}

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.register_buffer("threshold", torch.tensor(-1.0, dtype=self.W_enc.dtype))
        self.threshold_momentum = 0.01

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        if cfg.k is None or cfg.k < 1 or cfg.k > cfg.d_sae:
            raise ValueError(f"a batchtopk SAE needs 1 <= k <= d_sae ({cfg.d_sae}), got k={cfg.k!r}")

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        acts = torch.relu(pre)
        if self.training:
            flat = acts.reshape(-1)
            # One budget of k * n_rows activations for the whole batch (Bussmann et al. 2024): rows with more going on
            # get more latents, the average L0 is still k.
            n_keep = min(int(self.cfg.k) * max(acts.reshape(-1, acts.shape[-1]).shape[0], 1), flat.numel())
            vals, idx = flat.topk(n_keep, sorted=False)
            codes = torch.zeros_like(flat).scatter(-1, idx, vals).reshape(acts.shape)
            with torch.no_grad():
                # Inference threshold = the smallest kept positive activation, averaged over batches (an EMA with
                # momentum 0.01; the first batch initialises it): thresholding at it keeps ~k latents per row on average
                # without needing the batch.
                positive = vals[vals > 0]
                if positive.numel():
                    low = positive.min().to(self.threshold.dtype)
                    if float(self.threshold) < 0:
                        self.threshold.copy_(low)
                    else:
                        self.threshold.lerp_(low, self.threshold_momentum)
            return codes
        if float(self.threshold) < 0:
            return topk_codes(pre, self.cfg.k)
        return acts * (acts > self.threshold)
