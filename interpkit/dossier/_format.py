"""The dossier file: ``<project>/dossiers/<slug>/dossier.json``, its feature key, strict reader and writer.

A dossier collects the evidence about one feature across runs. Identity across runs is the feature
key ``model|site|feature_id``, extended by ``|sha256:<hex>`` of the feature's direction when the
feature is a direction (``source == "direction"``): a direction id such as ``<site>:diffmean`` is
re-learned by every run and names a different vector under another criterion or split, so two such
features are the same only when their vectors are byte-identical (float32, little-endian).

Every field is listed in `_SCHEMA` below; `read_dossier` refuses unknown fields, missing fields and
values of the wrong type, naming the file and the dotted field (``entries[0].causal.ci_low``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpkit._io import atomic_write_text, read_json_file, slug
from interpkit._version import __version__

__all__ = [
    "DOSSIER_KIND",
    "DOSSIER_SCHEMA_VERSION",
    "Dossier",
    "DossierError",
    "dossier_dir",
    "feature_key",
    "feature_slug",
    "read_dossier",
    "write_dossier",
]

DOSSIER_KIND = "interpkit_dossier"
DOSSIER_SCHEMA_VERSION = 1
DOSSIER_FILE = "dossier.json"
DOSSIERS_DIR = "dossiers"


class DossierError(ValueError):
    """A dossier (or an input to one) that cannot be used; the message names the file and the field."""


def feature_key(model: str, site: str | None, feature_id: str, direction_sha256: str | None = None) -> str:
    """The identity of a feature across runs: ``model|site|feature_id`` (+ ``|sha256:<hex>`` for a direction)."""
    key = f"{model}|{site or ''}|{feature_id}"
    return f"{key}|sha256:{direction_sha256}" if direction_sha256 else key


def feature_slug(key: str) -> str:
    """The dossier's folder name: a readable slug of the key plus 10 hex digits of its sha256 (unique)."""
    model, site, fid, *_ = key.split("|") + ["", ""]
    return f"{slug(f'{model}-{site}-{fid}', max_len=60)}-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def dossier_dir(project_dir: str | Path, key: str) -> Path:
    """``<project>/dossiers/<slug>`` of the feature ``key``."""
    return Path(project_dir) / DOSSIERS_DIR / feature_slug(key)


_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
_OPT_INT = (int, type(None))
_OPT_BOOL = (bool, type(None))

# field -> allowed JSON types, or a nested schema (dict), or [schema] for a list of objects;
# ("opt", schema) is a nested object that may be null; a name ending in "?" may be absent (a field added
# after schema 1: a control's "kind", absent in older dossiers, reads as random)
_ASSOCIATION = {
    "status": (str,), "auroc_test": _OPT_NUM, "auroc_ci_low": _OPT_NUM, "auroc_ci_high": _OPT_NUM,
    "ci_level": _NUM, "spearman_test": _OPT_NUM, "effect_size": _OPT_NUM, "sign_agrees": _OPT_BOOL,
    "p_value": _OPT_NUM, "q_value": _OPT_NUM, "significant": (bool,), "n_test": (int,),
    "n_pos_test": (int,), "n_neg_test": (int,),
}
_CONTROL = {
    "feature_id": (str,), "kind?": _OPT_STR, "status": (str,), "effect": _OPT_NUM, "ci_low": _OPT_NUM,
    "ci_high": _OPT_NUM, "n": (int,),
}
_CAUSAL = {
    "status": (str,), "effect": _OPT_NUM, "value": _OPT_NUM, "ci_low": _OPT_NUM, "ci_high": _OPT_NUM,
    "ci_level": _NUM, "side_effect": _OPT_NUM, "n": (int,), "per_kind": (list,), "controls": [_CONTROL],
    "beats_controls": _OPT_BOOL,
}
_STABILITY = {"stability": _OPT_NUM, "auroc_sd": _OPT_NUM, "n_bootstrap": (int,)}
_LABEL = {"text": _OPT_STR, "source": _OPT_STR, "score": _OPT_NUM, "method": _OPT_STR}
_ENTRY = {
    "report_path": (str,), "report_sha256": (str,), "copies": (list,), "model": (str,), "criterion": (str,), "backend": (str,),
    "synthetic": (bool,), "settings": (dict,), "rank": (int,), "n_features": (int,), "tier": (str,),
    "tier_rank": (int,), "association": _ASSOCIATION, "causal": ("opt", _CAUSAL), "specificity": _OPT_NUM,
    "stability": _STABILITY, "label": _LABEL,
}
_MATCH = {
    "matches_path": (str,), "matches_sha256": (str,), "side": (str,), "other_model": _OPT_STR,
    "other_feature_id": (str,), "other_label": _OPT_STR, "score": _OPT_NUM, "confidence": _OPT_NUM,
    "null_z": _OPT_NUM, "mutual": (bool,), "validated": _OPT_BOOL, "validation_reasons": (list,),
}
_ARTIFACT = {"path": (str,), "sha256": (str,), "kind": _OPT_STR, "bytes": (int,), "feature?": _OPT_STR,
             "validated?": _OPT_BOOL, "vector_sha256?": _OPT_STR}
_FEATURE = {
    "model": (str,), "site": _OPT_STR, "feature_id": (str,), "layer": (int, str, type(None)),
    "source": _OPT_STR, "direction_sha256": _OPT_STR,
}
_SCHEMA = {
    "kind": (str,), "schema_version": (int,), "interpkit_version": (str,), "key": (str,),
    "feature": _FEATURE, "entries": [_ENTRY], "matches": [_MATCH], "artifacts": [_ARTIFACT],
}


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number" if isinstance(value, int | float) else type(value).__name__)


def _check(value: Any, schema: Any, where: str, source: str) -> None:
    """Raise DossierError unless ``value`` follows ``schema`` (see `_SCHEMA`)."""
    if isinstance(schema, tuple) and schema and schema[0] == "opt":
        if value is not None:
            _check(value, schema[1], where, source)
        return
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise DossierError(f"{source}: field {where!r}: expected an array, got {_type_name(value)}")
        for i, item in enumerate(value):
            _check(item, schema[0], f"{where}[{i}]", source)
        return
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise DossierError(f"{source}: field {where or '(top level)'!r}: expected an object, "
                               f"got {_type_name(value)}")
        prefix = f"{where}." if where else ""
        names = {k.rstrip("?"): k.endswith("?") for k in schema}
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise DossierError(f"{source}: field {prefix + unknown[0]!r}: unknown field; expected some of "
                               f"{sorted(names)}")
        for key, sub in schema.items():
            name = key.rstrip("?")
            if name not in value:
                if names[name]:
                    continue
                raise DossierError(f"{source}: field {prefix + name!r}: missing")
            _check(value[name], sub, prefix + name, source)
        return
    # booleans are ints in Python: a number field must not accept true/false, a boolean no number
    ok = isinstance(value, schema) and not (isinstance(value, bool) and bool not in schema)
    if not ok:
        names = sorted({_type_name(t()) if t is not type(None) else "null" for t in schema})
        raise DossierError(f"{source}: field {where!r}: expected {' or '.join(names)}, got {_type_name(value)}")


@dataclass
class Dossier:
    """The evidence about one feature: one entry per run, its matches in other models, its artifacts.

    Entries, matches and artifacts are the JSON objects `docs/formats.md` describes (the reader has
    checked every field); `interpkit.dossier.grade` reads them.
    """

    key: str
    feature: dict[str, Any]
    entries: list[dict[str, Any]] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None
    """Where ``dossier.json`` was read from or written to."""

    @property
    def slug(self) -> str:
        return feature_slug(self.key)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": DOSSIER_KIND, "schema_version": DOSSIER_SCHEMA_VERSION, "interpkit_version": __version__,
            "key": self.key, "feature": dict(self.feature), "entries": list(self.entries),
            "matches": list(self.matches), "artifacts": list(self.artifacts),
        }

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<dossier>") -> Dossier:
        """Strict: wrong kind or version, unknown or missing fields and wrong types raise `DossierError`."""
        if not isinstance(data, Mapping):
            raise DossierError(f"{source}: expected a JSON object, got {_type_name(data)}")
        if data.get("kind") != DOSSIER_KIND:
            raise DossierError(f"{source}: field 'kind': expected {DOSSIER_KIND!r}, got {data.get('kind')!r}")
        if data.get("schema_version") != DOSSIER_SCHEMA_VERSION:
            raise DossierError(f"{source}: field 'schema_version': this interpkit reads version "
                               f"{DOSSIER_SCHEMA_VERSION}, got {data.get('schema_version')!r}")
        _check(dict(data), _SCHEMA, "", source)
        f = data["feature"]
        expected = feature_key(f["model"], f["site"], f["feature_id"], f["direction_sha256"])
        if data["key"] != expected:
            raise DossierError(f"{source}: field 'key': {data['key']!r} does not match the feature "
                               f"(expected {expected!r})")
        return cls(key=data["key"], feature=dict(f), entries=[dict(e) for e in data["entries"]],
                   matches=[dict(m) for m in data["matches"]], artifacts=[dict(a) for a in data["artifacts"]])


def load_json(path: Path) -> Any:
    """The JSON value in ``path``; invalid JSON is a `DossierError` naming the file and line."""
    return read_json_file(path, missing="no file at {path}", invalid=_invalid)[1]


def _invalid(path: Path, exc: json.JSONDecodeError) -> DossierError:
    return DossierError(f"{path}:{exc.lineno}: not valid JSON: {exc.msg}")


def read_dossier(path: str | Path) -> Dossier:
    """Read ``dossier.json`` (or the dossier folder holding it).

    Raises:
        FileNotFoundError: no dossier there.
        DossierError: invalid JSON (with its line) or a schema problem (with the field).
    """
    p, data = read_json_file(path, name=DOSSIER_FILE, invalid=_invalid,
                             missing="no dossier at {path} (expected a dossier.json written by `interpkit dossier add`)")
    dossier = Dossier.from_dict(data, source=str(p))
    dossier.path = p
    return dossier


def write_dossier(project_dir: str | Path, dossier: Dossier) -> Path:
    """Write the dossier to ``<project>/dossiers/<slug>/dossier.json`` atomically; return the path."""
    data = dossier.to_dict()
    _check(data, _SCHEMA, "", "<dossier being written>")  # never write a file the reader would refuse
    path = dossier_dir(project_dir, dossier.key) / DOSSIER_FILE
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    dossier.path = path
    return path
