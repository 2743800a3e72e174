"""The run manifest: what ran, on what, with which inputs, and what it wrote (with sha256).

``manifest.json`` lies in the run folder; every path in it is relative to that folder. It is
rewritten atomically after each step, so a crash leaves a truthful partial manifest with
``"status": "incomplete"`` (the step that was running shows ``"status": "running"``); a failed step
leaves ``"status": "failed"`` with its error, and the outputs of earlier steps stay listed.

Run-specific fields (:data:`RUN_SPECIFIC_FIELDS`) describe this execution rather than its
results: wall-clock times, durations and the machine (platform, Python, package versions). Two
runs of the same config give manifests equal once those are dropped (:func:`comparable`). An
output file that itself holds a measurement of the run (``metrics.json`` of ``train-sae`` holds
``tokens_per_s``) keeps its true ``sha256`` and also gets ``stable_sha256``: the hash of its JSON
without the keys named in ``run_specific_keys``; :func:`comparable` compares that one instead.

Example:
    >>> from interpkit.runs import comparable
    >>> m = {"status": "complete", "started_at": "2025-01-01T00:00:00+00:00", "duration_s": 1.5,
    ...      "environment": {"python": "3.11"},
    ...      "steps": [{"name": "a", "duration_s": 1.0, "outputs": [{"path": "a/r.json", "sha256": "ab"}]}]}
    >>> comparable(m)
    {'status': 'complete', 'steps': [{'name': 'a', 'outputs': [{'path': 'a/r.json', 'sha256': 'ab'}]}]}
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from interpkit._io import atomic_write_text, sha256_file
from interpkit._version import __version__

MANIFEST_NAME = "manifest.json"
SCHEMA_VERSION = 1

PACKAGES = ("torch", "transformers", "transformer-lens", "nnsight", "numpy", "scipy", "pandas", "scikit-learn",
            "safetensors", "sentence-transformers", "sae-lens", "pyyaml")
"""Packages whose versions the manifest records (None when not installed)."""

RUN_SPECIFIC_FIELDS = ("started_at", "finished_at", "duration_s", "environment")
"""Manifest fields (top level and per step) that describe the execution, not its results."""

RUN_SPECIFIC_KEYS: Mapping[str, tuple[str, ...]] = {"metrics.json": ("tokens_per_s",)}
"""Output files (by name) holding measurements of the run, and the JSON keys that hold them."""


def now() -> str:
    """The current UTC time, ISO 8601, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def environment() -> dict[str, Any]:
    """Platform, Python and the versions of :data:`PACKAGES`."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "platform": platform.platform(), "machine": platform.machine(), "executable": sys.executable,
            "cpu_count": os.cpu_count(), "packages": versions}


def tool() -> dict[str, str]:
    """interpkit's name and version."""
    return {"name": "interpkit", "version": __version__}


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and not _temporary(p))


def _temporary(p: Path) -> bool:
    return p.name.startswith(".") and p.name.endswith(".tmp")


def describe_input(path: Path, rel: str) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}`` of a file; a folder's sha256 hashes its files' names and hashes."""
    if path.is_dir():
        h = hashlib.sha256()
        files = _files(path)
        for f in files:
            h.update(f"{f.relative_to(path).as_posix()}\0{sha256_file(f)}\n".encode())
        return {"path": rel, "type": "folder", "sha256": h.hexdigest(), "files": len(files),
                "bytes": sum(f.stat().st_size for f in files)}
    if not path.is_file():
        return {"path": rel, "type": "missing", "sha256": None}
    return {"path": rel, "type": "file", "sha256": sha256_file(path), "bytes": path.stat().st_size}


def _drop_keys(obj: Any, keys: Iterable[str]) -> tuple[Any, bool]:
    keys = tuple(keys)
    found = False
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in keys:
                found = True
                continue
            out[k], f = _drop_keys(v, keys)
            found |= f
        return out, found
    if isinstance(obj, list):
        items = [_drop_keys(v, keys) for v in obj]
        return [v for v, _ in items], any(f for _, f in items)
    return obj, False


def describe_output(path: Path, rel: str) -> dict[str, Any]:
    """``{"path", "sha256", "bytes"}``, plus ``stable_sha256`` for files holding run measurements."""
    entry: dict[str, Any] = {"path": rel, "sha256": sha256_file(path), "bytes": path.stat().st_size}
    keys = RUN_SPECIFIC_KEYS.get(path.name)
    if keys:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return entry
        stable, found = _drop_keys(data, keys)
        if found:
            text = json.dumps(stable, sort_keys=True, separators=(",", ":"))
            entry["run_specific_keys"] = list(keys)
            entry["stable_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    return entry


def snapshot(roots: Iterable[Path], skip: Path) -> dict[Path, tuple[int, int, int]]:
    """``path -> (inode, mtime_ns, size)`` of every file under ``roots`` (``skip`` left out)."""
    out: dict[Path, tuple[int, int, int]] = {}
    for root in roots:
        for f in ([root] if root.is_file() else _files(root) if root.is_dir() else []):
            if f != skip:
                st = f.stat()
                out[f] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def write_manifest(run_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """Write ``manifest.json`` atomically."""
    return atomic_write_text(run_dir / MANIFEST_NAME, json.dumps(manifest, indent=1) + "\n")


def load_manifest(path: str | Path) -> dict[str, Any]:
    """Read a ``manifest.json`` (or the one in a run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / MANIFEST_NAME
    return json.loads(path.read_text(encoding="utf-8"))


def comparable(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest without its run-specific fields: equal for two runs of the same config.

    Drops :data:`RUN_SPECIFIC_FIELDS` at the top and in every step; an output with a
    ``stable_sha256`` keeps that hash in place of its ``sha256`` and ``bytes``.
    """
    m = copy.deepcopy(dict(manifest))
    for key in RUN_SPECIFIC_FIELDS:
        m.pop(key, None)
    for step in m.get("steps", []):
        for key in RUN_SPECIFIC_FIELDS:
            step.pop(key, None)
        for out in step.get("outputs", []):
            if "stable_sha256" in out:
                out.pop("sha256", None)
                out.pop("bytes", None)
    return m


def output_hashes(manifest: Mapping[str, Any]) -> dict[str, str]:
    """``path -> sha256`` of every output (``stable_sha256`` where the file holds run measurements)."""
    return {o["path"]: o.get("stable_sha256", o["sha256"])
            for s in manifest.get("steps", []) for o in s.get("outputs", [])}
