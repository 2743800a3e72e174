"""Intervention specs: steering settings saved as one JSON file (what the steering panel exports).

JSON shape (``kind`` and ``schema_version`` fixed; one ``add_vector`` edit per steered feature)::

    {"kind": "intervention_spec", "schema_version": 1, "model": "smollm2-135m",
     "criterion": "the next token is a unit",
     "edits": [{"type": "add_vector", "feature": "units", "site": "layer15.resid_post",
                "strength": 64.0, "d_model": 576, "norm": 1.0, "vector": [0.01, ...],
                "vector_sha256": "9f2c..."}],
     "generation": {"prompt": "...", "max_new_tokens": 32, "seed": 0, "do_sample": false, "chat": true}}

The vector travels as float32 values with the sha256 of their little-endian bytes
(`vector_sha256`), so a reader can tell a spec whose numbers were edited or truncated from the one
that was written. `read_intervention_spec` is strict: every problem is a `RecordError` naming the
file and the field (``spec.json: field 'edits[0].vector': ...``). Turning a spec into model edits
is `interpkit.causal.spec_edits` (records know nothing of models).

Example:
    >>> spec = InterventionSpec(edits=(SpecEdit(feature="v", site="layer1.resid_post", strength=2.0,
    ...                                          vector=(1.0, 0.0)),), model="m")
    >>> back = read_intervention_spec(spec.to_dict())
    >>> back.edits[0].strength, back.edits[0].d_model, back == spec
    (2.0, 2, True)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._constants import SCHEMA_VERSION
from .._io import atomic_write_text
from ._checks import check_float, check_int, check_mapping, check_required, check_str, check_vector
from ._errors import RecordError

__all__ = [
    "INTERVENTION_SPEC_KIND",
    "InterventionSpec",
    "SpecEdit",
    "read_intervention_spec",
    "vector_sha256",
    "write_intervention_spec",
]

INTERVENTION_SPEC_KIND = "intervention_spec"
"""``kind`` of an intervention spec file."""

_SPEC_FIELDS = ("kind", "schema_version", "model", "criterion", "edits", "generation")
_EDIT_FIELDS = ("type", "feature", "site", "strength", "d_model", "norm", "vector", "vector_sha256")


def vector_sha256(vector: Any) -> str:
    """Hex sha256 of a vector's float32 little-endian bytes (how a spec names its vector)."""
    return hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()


def _float32(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in np.asarray(values, dtype=np.float32).reshape(-1))


@dataclass(frozen=True, slots=True, kw_only=True)
class SpecEdit:
    """One ``add_vector`` edit: add ``strength * vector`` at ``site``."""

    feature: str
    """The steered feature's name."""
    site: str
    """Canonical site name (``"layer15.resid_post"``)."""
    strength: float
    """Multiplier of the vector (negative steers away)."""
    vector: tuple[float, ...]
    """The ``[d_model]`` vector, as float32 values."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "vector", _float32(self.vector))

    @property
    def d_model(self) -> int:
        """Length of the vector."""
        return len(self.vector)

    @property
    def norm(self) -> float:
        """Euclidean norm of the float32 vector."""
        return float(np.linalg.norm(np.asarray(self.vector, dtype=np.float32)))

    def to_dict(self) -> dict[str, Any]:
        """The edit's JSON form, with ``d_model``, ``norm`` and ``vector_sha256`` derived from the vector."""
        return {"type": "add_vector", "feature": self.feature, "site": self.site, "strength": float(self.strength),
                "d_model": self.d_model, "norm": self.norm, "vector": list(self.vector),
                "vector_sha256": vector_sha256(self.vector)}

    @classmethod
    def from_dict(cls, data: Any) -> SpecEdit:
        """Parse one edit; `RecordError` names the field (``vector``, ``vector_sha256``, ...)."""
        data = check_mapping(data, None)
        _refuse_unknown(data, _EDIT_FIELDS)
        kind = data.get("type", "add_vector")
        if kind != "add_vector":
            raise RecordError("'add_vector'", kind, field="type")
        vector = check_vector(check_required(data, "vector"), "vector", optional=False)
        digest = check_str(check_required(data, "vector_sha256"), "vector_sha256", nonempty=True)
        if vector_sha256(vector) != digest:
            raise RecordError("the sha256 of the float32 vector values", digest, field="vector_sha256")
        if "d_model" in data and check_int(data["d_model"], "d_model", minimum=1) != len(vector):
            raise RecordError(f"the vector's length ({len(vector)})", data["d_model"], field="d_model")
        if "norm" in data:
            check_float(data["norm"], "norm")  # derived from the vector: checked, not trusted
        feature = check_str(data.get("feature", ""), "feature")
        return cls(feature=feature, site=check_str(check_required(data, "site"), "site", nonempty=True),
                   strength=check_float(check_required(data, "strength"), "strength"), vector=vector)


@dataclass(frozen=True, slots=True, kw_only=True)
class InterventionSpec:
    """Steering settings: the edits, the model they were made for, and how the text was generated."""

    edits: tuple[SpecEdit, ...] = ()
    """The edits, in order."""
    model: str | None = None
    """The model's name."""
    criterion: str | None = None
    """The criterion text the steering was scored for."""
    generation: Mapping[str, Any] = field(default_factory=dict)
    """Generation settings (``prompt``, ``max_new_tokens``, ``seed``, ``do_sample``, ``chat``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "edits", tuple(self.edits))
        object.__setattr__(self, "generation", dict(self.generation))

    def to_dict(self) -> dict[str, Any]:
        """The spec's JSON form (the layout `write_intervention_spec` writes)."""
        return {"kind": INTERVENTION_SPEC_KIND, "schema_version": SCHEMA_VERSION, "model": self.model,
                "criterion": self.criterion, "edits": [e.to_dict() for e in self.edits],
                "generation": dict(self.generation)}

    @classmethod
    def from_dict(cls, data: Any, *, source: str | None = None) -> InterventionSpec:
        """Parse a spec strictly; every error is a `RecordError` naming ``source`` and the field."""
        try:
            return cls._parse(data)
        except RecordError as err:
            raise err.located(path=source, line=None) from None

    @classmethod
    def _parse(cls, data: Any) -> InterventionSpec:
        data = check_mapping(data, None)
        _refuse_unknown(data, _SPEC_FIELDS)
        _check_header(data, INTERVENTION_SPEC_KIND, "an intervention spec", SCHEMA_VERSION)
        edits = check_required(data, "edits")
        if not isinstance(edits, list):
            raise RecordError("a list of edits", edits, field="edits")
        parsed = []
        for i, e in enumerate(edits):
            try:
                parsed.append(SpecEdit.from_dict(e))
            except RecordError as err:
                raise err.nested(f"edits[{i}]") from None
        generation = check_mapping(data.get("generation") or {}, "generation")
        return cls(edits=tuple(parsed), model=check_str(data.get("model"), "model", optional=True),
                   criterion=check_str(data.get("criterion"), "criterion", optional=True), generation=generation)


def _check_header(data: Mapping[str, Any], kind: str, what: str, max_version: int) -> int:
    """Check a JSON file's ``kind`` and ``schema_version`` (1..``max_version``); return the version."""
    found = check_required(data, "kind")
    if found != kind:
        raise RecordError(f"{kind!r} (this is not {what})", found, field="kind")
    version = check_required(data, "schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= max_version:
        raise RecordError(f"a schema version this interpkit reads (1..{max_version})", version,
                          field="schema_version")
    return version


def _refuse_unknown(data: Mapping[str, Any], known: Sequence[str]) -> None:
    for key in data:
        if key not in known:
            raise RecordError(f"one of the fields {list(known)}", key, field=key)


def write_intervention_spec(path: str | os.PathLike[str], spec: InterventionSpec | Mapping[str, Any]) -> Path:
    """Write ``spec`` as indented JSON, atomically (checked first: a bad spec writes nothing); return the path."""
    if not isinstance(spec, InterventionSpec):
        spec = InterventionSpec.from_dict(spec, source="<spec>")
    return atomic_write_text(path, json.dumps(spec.to_dict(), indent=2) + "\n")


def read_intervention_spec(source: str | os.PathLike[str] | Mapping[str, Any]) -> InterventionSpec:
    """Read a spec file (or check a spec dict), strictly.

    Raises:
        RecordError: not valid JSON, not an intervention spec, a missing or malformed field, or a
            vector that does not match its ``vector_sha256``; the message names the file and field.
    """
    if isinstance(source, Mapping):
        return InterventionSpec.from_dict(source, source="<spec>")
    name = os.fspath(source)
    try:
        data = json.loads(Path(name).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecordError("valid JSON", rendered=f"{exc.msg} at line {exc.lineno}", path=name) from None
    return InterventionSpec.from_dict(data, source=name)
