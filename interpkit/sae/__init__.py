"""Sparse autoencoders: architectures, training, metrics, formats, latents as features, crosscoders.

Architectures register by name (`ARCHITECTURES`): ``topk``, ``batchtopk``, ``relu`` (L1) and
``jumprelu``. Every SAE stores ``W_enc [d_in, d_sae]``, ``b_enc``, ``W_dec [d_sae, d_in]``,
``b_dec`` (plus ``threshold`` for JumpReLU / BatchTopK). A transcoder (``SAEConfig.d_out`` /
``site_out``) reads one site and reconstructs another: ``W_dec [d_sae, d_out]``, ``b_dec [d_out]``.

- train: `train_sae` (from a model layer, activation records or an array; presets ``minimal`` and
  ``production``; checkpoints and resume; ``torchrun`` for several GPUs; ``method="sklearn"``);
- transcoders: `train_sae(..., target_site=)` or ``train_sae((x, y))``, `train_transcoders` (one
  per layer, ``mlp_in`` -> ``mlp_out``, from the same forward passes), `transcoder_splice`,
  circuit-tracer's files (`load_sae(path, format="circuit-tracer")`, `load_transcoder_set`);
- measure: `evaluate_sae` (FVU, L0, dead/dense latents), `lm_loss_recovered` (splice the
  reconstruction into the model);
- read and write: `load_sae` / `save_sae` (native, SAELens; sparsify and dictionary_learning read),
  `resolve_saelens` (hub releases for online users);
- use: `sae_table` (latents as a sparse FeatureTable), `sae_records`, `latent_feature` (steer
  ``strength × W_dec[i]``), `clamp_latent`, `splice`, `sae_interventions`;
- crosscoders: `train_crosscoder`, `shared_latents`, `cross_source_pairs`.

Example:
    >>> import numpy as np
    >>> from interpkit.sae import train_sae
    >>> x = np.random.default_rng(0).normal(size=(512, 8)).astype("float32")
    >>> result = train_sae(x, architecture="topk", latent_dim=32, k=4, epochs=2, batch_size=64)
    >>> result.metrics["fvu"] < 1.0
    True
"""

from __future__ import annotations

from . import _batchtopk, _jumprelu, _relu, _topk  # noqa: F401  (register the architectures)
from ._base import ARCHITECTURES, NORMALIZATIONS, SAE, SAEConfig, make_sae, register_architecture
from ._crosscoder import (
    CROSSCODER_ARCHITECTURES,
    Crosscoder,
    CrosscoderConfig,
    CrosscoderFormatError,
    CrosscoderResult,
    CrossSourcePair,
    LatentPair,
    cross_source_pairs,
    evaluate_crosscoder,
    load_crosscoder,
    make_crosscoder,
    paired_activations,
    save_crosscoder,
    shared_latents,
    train_crosscoder,
)
from ._data import ActivationSource, ArraySource, ModelSource, RecordsSource, reservoir_sample
from ._data_paired import PairedArraySource
from ._edits import clamp_latent, latent_feature, sae_interventions, splice, transcoder_splice
from ._export import SAEInterventionExport, export_sae_interventions, export_sae_records
from ._features import encode_texts, inference, sae_feature_ids, sae_records, sae_table
from ._formats import FORMATS, SAEFormatError, detect_format, load_sae, save_sae
from ._formats_foreign import load_transcoder_set
from ._hub import KNOWN_RELEASES, SAEDownloadError, resolve_saelens
from ._metrics import evaluate_sae, format_metrics, lm_loss_recovered
from ._site import sae_site, sae_site_out
from ._sklearn import train_sklearn
from ._train import PRESETS, Preset, TrainResult, train_sae
from ._transcoders import load_transcoders, read_transcoder_index, train_transcoders

__all__ = [
    "ARCHITECTURES",
    "CROSSCODER_ARCHITECTURES",
    "FORMATS",
    "KNOWN_RELEASES",
    "NORMALIZATIONS",
    "PRESETS",
    "SAE",
    "ActivationSource",
    "ArraySource",
    "CrossSourcePair",
    "Crosscoder",
    "CrosscoderConfig",
    "CrosscoderFormatError",
    "CrosscoderResult",
    "LatentPair",
    "ModelSource",
    "PairedArraySource",
    "Preset",
    "RecordsSource",
    "SAEConfig",
    "SAEDownloadError",
    "SAEFormatError",
    "SAEInterventionExport",
    "TrainResult",
    "clamp_latent",
    "cross_source_pairs",
    "detect_format",
    "encode_texts",
    "evaluate_crosscoder",
    "evaluate_sae",
    "export_sae_interventions",
    "export_sae_records",
    "format_metrics",
    "inference",
    "latent_feature",
    "lm_loss_recovered",
    "load_crosscoder",
    "load_sae",
    "load_transcoder_set",
    "load_transcoders",
    "make_crosscoder",
    "make_sae",
    "paired_activations",
    "register_architecture",
    "reservoir_sample",
    "resolve_saelens",
    "sae_feature_ids",
    "sae_interventions",
    "sae_records",
    "sae_site",
    "sae_site_out",
    "sae_table",
    "save_crosscoder",
    "save_sae",
    "shared_latents",
    "splice",
    "read_transcoder_index",
    "train_crosscoder",
    "train_sae",
    "train_sklearn",
    "train_transcoders",
    "transcoder_splice",
]
