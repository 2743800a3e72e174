"""The LM-judge compiler: a chat model judges how strongly each text shows the criterion.

Two methods, both recorded in every score's provenance:

``"rating"`` (any chat model; AxBench-like, §4.6): the judge sees a short rubric, the criterion
and the text (clearly delimited, cut to ``max_text_chars``) and answers one digit
``0``..``scale-1``. When the chat model exposes its answer distribution
(`ChatModel.choice_probs`: a local model's logits, an API's ``top_logprobs``) the score is the
expected rating divided by the top rating; otherwise the rating in the answer text is parsed
(the number after the last ``Rating:`` if there is one). An answer with no usable rating scores
None and its provenance keeps the raw answer and why. Scores are cut into labels with a fixed
band (positive ``>= hi``, negative ``<= lo``).

``"topic"`` (local models, which can score a continuation): the model is asked what the text is
about, its answer prefilled with ``"This text is about"``, and the raw score is how much more
likely the criterion becomes as the answer given this text than given a neutral text (mean
per-token log-probability difference: a pointwise mutual information). Raw scores are
calibrated like the embedding compiler's (a two-component mixture on 20+ texts, a fixed logistic
map around 0 otherwise). SmolLM2-135M-Instruct cannot follow a rating rubric: on 10+10 AxBench
texts its digit distribution barely moves (AUROC 0.3-0.9 by concept, 0.5 on an obvious toy
set), while the topic likelihood separates them (AUROC 0.8-1.0). ``method="auto"`` therefore
uses ``"topic"`` when the chat model has ``continuation_logprobs`` and ``"rating"`` otherwise.

Example:
    >>> from interpkit.criterion import get_compiler
    >>> judge = get_compiler("judge", chat="local")  # doctest: +SKIP
    >>> [s.label for s in judge.score_texts("the ocean", ["Waves hit the shore.", "Tax law."])]  # doctest: +SKIP
    ['positive', 'negative']
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

__all__ = ["NEUTRAL_TEXTS", "TEMPLATES", "LMJudgeCompiler", "judge_messages", "parse_rating", "topic_messages"]

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
"""Rating prompt templates by id (the id is recorded in every score's provenance)."""

TOPIC_TEMPLATE = "topic-v1"
TOPIC_QUESTION = "{text}\n\nIn a few words, what is this text about?"
TOPIC_PREFILL = "This text is about"
NEUTRAL_TEXTS = ("Hello.", "Thank you for your message.", "Here is the text.")
"""Texts about nothing in particular: the topic method's baseline for each criterion."""

_RATING = re.compile(r"rating\s*[:=]", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\d.])(\d+)(?:\.\d+)?")


def judge_messages(criterion: str, text: str, *, scale: int = 10, template: str = "rate-v1") -> list[dict[str, str]]:
    """The chat messages that ask for one rating of ``text`` (``text`` already cut to length)."""
    top = scale - 1
    body = TEMPLATES[template].format(criterion=criterion.strip(), text=text.strip(), top=top, mid=(top + 1) // 2)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": body}]


def topic_messages(text: str) -> list[dict[str, str]]:
    """The conversation whose prefilled answer the topic method continues with the criterion."""
    return [{"role": "user", "content": TOPIC_QUESTION.format(text=text.strip())},
            {"role": "assistant", "content": TOPIC_PREFILL}]


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
    """Scores texts with a chat model: a 0..scale-1 rating, or the topic likelihood (see module doc).

    Args:
        chat: a chat model or spec for `interpkit.models.chat_model` (``"local"``: SmolLM2-135M-
            Instruct; ``"api"``: an OpenAI-compatible endpoint from the environment).
        method: ``"rating"``, ``"topic"`` (needs ``chat.continuation_logprobs``) or ``"auto"``.
        scale: number of rating levels (2..10, one digit each).
        template: rating prompt template id in `TEMPLATES`.
        max_text_chars: texts are cut to this many characters (at a word boundary) before judging.
        lo: scores at or below are labelled negative.
        hi: scores at or above are labelled positive.
        use_probs: rating: read the digit distribution when the model gives it (else parse text).
        max_tokens: rating: answer length when the text is parsed.
        center: topic: logistic midpoint on the log-probability-gain scale (fewer than 20 texts).
        width: topic: logistic width on that scale.
        progress: optional ``callback(done, total)`` (rating method, per text).

    Raises:
        ValueError: bad method, scale, template or band; ``"topic"`` with a chat model that
            cannot score continuations.
    """

    name = "judge"

    def __init__(self, chat: Any = "local", *, method: str = "auto", scale: int = 10, template: str = "rate-v1",
                 max_text_chars: int = 1200, lo: float = 0.35, hi: float = 0.6, use_probs: bool = True,
                 max_tokens: int = 16, center: float = -0.35, width: float = 0.15,
                 progress: Callable[[int, int], None] | None = None) -> None:
        from interpkit.models._chat import chat_model

        if method not in ("auto", "rating", "topic"):
            raise ValueError(f"judge method must be 'auto', 'rating' or 'topic', got {method!r}")
        if not 2 <= scale <= 10:
            raise ValueError(f"judge scale must be 2..10 (single-digit ratings), got {scale}")
        if template not in TEMPLATES:
            raise ValueError(f"unknown judge template {template!r}; known: {', '.join(TEMPLATES)}")
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"judge band must satisfy 0 <= lo <= hi <= 1, got lo={lo}, hi={hi}")
        self.chat = chat_model(chat)
        can_topic = callable(getattr(self.chat, "continuation_logprobs", None))
        if method == "topic" and not can_topic:
            raise ValueError(f"judge method 'topic' needs a chat model that scores continuations (a local "
                             f"model); {self.chat.name!r} cannot: use method='rating'")
        self.method = ("topic" if can_topic else "rating") if method == "auto" else method
        self.scale = scale
        self.template = TOPIC_TEMPLATE if self.method == "topic" else template
        self.max_text_chars = max_text_chars
        self.lo, self.hi = lo, hi
        self.use_probs = use_probs
        self.max_tokens = max_tokens
        self.center, self.width = center, width
        self.progress = progress

    @property
    def choices(self) -> list[str]:
        """The rating answer tokens ``"0"``..``str(scale - 1)``."""
        return [str(i) for i in range(self.scale)]

    def describe(self) -> dict[str, Any]:
        """Judge model, method, template, scale, text cut and label band."""
        return {"compiler": self.name, "judge_model": self.chat.name, "method": self.method,
                "template": self.template, "scale": self.scale if self.method == "rating" else None,
                "max_text_chars": self.max_text_chars, "band": [self.lo, self.hi]}

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Judge every text (one `ScoredExample` each, in order; score None when unusable)."""
        crit = as_criterion(criterion)
        texts = [str(t) for t in texts]
        if not texts:
            return []
        cut = [_cut(t, self.max_text_chars) for t in texts]
        if self.method == "topic":
            raw, details, cal = self._topic(crit, [c for c, _ in cut])
        else:
            raw, details = self._rating(crit, [c for c, _ in cut])
            cal = calibrate(raw, method="identity", lo=self.lo, hi=self.hi)
        base: Mapping[str, Any] = {**self.describe(), "criterion": crit.text, "band": list(cal.band)}
        out = []
        for text, (_, truncated), info, p, label in zip(texts, cut, details, cal.posteriors, cal.labels,
                                                         strict=True):
            score = None if np.isnan(p) else float(p)
            out.append(ScoredExample(text=text, score=score, label=label,
                                     provenance={**base, "truncated": truncated, **info}))
        return out

    def _topic(self, crit: Criterion, texts: list[str]) -> tuple[np.ndarray, list[dict[str, Any]], Any]:
        answer = " " + crit.text.strip().rstrip(".")
        lp = self.chat.continuation_logprobs([topic_messages(t) for t in texts], answer)
        base = float(np.mean(self.chat.continuation_logprobs([topic_messages(t) for t in NEUTRAL_TEXTS], answer)))
        raw = np.asarray(lp, dtype=np.float64) - base
        cal = calibrate(raw, method="auto", lo=self.lo, hi=self.hi, center=self.center, scale=self.width)
        fit = {"method": cal.method, "params": cal.params, "n": len(texts)}
        details = [{"logprob": round(float(a), 4), "baseline_logprob": round(base, 4), "raw": round(float(r), 4),
                    "calibration_fit": fit} for a, r in zip(lp, raw, strict=True)]
        if self.progress is not None:
            self.progress(len(texts), len(texts))
        return raw, details, cal

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

    def _rating(self, crit: Criterion, texts: list[str]) -> tuple[np.ndarray, list[dict[str, Any]]]:
        conversations = [judge_messages(crit.text, t, scale=self.scale, template=self.template) for t in texts]
        probs = self._probs(conversations)
        top = self.scale - 1
        raw = np.full(len(texts), np.nan)
        details: list[dict[str, Any]] = []
        for i, (conv, p) in enumerate(zip(conversations, probs, strict=True)):
            info: dict[str, Any]
            if p is not None:
                expected = float(np.dot(p, np.arange(self.scale)))
                raw[i] = expected / top
                info = {"answer_from": "choice_probs", "probs": [round(float(x), 4) for x in p],
                        "expected_rating": round(expected, 4)}
            else:
                answer = self.chat.complete(conv, max_tokens=self.max_tokens, temperature=0.0)
                rating = parse_rating(answer, scale=self.scale)
                info = {"answer_from": "parsed", "raw_answer": answer}
                if rating is None:
                    info["error"] = f"no rating 0-{top} found in the judge's answer"
                else:
                    raw[i] = rating / top
                    info["rating"] = rating
            details.append(info)
            if self.progress is not None:
                self.progress(i + 1, len(texts))
        return raw, details
