"""``load_model``: from a name, a path or a loaded object to a :class:`ModelWrapper`.

Accepted inputs: a packaged zoo name (``"smollm2-135m"``, ``"minilm-l6"``), a local folder, a hub
id (loaded with ``transformers``; needs the network), an already-loaded HF model, a
TransformerLens ``TransformerBridge`` (or HookedRootModule-like object), or an nnsight model.
"""

from __future__ import annotations

import os
from typing import Any

from ._wrapper import ModelWrapper

BACKENDS = ("transformer_lens", "nnsight")


def _is_tl(obj: Any) -> bool:
    return all(hasattr(obj, attr) for attr in ("hook_dict", "hooks", "cfg"))


def _is_nnsight(obj: Any) -> bool:
    return hasattr(obj, "_module") and hasattr(obj, "trace") and hasattr(obj, "interleaver")


def _architecture(model: Any) -> str:
    names = getattr(model.config, "architectures", None) or []
    return names[0] if names else type(model).__name__


def _dtype(dtype: Any) -> Any:
    import torch

    return getattr(torch, dtype) if isinstance(dtype, str) else dtype


def _wrap_hf(model: Any, tokenizer: Any, backend: str, *, name: str, device: Any, remote: bool | str) -> ModelWrapper:
    """Put a loaded HF model behind ``backend``.

    For ``transformer_lens`` the bridge replaces submodules of ``model`` in place (see
    ``build_bridge_from_module``); load a separate copy if the plain HF model is needed too.
    """
    model.eval()
    if backend == "transformer_lens":
        from transformer_lens.model_bridge.sources import build_bridge_from_module

        from ._tl import TLBackend

        # TL re-loads the tokenizer from its name_or_path to force a BOS; only a local folder
        # makes that safe offline, and interpkit tokenizes itself anyway.
        local = os.path.isdir(str(getattr(tokenizer, "name_or_path", "") or ""))
        bridge = build_bridge_from_module(
            model, _architecture(model), hf_config=model.config, tokenizer=tokenizer if local else None,
            model_name=name,
        )
        bridge.eval()
        return ModelWrapper(TLBackend(bridge), name=name, tokenizer=tokenizer, device=device, hf_model=model)
    from ._nnsight import NNsightBackend

    lm = _nnsight_model(model, tokenizer)
    return ModelWrapper(
        NNsightBackend(lm, remote=remote), name=name, tokenizer=tokenizer, device=device, hf_model=model
    )


def _nnsight_model(model: Any, tokenizer: Any) -> Any:
    import warnings

    from nnsight import NNsight

    if getattr(model, "can_generate", lambda: False)():
        from nnsight import TransformersModel

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            return TransformersModel(model, tokenizer=tokenizer)
    return NNsight(model)


def load_model(
    name_or_model: Any,
    backend: str | None = None,
    *,
    device: Any = "cpu",
    dtype: Any = "float32",
    tokenizer: Any = None,
    remote: bool | str = False,
    name: str | None = None,
    **kwargs: Any,
) -> ModelWrapper:
    """Load or wrap a model behind one backend.

    Args:
        name_or_model: zoo name, local folder, hub id, HF model, TransformerBridge /
            HookedRootModule-like object, or nnsight model.
        backend: ``"transformer_lens"`` or ``"nnsight"``. ``None`` keeps the backend of an object
            that already has one and otherwise means ``"transformer_lens"``.
        device: device for a model interpkit loads (loaded objects are never moved).
        dtype: dtype for a model interpkit loads (``"float32"`` or a ``torch.dtype``).
        tokenizer: tokenizer to use (default: the model's own).
        remote: nnsight only: ``True`` runs traces on NDIF (needs an API key and a hub id;
            weights are not downloaded), ``"local"`` simulates the remote round trip in-process.
        name: display name (default: derived from the input).
        **kwargs: passed to ``from_pretrained`` for hub ids and folders.

    Returns:
        The wrapper.

    Raises:
        ValueError: unknown backend, or a backend that cannot wrap the given object.
        PackagedModelMissing: a zoo model whose package is not installed (message has the pip
            command).
    """
    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if remote and backend not in (None, "nnsight"):
        raise ValueError("remote execution runs through nnsight: use backend='nnsight'")

    if _is_nnsight(name_or_model):
        if backend == "transformer_lens":
            raise ValueError("an nnsight model runs on backend='nnsight'; pass the HF model to switch")
        from ._nnsight import NNsightBackend

        lm = name_or_model
        tok = tokenizer or getattr(lm, "tokenizer", None)
        return ModelWrapper(
            NNsightBackend(lm, remote=remote),
            name=name or _model_name(lm._module),
            tokenizer=tok,
            device=device,
            hf_model=lm._module,
        )
    if _is_tl(name_or_model):
        if backend == "nnsight":
            raise ValueError("a TransformerLens model runs on backend='transformer_lens'")
        from ._tl import TLBackend

        model = name_or_model
        tok = tokenizer or getattr(model, "tokenizer", None)
        display = name or getattr(model.cfg, "model_name", None) or type(model).__name__
        return ModelWrapper(TLBackend(model), name=display, tokenizer=tok, device=device)

    backend = backend or ("nnsight" if remote else "transformer_lens")
    if isinstance(name_or_model, str | os.PathLike):
        return _load_named(
            os.fspath(name_or_model), backend, device=device, dtype=dtype, tokenizer=tokenizer,
            remote=remote, name=name, **kwargs,
        )
    if hasattr(name_or_model, "config") and hasattr(name_or_model, "named_modules"):
        tok = tokenizer
        if tok is None:
            raise ValueError("pass tokenizer=... with an already-loaded HF model")
        return _wrap_hf(
            name_or_model, tok, backend, name=name or _model_name(name_or_model), device=device, remote=remote
        )
    raise TypeError(f"cannot load a model from {type(name_or_model).__name__}")


def _model_name(model: Any) -> str:
    return getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__


def _load_named(
    ref: str, backend: str, *, device: Any, dtype: Any, tokenizer: Any, remote: bool | str,
    name: str | None, **kwargs: Any,
) -> ModelWrapper:
    from . import zoo

    if ref in zoo.PACKAGED:
        model, tok = zoo.load_packaged(ref, device=device, dtype=_dtype(dtype))
        return _wrap_hf(model, tokenizer or tok, backend, name=name or ref, device=device, remote=remote)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = tokenizer or AutoTokenizer.from_pretrained(ref)
    if remote is True:
        # Weights stay on NDIF: nnsight builds the module tree on the meta device only.
        import warnings

        from nnsight import TransformersModel

        from ._nnsight import NNsightBackend

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            lm = TransformersModel(ref, tokenizer=tok, **kwargs)
        return ModelWrapper(NNsightBackend(lm, remote=True), name=name or ref, tokenizer=tok, device=device)
    model = AutoModelForCausalLM.from_pretrained(ref, dtype=_dtype(dtype), **kwargs).to(device)
    return _wrap_hf(model, tok, backend, name=name or ref, device=device, remote=remote)
