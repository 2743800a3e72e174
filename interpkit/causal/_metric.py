"""Criterion metrics: how strongly a model's behaviour on a prompt shows the user's criterion.

A metric maps ``(model, texts)`` to one score per text. `LogitTargetMetric` is the logit-based
metric for token-level criteria such as "the next token should be a physical measurement unit":
the probability mass the model puts, at the next position after the prompt, on the FIRST token of
each target string. The target tokens always come from the user (given explicitly or read from the
dataset's ``target_tokens`` field); there is no default token list, and a criterion without target
tokens is an error that says how to supply them. Criterion compilers plug in by implementing
`CriterionMetric`.

Example:
    >>> from interpkit._testing import tiny_model
    >>> metric = LogitTargetMetric("next char is a vowel", ["a", "e"])
    >>> scores = metric.score(tiny_model(), ["hello", "hi there"])
    >>> scores.shape, bool(((scores > 0) & (scores < 1)).all())
    ((2,), True)
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = [
    "CriterionMetric",
    "LogitTargetMetric",
    "MissingTargetTokensError",
    "metric_for_criterion",
    "next_token_probs",
    "read_target_tokens",
]


class MissingTargetTokensError(ValueError):
    """A logit-based criterion was asked for, but no target tokens were supplied."""


@runtime_checkable
class CriterionMetric(Protocol):
    """Anything that scores prompts for a criterion (higher = the criterion holds more)."""

    criterion: str
    """The user's criterion text, written into every record."""

    def score(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        """One float score per text, under the model's active edits."""
        ...


def next_token_probs(model: Any, texts: Sequence[str], *, batch_size: int = 16) -> torch.Tensor:
    """Next-token distributions ``[n, vocab]`` after each text, under the model's active edits.

    Texts are right-padded by ``model.tokenize``; each row reads the logits at its last real
    position. Runs without gradients.
    """
    import torch

    texts = list(texts)
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenize(texts[start : start + batch_size])
            logits = model.forward(batch)
            last = (batch.attention_mask.sum(dim=1) - 1).to(logits.device)
            rows = logits[torch.arange(logits.shape[0], device=logits.device), last]
            out.append(torch.softmax(rows.float(), dim=-1).cpu())
    if not out:
        return torch.zeros((0, 0))
    return torch.cat(out, dim=0)


class LogitTargetMetric:
    """Probability mass of the target tokens at the next position after each prompt.

    Each target string is tokenized without special tokens and only its FIRST token id counts
    (``" kilometers"`` counts as its first sub-token); ids shared by several targets count once.

    Args:
        criterion: the user's criterion text.
        target_tokens: the strings the criterion is about (non-empty).
        batch_size: prompts per forward pass.

    Raises:
        MissingTargetTokensError: ``target_tokens`` is empty.
    """

    def __init__(self, criterion: str, target_tokens: Iterable[str], *, batch_size: int = 16) -> None:
        tokens = tuple(target_tokens or ())
        if not tokens:
            raise MissingTargetTokensError(_missing_message(criterion))
        if any(not isinstance(t, str) or not t for t in tokens):
            raise ValueError(f"target tokens must be non-empty strings, got {tokens!r}")
        self.criterion = criterion
        self.target_tokens = tokens
        self.batch_size = batch_size
        self._ids: dict[int, tuple[int, ...]] = {}

    def __repr__(self) -> str:
        return f"LogitTargetMetric({self.criterion!r}, {len(self.target_tokens)} target tokens)"

    def token_ids(self, model: Any) -> tuple[int, ...]:
        """The distinct first-token ids of the targets under ``model``'s tokenizer.

        Raises:
            ValueError: a target string tokenizes to nothing.
        """
        key = id(model.tokenizer)
        if key not in self._ids:
            ids: list[int] = []
            for tok in self.target_tokens:
                enc = list(model.tokenizer(tok, add_special_tokens=False)["input_ids"])
                if not enc:
                    raise ValueError(f"target token {tok!r} tokenizes to nothing under {model.name}")
                if int(enc[0]) not in ids:
                    ids.append(int(enc[0]))
            self._ids[key] = tuple(ids)
        return self._ids[key]

    def score_probs(self, model: Any, probs: torch.Tensor) -> np.ndarray:
        """Scores from next-token distributions ``[n, vocab]`` (see `next_token_probs`)."""
        ids = list(self.token_ids(model))
        return probs[:, ids].sum(dim=-1).double().numpy()

    def score(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        """Target probability mass after each text (float64 ``[n]``), under active edits."""
        return self.score_probs(model, next_token_probs(model, texts, batch_size=self.batch_size))


def _missing_message(criterion: str) -> str:
    return (
        f"criterion {criterion!r} has no target tokens: the logit metric needs the tokens the "
        "criterion is about. Pass --target-tokens (a JSON list such as '[\" meters\", \" km\"]' or a "
        "JSON file with a 'target_tokens' list), or add a 'target_tokens' list to the dataset rows. "
        "interpkit never substitutes a default token list."
    )


def read_target_tokens(value: str | Path | Sequence[str] | None) -> tuple[str, ...] | None:
    """Target tokens from a list, a JSON list literal, or a JSON file (a list or ``{"target_tokens": [...]}``).

    Raises:
        ValueError: the value is neither a readable JSON file nor a JSON list of strings.
    """
    if value is None:
        return None
    if not isinstance(value, (str, Path)):
        return tuple(value)
    text = str(value)
    path = Path(text)
    if not text.lstrip().startswith("[") and path.is_file():
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        where = str(path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f"--target-tokens {text!r}: expected a JSON list of strings or an existing JSON file"
            ) from None
        where = "--target-tokens"
    if isinstance(data, dict):
        data = data.get("target_tokens")
    if not isinstance(data, list) or not all(isinstance(t, str) and t for t in data):
        raise ValueError(f"{where}: expected a list of non-empty strings (or an object with 'target_tokens')")
    return tuple(data)


def metric_for_criterion(
    criterion: str,
    *,
    target_tokens: Sequence[str] | None = None,
    rows: Iterable[Any] = (),
    batch_size: int = 16,
) -> LogitTargetMetric:
    """The logit metric for ``criterion``: explicit ``target_tokens``, else the rows' ``target_tokens``.

    Args:
        criterion: the user's criterion text.
        target_tokens: explicit targets (win over the dataset's).
        rows: prompt rows; the union of their ``target_tokens`` (first-seen order) is used when
            no explicit targets are given.
        batch_size: prompts per forward pass.

    Raises:
        MissingTargetTokensError: no target tokens anywhere (never a default list).
    """
    tokens: list[str] = list(target_tokens or ())
    if not tokens:
        for row in rows:
            for tok in getattr(row, "target_tokens", None) or ():
                if tok not in tokens:
                    tokens.append(tok)
    return LogitTargetMetric(criterion, tokens, batch_size=batch_size)
