"""Steering artifacts: one steering vector with the evidence for it, as a self-contained folder.

An artifact is what ``interpkit export-steering`` and the SteeringPanel's export write, and what
``interpkit apply-steering`` and ``SteeringPanel.from_artifact`` read back. It is a folder::

    <artifact>/steering.json       the settings, the evidence and the provenance (below)
    <artifact>/vector.safetensors  one float32 tensor "vector" of shape [d_model]

``steering.json`` (``kind`` ``"steering_artifact"``, ``schema_version`` 1)::

    {"kind": "steering_artifact", "schema_version": 1, "interpkit_version": "0.x",
     "feature": "contrast:layer15", "site": "layer15.resid_post",
     "vector": {"file": "vector.safetensors", "tensor": "vector", "d_model": 576, "norm": 1.0,
                "sha256": "9f2c..."},
     "model": {"name": "smollm2-135m", "fingerprint": "ab12..."},
     "criterion": "the next token is a unit",
     "strength": {"value": 8.0, "chosen_on": "train", "detail": "..."},
     "validated": true,
     "evidence": {"intervention": "steer", "split": "test", "n": 12, "effect": 0.04,
                  "ci_low": 0.01, "ci_high": 0.07, "ci_level": 0.95, "status": "promotes",
                  "side_effect": 0.02, "strength": 8.0,
                  "controls": [{"feature_id": "contrast:layer15::control0", "kind": "random", "n": 12,
                                "effect": 0.001, "beaten": true}]},
     "generation": {"max_new_tokens": 32, "seed": 0, "do_sample": false, "chat": false},
     "provenance": {"report": "runs/r1/report.json", "report_sha256": "...",
                    "interventions": "iv.jsonl", "interventions_sha256": "...",
                    "command": "interpkit export-steering ...", "created_at": "2026-...Z", "forced": false}}

``vector.sha256`` is the sha256 of the vector's float32 little-endian bytes (as intervention specs
name theirs, `vector_sha256`), so an artifact whose tensor was swapped or truncated is refused.
``evidence`` is null when the artifact was not validated on held-out interventions (``validated``
false: forced exports and panel exports). `read_steering_artifact` is strict: every problem is a
`RecordError` naming the file and the field (``steering.json: field 'strength.value': ...``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_dir, read_json_file
from .._version import __version__
from ._checks import (
    check_bool,
    check_float,
    check_int,
    check_mapping,
    check_number,
    check_required,
    check_str,
)
from ._errors import RecordError
from ._intervention import CONTROL_KINDS
from ._spec import _check_header, _refuse_unknown, vector_sha256

__all__ = [
    "STEERING_ARTIFACT_KIND",
    "STEERING_JSON_NAME",
    "STEERING_VECTOR_NAME",
    "SteeringArtifact",
    "read_steering_artifact",
    "write_steering_artifact",
]

STEERING_ARTIFACT_KIND = "steering_artifact"
"""``kind`` of ``steering.json``."""
STEERING_SCHEMA_VERSION = 1
STEERING_JSON_NAME = "steering.json"
STEERING_VECTOR_NAME = "vector.safetensors"
_TENSOR = "vector"

_TOP = ("kind", "schema_version", "interpkit_version", "feature", "site", "vector", "model", "criterion",
        "strength", "validated", "evidence", "generation", "provenance")
_VECTOR = ("file", "tensor", "d_model", "norm", "sha256")
_MODEL = ("name", "fingerprint")
_STRENGTH = ("value", "chosen_on", "detail")
_CHOSEN_ON = ("train", "user", "panel")
_EVIDENCE = ("intervention", "split", "n", "effect", "ci_low", "ci_high", "ci_level", "status", "side_effect",
             "strength", "controls")
_CONTROL = ("feature_id", "kind", "n", "effect", "beaten")  # kind: optional (absent: random)
_PROVENANCE = ("report", "report_sha256", "interventions", "interventions_sha256", "command", "created_at",
               "forced")


@dataclass(frozen=True, slots=True, kw_only=True)
class SteeringArtifact:
    """One steering vector, where it is added, how strongly, and why it is trusted (or that it is not)."""

    feature: str
    """The steered feature's id (as the report names it)."""
    site: str
    """Canonical site name the vector is added at."""
    vector: np.ndarray
    """``[d_model]`` float32 steering vector (strength 1 adds it once)."""
    model_name: str
    """The model's name."""
    model_fingerprint: str
    """`interpkit.sources.model_fingerprint` of the model the artifact was made for."""
    strength: float
    """The strength to steer with."""
    strength_chosen_on: str
    """``"train"`` (a strength sweep on the train split), ``"user"`` (given) or ``"panel"`` (a slider)."""
    strength_detail: str | None = None
    """How the strength was chosen, in words (which records or prompts)."""
    criterion: str | None = None
    """The criterion the steering is for."""
    validated: bool = False
    """True only when held-out interventions showed the effect and it beat its controls."""
    evidence: Mapping[str, Any] | None = None
    """The held-out effect: ``intervention``, ``split``, ``n``, ``effect``, ``ci_low``/``ci_high`` at
    ``ci_level``, ``status``, ``side_effect``, ``strength`` and ``controls`` (see the module docstring)."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """Generation settings the artifact was made with (``max_new_tokens``, ``seed``, ``do_sample``, ``chat``, ``prompt``)."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """``report``, ``report_sha256``, ``interventions``, ``interventions_sha256``, ``command``,
    ``created_at``, ``forced``."""
    path: Path | None = field(default=None, compare=False)
    """The folder it was read from or written to."""

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(np.asarray(self.vector, dtype=np.float32).reshape(-1))
        if v.size == 0 or not np.isfinite(v).all():
            raise RecordError("a non-empty finite vector", rendered=f"{v.size} values", field="vector")
        object.__setattr__(self, "vector", v)
        object.__setattr__(self, "generation", dict(self.generation))
        object.__setattr__(self, "provenance", dict(self.provenance))
        if self.evidence is not None:
            object.__setattr__(self, "evidence", dict(self.evidence))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SteeringArtifact):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    @property
    def d_model(self) -> int:
        """Length of the vector."""
        return int(self.vector.size)

    def to_dict(self) -> dict[str, Any]:
        """``steering.json``'s content."""
        return {
            "kind": STEERING_ARTIFACT_KIND, "schema_version": STEERING_SCHEMA_VERSION,
            "interpkit_version": __version__, "feature": self.feature, "site": self.site,
            "vector": {"file": STEERING_VECTOR_NAME, "tensor": _TENSOR, "d_model": self.d_model,
                       "norm": float(np.linalg.norm(self.vector)), "sha256": vector_sha256(self.vector)},
            "model": {"name": self.model_name, "fingerprint": self.model_fingerprint},
            "criterion": self.criterion,
            "strength": {"value": float(self.strength), "chosen_on": self.strength_chosen_on,
                         "detail": self.strength_detail},
            "validated": bool(self.validated),
            "evidence": None if self.evidence is None else dict(self.evidence),
            "generation": dict(self.generation),
            "provenance": dict(self.provenance),
        }


def write_steering_artifact(path: str | os.PathLike[str], artifact: SteeringArtifact) -> Path:
    """Write ``artifact`` as the folder ``path`` (atomically: the old folder or the new one); return the path.

    The artifact is checked by reading its JSON form back first, so a malformed one writes nothing.
    """
    from safetensors.numpy import save

    data = artifact.to_dict()
    _parse(json.loads(json.dumps(data)))  # the same checks a reader makes, before anything is written
    final = Path(path)
    with atomic_dir(final) as tmp:
        (tmp / STEERING_VECTOR_NAME).write_bytes(save({_TENSOR: artifact.vector}))
        (tmp / STEERING_JSON_NAME).write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return final


def read_steering_artifact(path: str | os.PathLike[str]) -> SteeringArtifact:
    """Read an artifact folder (or its ``steering.json``), strictly.

    Raises:
        FileNotFoundError: no ``steering.json`` at ``path``.
        RecordError: not valid JSON, not a steering artifact, a missing or malformed field, or a
            vector file that does not match ``vector`` (shape, sha256); the message names the file and field.
    """
    p = Path(path)
    folder = p if p.is_dir() else p.parent
    jpath, data = read_json_file(
        folder / STEERING_JSON_NAME,
        missing=f"no steering artifact at {p} (expected a folder with {STEERING_JSON_NAME})",
        invalid=lambda f, exc: RecordError("valid JSON", rendered=f"{exc.msg} at line {exc.lineno}", path=str(f)))
    try:
        fields = _parse(data)
        vector = _read_vector(folder, fields.pop("_vector"))
    except RecordError as err:
        raise err.located(path=str(jpath), line=None) from None
    return SteeringArtifact(vector=vector, path=folder, **fields)


def _read_vector(folder: Path, meta: Mapping[str, Any]) -> np.ndarray:
    from safetensors.numpy import load_file

    vpath = folder / meta["file"]
    if not vpath.is_file():
        raise RecordError(f"an existing file beside steering.json ({vpath} is missing)", meta["file"],
                          field="vector.file")
    try:
        tensors = load_file(str(vpath))
    except Exception as exc:  # safetensors raises its own error types
        raise RecordError("a safetensors file", rendered=f"{vpath}: {exc}", field="vector.file") from None
    if meta["tensor"] not in tensors:
        raise RecordError(f"a tensor name in {vpath.name} ({sorted(tensors)})", meta["tensor"], field="vector.tensor")
    v = tensors[meta["tensor"]]
    if v.dtype != np.float32 or v.ndim != 1 or v.size != meta["d_model"]:
        raise RecordError(f"a float32 tensor of shape [{meta['d_model']}]",
                          rendered=f"{v.dtype} {list(v.shape)}", field="vector.d_model")
    if vector_sha256(v) != meta["sha256"]:
        raise RecordError(f"the sha256 of {vpath.name}'s float32 values", meta["sha256"], field="vector.sha256")
    return v


def _object(data: Mapping[str, Any], name: str, known: tuple[str, ...]) -> Mapping[str, Any]:
    value = check_mapping(check_required(data, name), name)
    try:
        _refuse_unknown(value, known)
    except RecordError as err:
        raise err.nested(name) from None
    return value


def _req(data: Mapping[str, Any], dotted: str) -> Any:
    """``data``'s value under the last part of ``dotted``; a missing one names the whole dotted field."""
    return check_required(data, dotted.rsplit(".", 1)[-1], dotted)


def _opt_float(value: Any, name: str) -> float | None:
    return None if value is None else check_float(value, name)


def _parse(data: Any) -> dict[str, Any]:
    """The artifact's fields from its JSON form (the vector's metadata under ``_vector``)."""
    data = check_mapping(data, None)
    _refuse_unknown(data, _TOP)
    _check_header(data, STEERING_ARTIFACT_KIND, "a steering artifact", STEERING_SCHEMA_VERSION)
    vec = _object(data, "vector", _VECTOR)
    vmeta = {"file": check_str(_req(vec, "vector.file"), "vector.file", nonempty=True),
             "tensor": check_str(vec.get("tensor", _TENSOR), "vector.tensor", nonempty=True),
             "d_model": check_int(_req(vec, "vector.d_model"), "vector.d_model", minimum=1),
             "sha256": check_str(_req(vec, "vector.sha256"), "vector.sha256", nonempty=True)}
    if "/" in vmeta["file"] or "\\" in vmeta["file"] or vmeta["file"] in (".", ".."):
        raise RecordError("a file name inside the artifact folder", vmeta["file"], field="vector.file")
    if "norm" in vec:
        check_float(vec["norm"], "vector.norm")  # derived from the vector: checked, not trusted
    model = _object(data, "model", _MODEL)
    strength = _object(data, "strength", _STRENGTH)
    chosen = _req(strength, "strength.chosen_on")
    if chosen not in _CHOSEN_ON:
        raise RecordError(f"one of {list(_CHOSEN_ON)}", chosen, field="strength.chosen_on")
    validated = check_bool(check_required(data, "validated"), "validated")
    evidence = None if data.get("evidence") is None else _evidence(_object(data, "evidence", _EVIDENCE))
    if validated and evidence is None:
        raise RecordError("held-out evidence (the artifact says validated: true)", None, field="evidence")
    provenance = _object(data, "provenance", _PROVENANCE)
    for key in ("report", "report_sha256", "interventions", "interventions_sha256", "command", "created_at"):
        check_str(provenance.get(key), f"provenance.{key}", optional=True)
    check_bool(provenance.get("forced", False), "provenance.forced")
    return {
        "_vector": vmeta,
        "feature": check_str(check_required(data, "feature"), "feature", nonempty=True),
        "site": check_str(check_required(data, "site"), "site", nonempty=True),
        "model_name": check_str(_req(model, "model.name"), "model.name", nonempty=True),
        "model_fingerprint": check_str(_req(model, "model.fingerprint"), "model.fingerprint", nonempty=True),
        "criterion": check_str(data.get("criterion"), "criterion", optional=True),
        "strength": check_float(_req(strength, "strength.value"), "strength.value"),
        "strength_chosen_on": chosen,
        "strength_detail": check_str(strength.get("detail"), "strength.detail", optional=True),
        "validated": validated,
        "evidence": evidence,
        "generation": dict(check_mapping(data.get("generation") or {}, "generation")),
        "provenance": dict(provenance),
    }


def _evidence(ev: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(ev)
    check_str(_req(ev, "evidence.intervention"), "evidence.intervention", nonempty=True)
    check_str(_req(ev, "evidence.split"), "evidence.split", nonempty=True)
    check_int(_req(ev, "evidence.n"), "evidence.n", minimum=1)
    check_str(_req(ev, "evidence.status"), "evidence.status", nonempty=True)
    for key in ("effect", "ci_low", "ci_high", "ci_level"):
        _opt_float(_req(ev, f"evidence.{key}"), f"evidence.{key}")
    check_number(ev.get("side_effect"), "evidence.side_effect", optional=True)
    check_number(ev.get("strength"), "evidence.strength", optional=True)
    controls = _req(ev, "evidence.controls")
    if not isinstance(controls, list):
        raise RecordError("a list of controls", controls, field="evidence.controls")
    for i, c in enumerate(controls):
        where = f"evidence.controls[{i}]"
        c = check_mapping(c, where)
        for key in c:
            if key not in _CONTROL:
                raise RecordError(f"one of the fields {list(_CONTROL)}", key, field=f"{where}.{key}")
        check_str(_req(c, f"{where}.feature_id"), f"{where}.feature_id", nonempty=True)
        check_int(_req(c, f"{where}.n"), f"{where}.n", minimum=1)
        check_float(_req(c, f"{where}.effect"), f"{where}.effect")
        check_bool(_req(c, f"{where}.beaten"), f"{where}.beaten")
        if c.get("kind", "random") not in CONTROL_KINDS:
            raise RecordError(f"a control kind ({', '.join(CONTROL_KINDS)})", c["kind"], field=f"{where}.kind")
    return out
