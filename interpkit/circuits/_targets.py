"""What an attribution graph explains: a next-token logit, a logit difference, or a residual direction.

A `Target` is a linear read of the frozen model: ``vector · read[position]``, ``read`` the
final-normed residual stream (logits) or a layer's residual stream (a direction, e.g. a criterion's
DiffMean direction). Logits are demeaned over the vocabulary by default (circuit-tracer's choice):
the graph then explains why this token beats the average token, not the shift every logit shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ._replacement import CircuitError, ReplacementModel

__all__ = ["Direction", "Target", "resolve_targets"]


@dataclass(frozen=True)
class Direction:
    """A direction target: ``vector · resid_post[layer][position]`` (``layer`` -1: the final-normed stream).

    Attributes:
        vector: ``[d_model]``.
        layer: the residual stream after this block (-1: the final norm's output, what the unembedding reads).
        label: shown in the graph.
    """

    vector: Any
    layer: int = -1
    label: str = "direction"


@dataclass(frozen=True)
class Target:
    """A resolved target (see the module docstring)."""

    kind: str
    label: str
    read: tuple[str, int]
    vector: torch.Tensor
    position: int
    token_ids: tuple[int, ...] = ()

    def value(self, values: dict[str, Any]) -> float:
        """The target's value from a pass's values (`ReplacementModel.run` / ``_forward``)."""
        name, layer = self.read
        t = values["final"] if name == "final" else values["resid_post"][layer]
        return float(t[self.position].detach().float() @ self.vector.float())


def _token_id(rm: ReplacementModel, token: str | int) -> int:
    if isinstance(token, int):
        vocab = rm.W_U.shape[0]
        if not 0 <= token < vocab:
            raise CircuitError(f"target token id {token} is outside the vocabulary (0..{vocab - 1})")
        return token
    tok = getattr(rm.wrapper, "tokenizer", None)
    if tok is None:
        raise CircuitError("the model has no tokenizer: give the target as a token id")
    ids = tok(token, add_special_tokens=False).input_ids
    if len(ids) != 1:
        pieces = tok.convert_ids_to_tokens(ids)
        raise CircuitError(f"target {token!r} is {len(ids)} tokens ({pieces}); a logit target must be one "
                           "token (mind the leading space: ' Paris')")
    return int(ids[0])


def resolve_targets(rm: ReplacementModel, spec: Any, logits: torch.Tensor, *, position: int = -1,
                    demean: bool = True, top_k: int = 1) -> tuple[list[Target], list[float]]:
    """Targets and their weights from ``spec``.

    Args:
        rm: the replacement model.
        spec: a token (``" Paris"`` or an id): its logit; a pair ``(" Paris", " London")``: the logit
            difference; a `Direction`; None: the model's ``top_k`` most likely next tokens, weighted by
            their probabilities.
        logits: the clean logits ``[n, vocab]``.
        position: the position read (default the last).
        demean: subtract the mean unembedding row from logit targets.
        top_k: with ``spec`` None, how many top tokens.

    Raises:
        CircuitError: a target that is not one token, an id outside the vocabulary, a position outside the
            prompt, a direction of the wrong width or layer.
    """
    n = logits.shape[0]
    pos = position if position >= 0 else n + position
    if not 0 <= pos < n:
        raise CircuitError(f"target position {position} is outside the prompt ({n} tokens)")
    w_u = rm.W_U.detach()
    mean = w_u.mean(0) if demean else torch.zeros_like(w_u[0])
    tok = getattr(rm.wrapper, "tokenizer", None)

    def show(i: int) -> str:
        return repr(tok.decode([i])) if tok is not None else str(i)

    if spec is None:
        probs = torch.softmax(logits[pos].float(), -1)
        p, ids = probs.topk(max(1, int(top_k)))
        targets = [Target("logit", f"logit {show(int(i))}", ("final", -1), w_u[int(i)] - mean, pos, (int(i),))
                   for i in ids]
        return targets, (p / p.sum()).tolist()
    if isinstance(spec, Direction):
        v = torch.as_tensor(spec.vector, dtype=w_u.dtype, device=w_u.device).reshape(-1)
        if v.numel() != rm.d_model:
            raise CircuitError(f"direction target has width {v.numel()}, the model's residual stream {rm.d_model}")
        if not -1 <= spec.layer < rm.n_layers:
            raise CircuitError(f"direction target layer {spec.layer} is outside the model (0..{rm.n_layers - 1}, "
                               "or -1 for the final norm)")
        read = ("final", -1) if spec.layer == -1 else ("resid_post", int(spec.layer))
        return [Target("direction", spec.label, read, v, pos)], [1.0]
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        if len(spec) != 2:
            raise CircuitError(f"a logit-difference target is a pair of tokens, got {len(spec)} items")
        a, b = (_token_id(rm, t) for t in spec)
        return [Target("logit_diff", f"logit {show(a)} − {show(b)}", ("final", -1), w_u[a] - w_u[b], pos,
                       (a, b))], [1.0]
    i = _token_id(rm, spec)
    return [Target("logit", f"logit {show(i)}", ("final", -1), w_u[i] - mean, pos, (i,))], [1.0]
