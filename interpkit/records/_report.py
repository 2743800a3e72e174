"""Reports as a file format: ``report.json`` (schema version 2), its record and strict reader.

`ReportRecord` is what one inspection found, field for field as ``report.json`` holds it, with the
ranking kept as its JSON object. The report layer's ``Report`` is this record with the ranking decoded
into a `~interpkit.rank.RankingResult` and the renderers (``report.md``, HTML cards); it is what
``interpkit.load_report`` returns. Code below the report layer that only reads a report's
features (match's fingerprints, causal's export of a report's top features) uses `read_report`,
so it never imports the report layer. Every schema problem is a `ReportSchemaError` naming the
file and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from .._constants import REPORT_JSON_NAME
from .._io import read_json_file
from .._version import __version__

__all__ = ["REPORT_KIND", "FeatureEntryRecord", "InputFile", "ReportRecord", "ReportSchemaError", "read_report"]

_R = TypeVar("_R", bound="ReportRecord")

REPORT_KIND = "interpkit_report"
SCHEMA_VERSION = 2
"""Report schema: 2 added ``features[].explanation``; version 1 files still load."""


class ReportSchemaError(ValueError):
    """A report file that does not follow the report schema; the message names the file and field."""


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf by None recursively: report.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _json_safe(value.item())
    return value


def _strict_keys(cls: type, data: Mapping[str, Any], where: str, skip: Sequence[str] = ()) -> None:
    known = {f.name for f in fields(cls)} - set(skip)
    unknown = sorted(set(data) - known - {"kind", "schema_version", "interpkit_version"})
    if unknown:
        raise ReportSchemaError(f"{where}: unknown field(s) {unknown}; expected some of {sorted(known)}")
    missing = sorted(
        f.name
        for f in fields(cls)
        if f.name in known and f.name not in data and f.default is MISSING and f.default_factory is MISSING
    )
    if missing:
        raise ReportSchemaError(f"{where}: missing field(s) {missing}")


@dataclass(frozen=True, slots=True, kw_only=True)
class InputFile:
    """One input of a run, identified by content."""

    role: str
    """What the file was used as: ``records``, ``features``, ``interventions``, ``dataset`` ..."""
    path: str
    """The path as given by the user."""
    sha256: str
    """Hex sha256 of the file's bytes when it was read."""
    rows: int | None = None
    """Rows read from it, when it is a JSONL file."""

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "path": self.path, "sha256": self.sha256, "rows": self.rows}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "inputs[]") -> InputFile:
        _strict_keys(cls, data, where)
        return cls(**dict(data))


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureEntryRecord:
    """A top feature as the report shows it: its identity, ranking components and evidence."""

    rank: int
    """1-based position in the ranking's combined order."""
    feature_id: str
    label: str | None = None
    model: str | None = None
    site: str | None = None
    layer: int | str | None = None
    source: str | None = None
    components: Mapping[str, Any] = field(default_factory=dict)
    """The ranking's breakdown for this feature (``RankingResult.component``)."""
    top_examples: tuple[Mapping[str, Any], ...] = ()
    """Highest-activating examples: ``example_id``, ``text``, ``activation``, ``criterion_score``, ``split``."""
    causal_records: tuple[Mapping[str, Any], ...] = ()
    """Per intervention kind: ``intervention``, ``n``, ``mean_signed_effect``, ``mean_side_effect``."""
    imported_causal_effects: Mapping[str, float] = field(default_factory=dict)
    """Effects copied from a feature dump's ``causal_effects``: reported, never used for ranking."""
    explanation: Mapping[str, Any] | None = None
    """What ``interpkit.explain`` found (``FeatureExplanation.to_dict()``): label and its score,
    top and quantile examples with token activations, histogram, logit effects, self-explanation."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "feature_id": self.feature_id,
            "label": self.label,
            "model": self.model,
            "site": self.site,
            "layer": self.layer,
            "source": self.source,
            "components": _json_safe(dict(self.components)),
            "top_examples": _json_safe([dict(e) for e in self.top_examples]),
            "causal_records": _json_safe([dict(c) for c in self.causal_records]),
            "imported_causal_effects": _json_safe(dict(self.imported_causal_effects)),
            "explanation": None if self.explanation is None else _json_safe(dict(self.explanation)),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "features[]") -> FeatureEntryRecord:
        _strict_keys(cls, data, where)
        for name in ("rank", "feature_id"):
            if name not in data:
                raise ReportSchemaError(f"{where}: missing field {name!r}")
        d = dict(data)
        d["top_examples"] = tuple(d.get("top_examples", ()))
        d["causal_records"] = tuple(d.get("causal_records", ()))
        return cls(**d)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRecord:
    """What one inspection found, as ``report.json`` holds it (see the module docstring)."""

    model: str
    criterion: str
    backend: str
    synthetic: bool
    """True when any input was synthetic (the toy backend); every view says so."""
    ranking: Any
    """The full ranking: its JSON object here; a :class:`~interpkit.rank.RankingResult` in
    the report layer's ``Report``."""
    features: tuple[FeatureEntryRecord, ...] = ()
    inputs: tuple[InputFile, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)
    """Where ``report.json`` was saved or loaded from (not serialised)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": REPORT_KIND,
            "schema_version": SCHEMA_VERSION,
            "interpkit_version": __version__,
            "model": self.model,
            "criterion": self.criterion,
            "backend": self.backend,
            "synthetic": self.synthetic,
            "inputs": [i.to_dict() for i in self.inputs],
            "settings": _json_safe(dict(self.settings)),
            "warnings": list(self.warnings),
            "features": [f.to_dict() for f in self.features],
            "ranking": _json_safe(self._encode_ranking()),
        }

    @classmethod
    def from_dict(cls: type[_R], data: Mapping[str, Any], *, source: str = "<report>") -> _R:
        """Rebuild a report from its JSON form; strict about kind, version and fields."""
        if not isinstance(data, Mapping):
            raise ReportSchemaError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("kind") != REPORT_KIND:
            raise ReportSchemaError(f"{source}: field 'kind': expected {REPORT_KIND!r}, got {data.get('kind')!r}")
        version = data.get("schema_version")
        if not isinstance(version, int) or version > SCHEMA_VERSION or version < 1:
            raise ReportSchemaError(
                f"{source}: field 'schema_version': this interpkit reads versions 1..{SCHEMA_VERSION}, "
                f"got {version!r}"
            )
        _strict_keys(cls, data, source, skip=("path",))
        try:
            ranking = cls._decode_ranking(data["ranking"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportSchemaError(f"{source}: field 'ranking': {exc}") from exc
        return cls(
            model=data["model"],
            criterion=data["criterion"],
            backend=data["backend"],
            synthetic=bool(data["synthetic"]),
            ranking=ranking,
            features=tuple(
                cls._decode_feature(f, f"{source}: features[{i}]") for i, f in enumerate(data.get("features", []))
            ),
            inputs=tuple(
                InputFile.from_dict(f, f"{source}: inputs[{i}]") for i, f in enumerate(data.get("inputs", []))
            ),
            settings=dict(data.get("settings", {})),
            warnings=tuple(data.get("warnings", [])),
        )

    # The hooks the report layer's Report overrides: there the ranking is a RankingResult (rank sits
    # above the records) and each feature the report package's FeatureEntry (with from_table).
    @classmethod
    def _decode_feature(cls, data: Any, where: str) -> FeatureEntryRecord:
        """One ``features[]`` item from its JSON form."""
        return FeatureEntryRecord.from_dict(data, where)

    @classmethod
    def _decode_ranking(cls, data: Any) -> Any:
        """The ``ranking`` field's value from its JSON form."""
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        return dict(data)

    def _encode_ranking(self) -> Any:
        """The ``ranking`` field's JSON form."""
        return dict(self.ranking)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def load(cls: type[_R], path: str | Path) -> _R:
        """Load ``report.json`` (or the folder holding it) written by any interpkit command.

        Raises:
            FileNotFoundError: no report at ``path``.
            ReportSchemaError: the file is not valid JSON or not a report of a readable version.
        """
        p, data = read_json_file(
            path, name=REPORT_JSON_NAME,
            missing="no report at {path} (expected a report.json written by `interpkit inspect`)",
            invalid=lambda f, exc: ReportSchemaError(f"{f}:{exc.lineno}: not valid JSON: {exc.msg}"))
        return replace(cls.from_dict(data, source=str(p)), path=p)


def read_report(path: str | Path) -> ReportRecord:
    """`ReportRecord.load`: a report's contents, without the report layer (``interpkit.load_report``
    returns the full ``Report``)."""
    return ReportRecord.load(path)
