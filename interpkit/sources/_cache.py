"""An on-disk cache of pooled activations, so a second run over the same data skips the model.

An entry holds one `ActivationSet` (one site, one pooling) as ``cfg.json`` plus safetensors
shards ``shard-00000.safetensors`` ... (arrays ``example_idx``, ``values`` and, when present,
``argmax`` / ``token_index``), written into a temporary folder and renamed into place, so a crash
never leaves a half entry. The key is the sha256 of everything that changes the numbers: the model
(name, parameter count, and a fingerprint of the parameter names, shapes, dtypes and the bytes of
up to 8 tensors spread over the state dict), the site, the dataset hash (texts in order), the
pooling, ``max_length``, the excluded positions, the chat-template and BOS flags, and the
projection matrix if any. Token-level sets are not cached (they are the large ones; stream them).
While ``model.edits(...)`` is active nothing is read from or written to the cache.

The entry machinery is shared with other on-disk activation caches (``interpkit.bench``'s
per-token activations): `content_key` (sha256 of a canonical JSON spec, then of each text),
`write_entry` (a temporary folder renamed into place; an entry a concurrent writer put there first
is kept) and `save_arrays` / `load_arrays` (``.npy`` files, memory-mapped on read when asked).

Example:
    >>> cache = ActivationCache(tmp_path)  # doctest: +SKIP
    >>> res = cache.get_or_compute(model, texts, "layer1.resid_post", pooling="mean")  # doctest: +SKIP
    >>> cache.get_or_compute(model, texts, "layer1.resid_post", pooling="mean").computed  # doctest: +SKIP
    ()
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import weakref
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._constants import CFG_NAME, SCHEMA_VERSION
from interpkit._io import atomic_dir, atomic_write_text

from ._chunks import ActivationSet, write_chunk
from ._datasets import dataset_hash
from ._options import StreamOptions
from ._stream import StreamResult, _check_poolings, _texts, resolve_sites, stream_activations

__all__ = [
    "ActivationCache",
    "content_key",
    "default_cache_root",
    "load_arrays",
    "model_fingerprint",
    "save_arrays",
    "write_entry",
]

_KIND = "activation_cache_entry"
_FINGERPRINTS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_SAMPLED_TENSORS = 8
_MAX_HASHED_ELEMENTS = 1 << 20


def default_cache_root(name: str = "activations") -> Path:
    """``<interpkit cache dir>/<name>`` (``$INTERPKIT_CACHE`` or ``~/.cache/interpkit``)."""
    try:
        from interpkit.models.zoo import cache_dir
    except ImportError:  # pragma: no cover - models is part of the package
        base = Path(os.environ.get("INTERPKIT_CACHE") or Path.home() / ".cache" / "interpkit")
    else:
        base = cache_dir()
    return base / name


def content_key(spec: Mapping[str, Any], texts: Iterable[str] = ()) -> str:
    """Hex sha256 of the canonical JSON of ``spec`` (keys sorted), then of each text's sha256 digest.

    Example:
        >>> content_key({"b": 1, "a": 2}) == content_key({"a": 2, "b": 1})
        True
        >>> content_key({"a": 2}, ["x"]) == content_key({"a": 2})
        False
    """
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for text in texts:
        h.update(hashlib.sha256(text.encode()).digest())
    return h.hexdigest()


def write_entry(folder: str | os.PathLike[str], *, prefix: str | None = None) -> contextlib.AbstractContextManager[Path]:
    """A temporary folder beside ``folder`` for the block to fill; renamed to ``folder`` on success.

    Entries are content-keyed, so when a concurrent writer put ``folder`` there first its entry is
    kept and the new one dropped (`interpkit._io.replace_dir` with ``keep_existing``); a failing
    block leaves nothing behind.
    """
    return atomic_dir(folder, prefix=prefix, keep_existing=True)


def save_arrays(folder: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write each array as ``<folder>/<name>.npy``."""
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)


def load_arrays(folder: Path, names: Sequence[str], *, mmap: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Read ``<folder>/<name>.npy`` for each name; those in ``mmap`` memory-mapped read-only.

    Raises:
        OSError, ValueError: a missing or unreadable file.
    """
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r" if name in mmap else None) for name in names}


def _find_module(model: Any) -> Any:
    import torch

    if isinstance(model, torch.nn.Module):
        return model
    for holder in (model, getattr(model, "impl", None)):
        for attr in ("hf_model", "model", "bridge", "_model", "module", "_module"):
            candidate = getattr(holder, attr, None) if holder is not None else None
            if isinstance(candidate, torch.nn.Module):
                return candidate
            inner = getattr(candidate, "_module", None)
            if isinstance(inner, torch.nn.Module):
                return inner
    return None


def model_fingerprint(model: Any) -> str:
    """Hex sha256 identifying a model's weights (memoised per model object).

    Hashes the parameter count and every parameter's name, shape and dtype, plus the bytes of up
    to 8 tensors spread evenly over the state dict (each sampled with a stride beyond 2**20
    elements). Any fine-tune changes those bytes; two different random initialisations differ.

    Raises:
        ValueError: no ``torch.nn.Module`` can be found behind ``model``.
    """
    with contextlib.suppress(TypeError):
        if model in _FINGERPRINTS:
            return _FINGERPRINTS[model]
    import torch

    module = _find_module(model)
    if module is None:
        raise ValueError(f"cannot find the weights of {model!r} to fingerprint them; pass cache=None")
    h = hashlib.sha256()
    state = sorted(module.state_dict().items())
    h.update(str(sum(int(t.numel()) for _, t in state)).encode())
    for name, tensor in state:
        h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
    picks = np.unique(np.linspace(0, len(state) - 1, num=min(_SAMPLED_TENSORS, len(state))).astype(int))
    for i in picks if state else ():
        flat = state[i][1].detach().reshape(-1)
        if flat.numel() > _MAX_HASHED_ELEMENTS:
            flat = flat[:: flat.numel() // _MAX_HASHED_ELEMENTS + 1]
        h.update(flat.to("cpu", torch.float32).contiguous().numpy().tobytes())
    digest = h.hexdigest()
    with contextlib.suppress(TypeError):
        _FINGERPRINTS[model] = digest
    return digest


class ActivationCache:
    """Pooled activation sets on disk, keyed by model, site, dataset and settings.

    Args:
        root: the cache folder (default `default_cache_root`).
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_root()

    def __repr__(self) -> str:
        return f"ActivationCache({str(self.root)!r})"

    @staticmethod
    def key(model: Any, site: str, *, data_hash: str, pooling: str, settings: Mapping[str, Any]) -> str:
        """The entry key: sha256 of the canonical JSON of everything that changes the numbers."""
        spec = {
            "model": getattr(model, "name", type(model).__name__),
            "weights": model_fingerprint(model),
            "site": site,
            "dataset": data_hash,
            "pooling": pooling,
            **settings,
        }
        return content_key(spec)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> ActivationSet | None:
        """The cached set for ``key``, backed by its shards on disk; None on a miss."""
        folder = self._dir(key)
        try:
            cfg = json.loads((folder / CFG_NAME).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if cfg.get("kind") != _KIND or cfg.get("key") != key or cfg.get("schema_version") != SCHEMA_VERSION:
            return None
        shards = [folder / name for name in cfg["shards"]]
        if not all(p.is_file() for p in shards):
            return None
        aset = ActivationSet(site=cfg["site"], pooling=cfg["pooling"], d=int(cfg["d"]))
        for path in shards:
            aset.add_shard(path)
        aset.n_examples = int(cfg["n_examples"])
        return aset

    def put(self, key: str, aset: ActivationSet, *, spec: Mapping[str, Any] | None = None) -> Path:
        """Store ``aset`` under ``key`` (one shard per chunk) and return the entry folder.

        Raises:
            ValueError: ``aset`` is token-level.
        """
        if aset.pooling == "tokens":
            raise ValueError("the activation cache stores pooled sets only; stream token-level sets")
        final = self._dir(key)
        with write_entry(final, prefix=f".{key[:12]}.") as tmp:
            names = []
            for i, chunk in enumerate(aset.iter_chunks()):
                names.append(f"shard-{i:05d}.safetensors")
                write_chunk(tmp / names[-1], chunk)
            cfg = {
                "kind": _KIND,
                "schema_version": SCHEMA_VERSION,
                "key": key,
                "site": aset.site,
                "pooling": aset.pooling,
                "d": aset.d,
                "n_examples": aset.n_examples,
                "shards": names,
                "spec": dict(spec or {}),
            }
            atomic_write_text(tmp / CFG_NAME, json.dumps(cfg, indent=2, sort_keys=True))
        return final

    def get_or_compute(
        self,
        model: Any,
        texts: Iterable[str | Any],
        sites: str | Sequence[str],
        *,
        pooling: str | Sequence[str] = ("max", "mean", "last"),
        projections: Mapping[str, np.ndarray] | None = None,
        stream: StreamOptions | None = None,
        **options: Any,
    ) -> StreamResult:
        """Cached sets where present; one streaming pass computes (and stores) the rest.

        Arguments are those of `stream_activations` (``stream`` / ``**options``: any
        `StreamOptions` field). ``max`` sets are computed with ``keep_argmax=True`` so a cached
        entry serves callers that want the argmax positions. The key holds the options that
        change the numbers (``max_length``, ``exclude_positions``, ``chat_template``,
        ``prepend_bos``), not those that only change how the pass runs.

        Returns:
            A `StreamResult`; its ``computed`` lists the (site, pooling) keys the model ran for.

        Raises:
            TypeError: a keyword that is not a `StreamOptions` field.
            ValueError: ``pooling`` includes ``"tokens"`` (not cached), or bad arguments.
        """
        opts = StreamOptions.merge(stream, caller="ActivationCache.get_or_compute", **options)
        poolings = _check_poolings(pooling)
        if "tokens" in poolings:
            raise ValueError(
                "the activation cache stores pooled sets only; call stream_activations for tokens"
            )
        texts = list(_texts(texts))
        site_list = resolve_sites(model, sites)
        projections = dict(projections or {})
        if getattr(model, "active_edits", ()):
            return stream_activations(
                model, texts, site_list, pooling=poolings, projections=projections, keep_argmax=True, stream=opts
            )
        data_hash = dataset_hash(texts)
        keys: dict[tuple[str, str], str] = {}
        specs: dict[tuple[str, str], dict[str, Any]] = {}
        for site in site_list:
            proj = projections.get(site)
            settings = _key_settings(opts, proj)
            for p in poolings:
                keys[site, p] = self.key(model, site, data_hash=data_hash, pooling=p, settings=settings)
                specs[site, p] = {
                    "model": getattr(model, "name", None),
                    "site": site,
                    "pooling": p,
                    **settings,
                }
        found = {k: self.get(v) for k, v in keys.items()}
        missing = [k for k, v in found.items() if v is None]
        peak = n_empty = 0
        if missing:
            need_sites = [s for s in site_list if any(k[0] == s for k in missing)]
            need_pool = tuple(p for p in poolings if any(k[1] == p for k in missing))
            res = stream_activations(
                model,
                texts,
                need_sites,
                pooling=need_pool,
                projections={s: m for s, m in projections.items() if s in need_sites},
                keep_argmax=True,
                stream=opts,
            )
            peak, n_empty = res.peak_bytes, res.n_empty
            for k in missing:
                self.put(keys[k], res[k], spec=specs[k])
                found[k] = res[k]
        return StreamResult(
            sets=found, n_examples=len(texts), peak_bytes=peak, n_empty=n_empty, computed=tuple(missing)
        )

    def clear(self) -> None:
        """Delete every entry under ``root``."""
        shutil.rmtree(self.root, ignore_errors=True)


def _key_settings(opts: StreamOptions, projection: Any) -> dict[str, Any]:
    """The options of an entry's key: those that change the numbers (their order and form are
    part of existing keys: changing them orphans every cache on disk)."""
    return {
        "max_length": opts.max_length,
        "exclude_positions": sorted(opts.exclude_positions),
        "chat_template": opts.chat_template,
        "prepend_bos": opts.prepend_bos,
        "projection": None if projection is None else _array_hash(projection),
    }


def _array_hash(array: Any) -> str:
    arr = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return hashlib.sha256(str(arr.shape).encode() + arr.tobytes()).hexdigest()
