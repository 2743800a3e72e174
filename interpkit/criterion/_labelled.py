"""The labelled compiler: the user's own scores or labels, read from a JSONL, CSV or parquet file.

The file has a text column and a score column (numbers in [0, 1], passed through) or a label column
(the given positive labels -> 1, everything else -> 0, or only the given negative labels when
those are listed and anything else is an error). Every problem names the place:
``labels.csv:7: field 'label': expected one of the positive labels ["yes"] or the negative labels
["no"], got "maybe"``. ``score_texts`` looks texts up in the file (unknown texts get score None);
``compile`` without a pool balances and splits the file's own rows.

Example:
    >>> comp = LabelledCompiler(rows=[{"text": "a", "label": "yes"}, {"text": "b", "label": "no"}],
    ...                         label_column="label", positive_labels=["yes"])
    >>> [(s.score, s.label) for s in comp.score_texts("my criterion", ["a", "b", "c"])]
    [(1.0, 'positive'), (0.0, 'negative'), (None, None)]
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interpkit.records import RecordError

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, register_compiler

if TYPE_CHECKING:
    from interpkit.sources import PromptRow

__all__ = ["LabelledCompiler", "LabelledRow", "read_labelled"]

_NO_COLUMN: Any = object()

LabelledRow = tuple[str | int, str, float, str]
"""``(row_id, text, score, label)`` as `read_labelled` returns them."""


def _iter_raw(path: Path) -> Iterator[tuple[int, Mapping[str, Any]]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        from interpkit.records._jsonl import iter_json_objects

        yield from iter_json_objects(path)
    elif suffix in (".csv", ".tsv"):
        with open(path, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            for row in reader:
                yield reader.line_num, row
    elif suffix == ".parquet":
        import pandas as pd

        # parquet has no lines: "line" is the 1-based row number
        for i, row in enumerate(pd.read_parquet(path).to_dict(orient="records"), start=1):
            yield i, row
    else:
        raise ValueError(f"{path}: labelled data must be .jsonl, .csv, .tsv or .parquet, not {suffix or 'no suffix'!r}")


def read_labelled(
    source: str | os.PathLike[str] | Iterable[Mapping[str, Any]],
    *,
    text_column: str = "text",
    score_column: str | None = None,
    label_column: str | None = None,
    positive_labels: Sequence[str] = ("1", "positive", "true", "yes"),
    negative_labels: Sequence[str] | None = None,
    id_column: str | None = None,
    threshold: float = 0.5,
) -> list[LabelledRow]:
    """Rows ``(row_id, text, score, label)`` from a labelled file or in-memory rows.

    Args:
        source: a ``.jsonl``/``.csv``/``.tsv``/``.parquet`` file, or mappings (rows).
        text_column: the column holding the text.
        score_column: a column of numbers in [0, 1] (label: positive at or above ``threshold``).
        label_column: a column of labels (used for the label, and for the score when no score
            column is given). One of ``score_column``/``label_column`` is required.
        positive_labels: labels meaning positive (compared as stripped, case-folded strings).
        negative_labels: labels meaning negative; None = every non-positive label.
        id_column: a column of row ids; default the line (row) number.
        threshold: score cut for the label when only scores are given.

    Raises:
        RecordError: a row lacks a column or holds a bad value (names file, line and column).
        ValueError: neither a score nor a label column, or an unreadable file type.
        FileNotFoundError: the file does not exist.
    """
    if score_column is None and label_column is None:
        raise ValueError("labelled data needs a score column or a label column (--score-column/--label-column)")
    pos = {str(v).strip().casefold() for v in positive_labels}
    neg = None if negative_labels is None else {str(v).strip().casefold() for v in negative_labels}
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"labelled data file not found: {path}")
        where, raw = str(path), _iter_raw(path)
    else:
        where, raw = "<rows>", enumerate(source, start=1)
    out: list[LabelledRow] = []
    for line, row in raw:
        def fail(expected: str, got: Any, column: str, line: int = line) -> RecordError:
            if got is _NO_COLUMN:
                return RecordError(expected, field=column, path=where, line=line, rendered="no such column")
            return RecordError(expected, got, field=column, path=where, line=line)

        if text_column not in row:
            raise fail(f"a text column {text_column!r} (columns: {sorted(row)})", _NO_COLUMN, text_column)
        text = row[text_column]
        if not isinstance(text, str) or not text.strip():
            raise fail("a non-empty string", text, text_column)
        label: str | None = None
        score: float | None = None
        if label_column is not None:
            if label_column not in row:
                raise fail(f"a label column {label_column!r}", _NO_COLUMN, label_column)
            value = row[label_column]
            key = str(value).strip().casefold()
            if key in pos:
                label = "positive"
            elif neg is None or key in neg:
                label = "negative"
            else:
                raise fail(f"one of the positive labels {sorted(pos)} or the negative labels {sorted(neg)}",
                           value, label_column)
            score = 1.0 if label == "positive" else 0.0
        if score_column is not None:
            if score_column not in row:
                raise fail(f"a score column {score_column!r}", _NO_COLUMN, score_column)
            value = row[score_column]
            try:
                score = float(value)
            except (TypeError, ValueError):
                raise fail("a number in [0, 1]", value, score_column) from None
            if math.isnan(score) or not 0.0 <= score <= 1.0:
                raise fail("a number in [0, 1]", value, score_column)
            if label is None:
                label = "positive" if score >= threshold else "negative"
        row_id = row[id_column] if id_column is not None and id_column in row else line
        out.append((row_id, text, float(score), str(label)))
    if not out:
        raise ValueError(f"{where}: labelled data has no rows")
    return out


@register_compiler
class LabelledCompiler(CriterionCompiler):
    """Scores from the user's labelled data (see `read_labelled` for the options).

    Args:
        path: the labelled file (or give ``rows``).
        rows: in-memory rows (mappings) instead of a file.
        **options: `read_labelled` options (columns, labels, threshold).
    """

    name = "labelled"

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 rows: Iterable[Mapping[str, Any]] | None = None, **options: Any) -> None:
        if (path is None) == (rows is None):
            raise ValueError("the labelled compiler needs exactly one of path= (a file) or rows=")
        options.setdefault("text_column", "text")
        if options.get("score_column") is None and options.get("label_column") is None:
            options["score_column"] = "criterion_score" if options["text_column"] == "text" else "score"
        self.path = None if path is None else str(path)
        self.options = options
        self.rows = read_labelled(path if path is not None else list(rows or ()), **options)
        self._by_text = {text: (score, label) for _, text, score, label in self.rows}

    def describe(self) -> dict[str, Any]:
        """Compiler name, source file and column options."""
        return {"compiler": self.name, "path": self.path, **{k: _jsonable(v) for k, v in self.options.items()}}

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Each text's score and label from the data; a text not in the data gets score None."""
        base = {**self.describe(), "criterion": as_criterion(criterion).text}
        out = []
        for text in texts:
            hit = self._by_text.get(text)
            if hit is None:
                out.append(ScoredExample(text=text, score=None, provenance={**base, "why": "text not in labelled data"}))
            else:
                out.append(ScoredExample(text=text, score=hit[0], label=hit[1], provenance=base))
        return out

    def compile(self, criterion: Criterion | str, pool: Sequence[str] | Sequence[PromptRow] | None = None,
                **kw: Any) -> list[ScoredExample]:
        """Balance and split the labelled rows themselves (``pool=None``) or a pool looked up in them."""
        if pool is None:
            from interpkit.sources import PromptRow

            pool = [PromptRow(prompt_id=rid, text=text) for rid, text, _, _ in self.rows]
        return super().compile(criterion, pool, **kw)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, (tuple, set, frozenset)) else value
