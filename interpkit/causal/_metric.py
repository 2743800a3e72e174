"""Criterion metrics: how strongly a model's behaviour on a prompt shows the user's criterion.

A metric maps ``(model, texts)`` to one score per text. `LogitTargetMetric` is the logit-based
metric for token-level criteria such as "the next token should be a physical measurement unit":
the probability mass the model puts, at the next position after the prompt, on the FIRST token of
each target string. The target tokens always come from the user (given explicitly or read from the
dataset's ``target_tokens`` field); there is no default token list, and a criterion without target
tokens is an error that says how to supply them. Criterion compilers plug in by implementing
`CriterionMetric`. `LogitTargetMetric`, `next_token_probs` and `MissingTargetTokensError` live in
``interpkit.criterion._logit`` (the logit criterion compiler builds on them) and are re-exported here.

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
from typing import Any, Protocol, runtime_checkable

import numpy as np

from interpkit.criterion._logit import LogitTargetMetric, MissingTargetTokensError, next_token_probs

__all__ = [
    "CriterionMetric",
    "LogitTargetMetric",
    "MissingTargetTokensError",
    "metric_for_criterion",
    "next_token_probs",
    "read_target_tokens",
]


@runtime_checkable
class CriterionMetric(Protocol):
    """Anything that scores prompts for a criterion (higher = the criterion holds more)."""

    criterion: str
    """The user's criterion text, written into every record."""

    def score(self, model: Any, texts: Sequence[str]) -> np.ndarray:
        """One float score per text, under the model's active edits."""
        ...


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
