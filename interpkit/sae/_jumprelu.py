"""JumpReLU SAE (Rajamanoharan et al. 2024; Gemma Scope): ``f_i = pre_i · H(pre_i - θ_i)``.

The threshold ``θ`` (``threshold [d_sae]``, stored under that name as SAELens does) learns through
straight-through estimators with a rectangle kernel of width ``jumprelu_bandwidth``; the penalty is
``sparsity_coefficient × L0``.
"""

from __future__ import annotations

import torch

from ._base import SAE, SAEConfig, register_architecture


# Rectangle kernel K(u) = 1{|u| < 1/2}: the straight-through pseudo-derivatives below smear the jump at
# pre = theta over a window of width bandwidth (Rajamanoharan et al. 2024, as in SAELens).
def _rect(x: torch.Tensor) -> torch.Tensor:
    return ((x > -0.5) & (x < 0.5)).to(x.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):  # noqa: ANN001
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        # d/dpre of pre * H(pre - theta) away from the jump; d/dtheta is the pseudo-derivative
        # -(theta / eps) K((pre - theta) / eps), summed over rows since theta is per latent.
        grad_pre = grad * (pre > threshold).to(pre.dtype)
        grad_t = -(threshold / bw) * _rect((pre - threshold) / bw) * grad
        return grad_pre, grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):  # noqa: ANN001
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        pre, threshold = ctx.saved_tensors
        bw = ctx.bandwidth
        # For the L0 term H(pre - theta): pseudo-derivative -(1/eps) K(...) w.r.t. theta only; the true derivative
        # w.r.t. pre (0 almost everywhere) is kept, so the L0 penalty trains the thresholds, not the encoder.
        grad_t = -(1.0 / bw) * _rect((pre - threshold) / bw) * grad
        return torch.zeros_like(pre), grad_t.reshape(-1, threshold.shape[-1]).sum(0), None


@register_architecture("jumprelu")
class JumpReLUSAE(SAE):
    extra_parameters = {"threshold": "d_sae"}

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__(cfg)
        self.threshold = torch.nn.Parameter(torch.zeros(cfg.d_sae, dtype=self.W_enc.dtype))

    @classmethod
    def check_config(cls, cfg: SAEConfig) -> None:
        if cfg.jumprelu_bandwidth <= 0:
            raise ValueError(f"jumprelu_bandwidth must be > 0, got {cfg.jumprelu_bandwidth}")
        if cfg.sparsity_coefficient < 0:
            raise ValueError(f"sparsity_coefficient must be >= 0, got {cfg.sparsity_coefficient}")

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        super().reset_parameters(generator)
        with torch.no_grad():
            self.threshold.fill_(self.cfg.jumprelu_init_threshold)

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            # relu first is harmless because theta > 0 (after_step clamps it), and matches the inference branch.
            return _JumpReLU.apply(torch.relu(pre), self.threshold, self.cfg.jumprelu_bandwidth)
        return torch.relu(pre) * (pre > self.threshold).to(pre.dtype)

    def sparsity_loss(self, pre: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        if self.cfg.sparsity_coefficient == 0:
            return pre.new_zeros(())
        l0 = _Step.apply(pre, self.threshold, self.cfg.jumprelu_bandwidth).sum(-1).mean()
        return self.cfg.sparsity_coefficient * l0

    def after_step(self) -> None:
        super().after_step()
        with torch.no_grad():
            # A threshold <= 0 would make the latent an ordinary ReLU and break the pseudo-gradient's theta factor.
            self.threshold.clamp_(min=1e-6)

    def _rescale_extra(self, norms: torch.Tensor) -> None:
        # theta is in code units: when normalize_decoder scales a latent's pre-activation by n_i, its threshold
        # scales with it so the latent fires on exactly the same inputs.
        self.threshold.mul_(norms)
