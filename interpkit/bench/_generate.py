"""Generate a new AxBench-format task from a list of concepts with a chat model (AXBENCH.md §6).

The role split is AxBench's: a chat model (``LocalChat`` over the packaged SmolLM2, or an
``OpenAIChat`` endpoint) writes concept-infused answers (positives, train and eval), concept-avoiding
answers (eval negatives) and polysemy-based hard negatives; the **target model** writes the shared
training negatives itself (greedy, chat template), so detection must generalise across the style
shift AxBench has. Without a target model the chat model writes them, and the provenance says so.
The prompts are interpkit's own wording of AxBench's templates.

Instructions come from the packaged pools (:func:`~interpkit.bench._prompts.seed_instructions`):
training rows from the ``train`` split, evaluation rows from ``test``. LLM answers are cut to
``output_tokens`` tokens of the target tokenizer. A weak generator is tolerated: an empty answer is
asked once more (sampled), then skipped and counted; only a generator that keeps failing (10 errors
in a row) stops the run. Observed with SmolLM2-135M-Instruct as the generator: it refuses the
word-listing question, so it yields no hard negatives (``generator["concepts"][id]["contrast"]`` keeps
its answer); they need a stronger model, e.g. through an OpenAI-compatible endpoint.

Example:
    >>> task = generate_task(["dates", "loops in Python"], chat=chat_model("local"),
    ...                      target_model=load_model("smollm2-135m"), out="tasks/mine")  # doctest: +SKIP
    >>> task.generator["model"]  # doctest: +SKIP
    'smollm2-135m'
"""

from __future__ import annotations

import datetime as _dt
import os
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interpkit._version import __version__
from interpkit.bench._prompts import chat_prompt, seed_instructions
from interpkit.bench._task import (
    EMPTY_CONCEPT,
    GENRES,
    TRAIN_COLUMNS,
    AxBenchTask,
    Concept,
    save_task,
)

if TYPE_CHECKING:
    from interpkit.models import ChatModel, ModelWrapper

__all__ = ["generate_task", "parse_genre", "read_concept_list"]

MAX_CONSECUTIVE_ERRORS = 10

T_GENRE = """Which kind of text shows the concept below most naturally?
- Text: ordinary prose (for example "dates in history", "feelings of sadness")
- Code: programming source code (for example "Python list comprehensions", "HTML tags")
- Math: mathematical work (for example "fractions and ratios", "solving equations")
If none of them fits, answer <NONE>.

Concept: {concept}

Reply with a single word: Text, Code or Math."""

T_POSITIVE = """Answer the request below, and weave content related to this concept into your answer: "{concept}".
Keep the link to the concept clear even if the answer becomes a little less natural, and prefer your own
words to the concept's exact wording. Write plain text only (no headings, no markdown).

Request: {instruction}"""

T_NEGATIVE = """Answer the request below naturally. Do not mention, hint at or allude to anything related to
this concept: "{concept}". Write plain text only (no headings, no markdown).

Request: {instruction}"""

T_WORDS = """List up to 10 common single English words that are closely tied to this concept: "{concept}".
Write one word per line and nothing else. If the concept is too vague, or is a specific technical
term, program or fact, answer <NONE>."""

T_SENSE = """The word "{word}" is related to the concept "{concept}". Give one other common meaning of
"{word}" that has nothing to do with that concept, as one short plain sentence. If the word has no such
meaning, answer <NONE>."""

T_FILTER = """Concept: "{concept}"
Word: "{word}", meaning: "{sense}"
Think briefly about whether this meaning of the word overlaps with the concept in any way. Then end with
a last line "Answer: <YES>" if the two are entirely unrelated, or "Answer: <NO>" if they overlap."""

T_HARD = """Answer the request below. Use the word "{word}" somewhere in the middle of your answer, with
this meaning: {sense}. Stay away from anything related to "{concept}". Keep the answer grammatical and
natural, in plain text only (no headings, no markdown).

Request: {instruction}"""

_LEADING_TAG = re.compile(r"^\s*(?:<[^<>\n]{1,24}>|\[[^\[\]\n]{1,24}\]|(?:final(?: answer)?|answer|response)\s*:)\s*",
                          re.IGNORECASE)
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|[a-z][.)](?=\s))\s*")
_WORD = re.compile(r"^[A-Za-z][A-Za-z'-]*$")


def parse_genre(answer: str) -> str:
    """AxBench's genre parse: "none" anywhere -> text; else the first of text, code, math mentioned; else text."""
    low = answer.lower()
    if "none" in low:
        return "text"
    for genre in GENRES:
        if genre in low:
            return genre
    return "text"


def _parse_words(answer: str, limit: int = 10) -> list[str]:
    words: list[str] = []
    for line in answer.splitlines():
        word = _BULLET.sub("", line).strip().strip("\"'`*.,;:").strip()
        if _WORD.match(word) and word.lower() not in {w.lower() for w in words} and word.lower() != "none":
            words.append(word)
    return words[:limit]


def _clean(answer: str) -> str:
    text = answer.strip()
    for _ in range(2):
        text = _LEADING_TAG.sub("", text, count=1)
    return text.strip().strip("\"'").strip()


def _trim_instruction(text: str) -> str:
    return text.strip(" .'\"")


class _Asker:
    """Chat calls with the retry/skip policy and the counts that go into the provenance."""

    def __init__(self, chat: ChatModel, temperature: float) -> None:
        self.chat = chat
        self.temperature = temperature
        self.calls = self.empty = self.errors = self.skipped = 0
        self._in_a_row = 0

    def __call__(self, prompt: str, *, max_tokens: int, temperature: float | None = None) -> str | None:
        temp = self.temperature if temperature is None else temperature
        for attempt in range(2):
            self.calls += 1
            try:
                answer = self.chat.complete([{"role": "user", "content": prompt}], max_tokens=max_tokens,
                                            temperature=temp if attempt == 0 else max(temp, 1.0))
            except Exception as error:  # a weak or flaky generator must not end the whole task
                self.errors += 1
                self._in_a_row += 1
                if self._in_a_row >= MAX_CONSECUTIVE_ERRORS:
                    raise RuntimeError(f"generator {getattr(self.chat, 'name', self.chat)!r} failed "
                                       f"{self._in_a_row} times in a row; last error: {error}") from error
                continue
            self._in_a_row = 0
            answer = _clean(answer or "")
            if answer:
                return answer
            self.empty += 1
        self.skipped += 1
        return None


class _Truncator:
    """Cut texts to ``n`` tokens of a tokenizer (by character offsets, so the text is kept verbatim)."""

    def __init__(self, tokenizer: Any, n: int) -> None:
        self.tokenizer = tokenizer
        self.n = n
        self.kind = (f"{n} tokens of {getattr(tokenizer, 'name_or_path', '') or type(tokenizer).__name__}"
                     if tokenizer is not None else f"{n} whitespace words (no target tokenizer)")

    def __call__(self, text: str) -> str:
        if self.tokenizer is None:
            words = text.split()
            return text if len(words) <= self.n else " ".join(words[: self.n])
        try:
            enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
            return text if len(offsets) <= self.n else text[: offsets[self.n - 1][1]].rstrip()
        except (NotImplementedError, TypeError, KeyError):
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            return text if len(ids) <= self.n else self.tokenizer.decode(ids[: self.n], skip_special_tokens=True)


def _sample(pool: Sequence[str], k: int, rng: random.Random) -> list[str]:
    """``k`` instructions without replacement while the pool lasts, then with replacement."""
    if k <= len(pool):
        picked = rng.sample(list(pool), k)
    else:
        picked = rng.sample(list(pool), len(pool)) + rng.choices(list(pool), k=k - len(pool))
    return [_trim_instruction(s) for s in picked]


def _concepts(concepts: Sequence[str | Concept]) -> list[tuple[int, Concept | str]]:
    """``(id, item)`` per concept: a Concept keeps its id, a description gets its position."""
    out: list[tuple[int, Concept | str]] = []
    ids: set[int] = set()
    for i, c in enumerate(concepts):
        if isinstance(c, Concept):
            if c.genre not in GENRES:
                raise ValueError(f"concept {c.id}: genre must be one of {list(GENRES)}, got {c.genre!r}")
            cid = c.id
        elif isinstance(c, str) and c.strip():
            cid = i
            c = c.strip()
        else:
            raise ValueError(f"concepts[{i}]: expected a non-empty string or a Concept, got {c!r}")
        if cid in ids:
            raise ValueError(f"concepts[{i}]: duplicate concept id {cid}")
        ids.add(cid)
        out.append((cid, c))
    if not out:
        raise ValueError("no concepts given")
    return out


def _row(instruction: str, output: str, concept: str, genre: str, category: str, cid: int) -> dict[str, Any]:
    return {"input": instruction, "output": output, "output_concept": concept, "concept_genre": genre,
            "category": category, "dataset_category": "instruction", "concept_id": cid}


def _shared_negatives(chat: _Asker, target_model: ModelWrapper | None, n_per_genre: int, output_tokens: int,
                      seed: int, bar: Any) -> tuple[list[dict[str, Any]], int]:
    """AxBench's shared pool: ``n_per_genre`` train instructions per genre answered without any concept."""
    rows, skipped = [], 0
    max_new = int(1.5 * output_tokens)
    for genre in ("text", "math", "code"):
        instructions = _sample(seed_instructions(genre, "train"), n_per_genre, random.Random(f"{seed}:negatives:{genre}"))
        if target_model is not None:
            tok = target_model.tokenizer
            templated = bool(getattr(tok, "chat_template", None))
            prompts = instructions if templated else [chat_prompt(tok, s) for s in instructions]
            answers = []
            for start in range(0, len(prompts), 8):
                answers += _target_answers(target_model, prompts[start:start + 8], max_new, templated)
                bar.update(len(prompts[start:start + 8]))
        else:
            answers = []
            for s in instructions:
                answers.append(chat(s, max_tokens=max_new, temperature=0.0) or "")
                bar.update(1)
        for s, a in zip(instructions, answers, strict=True):
            if a:
                rows.append(_row(s, a, EMPTY_CONCEPT, genre, "negative", -1))
            else:
                skipped += 1
    return rows, skipped


def _target_answers(model: ModelWrapper, prompts: list[str], max_new: int, templated: bool) -> list[str]:
    """Greedy answers of the target model; a failing batch is retried prompt by prompt ("" for a failure)."""
    def run(batch: list[str]) -> list[str]:
        out = model.generate(batch, max_new_tokens=max_new, do_sample=False, chat=templated, batch_size=len(batch))
        return [a.strip() for a in out]

    try:
        return run(prompts)
    except Exception as error:  # e.g. a prompt longer than the model's context
        answers = []
        for prompt in prompts:
            try:
                answers += run([prompt])
            except Exception:
                answers.append("")
        if not any(answers):
            raise RuntimeError(f"target model {model.name!r} could not answer any of {len(prompts)} prompts: "
                               f"{error}") from error
        return answers


def _contrast(ask: _Asker, concept: str) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """(word, other sense) pairs: concept -> related words -> another sense of each -> keep if unrelated."""
    stats: dict[str, Any] = {"words": 0, "senses": 0, "kept": 0}
    answer = ask(T_WORDS.format(concept=concept), max_tokens=80)
    stats["words_answer"] = (answer or "")[:200]  # kept so a weak generator's refusal is visible
    if not answer:
        return [], stats
    words = _parse_words(answer)
    stats["words"] = len(words)
    pairs = []
    for word in words:
        sense = ask(T_SENSE.format(word=word, concept=concept), max_tokens=60)
        if not sense or "<none>" in sense.lower() or sense.strip().lower().strip(".") == "none" or len(sense.split()) <= 1:
            continue
        sense = sense.splitlines()[0].strip()
        stats["senses"] += 1
        verdict = ask(T_FILTER.format(concept=concept, word=word, sense=sense), max_tokens=200)
        if verdict and "answer" in verdict.lower() and "yes" in verdict.lower().rsplit("answer", 1)[1]:
            pairs.append((word, sense))
    stats["kept"] = len(pairs)
    return pairs, stats


def generate_task(concepts: Sequence[str | Concept], *, chat: ChatModel, target_model: ModelWrapper | None = None,
                  out: str | os.PathLike[str], n_train: int = 72, n_eval: int = 36, n_negatives_per_genre: int = 72,
                  output_tokens: int = 128, hard_negatives: bool = True, seed: int = 42, temperature: float = 1.0,
                  tokenizer: Any = None, progress: bool = True) -> AxBenchTask:
    """Generate an AxBench-format task and save it to ``out`` (AXBENCH.md §6).

    Args:
        concepts: descriptions (genre asked of the chat model, ids 0..n-1) or :class:`Concept`\\ s
            (genre and id kept).
        chat: the generator (an :class:`~interpkit.models.ChatModel`).
        target_model: the model the task is for; writes the shared training negatives (greedy,
            its chat template) and its tokenizer truncates the LLM answers. None: the chat model
            writes them (flagged in ``task.generator["negatives_writer"]``).
        out: the task folder to write (replaced if it holds a task).
        n_train: training positives per concept.
        n_eval: eval positives and negatives per concept (negatives: ``int(0.15 n)`` math and code,
            the rest text, as AxBench's 26/5/5 for 36).
        n_negatives_per_genre: shared training negatives per genre (text, math, code).
        output_tokens: LLM answers are cut to this many target tokens; target-written negatives get
            up to 1.5x as many new tokens and are not cut (as AxBench).
        hard_negatives: build polysemy hard negatives (0-10 per concept).
        seed: seeds every instruction draw (per concept, so a concept's draw does not depend on the others).
        temperature: the chat model's temperature for answers (AxBench: 1.0); meta questions are greedy.
        tokenizer: truncation tokenizer; default the target model's, else the local chat model's,
            else whitespace words.
        progress: show progress bars.

    Returns:
        The saved task (``task.generator`` holds the provenance: models, endpoint, date, seed, settings, counts).

    Raises:
        ValueError: bad concepts or sizes.
        RuntimeError: the generator failed 10 times in a row.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    items = _concepts(concepts)
    if min(n_train, n_eval, n_negatives_per_genre, output_tokens) < 1:
        raise ValueError("n_train, n_eval, n_negatives_per_genre and output_tokens must be >= 1")
    ask = _Asker(chat, temperature)
    if tokenizer is None and target_model is not None:
        tokenizer = target_model.tokenizer
    if tokenizer is None and hasattr(chat, "prompt_ids"):  # LocalChat: its own tokenizer
        tokenizer = chat.model.tokenizer
    cut = _Truncator(tokenizer, output_tokens)
    max_tokens = int(1.5 * output_tokens)
    started = _dt.datetime.now(_dt.timezone.utc)

    with tqdm(total=3 * n_negatives_per_genre, desc="shared negatives", disable=not progress, unit="text") as bar:
        train_rows, neg_skipped = _shared_negatives(ask, target_model, n_per_genre=n_negatives_per_genre,
                                                    output_tokens=output_tokens, seed=seed, bar=bar)
    eval_rows: list[dict[str, Any]] = []
    done: list[Concept] = []
    per_concept: dict[str, dict[str, Any]] = {}
    n_math = int(0.15 * n_eval)
    for cid, item in tqdm(items, desc="concepts", disable=not progress, unit="concept"):
        if isinstance(item, Concept):
            concept, genre_answer = item, None
        else:
            genre_answer = ask(T_GENRE.format(concept=item), max_tokens=8, temperature=0.0)
            concept = Concept(cid, item, parse_genre(genre_answer or ""))
        c, g = concept.description, concept.genre
        info: dict[str, Any] = {"genre": g, "genre_answer": genre_answer}
        skipped_before = ask.skipped
        rng = random.Random(f"{seed}:{concept.id}")

        for s in _sample(seed_instructions(g, "train"), n_train, rng):
            answer = ask(T_POSITIVE.format(concept=c, instruction=s), max_tokens=max_tokens)
            if answer:
                train_rows.append(_row(s, cut(answer), c, g, "positive", concept.id))

        pairs, info["contrast"] = _contrast(ask, c) if hard_negatives else ([], None)
        test = _sample(seed_instructions(g, "test"), n_eval + len(pairs), rng)
        for s in test[:n_eval]:
            answer = ask(T_POSITIVE.format(concept=c, instruction=s), max_tokens=max_tokens)
            if answer:
                eval_rows.append(_row(s, cut(answer), c, g, "positive", concept.id))
        mix = [("text", n_eval - 2 * n_math), ("math", n_math), ("code", n_math)]
        for genre, k in mix:
            for s in _sample(seed_instructions(genre, "test"), k, rng):
                answer = ask(T_NEGATIVE.format(concept=c, instruction=s), max_tokens=max_tokens)
                if answer:
                    eval_rows.append(_row(s, cut(answer), c, genre, "negative", concept.id))
        kept_hard = 0
        for (word, sense), s in zip(pairs, test[n_eval:], strict=True):
            answer = ask(T_HARD.format(word=word, sense=sense, concept=c, instruction=s), max_tokens=max_tokens)
            if answer:
                eval_rows.append(_row(s, cut(answer), f"{word}//{sense}", g, "hard negative", concept.id))
                kept_hard += 1
        info["hard_negatives"] = kept_hard
        info["skipped"] = ask.skipped - skipped_before
        per_concept[str(concept.id)] = info
        done.append(concept)

    train = pd.DataFrame(train_rows, columns=list(TRAIN_COLUMNS))
    evals = pd.DataFrame(eval_rows, columns=list(TRAIN_COLUMNS))
    evals["sae_link"] = pd.Series([None] * len(evals), dtype=object)
    evals["sae_id"] = pd.array([None] * len(evals), dtype="Int64")
    out_path = Path(out)
    generator = {
        "kind": "interpkit.bench.generate",
        "model": getattr(chat, "name", None) or repr(chat),
        "model_repr": repr(chat),
        "endpoint": getattr(chat, "base_url", None),
        "negatives_writer": getattr(target_model, "name", None) if target_model is not None else
        f"chat model {getattr(chat, 'name', None) or repr(chat)} (NOT the target model)",
        "negatives_by_target_model": target_model is not None,
        "truncation": cut.kind,
        "date": started.isoformat(timespec="seconds"),
        "seconds": round((_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(), 1),
        "seed": seed,
        "settings": {"n_train": n_train, "n_eval": n_eval, "n_negatives_per_genre": n_negatives_per_genre,
                     "output_tokens": output_tokens, "hard_negatives": hard_negatives, "temperature": temperature},
        "instruction_pools": "interpkit/data/seed_instructions.jsonl (train -> training rows, test -> eval rows)",
        "counts": {"train": len(train), "eval": len(evals),
                   "train_positive": int((train["category"] == "positive").sum()),
                   "shared_negatives": int((train["concept_id"] == -1).sum()),
                   "eval_positive": int((evals["category"] == "positive").sum()),
                   "eval_negative": int((evals["category"] == "negative").sum())},
        "hard_negatives": int((evals["category"] == "hard negative").sum()),
        "chat_calls": ask.calls, "empty_answers": ask.empty, "errors": ask.errors,
        "skipped": ask.skipped + neg_skipped, "skipped_shared_negatives": neg_skipped,
        "concepts": per_concept,
    }
    generator["interpkit_version"] = __version__
    task = AxBenchTask(name=out_path.name, path=None, concepts=tuple(done), train=train, eval=evals,
                       generator=generator)
    save_task(task, out_path)
    return task


def read_concept_list(path: str | os.PathLike[str]) -> list[str]:
    """Concept descriptions from a file, as AxBench's ``generate.py`` accepts them (§2.1).

    ``.txt``: one description per line (blank lines and ``#`` comments skipped). ``.json``: a
    list of strings, or a Neuronpedia explanations export (objects with ``description``; only the
    first description per ``(modelId, layer, index)`` is kept). ``.csv``: a ``description`` column
    (or the first column). Duplicates are dropped, order kept.

    Raises:
        FileNotFoundError: no such file.
        ValueError: an unreadable file or entry, with the file and line / item.
    """
    import csv
    import json

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"concept list {p} does not exist")
    out: list[str] = []
    suffix = p.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, list):
            raise ValueError(f"{p}: expected a JSON list of descriptions or Neuronpedia explanation objects")
        seen_features: set[tuple] = set()
        for i, item in enumerate(data):
            if isinstance(item, str):
                out.append(item)
            elif isinstance(item, dict) and isinstance(item.get("description"), str):
                key = (item.get("modelId"), item.get("layer"), item.get("index"))
                if key != (None, None, None) and key in seen_features:
                    continue
                seen_features.add(key)
                out.append(item["description"])
            else:
                raise ValueError(f"{p} item {i}: expected a string or an object with a 'description' string")
    elif suffix == ".csv":
        with p.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        if not rows:
            raise ValueError(f"{p}: empty CSV")
        header = [h.strip().lower() for h in rows[0]]
        col = header.index("description") if "description" in header else 0
        body = rows[1:] if "description" in header else rows
        for n, row in enumerate(body, start=2 if "description" in header else 1):
            if len(row) <= col:
                raise ValueError(f"{p}:{n}: missing the description column")
            out.append(row[col])
    else:
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.append(line)
    cleaned = list(dict.fromkeys(x.strip() for x in out if x.strip()))
    if not cleaned:
        raise ValueError(f"{p}: no concept descriptions found")
    return cleaned
