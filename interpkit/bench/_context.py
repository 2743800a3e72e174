"""What every benchmark method sees: the task, the model, the site and the cached activations.

`build_context` formats each train and eval row as AxBench does (§2.8: the chat-templated
instruction + response, the template header dropped from scoring), reads the per-token activations
at the chosen site once (disk-cached, `token_activations`) and returns a `BenchContext`. Methods
take what they need from it: activations for DiffMean/PCA/LAT/Probe, the model for the LM-loss
methods (SSV, ReFT-r1), an SAE (loaded, or trained once on the task's own token activations and
cached), a chat model for the Prompt baseline, the sentence encoder for criteria and judges.

Example:
    >>> from interpkit.bench import build_context, load_task  # doctest: +SKIP
    >>> ctx = build_context(load_task("axbench-concept10/prod_2b_l10_v1"), "smollm2-135m", layer=12)  # doctest: +SKIP
    >>> ctx.eval_acts.rows(0).shape  # doctest: +SKIP
    (131, 576)
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ._acts import TokenActs, token_activations

__all__ = ["TOKEN_SCOPES", "BenchContext", "acts_cache_root", "build_context", "cache_root", "default_layer",
           "format_rows", "response_mask"]

SAE_DEFAULTS: dict[str, Any] = {"architecture": "topk", "expansion_factor": 8, "k": 32, "epochs": 4,
                                "batch_size": 1024, "lr": None, "seed": 0}
"""The SAE trained when no ``sae`` is given: TopK, 8x the model width, k=32, 4 epochs over the task's
training-text token activations (no GemmaScope exists for most models; AxBench §5.7 used one)."""


TOKEN_SCOPES = ("all", "response")
"""Scored tokens: ``all`` = AxBench §3.1 (instruction, template glue and response after the chat
header); ``response`` = only the tokens after the assistant header."""


def response_mask(tokenizer: Any, acts: TokenActs) -> np.ndarray:
    """``[n_tokens]`` True on rows after the last assistant header of each text (the response).

    The header is the token sequence the chat template's generation prompt adds
    (``<|im_start|>assistant\n`` for SmolLM2); without a chat template it is ``"\n\n"``. A text
    whose header was cut off by truncation keeps no row.
    """
    from ._prompts import _has_template, _render, chat_prompt

    if _has_template(tokenizer):
        with_gen = tokenizer(chat_prompt(tokenizer, "x"), add_special_tokens=False)["input_ids"]
        without = tokenizer(_render(tokenizer, [{"role": "user", "content": "x"}]), add_special_tokens=False)["input_ids"]
        common = 0
        while common < min(len(with_gen), len(without)) and with_gen[common] == without[common]:
            common += 1
        header = [int(i) for i in with_gen[common:]]
    else:
        header = [int(i) for i in tokenizer("\n\n", add_special_tokens=False)["input_ids"]]
    keep = np.zeros(acts.n_tokens, dtype=bool)
    n = len(header)
    for i in range(len(acts)):
        a, b = int(acts.offsets[i]), int(acts.offsets[i + 1])
        ids = acts.token_ids[a:b].tolist()
        start = None
        for j in range(len(ids) - n, -1, -1):
            if ids[j : j + n] == header:
                start = j + n
                break
        if start is not None:
            keep[a + start : b] = True
    return keep


def default_layer(model: Any) -> int:
    """AxBench's shallower site for a model: about 40 % of the depth (Gemma-2-2B: 10 of 26), rounded."""
    return max(0, int(round(0.4 * int(model.n_layers))))


@dataclass
class BenchContext:
    """Shared state of one benchmark run on one (model, site, task).

    Attributes:
        task: the `AxBenchTask`.
        model: the interpkit ``ModelWrapper``.
        site: canonical site name (``layer12.resid_post``).
        layer: the block index of ``site``.
        train_texts / eval_texts: formatted texts, in the order of ``task.train`` / ``task.eval``.
        train_acts / eval_acts: their per-token activations at ``site``.
        prefix_length: leading positions dropped from scoring.
        prepend_bos: whether tokenisation adds a BOS the formatted texts do not start with.
        max_length: token limit per text.
        seed: the run's seed (42, as AxBench).
        quick: the run uses a reduced task.
        options: per-method hyper-parameter overrides, ``{"probe": {"epochs": 4}}``.
        cache_dir: the disk cache (None: memory only).
    """

    task: Any
    model: Any
    site: str
    layer: int
    train_texts: list[str]
    eval_texts: list[str]
    train_acts: TokenActs
    eval_acts: TokenActs
    prefix_length: int
    prepend_bos: bool = True
    tokens: str = "all"
    max_length: int | None = 256
    seed: int = 42
    quick: bool = False
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    cache_dir: Path | None = None
    sae_spec: Any = None
    sae_settings: dict[str, Any] = field(default_factory=dict)
    chat_spec: Any = None
    encoder_spec: Any = None
    progress: bool = True
    memo: dict[Any, Any] = field(default_factory=dict)
    _sae: Any = None
    _sae_info: dict[str, Any] = field(default_factory=dict)
    _chat: Any = None
    _encoder: Any = None

    # ---- splits --------------------------------------------------------------------------------

    def train_split(self, cid: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``task.train`` for concept ``cid`` (its positives + genre-matched pool negatives) and labels."""
        return self._split("train", cid)

    def eval_split(self, cid: int) -> np.ndarray:
        """Rows of ``task.eval`` for concept ``cid`` (all categories)."""
        key = ("eval_split", cid)
        if key not in self.memo:
            frame = self.task.eval
            self.memo[key] = np.flatnonzero(frame["concept_id"].to_numpy() == cid)
        return self.memo[key]

    def eval_categories(self, cid: int) -> list[str]:
        """``category`` of each row of `eval_split`."""
        return [str(c) for c in self.task.eval["category"].to_numpy()[self.eval_split(cid)]]

    def _split(self, which: str, cid: int) -> tuple[np.ndarray, np.ndarray]:
        key = (which, cid)
        if key not in self.memo:
            rows = self.task.train_rows(cid)
            self.memo[key] = (rows.index.to_numpy(dtype=np.int64), rows["label"].to_numpy() == 1)
        return self.memo[key]

    # ---- lazily built helpers --------------------------------------------------------------------

    @property
    def chat(self) -> Any:
        """The chat model for the Prompt baseline: a `LocalChat` over this model unless configured."""
        if self._chat is None:
            from interpkit.models import LocalChat, chat_model

            spec = self.chat_spec
            self._chat = LocalChat(self.model) if spec in (None, "local", "self") else chat_model(spec)
        return self._chat

    @property
    def encoder(self) -> Any:
        """The sentence encoder (MiniLM by default) for criteria and the local judge."""
        if self._encoder is None:
            from interpkit.models._encoder import as_encoder

            self._encoder = as_encoder(self.encoder_spec)
        return self._encoder

    def sae(self) -> Any:
        """The SAE at ``site``: loaded from ``sae_spec``, or trained on the task's training tokens and cached."""
        if self._sae is not None:
            return self._sae
        from interpkit.sae import load_sae, save_sae, train_sae

        if self.sae_spec is not None and not isinstance(self.sae_spec, str | os.PathLike):
            self._sae, self._sae_info = self.sae_spec, {"source": "given"}
            return self._sae
        if self.sae_spec is not None:
            self._sae = load_sae(self.sae_spec)
            self._sae_info = {"source": str(self.sae_spec)}
            return self._sae
        settings = {**SAE_DEFAULTS, **self.sae_settings}
        key = hashlib.sha256(json.dumps({"acts": _acts_key(self.train_acts), "settings": settings},
                                        sort_keys=True, default=str).encode()).hexdigest()[:24]
        path = None if self.cache_dir is None else self.cache_dir / "bench_sae" / key
        if path is not None and (path / "info.json").is_file():
            self._sae = load_sae(path / "sae")
            self._sae_info = json.loads((path / "info.json").read_text())
            return self._sae
        rows = np.asarray(self.train_acts.values, dtype=np.float32)
        result = train_sae(rows, site=self.site, layer=self.layer, architecture=settings["architecture"],
                           expansion_factor=settings["expansion_factor"], k=settings["k"],
                           epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                           seed=settings["seed"], progress=self.progress)
        self._sae = result.sae
        self._sae_info = {"source": "trained on the task's training-text token activations", **settings,
                          "metrics": {k: v for k, v in result.metrics.items() if isinstance(v, int | float)}}
        if path is not None:
            from interpkit._io import atomic_write_text

            path.mkdir(parents=True, exist_ok=True)
            save_sae(self._sae, path / "sae")
            atomic_write_text(path / "info.json", json.dumps(self._sae_info, indent=1, default=str))
        return self._sae

    @property
    def sae_info(self) -> dict[str, Any]:
        """Where the SAE came from and, when trained here, its settings and held-out metrics."""
        return dict(self._sae_info)

    def method_options(self, name: str) -> dict[str, Any]:
        """Overrides given for method ``name`` (registry key)."""
        return dict(self.options.get(name, {}))

    def describe(self) -> dict[str, Any]:
        """Settings for results.json."""
        return {"site": self.site, "layer": self.layer, "tokens": self.tokens, "prefix_length": self.prefix_length,
                "prepend_bos": self.prepend_bos, "max_length": self.max_length, "seed": self.seed,
                "quick": self.quick, "n_train_texts": len(self.train_texts), "n_eval_texts": len(self.eval_texts),
                "n_train_tokens": self.train_acts.n_tokens, "n_eval_tokens": self.eval_acts.n_tokens,
                "excluded_sink_positions": self.train_acts.n_excluded + self.eval_acts.n_excluded}


def _acts_key(acts: TokenActs) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(acts.offsets).tobytes())
    step = max(1, acts.n_tokens // 64)
    h.update(np.ascontiguousarray(np.asarray(acts.values[::step], dtype=np.float32)).tobytes())
    return h.hexdigest()


def format_rows(tokenizer: Any, frame: Any) -> tuple[list[str], int, bool]:
    """The chat-formatted text of each (``input``, ``output``) row of ``frame``, the scored-prefix
    length and whether tokenisation adds a BOS (`format_pair`, AxBench §2.8)."""
    from ._prompts import format_pair

    texts, prefix, bos = [], None, True
    for instruction, response in zip(frame["input"].tolist(), frame["output"].tolist(), strict=True):
        text, p, b = format_pair(tokenizer, str(instruction), str(response))
        texts.append(text)
        prefix, bos = p, b
    if prefix is None:
        _, prefix, bos = format_pair(tokenizer, "x", "y")
    return texts, int(prefix), bool(bos)


def cache_root(cache_dir: str | os.PathLike[str] | None | bool) -> Path | None:
    """The bench's cache folder: ``True`` = the interpkit cache folder, a path, or None (no disk cache)."""
    if cache_dir is True:
        from interpkit.models.zoo import cache_dir as interpkit_cache

        return interpkit_cache()
    return Path(cache_dir) if cache_dir else None


def acts_cache_root(cache_dir: str | os.PathLike[str] | None | bool) -> Path | None:
    """Where `token_activations` keeps the bench's activations (``<cache>/bench_acts``), or None."""
    root = cache_root(cache_dir)
    return None if root is None else root / "bench_acts"


def build_context(
    task: Any,
    model: Any,
    *,
    layer: int | None = None,
    site: str | None = None,
    max_length: int | None = 256,
    batch_size: int = 8,
    cache_dir: str | os.PathLike[str] | None | bool = True,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 42,
    quick: bool = False,
    sae: Any = None,
    sae_settings: Mapping[str, Any] | None = None,
    chat: Any = None,
    encoder: Any = None,
    backend: str = "nnsight",
    tokens: str = "all",
    progress: bool = True,
) -> BenchContext:
    """Format the task's texts, read their activations at the site (cached) and return the context.

    Args:
        task: an `AxBenchTask` or a task folder.
        model: a ``ModelWrapper`` or a name `interpkit.load_model` understands (loaded on ``backend``).
        layer: block whose residual output is read (default: `default_layer`).
        site: a site name instead of ``layer``.
        max_length: token limit per formatted text.
        batch_size: texts per forward pass.
        cache_dir: ``True`` = the interpkit cache folder; a path; ``None``/``False`` = no disk cache.
        options: per-method hyper-parameter overrides.
        seed: the run's seed.
        quick: mark the run as reduced (the caller subsets the task).
        sae: an SAE object or path for the SAE rows (default: train one on the task, cached).
        sae_settings: overrides of `SAE_DEFAULTS`.
        chat: chat model spec for the Prompt baseline (default: the benchmarked model itself).
        encoder: sentence-encoder spec (default MiniLM).
        backend: backend used when ``model`` is a name.
        tokens: which tokens methods train on and score (`TOKEN_SCOPES`): ``"all"`` as AxBench, or
            ``"response"`` (the concept lives in the response; the instruction is shared context).
        progress: progress bars.
    """
    from interpkit.models import load_model

    from ._task import AxBenchTask, load_task

    if tokens not in TOKEN_SCOPES:
        raise ValueError(f"tokens must be one of {TOKEN_SCOPES}, got {tokens!r}")
    if not isinstance(task, AxBenchTask):
        task = load_task(task)
    if isinstance(model, str | os.PathLike):
        model = load_model(model, backend)
    if site is None:
        site = f"layer{default_layer(model) if layer is None else int(layer)}.resid_post"
    site = model.resolve_site(site)
    parsed = model.layer_of(site)
    layer = int(parsed) if parsed is not None else -1
    tok = model.tokenizer
    train_texts, prefix, bos = format_rows(tok, task.train)
    eval_texts, _, _ = format_rows(tok, task.eval)
    root = cache_root(cache_dir)
    kw = {"prefix_length": prefix, "prepend_bos": bos, "max_length": max_length, "batch_size": batch_size,
          "cache_dir": acts_cache_root(cache_dir), "progress": progress}
    train_acts = token_activations(model, train_texts, site, **kw)
    eval_acts = token_activations(model, eval_texts, site, **kw)
    if tokens == "response":
        train_acts = train_acts.select(response_mask(tok, train_acts))
        eval_acts = eval_acts.select(response_mask(tok, eval_acts))
    return BenchContext(
        task=task, model=model, site=site, layer=layer, train_texts=train_texts, eval_texts=eval_texts,
        train_acts=train_acts, eval_acts=eval_acts, prefix_length=prefix, prepend_bos=bos, tokens=tokens,
        max_length=max_length,
        seed=seed, quick=quick, options={k: dict(v) for k, v in (options or {}).items()}, cache_dir=root,
        sae_spec=sae, sae_settings=dict(sae_settings or {}), chat_spec=chat, encoder_spec=encoder, progress=progress,
    )
