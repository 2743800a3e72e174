"""Direction methods from activation statistics: DiffMean (§5.1), PCA (§5.2), LAT (§5.3), Random (§5.13).

Each fits a unit vector ``w`` from the concept's cached training activations; psi is ``h·w`` with
zero bias, max-pooled per text, and steering adds ``α w``.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, first_pc, register_method, rng_for, split_tokens, unit

__all__ = ["LAT", "PCA", "DiffMean", "RandomDirection"]


@register_method
class DiffMean(Method):
    """DiffMean (§5.1): mean of the positive examples' kept tokens minus the negatives', unit norm.

    Maths: ``w = (μ₊ − μ₋) / ‖μ₊ − μ₋‖`` with ``μ±`` the mean kept-token activation of each class.

    Token-weighted means over every kept (non-prefix) token of the concept's 72 positives and its
    genre-matched negatives; psi ``h·w`` with zero bias; steering adds ``α w``. No hyper-parameters
    (AxBench's batch size only changes memory).
    """

    name, label = "diffmean", "DiffMean"
    order = 1

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        x, y = split_tokens(ctx, cid)
        if y.all() or not y.any():
            raise ValueError(f"DiffMean concept {cid}: the training split needs positive and negative tokens")
        # float64 accumulation: tens of thousands of float32 rows of norm ~100 would lose digits in a float32
        # sum, and the difference of two close means amplifies that error.
        diff = x[y].mean(axis=0, dtype=np.float64) - x[~y].mean(axis=0, dtype=np.float64)
        w = unit(diff)
        return self._fitted(cid, w, steer_vector=w, info={
            "norm_before_unit": float(np.linalg.norm(diff)), "n_pos_tokens": int(y.sum()),
            "n_neg_tokens": int((~y).sum()), "seconds": time.perf_counter() - t0})


@register_method
class PCA(Method):
    """PCA (§5.2): first principal component of the positive examples' kept tokens (centred), unit norm.

    Maths: ``w = argmax_{‖v‖=1} vᵀ Σ₊ v``, the top eigenvector of the positives' token covariance ``Σ₊``.

    AxBench leaves the component's sign arbitrary, which can invert detection; so does the default
    here (``align_sign=False``). ``info["sign_agrees"]`` records whether positives project higher
    than negatives; ``align_sign=True`` flips the component when they do not (uses the negatives).
    """

    name, label = "pca", "PCA"
    order = 2
    defaults: ClassVar[dict[str, Any]] = {"align_sign": False}

    def _direction(self, ctx: Any, cid: int, xp: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        w, ratio = first_pc(xp)
        return w, {"explained_variance_ratio": ratio}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        p = self.params(ctx)
        x, y = split_tokens(ctx, cid)
        if not y.any():
            raise ValueError(f"{self.label} concept {cid}: no positive tokens in the training split")
        w, info = self._direction(ctx, cid, x[y])
        # An eigenvector is only defined up to sign; "agrees" checks it on the class means of the training tokens
        # (equivalent to the sign of the DiffMean direction projected on w).
        agrees = bool(not (~y).any() or float(x[y].mean(0) @ w) >= float(x[~y].mean(0) @ w))
        flipped = bool(p["align_sign"] and not agrees)
        if flipped:
            w = -w
        info.update(sign_agrees=agrees, flipped=flipped, n_pos_tokens=int(y.sum()),
                    seconds=time.perf_counter() - t0)
        return self._fitted(cid, w, steer_vector=w, info=info)


@register_method
class LAT(PCA):
    """LAT (§5.3): first principal component of unit-normed differences of random positive-token pairs.

    Maths: ``w`` = top eigenvector of the covariance of ``δ_i / ‖δ_i‖``, ``δ_i = a_i − b_i`` (random positive pairs).

    The positive examples' kept tokens are shuffled with a generator seeded by (seed, concept),
    split into halves, paired ``δ_i = a_i − b_i``; each δ is unit-normed (zeros stay zero) and the
    δ's first principal component (centred, as sklearn's PCA) is ``w``. No sign fix by default
    (``align_sign`` as for PCA).
    """

    name, label = "lat", "LAT"
    order = 3

    def _direction(self, ctx: Any, cid: int, xp: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        if xp.shape[0] < 4:
            raise ValueError(f"LAT concept {cid}: needs at least 4 positive tokens, got {xp.shape[0]}")
        # Disjoint random pairs (an odd token out is dropped). A difference of two positive tokens cancels what they
        # share (the positive-class mean, hence any common offset) and keeps the axes along which concept tokens vary;
        # unit-norming stops a few large-norm pairs (e.g. outlier tokens) from dominating the PCA.
        perm = rng_for(ctx, cid, 3).permutation(xp.shape[0])
        half = xp.shape[0] // 2
        delta = xp[perm[:half]].astype(np.float64) - xp[perm[half:2 * half]]
        norms = np.linalg.norm(delta, axis=1, keepdims=True)
        delta = np.divide(delta, norms, out=np.zeros_like(delta), where=norms > 0)
        w, ratio = first_pc(delta)
        return w, {"explained_variance_ratio": ratio, "n_pairs": int(half)}


@register_method
class RandomDirection(Method):
    """Random (§5.13): a unit vector drawn from a generator seeded by (seed, concept); bias 0.

    Maths: ``w = g / ‖g‖`` with ``g ~ N(0, I_d)``.

    AxBench's random ``nn.Linear`` keeps its random bias; a zero bias changes no AUROC.
    """

    name, label = "random", "Random"
    order = 13

    def fit(self, ctx: Any, cid: int) -> Fitted:
        d = int(ctx.train_acts.values.shape[1])
        # An isotropic Gaussian normalised to unit length is uniform on the sphere (no preferred direction).
        w = unit(rng_for(ctx, cid, 13).standard_normal(d))
        return self._fitted(cid, w, steer_vector=w, info={"seed": [int(getattr(ctx, "seed", 42)), int(cid)]})

