"""Reading and writing SAEs on disk: interpkit's own layout and those of SAELens, sparsify and
dictionary_learning.

Every reader is strict: the tensors a file holds must be exactly the ones the architecture needs,
with the shapes the config implies, and every config field must have the expected type; anything
else is an `SAEFormatError` naming the file and the tensor or field. Nothing is unpickled (safetensors,
JSON, and ``torch.load(weights_only=True)`` for dictionary_learning's ``ae.pt``). Writers build the
whole folder beside the target and rename it into place. A foreign config is kept verbatim in
``SAEConfig.metadata`` (under ``"saelens"`` / ``"sparsify"`` / ``"dictionary_learning"``) so that
SAELens folders round-trip bit for bit. The sparsify and dictionary_learning readers live in
``_formats_foreign``. See docs/sae_formats.md for the layouts.

Example:
    >>> import tempfile, torch
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> from interpkit.sae._formats import detect_format, load_sae, save_sae
    >>> sae = make_sae(SAEConfig(architecture="topk", d_in=4, d_sae=8, k=2), seed=0)
    >>> folder = save_sae(sae, tempfile.mkdtemp() + "/sae", format="saelens")
    >>> detect_format(folder)
    'saelens'
    >>> torch.equal(load_sae(folder).W_dec, sae.W_dec)
    True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from interpkit._io import atomic_dir

from ._base import SAE, SAEConfig, make_sae, torch_dtype

FORMATS = ("native", "saelens", "sparsify", "dictionary_learning", "circuit-tracer")
"""Layouts `load_sae` reads; `save_sae` writes the first two."""

NATIVE_TAG = "interpkit.sae"
NATIVE_VERSION = 1
CFG_NAME = "cfg.json"
NATIVE_WEIGHTS = "sae.safetensors"
SAELENS_WEIGHTS = "sae_weights.safetensors"  # sae_lens/constants.py SAE_WEIGHTS_FILENAME
SPARSIFY_WEIGHTS = "sae.safetensors"  # sparsify/sparse_coder.py save_to_disk
DL_WEIGHTS = "ae.pt"
DL_CONFIG = "config.json"
_OWNED_FILES = frozenset({CFG_NAME, NATIVE_WEIGHTS, SAELENS_WEIGHTS})
"""Files a save replaces; anything else in an existing target folder (metrics.json,
checkpoints/, sparsity.safetensors) is carried over untouched."""


class SAEFormatError(ValueError):
    """A file that is not a valid SAE of the expected layout.

    Attributes:
        path: the offending file (or folder).
        tensor: the tensor name at fault, or None.
        field: the config field at fault, or None.
    """

    def __init__(self, path: str | os.PathLike[str], message: str, *, tensor: str | None = None,
                 field: str | None = None) -> None:
        self.path = Path(path)
        self.tensor = tensor
        self.field = field
        super().__init__(f"{self.path.name}: {message}")


# ---- small strict helpers -------------------------------------------------------------------

def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _check_tensors(path: Path, tensors: Mapping[str, torch.Tensor], expected: Mapping[str, list[int]]) -> None:
    """Exactly the ``expected`` names, each with its shape."""
    missing = [n for n in expected if n not in tensors]
    if missing:
        raise SAEFormatError(path, f"tensor {missing[0]!r} is missing (found {', '.join(sorted(tensors)) or 'none'})",
                             tensor=missing[0])
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise SAEFormatError(path, f"tensor {extra[0]!r} is not expected here (expected {', '.join(expected)})",
                             tensor=extra[0])
    for name, shape in expected.items():
        if _shape(tensors[name]) != list(shape):
            raise SAEFormatError(path, f"tensor {name!r}: expected shape {list(shape)}, got {_shape(tensors[name])}",
                                 tensor=name)


_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "bool": (bool,), "str": (str,),
                                       "dict": (dict,), "list": (list,)}


def _typed(path: Path, cfg: Mapping[str, Any], name: str, kind: str, *, default: Any = ...,
           optional: bool = False) -> Any:
    """``cfg[name]`` checked against ``kind`` (``"int"``, ``"float"``, ``"bool"``, ``"str"``, ``"dict"``)."""
    if name not in cfg:
        if default is ...:
            raise SAEFormatError(path, f"config field {name!r} is missing", field=name)
        return default
    value = cfg[name]
    if value is None and optional:
        return None
    ok = isinstance(value, _TYPES[kind]) and not (kind in ("int", "float") and isinstance(value, bool))
    if not ok:
        raise SAEFormatError(path, f"config field {name!r} must be {kind}"
                             f"{' or null' if optional else ''}, got {value!r}", field=name)
    return value


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise SAEFormatError(path, f"cannot read JSON ({err})") from err
    if not isinstance(data, dict):
        raise SAEFormatError(path, f"expected a JSON object, got {type(data).__name__}")
    return data


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise SAEFormatError(path, "weights file is missing")
    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # safetensors raises its own SafetensorError on a corrupt header
        raise SAEFormatError(path, f"cannot read safetensors ({err})") from err


def _build(path: Path, cfg: SAEConfig, tensors: Mapping[str, torch.Tensor]) -> SAE:
    """The module for ``cfg`` holding exactly ``tensors`` (checked against the module's own)."""
    sae = make_sae(cfg, seed=None)
    _check_tensors(path, tensors, {n: _shape(t) for n, t in sae.state_dict().items()})
    with torch.no_grad():
        for name, t in sae.state_dict().items():
            t.copy_(tensors[name])
    return sae


def _config(path: Path, **fields: Any) -> SAEConfig:
    try:
        return SAEConfig(**fields)
    except (TypeError, ValueError) as err:
        raise SAEFormatError(path, f"invalid SAE config ({err})") from err


def _layer_from(name: str | None) -> int | None:
    m = re.search(r"(?:blocks|layers?|h)[._](\d+)", name or "")
    return int(m.group(1)) if m else None


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


# ---- native ---------------------------------------------------------------------------------

def _read_native(folder: Path) -> SAE:
    cfg_path = folder / CFG_NAME
    raw = _read_json(cfg_path)
    if raw.get("format") != NATIVE_TAG:
        raise SAEFormatError(cfg_path, f"config field 'format' must be {NATIVE_TAG!r}", field="format")
    if raw.get("version") != NATIVE_VERSION:
        raise SAEFormatError(cfg_path, f"config field 'version' must be {NATIVE_VERSION}, got {raw.get('version')!r}",
                             field="version")
    fields = {k: v for k, v in raw.items() if k not in ("format", "version")}
    _check_native_fields(cfg_path, fields)
    cfg = _config(cfg_path, **fields)
    return _build(folder / NATIVE_WEIGHTS, cfg, _read_safetensors(folder / NATIVE_WEIGHTS))


def _check_native_fields(path: Path, fields: Mapping[str, Any]) -> None:
    """Names and JSON types of every `SAEConfig` field (derived from its annotations)."""
    import dataclasses

    known = {f.name: str(f.type) for f in dataclasses.fields(SAEConfig)}
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise SAEFormatError(path, f"config field {unknown[0]!r} is not an SAEConfig field", field=unknown[0])
    for f in dataclasses.fields(SAEConfig):
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.name not in fields:
            if required:
                raise SAEFormatError(path, f"config field {f.name!r} is missing", field=f.name)
            continue
        base = known[f.name].split("|")[0].strip().split("[")[0]
        kind = {"Mapping": "dict"}.get(base, base)
        if kind in _TYPES:
            _typed(path, fields, f.name, kind, optional="None" in known[f.name])


def _write_native(sae: SAE, folder: Path) -> None:
    cfg = {"format": NATIVE_TAG, "version": NATIVE_VERSION, **sae.cfg.to_dict()}
    _write_json(folder / CFG_NAME, cfg)
    _write_safetensors(folder / NATIVE_WEIGHTS, sae.tensors())


# ---- SAELens --------------------------------------------------------------------------------
# Layout: sae_lens/saes/sae.py (SAE.save_model writes cfg.to_dict() to cfg.json, the state dict to
# sae_weights.safetensors) and sae_lens/loading/pretrained_sae_loaders.py (handle_pre_6_0_config:
# the older flat layout with hook_point/hook_point_layer/model_name at top level, activation_fn_str,
# boolean normalize_activations).

_SAELENS_ARCH = {"standard": "relu", "topk": "topk", "jumprelu": "jumprelu", "batchtopk": "batchtopk",
                 "transcoder": "relu", "skip_transcoder": "relu", "jumprelu_transcoder": "jumprelu"}
_SAELENS_NAME = {"relu": "standard", "topk": "topk", "jumprelu": "jumprelu"}
_SAELENS_TRANSCODERS = {"transcoder", "skip_transcoder", "jumprelu_transcoder"}
"""sae_lens/saes/transcoder.py: ReLU ``Transcoder``, ``SkipTranscoder`` (+ ``W_skip [d_out, d_in]``)
and ``JumpReLUTranscoder``; their cfg adds ``d_out`` and never applies ``b_dec`` to the input.
SAELens has no TopK transcoder, and no output hook field (interpkit keeps ``site_out`` /
``hook_name_out`` in ``metadata.interpkit``)."""
_SAELENS_VERSION = "6.0.0"
"""Written as metadata.sae_lens_version: SAELens treats a config without one as pre-6.0 and
rebuilds its metadata from top-level keys, which would drop the nested model and hook names."""


def _saelens_config(path: Path, raw: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """SAEConfig fields from a SAELens cfg.json (either layout) and whether to fold decoder norms."""
    nested = "metadata" in raw
    meta = _typed(path, raw, "metadata", "dict") if nested else raw
    d_in = _typed(path, raw, "d_in", "int")
    d_sae = _typed(path, raw, "d_sae", "int")
    dtype = _typed(path, raw, "dtype", "str", default="float32")
    try:
        dtype = _dtype_name(torch_dtype(dtype))
    except ValueError as err:
        raise SAEFormatError(path, f"config field 'dtype': {err}", field="dtype") from err
    arch_name = _typed(path, raw, "architecture", "str", default="standard")
    if not nested and raw.get("activation_fn_str", raw.get("activation_fn")) == "topk":
        arch_name = "topk"
    if arch_name not in _SAELENS_ARCH:
        raise SAEFormatError(path, f"config field 'architecture': SAELens architecture {arch_name!r} is not "
                             f"supported (supported: {', '.join(_SAELENS_ARCH)})", field="architecture")
    norm = raw.get("normalize_activations", "none")
    if isinstance(norm, bool) or norm is None:  # pre-6.0 wrote a bool
        norm = "expected_average_only_in" if norm else "none"
    if norm not in ("none", "expected_average_only_in", "constant_norm_rescale"):
        raise SAEFormatError(path, f"config field 'normalize_activations': {norm!r} is not supported",
                             field="normalize_activations")
    transcoder = arch_name in _SAELENS_TRANSCODERS
    fields: dict[str, Any] = {
        "architecture": _SAELENS_ARCH[arch_name], "d_in": d_in, "d_sae": d_sae, "dtype": dtype,
        "apply_b_dec_to_input": _typed(path, raw, "apply_b_dec_to_input", "bool", default=not transcoder),
        "normalize_activations": norm,
    }
    if transcoder:
        fields["d_out"] = _typed(path, raw, "d_out", "int")
        fields["skip_connection"] = arch_name == "skip_transcoder"
    if fields["architecture"] in ("topk", "batchtopk"):
        k = raw.get("k", (raw.get("activation_fn_kwargs") or {}).get("k"))
        if isinstance(k, float) and k.is_integer():  # SAELens batchtopk allows a float k
            k = int(k)
        if not isinstance(k, int) or isinstance(k, bool):
            raise SAEFormatError(path, f"config field 'k' must be an integer, got {k!r}", field="k")
        fields["k"] = k
    fold = bool(_typed(path, raw, "rescale_acts_by_decoder_norm", "bool", default=False))
    model = meta.get("model_name")
    hook = meta.get("hook_name", meta.get("hook_point"))
    layer = meta.get("hook_layer", meta.get("hook_point_layer"))
    for name, value, kind in (("model_name", model, str), ("hook_name", hook, str), ("hook_layer", layer, int)):
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise SAEFormatError(path, f"config field {name!r} must be {kind.__name__}, got {value!r}", field=name)
    fields.update(model=model, hook_name=hook, layer=layer if layer is not None else _layer_from(hook))
    return fields, fold


def _read_saelens(folder: Path) -> SAE:
    cfg_path = folder / CFG_NAME
    raw = _read_json(cfg_path)
    fields, fold = _saelens_config(cfg_path, raw)
    weights_path = folder / SAELENS_WEIGHTS
    tensors = dict(_read_safetensors(weights_path))
    extra = dict(raw.get("metadata", {}).get("interpkit", {})) if isinstance(raw.get("metadata"), dict) else {}
    if fields["architecture"] == "batchtopk" and "topk_threshold" in tensors:
        # sae_lens/saes/batchtopk_sae.py: training checkpoints keep a scalar `topk_threshold`
        tensors["threshold"] = tensors.pop("topk_threshold")
    if extra.get("architecture") == "batchtopk" and fields["architecture"] in ("jumprelu", "topk"):
        fields["architecture"] = "batchtopk"
        fields.setdefault("k", extra.get("k"))
        # the topk form has no threshold: none learned yet
        thr = tensors.pop("threshold", torch.full((fields["d_sae"],), -1.0))
        if _shape(thr) != [fields["d_sae"]] or not bool((thr == thr[0]).all()):
            raise SAEFormatError(weights_path, "tensor 'threshold': a batchtopk SAE needs one threshold shared by "
                                 "every latent", tensor="threshold")
        tensors["threshold"] = thr[0].clone()
    known = {f for f in SAEConfig.__dataclass_fields__} - {"architecture", "d_in", "d_sae", "dtype",
                                                           "apply_b_dec_to_input", "normalize_activations", "k"}
    fields.update({k: v for k, v in extra.items() if k in known})
    fields["metadata"] = {**dict(fields.get("metadata") or {}), "saelens": {"cfg": raw}}
    cfg = _config(cfg_path, **fields)
    if fold:
        tensors = _fold_decoder_norm(weights_path, tensors, cfg)
    return _build(weights_path, cfg, tensors)


def _fold_decoder_norm(path: Path, tensors: dict[str, torch.Tensor], cfg: SAEConfig) -> dict[str, torch.Tensor]:
    """``rescale_acts_by_decoder_norm`` (sae_lens/saes/topk_sae.py) folded into unit decoder rows."""
    if "W_dec" not in tensors or _shape(tensors["W_dec"]) != [cfg.d_sae, cfg.output_dim]:
        return tensors  # _build reports the bad tensor
    norms = tensors["W_dec"].norm(dim=-1)
    if torch.allclose(norms, torch.ones_like(norms), rtol=0, atol=1e-6):
        return tensors
    if not (norms > 0).all():
        raise SAEFormatError(path, "tensor 'W_dec' has a zero row; cannot fold rescale_acts_by_decoder_norm",
                             tensor="W_dec")
    out = dict(tensors)
    out["W_dec"] = tensors["W_dec"] / norms[:, None]
    out["W_enc"] = tensors["W_enc"] * norms[None, :]
    out["b_enc"] = tensors["b_enc"] * norms
    return out


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


_BLOCK_SKIP = ("d_in", "d_sae", "d_out", "skip_connection", "dtype", "apply_b_dec_to_input",
               "normalize_activations", "k", "model", "hook_name", "layer", "metadata")


def _interpkit_block(cfg: SAEConfig, folded: bool) -> dict[str, Any]:
    """The SAEConfig fields SAELens has no place for, where they differ from their defaults."""
    import dataclasses

    defaults = {f.name: f.default for f in dataclasses.fields(SAEConfig) if f.default is not dataclasses.MISSING}
    block = {k: v for k, v in cfg.to_dict().items()
             if k not in _BLOCK_SKIP and (k == "architecture" and v == "batchtopk" or
                                           k != "architecture" and not _same(defaults.get(k, ...), v))}
    if cfg.architecture == "batchtopk":
        block["k"] = cfg.k
    if folded:
        block.pop("norm_scaling_factor", None)
        block["folded_norm_scaling_factor"] = cfg.norm_scaling_factor
        if cfg.is_transcoder:
            block.pop("norm_scaling_factor_out", None)
            block["folded_norm_scaling_factor_out"] = cfg.norm_scaling_factor_out
    meta = {k: v for k, v in cfg.metadata.items() if k != "saelens"}
    if meta:
        block["metadata"] = meta
    return block


def _saelens_cfg_for(sae: SAE) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The SAELens cfg.json and state dict of ``sae`` (the source cfg kept verbatim where it still fits)."""
    cfg = sae.cfg
    if cfg.is_transcoder and cfg.architecture not in ("relu", "jumprelu"):
        raise ValueError(f"cannot write {sae!r} as SAELens: SAELens's transcoders (transcoder, skip_transcoder, "
                         f"jumprelu_transcoder) are ReLU or JumpReLU, not {cfg.architecture!r}; save it as native")
    tensors = dict(sae.tensors())
    norm = cfg.normalize_activations
    folded = norm == "expected_average_only_in" and cfg.norm_scaling_factor is not None
    if folded:
        # SAELens files carry the scale folded in (SAE.fold_activation_norm_scaling_factor) and "none"
        scale = float(cfg.norm_scaling_factor)
        out_scale = sae.output_scale() if cfg.is_transcoder else scale
        tensors["W_enc"] = tensors["W_enc"] * scale
        tensors["W_dec"] = tensors["W_dec"] / out_scale
        tensors["b_dec"] = tensors["b_dec"] / out_scale
        if cfg.skip_connection:
            tensors["W_skip"] = tensors["W_skip"] * (scale / out_scale)
        norm = "none"
    saved = cfg.metadata.get("saelens")
    source = saved.get("cfg") if isinstance(saved, dict) and isinstance(saved.get("cfg"), dict) else None
    arch_name = _SAELENS_NAME.get(cfg.architecture, "")
    if cfg.is_transcoder:
        arch_name = ("jumprelu_transcoder" if cfg.architecture == "jumprelu" else
                     "skip_transcoder" if cfg.skip_connection else "transcoder")
    if cfg.architecture == "batchtopk":
        thr = tensors.pop("threshold")
        if source is not None and source.get("architecture") == "batchtopk":
            arch_name, tensors["topk_threshold"] = "batchtopk", thr  # a SAELens training checkpoint
        elif float(thr) >= 0:  # sae_lens/saes/batchtopk_sae.py: saved for inference as JumpReLU
            arch_name, tensors["threshold"] = "jumprelu", torch.full((cfg.d_sae,), float(thr), dtype=thr.dtype)
        else:  # no learned threshold yet: the module does per-row top-k
            arch_name = "topk"
    out: dict[str, Any] = json.loads(json.dumps(source)) if source is not None else {}
    implied: dict[str, Any] = {}
    if source is not None:
        implied, _ = _saelens_config(Path(CFG_NAME), out)
    nested = source is None or isinstance(out.get("metadata"), dict)
    if source is None:
        out.update({"architecture": arch_name, "d_in": cfg.d_in, "d_sae": cfg.d_sae, "dtype": cfg.dtype,
                    "device": "cpu", "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
                    "normalize_activations": norm, "reshape_activations": "none", "metadata": {}})
    else:
        if not ("architecture" not in out and _SAELENS_ARCH.get(arch_name) == implied["architecture"]) \
                and out.get("architecture") != arch_name:
            out["architecture"] = arch_name
        wanted = {"d_in": cfg.d_in, "d_sae": cfg.d_sae, "apply_b_dec_to_input": cfg.apply_b_dec_to_input,
                  "normalize_activations": norm}
        out.update({k: v for k, v in wanted.items() if not _same(implied.get(k), v)})
        if torch_dtype(implied["dtype"]) != torch_dtype(cfg.dtype):
            out["dtype"] = cfg.dtype
    if cfg.is_transcoder:
        out["d_out"] = cfg.output_dim
    if arch_name in ("topk", "batchtopk") and not (implied.get("k") == cfg.k and ("k" in out or
                                                                               "activation_fn_kwargs" in out)):
        out["k"] = cfg.k
    if arch_name == "topk":
        out.setdefault("rescale_acts_by_decoder_norm", False)
    meta = out["metadata"] if nested else out
    if source is None:
        meta.update({"sae_lens_version": _SAELENS_VERSION, "sae_lens_training_version": _SAELENS_VERSION})
    hook_name = cfg.hook_name
    if hook_name is None and source is None and cfg.site is not None:
        from interpkit.models._sites import parse_site

        parsed = parse_site(cfg.site)  # SAELens names sites by TransformerLens hook
        hook_name = None if parsed is None else f"blocks.{parsed[0]}.hook_{parsed[1]}"
    for key, ours in (("model_name", cfg.model), ("hook_name", hook_name), ("hook_layer", cfg.layer)):
        theirs = implied.get({"model_name": "model", "hook_layer": "layer"}.get(key, key))
        if source is None or not _same(theirs, ours):
            meta[key] = ours
    block = _interpkit_block(cfg, folded)
    previous = meta.get("interpkit") if source is not None else None
    if isinstance(previous, dict):  # bookkeeping keys of an interpkit-written file (not config fields)
        for key, value in previous.items():
            if key not in block and key not in SAEConfig.__dataclass_fields__:
                block[key] = value
    if block or "interpkit" in meta:
        meta["interpkit"] = block
    return out, tensors


def _write_saelens(sae: SAE, folder: Path) -> None:
    cfg, tensors = _saelens_cfg_for(sae)
    _write_json(folder / CFG_NAME, cfg)
    _write_safetensors(folder / SAELENS_WEIGHTS, tensors)


# ---- detection ------------------------------------------------------------------------------

def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "") if names else "nothing"


def _folder_format(folder: Path) -> str | None:
    if (folder / DL_WEIGHTS).is_file():
        return "dictionary_learning"
    cfg = folder / CFG_NAME
    if not cfg.is_file():
        return None
    if (folder / SAELENS_WEIGHTS).is_file():
        return "saelens"
    if (folder / NATIVE_WEIGHTS).is_file():
        return "native" if _read_json(cfg).get("format") == NATIVE_TAG else "sparsify"
    return None


def _resolve(path: str | os.PathLike[str], fmt: str | None = None) -> tuple[str, Path]:
    """The format and the folder that holds the SAE (one level down for a single hookpoint/trainer)."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no SAE at {p}")
    folder = p.parent if p.is_file() else p
    found = _folder_format(folder)
    if found is None:
        subs = sorted(d for d in folder.iterdir() if d.is_dir() and _folder_format(d) is not None)
        if len(subs) > 1:
            raise SAEFormatError(folder, f"holds {len(subs)} SAEs ({', '.join(d.name for d in subs)}); "
                                 "pass the path of one of them")
        if len(subs) == 1:
            folder, found = subs[0], _folder_format(subs[0])
    if found is None:
        raise SAEFormatError(folder, f"no SAE layout recognised (found: {_listing(folder)}); expected cfg.json + "
                             f"sae.safetensors (native, sparsify), cfg.json + sae_weights.safetensors (SAELens), "
                             "or ae.pt (dictionary_learning)")
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"unknown SAE format {fmt!r}; choose one of {', '.join(FORMATS)}")
        if fmt != found and {fmt, found} != {"native", "sparsify"}:
            raise SAEFormatError(folder, f"looks like {found!r}, not {fmt!r}")
        found = fmt
    return found, folder


def detect_format(path: str | os.PathLike[str]) -> str:
    """Which of `FORMATS` the SAE at ``path`` (a folder or a file in it) is stored in.

    Args:
        path: an SAE folder, a file inside one, or a folder holding exactly one SAE folder.

    Returns:
        One of `FORMATS`.

    Raises:
        FileNotFoundError: nothing at ``path``.
        SAEFormatError: no layout recognised (the message lists what was found), or several SAEs.
    """
    return _resolve(path)[0]


def _readers() -> dict[str, Callable[[Path], SAE]]:
    from ._formats_foreign import _read_dictionary_learning, _read_sparsify

    return {"native": _read_native, "saelens": _read_saelens, "sparsify": _read_sparsify,
            "dictionary_learning": _read_dictionary_learning}


def load_sae(path: str | os.PathLike[str], *, format: str | None = None, device: str | torch.device = "cpu",
             dtype: str | torch.dtype | None = None) -> SAE:
    """Load an SAE saved in any of `FORMATS`.

    Args:
        path: the SAE folder (or a file in it; a sparsify/dictionary_learning parent folder holding a
            single hookpoint or trainer is accepted too); for ``"circuit-tracer"`` one layer's
            transcoder file (see `~interpkit.sae.load_transcoder_set` for a whole set).
        format: one of `FORMATS`; None detects it (all but ``"circuit-tracer"``, which is never guessed).
        device: where to put the module.
        dtype: convert parameters to this dtype (and record it in the config); None keeps the stored one.

    Returns:
        The SAE, in eval mode.

    Raises:
        SAEFormatError: a missing, extra or mis-shaped tensor, or a missing or mistyped config field
            (the message names the file and the tensor or field).
        FileNotFoundError: nothing at ``path``.
    """
    if format == "circuit-tracer":  # one file per layer, no folder layout to detect
        from ._formats_foreign import read_circuit_tracer

        sae = read_circuit_tracer(Path(path))
    else:
        fmt, folder = _resolve(path, format)
        sae = _readers()[fmt](folder)
    if dtype is not None:
        name = _dtype_name(dtype) if isinstance(dtype, torch.dtype) else str(dtype).removeprefix("torch.")
        sae.cfg = sae.cfg.replace(dtype=name)
        sae = sae.to(torch_dtype(name))
    return sae.to(device).eval()


# ---- writing --------------------------------------------------------------------------------

def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    try:
        text = json.dumps(data, indent=2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path.name}: the SAE config is not JSON-serialisable ({err}); check SAEConfig.metadata"
                         ) from err
    path.write_text(text + "\n", encoding="utf-8")


def _write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({n: t.detach().cpu().contiguous().clone() for n, t in tensors.items()}, str(path),
              metadata={"format": "pt"})


_WRITERS: dict[str, Callable[[SAE, Path], None]] = {"native": _write_native, "saelens": _write_saelens}


def save_sae(sae: SAE, path: str | os.PathLike[str], *, format: str = "native") -> Path:
    """Write ``sae`` as a folder in ``format`` (``"native"`` or ``"saelens"``), atomically.

    The folder is built beside ``path`` and renamed into place; an existing folder is replaced only
    once the new one is complete, and its other entries (``metrics.json``, ``checkpoints/``,
    ``sparsity.safetensors``) are carried over untouched.

    Args:
        sae: the module.
        path: the folder to write.
        format: ``"native"`` (``cfg.json`` + ``sae.safetensors``) or ``"saelens"`` (``cfg.json`` +
            ``sae_weights.safetensors``).

    Returns:
        The folder.

    Raises:
        ValueError: an unknown or read-only format, or a config that is not JSON-serialisable.
        FileExistsError: ``path`` is a file.
    """
    if format not in _WRITERS:
        raise ValueError(f"cannot write SAE format {format!r}; writable: {', '.join(_WRITERS)} "
                         f"(readable: {', '.join(FORMATS)})")
    target = Path(path)
    if target.is_file():
        raise FileExistsError(f"{target} is a file, not an SAE folder")
    with atomic_dir(target) as tmp:
        _WRITERS[format](sae, tmp)
        if target.exists():
            for entry in target.iterdir():
                if entry.name not in _OWNED_FILES:
                    os.replace(entry, tmp / entry.name)
    return target
