"""Stream a model's activations over a text dataset, pooled or per token, in bounded memory.

`stream_activations` tokenises texts in batches (length-sorted inside windows of
``16 * batch_size`` texts, so batches carry little padding; every window is put back in dataset
order), runs ``model.capture`` with ``stop_at_deepest=True`` so no layer past the deepest requested
site runs, masks padding (and, by choice, the BOS token and chat-template tokens), and reduces each
example to one vector per pooling (``max``, ``mean``, ``last``) or keeps every token (``tokens``).

Results land in one `ActivationSet` per (site, pooling) (``_chunks``: chunks in memory, spilled
to parquet shards in ``spill_dir`` once the bytes held by all sets pass ``memory_budget_mb``).
How the model runs (batch size, truncation, exclusions, template, budget, ...) is one
`StreamOptions` (``_options``), given as ``stream=`` or as loose keywords.

Example:
    >>> from interpkit._testing import tiny_model
    >>> res = stream_activations(tiny_model(), ["a cat", "the dog"], "layer1.resid_post",
    ...                          pooling=("max", "mean"), progress=False)
    >>> res["layer1.resid_post", "mean"].to_numpy().shape
    (2, 16)
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from ._chunks import ActivationChunk, ActivationSet, _concat, _take
from ._options import EXCLUSIONS, Exclusion, StreamOptions  # noqa: F401 (EXCLUSIONS, Exclusion: older imports)

if TYPE_CHECKING:
    import torch

__all__ = ["ActivationChunk", "ActivationSet", "StreamOptions", "StreamResult", "stream_activations"]

Pooling = Literal["max", "mean", "last", "tokens"]
POOLINGS: tuple[str, ...] = get_args(Pooling)
MASSIVE_FACTOR = 10.0
"""``"massive"`` exclusion: a position whose activation norm at a site exceeds this many times the
median norm of its text's kept positions there is left out (attention-sink tokens: Sun et al. 2024,
"Massive activations in large language models"; in SmolLM2 the first token after BOS can reach a
norm of ~20,000 at layer 15, hundreds of times the rest, and would dominate every max-pooled value)."""
_WINDOW_BATCHES = 16
_SENTINEL = "\u2063INTERPKIT_CONTENT\u2063"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamResult:
    """The activation sets of one streaming pass, keyed by ``(site, pooling)``.

    Index it as ``result[site, pooling]``.
    """

    sets: Mapping[tuple[str, str], ActivationSet]
    """One `ActivationSet` per requested (site, pooling)."""
    n_examples: int
    """Number of examples streamed."""
    peak_bytes: int = 0
    """Most bytes of activations held in memory at once (checked after each window)."""
    n_empty: int = 0
    """Examples with no position left after masking (their pooled rows are zeros)."""
    computed: tuple[tuple[str, str], ...] = field(default=())
    """The keys computed by running the model (the rest came from a cache)."""

    def __getitem__(self, key: tuple[str, str]) -> ActivationSet:
        return self.sets[key]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.sets)

    def __len__(self) -> int:
        return len(self.sets)


@dataclass(frozen=True, slots=True)
class _Template:
    prefix: tuple[int, ...]
    suffix: tuple[int, ...]
    prefix_text: str
    suffix_text: str
    prepend_bos: bool


def _chat_template(model: Any, prepend_bos: bool) -> _Template:
    tok = model.tokenizer
    if getattr(tok, "chat_template", None) is None:
        raise ValueError(f"the tokenizer of {getattr(model, 'name', 'this model')} has no chat template")
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": _SENTINEL}], tokenize=False, add_generation_prompt=True
    )
    prefix_text, _, suffix_text = rendered.partition(_SENTINEL)
    bos = getattr(tok, "bos_token", None)
    pb = prepend_bos and not (bos and prefix_text.startswith(bos))

    def ids(text: str, with_bos: bool) -> tuple[int, ...]:
        if not text and not with_bos:
            return ()
        batch = model.tokenize([text], prepend_bos=with_bos)
        mask = batch.attention_mask[0].bool()
        return tuple(int(i) for i in batch.input_ids[0][mask].tolist())

    return _Template(ids(prefix_text, pb), ids(suffix_text, False), prefix_text, suffix_text, pb)


def tokenized_ids(
    model: Any,
    texts: Sequence[str],
    *,
    max_length: int | None = 128,
    chat_template: bool = False,
    prepend_bos: bool = True,
    batch_size: int = 64,
) -> list[list[int]]:
    """The unpadded token ids `stream_activations` runs for each text (same template and BOS).

    ``token_index`` values in activation sets index into these lists.
    """
    template = _chat_template(model, prepend_bos) if chat_template else None
    add_bos = prepend_bos if template is None else template.prepend_bos
    if template is not None:
        texts = [template.prefix_text + t + template.suffix_text for t in texts]
    out: list[list[int]] = []
    for start in range(0, len(texts), batch_size):
        batch = model.tokenize(
            list(texts[start : start + batch_size]), max_length=max_length, prepend_bos=add_bos
        )
        for ids, mask in zip(batch.input_ids.tolist(), batch.attention_mask.tolist(), strict=True):
            out.append([i for i, m in zip(ids, mask, strict=True) if m])
    return out


def _position_mask(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    exclude: Sequence[str],
    bos_id: int | None,
    template: _Template | None,
) -> tuple[torch.Tensor, int]:
    """Boolean ``[batch, pos]`` of kept positions, and how many template matches failed."""
    import torch

    keep = attention_mask.bool().clone()
    first = attention_mask.int().argmax(dim=1)
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)
    if "bos" in exclude and bos_id is not None:
        is_bos = (input_ids[rows, first] == bos_id) & keep[rows, first]
        keep[rows[is_bos], first[is_bos]] = False
    misses = 0
    if "chat_template" in exclude and template is not None:
        ids_cpu, keep_cpu = input_ids.cpu(), attention_mask.bool().cpu()
        for b in range(input_ids.shape[0]):
            valid = torch.nonzero(keep_cpu[b]).flatten().tolist()
            seq = ids_cpu[b, valid].tolist()
            np_, ns = len(template.prefix), len(template.suffix)
            if np_ and tuple(seq[:np_]) == template.prefix:
                keep[b, valid[:np_]] = False
            elif np_:
                misses += 1
            if ns and len(seq) >= np_ + ns and tuple(seq[-ns:]) == template.suffix:
                keep[b, valid[-ns:]] = False
    return keep, misses


def _massive_positions(acts: torch.Tensor, keep: torch.Tensor, factor: float = MASSIVE_FACTOR) -> torch.Tensor:
    """``[batch, pos]`` True where a kept position's norm exceeds ``factor`` x its row's median kept norm."""
    import torch

    norms = acts.float().norm(dim=-1)
    median = torch.nanmedian(norms.masked_fill(~keep, float("nan")), dim=1, keepdim=True).values
    return keep & (norms > factor * torch.nan_to_num(median, nan=float("inf")))


def _pool(acts: torch.Tensor, keep: torch.Tensor, pooling: str, keep_argmax: bool) -> dict[str, Any]:
    import torch

    mask = keep.unsqueeze(-1)
    empty = ~keep.any(dim=1)
    if pooling == "max":
        filled = acts.masked_fill(~mask, float("-inf"))
        values, argmax = filled.max(dim=1)
        values = values.masked_fill(empty.unsqueeze(-1), 0.0)
        return {"values": values, "argmax": argmax.int() if keep_argmax else None}
    if pooling == "mean":
        count = keep.sum(dim=1, keepdim=True).clamp(min=1).to(acts.dtype)
        return {"values": (acts * mask).sum(dim=1) / count}
    positions = torch.arange(keep.shape[1], device=keep.device).expand_as(keep)
    last = torch.where(keep, positions, torch.full_like(positions, -1)).max(dim=1).values
    rows = torch.arange(acts.shape[0], device=acts.device)
    values = acts[rows, last.clamp(min=0)].masked_fill(empty.unsqueeze(-1), 0.0)
    return {"values": values, "token_index": last.int()}


class _TokenText:
    """Token id -> display string, memoised (single-token ``decode``, so spaces show)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.memo: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        text = self.memo.get(token_id)
        if text is None:
            text = self.memo[token_id] = self.tokenizer.decode([token_id])
        return text


def resolve_sites(model: Any, sites: str | Sequence[str]) -> list[str]:
    """Concrete site names for ``sites`` (names or patterns), de-duplicated, in request order."""
    names = [sites] if isinstance(sites, str) else list(sites)
    resolve = getattr(model, "resolve_sites", None) or getattr(model, "resolve_site", None)
    out: list[str] = []
    for name in names:
        found = name if resolve is None else resolve(name)
        for site in [found] if isinstance(found, str) else found:
            if site not in out:
                out.append(site)
    return out


def _texts(items: Iterable[Any]) -> Iterator[str]:
    for item in items:
        yield item if isinstance(item, str) else item.text


def _check_poolings(pooling: Any) -> tuple[str, ...]:
    """``pooling`` as a tuple of distinct known poolings, in request order."""
    poolings = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    bad = [p for p in poolings if p not in POOLINGS]
    if bad or not poolings:
        raise ValueError(f"pooling must be among {POOLINGS}, got {pooling!r}")
    return tuple(dict.fromkeys(poolings))


def stream_activations(
    model: Any,
    texts: Iterable[str | Any],
    sites: str | Sequence[str],
    *,
    pooling: str | Sequence[str] = ("max", "mean", "last"),
    projections: Mapping[str, np.ndarray] | None = None,
    keep_argmax: bool = False,
    stream: StreamOptions | None = None,
    **options: Any,
) -> StreamResult:
    """Run ``model`` over ``texts`` and collect activations at ``sites``.

    Args:
        model: an interpkit ``ModelWrapper`` (anything with ``tokenizer``, ``tokenize`` and
            ``capture(batch, sites, stop_at_deepest=True)``).
        texts: strings or rows with a ``text`` attribute (`PromptRow`); may be a generator.
        sites: site names or patterns (``model.resolve_site`` expands them).
        pooling: one or several of ``"max"``, ``"mean"``, ``"last"``, ``"tokens"`` (one row per
            kept token, with its position and decoded string), all computed in the same pass.
        projections: site -> matrix ``[d_model, k]``; activations are projected per token before
            pooling, so ``max`` pools ``max_t (a_t @ W)``, not ``(max_t a_t) @ W``.
        keep_argmax: record the position of each dimension's maximum (``max`` pooling).
        stream: how the model runs over the texts (batch size, truncation, excluded positions,
            chat template, BOS, progress bar, memory budget, spill folder, length sorting):
            a `StreamOptions` (default ``StreamOptions()``).
        **options: any `StreamOptions` field (``batch_size=4``, ``max_length=32``, ...), over
            ``stream``'s value.

    Returns:
        A `StreamResult`: ``result[site, pooling]`` is an `ActivationSet`.

    Raises:
        TypeError: a keyword that is not a `StreamOptions` field.
        ValueError: an unknown pooling, a bad option (see `StreamOptions`), or a chat template
            the tokenizer lacks.
    """
    opts = StreamOptions.merge(stream, caller="stream_activations", **options)
    poolings = _check_poolings(pooling)
    site_list = resolve_sites(model, sites)
    template = _chat_template(model, opts.prepend_bos) if opts.chat_template else None
    plan = _Plan(
        sites=tuple(site_list),
        poolings=poolings,
        exclude=opts.exclude_positions,
        projections=dict(projections or {}),
        template=template,
        bos_id=getattr(model.tokenizer, "bos_token_id", None),
        add_bos=opts.prepend_bos if template is None else template.prepend_bos,
        max_length=opts.max_length,
        batch_size=opts.batch_size,
        keep_argmax=keep_argmax,
        sort_by_length=opts.sort_by_length,
        token_text=_TokenText(model.tokenizer),
    )
    budget = int(opts.memory_budget_mb * 2**20)
    spill_path = None if opts.spill_dir is None else Path(opts.spill_dir)  # None: each set makes a temp dir on spill
    sets: dict[tuple[str, str], ActivationSet] = {}
    n_total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]
    bar = None
    if opts.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_total, desc=f"activations @ {', '.join(site_list)}", unit="text")
    peak = n_empty = misses = n_seen = 0
    text_iter = _texts(texts)
    try:
        while window := list(itertools.islice(text_iter, opts.batch_size * _WINDOW_BATCHES)):
            chunks, empty, miss = _run_window(model, plan, window, n_seen, bar)
            n_empty, misses, n_seen = n_empty + empty, misses + miss, n_seen + len(window)
            for key, chunk in chunks.items():
                if key not in sets:
                    sets[key] = ActivationSet(
                        site=key[0], pooling=key[1], d=chunk.values.shape[1], spill_dir=spill_path
                    )
                sets[key].append(chunk)
            held = sum(s.bytes_in_memory for s in sets.values())
            peak = max(peak, held)
            if held > budget:
                for s in sets.values():
                    s.spill()
    finally:
        if bar is not None:
            bar.close()
    if misses:
        warnings.warn(
            f"{misses} example(s) did not start with the chat template's prefix tokens; "
            "their template tokens were kept",
            stacklevel=2,
        )
    if n_empty:
        warnings.warn(
            f"{n_empty} example(s) had no position left after masking; their pooled rows are zeros",
            stacklevel=2,
        )
    for s in sets.values():
        s.n_examples = n_seen
    return StreamResult(
        sets=sets,
        n_examples=n_seen,
        peak_bytes=peak,
        n_empty=n_empty,
        computed=tuple(sets),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _Plan:
    """The fixed settings of one streaming pass."""

    sites: tuple[str, ...]
    poolings: tuple[str, ...]
    exclude: tuple[str, ...]
    projections: Mapping[str, np.ndarray]
    template: _Template | None
    bos_id: int | None
    add_bos: bool
    max_length: int | None
    batch_size: int
    keep_argmax: bool
    sort_by_length: bool
    token_text: _TokenText


def _run_window(
    model: Any, plan: _Plan, window: list[str], offset: int, bar: Any
) -> tuple[dict[tuple[str, str], ActivationChunk], int, int]:
    """One window of texts -> one chunk per (site, pooling) in dataset order, empties, template misses."""
    import torch

    if plan.template is not None:
        window = [plan.template.prefix_text + t + plan.template.suffix_text for t in window]
    order = list(range(len(window)))
    if plan.sort_by_length:
        order.sort(key=lambda i: len(window[i]))
    pending: dict[tuple[str, str], list[ActivationChunk]] = {}
    n_empty = misses = 0
    for start in range(0, len(order), plan.batch_size):
        idx = order[start : start + plan.batch_size]
        batch = model.tokenize([window[i] for i in idx], max_length=plan.max_length, prepend_bos=plan.add_bos)
        with torch.no_grad():
            acts = model.capture(batch, list(plan.sites), stop_at_deepest=True)
        input_ids = batch.input_ids
        keep, miss = _position_mask(input_ids, batch.attention_mask, plan.exclude, plan.bos_id, plan.template)
        misses += miss
        n_empty += int((~keep.any(dim=1)).sum())
        ex_idx = np.asarray(idx, dtype=np.int64) + offset
        for site in plan.sites:
            a = acts[site].float()
            keep_dev = keep.to(a.device)
            if "massive" in plan.exclude:
                keep_dev = keep_dev & ~_massive_positions(a, keep_dev)
            if site in plan.projections:
                a = a @ torch.as_tensor(plan.projections[site], dtype=torch.float32, device=a.device)
            for p in plan.poolings:
                chunk = _make_chunk(a, keep_dev, p, ex_idx, input_ids, plan.keep_argmax, plan.token_text)
                pending.setdefault((site, p), []).append(chunk)
        if bar is not None:
            bar.update(len(idx))
    out = {}
    for key, chunks in pending.items():
        merged = _concat(chunks)
        out[key] = _take(merged, np.argsort(merged.example_idx, kind="stable"))
    return out, n_empty, misses


def _make_chunk(
    a: torch.Tensor,
    keep: torch.Tensor,
    pooling: str,
    ex_idx: np.ndarray,
    input_ids: torch.Tensor,
    keep_argmax: bool,
    token_text: _TokenText,
) -> ActivationChunk:
    import torch

    if pooling == "tokens":
        rows, pos = torch.nonzero(keep, as_tuple=True)
        ids = input_ids.to(keep.device)[rows, pos].tolist()
        return ActivationChunk(
            example_idx=ex_idx[rows.cpu().numpy()],
            values=a[rows, pos].cpu().numpy().astype(np.float32, copy=False),
            token_index=pos.cpu().numpy().astype(np.int32),
            tokens=tuple(token_text(i) for i in ids),
        )
    out = _pool(a, keep, pooling, keep_argmax)
    return ActivationChunk(
        example_idx=ex_idx,
        values=out["values"].cpu().numpy().astype(np.float32, copy=False),
        token_index=None if out.get("token_index") is None else out["token_index"].cpu().numpy(),
        argmax=None if out.get("argmax") is None else out["argmax"].cpu().numpy(),
    )
