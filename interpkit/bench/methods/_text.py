"""Text methods: BoW (§5.9) and Prompt (§5.11) score whole texts, not activations; `rate` asks a chat model."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ._base import Fitted, Method, _texts, register_method

__all__ = ["JUDGE_PROMPT", "BagOfWords", "PromptDetection", "rate"]


@register_method
class BagOfWords(Method):
    """BoW (§5.9): word counts + logistic regression on the formatted training texts; detection only.

    Maths: ``P(pos | text) = σ(w·counts(text) + b)``, L2 (or L1) logistic regression.

    ``CountVectorizer()`` (default word pattern, lower-cased) and ``LogisticRegression`` (L2,
    ``C`` = 100, lbfgs, ``max_iter`` 1000, ``random_state`` = seed) on the chat-formatted
    instruction + response of the concept's positives and negatives; the score is P(positive).
    """

    name, label = "bow", "BoW"
    order = 9
    steers = False
    defaults: ClassVar[dict[str, Any]] = {"penalty": "l2", "C": 100.0, "max_iter": 1000}
    positive = ("C", "max_iter")
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"penalty": ("l1", "l2")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        t0 = time.perf_counter()
        p = self.params(ctx)
        idx, labels = ctx.train_split(cid)
        texts = [ctx.train_texts[int(i)] for i in idx]
        # C is the inverse regularisation strength: AxBench's C = 100 (the top of its grid) is a weakly
        # regularised fit.
        clf = LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=int(getattr(ctx, "seed", 42)),
                                 **_penalty(p["penalty"]))
        pipe = make_pipeline(CountVectorizer(), clf).fit(texts, np.asarray(labels, dtype=int))
        vocab = len(pipe[0].vocabulary_)
        return self._fitted(cid, None, steer_vector=None, score="text", state=pipe,
                            info={"vocabulary": vocab, "seconds": time.perf_counter() - t0})

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """P(positive) per text."""
        texts = _texts(ctx, which)
        idx = range(len(texts)) if idx is None else idx
        # P(positive) is a monotone function of the logit, so the AUROC equals that of the decision function.
        return fitted.state.predict_proba([texts[int(i)] for i in idx])[:, 1].astype(np.float64)


def _penalty(penalty: str) -> dict[str, Any]:
    """LogisticRegression arguments for an L1/L2 penalty (scikit-learn 1.8 replaced ``penalty`` by ``l1_ratio``)."""
    import sklearn

    new = tuple(int(v) for v in sklearn.__version__.split(".")[:2] if v.isdigit()) >= (1, 8)
    if penalty == "l2":
        return {"solver": "lbfgs"}
    return {"solver": "liblinear", **({"l1_ratio": 1.0} if new else {"penalty": "l1"})}


JUDGE_PROMPT = (
    "Rate how strongly the text below is about, or clearly mentions, this concept: {concept}\n\n"
    "Text:\n{text}\n\n"
    "Answer with a single digit: 0 if the concept is absent, 1 if it is somewhat present, "
    "2 if it is clearly present."
)
"""Our own wording of AxBench's concept-relevance judge (§5.11: the response only, not the instruction)."""


@register_method
class PromptDetection(Method):
    """Prompt (§5.11, detection): the local chat model rates the concept's presence in the response 0-2.

    The chat model (``ctx.chat``) reads the concept and the row's ``output`` only (not the
    instruction) under `JUDGE_PROMPT`. AxBench samples up to 512 tokens and parses the rating; here
    the score is the expected rating ``Σ_k k·P(k)`` from the next-token probabilities of ``0``,
    ``1``, ``2`` (continuous, deterministic, one forward pass). A chat model without choice
    probabilities is asked to complete and its last 0-2 digit is parsed (unparseable: -1). Response
    texts longer than ``max_chars`` are cut. Prompt steering lives in ``interpkit.bench._steer``.
    """

    name, label = "prompt", "Prompt"
    order = 11
    steers = False
    defaults: ClassVar[dict[str, Any]] = {"max_chars": 2000}
    positive = ("max_chars",)

    def fit(self, ctx: Any, cid: int) -> Fitted:
        if getattr(ctx, "chat", None) is None:
            raise ValueError("method 'prompt' needs a chat model (ctx.chat is None)")
        concept = ctx.task.concept(cid).description
        return self._fitted(cid, None, steer_vector=None, score="text", state={},
                            info={"concept": concept, "chat": getattr(ctx.chat, "name", type(ctx.chat).__name__),
                                  "scoring": "expected rating from choice probabilities"})

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Expected 0-2 rating per text (cached per text on the `Fitted`)."""
        frame = ctx.task.train if which == "train" else ctx.task.eval
        outputs = frame["output"].astype(str).tolist()
        idx = list(range(len(outputs))) if idx is None else [int(i) for i in idx]
        cache = fitted.state if isinstance(fitted.state, dict) else {}
        todo = sorted({i for i in idx if (which, i) not in cache})
        if todo:
            max_chars = self.params(ctx)["max_chars"]
            convs = [[{"role": "user", "content": JUDGE_PROMPT.format(
                concept=fitted.info["concept"], text=outputs[i][:max_chars])}] for i in todo]
            for i, r in zip(todo, rate(ctx.chat, convs), strict=True):
                cache[(which, i)] = r
        fitted.state = cache
        return np.array([cache[(which, i)] for i in idx], dtype=np.float64)


def rate(chat: Any, conversations: list[list[dict[str, str]]]) -> list[float]:
    """Expected 0-2 ratings of ``conversations`` from ``chat`` (choice probabilities, else parsed completions)."""
    import re

    choices = ["0", "1", "2"]
    # E[rating] = sum_k k P(k) with P renormalised over the three digit tokens: a continuous, deterministic
    # score, so the AUROC is not dominated by ties among the three discrete ratings.
    levels = np.arange(3, dtype=np.float64)
    if hasattr(chat, "choice_probs_batch"):
        return [float(np.asarray(pr) @ levels) for pr in chat.choice_probs_batch(conversations, choices)]
    out = []
    for conv in conversations:
        probs = chat.choice_probs(conv, choices) if hasattr(chat, "choice_probs") else None
        if probs is not None:
            out.append(float(np.asarray(probs) @ levels))
            continue
        digits = re.findall(r"[0-2]", chat.complete(conv, max_tokens=16))
        out.append(float(digits[-1]) if digits else -1.0)
    return out
