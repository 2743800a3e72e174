"""Training checkpoints: ``out/checkpoints/step-<n>/``, written atomically, the last two kept.

A checkpoint folder holds ``sae.safetensors`` (the SAE's tensors), ``optimizer.pt`` (the Adam
state flattened to a dict of tensors, saved with `torch.save` and read back with
``weights_only=True``, so loading never unpickles code) and ``state.json`` (step, epoch, batch
index within the epoch, the SAE config, the torch RNG state, the dead-latent counters, the history
so far and the settings the run was started with). The folder is written under a temporary name
and renamed, so a killed run leaves either a whole checkpoint or none.

Example:
    >>> import tempfile, torch
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="relu", d_in=4, d_sae=8))
    >>> opt = torch.optim.Adam(sae.parameters())
    >>> out = Path(tempfile.mkdtemp())
    >>> save_checkpoint(out, sae, opt, {"step": 3}).name, latest_checkpoint(out).name
    ('step-3', 'step-3')
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from interpkit._io import atomic_dir

from ._base import SAE

__all__ = ["latest_checkpoint", "load_checkpoint", "save_checkpoint"]

CHECKPOINTS = "checkpoints"
_STEP_RE = re.compile(r"^step-(\d+)$")
_STATE, _WEIGHTS, _OPTIM = "state.json", "sae.safetensors", "optimizer.pt"


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    root = Path(out) / CHECKPOINTS
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_RE.match(p.name))]
    return sorted((n, p) for n, p in found if (p / _STATE).is_file())


def latest_checkpoint(out: str | os.PathLike[str]) -> Path | None:
    """The complete checkpoint with the highest step under ``out/checkpoints``, or None."""
    found = _checkpoints(Path(out))
    return found[-1][1] if found else None


def _flatten_optimizer(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict[str, Any]]]:
    sd = opt.state_dict()
    tensors = {}
    for pid, state in sd["state"].items():
        for name, value in state.items():
            if not isinstance(value, torch.Tensor):
                raise TypeError(f"optimizer state {name!r} is not a tensor; cannot checkpoint it")
            tensors[f"{pid}.{name}"] = value.detach().cpu().clone()
    return tensors, sd["param_groups"]


def rng_to_json(state: torch.Tensor) -> str:
    """A torch RNG state tensor as base64 text."""
    return base64.b64encode(state.numpy().tobytes()).decode("ascii")


def rng_from_json(text: str) -> torch.Tensor:
    """Inverse of `rng_to_json`."""
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8).clone()


def save_checkpoint(
    out: str | os.PathLike[str], sae: SAE, optimizer: torch.optim.Optimizer, state: dict[str, Any], *, keep: int = 2
) -> Path:
    """Write ``out/checkpoints/step-<state["step"]>/`` atomically and prune to the last ``keep``.

    Args:
        out: the run folder.
        sae: the module (its `SAE.tensors` are saved).
        optimizer: the optimizer; its tensor state goes to ``optimizer.pt``.
        state: JSON-ready run state; must hold ``step``.
        keep: how many checkpoints to keep.

    Returns:
        The checkpoint folder.
    """
    from safetensors.torch import save_file

    root = Path(out) / CHECKPOINTS
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{int(state['step'])}"
    with atomic_dir(final) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in sae.tensors().items()}, str(tmp / _WEIGHTS))
        tensors, groups = _flatten_optimizer(optimizer)
        torch.save(tensors, tmp / _OPTIM)
        payload = {**state, "optimizer_param_groups": groups, "cfg": sae.cfg.to_dict()}
        (tmp / _STATE).write_text(json.dumps(payload, indent=1), encoding="utf-8")
    for _, old in _checkpoints(Path(out))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | os.PathLike[str], sae: SAE, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Load a checkpoint into ``sae`` and ``optimizer`` (in place) and return its state dict.

    Raises:
        ValueError: the checkpoint's tensors do not fit ``sae`` (names the tensor).
    """
    from safetensors.torch import load_file

    path = Path(path)
    state = json.loads((path / _STATE).read_text(encoding="utf-8"))
    weights = load_file(str(path / _WEIGHTS))
    own = sae.state_dict()
    for name, value in weights.items():
        if name not in own or own[name].shape != value.shape:
            raise ValueError(f"{path / _WEIGHTS}: tensor {name!r} does not fit {sae!r}")
    missing = sorted(set(own) - set(weights))
    if missing:
        raise ValueError(f"{path / _WEIGHTS}: missing tensor(s) {', '.join(missing)}")
    sae.load_state_dict(weights)
    flat = torch.load(path / _OPTIM, weights_only=True)
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        pid, _, name = key.partition(".")
        per_param.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": per_param, "param_groups": state.pop("optimizer_param_groups")})
    return state
