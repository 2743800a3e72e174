"""How AxBench rows and instructions become model input: chat formatting and the instruction pools.

:func:`format_pair` turns an (instruction, response) row into the string the model reads, the way
AxBench does (AXBENCH.md §2.8): the chat-templated conversation without its final end-of-turn
suffix, plus how many leading template tokens to skip when scoring and whether a BOS must be
prepended. :func:`chat_prompt` is the templated user turn a steered model answers.
:func:`seed_instructions` are the packaged instruction pools `generate_task` draws from and
:func:`steering_instructions` the per-concept draw of held-out steering instructions (§4.1).

Example:
    >>> from interpkit._testing import tiny_tokenizer
    >>> format_pair(tiny_tokenizer(), "name a fruit", "an apple")
    ('name a fruit\\n\\nan apple', 1, True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from interpkit.models import needs_bos

from ._task import GENRES, parse_json

if TYPE_CHECKING:
    from ._task import AxBenchTask

__all__ = ["chat_prompt", "format_pair", "needs_bos", "seed_instructions", "steering_instructions"]


# ---- model input strings -------------------------------------------------------------------------


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _render(tokenizer: Any, messages: list[dict[str, str]], *, generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def format_pair(tokenizer: Any, instruction: str, response: str) -> tuple[str, int, bool]:
    """The detection input string for one row (AXBENCH.md §2.8).

    With a chat template: ``[user: instruction, assistant: response]`` rendered by the template,
    minus its final end-of-turn suffix (the trailing text shared by the rendered single-turn
    messages "1" and "2"). Without one: ``f"{instruction}\\n\\n{response}"``.

    Returns:
        ``(text, prefix_length, prepend_bos)``: tokenize ``text`` with ``add_special_tokens=False``,
        prepend the BOS id when ``prepend_bos`` (as ``ModelWrapper.tokenize(prepend_bos=...)``
        does), and drop the first ``prefix_length`` positions when scoring: the tokens shared by
        the templated user messages "1" and "2" (+1 for a prepended BOS). Without a template the
        prefix is just the BOS (1), or 0 when the tokenizer has none.
    """
    if not _has_template(tokenizer):
        text = f"{instruction}\n\n{response}"
        bos = needs_bos(tokenizer, text)
        return text, int(bos), bos
    one, two = (_render(tokenizer, [{"role": "user", "content": d}]) for d in ("1", "2"))
    suffix_chars = _common_prefix(one[::-1], two[::-1])
    text = _render(tokenizer, [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}])
    suffix = one[len(one) - suffix_chars:] if suffix_chars else ""
    if suffix and text.endswith(suffix):
        text = text[: len(text) - len(suffix)]
    ids_one, ids_two = (list(tokenizer(s, add_special_tokens=False)["input_ids"]) for s in (one, two))
    shared = _common_prefix(ids_one, ids_two)
    # a tokenizer that maps "1" and "2" to one id (unknown digits) would share the whole message:
    # never count past the tokens of the text before the content
    head = one[: _common_prefix(one, two)]
    shared = min(shared, len(tokenizer(head, add_special_tokens=False)["input_ids"]))
    bos = needs_bos(tokenizer, text)
    return text, shared + int(bos), bos


def chat_prompt(tokenizer: Any, instruction: str) -> str:
    """The templated user turn plus the assistant header (``instruction + "\\n\\n"`` without a template).

    The string keeps the template's own BOS text if it writes one; use :func:`needs_bos` to decide
    whether tokenization should prepend another.
    """
    if not _has_template(tokenizer):
        return f"{instruction}\n\n"
    return _render(tokenizer, [{"role": "user", "content": instruction}], generation_prompt=True)


# ---- instruction pools ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _seed_rows() -> tuple[tuple[str, str, str], ...]:
    from importlib import resources

    text = resources.files("interpkit").joinpath("data/seed_instructions.jsonl").read_text(encoding="utf-8")
    rows = []
    for line in text.splitlines():
        if line.strip():
            obj = json.loads(line)
            rows.append((obj["instruction"], obj["genre"], obj["split"]))
    return tuple(rows)


def seed_instructions(genre: str, split: Literal["train", "test"]) -> list[str]:
    """The packaged instruction pool of ``genre`` and ``split`` (file order).

    The pools are the instructions of AxBench's two Gemma-2-2B Concept10 tasks (train = training
    inputs, test = evaluation inputs; disjoint), standing in for AxBench's Dolly / GSM8K / Python
    seed sets, which are not available offline: 517/203/364 train and 473/142/239 test
    instructions for text/math/code.

    Raises:
        ValueError: unknown genre or split.
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; expected one of {list(GENRES)}")
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
    return [text for text, g, s in _seed_rows() if g == genre and s == split]


def _read_instructions(source: str | os.PathLike[str]) -> list[str]:
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: instruction file not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".txt":
        return [line.strip() for line in text.splitlines() if line.strip()]

    def pick(obj: Any, where: str) -> str:
        if isinstance(obj, str):
            return obj
        if isinstance(obj, dict):
            for key in ("instruction", "input", "text"):
                if isinstance(obj.get(key), str) and obj[key].strip():
                    return obj[key]
        raise ValueError(f"{where}: expected a string or an object with 'instruction', 'input' or 'text'")

    if path.suffix == ".json":
        data = parse_json(text, path, ValueError)
        if not isinstance(data, list):
            raise ValueError(f"{path}: expected a JSON list of instructions (AlpacaEval format)")
        return [pick(obj, f"{path} item {i}").strip() for i, obj in enumerate(data)]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            obj = parse_json(line, f"{path}:{lineno}", ValueError)
            out.append(pick(obj, f"{path}:{lineno}").strip())
    return out


def steering_instructions(task: AxBenchTask, cid: int, n: int = 10, *, source: str | os.PathLike[str] | None = None,
                          seed: int | None = None) -> list[str]:
    """``n`` steering instructions for concept ``cid`` (AXBENCH.md §4.1).

    AxBench draws ``alpaca_eval_df.sample(10, random_state=concept_id)``; this does the same
    pandas draw over the pool, so with ``source`` = AlpacaEval's ``alpaca_eval.json`` it picks the
    same instructions. Default pool (AlpacaEval is not available offline; a documented
    divergence): the packaged text-genre test instructions that none of this task's eval rows use.

    Args:
        task: the task (its eval inputs are excluded from the default pool).
        cid: concept id; the draw is deterministic per id.
        n: how many instructions.
        source: a JSON list (AlpacaEval: ``[{"instruction": ...}]``), a ``.jsonl`` with
            ``instruction``/``input``/``text`` per line, or a ``.txt`` with one per line.
        seed: with a seed, the draw uses ``random_state=[seed, cid]`` instead of ``cid``.

    Raises:
        ValueError: the pool has fewer than ``n`` instructions, or a source line is unusable.
    """
    import pandas as pd

    task.concept(cid)
    if source is None:
        used = set(task.eval["input"].astype(str))
        pool = [s for s in seed_instructions("text", "test") if s not in used]
        where = "the packaged text test instructions"
    else:
        pool = _read_instructions(source)
        where = str(source)
    if len(pool) < n:
        raise ValueError(f"{where}: {len(pool)} instructions, fewer than the {n} requested")
    state: Any = int(cid) if seed is None else [int(seed), int(cid)]
    return [str(s) for s in pd.Series(pool).sample(n, random_state=state).tolist()]
