"""Perplexity of continuations under the unedited model: the one fluency measure interpkit uses.

The AxBench steering evaluation (`interpkit.bench`), its local judge and the steering evaluation in
`interpkit.causal` (which the steering panel shows) all score fluency with `perplexity`; it is a
pure model computation, so it lives here, below all of them.

Example:
    >>> from interpkit._testing import tiny_model
    >>> ppl = perplexity(tiny_model(), ["the cat", "x"], [" sat down", ""])
    >>> bool(ppl[0] > 1), bool(np.isnan(ppl[1]))
    (True, True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ._wrapper import ModelWrapper

__all__ = ["needs_bos", "perplexity"]


def needs_bos(tokenizer: Any, text: str) -> bool:
    """Whether tokenizing ``text`` should prepend the BOS token (False when ``text`` already starts with it)."""
    bos = getattr(tokenizer, "bos_token", None)
    return bool(bos) and getattr(tokenizer, "bos_token_id", None) is not None and not text.startswith(bos)


def _prompt_ids(model: ModelWrapper, prompt: str) -> list[int]:
    tok = model.tokenizer
    ids = [int(i) for i in tok(prompt, add_special_tokens=False)["input_ids"]]
    return [int(tok.bos_token_id), *ids] if needs_bos(tok, prompt) else ids


def perplexity(model: ModelWrapper, prompts: Sequence[str], continuations: Sequence[str], *,
               batch_size: int = 8, max_length: int = 1024) -> np.ndarray:
    """Perplexity of each continuation given its prompt under the model with NO edits (AxBench §4.5).

    Prompt and continuation are tokenized separately (BOS prepended unless the prompt string
    starts with it) and concatenated; the loss is the mean next-token cross-entropy over the
    continuation's tokens only. Sequences longer than ``max_length`` lose prompt tokens from the
    left. Active edits of ``model`` are ignored on purpose (fluency is judged by the unsteered
    model). An empty continuation gives NaN.

    Returns:
        float64 ``[n]``.
    """
    import torch

    if len(prompts) != len(continuations):
        raise ValueError(f"perplexity: {len(prompts)} prompts but {len(continuations)} continuations")
    tok = model.tokenizer
    rows = []
    for prompt, cont in zip(prompts, continuations, strict=True):
        c = [int(i) for i in tok(cont, add_special_tokens=False)["input_ids"]][: max_length - 1]
        p = _prompt_ids(model, prompt)
        p = p[max(0, len(p) + len(c) - max_length):] or p[-1:]
        rows.append((p, c))
    out = np.full(len(rows), np.nan)
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
    for start in range(0, len(order), batch_size):
        chunk = [i for i in order[start:start + batch_size] if rows[i][1]]
        if not chunk:
            continue
        width = max(len(rows[i][0]) + len(rows[i][1]) for i in chunk)
        ids = torch.full((len(chunk), width), model.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for r, i in enumerate(chunk):
            seq = rows[i][0] + rows[i][1]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.no_grad():
            # the backend directly, with edits=(): the wrapper's forward would apply the active edits
            logits = model.impl.run(ids.to(model.device), mask.to(model.device), capture=(), edits=(),
                                    stop_early=False).logits
            for r, i in enumerate(chunk):
                p, c = rows[i]
                pred = logits[r, len(p) - 1: len(p) + len(c) - 1].float()
                target = torch.tensor(c, device=pred.device)
                out[i] = math.exp(float(torch.nn.functional.cross_entropy(pred, target)))
    return out
