"""Prompt datasets: the texts a model is run on, one JSONL row per prompt.

Each row holds ``prompt_id`` (string or integer, unique in the file), ``text`` and
``criterion_score`` (a finite number or null), and optionally ``split`` ("train"/"test") and
``target_tokens`` (a list of strings the criterion is about, such as the unit tokens of a
"measurement unit" criterion). Any other key is kept in ``PromptRow.extra``. The reader streams one
line at a time and every error names ``file:line: field``::

    prompts.jsonl:7: field 'criterion_score': expected a finite number or null, got "high"

Example:
    >>> row = PromptRow.from_dict({"prompt_id": "p1", "text": "hi", "criterion_score": 1})
    >>> row.criterion_score, dataset_hash([row])[:8]
    (1.0, 'd139439d')
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpkit.records._checks import (
    check_id,
    check_number,
    check_str,
    freeze_extra,
    split_fields,
)
from interpkit.records._errors import RecordError

__all__ = ["PromptRow", "dataset_hash", "iter_prompt_dataset", "read_prompt_dataset"]

_FIELDS = ("prompt_id", "text", "criterion_score", "split", "target_tokens")
_REQUIRED = {
    "prompt_id": "a non-empty string or an integer id",
    "text": "a string",
    "criterion_score": "a finite number or null",
}
_SPLITS = ("train", "test")


def _check_target_tokens(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise RecordError("a list of strings or null", value, field="target_tokens")
    out = tuple(value)
    for i, item in enumerate(out):
        check_str(item, f"target_tokens[{i}]", nonempty=True)
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptRow:
    """One prompt of a dataset."""

    prompt_id: str | int
    """Identifier, unique within its dataset."""
    text: str
    """The text the model reads (before any chat template)."""
    criterion_score: float | None = None
    """How strongly the prompt shows the criterion; None when unscored."""
    split: str | None = None
    """``"train"`` or ``"test"`` when the dataset fixes the split; None lets ranking assign one."""
    target_tokens: tuple[str, ...] | None = None
    """Tokens the criterion is about, when it is token-level."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Any other keys of the row, kept verbatim and written back by `to_dict`."""

    def __post_init__(self) -> None:
        s = object.__setattr__
        s(self, "prompt_id", check_id(self.prompt_id, "prompt_id"))
        s(self, "text", check_str(self.text, "text"))
        s(self, "criterion_score", check_number(self.criterion_score, "criterion_score", optional=True))
        split = check_str(self.split, "split", optional=True)
        if split is not None and split not in _SPLITS:
            raise RecordError('"train", "test" or null', split, field="split")
        s(self, "split", split)
        s(self, "target_tokens", _check_target_tokens(self.target_tokens))
        s(self, "extra", freeze_extra(self.extra, _FIELDS))

    def to_dict(self) -> dict[str, Any]:
        """The JSON row: known fields (optional ones only when set) and the extras at top level."""
        out: dict[str, Any] = {
            "prompt_id": self.prompt_id,
            "text": self.text,
            "criterion_score": self.criterion_score,
        }
        if self.split is not None:
            out["split"] = self.split
        if self.target_tokens is not None:
            out["target_tokens"] = list(self.target_tokens)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, lenient: bool = False, scores_optional: bool = False) -> PromptRow:
        """Parse a JSON row.

        Args:
            d: the parsed JSON object.
            lenient: keep unknown keys that look like misspelt field names as extras.
            scores_optional: accept a row without ``criterion_score`` (read as unscored), for
                readers whose job is to add the scores (``score-prompts``).

        Raises:
            RecordError: a field is missing or malformed (the error names the field).
        """
        required = {k: v for k, v in _REQUIRED.items() if k != "criterion_score"} if scores_optional else _REQUIRED
        known, extra = split_fields(d, _FIELDS, required, lenient=lenient)
        return cls(**known, extra=extra)


def iter_prompt_dataset(
    path: str | os.PathLike[str], *, lenient: bool = False, scores_optional: bool = False
) -> Iterator[PromptRow]:
    """Stream the rows of a prompt-dataset JSONL file, one line at a time.

    Blank lines are skipped. Duplicate ``prompt_id`` values are refused (the id keys tables and
    caches), which costs one set of ids in memory.

    Args:
        path: the JSONL file.
        lenient: see `PromptRow.from_dict`.
        scores_optional: rows may leave out ``criterion_score`` (see `PromptRow.from_dict`).

    Yields:
        One `PromptRow` per non-blank line.

    Raises:
        RecordError: invalid JSON, a malformed row or a duplicate id, located at ``file:line``.
    """
    path = Path(path)
    seen: dict[str | int, int] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise RecordError(
                    "a JSON object", rendered=f"invalid JSON ({exc.msg})", path=str(path), line=lineno
                ) from None
            try:
                row = PromptRow.from_dict(data, lenient=lenient, scores_optional=scores_optional)
            except RecordError as exc:
                raise exc.located(path=str(path), line=lineno) from None
            if row.prompt_id in seen:
                raise RecordError(
                    f"a unique id (already used on line {seen[row.prompt_id]})",
                    row.prompt_id,
                    field="prompt_id",
                    path=str(path),
                    line=lineno,
                )
            seen[row.prompt_id] = lineno
            yield row


def read_prompt_dataset(
    path: str | os.PathLike[str], *, lenient: bool = False, scores_optional: bool = False
) -> list[PromptRow]:
    """All rows of a prompt-dataset JSONL file (see `iter_prompt_dataset`)."""
    return list(iter_prompt_dataset(path, lenient=lenient, scores_optional=scores_optional))


def as_prompt_rows(rows: Iterable[PromptRow | Mapping[str, Any] | str]) -> list[PromptRow]:
    """Coerce prompts given as rows, dicts or bare texts into `PromptRow` (bare texts get ids 0..n-1)."""
    out: list[PromptRow] = []
    for i, row in enumerate(rows):
        if isinstance(row, PromptRow):
            out.append(row)
        elif isinstance(row, str):
            out.append(PromptRow(prompt_id=i, text=row))
        else:
            try:
                out.append(PromptRow.from_dict(row))
            except RecordError as exc:
                raise exc.located(path="<rows>", line=i + 1) from None
    return out


def dataset_hash(rows: Iterable[PromptRow | str]) -> str:
    """Hex sha256 over the ordered ``(prompt_id, text)`` pairs (bare texts hash with a null id).

    Scores, splits and extras are left out on purpose: activations depend on the texts only, so
    re-scoring a dataset keeps its activation cache valid.
    """
    h = hashlib.sha256()
    for row in rows:
        pid, text = (None, row) if isinstance(row, str) else (row.prompt_id, row.text)
        h.update(json.dumps([pid, text], ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()
