"""The logit compiler: a model's next-token probability mass on the criterion's target tokens.

For token-level criteria ("the next token is a physical measurement unit") the score of a prompt
is the probability the model puts, right after it, on the FIRST token of each target string
(`LogitTargetMetric`; `next_token_probs` reads the distributions). The mass is already in [0, 1];
labels cut it at a threshold chosen on the scored texts (their median, or a given value), so a
compiled dataset splits the pool into the prompts the model most and least expects a target after.
Target tokens always come from the user (`Criterion.target_tokens` or the ``target_tokens``
option); there is never a default list.

Example:
    >>> from interpkit._testing import tiny_model
    >>> comp = LogitCompiler(model=tiny_model(), target_tokens=["a", "e"])
    >>> [round(s.score, 3) > 0 for s in comp.score_texts("next char is a vowel", ["hello", "hi"])]
    [True, True]
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, register_compiler
from ._calibrate import calibrate

if TYPE_CHECKING:
    import torch

__all__ = ["LogitCompiler", "LogitTargetMetric", "MissingTargetTokensError", "next_token_probs"]


class MissingTargetTokensError(ValueError):
    """A logit-based criterion was asked for, but no target tokens were supplied."""


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
            # Right padding: a row's last real token sits at (real tokens - 1); its logits predict the next token.
            last = (batch.attention_mask.sum(dim=1) - 1).to(logits.device)
            rows = logits[torch.arange(logits.shape[0], device=logits.device), last]
            # Softmax in float32 even for half-precision models: small target masses would underflow in bf16.
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
        # The ids are distinct, so the sum is a probability of a disjoint event (in [0, 1]). The first token of a
        # target only bounds the full string's probability from above, the usual single-token convention.
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



@register_compiler
class LogitCompiler(CriterionCompiler):
    """Scores texts by the model's next-token mass on the target tokens.

    Args:
        model: a `ModelWrapper`, or a zoo name loaded on first use (default ``"smollm2-135m"``).
        backend: backend for a model loaded by name.
        target_tokens: targets used when the criterion has none.
        threshold: mass above which a text is positive; None = the median of the scored texts.
        batch_size: prompts per forward pass.
    """

    name = "logit"

    def __init__(self, model: Any = "smollm2-135m", *, backend: str = "transformer_lens",
                 target_tokens: Iterable[str] | None = None, threshold: float | None = None,
                 batch_size: int = 16) -> None:
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"logit threshold must be in [0, 1], got {threshold}")
        self._model = model
        self.backend = backend
        self.target_tokens = tuple(target_tokens) if target_tokens else None
        self.threshold = threshold
        self.batch_size = batch_size

    @property
    def model(self) -> Any:
        """The wrapped model (loaded on first use when given by name)."""
        if isinstance(self._model, str):
            from interpkit.models import load_model

            self._model = load_model(self._model, self.backend)
        return self._model

    def describe(self) -> dict[str, Any]:
        """Compiler name, model, targets and threshold."""
        name = self._model if isinstance(self._model, str) else getattr(self._model, "name", None)
        return {"compiler": self.name, "model": name, "target_tokens": list(self.target_tokens or []),
                "threshold": self.threshold}

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Target mass after each text, labelled positive above the threshold.

        Raises:
            MissingTargetTokensError: neither the criterion nor the compiler has target tokens.
        """
        crit = as_criterion(criterion)
        metric = LogitTargetMetric(crit.text, crit.target_tokens or self.target_tokens or (),
                                   batch_size=self.batch_size)
        texts = list(texts)
        mass = metric.score(self.model, texts) if texts else []
        cal = calibrate(mass, method="threshold", threshold=self.threshold)
        base = {**self.describe(), "criterion": crit.text, "target_tokens": list(metric.target_tokens),
                "threshold": cal.params["threshold"], "threshold_from": cal.params["threshold_from"]}
        return [
            ScoredExample(text=t, score=float(p), label=lab, provenance={**base, "target_mass": float(m)})
            for t, p, lab, m in zip(texts, cal.posteriors, cal.labels, mass, strict=True)
        ]
