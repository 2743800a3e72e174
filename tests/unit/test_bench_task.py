"""interpkit.bench tasks: loading the real AxBench folders, located format errors, saving, subsets,
model input strings and instruction pools."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from interpkit._testing import tiny_tokenizer
from interpkit.bench._prompts import (
    chat_prompt,
    format_pair,
    needs_bos,
    seed_instructions,
    steering_instructions,
)
from interpkit.bench._task import (
    EMPTY_CONCEPT,
    AxBenchTask,
    Concept,
    TaskFormatError,
    load_task,
    save_task,
)

DATA = Path("/work/shared/data/axbench-concept10")
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared AxBench data not found at {DATA}")


@needs_data
@pytest.mark.parametrize(("name", "n_eval", "hard"), [
    ("prod_2b_l10_v1", 770, [5, 5, 4, 4, 6, 6, 7, 2, 3, 8]),
    ("prod_2b_l20_v1", 755, [1, 5, 9, 2, 4, 9, 2, 0, 1, 2]),
])
def test_real_tasks_load_with_axbench_counts(name, n_eval, hard):
    task = load_task(DATA / name)
    assert task.name == name and len(task.concepts) == 10
    assert len(task.train) == 936 and len(task.eval) == n_eval
    info = task.describe()
    assert info["train"]["negative_pool"] == {"text": 72, "code": 72, "math": 72}
    assert [c["eval"]["hard negative"] for c in info["concepts"]] == hard
    assert all(c["eval"]["positive"] == 36 and c["eval"]["negative"] == 36 for c in info["concepts"])
    for c in task.concepts:
        rows = task.train_rows(c.id)
        assert (rows["label"] == 1).sum() == 72 and (rows["label"] == 0).sum() == 72
        assert set(rows.loc[rows["label"] == 0, "concept_genre"]) == {c.genre}
        assert set(rows.loc[rows["label"] == 0, "output_concept"]) == {EMPTY_CONCEPT}
        assert (task.train.loc[rows.index, "input"] == rows["input"]).all()  # index = positions in train
        assert len(task.eval_rows(c.id)) == 72 + hard[c.id]
    assert task.concept(0).sae_id == int(task.concept(0).ref.rsplit("/", 1)[1])
    json.dumps(info)


@needs_data
def test_real_task_round_trip_and_subset(tmp_path):
    task = load_task(DATA / "prod_2b_l10_v1")
    small = task.subset(concepts=[0, 4], max_per_class=5)
    assert [c.id for c in small.concepts] == [0, 4]
    assert small.describe()["eval"] == {"rows": 30, "positive": 10, "negative": 10, "hard negative": 10}
    assert set(small.train["concept_genre"]) == {"text", "code"}
    assert len(small.train_rows(4)) == 10
    out = save_task(small, tmp_path / "small")
    again = load_task(out)
    pd.testing.assert_frame_equal(again.train, small.train)
    pd.testing.assert_frame_equal(again.eval.drop(columns=["sae_id"]), small.eval.drop(columns=["sae_id"]))
    assert list(again.eval["sae_id"]) == list(small.eval["sae_id"])
    assert again.concepts == small.concepts


def _toy_task() -> AxBenchTask:
    concepts = (Concept(0, "fruit", "text", ref="https://x/1-res/7"), Concept(1, "loops", "code"))
    train = pd.DataFrame({
        "input": ["q0", "q1", "q2", "q3", "q4", "q5"],
        "output": ["an apple", "a pear", "for i", "while x", "plain", "pass"],
        "output_concept": ["fruit", "fruit", "loops", "loops", EMPTY_CONCEPT, EMPTY_CONCEPT],
        "concept_genre": ["text", "text", "code", "code", "text", "code"],
        "category": ["positive", "positive", "positive", "positive", "negative", "negative"],
        "dataset_category": ["instruction"] * 6,
        "concept_id": [0, 0, 1, 1, -1, -1],
    })
    evals = pd.DataFrame({
        "input": ["e0", "e1", "e2", "e3", "e4"],
        "output": ["a plum", "the sky", "date night", "for x in y", "hello"],
        "output_concept": ["fruit", "fruit", "date//a meeting", "loops", "loops"],
        "concept_genre": ["text", "text", "text", "code", "text"],
        "category": ["positive", "negative", "hard negative", "positive", "negative"],
        "dataset_category": ["instruction"] * 5,
        "concept_id": [0, 0, 0, 1, 1],
    })
    return AxBenchTask(name="toy", path=None, concepts=concepts, train=train, eval=evals, generator={"model": "m"})


def test_save_load_round_trip(tmp_path):
    task = _toy_task()
    out = save_task(task, tmp_path / "toy")
    assert sorted(p.name for p in out.iterdir()) == ["generator.json", "latent_eval_data.parquet", "metadata.jsonl",
                                                     "train_data.parquet"]
    line = json.loads((out / "metadata.jsonl").read_text().splitlines()[0])
    assert line == {"concept_id": 0, "concept": "fruit", "ref": "https://x/1-res/7",
                    "concept_genres_map": {"fruit": ["text"]}}
    again = load_task(out)
    assert again.concepts == task.concepts and again.generator == {"model": "m"}
    pd.testing.assert_frame_equal(again.train, task.train)
    pd.testing.assert_frame_equal(again.eval, task.eval)
    assert list(again.train_rows(1)["label"]) == [1, 1, 0]
    # saving again replaces the folder; a foreign folder is refused
    save_task(again.subset(concepts=1), out)
    assert len(load_task(out).concepts) == 1
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not an AxBench task folder"):
        save_task(task, tmp_path / "other")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_rotated_files_are_concatenated(tmp_path):
    out = save_task(_toy_task(), tmp_path / "toy")
    train = pd.read_parquet(out / "train_data.parquet")
    train[train.concept_id == 1].to_parquet(out / "train_data_1.parquet")
    train[train.concept_id != 1].to_parquet(out / "train_data.parquet")
    task = load_task(out)
    assert list(task.train["concept_id"]) == [0, 0, -1, -1, 1, 1]


def test_subset_caps_per_class():
    task = _toy_task().subset(concepts=1, max_per_class=1)
    assert [c.id for c in task.concepts] == [0]
    assert list(task.train["input"]) in (["q0", "q4"], ["q1", "q4"])
    assert list(task.eval["category"]) == ["positive", "negative", "hard negative"]
    assert task.selection == {"concepts": [0], "max_per_class": 1, "seed": 42, "of": "toy"}
    with pytest.raises(KeyError, match="concept ids"):
        _toy_task().subset(concepts=[5])


@pytest.mark.parametrize(("edit", "match"), [
    (lambda d: (d / "metadata.jsonl").write_text('{"concept_id": 0, "concept": "fruit"}\n{oops\n'),
     r"metadata\.jsonl:2: not valid JSON"),
    (lambda d: (d / "metadata.jsonl").write_text('{"concept_id": 0, "concept": "fruit", '
                                                 '"concept_genres_map": {"fruit": ["poetry"]}}\n'),
     r"metadata\.jsonl:1: concept_genres_map genre"),
    (lambda d: (d / "metadata.jsonl").write_text('{"concept_id": 0, "concept": "a"}\n{"concept_id": 0, "concept": "b"}\n'),
     r"metadata\.jsonl:2: duplicate concept_id 0"),
    (lambda d: pd.read_parquet(d / "train_data.parquet").drop(columns=["category"]).to_parquet(d / "train_data.parquet"),
     r"train_data\.parquet: missing column 'category'"),
    (lambda d: pd.read_parquet(d / "latent_eval_data.parquet").assign(category=["positive", "neg", "positive",
                                                                                 "positive", "positive"])
     .to_parquet(d / "latent_eval_data.parquet"),
     r"latent_eval_data\.parquet row 1 column 'category': expected one of"),
    (lambda d: pd.read_parquet(d / "latent_eval_data.parquet").assign(concept_id=[0, 0, 0, 1, 9])
     .to_parquet(d / "latent_eval_data.parquet"),
     r"latent_eval_data\.parquet row 4 column 'concept_id': concept 9 is not in metadata"),
    (lambda d: pd.read_parquet(d / "train_data.parquet").assign(output=["a", None, "b", "c", "d", "e"])
     .to_parquet(d / "train_data.parquet"),
     r"train_data\.parquet row 1 column 'output': missing value"),
])
def test_format_errors_say_where(tmp_path, edit, match):
    out = save_task(_toy_task(), tmp_path / "toy")
    edit(out)
    with pytest.raises(TaskFormatError, match=match):
        load_task(out)


def test_missing_files_are_named(tmp_path):
    out = save_task(_toy_task(), tmp_path / "toy")
    (out / "latent_eval_data.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="latent_eval_data.parquet"):
        load_task(out)
    with pytest.raises(FileNotFoundError, match="task folder not found"):
        load_task(tmp_path / "nowhere")


def test_format_pair_without_template():
    tok = tiny_tokenizer()
    text, prefix, bos = format_pair(tok, "name a fruit", "an apple")
    assert (text, prefix, bos) == ("name a fruit\n\nan apple", 1, True)
    assert chat_prompt(tok, "hi") == "hi\n\n"


TEMPLATE = ("{{ bos_token }}{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<end>\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}")


def test_format_pair_with_chat_template():
    tok = tiny_tokenizer()
    tok.chat_template = TEMPLATE
    text, prefix, bos = format_pair(tok, "hi", "yo")
    # the final "<end>\n" is removed; the template writes its own BOS, so none is prepended
    assert text == "<bos><user>hi<end>\n<assistant>yo"
    assert bos is False and not needs_bos(tok, text)
    ids = tok(text, add_special_tokens=False)["input_ids"]
    # <bos> + the 6 characters of "<user>" ("<", ">" and the digits are all <unk> in this tokenizer, so the
    # token-level common prefix alone would run past the content: it is capped at the text before it)
    assert prefix == 7
    assert tok.decode(ids[prefix:]) == tok.decode(tok("hi<end>\n<assistant>yo", add_special_tokens=False)["input_ids"])
    assert chat_prompt(tok, "hi") == "<bos><user>hi<end>\n<assistant>"
    # a template without BOS text: prepend one and count it in the prefix
    tok.chat_template = TEMPLATE.replace("{{ bos_token }}", "")
    text, prefix, bos = format_pair(tok, "hi", "yo")
    assert text == "<user>hi<end>\n<assistant>yo" and bos is True and prefix == 7


def test_seed_instructions_and_steering_pool(tmp_path):
    assert len(seed_instructions("text", "train")) == 517 and len(seed_instructions("math", "test")) == 142
    assert not set(seed_instructions("code", "train")) & set(seed_instructions("code", "test"))
    with pytest.raises(ValueError, match="unknown genre"):
        seed_instructions("poetry", "train")
    task = _toy_task()
    task.eval.loc[0, "input"] = seed_instructions("text", "test")[0]
    a = steering_instructions(task, 0)
    assert len(a) == 10 and a == steering_instructions(task, 0) and a != steering_instructions(task, 1)
    assert seed_instructions("text", "test")[0] not in a
    assert set(a) <= set(seed_instructions("text", "test"))
    alpaca = tmp_path / "alpaca_eval.json"
    pool = [{"instruction": f"task {i}", "output": "x"} for i in range(20)]
    alpaca.write_text(json.dumps(pool))
    assert steering_instructions(task, 1, n=3, source=alpaca) == list(
        pd.DataFrame(pool).sample(3, random_state=1)["instruction"])
    (tmp_path / "a.txt").write_text("one\n\ntwo\nthree\n")
    assert sorted(steering_instructions(task, 0, n=3, source=tmp_path / "a.txt")) == ["one", "three", "two"]
    (tmp_path / "a.jsonl").write_text('{"input": "x"}\n{"text": "y"}\n')
    assert sorted(steering_instructions(task, 0, n=2, source=tmp_path / "a.jsonl")) == ["x", "y"]
    with pytest.raises(ValueError, match="fewer than the 5 requested"):
        steering_instructions(task, 0, n=5, source=tmp_path / "a.jsonl")
