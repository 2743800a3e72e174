"""Sentence embeddings: all-MiniLM-L6-v2 (packaged) or any BERT-style encoder folder / hub id.

Mean pooling over real tokens, then L2 normalisation (the sentence-transformers recipe for
all-MiniLM-L6-v2), so ``encode(a) @ encode(b).T`` is cosine similarity. Used by the embedding
criterion compiler, label scoring in ``explain`` and matching.

Example:
    >>> enc = sentence_encoder()  # doctest: +SKIP
    >>> enc.similarity(["a cat"], ["a kitten", "tax law"]).round(2)  # doctest: +SKIP
    array([[0.77, 0.17]], dtype=float32)
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SentenceEncoder", "as_encoder", "sentence_encoder"]


class SentenceEncoder:
    """A sentence encoder with ``encode(texts) -> [n, d]`` unit vectors (float32).

    Args:
        name: ``"minilm-l6"`` (packaged) or a local folder / hub id loadable by ``AutoModel``.
        device: torch device.
        batch_size: texts per forward pass.
        max_length: truncation in tokens (MiniLM was trained with 256).
        cache: folder where encodings of text lists of at least ``cache_min`` texts are kept, one
            ``.npy`` per (encoder, max_length, ordered texts) hash, so a pool scored again (the
            packaged text pool, a benchmark set) is read back instead of re-encoded; None = off.
        cache_min: smaller lists are always encoded (a lookup would cost more than it saves).
    """

    def __init__(self, name: str = "minilm-l6", *, device: str = "cpu", batch_size: int = 32,
                 max_length: int = 256, cache: str | Path | None = None, cache_min: int = 64) -> None:
        self.name = name
        self.device = device
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache = None if cache is None else Path(cache)
        self.cache_min = cache_min
        self._model: Any = None
        self._tokenizer: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from interpkit.models.zoo import PACKAGED, load_packaged

        if self.name in PACKAGED:
            self._model, self._tokenizer = load_packaged(self.name, device=self.device, progress=False)
        else:
            from transformers import AutoModel, AutoTokenizer

            self._model = AutoModel.from_pretrained(self.name).to(self.device).eval()
            self._tokenizer = AutoTokenizer.from_pretrained(self.name)

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)

    def _cache_path(self, texts: list[str]) -> Path | None:
        if self.cache is None or len(texts) < self.cache_min:
            return None
        h = hashlib.sha256(json.dumps([self.name, self.max_length, texts], ensure_ascii=False).encode("utf-8"))
        return self.cache / f"{h.hexdigest()[:32]}.npy"

    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings ``[n, dim]`` (float32), in the order of ``texts``."""
        texts = [texts] if isinstance(texts, str) else [str(t) for t in texts]
        path = self._cache_path(texts)
        if path is not None and path.is_file():
            try:
                hit = np.load(path)
                if hit.shape[0] == len(texts):
                    return hit
            except (OSError, ValueError):
                pass
        out = self._encode(texts)
        if path is not None:
            from interpkit._io import atomic_open

            with atomic_open(path, "wb") as fh:
                np.save(fh, out)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with torch.no_grad():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                enc = self._tokenizer(chunk, padding=True, truncation=True, max_length=self.max_length,
                                      return_tensors="pt").to(self.device)
                hidden = self._model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[start : start + len(chunk)] = pooled.float().cpu().numpy()
        return out

    def similarity(self, a: str | Sequence[str], b: str | Sequence[str]) -> np.ndarray:
        """Cosine similarities ``[len(a), len(b)]``."""
        return self.encode(a) @ self.encode(b).T


@functools.lru_cache(maxsize=4)
def sentence_encoder(name: str = "minilm-l6", device: str = "cpu") -> SentenceEncoder:
    """A shared encoder per (name, device): loaded once per process, on first ``encode``; encodings
    of long text lists are cached under ``<interpkit cache>/embeddings``."""
    from interpkit.models.zoo import cache_dir

    return SentenceEncoder(name, device=device, cache=cache_dir() / "embeddings")


def as_encoder(spec: Any = None) -> Any:
    """An encoder from a spec: None -> the shared packaged MiniLM, a name -> `sentence_encoder(name)`,
    anything else (an object with ``encode``/``similarity``) is returned as it is."""
    if spec is None:
        return sentence_encoder()
    if isinstance(spec, str):
        return sentence_encoder(spec)
    return spec
