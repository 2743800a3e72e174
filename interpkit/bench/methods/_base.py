"""The method base of the benchmark: `Fitted`, `Method`, shared helpers, the registry and `fitted_table`.

Every method learns (or picks) one thing per concept from a `BenchContext` and returns a `Fitted`:
a direction ``vector`` scored per token by ``psi`` (``"linear"`` ``h·w + b``, ``"relu"``,
``"jumprelu"``) and max-pooled over a text's scored positions (§3.2), a ``steer_vector`` added when
steering (§4.3), or, for text classifiers (BoW, Prompt), a score per text. Method classes register
themselves with `register_method`; `METHODS` maps the lower-case registry names to the classes (in
AxBench's table order, `Method.order`) and `get_method` builds one by name or label with option
overrides. `fitted_table` turns fitted directions into a `FeatureTable` so ``rank``, ``explain``
and ``match`` read them like any other feature.

Shared helpers: `pooled_scores` (max-pooled psi per text), `iter_token_chunks` and `group_max`
(chunked max-pooling over cached activations), `sae_pooled` (every SAE latent, max-pooled),
`unit`, `rng_for`, `split_tokens` and `first_pc`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np

from interpkit._registry import register

if TYPE_CHECKING:
    from interpkit.table import FeatureTable

__all__ = [
    "ELEMENTWISE",
    "METHODS",
    "PSI",
    "Fitted",
    "Method",
    "SteerContext",
    "first_pc",
    "fitted_table",
    "get_method",
    "group_max",
    "held_out_auroc",
    "iter_token_chunks",
    "pooled_scores",
    "register_method",
    "rng_for",
    "sae_pooled",
    "split_tokens",
    "unit",
]

PSI = ("linear", "relu", "jumprelu", "sae", "text")
"""Per-token scoring functions of a `Fitted` (``"sae"``: latent ``info["latent"]`` of the context's
SAE, read through its full encoder; ``"text"``: the method scores whole texts)."""

_CHUNK_TOKENS = 65536


@dataclass(frozen=True, kw_only=True)
class SteerContext:
    """Steering by something other than adding ``steer_vector``: an edit, or adapted weights.

    ``open(model, strength)`` returns a context manager under which ``model.generate`` is the
    steered model (it must leave the model as it found it on exit); the steering loop enters it
    once per factor with ``strength`` = α = factor × m_c.

    Attributes:
        open: ``(ModelWrapper, strength) -> context manager``.
        uses_strength: False for methods that ignore the factor (LoRA, SFT: AxBench §4.3 scores
            each factor row as one more independent sample, so every row gets its own seed).
        kind: a short name recorded with the results (``"lora"``, ``"sft"``, ``"clamping"``...).
    """

    open: Callable[[Any, float], AbstractContextManager[Any]]
    uses_strength: bool = True
    kind: str = "context"
    edits: Callable[[float], Sequence[Any]] | None = None
    """For a context that is a models-layer edit (LoReFT): strength -> the edits it applies."""


@dataclass(kw_only=True)
class Fitted:
    """What a method learned for one concept.

    Attributes:
        method: the method's registry name.
        concept_id: the concept.
        vector: ``[d]`` direction scored per token (unit norm except SSV); None for text methods.
        steer_vector: ``[d]`` vector added when steering; None when the method cannot steer by addition.
        score: psi, one of `PSI`.
        bias: added to ``h·vector`` before psi.
        threshold: JumpReLU threshold on the pre-activation (``score="jumprelu"``).
        info: JSON-ready details (losses, chosen latent, seconds, ...).
        state: anything else the method needs to score texts (a fitted sklearn pipeline, cached
            ratings); not serialised.
        steer_context: how to steer when it is not by adding ``steer_vector`` (a `SteerContext`;
            steer-only methods such as LoRA and SFT have no ``vector``); not serialised.
    """

    method: str
    concept_id: int
    vector: np.ndarray | None
    steer_vector: np.ndarray | None
    score: str = "linear"
    bias: float = 0.0
    threshold: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    state: Any = field(default=None, repr=False, compare=False)
    steer_context: SteerContext | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.score not in PSI:
            raise ValueError(f"Fitted.score must be one of {PSI}, got {self.score!r}")
        for name in ("vector", "steer_vector"):
            v = getattr(self, name)
            if v is not None:
                v = np.asarray(v, dtype=np.float32).reshape(-1)
                if not np.isfinite(v).all():
                    raise ValueError(f"{self.method} concept {self.concept_id}: {name} is not finite")
                setattr(self, name, v)
        if self.score != "text" and self.vector is None and self.steer_context is None:
            raise ValueError(f"{self.method} concept {self.concept_id}: psi {self.score!r} needs a vector")

    def psi(self, pre: np.ndarray) -> np.ndarray:
        """Per-token scores from pre-activations ``h·vector + bias``."""
        if self.score == "linear":
            return pre
        if self.score == "relu":
            return np.maximum(pre, 0.0)
        if self.score == "jumprelu":
            # JumpReLU (Rajamanoharan et al. 2024): pre * H(pre - theta); the extra ReLU only matters for theta < 0.
            return np.where(pre > self.threshold, np.maximum(pre, 0.0), 0.0).astype(pre.dtype)
        raise ValueError(f"{self.method}: psi {self.score!r} is not a function of h·vector "
                         "(use pooled_scores / Method.token_scores)")

    def pre(self, x: np.ndarray) -> np.ndarray:
        """``h·vector + bias`` for token rows ``x [n, d]`` (inputs rescaled first when the SAE does)."""
        if self.info.get("rescale_inputs"):
            # constant_norm_rescale SAEs scale each input to norm sqrt(d) before encoding
            norms = np.linalg.norm(x, axis=1, keepdims=True).clip(1e-8)
            x = x * (np.sqrt(x.shape[1]) / norms)
        return x @ self.vector + np.float32(self.bias)



# ---- scoring cached activations ------------------------------------------------------------------


def _acts(ctx: Any, which: str) -> Any:
    if which not in ("train", "eval"):
        raise ValueError(f"which must be 'train' or 'eval', got {which!r}")
    return ctx.train_acts if which == "train" else ctx.eval_acts


def _index(acts: Any, idx: Sequence[int] | np.ndarray | None) -> np.ndarray:
    n = len(acts)
    if idx is None:
        return np.arange(n, dtype=np.int64)
    out = np.asarray(idx, dtype=np.int64).reshape(-1)
    if out.size and (out.min() < 0 or out.max() >= n):
        raise IndexError(f"text index out of range for {n} texts")
    return out


def iter_token_chunks(
    acts: Any, idx: np.ndarray, max_tokens: int = _CHUNK_TOKENS
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Yield ``(start, stop, float32 rows [m, d], owner per row)`` for texts ``idx[start:stop]``.

    Owners are positions in ``idx`` (sorted); a chunk holds at most ``max_tokens`` rows unless one
    text alone is longer.
    """
    # Tokens of all texts are stored flat (CSR-like: text i owns rows offsets[i]:offsets[i+1]); chunks are
    # whole texts so a text's max is never split across chunks.
    lengths = np.asarray(acts.offsets[idx + 1] - acts.offsets[idx], dtype=np.int64)
    start = 0
    while start < len(idx):
        stop, total = start, 0
        while stop < len(idx) and (stop == start or total + lengths[stop] <= max_tokens):
            total += int(lengths[stop])
            stop += 1
        x, owner = acts.gather(idx[start:stop])
        yield start, stop, x, np.asarray(owner, dtype=np.int64) + start
        start = stop


def group_max(values: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    """Max of ``values [m, ...]`` per owner (sorted ``0..n-1``); owners without rows get 0."""
    out = np.zeros((n, *values.shape[1:]), dtype=np.float32)
    if values.shape[0] == 0:
        return out
    # Rows of one owner are contiguous (owners sorted), so maximum.reduceat over run starts is a segment max.
    # Texts with no kept token keep 0, the neutral score for non-negative psi.
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    out[owner[starts]] = np.maximum.reduceat(values, starts, axis=0)
    return out


def held_out_auroc(x: np.ndarray, owner: np.ndarray, labels: np.ndarray, held: np.ndarray, w: np.ndarray) -> float:
    """AUROC of the max-pooled ``x·w`` over the held-out texts: the detection metric inside a training split.

    ``x [m, d]`` token rows, ``owner [m]`` each row's text (sorted), ``labels [n]`` per text, ``held [n]`` the
    held-out texts. Used by the probe's cross-validation and `--layer auto`'s rule.
    """
    from interpkit.rank._stats import auroc

    texts = np.flatnonzero(held)
    remap = np.full(len(labels), -1, dtype=np.int64)
    remap[texts] = np.arange(len(texts))
    rows = held[owner]
    pooled = group_max((x[rows] @ w)[:, None].astype(np.float32), remap[owner[rows]], len(texts))[:, 0]
    return float(auroc(pooled, labels[held])[0])


def pooled_scores(ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Max-pooled psi per text (§3.2) for a direction-based `Fitted`: float32 ``[len(idx)]``."""
    acts = _acts(ctx, which)
    idx = _index(acts, idx)
    if fitted.score == "sae":
        return sae_pooled(ctx, which)[idx, int(fitted.info["latent"])]
    out = np.zeros(len(idx), dtype=np.float32)
    for start, stop, x, owner in iter_token_chunks(acts, idx):
        tok = fitted.psi(fitted.pre(x)).astype(np.float32)
        out[start:stop] = group_max(tok, owner - start, stop - start)
    return out



# ---- the method base -----------------------------------------------------------------------------


class Method(ABC):
    """A concept detection and/or steering method.

    Args:
        **options: hyper-parameter overrides of ``defaults``; the context's
            ``options[name]`` apply under these (``defaults < ctx.options < constructor``).

    Raises:
        ValueError: an unknown option, or a value of the wrong type or range.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    detects: ClassVar[bool] = True
    steers: ClassVar[bool] = True
    needs_model_grad: ClassVar[bool] = False
    task_wide: ClassVar[bool] = False
    """The fit reads the whole task (an SAE trained on every training text, a criterion compiled over
    all of them), not only the concept's own rows: such a method cannot run in concept blocks."""
    defaults: ClassVar[dict[str, Any]] = {}
    positive: ClassVar[tuple[str, ...]] = ()
    """Options that must be > 0 (others that are numbers must be >= 0)."""
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    """Options restricted to a set of values."""
    numeric: ClassVar[tuple[str, ...]] = ()
    """Options whose default is None but which take a number."""
    integers: ClassVar[tuple[str, ...]] = ()
    """Options (among ``numeric``) that must be integers."""
    order: ClassVar[int] = 100
    fit_version: ClassVar[int] = 1
    """Bumped when a method's fitting changes in a way its hyper-parameters do not show (the
    fitted-direction cache is keyed by it and by every hyper-parameter in force)."""
    """Position in AxBench's results table (its §5.n number); `METHODS` keeps this order."""

    def __init__(self, **options: Any) -> None:
        self.options = self._check(options, "options")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.options.items())})"

    def _check(self, options: Mapping[str, Any], where: str) -> dict[str, Any]:
        out = {}
        for key, value in options.items():
            if key not in self.defaults:
                known = ", ".join(sorted(self.defaults)) or "none"
                raise ValueError(f"method {self.name!r}: unknown option {key!r} in {where} (known: {known})")
            out[key] = self._check_value(key, value, where)
        return out

    def _check_value(self, key: str, value: Any, where: str) -> Any:
        default = self.defaults[key]
        bad = f"method {self.name!r}: option {key!r} in {where}"
        if key in self.choices:
            if value not in self.choices[key]:
                raise ValueError(f"{bad} must be one of {self.choices[key]}, got {value!r}")
            return value
        if isinstance(default, bool):
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"{bad} must be true or false, got {value!r}")
            return bool(value)
        if isinstance(default, (int, float)) or (default is None and key in self.numeric):
            if value is None and default is None:
                return None
            number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            if not number or not np.isfinite(value):
                raise ValueError(f"{bad} must be a finite number, got {value!r}")
            integer = (isinstance(default, int) and not isinstance(default, bool)) or key in self.integers
            if integer and float(value) != int(value):
                raise ValueError(f"{bad} must be an integer, got {value!r}")
            if key in self.positive and value <= 0:
                raise ValueError(f"{bad} must be > 0, got {value!r}")
            if value < 0:
                raise ValueError(f"{bad} must be >= 0, got {value!r}")
            return int(value) if integer else float(value)
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"{bad} must be a string, got {value!r}")
        return value

    def params(self, ctx: Any = None) -> dict[str, Any]:
        """The hyper-parameters in force: defaults, then ``ctx.options[name]``, then the constructor's."""
        merged = dict(self.defaults)
        ctx_opts = (getattr(ctx, "options", None) or {}).get(self.name) if ctx is not None else None
        if ctx_opts:
            merged.update(self._check(ctx_opts, f"context options[{self.name!r}]"))
        merged.update(self.options)
        return merged

    @abstractmethod
    def fit(self, ctx: Any, cid: int) -> Fitted:
        """Learn (or pick) this method's feature for concept ``cid``."""

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Sequence score per text (max-pooled psi), float ``[len(idx)]`` (all texts when None)."""
        return pooled_scores(ctx, fitted, which, idx)

    def token_scores(self, ctx: Any, fitted: Fitted, i: int, which: str = "eval") -> np.ndarray:
        """Per-token psi of text ``i`` (for highlights); text methods repeat the text's score."""
        acts = _acts(ctx, which)
        if fitted.score == "text":
            n = int(acts.offsets[i + 1] - acts.offsets[i])
            return np.full(n, float(self.scores(ctx, fitted, which, [i])[0]), dtype=np.float32)
        if fitted.score == "sae":
            return _sae_psi(ctx.sae(), acts.rows(i), standalone=False)[:, int(fitted.info["latent"])]
        return fitted.psi(fitted.pre(acts.rows(i))).astype(np.float32)

    # helpers shared by subclasses
    def _fitted(self, cid: int, vector: np.ndarray | None, **kw: Any) -> Fitted:
        return Fitted(method=self.name, concept_id=int(cid), vector=vector, **kw)


def unit(v: np.ndarray) -> np.ndarray:
    """``v / ‖v‖`` in float32 (a zero vector stays zero)."""
    v = np.asarray(v, dtype=np.float64)
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


def rng_for(ctx: Any, cid: int, salt: int = 0) -> np.random.Generator:
    """A generator that depends only on the run's seed, the concept and ``salt``."""
    # A list seed goes through SeedSequence: independent, reproducible streams per (seed, concept, salt), so a
    # concept's result does not depend on which other concepts or methods ran before it.
    return np.random.default_rng([int(getattr(ctx, "seed", 42)), int(cid), int(salt)])


def split_tokens(ctx: Any, cid: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept-token rows of the concept's training texts and each row's example label (bool)."""
    idx, labels = ctx.train_split(cid)
    idx = np.asarray(idx, dtype=np.int64)
    labels = np.asarray(labels, dtype=bool)
    # Token-level training rows inherit their text's label (the AxBench convention for DiffMean / Probe / PCA).
    x, owner = ctx.train_acts.gather(idx)
    return x, labels[owner]


def first_pc(x: np.ndarray) -> tuple[np.ndarray, float]:
    """First principal component of the rows of ``x`` (centred), unit norm, and its explained variance ratio."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    # Unnormalised scatter matrix: the 1/n factor changes neither the eigenvectors nor the variance ratio.
    # eigh sorts eigenvalues ascending, so the last column is the top PC; its sign is arbitrary (as in AxBench).
    cov = xc.T @ xc
    evals, evecs = np.linalg.eigh(cov)
    total = float(evals.sum())
    ratio = float(evals[-1] / total) if total > 0 else 0.0
    return unit(evecs[:, -1]), ratio



# ---- SAE latent activations (psi "sae", `pooled_scores`, the SAE methods) -------------------------


def _memo(ctx: Any) -> dict[Any, Any]:
    memo = getattr(ctx, "memo", None)
    if memo is None:
        memo = {}
        ctx.memo = memo
    return memo


ELEMENTWISE = ("relu", "jumprelu")
"""SAE architectures whose latents do not compete: one latent's activation is a function of ``h·w_enc``."""


def _sae_psi(sae: Any, x: np.ndarray, *, standalone: bool) -> np.ndarray:
    """``[n, d_sae]`` latent activations of token rows: the SAE's encoder, or each latent alone."""
    import torch

    param = next(iter(sae.parameters()))
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(param.device)
        if not standalone:
            return sae.encode(xt).float().cpu().numpy()
        pre = sae.pre_activations(xt).float()
        jump = sae.cfg.architecture == "jumprelu"
        # "Each latent alone": drop the TopK competition (ReLU of the latent's own pre-activation), so a latent's
        # score does not depend on which other latents happened to win on that token.
        codes = torch.relu(pre) * (pre > sae.threshold.float()) if jump else torch.relu(pre)
        return codes.cpu().numpy()


def sae_pooled(ctx: Any, which: str = "train", *, standalone: bool = False, chunk_tokens: int = 8192) -> np.ndarray:
    """Max over kept tokens of every SAE latent, per ``which`` text (cached): ``[n_texts, d_sae]``.

    The activation is the SAE's own encoder output, or with ``standalone`` each latent's
    activation on its own (``ReLU(pre)``, JumpReLU keeping its threshold): the two differ only for
    architectures whose latents compete (TopK, BatchTopK).
    """
    memo = _memo(ctx)
    standalone = bool(standalone and ctx.sae().cfg.architecture not in ELEMENTWISE)
    key = ("sae_pooled", which, standalone)
    if key not in memo:
        sae = ctx.sae()
        acts = _acts(ctx, which)
        idx = np.arange(len(acts))
        out = np.zeros((len(acts), int(sae.cfg.d_sae)), dtype=np.float32)
        for start, stop, x, owner in iter_token_chunks(acts, idx, chunk_tokens):
            out[start:stop] = group_max(_sae_psi(sae, x, standalone=standalone), owner - start, stop - start)
        memo[key] = out
    return memo[key]



# ---- registry -----------------------------------------------------------------------------------

METHODS: dict[str, type[Method]] = {}
"""Registry name -> method class, filled by `register_method`, in AxBench's table order (`Method.order`)."""

M = TypeVar("M", bound=type[Method])


def register_method(cls: M) -> M:
    """Class decorator: register a method under its ``name`` (`METHODS` stays sorted by ``order``).

    Raises:
        ValueError: another class already holds the name.
    """
    register(METHODS, cls.name, cls, "bench method")
    ordered = sorted(METHODS.items(), key=lambda kv: kv[1].order)
    METHODS.clear()
    METHODS.update(ordered)
    return cls


def get_method(name: str, **options: Any) -> Method:
    """A method by registry name (case-insensitive) or display label, built with ``options``.

    Example:
        >>> method = get_method("diffmean")
        >>> method.label, method.detects, method.steers
        ('DiffMean', True, True)
        >>> get_method("probe", epochs=4).params()["epochs"]
        4

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad option.
    """
    key = str(name).strip().lower()
    by_label = {cls.label.lower(): cls for cls in METHODS.values()}
    cls = METHODS.get(key) or by_label.get(key)
    if cls is None:
        raise ValueError(f"unknown bench method {name!r}; known: {', '.join(METHODS)}")
    return cls(**options)


# ---- export -------------------------------------------------------------------------------------


def _texts(ctx: Any, which: str) -> list[str]:
    if which not in ("train", "eval"):
        raise ValueError(f"which must be 'train' or 'eval', got {which!r}")
    return ctx.train_texts if which == "train" else ctx.eval_texts



def fitted_table(ctx: Any, fitted: Mapping[tuple[str, int], Fitted], which: str = "eval") -> FeatureTable:
    """Fitted directions as a `FeatureTable`: one feature ``"<label>/c<cid>"`` per (method, concept).

    Values are each direction's max-pooled psi on every ``which`` text; decoder vectors are the
    steering vectors (the detection vector when a method has none). Text-scoring fits (BoW,
    Prompt) have no direction and are left out. Examples carry the text, ``concept_id`` and
    ``category`` of the task rows.

    Args:
        ctx: the benchmark context.
        fitted: ``{(method label, concept id): Fitted}``.
        which: ``"eval"`` or ``"train"`` texts.
    """
    import pandas as pd

    from interpkit.table import FeatureTable

    texts = _texts(ctx, which)
    keys = [k for k, f in fitted.items() if f.vector is not None]
    cols, feats, decoders = [], [], {}
    model = getattr(getattr(ctx, "model", None), "name", None)
    for label, cid in keys:
        f = fitted[(label, cid)]
        fid = f"{label}/c{int(cid)}"
        cols.append(pooled_scores(ctx, f, which))
        try:
            desc = ctx.task.concept(cid).description
        except (AttributeError, KeyError, ValueError):
            desc = None
        feats.append({"feature_id": fid, "model": model, "site": ctx.site, "layer": getattr(ctx, "layer", None),
                      "label": f"{label}: {desc}" if desc else label, "source": "bench", "method": f.method,
                      "concept_id": int(cid), "psi": f.score})
        decoders[fid] = f.steer_vector if f.steer_vector is not None else f.vector
    values = np.stack(cols, axis=1) if cols else np.zeros((len(texts), 0), dtype=np.float32)
    frame = ctx.task.train if which == "train" else ctx.task.eval
    examples = pd.DataFrame({"example_id": [str(i) for i in range(len(texts))], "text": list(texts)})
    for col in ("concept_id", "category"):
        if col in frame.columns and len(frame) == len(texts):
            examples[col] = frame[col].to_numpy()
    meta = {"kind": "interpkit.bench.fitted", "task": getattr(ctx.task, "name", None), "site": ctx.site,
            "which": which, "pooling": "max"}
    features = pd.DataFrame(feats) if feats else None
    return FeatureTable(values, examples, features, decoder_vectors=decoders, meta=meta)
