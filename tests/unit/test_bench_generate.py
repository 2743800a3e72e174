"""interpkit.bench task generation with a scripted chat model and a tiny target model."""

from __future__ import annotations

import pytest

from interpkit._testing import tiny_model, tiny_tokenizer
from interpkit.bench._generate import _clean, _contrast, _parse_words, _Truncator, generate_task, parse_genre
from interpkit.bench._task import EMPTY_CONCEPT, Concept, load_task


class ScriptedChat:
    """Canned answers keyed by what the prompt asks; every 5th positive is empty once (retried)."""

    name = "scripted"

    def __init__(self, fail_every: int = 5) -> None:
        self.prompts: list[str] = []
        self.fail_every = fail_every
        self.n_pos = 0
        self.raised = False

    def complete(self, messages, *, max_tokens=128, temperature=0.0):
        prompt = messages[-1]["content"]
        self.prompts.append(prompt)
        if "Which kind of text" in prompt:
            return "Code" if "loop" in prompt else "Text."
        if "single English words" in prompt:
            return "1. date\n2. Journal\n- source\nbig data\n<NONE>" if "dates" in prompt else "<NONE>"
        if "other common meaning" in prompt:
            return {"date": "A sweet brown fruit of the date palm.", "journal": "<NONE>"}.get(
                prompt.split('"')[1].lower(), "origin")
        if "Think briefly" in prompt:
            return "A fruit is not a calendar entry.\nAnswer: <YES>"
        if "Use the word" in prompt:
            return "<FINAL> I ate a date with breakfast."
        if "weave content" in prompt:
            self.n_pos += 1
            if self.n_pos == 3 and not self.raised:
                self.raised = True
                raise ConnectionError("flaky")
            if self.n_pos % self.fail_every == 0:
                return "   "
            return '"Here is a long answer that mentions the concept again and again and again."'
        if "Do not mention" in prompt:
            return "A plain answer without it."
        return "A neutral answer."  # shared negatives written by the chat model


def test_parsers():
    assert parse_genre("Math") == "math" and parse_genre("<NONE>") == "text" and parse_genre("??") == "text"
    assert parse_genre("Code, or maybe math") == "code"
    assert _parse_words("1. Date\n2) journal.\n* two words\n- source\nNONE") == ["Date", "journal", "source"]
    assert _clean("<FINAL> hi there") == "hi there" and _clean(' "quoted" ') == "quoted"


def test_truncation_keeps_text_verbatim():
    cut = _Truncator(tiny_tokenizer(), 5)
    assert cut("Hello world") == "Hello"  # 5 characters, the capital H is <unk> but kept as written
    assert _Truncator(None, 2)("one two three") == "one two"


def test_contrast_keeps_other_senses_only():
    from interpkit.bench._generate import _Asker

    pairs, stats = _contrast(_Asker(ScriptedChat(), 1.0), "dates")
    # journal -> <NONE>, source -> one-word sense: both dropped
    assert pairs == [("date", "A sweet brown fruit of the date palm.")]
    assert {k: stats[k] for k in ("words", "senses", "kept")} == {"words": 3, "senses": 1, "kept": 1}
    assert stats["words_answer"].startswith("1. date")


WORDS = ["alpha", "beta", "gamma", "delta", "kappa", "lambda", "omega", "sigma", "theta", "zeta"]


def short_pool(genre, split):
    """Short lowercase instructions: the tiny model has a 64-token context and a lowercase alphabet."""
    return [f"{genre} {split} {w}." for w in WORDS]


@pytest.mark.parametrize("with_target", [True, False])
def test_generate_task_round_trip(tmp_path, monkeypatch, with_target):
    monkeypatch.setattr("interpkit.bench._generate.seed_instructions", short_pool)
    chat = ScriptedChat()
    target = tiny_model("nnsight") if with_target else None
    task = generate_task(["dates", "for loops", Concept(7, "sums of fractions", "math")], chat=chat,
                         target_model=target, out=tmp_path / "mine", n_train=4, n_eval=7, n_negatives_per_genre=2,
                         output_tokens=20, progress=False)
    again = load_task(tmp_path / "mine")
    assert [(c.id, c.genre) for c in again.concepts] == [(0, "text"), (1, "code"), (7, "math")]
    gen = again.generator
    assert gen["model"] == "scripted" and gen["negatives_by_target_model"] is with_target
    assert gen["errors"] == 1 and gen["empty_answers"] >= 1
    for c in again.concepts:
        rows = again.train_rows(c.id)
        assert (rows["label"] == 1).sum() == 4  # the empty answers were retried
        ev = again.eval_rows(c.id)["category"].value_counts().to_dict()
        assert ev["positive"] == 7 and ev["negative"] == 7
        assert ev.get("hard negative", 0) == (1 if c.id == 0 else 0)
    pool = again.train[again.train["concept_id"] == -1]
    assert set(pool["output_concept"]) <= {EMPTY_CONCEPT}
    assert len(pool) + gen["skipped_shared_negatives"] == 6
    if not with_target:
        assert len(pool) == 6 and "NOT the target model" in gen["negatives_writer"]
    negs = again.eval[(again.eval["concept_id"] == 0) & (again.eval["category"] == "negative")]
    assert negs["concept_genre"].value_counts().to_dict() == {"text": 5, "math": 1, "code": 1}
    assert set(negs["output_concept"]) == {"dates"}
    hard = again.eval[again.eval["category"] == "hard negative"].iloc[0]
    assert hard["output_concept"] == "date//A sweet brown fruit of the date palm."
    assert hard["output"] == ("I ate a date with br" if with_target else "I ate a date with breakfast.")
    # instructions: training rows from the train pool, eval rows from the test pool (trimmed as AxBench)
    train_pool = {s.strip(" .'\"") for g in ("text", "code", "math") for s in short_pool(g, "train")}
    test_pool = {s.strip(" .'\"") for g in ("text", "code", "math") for s in short_pool(g, "test")}
    assert set(again.train["input"]) <= train_pool and set(again.eval["input"]) <= test_pool
    if with_target:  # answers cut to 20 target tokens (one character each for the tiny tokenizer)
        assert again.train.loc[again.train["category"] == "positive", "output"].str.len().max() <= 20
    assert task.describe()["eval"]["rows"] == len(again.eval)


def test_generator_that_keeps_failing_stops(tmp_path):
    class Broken:
        name = "broken"

        def complete(self, messages, **kwargs):
            raise ConnectionError("down")

    with pytest.raises(RuntimeError, match="failed 10 times in a row"):
        generate_task([Concept(0, "dates", "text")], chat=Broken(), out=tmp_path / "x", n_train=2, n_eval=2,
                      n_negatives_per_genre=1, progress=False)
    assert not (tmp_path / "x").exists()
