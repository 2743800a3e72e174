"""The linear probe (§5.4): token-level logistic regression on cached activations."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, register_method, unit

__all__ = ["LinearProbe"]


@register_method
class LinearProbe(Method):
    """Linear probe (§5.4): token-level logistic regression on cached activations.

    ``p_t = σ(h_t·w)`` (no bias in the logit, as AxBench's ``LinearProbe``) with binary cross-entropy
    against the example's label on every kept token, plus ``l1 · ‖w‖₁``; AdamW with a linear decay
    of the learning rate to 0; each step unit-normalises ``w`` and removes the gradient's component
    along it before the update; ``w`` is unit-normed at the end. Defaults are AxBench's 2B settings
    (batch 12 examples, 24 epochs, lr 5e-3, weight decay 1e-3, L1 0): training runs on the cached
    activations, so the full schedule is cheap on a CPU. Divergence: tokens are the kept
    (non-prefix) positions the detection scores, where AxBench's probe trains from position 1.
    """

    name, label = "probe", "Probe"
    order = 4
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 24, "batch_size": 12, "lr": 5e-3, "weight_decay": 1e-3, "l1": 0.0, "bias": False,
        "temperature": False, "standardize": False,
    }
    positive = ("epochs", "batch_size", "lr")

    def fit(self, ctx: Any, cid: int) -> Fitted:
        import torch

        t0 = time.perf_counter()
        p = self.params(ctx)
        idx, labels = ctx.train_split(cid)
        idx, labels = np.asarray(idx, dtype=np.int64), np.asarray(labels, dtype=bool)
        if labels.all() or not labels.any():
            raise ValueError(f"Probe concept {cid}: the training split needs positives and negatives")
        x_all, owner = ctx.train_acts.gather(idx)
        x_all = torch.from_numpy(np.ascontiguousarray(x_all))
        if p["standardize"]:
            x_all = x_all / x_all.norm(dim=1).mean().clamp_min(1e-12)
        y_tok = torch.from_numpy(labels[owner].astype(np.float32))
        # gather returns the texts' rows contiguously in idx order, so text e owns rows starts[e]:starts[e + 1];
        # batches are drawn over texts (AxBench batches examples), then expanded to their tokens.
        starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(idx)))]
        d = x_all.shape[1]
        gen = torch.Generator().manual_seed(int(getattr(ctx, "seed", 42)) * 1000 + int(cid))
        # U(-1/sqrt(d), 1/sqrt(d)): torch.nn.Linear's default initialisation for a [d -> 1] layer.
        bound = 1.0 / np.sqrt(d)
        w = torch.nn.Parameter((torch.rand(d, generator=gen) * 2 - 1) * bound)
        b = torch.nn.Parameter(torch.zeros(()), requires_grad=bool(p["bias"]))
        log_t = torch.nn.Parameter(torch.zeros(()))
        params = [w] + ([b] if p["bias"] else []) + ([log_t] if p["temperature"] else [])
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        n_batches = -(-len(idx) // p["batch_size"])
        total = p["epochs"] * n_batches
        # Linear decay to 0 over all steps, no warm-up (AxBench's schedule for every trained method).
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
        losses = []
        for _ in range(p["epochs"]):
            order = torch.randperm(len(idx), generator=gen).numpy()
            epoch_loss = 0.0
            for bstart in range(0, len(idx), p["batch_size"]):
                ex = order[bstart:bstart + p["batch_size"]]
                rows = np.concatenate([np.arange(starts[e], starts[e + 1]) for e in ex])
                if rows.size == 0:
                    continue
                rows_t = torch.from_numpy(rows)
                logits = x_all[rows_t] @ w
                if p["temperature"]:
                    logits = logits * log_t.exp()
                if p["bias"]:
                    logits = logits + b
                # binary cross-entropy with logits, written out (the fused op is slow on small CPU batches)
                # -[y log σ(z) + (1 - y) log(1 - σ(z))] = softplus(z) - y z, stable for large |z|.
                # The mean is over tokens, so long texts weigh more (token-level logistic regression, as AxBench).
                loss = (torch.nn.functional.softplus(logits) - y_tok[rows_t] * logits).mean()
                if p["l1"]:
                    loss = loss + p["l1"] * w.abs().sum()
                opt.zero_grad()
                loss.backward()
                with torch.no_grad():
                    # Sphere-constrained step (AxBench, after Gao et al. 2024): put w back on the unit sphere,
                    # then drop the gradient's radial part, g - (g·w) w, so the step mostly rotates w (Adam's
                    # per-coordinate scaling and weight decay make it only approximately tangent).
                    w.div_(w.norm().clamp_min(1e-12))
                    w.grad.sub_((w.grad @ w) * w)
                opt.step()
                sched.step()
                epoch_loss += float(loss.detach()) * len(ex)
            losses.append(epoch_loss / len(idx))
        vec = unit(w.detach().numpy())
        return self._fitted(cid, vec, steer_vector=vec, bias=float(b.detach()) if p["bias"] else 0.0,
                            info={"loss_per_epoch": [round(v, 6) for v in losses], "steps": total,
                                  "n_tokens": int(len(owner)), "seconds": time.perf_counter() - t0})
