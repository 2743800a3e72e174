"""Per-token activations of a benchmark's texts at one site, computed once and cached on disk.

Every detection method of the benchmark reads the same residual-stream vectors (AxBench §3.1):
the activation at each scored position of each chat-formatted (instruction, response) text, with
the first ``prefix_length`` positions (BOS and the chat template's header) dropped. `TokenActs`
holds them as one ``[n_tokens, d]`` float16 matrix plus per-text offsets, so a task's ~250k
tokens x 576 dims fit in ~300 MB, and is written to ``<cache>/bench_acts/<key>/`` keyed by the
model's weights fingerprint, the site, the texts and every setting that changes the numbers. A
second run (another method, another process) reads the files back memory-mapped. Keys, the
atomic entry write and the memory-mapped reads are those of `interpkit.sources` (``_cache``).

Example:
    >>> from interpkit._testing import tiny_model
    >>> acts = token_activations(tiny_model(), ["ab cd", "efg"], "layer1.resid_post",
    ...                          prefix_length=1, cache_dir=None, progress=False)
    >>> len(acts), acts.rows(0).shape
    (2, (5, 16))
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from interpkit.sources._cache import (
    content_key,
    default_cache_root,
    load_arrays,
    model_fingerprint,
    save_arrays,
    write_entry,
)

__all__ = ["TokenActs", "token_activations"]

_VERSION = 1
_CHUNK = 65536


@dataclass(slots=True)
class TokenActs:
    """Scored-position activations of a list of texts.

    Attributes:
        values: ``[n_tokens, d]`` (float16 on disk; read as float32 by `rows`, `gather`, `project`).
        offsets: ``[n_texts + 1]``; text ``i`` owns rows ``offsets[i]:offsets[i + 1]``.
        token_ids: ``[n_tokens]`` the token at each row.
        site: where the activations were read.
        n_excluded: positions left out as attention sinks (norm above ``massive_factor`` x median).
    """

    values: np.ndarray
    offsets: np.ndarray
    token_ids: np.ndarray
    site: str
    n_excluded: int = 0

    def __len__(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def d(self) -> int:
        """Activation width."""
        return int(self.values.shape[1])

    @property
    def n_tokens(self) -> int:
        """Rows in all."""
        return int(self.values.shape[0])

    def lengths(self) -> np.ndarray:
        """Scored positions per text."""
        return np.diff(self.offsets)

    def text_index(self) -> np.ndarray:
        """``[n_tokens]`` the text each row belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths())

    def rows(self, i: int) -> np.ndarray:
        """float32 ``[n_i, d]`` activations of text ``i``."""
        return np.asarray(self.values[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32)

    def gather(self, idx: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows of texts ``idx`` as float32 ``[sum n_i, d]`` and, per row, its position in ``idx``."""
        idx = np.asarray(idx, dtype=np.int64)
        parts = [np.asarray(self.values[self.offsets[i] : self.offsets[i + 1]], dtype=np.float32) for i in idx]
        owner = np.repeat(np.arange(len(idx)), self.lengths()[idx]) if len(idx) else np.zeros(0, np.int64)
        if not parts:
            return np.zeros((0, self.d), np.float32), owner
        return np.concatenate(parts), owner

    def project(self, w: np.ndarray, bias: float | np.ndarray = 0.0) -> np.ndarray:
        """``values @ w + bias`` in float32, chunked: ``[n_tokens]`` for a vector, ``[n_tokens, k]`` for a matrix."""
        w = np.asarray(w, dtype=np.float32)
        out = np.empty((self.n_tokens, *w.shape[1:]), dtype=np.float32)
        for start in range(0, self.n_tokens, _CHUNK):
            block = np.asarray(self.values[start : start + _CHUNK], dtype=np.float32)
            out[start : start + _CHUNK] = block @ w
        return out + np.asarray(bias, dtype=np.float32)

    def select(self, keep: np.ndarray) -> TokenActs:
        """Only the rows where ``keep`` (``[n_tokens]`` bool) is True; texts keep their order."""
        keep = np.asarray(keep, dtype=bool)
        # kept rows before each offset, differenced per text: right for texts with no rows anywhere
        # (np.add.reduceat fails on a start index equal to n_tokens, i.e. an empty last text)
        before = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        offsets = before[np.asarray(self.offsets, dtype=np.int64)]
        return TokenActs(values=np.asarray(self.values[keep]), offsets=offsets, token_ids=self.token_ids[keep],
                         site=self.site, n_excluded=self.n_excluded)

    def max_pool(self, token_scores: np.ndarray) -> np.ndarray:
        """Each text's maximum over its rows of ``token_scores`` (``[n_tokens]`` or ``[n_tokens, k]``).

        A text with no scored position gets 0.
        """
        scores = np.asarray(token_scores, dtype=np.float32)
        lengths = self.lengths()
        out = np.zeros((len(self), *scores.shape[1:]), dtype=np.float32)
        nonempty = lengths > 0
        if scores.shape[0] and nonempty.any():
            starts = self.offsets[:-1][nonempty]
            out[nonempty] = np.maximum.reduceat(scores, starts, axis=0)
        return out


def _key(model: Any, texts: Sequence[str], site: str, settings: dict[str, Any]) -> str:
    spec = {"v": _VERSION, "model": model_fingerprint(model), "site": site, **settings}
    return content_key(spec, texts)[:32]


_ARRAYS = ("values", "offsets", "token_ids")


def _read(path: Path, site: str) -> TokenActs | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
        arrays = load_arrays(path, _ARRAYS, mmap=("values",))
        return TokenActs(**arrays, site=site, n_excluded=int(meta.get("n_excluded", 0)))
    except (OSError, ValueError, KeyError):
        return None


def _write(path: Path, acts: TokenActs, meta: dict[str, Any]) -> None:
    with write_entry(path, prefix=".tmp-") as tmp:
        save_arrays(tmp, {name: getattr(acts, name) for name in _ARRAYS})
        (tmp / "meta.json").write_text(json.dumps({**meta, "n_excluded": acts.n_excluded}, indent=1))


def token_activations(
    model: Any,
    texts: Sequence[str],
    site: str | Sequence[str],
    *,
    prefix_length: int,
    prepend_bos: bool = True,
    max_length: int | None = 256,
    batch_size: int = 8,
    massive_factor: float | None = 10.0,
    cache_dir: str | os.PathLike[str] | None | bool = True,
    progress: bool = True,
) -> TokenActs | dict[str, TokenActs]:
    """Activations at every scored position of each text, at one site (or several in one pass).

    Args:
        model: an interpkit ``ModelWrapper``.
        texts: formatted texts (`interpkit.bench.format_pair`), in dataset order.
        site: a site name, or several (one forward pass serves them all; a dict is returned).
        prefix_length: leading positions (BOS + chat header) left out of every text.
        prepend_bos: passed to ``model.tokenize``.
        max_length: truncate each text to this many tokens.
        batch_size: texts per forward pass (texts are length-sorted first, so batches pad little).
        massive_factor: leave out positions whose norm exceeds this many times the text's median
            norm (attention sinks; ``None`` keeps everything). The count is ``n_excluded``.
        cache_dir: folder of the on-disk cache; ``True`` is ``<interpkit cache>/bench_acts``,
            ``None``/``False`` computes in memory only.
        progress: show a progress bar.

    Returns:
        A `TokenActs` (or ``{site: TokenActs}`` when ``site`` is a sequence).
    """
    import torch

    sites = [site] if isinstance(site, str) else list(site)
    sites = [model.resolve_site(s) for s in sites]
    texts = list(texts)
    settings = {"prefix_length": int(prefix_length), "prepend_bos": bool(prepend_bos), "max_length": max_length,
                "massive_factor": massive_factor}
    if cache_dir is True:
        cache_dir = default_cache_root("bench_acts")
    root = Path(cache_dir) if cache_dir else None
    found: dict[str, TokenActs] = {}
    paths: dict[str, Path] = {}
    if root is not None:
        for s in sites:
            paths[s] = root / _key(model, texts, s, settings)
            hit = _read(paths[s], s) if paths[s].is_dir() else None
            if hit is not None:
                found[s] = hit
    todo = [s for s in sites if s not in found]
    if todo:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        per_text: dict[str, list[np.ndarray | None]] = {s: [None] * len(texts) for s in todo}
        ids_of: dict[str, list[np.ndarray | None]] = {s: [None] * len(texts) for s in todo}
        excluded = dict.fromkeys(todo, 0)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(texts), desc=f"token activations @ {', '.join(todo)}", unit="text")
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = model.tokenize([texts[i] for i in idx], max_length=max_length, prepend_bos=prepend_bos)
            with torch.no_grad():
                acts = model.capture(batch, todo, stop_at_deepest=True)
            lengths = batch.attention_mask.sum(dim=1).tolist()
            for s in todo:
                a = acts[s].float().cpu()
                for row, i in enumerate(idx):
                    vec = a[row, prefix_length : int(lengths[row])]
                    ids = batch.input_ids[row, prefix_length : int(lengths[row])].cpu()
                    if massive_factor is not None and vec.shape[0] > 2:
                        norms = vec.norm(dim=-1)
                        keep = norms <= massive_factor * norms.median()
                        excluded[s] += int((~keep).sum())
                        vec, ids = vec[keep], ids[keep]
                    per_text[s][i] = vec.numpy().astype(np.float16)
                    ids_of[s][i] = ids.numpy().astype(np.int32)
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        for s in todo:
            parts = per_text[s]
            d = parts[0].shape[1] if parts and parts[0] is not None else int(model.d_model)
            lengths_np = np.array([p.shape[0] for p in parts], dtype=np.int64)
            offsets = np.concatenate([[0], np.cumsum(lengths_np)]).astype(np.int64)
            values = np.concatenate(parts) if parts else np.zeros((0, d), np.float16)
            token_ids = np.concatenate(ids_of[s]) if ids_of[s] else np.zeros(0, np.int32)
            result = TokenActs(values=values, offsets=offsets, token_ids=token_ids, site=s, n_excluded=excluded[s])
            if root is not None:
                _write(paths[s], result, {"site": s, "n_texts": len(texts), "model": getattr(model, "name", None),
                                          **settings})
            found[s] = result
    return found[sites[0]] if isinstance(site, str) else {s: found[s] for s in sites}
