"""Where SAE training rows come from: arrays, activation-record files, or a model streamed live.

An `ActivationSource` hands the trainer shuffled batches of rows ``[batch, d_in]``, the same ones
for the same ``(epoch, seed)``, so a resumed run replays exactly what an uninterrupted one saw.
Every source sets aside held-out rows (`ActivationSource.eval_rows`) that training never reads.

- `ArraySource`: a numpy / torch matrix held in memory.
- `~interpkit.sae._data_paired.PairedArraySource`: two row-aligned matrices ``(x, y)``, for a
  transcoder (reads ``x``, reconstructs ``y``); its batches and held-out rows are ``(x, y)`` pairs.
- `RecordsSource`: an activation-record JSONL (one row per record, feature ids as columns),
  optionally cut to ``max_records`` by seeded reservoir sampling (`reservoir_sample`).
- `ModelSource`: activations of a model site over a list of texts, computed window by window with
  `~interpkit.sources.stream_activations`, so only one window of activations is ever held. With
  ``target_site`` it yields ``(x, y)`` pairs of two sites read in the same forward passes (a
  transcoder's ``layer3.mlp_in`` -> ``layer3.mlp_out``); `ModelSource.with_sites` gives views of
  other sites of the same passes (``read_sites``), sharing one activation cache.

Example:
    >>> import numpy as np
    >>> src = ArraySource(np.random.default_rng(0).normal(size=(100, 8)), eval_fraction=0.2, seed=0)
    >>> [b.shape[0] for b in src.batches(0, 32, seed=0)], tuple(src.eval_rows().shape)
    ([32, 32, 16], (20, 8))
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

__all__ = ["ActivationSource", "ArraySource", "ModelSource", "RecordsSource", "reservoir_sample"]

_T = TypeVar("_T")


@runtime_checkable
class ActivationSource(Protocol):
    """What `~interpkit.sae.train_sae` reads rows from."""

    d_in: int
    """Width of every row."""
    n_rows: int | None
    """Training rows per epoch, when known without a pass (None for a model source)."""

    def batches(self, epoch: int, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
        """Training rows of one epoch, shuffled, as float32 ``[<=batch_size, d_in]`` tensors.

        The same ``(epoch, batch_size, seed)`` gives the same batches. A paired source (one with a
        ``d_out`` attribute, for a transcoder) yields ``(x [b, d_in], y [b, d_out])`` pairs instead,
        and its `eval_rows` is such a pair too.
        """
        ...

    def eval_rows(self) -> torch.Tensor:
        """The held-out rows ``[n_eval, d_in]`` (never part of `batches`)."""
        ...

    def describe(self) -> dict[str, Any]:
        """JSON-ready facts about the source (kind, sizes, where it came from)."""
        ...


def _rng(seed: int, *keys: int) -> np.random.Generator:
    # SeedSequence needs non-negative ints (hence the mask); each purpose passes its own salt (0xE7A1 held-out
    # split, 0xBA7C / 0x7E47 epoch order, 0x5A11 in-window shuffle), so the streams are independent and a
    # change to one (e.g. the batch size) never moves the held-out split.
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *(int(k) for k in keys)])


def _n_eval(n: int, eval_fraction: float) -> int:
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    if eval_fraction == 0 or n < 2:
        return 0
    return min(max(1, round(n * eval_fraction)), n - 1)


def _split_batches(rows: torch.Tensor, batch_size: int, order: np.ndarray, start: int) -> Iterator[torch.Tensor]:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for lo in range(start * batch_size, len(order), batch_size):
        yield rows[torch.from_numpy(order[lo : lo + batch_size])]


class ArraySource:
    """Rows of a matrix in memory; a seeded permutation picks the held-out rows.

    Args:
        array: ``[n, d]`` numpy array or torch tensor (converted to float32 on the CPU).
        eval_fraction: share of rows held out for evaluation (at least one when > 0 and n > 1).
        seed: seed of the held-out split.

    Raises:
        ValueError: the array is not 2-D or has no rows.
    """

    def __init__(self, array: Any, *, eval_fraction: float = 0.1, seed: int = 0) -> None:
        rows = torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array)
        rows = rows.detach().to("cpu", torch.float32).contiguous()
        if rows.ndim != 2 or rows.shape[0] == 0 or rows.shape[1] == 0:
            raise ValueError(f"training rows must be a non-empty [n, d] matrix, got shape {tuple(rows.shape)}")
        n_eval = _n_eval(rows.shape[0], eval_fraction)
        perm = torch.from_numpy(_rng(seed, 0xE7A1).permutation(rows.shape[0]))
        self._eval = rows[perm[:n_eval].sort().values]
        self._train = rows[perm[n_eval:].sort().values]
        self.d_in = int(rows.shape[1])
        self.n_rows: int | None = int(self._train.shape[0])
        self.eval_fraction = eval_fraction

    def batches(self, epoch: int, batch_size: int, seed: int, *, start: int = 0) -> Iterator[torch.Tensor]:
        """Shuffled training batches (``start`` skips that many batches without computing them)."""
        order = _rng(seed, 0xBA7C, epoch).permutation(self._train.shape[0])
        return _split_batches(self._train, batch_size, order, start)

    def eval_rows(self) -> torch.Tensor:
        """The held-out rows."""
        return self._eval

    def describe(self) -> dict[str, Any]:
        """Kind and sizes."""
        return {"kind": "array", "d_in": self.d_in, "n_train_rows": self.n_rows,
                "n_eval_rows": int(self._eval.shape[0])}


def reservoir_sample(items: Iterable[_T], k: int, seed: int) -> list[tuple[int, _T]]:
    """A uniform sample of ``k`` items from a stream of unknown length (Algorithm R, Vitter 1985).

    Holds ``k`` items at a time; every ``k``-subset of the stream is equally likely, and the same
    ``seed`` gives the same sample.

    Args:
        items: the stream.
        k: sample size (the whole stream when it is shorter).
        seed: seed of the sampler's `random.Random`.

    Returns:
        ``(stream index, item)`` pairs in stream order.
    """
    if k < 1:
        raise ValueError(f"max_records must be >= 1, got {k}")
    rng = random.Random(int(seed))
    reservoir: list[tuple[int, _T]] = []
    for i, item in enumerate(items):
        if i < k:
            reservoir.append((i, item))
        else:
            j = rng.randrange(i + 1)  # uniform on 0..i
            if j < k:
                reservoir[j] = (i, item)
    reservoir.sort(key=lambda pair: pair[0])
    return reservoir


class RecordsSource:
    """Activation records (JSONL) as rows: one row per record, one column per feature id.

    Columns are the feature ids seen in the (sampled) records, as strings, in natural order
    (``"site:n2"`` before ``"site:n10"``); a feature absent from a record is 0. The held-out rows
    are all the records of a seeded share of the prompt ids, so token rows of one prompt never
    straddle the split.

    Args:
        path: ``.jsonl`` or ``.jsonl.gz`` activation-record file (or any source
            `~interpkit.records.iter_activation_records` reads).
        max_records: keep a uniform seeded sample of this many records (`reservoir_sample`),
            read in one streaming pass; None keeps all.
        eval_fraction: share of prompt ids held out.
        seed: seed of the sample and of the split.

    Attributes:
        feature_ids: the column ids.
        records: the records kept (after sampling), in file order.
        model: the ``model`` field of the records (the first one when they differ).
        site: the shared ``<site>`` when every id reads ``"<site>:n<i>"``, else None.
        layer: the layer of that site, or the shared ``layer`` of the feature entries, else None.

    Raises:
        ValueError: the file holds no record or no feature.
    """

    def __init__(
        self, path: Any, *, max_records: int | None = None, eval_fraction: float = 0.1, seed: int = 0
    ) -> None:
        from interpkit.models._sites import natsort_key
        from interpkit.records import iter_activation_records

        self.path = path
        stream = iter_activation_records(path)
        if max_records is None:
            self.records = list(stream)
        else:
            self.records = [rec for _, rec in reservoir_sample(stream, max_records, seed)]
        if not self.records:
            raise ValueError(f"{_name(path)}: no activation records")
        ids = {str(f.feature_id) for rec in self.records for f in rec.features}
        if not ids:
            raise ValueError(f"{_name(path)}: the records carry no features")
        self.feature_ids: list[str] = sorted(ids, key=natsort_key)
        column = {fid: j for j, fid in enumerate(self.feature_ids)}
        values = np.zeros((len(self.records), len(self.feature_ids)), dtype=np.float32)
        for i, rec in enumerate(self.records):
            for f in rec.features:
                values[i, column[str(f.feature_id)]] = f.activation
        self.model = self.records[0].model
        self.site, self.layer = _site_of(self.feature_ids, self.records)
        prompts = list(dict.fromkeys(rec.prompt_id for rec in self.records))
        n_eval = _n_eval(len(prompts), eval_fraction)
        held = {prompts[i] for i in _rng(seed, 0xE7A1).permutation(len(prompts))[:n_eval]}
        is_eval = np.array([rec.prompt_id in held for rec in self.records])
        self._array = ArraySource(values[~is_eval], eval_fraction=0.0)
        self._eval = torch.from_numpy(values[is_eval])
        self.d_in = len(self.feature_ids)
        self.n_rows: int | None = self._array.n_rows
        self.max_records = max_records

    def batches(self, epoch: int, batch_size: int, seed: int, *, start: int = 0) -> Iterator[torch.Tensor]:
        """Shuffled training batches (as `ArraySource.batches`)."""
        return self._array.batches(epoch, batch_size, seed, start=start)

    def eval_rows(self) -> torch.Tensor:
        """Rows of the held-out prompts."""
        return self._eval

    def describe(self) -> dict[str, Any]:
        """Kind, path, sizes, model and site."""
        return {"kind": "records", "path": _name(self.path), "d_in": self.d_in, "n_records": len(self.records),
                "max_records": self.max_records, "n_train_rows": self.n_rows,
                "n_eval_rows": int(self._eval.shape[0]), "model": self.model, "site": self.site,
                "layer": self.layer}


def _name(path: Any) -> str:
    return os.fspath(path) if isinstance(path, str | os.PathLike) else "<records>"


def _site_of(feature_ids: Sequence[str], records: Sequence[Any]) -> tuple[str | None, int | None]:
    from interpkit.models._sites import parse_site

    prefixes = {fid.rpartition(":n")[0] if fid.rpartition(":n")[2].isdigit() else None for fid in feature_ids}
    site = next(iter(prefixes)) if len(prefixes) == 1 else None
    parsed = parse_site(site) if site else None
    if parsed is not None:
        return site, parsed[0]
    layers = {f.layer for rec in records for f in rec.features}
    layer = next(iter(layers)) if len(layers) == 1 else None
    return site or None, layer if isinstance(layer, int) else None


class ModelSource:
    """Activations of one model site over texts, streamed one window of texts at a time.

    A seeded share of the texts is held out (`eval_texts`; their activations are `eval_rows`).
    Each epoch visits the training texts in a seeded order, ``window_texts`` at a time: the window
    runs through `~interpkit.sources.stream_activations` (BOS excluded), its rows are shuffled
    and cut into batches, and rows left over carry into the next window. Only one window of
    activations is held in memory, so the dataset can be any size. With ``cache=True`` (the
    default) the texts run through the model once, in fixed blocks, and their rows go to ``.npy``
    shards on disk (``cache_dir``, or a temporary folder removed with the source); every epoch then
    reads them back instead of running the model again (see `_window`).

    Args:
        model: an interpkit ``ModelWrapper``.
        texts: strings, or rows with a ``text`` attribute (`~interpkit.sources.PromptRow`).
        site: the site to read (a name the model resolves).
        target_site: a second site read in the same passes; batches are then ``(site, target_site)``
            pairs (a transcoder's input and output).
        read_sites: further sites to read in the same passes and keep in the cache, for
            `with_sites` views (e.g. every layer's ``mlp_in`` / ``mlp_out``).
        pooling: ``"tokens"`` (a row per token) or ``"mean"`` / ``"max"`` / ``"last"`` (a row per text).
        batch_size: texts per forward pass.
        max_length: token limit per text.
        window_texts: texts per window (more mixes batches better and holds more memory).
        eval_fraction: share of texts held out.
        seed: seed of the held-out choice.
        max_tokens: stop each epoch after this many training rows (None: all).
        cache: keep each text's activations on disk after its first pass.
        cache_dir: folder for the cache shards (default: a temporary folder).

    Raises:
        ValueError: no texts, a bad pooling, fewer than two texts with ``eval_fraction > 0``, or a
            ``target_site`` the model does not have (the message lists the valid sites).
    """

    def __init__(
        self,
        model: Any,
        texts: Sequence[Any],
        site: str,
        *,
        target_site: str | None = None,
        read_sites: Sequence[str] = (),
        pooling: str = "tokens",
        batch_size: int = 8,
        max_length: int | None = 128,
        window_texts: int = 256,
        eval_fraction: float = 0.1,
        seed: int = 0,
        max_tokens: int | None = None,
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if pooling not in ("tokens", "mean", "max", "last"):
            raise ValueError(f"pooling must be 'tokens', 'mean', 'max' or 'last', got {pooling!r}")
        all_texts = [t if isinstance(t, str) else t.text for t in texts]
        if not all_texts:
            raise ValueError("ModelSource needs at least one text")
        if window_texts < 1:
            raise ValueError(f"window_texts must be >= 1, got {window_texts}")
        self.model = model
        self.site = model.resolve_site(site)
        self.target_site = None if target_site is None else _resolve(model, target_site, "target_site")
        wanted = [self.site, *([self.target_site] if self.target_site else []),
                  *(_resolve(model, s, "read_sites") for s in read_sites)]
        self._read: list[str] = list(dict.fromkeys(wanted))
        """Every site each forward pass reads; cached rows hold their columns side by side, in this order."""
        self.pooling = pooling
        self.batch_size = batch_size
        self.max_length = max_length
        self.window_texts = window_texts
        self.max_tokens = max_tokens
        n_eval = _n_eval(len(all_texts), eval_fraction)
        held = set(_rng(seed, 0xE7A1).permutation(len(all_texts))[:n_eval].tolist())
        self.eval_texts = [t for i, t in enumerate(all_texts) if i in held]
        self.train_texts = [t for i, t in enumerate(all_texts) if i not in held]
        self.d_in = int(model.d_model)
        if self.target_site is not None:
            self.d_out = int(model.d_model)
        self._width = self.d_in * len(self._read)
        self.n_rows: int | None = len(self.train_texts) if pooling != "tokens" else None
        if self.n_rows is not None and max_tokens is not None:
            self.n_rows = min(self.n_rows, max_tokens)
        self._shared: dict[str, Any] = {"eval": None, "tmp": None}
        """State the `with_sites` views share: the held-out activations and the temporary cache folder."""
        self.epoch_rows: int | None = None
        """Training rows of the last epoch read to the end (known after one full pass)."""
        self.cache = bool(cache)
        self._cache_root = None if cache_dir is None else Path(cache_dir)
        self._where: dict[int, tuple[Path, int, int]] = {}
        self.model_passes = 0
        """Texts run through the model so far (cached texts are not run again)."""

    def with_sites(self, site: str, target_site: str | None = None) -> ModelSource:
        """A view of this source over other sites of the same forward passes (and the same cache).

        Args:
            site: the view's input site; it and ``target_site`` must be among the sites read.
            target_site: the view's target site (None: an SAE's rows).

        Raises:
            ValueError: a site this source does not read.
        """
        import copy

        view = copy.copy(self)
        view.site = _resolve(self.model, site, "site")
        view.target_site = None if target_site is None else _resolve(self.model, target_site, "target_site")
        for name in (view.site, view.target_site):
            if name is not None and name not in self._read:
                raise ValueError(f"{name!r} is not read by this source (it reads {', '.join(self._read)}); "
                                 "pass it in read_sites=")
        if view.target_site is not None:
            view.d_out = self.d_in
        elif hasattr(view, "d_out"):
            del view.d_out
        view.epoch_rows, view.model_passes = None, 0
        return view

    def _select(self, rows: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """This source's columns of cached rows: the site's, or ``(site, target_site)``."""
        def cols(name: str) -> torch.Tensor:
            j = self._read.index(name) * self.d_in
            return rows[:, j : j + self.d_in]

        if len(self._read) == 1:
            return rows
        return cols(self.site) if self.target_site is None else (cols(self.site), cols(self.target_site))

    def _stream(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``texts`` (every site read, side by side) ordered by text then position, and each
        text's row count."""
        from interpkit.sources import stream_activations

        res = stream_activations(self.model, texts, self._read, pooling=self.pooling, batch_size=self.batch_size,
                                 max_length=self.max_length, progress=False)
        self.model_passes += len(texts)
        parts, counts = [], None
        for name in self._read:
            chunk = res[name, self.pooling].to_chunk(max_bytes=None)
            if chunk.values.shape[1] != self.d_in:
                raise ValueError(f"{name} has width {chunk.values.shape[1]}; ModelSource reads sites of the "
                                 f"model's width {self.d_in}")
            keys = [chunk.example_idx] if chunk.token_index is None else [chunk.token_index, chunk.example_idx]
            parts.append(chunk.values[np.lexsort(keys)])
            counts = np.bincount(chunk.example_idx, minlength=len(texts)) if counts is None else counts
        values = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
        return np.ascontiguousarray(values, dtype=np.float32), counts

    def _activations(self, texts: Sequence[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros(0, self._width)
        return torch.from_numpy(self._stream(texts)[0])

    def _cache_folder(self) -> Path:
        if self._cache_root is not None:
            self._cache_root.mkdir(parents=True, exist_ok=True)
            return self._cache_root
        if self._shared["tmp"] is None:
            import tempfile

            self._shared["tmp"] = tempfile.TemporaryDirectory(prefix="interpkit-sae-acts-")
        return Path(self._shared["tmp"].name)

    def _window(self, idx: Sequence[int]) -> torch.Tensor:
        """Rows of the training texts ``idx`` (text order, then position).

        Without the cache, the window's texts run through the model together. With it, texts are
        run in fixed blocks of ``window_texts`` consecutive training texts (the block a text belongs
        to never changes), each block once, written to a shard and read back from disk after: a
        text's activations then never depend on which other texts shared its forward batches, so
        runs that reach a text through different windows (a resumed run) see identical rows.
        """
        if not self.cache:
            return self._activations([self.train_texts[i] for i in idx])
        # Blocks are fixed by a text's index in train_texts (not by the epoch's window), so each text is run
        # exactly once however the epochs shuffle the texts.
        for block in sorted({i // self.window_texts for i in idx}):
            if block * self.window_texts in self._where:
                continue
            members = list(range(block * self.window_texts,
                                 min((block + 1) * self.window_texts, len(self.train_texts))))
            values, counts = self._stream([self.train_texts[i] for i in members])
            path = self._cache_folder() / f"block-{block:06d}.npy"
            np.save(path, values)
            stops = np.cumsum(counts)
            for i, lo, hi in zip(members, stops - counts, stops, strict=True):
                self._where[i] = (path, int(lo), int(hi))
        opened: dict[Path, np.ndarray] = {}
        parts = []
        for i in idx:
            path, lo, hi = self._where[i]
            if path not in opened:
                opened[path] = np.load(path, mmap_mode="r")
            parts.append(np.asarray(opened[path][lo:hi]))
        if not parts:
            return torch.zeros(0, self._width)
        return torch.from_numpy(np.concatenate(parts))

    def _count_rows(self, texts: Sequence[str]) -> int:
        """Rows `_activations` gives for ``texts``, from tokenising alone (BOS is excluded)."""
        if self.pooling != "tokens":
            return len(texts)
        from interpkit.sources._stream import tokenized_ids

        bos = getattr(self.model.tokenizer, "bos_token_id", None)
        ids = tokenized_ids(self.model, texts, max_length=self.max_length)
        return sum(len(row) - (1 if row and bos is not None and row[0] == bos else 0) for row in ids)

    def batches(self, epoch: int, batch_size: int, seed: int, *, start: int = 0) -> Iterator[Any]:
        """Shuffled training batches of one epoch (runs the model over every training text).

        ``start`` skips that many batches; windows that lie wholly inside the skipped rows are
        only tokenised (to count their rows), not run. With a ``target_site`` each batch is an
        ``(x, y)`` pair.
        """
        return (self._select(b) for b in self._all_batches(epoch, batch_size, seed, start))

    def _all_batches(self, epoch: int, batch_size: int, seed: int, start: int) -> Iterator[torch.Tensor]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        order = _rng(seed, 0x7E47, epoch).permutation(len(self.train_texts))
        carry = torch.zeros(0, self._width)
        budget = self.max_tokens
        n_rows, skip = 0, start * batch_size
        for w, lo in enumerate(range(0, len(order), self.window_texts)):
            window = [int(i) for i in order[lo : lo + self.window_texts]]
            texts = [self.train_texts[i] for i in window]
            expected = self._count_rows(texts) if skip else None
            if expected is not None and min(expected, budget if budget is not None else expected) <= skip:
                n = min(expected, budget) if budget is not None else expected
                skip, n_rows = skip - n, n_rows + n
                budget = None if budget is None else budget - n
                if budget == 0:
                    break
                continue
            acts = self._window(window)
            if expected is not None and expected != acts.shape[0]:
                raise RuntimeError(f"resuming {self.site}: expected {expected} rows from tokenising a window, "
                                   f"the model gave {acts.shape[0]}")
            # Shuffle within the window: tokens of one text are highly correlated, so a batch mixes rows from up to
            # window_texts texts; rows left over carry into the next window instead of being dropped.
            acts = acts[torch.from_numpy(_rng(seed, 0x5A11, epoch, w).permutation(acts.shape[0]))]
            if budget is not None:
                acts, budget = acts[:budget], budget - min(budget, acts.shape[0])
            n_rows += int(acts.shape[0])
            acts, skip = acts[skip:], 0
            pool = torch.cat([carry, acts])
            n_full = pool.shape[0] // batch_size * batch_size
            if n_full:
                yield from pool[:n_full].split(batch_size)
            carry = pool[n_full:]
            if budget == 0:
                break
        if carry.shape[0]:
            yield carry
        self.epoch_rows = n_rows

    def eval_rows(self) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Activations of the held-out texts (computed once, then kept; ``(x, y)`` with a target site)."""
        if self._shared["eval"] is None:
            self._shared["eval"] = self._activations(self.eval_texts)
        return self._select(self._shared["eval"])

    def describe(self) -> dict[str, Any]:
        """Kind, model, site (and target site), pooling and text counts."""
        extra = {} if self.target_site is None else {"target_site": self.target_site}
        return {"kind": "model", "model": getattr(self.model, "name", None), "site": self.site, **extra,
                "pooling": self.pooling, "d_in": self.d_in, "n_train_texts": len(self.train_texts),
                "n_eval_texts": len(self.eval_texts), "max_length": self.max_length,
                "max_tokens": self.max_tokens}


def _resolve(model: Any, site: str, what: str) -> str:
    from interpkit.models._sites import UnknownSiteError

    try:
        return model.resolve_site(site)
    except UnknownSiteError as err:
        raise UnknownSiteError(f"{what}={site!r}: {err}") from err


def as_texts(texts: Any) -> list[Any]:
    """Texts given as a list (strings / PromptRows) or a prompt-dataset path."""
    if isinstance(texts, str | os.PathLike) and Path(texts).suffix in (".jsonl", ".gz"):
        from interpkit.sources import read_prompt_dataset

        return list(read_prompt_dataset(texts))
    if isinstance(texts, str):
        raise ValueError("texts must be a list of strings or PromptRows, or a prompt-dataset .jsonl path; "
                         f"got the string {texts[:40]!r}")
    return list(texts)
