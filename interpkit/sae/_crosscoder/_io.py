"""Saving and loading crosscoders: a folder of ``cfg.json`` + ``crosscoder.safetensors``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch import nn

from interpkit._constants import CFG_NAME
from interpkit._io import atomic_dir, atomic_temp_path, atomic_write_text

from ._model import FORMAT_TAG, WEIGHTS_NAME, Crosscoder, CrosscoderConfig


class CrosscoderFormatError(ValueError):
    """A crosscoder folder that does not hold what its config says.

    Attributes:
        path: the offending file.
        tensor: the tensor or config field at fault (None when the whole file is).
    """

    def __init__(self, path: str | os.PathLike[str], message: str, *, tensor: str | None = None) -> None:
        self.path = Path(path)
        self.tensor = tensor
        super().__init__(f"{self.path.name}: {message} ({self.path})")


def save_crosscoder(crosscoder: Crosscoder, path: str | os.PathLike[str]) -> Path:
    """Write ``crosscoder`` as a folder: ``cfg.json`` + ``crosscoder.safetensors``.

    The folder is written beside the target (files through `interpkit._io`) and renamed into
    place; an existing folder is first renamed aside (``.<name>.old-<pid>``) and removed after, so
    a crash never leaves a half-written folder under ``path``.

    Args:
        crosscoder: what to save.
        path: the folder.

    Returns:
        The folder path.
    """
    from safetensors.torch import save_file

    final = Path(path)
    with atomic_dir(final) as tmp:
        cfg = {"format": FORMAT_TAG, "version": 1, **crosscoder.cfg.to_dict()}
        atomic_write_text(tmp / CFG_NAME, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        tensors = {name: t.contiguous().cpu() for name, t in crosscoder.tensors().items()}
        with atomic_temp_path(tmp / WEIGHTS_NAME) as weights:
            save_file(tensors, str(weights), metadata={"format": FORMAT_TAG})
    return final


def load_crosscoder(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Crosscoder:
    """Read a folder written by `save_crosscoder` (strict).

    Args:
        path: the folder.
        device: where to place the tensors.

    Returns:
        The crosscoder, in eval mode.

    Raises:
        CrosscoderFormatError: a missing file, an unreadable or invalid ``cfg.json`` (naming the
            field), or a missing, extra or mis-shaped tensor (naming it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_path, weights_path = folder / CFG_NAME, folder / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            found = sorted(q.name for q in folder.iterdir()) if folder.is_dir() else "no such folder"
            raise CrosscoderFormatError(p, f"missing (folder holds: {found})")
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CrosscoderFormatError(cfg_path, f"not valid JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT_TAG:
        raise CrosscoderFormatError(cfg_path, f"not a crosscoder config (format must be {FORMAT_TAG!r})",
                                    tensor="format")
    if raw.get("version") != 1:
        raise CrosscoderFormatError(cfg_path, f"unsupported version {raw.get('version')!r}", tensor="version")
    fields = {k: v for k, v in raw.items() if k not in ("format", "version")}
    try:
        cfg = CrosscoderConfig.from_dict(fields)
    except (TypeError, ValueError) as exc:
        named = re.search(r"CrosscoderConfig\.(\w+)|field\(s\)[^:]*: (\w+)", str(exc))
        bad = None if named is None else named.group(1) or named.group(2)
        raise CrosscoderFormatError(cfg_path, str(exc), tensor=bad) from exc
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise CrosscoderFormatError(weights_path, f"unreadable: {exc}") from exc
    cc = Crosscoder(cfg)
    expected = cc.expected_shapes()
    for name in sorted(set(expected) - set(tensors)):
        raise CrosscoderFormatError(weights_path, f"tensor {name!r} missing", tensor=name)
    for name in sorted(set(tensors) - set(expected)):
        raise CrosscoderFormatError(weights_path, f"unexpected tensor {name!r}", tensor=name)
    for name, shape in expected.items():
        if tuple(tensors[name].shape) != shape:
            raise CrosscoderFormatError(
                weights_path, f"tensor {name!r}: expected shape {list(shape)}, got {list(tensors[name].shape)}",
                tensor=name)
    with torch.no_grad():
        params = {name: t for name, t in zip(cc.tensors(), _param_list(cc), strict=True)}
        for name, p in params.items():
            if tensors[name].dtype != p.dtype:
                raise CrosscoderFormatError(weights_path, f"tensor {name!r}: dtype {tensors[name].dtype}, "
                                            f"config says {cfg.dtype}", tensor=name)
            p.copy_(tensors[name])
    return cc.to(device).eval()


def _param_list(cc: Crosscoder) -> list[nn.Parameter]:
    out = [cc.b_enc]
    for i in range(len(cc.cfg.sources)):
        out += [cc.W_enc[i], cc.W_dec[i], cc.b_dec[i]]
    return out
