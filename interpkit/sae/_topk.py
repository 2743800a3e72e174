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

    def _sparse_encode(self, xs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = xs.reshape(-1, xs.shape[-1])
        return _TopKEncode.apply(flat, self.W_enc, self.encoder_bias(), min(int(self.cfg.k), self.cfg.d_sae))


class _TopKEncode(torch.autograd.Function):
    """``relu(topk(x W + c))`` with a sparse backward.

    Forward does the one dense product it must (every pre-activation is needed to choose the top
    k). The gradient reaches only the ``k`` chosen entries per row, so ``dL/dW = x^T G`` is a
    sparse-dense product with ``n·k`` non-zeros instead of a dense ``[d, n] x [n, d_sae]`` one.
    """

    @staticmethod
    def forward(ctx, x, w, c, k):  # noqa: ANN001
        with torch.no_grad():
            # ReLU after the top-k selection equals top-k of the ReLU (ReLU is monotone); only the k kept values
            # and their indices are saved, never the dense [n, d_sae] pre-activations.
            vals, idx = (x @ w + c).topk(k, dim=-1, sorted=False)
            out = torch.relu(vals)
        ctx.save_for_backward(x, w, idx, vals > 0)
        ctx.mark_non_differentiable(idx)
        return out, idx

    @staticmethod
    def backward(ctx, grad_out, _grad_idx):  # noqa: ANN001
        x, w, idx, positive = ctx.saved_tensors
        # G [n, d_sae] is non-zero only at the kept, positive entries (ReLU derivative), stored as n·k values.
        g = (grad_out * positive).reshape(-1)
        n, k = idx.shape
        rows = torch.arange(n, device=idx.device).repeat_interleave(k)
        cols = idx.reshape(-1)
        grad_x = grad_w = grad_c = None
        if ctx.needs_input_grad[1]:
            g_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), g, (w.shape[1], n), check_invariants=False)
            # dL/dW [d_in, d_sae] = x^T G, computed as (G^T x)^T with G^T sparse [d_sae, n].
            grad_w = torch.sparse.mm(g_t, x).t()
        if ctx.needs_input_grad[2]:
            grad_c = torch.zeros(w.shape[1], dtype=g.dtype, device=g.device).index_add_(0, cols, g)
        if ctx.needs_input_grad[0]:
            g_s = torch.sparse_coo_tensor(torch.stack([rows, cols]), g, (n, w.shape[1]), check_invariants=False)
            grad_x = torch.sparse.mm(g_s, w.t())
        return grad_x, grad_w, grad_c, None
