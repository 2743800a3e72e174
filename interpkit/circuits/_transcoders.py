"""Transcoders for attribution, trained on demand and cached by content.

`ensure_transcoders` returns ``{layer: transcoder}`` for a model: from ``path`` when given (a
`~interpkit.sae.train_transcoders` folder or a circuit-tracer YAML, `~interpkit.sae.load_transcoders`),
else from the cache, else trained through the one trainer (`~interpkit.sae.train_transcoders`: every
layer's MLP input and output read in the same forward passes) on ``texts`` (default: the packaged text
pool) and cached under ``<interpkit cache>/transcoders/<sha256 of model, layers, settings, texts>``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["default_layers", "ensure_transcoders"]


def default_layers(n_layers: int, count: int = 4) -> list[int]:
    """``count`` layers spread over the depth (10 %, 30 %, 50 %, 70 % for four).

    Example:
        >>> default_layers(30)
        [3, 9, 15, 21]
    """
    if n_layers < 1:
        raise ValueError(f"a model with {n_layers} layers has none to choose")
    fracs = [(2 * i + 1) / (2 * count) * 0.8 for i in range(count)]
    return sorted({min(n_layers - 1, int(round(f * n_layers))) for f in fracs})


def ensure_transcoders(
    model: Any,
    layers: Sequence[int] | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    texts: Sequence[str] | None = None,
    architecture: str = "topk",
    latent_dim: int | None = None,
    k: int = 16,
    max_tokens: int = 30_000,
    max_length: int = 96,
    epochs: int = 4,
    batch_size: int = 256,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[int, Any]:
    """Transcoders for ``layers`` of ``model`` (see the module docstring).

    Args:
        model: a `~interpkit.models.ModelWrapper`.
        layers: the layers (default `default_layers`); with ``path``, a subset of the file's.
        path: load these instead of training.
        texts: training texts (default: the packaged text pool, `interpkit.criterion.text_pool`).
        architecture, latent_dim, k, epochs, batch_size, seed: the trainer's settings (``latent_dim``
            default 4 × d_model).
        max_tokens: training rows (tokens) per layer at most; max_length: tokens per text. Only a seeded
            sample of the texts that covers this budget 1.5 times over is read.
        cache_dir: the cache root (default ``<interpkit cache>/transcoders``).
        log: progress messages.

    Raises:
        ValueError: layers the file does not have.
    """
    from interpkit.sae import load_transcoders

    if path is not None:
        found = load_transcoders(path)
        if layers is None:
            return found
        missing = sorted(set(int(x) for x in layers) - set(found))
        if missing:
            raise ValueError(f"{path}: no transcoder for layer(s) {missing} (it has {sorted(found)})")
        return {int(x): found[int(x)] for x in layers}
    from interpkit.sae import train_transcoders
    from interpkit.sources._cache import content_key, default_cache_root, model_fingerprint, write_entry

    n_layers = int(getattr(model, "n_layers", 0) or len(getattr(model, "layers", []) or []))
    chosen = sorted(int(x) for x in (layers if layers is not None else default_layers(n_layers)))
    if texts is None:
        from interpkit.criterion import text_pool

        texts = [row.text for row in text_pool()]
    texts = [str(t) for t in texts]
    # only as many texts as the token budget needs (each gives at most max_length rows; 10 % are held out):
    # the trainer reads every text it is given, so a long pool would cost forward passes for nothing
    need = max(16, math.ceil(1.5 * max_tokens / max(1, max_length) / 0.9))
    if len(texts) > need:
        import numpy as np

        keep = np.sort(np.random.default_rng(seed).permutation(len(texts))[:need])
        texts = [texts[i] for i in keep]
    d = int(model.d_model)
    settings = {"architecture": architecture, "latent_dim": int(latent_dim or 4 * d), "k": int(k),
                "max_tokens": int(max_tokens), "max_length": int(max_length), "epochs": int(epochs),
                "batch_size": int(batch_size), "seed": int(seed)}
    key = content_key({"kind": "transcoders", "model": model_fingerprint(model), "layers": chosen, **settings},
                      texts)
    root = Path(cache_dir) if cache_dir is not None else default_cache_root("transcoders")
    folder = root / key[:32]
    say = log or (lambda _m: None)
    if (folder / "transcoders.json").is_file():
        say(f"transcoders from the cache: {folder}")
        return load_transcoders(folder)
    say(f"training transcoders at layers {chosen} on {len(texts)} texts (≤ {max_tokens} tokens each layer)")
    root.mkdir(parents=True, exist_ok=True)
    with write_entry(folder) as tmp:
        train_transcoders(model, texts, layers=chosen, out=tmp, architecture=architecture,
                          latent_dim=settings["latent_dim"], k=settings["k"], max_tokens=max_tokens,
                          max_length=max_length, epochs=epochs, batch_size=batch_size, seed=seed, log=log)
    return load_transcoders(folder)
