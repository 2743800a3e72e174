"""The training engine of the LM-loss methods: the frozen prefix runs once, each step only the blocks above.

A method trained through the model (SSV, ReFT-r1, LoReFT) edits the residual stream at one or
more sites and reads the loss on the response tokens. Everything below the lowest edited site is
the same at every step, so `PrefixEngine` runs it once per example without gradients (a capture
that stops at that site), keeps the residual stream there per token (in memory, LRU-bounded by
bytes, keyed by the token ids so SSV, ReFT-r1 and LoReFT on the same examples share it), and
each step runs only the decoder layers above it, the final norm and the unembedding, with the
method's edits applied at their sites. A step's examples are length-bucketed (sorted, grouped
while padding stays under ``slack`` of the real tokens), logits are computed only at positions
that predict a response token, and each group is backpropagated on its own: the summed loss and
gradient equal the padded full-forward batch's (tests/unit/test_bench_engine.py checks both).

`FullForward` is the same interface over ``model.forward(grad=True)`` with `Apply` edits: the
fallback for backends whose layers cannot be called directly (TransformerLens, remote nnsight,
architectures whose layer stack does not reproduce the model's own logits on a probe input).

Example:
    >>> from interpkit._testing import tiny_model
    >>> type(training_engine(tiny_model("nnsight", arch="llama"), ["layer0.resid_post"])).__name__
    'PrefixEngine'
    >>> type(training_engine(tiny_model("nnsight"), ["layer0.resid_post"])).__name__
    'FullForward'
"""

from __future__ import annotations

import hashlib
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FullForward", "Group", "PrefixEngine", "edit_mask", "lm_step", "make_group", "n_targets", "response_ce_sum",
           "response_logprobs", "training_engine"]

Example = tuple[list[int], int]
"""``(token ids, index of the first response token)`` (`_lmloss.lm_examples`)."""
EditFns = Mapping[str, Callable[[Any], Any]]
"""Site -> ``fn(x [g, T, d]) -> x'`` for one group (the methods' edits)."""


@dataclass(frozen=True, slots=True)
class Group:
    """Examples run together in one forward: right-padded ids, attention mask and response mask.

    ``resp[i, t]`` is True when token ``t`` of row ``i`` is a response token (the loss reads the
    logit at ``t - 1``); ``starts`` are the rows' first response positions.
    """

    ids: Any
    mask: Any
    resp: Any
    starts: tuple[int, ...]
    store: dict[str, Any] = field(default_factory=dict)
    """Filled by the edits of one forward (ReFT-r1's ``"l1"``: the group's mean over rows)."""
    index: tuple[int, ...] = ()
    """Position of each row in the examples the engine was given (engines reorder them into buckets)."""

    @property
    def n_rows(self) -> int:
        """Rows in the group."""
        return int(self.ids.shape[0])


def make_group(examples: Sequence[Example], pad: int, device: Any, index: Sequence[int] | None = None) -> Group:
    """The right-padded `Group` of ``examples`` (``index``: their positions in the caller's list, default 0..n-1)."""
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    resp = torch.zeros((len(examples), width), dtype=torch.bool)
    for i, (row, start) in enumerate(examples):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
        resp[i, start:len(row)] = True
    order = tuple(range(len(examples))) if index is None else tuple(int(i) for i in index)
    return Group(ids.to(device), mask.to(device), resp.to(device), tuple(int(s) for _, s in examples), index=order)


def n_targets(examples: Sequence[Example]) -> int:
    """Response tokens the loss reads over ``examples`` (every response token but a row's first token)."""
    return sum(len(ids) - max(start, 1) for ids, start in examples)


def edit_mask(group: Group, prefix: int) -> Any:
    """``[g, T]`` 1 on the positions an all-positions edit touches: real tokens from ``prefix`` on."""
    where = group.mask.clone()
    # The first prefix_length positions (BOS and the chat header shared by all prompts) are never edited.
    where[:, :prefix] = 0
    return where


def lm_step(engine: Any, examples: Sequence[Example], make_edits: Callable[[Group], EditFns], *,
            l1_weight: float | None = None) -> tuple[float, float]:
    """Forward and backward of one step: gradients of the batch loss land on the edits' parameters.

    The loss is the mean next-token cross-entropy over the batch's response tokens, plus, with
    ``l1_weight``, that weight times the mean over rows of ``group.store["l1"]`` (each group
    stores its own mean over its rows). Groups are backpropagated one at a time with their share
    of the batch loss, so the accumulated gradient is the whole batch's.

    Returns:
        ``(cross-entropy, l1)`` of the batch as floats (l1 0 without ``l1_weight``).
    """
    total, rows = n_targets(examples), len(examples)
    ce_all = l1_all = 0.0
    for group, ce_sum in engine.groups(examples, make_edits):
        loss = ce_sum / total
        if l1_weight is not None:
            share = group.store["l1"] * (group.n_rows / rows)
            loss = loss + float(l1_weight) * share
            l1_all += float(share.detach())
        loss.backward()
        ce_all += float(ce_sum.detach()) / total
    return ce_all, l1_all


def response_ce_sum(logits: Any, ids: Any, resp: Any, *, per_row: bool = False) -> Any:
    """Summed next-token cross-entropy of ``logits [g, T-1, V]`` on the response tokens (``resp``) of ``ids``.

    A scalar, or with ``per_row`` one sum per row (``[g]``).
    """
    # Position t predicts token t + 1: a logit row counts when the token it predicts is a response token.
    target = resp[:, 1:]
    return _ce(logits[target], ids[:, 1:][target], target, per_row)


def _ce(logits: Any, targets: Any, where: Any, per_row: bool) -> Any:
    """Cross-entropy of the flat ``logits``/``targets`` picked by the bool mask ``where [g, ·]`` (row-major)."""
    import torch

    if not per_row:
        return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")
    ce = torch.nn.functional.cross_entropy(logits.float(), targets, reduction="none")
    rows = where.nonzero()[:, 0]
    return torch.zeros(where.shape[0], dtype=ce.dtype, device=ce.device).index_add(0, rows, ce)


def response_logprobs(engine: Any, examples: Sequence[Example], make_edits: Callable[[Group], EditFns]) -> Any:
    """Summed log-probability of each example's response under the edits, ``[len(examples)]`` in their order.

    The graph stays attached (RePS combines several rows' values non-linearly before one backward);
    call it under ``torch.no_grad()`` for the unedited reference. A row's first token, when it is a
    response token, has no prediction and does not count (as in `n_targets`).
    """
    import torch

    out: list[Any] = [None] * len(examples)
    for group, ce in engine.groups(examples, make_edits, per_row=True):
        for j, i in enumerate(group.index):
            out[i] = -ce[j]
    return torch.stack(out)


class FullForward:
    """Every step through ``model.forward(grad=True)`` with `Apply` edits: one group per step."""

    name = "full-forward"

    def __init__(self, model: Any) -> None:
        """Train through ``model``'s own forward."""
        self.model = model

    def groups(self, examples: Sequence[Example], make_edits: Callable[[Group], EditFns], *,
               per_row: bool = False) -> Iterator[tuple[Group, Any]]:
        """Yield ``(group, summed response CE)`` with the graph attached (``per_row``: one sum per row)."""
        from interpkit.models import Apply
        from interpkit.models._wrapper import TokenBatch

        group = make_group(examples, self.model.pad_token_id, self.model.device)
        edits = [Apply(site, fn, name="bench-train") for site, fn in make_edits(group).items()]
        with self.model.edits(*edits):
            logits = self.model.forward(TokenBatch(input_ids=group.ids, attention_mask=group.mask), grad=True)
        yield group, response_ce_sum(logits[:, :-1], group.ids, group.resp, per_row=per_row)

    def stats(self) -> dict[str, Any]:
        """What the engine did (for a method's ``info``)."""
        return {"engine": self.name}


def _boundary(site: str) -> int | None:
    """The layer whose output is ``site`` (-1: the embeddings), or None for sites inside a block."""
    from interpkit.models._sites import parse_site

    parsed = parse_site(site)
    if parsed is None:
        return None
    layer, kind = parsed
    return {"resid_post": layer, "resid_pre": layer - 1}.get(kind)


class PrefixEngine:
    """Cached residual stream below the lowest edited site, and the decoder layers above it.

    Args:
        model: a local nnsight `ModelWrapper` over an HF decoder whose blocks take
            ``(hidden, attention_mask=, position_ids=, position_embeddings=)`` (Llama family).
        start: the cached boundary (the output of block ``start``; -1: the embeddings).
        max_bytes: bound of the in-memory prefix cache (least recently used entries go first).
        slack: a step's examples share a forward while its padding stays under ``slack`` of its tokens.
    """

    name = "cached-prefix"

    def __init__(self, model: Any, start: int, *, max_bytes: int = 1 << 30, slack: float = 0.15) -> None:
        """See the class docstring."""
        self.model = model
        self.hf = model.impl.module
        self.inner = getattr(self.hf, self.hf.base_model_prefix)
        self.start = int(start)
        self.site = "layer0.resid_pre" if self.start < 0 else f"layer{self.start}.resid_post"
        self.max_bytes, self.slack = int(max_bytes), float(slack)
        self._cache: OrderedDict[bytes, Any] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    # ---- the prefix ------------------------------------------------------------------------

    @staticmethod
    def _key(ids: Sequence[int]) -> bytes:
        return hashlib.sha1(repr(list(ids)).encode()).digest()

    def prefixes(self, examples: Sequence[Example], batch_size: int = 8) -> list[Any]:
        """The residual stream at the boundary, ``[len(ids), d]`` per example (computed once, then cached)."""
        import torch

        from interpkit.models._wrapper import TokenBatch

        keys = [self._key(ids) for ids, _ in examples]
        todo = sorted({k: i for i, k in enumerate(keys) if k not in self._cache}.values(),
                      key=lambda i: len(examples[i][0]))
        self.hits += len(examples) - len(todo)
        self.misses += len(todo)
        found: dict[bytes, Any] = {}
        # Sorted by length so each no-grad batch pads little; right padding never reaches real tokens (causal).
        for b in range(0, len(todo), batch_size):
            rows = [examples[i] for i in todo[b:b + batch_size]]
            group = make_group(rows, self.model.pad_token_id, self.model.device)
            with torch.no_grad():
                h = self.model.capture(TokenBatch(input_ids=group.ids, attention_mask=group.mask), self.site)[self.site]
            for j, i in enumerate(todo[b:b + batch_size]):
                found[keys[i]] = h[j, : len(examples[i][0])].detach().clone()
        out = []
        for k in keys:
            if k in found:
                self._put(k, found[k])
                out.append(found[k])
            else:
                self._cache.move_to_end(k)
                out.append(self._cache[k])
        return out

    def _put(self, key: bytes, value: Any) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        self._cache[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, old = self._cache.popitem(last=False)
            self._bytes -= old.numel() * old.element_size()

    # ---- the layers above ------------------------------------------------------------------

    def _upper(self, h: Any, mask: Any, fns: Mapping[int, Callable[[Any], Any]], need: Any) -> Any:
        """Final-normed hidden states at positions ``need [g, T]`` after blocks ``start+1..`` with the edits."""
        import torch
        from transformers.masking_utils import create_causal_mask

        pos = torch.arange(h.shape[1], device=h.device).unsqueeze(0)
        # The model's own mask builder and rotary module: the blocks see exactly what LlamaModel.forward gives them.
        causal = create_causal_mask(config=self.inner.config, inputs_embeds=h, attention_mask=mask, cache=None,
                                    position_ids=pos)
        rope = self.inner.rotary_emb(h, position_ids=pos)
        if self.start in fns:
            h = fns[self.start](h)
        for layer in range(self.start + 1, len(self.inner.layers)):
            h = self.inner.layers[layer](h, attention_mask=causal, position_ids=pos, position_embeddings=rope,
                                         use_cache=False)
            if layer in fns:
                h = fns[layer](h)
        # Only the positions the loss reads go through the final norm and the (vocabulary-wide) unembedding.
        return self.inner.norm(h[need])

    def _buckets(self, examples: Sequence[Example]) -> list[list[int]]:
        order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
        out: list[list[int]] = []
        for i in order:
            if out:
                cur = [*out[-1], i]
                width, real = len(examples[i][0]), sum(len(examples[j][0]) for j in cur)
                if width * len(cur) <= (1 + self.slack) * real:
                    out[-1] = cur
                    continue
            out.append([i])
        return out

    def groups(self, examples: Sequence[Example], make_edits: Callable[[Group], EditFns], *,
               per_row: bool = False) -> Iterator[tuple[Group, Any]]:
        """Yield ``(group, summed response CE)`` per length bucket (``per_row``: one sum per row); backpropagate
        each before the next."""
        import torch

        pre = self.prefixes(examples)
        head = self.hf.get_output_embeddings()
        for bucket in self._buckets(examples):
            rows = [examples[i] for i in bucket]
            group = make_group(rows, self.model.pad_token_id, self.model.device, index=bucket)
            h = torch.zeros((group.n_rows, group.ids.shape[1], pre[bucket[0]].shape[-1]),
                            dtype=pre[bucket[0]].dtype, device=pre[bucket[0]].device)
            for j, i in enumerate(bucket):
                h[j, : pre[i].shape[0]] = pre[i]
            fns = {_boundary(site): fn for site, fn in make_edits(group).items()}
            need = torch.zeros_like(group.resp)
            need[:, :-1] = group.resp[:, 1:]
            logits = head(self._upper(h, group.mask, fns, need))
            yield group, _ce(logits, group.ids[:, 1:][group.resp[:, 1:]], need, per_row)

    def stats(self) -> dict[str, Any]:
        """Cache hits and misses, the cached boundary and bytes held (for a method's ``info``)."""
        return {"engine": self.name, "cached_site": self.site, "prefix_hits": self.hits,
                "prefix_misses": self.misses, "cache_bytes": self._bytes}


def _parity(engine: PrefixEngine, model: Any, atol: float = 1e-4) -> bool:
    """The engine's logits equal the model's own on a probe input (else the layer calls are not the model's)."""
    import torch

    from interpkit.models._wrapper import TokenBatch

    vocab = int(model.hf_model.get_output_embeddings().weight.shape[0])
    ids = [int(i) % vocab for i in (1, 5, 9, 2, 7, 3, 11, 4)]
    examples = [(ids, 3), (ids[:6], 2)]
    group = make_group(examples, model.pad_token_id, model.device)
    with torch.no_grad():
        ref = model.forward(TokenBatch(input_ids=group.ids, attention_mask=group.mask))
        pre = engine.prefixes(examples)
        h = torch.zeros((2, 8, pre[0].shape[-1]), dtype=pre[0].dtype, device=pre[0].device)
        h[0], h[1, :6] = pre[0], pre[1]
        need = group.mask.bool()
        got = engine.hf.get_output_embeddings()(engine._upper(h, group.mask, {}, need))
    engine._cache.clear()
    engine._bytes = engine.hits = engine.misses = 0
    return bool(torch.allclose(got.float(), ref[need].float(), atol=atol, rtol=1e-3))


def training_engine(model: Any, sites: Sequence[str], *, prefer: str = "auto", **kw: Any) -> FullForward | PrefixEngine:
    """The fastest engine that reproduces ``model.forward`` for edits at ``sites``.

    Args:
        model: the `ModelWrapper`.
        sites: the canonical sites the method edits.
        prefer: ``"auto"`` (the cached prefix when possible), ``"full"`` (always the full forward).
        **kw: `PrefixEngine` options (``max_bytes``, ``slack``).

    Returns:
        A `PrefixEngine` for a local nnsight model of the Llama family whose layer stack passes a
        parity probe; otherwise `FullForward`.
    """
    if prefer not in ("auto", "full"):
        raise ValueError(f"prefer must be 'auto' or 'full', got {prefer!r}")
    bounds = [_boundary(s) for s in sites]
    hf = getattr(getattr(model, "impl", None), "module", None)
    inner = getattr(hf, getattr(hf, "base_model_prefix", ""), None) if hf is not None else None
    usable = (prefer == "auto" and model.backend == "nnsight" and not getattr(model.impl, "remote", False)
              and bounds and None not in bounds and inner is not None
              and all(hasattr(inner, a) for a in ("layers", "rotary_emb", "norm")))
    if not usable:
        return FullForward(model)
    # One engine per (model, boundary, options), so SSV, ReFT-r1 and LoReFT of a run share its prefix cache.
    memo = _ENGINES.setdefault(model, {})
    key = (min(bounds), tuple(sorted(kw.items())))
    if key not in memo:
        engine = PrefixEngine(model, min(bounds), **kw)
        try:
            ok = _parity(engine, model)
        except (TypeError, ValueError, RuntimeError, AttributeError, ImportError):
            ok = False
        memo[key] = engine if ok else None
    return memo[key] or FullForward(model)


_ENGINES: weakref.WeakKeyDictionary[Any, dict[Any, PrefixEngine | None]] = weakref.WeakKeyDictionary()
