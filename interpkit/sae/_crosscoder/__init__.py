"""Crosscoders (Lindsey et al. 2024, "Sparse Crosscoders"): one sparse code over several sources.

A crosscoder reads S row-aligned activation sources (two layers of one model, or two models, on
the same tokens or texts), encodes them into one code ``f = act(Σ_s (c_s x_s) W_enc_s + b_enc)``
and decodes every source from it, ``x̂_s = (f W_dec_s + b_dec_s) / c_s``. ``c_s`` is a fixed input
scale per source (mean norm ``sqrt(d_s)`` after scaling), so sources of different scale and width
weigh alike. A latent whose decoder has weight in one source only is specific to it; one with
weight in both is shared, and its two decoder rows give a feature pair across the sources.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(256, 4))
    >>> data = {"a": z @ rng.normal(size=(4, 8)), "b": z @ rng.normal(size=(4, 6))}
    >>> res = train_crosscoder(data, d_sae=16, k=4, epochs=2, batch_size=64)
    >>> sorted(res.metrics["fvu"]), len(shared_latents(res.crosscoder))
    (['a', 'b'], 16)
"""

from __future__ import annotations

from ._io import CrosscoderFormatError, load_crosscoder, save_crosscoder
from ._model import (
    CROSSCODER_ARCHITECTURES,
    FORMAT_TAG,  # noqa: F401  (the cfg.json format tag, kept importable here)
    WEIGHTS_NAME,
    Crosscoder,
    CrosscoderConfig,
    make_crosscoder,
)
from ._pairs import CrossSourcePair, LatentPair, cross_source_pairs, paired_activations, shared_latents
from ._train import CrosscoderResult, evaluate_crosscoder, train_crosscoder

__all__ = [
    "CROSSCODER_ARCHITECTURES",
    "WEIGHTS_NAME",
    "Crosscoder",
    "CrosscoderConfig",
    "CrosscoderFormatError",
    "CrosscoderResult",
    "CrossSourcePair",
    "LatentPair",
    "cross_source_pairs",
    "evaluate_crosscoder",
    "load_crosscoder",
    "make_crosscoder",
    "paired_activations",
    "save_crosscoder",
    "shared_latents",
    "train_crosscoder",
]
