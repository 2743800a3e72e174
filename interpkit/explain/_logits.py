"""`LogitEffects`: which output tokens a feature's write direction promotes and suppresses.

The direction is ``table.decoder_vectors[fid]`` (directions, SAE decoder rows), or the basis
vector ``e_i`` of a neuron ``"{site}:n{i}"`` at a ``d_model`` site. It goes through the
unembedding with the final norm's elementwise weight (gain) but without its data-dependent part
(RMS or LayerNorm scaling and centring, which depend on the rest of the residual stream, not on
the direction): ``value = (gamma * d) @ W_U``. That is the direct path of a unit of the direction
to the logits up to one positive scalar per token position, so the token ranking is the one the
full norm would give at any residual norm. A model without a norm weight uses ``d @ W_U``.

Example:
    >>> from interpkit._testing import tiny_model
    >>> from interpkit.sources import neuron_table
    >>> from interpkit.explain import FeatureContext
    >>> model = tiny_model()
    >>> table = neuron_table(model, ["a cat"], "layer1.resid_post", neurons=[2], progress=False)
    >>> out = LogitEffects(k=3).explain(FeatureContext(table=table, feature_id=table.feature_ids[0], model=model))
    >>> len(out["logit_effects"]["promoted"]), out["logit_effects"]["method"]
    (3, 'W_U (final_norm.weight * d)')
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ._base import FeatureContext, Verbalizer

__all__ = ["LogitEffects", "feature_direction", "norm_weight"]

_NEURON = re.compile(r"^(?P<site>.+):n(?P<i>\d+)$")


def feature_direction(table: Any, fid: str, model: Any) -> np.ndarray:
    """The write direction of ``fid`` in the model's residual basis (float32 ``[d_model]``).

    Raises:
        ValueError: the feature has neither a decoder vector nor the id of a neuron at a
            ``d_model`` site.
    """
    vectors = table.decoder_vectors
    if fid in vectors:
        return np.asarray(vectors[fid], dtype=np.float32)
    from interpkit.models import parse_site

    match = _NEURON.match(fid)
    if match is None or parse_site(match["site"]) is None:
        raise ValueError(f"feature {fid!r} has no decoder vector and is not a neuron '{{site}}:n{{i}}' "
                         "at a canonical (d_model) site")
    d_model, i = int(model.d_model), int(match["i"])
    if i >= d_model:
        raise ValueError(f"neuron {fid!r}: index {i} out of range for d_model {d_model}")
    e = np.zeros(d_model, dtype=np.float32)
    e[i] = 1.0
    return e


def norm_weight(model: Any) -> Any:
    """The final norm's elementwise weight ``[d_model]`` as a float tensor, or None."""
    norm = model.final_norm
    weight = getattr(norm, "weight", None)
    if weight is None or getattr(weight, "ndim", 0) != 1:
        return None
    return weight.detach().float()


class LogitEffects(Verbalizer):
    """Top-``k`` promoted and suppressed tokens of the feature's direction.

    Args:
        k: tokens on each side.
    """

    name: ClassVar[str] = "logit_effects"

    def __init__(self, k: int = 10) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = k

    def __repr__(self) -> str:
        return f"LogitEffects(k={self.k})"

    def values(self, ctx: FeatureContext) -> tuple[np.ndarray, str]:
        """Per-vocabulary logit effect of the direction and the method string."""
        import torch

        if ctx.model is None:
            raise ValueError("LogitEffects needs a model")
        d = torch.tensor(feature_direction(ctx.table, ctx.feature_id, ctx.model))
        W_U = ctx.model.W_U.detach().float()  # noqa: N806 - the established name
        if d.shape[0] != W_U.shape[0]:
            raise ValueError(f"direction of {ctx.feature_id!r} has width {d.shape[0]}, W_U has {W_U.shape[0]}")
        gamma = norm_weight(ctx.model)
        method = "W_U d"
        if gamma is not None:
            d = d * gamma.to(d.device)
            method = "W_U (final_norm.weight * d)"
        # [d_model] @ W_U [d_model, vocab]: the direct-path logit change per unit of the direction (no later layers).
        with torch.no_grad():
            out = (d.to(W_U.device) @ W_U).cpu().numpy()
        return out, method

    def explain(self, ctx: FeatureContext) -> dict[str, Any]:
        """``{"logit_effects": {"method", "promoted", "suppressed"}}``."""
        values, method = self.values(ctx)
        # Raw values, not softmaxed: softmax is shift-invariant per position, so only differences between
        # tokens carry meaning, and the largest / smallest values are the most promoted / suppressed tokens.
        order = np.argsort(-values, kind="stable")
        decode = ctx.model.tokenizer.decode

        def entries(ids: np.ndarray) -> list[dict[str, Any]]:
            return [{"token": decode([int(i)]), "token_id": int(i), "value": float(values[i])} for i in ids]

        k = min(self.k, len(values))
        return {"logit_effects": {"method": method, "promoted": entries(order[:k]),
                                  "suppressed": entries(order[::-1][:k])}}
