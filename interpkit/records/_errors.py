"""The one error type every record reader raises, with file, line and field.

A `RecordError` says where (``path:line``), what (the dotted field path, such as
``features[3].activation``), what was expected and what was found::

    records.jsonl:12: field 'features[3].activation': expected a finite number, got "abc"

Validators raise it without a location; the JSONL readers add the file and line with
`RecordError.located`, and nested parsers prefix the field with `RecordError.nested`.
"""

from __future__ import annotations

import json
from typing import Any

_MISSING: Any = object()
_MAX_SHOWN = 80


def show_value(value: Any) -> str:
    """Render ``value`` as it would appear in a JSON file, shortened for an error message."""
    if value is _MISSING:
        return "nothing (the field is missing)"
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        text = f"a Python {type(value).__name__} object"
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 1] + "…"
    return text


class RecordError(ValueError):
    """A record (or a line of a records file) does not have the expected shape.

    Attributes:
        path: the file or stream the record came from (None when parsed from a dict directly).
        line: the 1-based line number (or row number for in-memory rows), None when unknown.
        field: dotted path of the offending field (``"features[3].activation"``); None when the
            problem concerns the whole line (invalid JSON, not an object).
        expected: what the field should have held.
        got: how the offending value looked (already rendered for display).
    """

    def __init__(
        self,
        expected: str,
        got: Any = _MISSING,
        *,
        field: str | None = None,
        path: str | None = None,
        line: int | None = None,
        rendered: str | None = None,
    ) -> None:
        self.expected = expected
        self.got = rendered if rendered is not None else show_value(got)
        self.field = field
        self.path = path
        self.line = line
        super().__init__(self._message())

    def _message(self) -> str:
        where = ""
        if self.path is not None:
            where = f"{self.path}:{self.line}: " if self.line is not None else f"{self.path}: "
        elif self.line is not None:
            where = f"line {self.line}: "
        what = f"field '{self.field}': " if self.field else ""
        return f"{where}{what}expected {self.expected}, got {self.got}"

    def __reduce__(self) -> tuple[Any, ...]:
        kwargs = {"field": self.field, "path": self.path, "line": self.line, "rendered": self.got}
        return (_rebuild, (self.expected, kwargs))

    def located(self, *, path: str | None, line: int | None) -> RecordError:
        """The same error, placed at ``path:line``."""
        return RecordError(self.expected, field=self.field, path=path, line=line, rendered=self.got)

    def nested(self, prefix: str) -> RecordError:
        """The same error with its field placed under ``prefix`` (``"features[2]"``)."""
        if not self.field:
            field = prefix
        elif self.field.startswith("["):
            field = prefix + self.field
        else:
            field = f"{prefix}.{self.field}"
        return RecordError(self.expected, field=field, path=self.path, line=self.line, rendered=self.got)


def _rebuild(expected: str, kwargs: dict[str, Any]) -> RecordError:
    return RecordError(expected, **kwargs)
