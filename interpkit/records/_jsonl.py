"""Streaming JSONL readers and atomic writers for the three record formats.

A *source* is a file path (``.jsonl``, or ``.jsonl.gz`` read through gzip), an open text stream
or any iterable of lines (``sys.stdin``), or an iterable of already-parsed dicts. Readers are
generators: they hold one line at a time. Blank lines are skipped; every error is a
`RecordError` that names the source, the line and the field::

    for rec in iter_activation_records("acts.jsonl"):
        ...
    write_jsonl("copy.jsonl", records)   # atomic: the old file or the new one, never half
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

from .._io import atomic_open
from ._activation import ActivationRecord
from ._dump import FeatureDump
from ._errors import RecordError
from ._intervention import InterventionRecord

__all__ = [
    "RecordKind",
    "Source",
    "detect_record_kind",
    "iter_activation_records",
    "iter_feature_dumps",
    "iter_intervention_records",
    "iter_records",
    "read_activation_records",
    "read_feature_dumps",
    "read_intervention_records",
    "write_jsonl",
]

RecordKind = Literal["activation", "feature_dump", "intervention"]
Source = str | os.PathLike[str] | Iterable[str] | Iterable[bytes] | Iterable[Mapping[str, Any]]
_R = TypeVar("_R")
# Unicode line breaks json.dumps leaves raw with ensure_ascii=False; str.splitlines would split on them.
_LINE_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
_PARSERS: dict[str, Callable[..., Any]] = {
    "activation": ActivationRecord.from_dict,
    "feature_dump": FeatureDump.from_dict,
    "intervention": InterventionRecord.from_dict,
}


def _source_name(source: Any, given: str | None) -> str:
    if given is not None:
        return given
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<records>"


def _iter_text_lines(lines: Iterable[Any], name: str) -> Iterator[tuple[int, Any]]:
    it = iter(lines)
    lineno = 0
    while True:
        try:
            line = next(it)
        except StopIteration:
            return
        except UnicodeDecodeError as err:
            raise RecordError(
                "UTF-8 text", rendered=f"undecodable bytes ({err.reason})", path=name, line=lineno + 1
            ) from None
        lineno += 1
        yield lineno, line


def _iter_rows(source: Source, name: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_number, parsed_object)`` for every non-blank line or in-memory row."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no such records file")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as fh:
            yield from _iter_rows(fh, name)
        return
    for lineno, line in _iter_text_lines(source, name):
        if isinstance(line, Mapping):
            yield lineno, line
            continue
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise RecordError(
                    "UTF-8 text", rendered=f"undecodable bytes ({err.reason})", path=name, line=lineno
                ) from None
        if not isinstance(line, str):
            raise RecordError("a line of text or a JSON object", line, path=name, line=lineno)
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(
                "a JSON object on one line",
                rendered=f"invalid JSON ({err.msg} at column {err.colno})",
                path=name,
                line=lineno,
            ) from None
        if not isinstance(obj, dict):
            raise RecordError("a JSON object", obj, path=name, line=lineno)
        yield lineno, obj


def iter_json_objects(source: Source, *, source_name: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` for every non-blank line of a JSONL file (``.gz`` too), an open text
    file, or in-memory rows, with the same located errors as the record readers (undecodable bytes,
    invalid JSON with its column, a line that is not a JSON object)."""
    return _iter_rows(source, _source_name(source, source_name))


def _iter_parsed(
    source: Source, parse: Callable[..., _R], source_name: str | None, lenient: bool
) -> Iterator[_R]:
    name = _source_name(source, source_name)
    if isinstance(source, (str, os.PathLike)) and not Path(source).is_file():
        raise FileNotFoundError(f"{name}: no such records file")
    return _parse_rows(source, parse, name, lenient)


def _parse_rows(source: Source, parse: Callable[..., _R], name: str, lenient: bool) -> Iterator[_R]:
    for lineno, row in _iter_rows(source, name):
        try:
            yield parse(row, lenient=lenient)
        except RecordError as err:
            raise err.located(path=name, line=lineno) from None


def iter_activation_records(
    source: Source, *, lenient: bool = False, source_name: str | None = None
) -> Iterator[ActivationRecord]:
    """Stream `ActivationRecord` rows from a JSONL source.

    Args:
        source: a path, an iterable of lines, or an iterable of dicts.
        lenient: keep misspelt-looking unknown keys as extras instead of raising.
        source_name: the name used in error messages (defaults to the path or stream name).

    Yields:
        One record per non-blank line.

    Raises:
        RecordError: a line is not valid JSON or not a valid activation record.
        FileNotFoundError: the path does not exist.
    """
    return _iter_parsed(source, ActivationRecord.from_dict, source_name, lenient)


def iter_feature_dumps(
    source: Source, *, lenient: bool = False, source_name: str | None = None
) -> Iterator[FeatureDump]:
    """Stream `FeatureDump` rows from a JSONL source (arguments as `iter_activation_records`)."""
    return _iter_parsed(source, FeatureDump.from_dict, source_name, lenient)


def iter_intervention_records(
    source: Source, *, lenient: bool = False, source_name: str | None = None
) -> Iterator[InterventionRecord]:
    """Stream `InterventionRecord` rows from a JSONL source (arguments as `iter_activation_records`).

    Raises:
        RecordError: also for an unknown intervention kind (never silently skipped).
    """
    return _iter_parsed(source, InterventionRecord.from_dict, source_name, lenient)


def read_activation_records(source: Source, **kwargs: Any) -> list[ActivationRecord]:
    """All rows of `iter_activation_records` as a list."""
    return list(iter_activation_records(source, **kwargs))


def read_feature_dumps(source: Source, **kwargs: Any) -> list[FeatureDump]:
    """All rows of `iter_feature_dumps` as a list."""
    return list(iter_feature_dumps(source, **kwargs))


def read_intervention_records(source: Source, **kwargs: Any) -> list[InterventionRecord]:
    """All rows of `iter_intervention_records` as a list."""
    return list(iter_intervention_records(source, **kwargs))


def _classify(row: Mapping[str, Any]) -> RecordKind | None:
    if "features" in row:
        return "activation"
    if {"intervention", "baseline_score", "intervention_score"} & row.keys():
        return "intervention"
    if {"causal_effects", "activation_signature", "examples"} & row.keys():
        return "feature_dump"
    if "feature_id" in row and "prompt_id" not in row:
        return "feature_dump"
    return None


def detect_record_kind(source: str | os.PathLike[str], *, source_name: str | None = None) -> RecordKind:
    """Which of the three formats a JSONL file holds, judged from its first non-blank row.

    Raises:
        RecordError: the file is empty or its first row matches none of the formats.
    """
    name = _source_name(source, source_name)
    for lineno, row in _iter_rows(source, name):
        kind = _classify(row)
        if kind is None:
            raise RecordError(
                "an activation record (with 'features'), an intervention record (with "
                "'intervention') or a feature dump (with 'feature_id')",
                rendered="a row with keys " + ", ".join(sorted(row)[:8]),
                path=name,
                line=lineno,
            )
        return kind
    raise RecordError("at least one record", rendered="an empty file", path=name)


def iter_records(
    source: str | os.PathLike[str],
    kind: RecordKind | None = None,
    *,
    lenient: bool = False,
    source_name: str | None = None,
) -> Iterator[ActivationRecord | FeatureDump | InterventionRecord]:
    """Stream records of ``kind`` (detected with `detect_record_kind` when None) from a file."""
    if kind is None:
        kind = detect_record_kind(source, source_name=source_name)
    if kind not in _PARSERS:
        raise ValueError(f"unknown record kind {kind!r}; expected one of {sorted(_PARSERS)}")
    return _iter_parsed(source, _PARSERS[kind], source_name, lenient)


def _row_dict(item: Any, index: int) -> dict[str, Any]:
    if hasattr(item, "to_dict"):
        return item.to_dict()
    if isinstance(item, Mapping):
        return dict(item)
    raise TypeError(f"write_jsonl: item {index} is a {type(item).__name__}, expected a record or a dict")


def _write_lines(fh: IO[str], records: Iterable[Any]) -> int:
    count = 0
    for count, item in enumerate(records, start=1):
        try:
            line = json.dumps(_row_dict(item, count - 1), ensure_ascii=False, allow_nan=True)
            line = line.translate(_LINE_BREAKS)
        except TypeError as err:
            raise TypeError(f"write_jsonl: row {count} is not JSON-serialisable: {err}") from None
        fh.write(line)
        fh.write("\n")
    return count


def write_jsonl(target: str | os.PathLike[str] | IO[str], records: Iterable[Any]) -> int:
    """Write records (anything with ``to_dict()``) or dicts as JSONL, one per line.

    A path is written atomically (``.gz`` paths gzip-compressed); an open text stream is
    written in place.

    Args:
        target: a path or an open text stream.
        records: the rows, consumed lazily.

    Returns:
        The number of rows written.
    """
    if not isinstance(target, (str, os.PathLike)):
        return _write_lines(target, records)
    path = Path(target)
    if path.suffix == ".gz":
        with atomic_open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
            count = _write_lines(text, records)
            text.flush()
            text.detach()
            return count
    with atomic_open(path, "w") as fh:
        return _write_lines(fh, records)
