"""Readers of the SAE files other libraries write: sparsify, dictionary_learning and circuit-tracer's
per-layer transcoders (read only).

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


# ---- circuit-tracer -------------------------------------------------------------------------
# Layout: circuit_tracer/transcoder/single_layer_transcoder.py. A transcoder set is a YAML file
# (circuit_tracer/configs/*.yaml: model_name, feature_input_hook, feature_output_hook, transcoders:
# [{id, layer, filepath}]) naming one file per layer. load_relu_transcoder reads a safetensors file
# with W_enc [d_sae, d_model], W_dec [d_model, d_sae] (both transposed on load), b_enc [d_sae],
# b_dec [d_model] and W_skip [d_model, d_model] (skip transcoders; forward adds x @ W_skip.T), and
# asserts there is no log_thresholds; load_gemma_scope_transcoder reads Gemma Scope's params.npz with
# W_enc [d_model, d_sae], W_dec [d_sae, d_model], b_enc, b_dec, threshold [d_sae] (JumpReLU).
# SingleLayerTranscoder.encode: act(x @ W_enc + b_enc) (b_dec never touches the input); decode:
# f @ W_dec + b_dec. JumpReLU there is pre * (pre > threshold), interpkit's relu(pre) * (pre >
# threshold): the same for thresholds >= 0.

CT_DEFAULT_HOOKS = ("mlp.hook_in", "mlp.hook_out")
"""ReplacementModel's default feature_input_hook / feature_output_hook (block-relative)."""

_CT_INPUTS = {
    "mlp.hook_in": "the MLP's input (after the pre-MLP norm, weight included): interpkit's mlp_in",
    "hook_resid_mid": "the residual stream before the pre-MLP norm (resid_mid); the transcoder does not normalise",
    "ln2.hook_normalized": "the pre-MLP norm's normalised input before its weight (HookedTransformer with "
                           "fold_ln=False, as circuit-tracer loads it); not interpkit's mlp_in unless the "
                           "norm weight is 1",
}


def _ct_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: torch.from_numpy(np.array(data[k])) for k in data.files}
        except Exception as err:  # a corrupt zip or a pickled array
            raise SAEFormatError(path, f"cannot read as a numpy .npz without pickles ({err})") from err
    return dict(_read_safetensors(path))


def _ct_matrix(path: Path, t: torch.Tensor, name: str, rows: int, cols: int, stored_t: bool) -> torch.Tensor:
    """``t`` as ``[rows, cols]``; stored that way or transposed (``stored_t`` breaks a square tie)."""
    shape = _shape(t)
    if shape == [rows, cols] and not (rows == cols and stored_t):
        return t.contiguous()
    if shape == [cols, rows]:
        return t.T.contiguous()
    raise SAEFormatError(path, f"tensor {name!r}: expected shape [{rows}, {cols}] or [{cols}, {rows}], got {shape}",
                         tensor=name)


def read_circuit_tracer(path: str | Path, *, layer: int | None = None, feature_input_hook: str | None = None,
                        feature_output_hook: str | None = None, model_name: str | None = None,
                        transcoder_id: str | None = None) -> SAE:
    """One layer's circuit-tracer transcoder file (``.safetensors``, or Gemma Scope's ``params.npz``).

    Args:
        path: the file.
        layer: its layer (default: from the file name, e.g. ``layer_3.safetensors``).
        feature_input_hook: the block-relative TransformerLens hook it reads (the set's
            ``feature_input_hook``; default circuit-tracer's ``mlp.hook_in``).
        feature_output_hook: the hook it writes (default ``mlp.hook_out``).
        model_name: the set's ``model_name``.
        transcoder_id: the set's ``id`` of this transcoder.

    Returns:
        A transcoder (``relu``, or ``jumprelu`` when the file has ``threshold``; ``W_skip`` kept as
        the skip connection), with ``hook_name`` / ``hook_name_out`` the full hook names
        (``blocks.{L}.<hook>``), ``site`` / ``site_out`` their canonical sites where there is one
        (``mlp.hook_in`` -> ``mlp_in``; ``hook_resid_mid`` and ``ln2.hook_normalized`` have none),
        and ``metadata["circuit_tracer"]`` saying which tensor it reads.

    Raises:
        SAEFormatError: a missing or mis-shaped tensor, ``log_thresholds``, or a negative threshold.
    """
    from interpkit.models import site_from_hook_name

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no circuit-tracer transcoder file at {path}")
    tensors = _ct_tensors(path)
    if "log_thresholds" in tensors:
        raise SAEFormatError(path, "tensor 'log_thresholds' is not supported (circuit-tracer's loaders assert "
                             "it is absent)", tensor="log_thresholds")
    for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
        if name not in tensors:
            raise SAEFormatError(path, f"tensor {name!r} is missing (found {', '.join(sorted(tensors))})", tensor=name)
    d_sae, d_out = int(tensors["b_enc"].numel()), int(tensors["b_dec"].numel())
    enc = tensors["W_enc"]
    if enc.dim() != 2 or d_sae not in _shape(enc):
        raise SAEFormatError(path, f"tensor 'W_enc': shape {_shape(enc)} has no axis of b_enc's length {d_sae}",
                             tensor="W_enc")
    d_in = _shape(enc)[0] if _shape(enc)[1] == d_sae else _shape(enc)[1]
    stored_t = path.suffix != ".npz"  # load_relu_transcoder transposes, load_gemma_scope_transcoder does not
    weights = {"W_enc": _ct_matrix(path, enc, "W_enc", d_in, d_sae, stored_t),
               "W_dec": _ct_matrix(path, tensors["W_dec"], "W_dec", d_sae, d_out, stored_t),
               "b_enc": tensors["b_enc"].reshape(-1), "b_dec": tensors["b_dec"].reshape(-1)}
    skip = tensors.get("W_skip")
    if skip is not None:
        if _shape(skip) != [d_out, d_in]:
            raise SAEFormatError(path, f"tensor 'W_skip': expected shape [{d_out}, {d_in}], got {_shape(skip)}",
                                 tensor="W_skip")
        weights["W_skip"] = skip
    arch = "relu"
    if "threshold" in tensors:
        arch = "jumprelu"
        thr = tensors["threshold"].reshape(-1)
        if thr.numel() != d_sae:
            raise SAEFormatError(path, f"tensor 'threshold': expected {d_sae} values, got {thr.numel()}",
                                 tensor="threshold")
        if bool((thr < 0).any()):
            raise SAEFormatError(path, "tensor 'threshold' has negative values: circuit-tracer's JumpReLU passes "
                                 "negative pre-activations above them, interpkit's does not", tensor="threshold")
        weights["threshold"] = thr
    extra = sorted(set(tensors) - {"W_enc", "W_dec", "b_enc", "b_dec", "W_skip", "threshold"})
    if extra:
        raise SAEFormatError(path, f"tensor {extra[0]!r} is not expected in a circuit-tracer transcoder",
                             tensor=extra[0])
    if layer is None:  # layer_3.safetensors, or Gemma Scope's layer_3/width_16k/average_l0_76/params.npz
        layer = next((n for part in (path.stem, *reversed(path.parent.parts)) if (n := _layer_from(part)) is not None),
                     None)
    assumed = feature_input_hook is None and feature_output_hook is None
    hook_in = feature_input_hook or CT_DEFAULT_HOOKS[0]
    hook_out = feature_output_hook or CT_DEFAULT_HOOKS[1]
    full_in = None if layer is None else f"blocks.{layer}.{hook_in}"
    full_out = None if layer is None else f"blocks.{layer}.{hook_out}"
    meta = {"file": path.name, "id": transcoder_id, "feature_input_hook": hook_in,
            "feature_output_hook": hook_out, "hooks_assumed": assumed,
            "reads": _CT_INPUTS.get(hook_in, f"the TransformerLens hook {hook_in!r}")}
    dtype = _dtype_name(weights["W_enc"].dtype) if weights["W_enc"].dtype in (torch.float16, torch.bfloat16,
                                                                               torch.float64) else "float32"
    cfg = _config(path, architecture=arch, d_in=d_in, d_sae=d_sae, d_out=d_out, apply_b_dec_to_input=False,
                  skip_connection=skip is not None, dtype=dtype, model=model_name, layer=layer,
                  hook_name=full_in, site=site_from_hook_name(full_in), hook_name_out=full_out,
                  site_out=site_from_hook_name(full_out), metadata={"circuit_tracer": meta})
    return _build(path, cfg, {k: v.to(torch.float32 if dtype == "float32" else v.dtype) for k, v in weights.items()})


def load_transcoder_set(path: str | Path, *, device: str | torch.device = "cpu") -> dict[int, SAE]:
    """Every layer's transcoder of a circuit-tracer set, from its YAML config.

    Args:
        path: the config (``model_name``, ``feature_input_hook``, ``feature_output_hook`` and
            ``transcoders: [{id, layer, filepath}]``, as circuit_tracer/configs/*.yaml). A relative
            ``filepath`` is looked up beside the YAML file, then in the working directory.
        device: where to put the modules.

    Returns:
        ``{layer: transcoder}`` sorted by layer, each as `read_circuit_tracer` builds it.

    Raises:
        SAEFormatError: a config that is not such a mapping, an entry without an integer
            ``layer`` or a string ``filepath``, a layer given twice, an ``hf://`` file (download it
            first; nothing here touches the network), or a bad transcoder file.
        FileNotFoundError: the config or a transcoder file is missing.
    """
    import yaml

    cfg_path = Path(path)
    if not cfg_path.is_file():
        raise FileNotFoundError(f"no circuit-tracer config at {cfg_path} (circuit-tracer's presets 'gemma' / 'llama' "
                                "are not files: pass the path of a config YAML)")
    try:
        raw = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise SAEFormatError(cfg_path, f"cannot read YAML ({err})") from err
    if not isinstance(raw, dict):
        raise SAEFormatError(cfg_path, f"expected a YAML mapping, got {type(raw).__name__}")
    entries = _typed(cfg_path, raw, "transcoders", "list")
    hook_in = _typed(cfg_path, raw, "feature_input_hook", "str")
    hook_out = _typed(cfg_path, raw, "feature_output_hook", "str")
    model_name = _typed(cfg_path, raw, "model_name", "str", default=None, optional=True)
    out: dict[int, SAE] = {}
    for i, entry in enumerate(entries):
        where = f"transcoders[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("layer"), int) or isinstance(entry["layer"], bool) \
                or not isinstance(entry.get("filepath"), str):
            raise SAEFormatError(cfg_path, f"{where} needs an integer 'layer' and a string 'filepath'", field=where)
        layer, filepath = entry["layer"], entry["filepath"]
        if layer in out:
            raise SAEFormatError(cfg_path, f"{where}: layer {layer} has more than one transcoder", field=where)
        if filepath.startswith("hf://"):
            raise SAEFormatError(cfg_path, f"{where}: {filepath} is on the Hugging Face Hub; download it "
                                 "(huggingface_hub.hf_hub_download) and point filepath at the local file",
                                 field=where)
        file = Path(filepath)
        if not file.is_absolute() and (cfg_path.parent / file).is_file():
            file = cfg_path.parent / file
        out[layer] = read_circuit_tracer(file, layer=layer, feature_input_hook=hook_in, feature_output_hook=hook_out,
                                         model_name=model_name, transcoder_id=entry.get("id")).to(device).eval()
    return dict(sorted(out.items()))
