"""Prompt-dataset JSONL reader: strict rows, file:line:field errors, stable hashing."""

from __future__ import annotations

import json

import pytest

from interpkit.records._errors import RecordError
from interpkit.sources._datasets import (
    PromptRow,
    as_prompt_rows,
    dataset_hash,
    iter_prompt_dataset,
    read_prompt_dataset,
)


def write(tmp_path, lines):
    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines) + "\n")
    return path


GOOD = {"prompt_id": "p1", "text": "the cat", "criterion_score": 0.5}


def test_reads_rows_with_optional_fields_and_extras(tmp_path):
    path = write(
        tmp_path,
        [
            GOOD,
            "",
            {
                "prompt_id": 2,
                "text": "a dog",
                "criterion_score": None,
                "split": "test",
                "target_tokens": ["dog"],
                "source": "web",
            },
        ],
    )
    rows = read_prompt_dataset(path)
    assert [r.prompt_id for r in rows] == ["p1", 2]
    assert rows[0].criterion_score == 0.5 and rows[0].split is None and rows[0].target_tokens is None
    assert (
        rows[1].split == "test" and rows[1].target_tokens == ("dog",) and rows[1].extra == {"source": "web"}
    )
    assert PromptRow.from_dict(rows[1].to_dict()) == rows[1]
    assert rows[1].to_dict()["source"] == "web"


@pytest.mark.parametrize(
    ("row", "field", "expected"),
    [
        (
            {"prompt_id": "p", "text": "x", "criterion_score": "high"},
            "criterion_score",
            "a finite number or null",
        ),
        ({"prompt_id": "p", "text": 3, "criterion_score": 1}, "text", "a string"),
        ({"text": "x", "criterion_score": 1}, "prompt_id", "a non-empty string or an integer id"),
        ({"prompt_id": "p", "text": "x"}, "criterion_score", "a finite number or null"),
        ({"prompt_id": "p", "text": "x", "criterion_score": 1, "split": "dev"}, "split", '"train", "test"'),
        (
            {"prompt_id": "p", "text": "x", "criterion_score": 1, "target_tokens": ["a", 2]},
            "target_tokens[1]",
            "",
        ),
        (
            {"prompt_id": "p", "text": "x", "criterion_score": 1, "target_tokens": "a"},
            "target_tokens",
            "a list",
        ),
        ({"prompt_id": "p", "text": "x", "criterion_score": True}, "criterion_score", "a finite number"),
        (
            {"prompt_id": "p", "text": "x", "criterion_scor": 1},
            "criterion_scor",
            "the field name 'criterion_score'",
        ),
    ],
)
def test_errors_name_file_line_and_field(tmp_path, row, field, expected):
    path = write(tmp_path, [GOOD, "   ", row])
    with pytest.raises(RecordError) as info:
        read_prompt_dataset(path)
    err = info.value
    assert err.line == 3 and err.field == field and err.path == str(path)
    assert str(err).startswith(f"{path}:3: field '{field}': expected {expected}")


def test_invalid_json_and_duplicate_ids(tmp_path):
    path = write(tmp_path, [GOOD, "{oops"])
    with pytest.raises(RecordError, match=r"prompts.jsonl:2: expected a JSON object, got invalid JSON"):
        read_prompt_dataset(path)
    path = write(tmp_path, [GOOD, {**GOOD, "text": "again"}])
    with pytest.raises(
        RecordError, match=r":2: field 'prompt_id': expected a unique id \(already used on line 1\)"
    ):
        read_prompt_dataset(path)


def test_reader_streams_lazily(tmp_path):
    path = write(tmp_path, [GOOD, "{broken"])
    it = iter_prompt_dataset(path)
    assert next(it).prompt_id == "p1"  # the bad second line is only read on demand
    with pytest.raises(RecordError):
        next(it)


def test_lenient_keeps_misspelt_keys(tmp_path):
    path = write(tmp_path, [{"prompt_id": "p", "text": "x", "criterion_score": 1, "Split": "test"}])
    with pytest.raises(RecordError, match="Split"):
        read_prompt_dataset(path)
    (row,) = read_prompt_dataset(path, lenient=True)
    assert row.extra == {"Split": "test"} and row.split is None


def test_dataset_hash_depends_on_ids_texts_and_order_only():
    a = [PromptRow(prompt_id=1, text="x", criterion_score=1.0), PromptRow(prompt_id=2, text="y")]
    rescored = [PromptRow(prompt_id=1, text="x", criterion_score=0.0), PromptRow(prompt_id=2, text="y")]
    assert dataset_hash(a) == dataset_hash(rescored)
    assert dataset_hash(a) != dataset_hash(a[::-1])
    assert dataset_hash(["x", "y"]) != dataset_hash(a) and len(dataset_hash([])) == 64


def test_as_prompt_rows_locates_bad_dicts():
    rows = as_prompt_rows(["a", GOOD])
    assert rows[0].prompt_id == 0 and rows[1].prompt_id == "p1"
    with pytest.raises(RecordError, match=r"<rows>:2: field 'text'"):
        as_prompt_rows(["a", {"prompt_id": 1, "criterion_score": 1}])
