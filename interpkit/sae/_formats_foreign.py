"""Readers of the SAE folders other libraries write: sparsify and dictionary_learning (read only).

See `interpkit.sae._formats` (`load_sae`, `detect_format`) for the formats and their detection.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ._base import SAE
from ._formats import (
    CFG_NAME,
    DL_CONFIG,
    DL_WEIGHTS,
    SPARSIFY_WEIGHTS,
    SAEFormatError,
    _build,
    _check_tensors,
    _config,
    _dtype_name,
    _layer_from,
    _read_json,
    _read_safetensors,
    _shape,
    _typed,
)

# ---- sparsify -------------------------------------------------------------------------------
# Layout: sparsify/sparse_coder.py (save_to_disk: cfg.json = SparseCoderConfig.to_dict() + d_in;
# sae.safetensors = the module: encoder.weight [num_latents, d_in], encoder.bias, W_dec
# [num_latents, d_in], b_dec [d_in]); encode = topk(relu(encoder(x - b_dec)))
# (sparsify/fused_encoder.py). Config fields: sparsify/config.py SparseCoderConfig.

def _read_sparsify(folder: Path) -> SAE:
    cfg_path = folder / CFG_NAME
    raw = _read_json(cfg_path)
    d_in = _typed(cfg_path, raw, "d_in", "int")
    k = _typed(cfg_path, raw, "k", "int")
    num = _typed(cfg_path, raw, "num_latents", "int", default=0)
    factor = _typed(cfg_path, raw, "expansion_factor", "int", default=0)
    if not num and not factor:
        raise SAEFormatError(cfg_path, "config field 'num_latents' or 'expansion_factor' must be set",
                             field="num_latents")
    activation = _typed(cfg_path, raw, "activation", "str", default="topk")
    if activation != "topk":
        raise SAEFormatError(cfg_path, f"config field 'activation': {activation!r} is not supported (only 'topk')",
                             field="activation")
    for flag in ("transcode", "skip_connection", "embed_skip", "gram_lookup"):
        if _typed(cfg_path, raw, flag, "bool", default=False):
            raise SAEFormatError(cfg_path, f"config field {flag!r}: sparsify {flag} coders are not supported",
                                 field=flag)
    d_sae = num or d_in * factor
    weights_path = folder / SPARSIFY_WEIGHTS
    tensors = _read_safetensors(weights_path)
    _check_tensors(weights_path, tensors, {"encoder.weight": [d_sae, d_in], "encoder.bias": [d_sae],
                                           "W_dec": [d_sae, d_in], "b_dec": [d_in]})
    dtype = _dtype_name(tensors["encoder.weight"].dtype)
    cfg = _config(cfg_path, architecture="topk", d_in=d_in, d_sae=d_sae, k=k, dtype=dtype,
                  apply_b_dec_to_input=True, hook_name=folder.name, layer=_layer_from(folder.name),
                  metadata={"sparsify": {"cfg": raw, "hookpoint": folder.name}})
    return _build(weights_path, cfg, {"W_enc": tensors["encoder.weight"].T.contiguous(),
                                      "b_enc": tensors["encoder.bias"], "W_dec": tensors["W_dec"],
                                      "b_dec": tensors["b_dec"]})


# ---- dictionary_learning --------------------------------------------------------------------
# Layout: <trainer>/ae.pt (a torch state dict) + <trainer>/config.json ({"trainer": {...}}) written by
# dictionary_learning/training.py. Key names: dictionary_learning/dictionary.py (AutoEncoder,
# JumpReluAutoEncoder), dictionary_learning/trainers/top_k.py (AutoEncoderTopK) and
# trainers/batch_top_k.py (BatchTopKSAE). nn.Linear stores encoder.weight as [d_sae, d_in] and
# decoder.weight as [d_in, d_sae]; both are transposed here.

_DL_CLASSES = {"AutoEncoder": "relu", "AutoEncoderTopK": "topk", "TopKAutoEncoder": "topk",
               "BatchTopKSAE": "batchtopk", "JumpReluAutoEncoder": "jumprelu"}


def _dl_class(path: Path, tensors: Mapping[str, torch.Tensor], trainer: Mapping[str, Any]) -> str:
    if "dict_class" in trainer:
        name = _typed(path.parent / DL_CONFIG, trainer, "dict_class", "str")
        if name not in _DL_CLASSES:
            raise SAEFormatError(path.parent / DL_CONFIG, f"config field 'dict_class': {name!r} is not supported "
                                 f"(supported: {', '.join(_DL_CLASSES)})", field="dict_class")
        return name
    if "bias" in tensors:
        return "AutoEncoder"
    if "W_enc" in tensors:
        return "JumpReluAutoEncoder"
    raise SAEFormatError(path, "cannot tell AutoEncoderTopK from BatchTopKSAE without config.json "
                         "(trainer.dict_class)", field="dict_class")


def _read_dictionary_learning(folder: Path) -> SAE:
    path = folder / DL_WEIGHTS
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the weights-only unpickler raises UnpicklingError on anything but tensors
        raise SAEFormatError(path, f"cannot read as a tensor state dict with weights_only=True ({err})") from err
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise SAEFormatError(path, "expected a dict of tensors")
    cfg_path = folder / DL_CONFIG
    trainer: dict[str, Any] = {}
    if cfg_path.is_file():
        trainer = _typed(cfg_path, _read_json(cfg_path), "trainer", "dict")
    name = _dl_class(path, state, trainer)
    arch = _DL_CLASSES[name]
    enc_key = "W_enc" if arch == "jumprelu" else "encoder.weight"
    if enc_key not in state:
        raise SAEFormatError(path, f"tensor {enc_key!r} is missing (found {', '.join(sorted(state))})", tensor=enc_key)
    shape = _shape(state[enc_key])
    guess_in, guess_sae = (shape[0], shape[-1]) if arch == "jumprelu" else (shape[-1], shape[0])
    d_in = _typed(cfg_path, trainer, "activation_dim", "int", default=guess_in)
    d_sae = _typed(cfg_path, trainer, "dict_size", "int", default=guess_sae)
    expected = {"relu": {"encoder.weight": [d_sae, d_in], "encoder.bias": [d_sae], "decoder.weight": [d_in, d_sae],
                         "bias": [d_in]},
                "jumprelu": {"W_enc": [d_in, d_sae], "b_enc": [d_sae], "W_dec": [d_sae, d_in], "b_dec": [d_in],
                             "threshold": [d_sae]}}.get(arch)
    if expected is None:
        expected = {"encoder.weight": [d_sae, d_in], "encoder.bias": [d_sae], "decoder.weight": [d_in, d_sae],
                    "b_dec": [d_in], "k": [], "threshold": []}
    _check_tensors(path, state, expected)
    lm = _typed(cfg_path, trainer, "lm_name", "str", default=None, optional=True)
    layer = _typed(cfg_path, trainer, "layer", "int", default=None, optional=True)
    submodule = _typed(cfg_path, trainer, "submodule_name", "str", default=None, optional=True)
    fields: dict[str, Any] = {"architecture": arch, "d_in": d_in, "d_sae": d_sae, "model": lm, "layer": layer,
                              "hook_name": submodule, "dtype": _dtype_name(state[enc_key].dtype),
                              "metadata": {"dictionary_learning": {"dict_class": name, "trainer": trainer}}}
    if arch == "relu":
        tensors = {"W_enc": state["encoder.weight"].T, "b_enc": state["encoder.bias"],
                   "W_dec": state["decoder.weight"].T, "b_dec": state["bias"]}
    elif arch == "jumprelu":
        tensors = {n: state[n] for n in expected}
        fields["apply_b_dec_to_input"] = False  # JumpReluAutoEncoder.apply_b_dec_to_input (not in the state dict)
    else:
        k = int(state["k"])
        cfg_k = _typed(cfg_path, trainer, "k", "int", default=k)
        if cfg_k != k:
            raise SAEFormatError(cfg_path, f"config field 'k' ({cfg_k}) disagrees with tensor 'k' ({k}) in {DL_WEIGHTS}",
                                 field="k")
        fields["k"] = k
        tensors = {"W_enc": state["encoder.weight"].T, "b_enc": state["encoder.bias"],
                   "W_dec": state["decoder.weight"].T, "b_dec": state["b_dec"]}
        if arch == "batchtopk":
            tensors["threshold"] = state["threshold"]
        else:  # AutoEncoderTopK encodes with per-row top-k by default; its threshold is informational
            fields["metadata"]["dictionary_learning"]["threshold"] = float(state["threshold"])
    cfg = _config(cfg_path, **fields)
    return _build(path, cfg, {n: t.contiguous() for n, t in tensors.items()})
