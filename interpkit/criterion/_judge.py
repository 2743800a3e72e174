"""The LM-judge compiler: a chat model rates how strongly each text shows the criterion.

The judge sees a short rubric, the criterion and the text (clearly delimited, cut to
``max_text_chars``) and answers one digit ``0``..``scale-1``. When the chat model exposes its
answer distribution (`ChatModel.choice_probs`: a local model's logits, an API's
``top_logprobs``) the score is the expected rating divided by the top rating, which is far more
reliable for a small model than its greedy text; otherwise the first rating in the answer text
is parsed (AxBench-style, §4.6: the number after the last ``Rating:`` if there is one). An
answer with no usable rating scores None and its provenance keeps the raw answer and why.
Scores are already in [0, 1]; labels cut them with a fixed band (positive ``>= hi``, negative
``<= lo``, uncertain between) through the shared `calibrate(method="identity")`.

Example:
    >>> from interpkit.criterion import get_compiler
    >>> judge = get_compiler("judge", chat="local")  # doctest: +SKIP
    >>> [round(s.score, 2) for s in judge.score_texts("cooking", ["Stir the onions.", "Tax law."])]  # doctest: +SKIP
    [0.71, 0.12]
    >>> parse_rating("I would say Rating: [[7]].", scale=10)
    7
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, register_compiler
from ._calibrate import calibrate

__all__ = ["TEMPLATES", "LMJudgeCompiler", "judge_messages", "parse_rating"]

SYSTEM = "You are a careful annotator. You rate texts against a criterion and answer with one digit."

_RUBRIC = (
    "Rate how strongly the text below shows this criterion.\n"
    "Criterion: {criterion}\n\n"
    "Text:\n<<<\n{text}\n>>>\n\n"
    "Scale: 0 = not at all (the text is about something else), {mid} = partly or in passing, "
    "{top} = clearly and centrally.\n"
    "Answer with a single digit from 0 to {top}."
)

TEMPLATES: dict[str, str] = {"rate-v1": _RUBRIC}
"""Prompt templates by id (the id is recorded in every score's provenance)."""

_RATING = re.compile(r"rating\s*[:=]", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.\d+)?")


def judge_messages(criterion: str, text: str, *, scale: int = 10, template: str = "rate-v1") -> list[dict[str, str]]:
    """The chat messages that ask for one rating of ``text`` (``text`` already cut to length)."""
    top = scale - 1
    body = TEMPLATES[template].format(criterion=criterion.strip(), text=text.strip(), top=top, mid=(top + 1) // 2)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def parse_rating(answer: str, *, scale: int = 10) -> int | None:
    """The rating in a free-text answer, or None.

    Looks after the last ``Rating:`` when present (AxBench's convention), else in the whole
    answer; takes the first integer there and accepts it only in ``0..scale-1``.
    """
    found = list(_RATING.finditer(answer))
    tail = answer[found[-1].end():] if found else answer
    match = _NUMBER.search(tail.replace("[", " ").replace("]", " "))
    if match is None:
        return None
    value = int(match.group(1))
    return value if 0 <= value < scale else None


def _cut(text: str, max_chars: int) -> tuple[str, bool]:
    if len(text) <= max_chars:
        return text, False
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space > max_chars * 0.8:
        cut = cut[:space]
    return cut + " ...", True


@register_compiler
class LMJudgeCompiler(CriterionCompiler):
    """Scores texts by asking a chat model to rate them ``0..scale-1`` against the criterion.

    Args:
        chat: a chat model or spec for `interpkit.models.chat_model` (``"local"``: SmolLM2-135M-
            Instruct; ``"api"``: an OpenAI-compatible endpoint from the environment).
        scale: number of rating levels (2..10, one digit each).
        template: prompt template id in `TEMPLATES`.
        max_text_chars: texts are cut to this many characters (at a word boundary) before judging.
        lo: scores at or below are labelled negative.
        hi: scores at or above are labelled positive.
        use_probs: read the rating distribution when the model gives it (else always parse text).
        max_tokens: answer length when the text is parsed.
        progress: optional ``callback(done, total)``.

    Raises:
        ValueError: bad scale, template or band.
    """

    name = "judge"

    def __init__(self, chat: Any = "local", *, scale: int = 10, template: str = "rate-v1",
                 max_text_chars: int = 1200, lo: float = 0.35, hi: float = 0.6, use_probs: bool = True,
                 max_tokens: int = 16, progress: Callable[[int, int], None] | None = None) -> None:
        from interpkit.models._chat import chat_model

        if not 2 <= scale <= 10:
            raise ValueError(f"judge scale must be 2..10 (single-digit ratings), got {scale}")
        if template not in TEMPLATES:
            raise ValueError(f"unknown judge template {template!r}; known: {', '.join(TEMPLATES)}")
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"judge band must satisfy 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}")
        self.chat = chat_model(chat)
        self.scale = scale
        self.template = template
        self.max_text_chars = max_text_chars
        self.lo = lo
        self.hi = hi
        self.use_probs = use_probs
        self.max_tokens = max_tokens
        self.progress = progress

    @property
    def choices(self) -> list[str]:
        """The answer tokens ``"0"``..``str(scale - 1)``."""
        return [str(i) for i in range(self.scale)]

    def describe(self) -> dict[str, Any]:
        """Judge model, template, scale, text cut and label band."""
        return {"compiler": self.name, "judge_model": self.chat.name, "template": self.template,
                "scale": self.scale, "max_text_chars": self.max_text_chars, "band": [self.lo, self.hi]}

    def _probs(self, conversations: list[list[dict[str, str]]]) -> list[np.ndarray | None]:
        if not self.use_probs or not conversations:
            return [None] * len(conversations)
        batch = getattr(self.chat, "choice_probs_batch", None)
        if batch is not None:
            return list(batch(conversations, self.choices))
        out: list[np.ndarray | None] = []
        for conv in conversations:
            p = self.chat.choice_probs(conv, self.choices)
            out.append(p)
            if p is None and getattr(self.chat, "logprobs_supported", None) is False:
                out.extend([None] * (len(conversations) - len(out)))  # the backend has none: stop asking
                break
        return out

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Rate every text; score = expected rating / (scale - 1), or the parsed rating likewise."""
        crit = as_criterion(criterion)
        cut = [_cut(str(t), self.max_text_chars) for t in texts]
        conversations = [judge_messages(crit.text, c, scale=self.scale, template=self.template) for c, _ in cut]
        probs = self._probs(conversations)
        top = self.scale - 1
        raw = np.full(len(texts), np.nan)
        details: list[dict[str, Any]] = []
        for i, (conv, p) in enumerate(zip(conversations, probs, strict=True)):
            info: dict[str, Any] = {"truncated": cut[i][1]}
            if p is not None:
                expected = float(np.dot(p, np.arange(self.scale)))
                raw[i] = expected / top
                info.update(method="choice_probs", probs=[round(float(x), 4) for x in p],
                            expected_rating=round(expected, 4))
            else:
                answer = self.chat.complete(conv, max_tokens=self.max_tokens, temperature=0.0)
                rating = parse_rating(answer, scale=self.scale)
                info.update(method="parsed", raw_answer=answer)
                if rating is None:
                    info["error"] = f"no rating 0-{top} found in the judge's answer"
                else:
                    raw[i] = rating / top
                    info["rating"] = rating
            details.append(info)
            if self.progress is not None:
                self.progress(i + 1, len(texts))
        cal = calibrate(raw, method="identity", lo=self.lo, hi=self.hi)
        base: Mapping[str, Any] = {"compiler": self.name, "criterion": crit.text, "judge_model": self.chat.name,
                                   "template": self.template, "scale": self.scale, "band": [self.lo, self.hi]}
        out = []
        for text, info, p, label in zip(texts, details, cal.posteriors, cal.labels, strict=True):
            score = None if np.isnan(p) else float(p)
            out.append(ScoredExample(text=str(text), score=score, label=label, provenance={**base, **info}))
        return out
