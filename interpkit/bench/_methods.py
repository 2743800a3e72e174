"""The benchmark's concept detection and steering methods (AxBench §5), one class per method.

Every method learns (or picks) one thing per concept from a `BenchContext` and returns a `Fitted`:
a direction ``vector`` scored per token by ``psi`` (``"linear"`` ``h·w + b``, ``"relu"``,
``"jumprelu"``) and max-pooled over a text's scored positions (§3.2), a ``steer_vector`` added when
steering (§4.3), or, for text classifiers (BoW, Prompt), a score per text. `METHODS` maps the
lower-case registry names to the classes and `get_method` builds one with option overrides;
``defaults`` hold AxBench's hyper-parameters (Appendix A) with the changes a 135M model on a CPU
needs, each said in the class docstring. `fitted_table` turns fitted directions into a
`FeatureTable` so ``rank``, ``explain`` and ``match`` read them like any other feature.

The LM-loss methods (SSV, ReFT-r1) train in ``interpkit.bench._lmloss``. SAE and Criterion-only
share one description-only selection, `criterion_pick`: the concept's description compiled over
the task's unlabelled train outputs (`criterion_examples`, cached per concept on the context),
candidate features ranked by ``interpkit.rank`` on the pseudo-labelled held-out half.

Example:
    >>> method = get_method("diffmean")
    >>> method.label, method.detects, method.steers
    ('DiffMean', True, True)
    >>> get_method("probe", epochs=4).params()["epochs"]
    4
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from interpkit.table import FeatureTable

__all__ = [
    "METHODS",
    "PSI",
    "BagOfWords",
    "CriterionOnly",
    "DiffMean",
    "Fitted",
    "LAT",
    "LinearProbe",
    "Method",
    "PCA",
    "PromptDetection",
    "RandomDirection",
    "ReFTr1",
    "SAEAuc",
    "SAECriterion",
    "SteeringVector",
    "fitted_table",
    "get_method",
    "pooled_scores",
]

PSI = ("linear", "relu", "jumprelu", "sae", "text")
"""Per-token scoring functions of a `Fitted` (``"sae"``: latent ``info["latent"]`` of the context's
SAE, read through its full encoder; ``"text"``: the method scores whole texts)."""

_CHUNK_TOKENS = 65536


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
        if self.score != "text" and self.vector is None:
            raise ValueError(f"{self.method} concept {self.concept_id}: psi {self.score!r} needs a vector")

    def psi(self, pre: np.ndarray) -> np.ndarray:
        """Per-token scores from pre-activations ``h·vector + bias``."""
        if self.score == "linear":
            return pre
        if self.score == "relu":
            return np.maximum(pre, 0.0)
        if self.score == "jumprelu":
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
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    out[owner[starts]] = np.maximum.reduceat(values, starts, axis=0)
    return out


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
    defaults: ClassVar[dict[str, Any]] = {}
    positive: ClassVar[tuple[str, ...]] = ()
    """Options that must be > 0 (others that are numbers must be >= 0)."""
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {}
    """Options restricted to a set of values."""
    numeric: ClassVar[tuple[str, ...]] = ()
    """Options whose default is None but which take a number."""
    integers: ClassVar[tuple[str, ...]] = ()
    """Options (among ``numeric``) that must be integers."""

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
    return np.random.default_rng([int(getattr(ctx, "seed", 42)), int(cid), int(salt)])


def split_tokens(ctx: Any, cid: int) -> tuple[np.ndarray, np.ndarray]:
    """Kept-token rows of the concept's training texts and each row's example label (bool)."""
    idx, labels = ctx.train_split(cid)
    idx = np.asarray(idx, dtype=np.int64)
    labels = np.asarray(labels, dtype=bool)
    x, owner = ctx.train_acts.gather(idx)
    return x, labels[owner]


def first_pc(x: np.ndarray) -> tuple[np.ndarray, float]:
    """First principal component of the rows of ``x`` (centred), unit norm, and its explained variance ratio."""
    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(axis=0, keepdims=True)
    cov = xc.T @ xc
    evals, evecs = np.linalg.eigh(cov)
    total = float(evals.sum())
    ratio = float(evals[-1] / total) if total > 0 else 0.0
    return unit(evecs[:, -1]), ratio


# ---- activation statistics -------------------------------------------------------------------------


class DiffMean(Method):
    """DiffMean (§5.1): mean of the positive examples' kept tokens minus the negatives', unit norm.

    Token-weighted means over every kept (non-prefix) token of the concept's 72 positives and its
    genre-matched negatives; psi ``h·w`` with zero bias; steering adds ``α w``. No hyper-parameters
    (AxBench's batch size only changes memory).
    """

    name, label = "diffmean", "DiffMean"

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        x, y = split_tokens(ctx, cid)
        if y.all() or not y.any():
            raise ValueError(f"DiffMean concept {cid}: the training split needs positive and negative tokens")
        diff = x[y].mean(axis=0, dtype=np.float64) - x[~y].mean(axis=0, dtype=np.float64)
        w = unit(diff)
        return self._fitted(cid, w, steer_vector=w, info={
            "norm_before_unit": float(np.linalg.norm(diff)), "n_pos_tokens": int(y.sum()),
            "n_neg_tokens": int((~y).sum()), "seconds": time.perf_counter() - t0})


class PCA(Method):
    """PCA (§5.2): first principal component of the positive examples' kept tokens (centred), unit norm.

    AxBench leaves the component's sign arbitrary, which can invert detection; so does the default
    here (``align_sign=False``). ``info["sign_agrees"]`` records whether positives project higher
    than negatives; ``align_sign=True`` flips the component when they do not (uses the negatives).
    """

    name, label = "pca", "PCA"
    defaults: ClassVar[dict[str, Any]] = {"align_sign": False}

    def _direction(self, ctx: Any, cid: int, xp: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        w, ratio = first_pc(xp)
        return w, {"explained_variance_ratio": ratio}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        p = self.params(ctx)
        x, y = split_tokens(ctx, cid)
        if not y.any():
            raise ValueError(f"{self.label} concept {cid}: no positive tokens in the training split")
        w, info = self._direction(ctx, cid, x[y])
        agrees = bool(not (~y).any() or float(x[y].mean(0) @ w) >= float(x[~y].mean(0) @ w))
        flipped = bool(p["align_sign"] and not agrees)
        if flipped:
            w = -w
        info.update(sign_agrees=agrees, flipped=flipped, n_pos_tokens=int(y.sum()),
                    seconds=time.perf_counter() - t0)
        return self._fitted(cid, w, steer_vector=w, info=info)


class LAT(PCA):
    """LAT (§5.3): first principal component of unit-normed differences of random positive-token pairs.

    The positive examples' kept tokens are shuffled with a generator seeded by (seed, concept),
    split into halves, paired ``δ_i = a_i − b_i``; each δ is unit-normed (zeros stay zero) and the
    δ's first principal component (centred, as sklearn's PCA) is ``w``. No sign fix by default
    (``align_sign`` as for PCA).
    """

    name, label = "lat", "LAT"

    def _direction(self, ctx: Any, cid: int, xp: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        if xp.shape[0] < 4:
            raise ValueError(f"LAT concept {cid}: needs at least 4 positive tokens, got {xp.shape[0]}")
        perm = rng_for(ctx, cid, 3).permutation(xp.shape[0])
        half = xp.shape[0] // 2
        delta = xp[perm[:half]].astype(np.float64) - xp[perm[half:2 * half]]
        norms = np.linalg.norm(delta, axis=1, keepdims=True)
        delta = np.divide(delta, norms, out=np.zeros_like(delta), where=norms > 0)
        w, ratio = first_pc(delta)
        return w, {"explained_variance_ratio": ratio, "n_pairs": int(half)}


class RandomDirection(Method):
    """Random (§5.13): a unit vector drawn from a generator seeded by (seed, concept); bias 0.

    AxBench's random ``nn.Linear`` keeps its random bias; a zero bias changes no AUROC.
    """

    name, label = "random", "Random"

    def fit(self, ctx: Any, cid: int) -> Fitted:
        d = int(ctx.train_acts.values.shape[1])
        w = unit(rng_for(ctx, cid, 13).standard_normal(d))
        return self._fitted(cid, w, steer_vector=w, info={"seed": [int(getattr(ctx, "seed", 42)), int(cid)]})


class LinearProbe(Method):
    """Linear probe (§5.4): token-level logistic regression on cached activations.

    ``p_t = σ(h_t·w)`` (no bias in the logit, as AxBench's ``LinearProbe``) with binary cross-entropy
    against the example's label on every kept token, plus ``l1 · ‖w‖₁``; AdamW with a linear decay
    of the learning rate to 0; each step unit-normalises ``w`` and removes the gradient's component
    along it before the update; ``w`` is unit-normed at the end. Defaults are AxBench's 2B settings
    (batch 12 examples, 24 epochs, lr 5e-3, weight decay 1e-3, L1 0): training runs on the cached
    activations, so the full schedule is cheap on a CPU. Divergence: tokens are the kept
    (non-prefix) positions the detection scores, where AxBench's probe trains from position 1.
    """

    name, label = "probe", "Probe"
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": 24, "batch_size": 12, "lr": 5e-3, "weight_decay": 1e-3, "l1": 0.0, "bias": False,
    }
    positive = ("epochs", "batch_size", "lr")

    def fit(self, ctx: Any, cid: int) -> Fitted:
        import torch

        t0 = time.perf_counter()
        p = self.params(ctx)
        idx, labels = ctx.train_split(cid)
        idx, labels = np.asarray(idx, dtype=np.int64), np.asarray(labels, dtype=bool)
        if labels.all() or not labels.any():
            raise ValueError(f"Probe concept {cid}: the training split needs positives and negatives")
        x_all, owner = ctx.train_acts.gather(idx)
        x_all = torch.from_numpy(np.ascontiguousarray(x_all))
        y_tok = torch.from_numpy(labels[owner].astype(np.float32))
        starts = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(idx)))]
        d = x_all.shape[1]
        gen = torch.Generator().manual_seed(int(getattr(ctx, "seed", 42)) * 1000 + int(cid))
        bound = 1.0 / np.sqrt(d)
        w = torch.nn.Parameter((torch.rand(d, generator=gen) * 2 - 1) * bound)
        b = torch.nn.Parameter(torch.zeros(()), requires_grad=bool(p["bias"]))
        params = [w, b] if p["bias"] else [w]
        opt = torch.optim.AdamW(params, lr=p["lr"], weight_decay=p["weight_decay"])
        n_batches = -(-len(idx) // p["batch_size"])
        total = p["epochs"] * n_batches
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1.0 - s / total))
        losses = []
        for _ in range(p["epochs"]):
            order = torch.randperm(len(idx), generator=gen).numpy()
            epoch_loss = 0.0
            for bstart in range(0, len(idx), p["batch_size"]):
                ex = order[bstart:bstart + p["batch_size"]]
                rows = np.concatenate([np.arange(starts[e], starts[e + 1]) for e in ex])
                if rows.size == 0:
                    continue
                rows_t = torch.from_numpy(rows)
                logits = x_all[rows_t] @ w + (b if p["bias"] else 0.0)
                # binary cross-entropy with logits, written out (the fused op is slow on small CPU batches)
                loss = (torch.nn.functional.softplus(logits) - y_tok[rows_t] * logits).mean()
                if p["l1"]:
                    loss = loss + p["l1"] * w.abs().sum()
                opt.zero_grad()
                loss.backward()
                with torch.no_grad():
                    w.div_(w.norm().clamp_min(1e-12))
                    w.grad.sub_((w.grad @ w) * w)
                opt.step()
                sched.step()
                epoch_loss += float(loss.detach()) * len(ex)
            losses.append(epoch_loss / len(idx))
        vec = unit(w.detach().numpy())
        return self._fitted(cid, vec, steer_vector=vec, bias=float(b.detach()) if p["bias"] else 0.0,
                            info={"loss_per_epoch": [round(v, 6) for v in losses], "steps": total,
                                  "n_tokens": int(len(owner)), "seconds": time.perf_counter() - t0})


# ---- LM-loss methods (training in _lmloss) --------------------------------------------------------


class SteeringVector(Method):
    """SSV (§5.5): a vector added at every non-prefix position, trained with the LM loss on positives.

    ``w`` starts at 0.01 in every coordinate and is not normalised; the model reads
    ``h_t + w`` at ``ctx.site`` for positions ``prefix_length`` to the end, and the loss is
    next-token cross-entropy on the response tokens only (the chat-templated instruction is
    context). Detection psi ``ReLU(h·w)``; steering adds ``α w``. AxBench: batch 6, 3 epochs,
    lr 1e-2, weight decay 0, positives only, responses of 128 tokens. Adaptation: ``epochs`` and
    ``max_train_tokens`` left at None mean AxBench's 3 and 128 when the model is on a GPU, 1 and 64
    on a CPU (a step of a 135M model over 6 examples takes ~15 s on 2 CPU cores); the values used
    are in ``info``. ``max_examples`` caps the training examples (None: all).
    """

    name, label = "ssv", "SSV"
    needs_model_grad = True
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": None, "batch_size": 6, "lr": 1e-2, "weight_decay": 0.0, "max_train_tokens": None,
        "max_examples": None, "init": 0.01,
    }
    positive = ("epochs", "batch_size", "lr", "max_train_tokens", "max_examples")
    numeric = integers = ("epochs", "max_train_tokens", "max_examples")

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from interpkit.bench._lmloss import train_lm_vector

        p = self.params(ctx)
        w, info = train_lm_vector(ctx, cid, kind="ssv", params=p)
        return self._fitted(cid, w, steer_vector=w, score="relu", info=info)


class ReFTr1(Method):
    """ReFT-r1 (§5.6): a unit vector with a top-k gated addition and a ramped L1 on the other latents.

    Latents ``a_t = ReLU(h_t·w)`` at every non-prefix position; training adds ``ā·w`` where ``ā``
    is the mean of the sequence's top-``k`` latents; loss = response-only next-token cross-entropy
    over positives and negatives + ``λ_t · L1`` (mean over examples of the summed non-top-k latents
    per valid position, ``λ_t`` ramping linearly from 0 to ``l1``); each step clips the gradient
    norm at 1, unit-normalises ``w``, removes the parallel gradient, then AdamW (linear LR decay to
    0). ``w`` is unit-normed at the end. Detection psi ``ReLU(h·w)``; steering adds ``α w`` (no
    gate). AxBench 2B: batch 6, 3 epochs, lr 1e-2, wd 0, k 8, L1 5e-3, 128-token responses.
    Adaptation as for `SteeringVector`: ``epochs``/``max_train_tokens`` None = 3/128 on a GPU, 1/64
    on a CPU; ``max_examples`` caps the examples (positives and negatives drawn together).
    """

    name, label = "reft-r1", "ReFT-r1"
    needs_model_grad = True
    defaults: ClassVar[dict[str, Any]] = {
        "epochs": None, "batch_size": 6, "lr": 1e-2, "weight_decay": 0.0, "topk": 8, "l1": 5e-3,
        "grad_clip": 1.0, "max_train_tokens": None, "max_examples": None, "init": 0.01,
    }
    positive = ("epochs", "batch_size", "lr", "topk", "max_train_tokens", "max_examples", "grad_clip")
    numeric = integers = ("epochs", "max_train_tokens", "max_examples")

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from interpkit.bench._lmloss import train_lm_vector

        p = self.params(ctx)
        w, info = train_lm_vector(ctx, cid, kind="reft", params=p)
        return self._fitted(cid, w, steer_vector=w, score="relu", info=info)


# ---- SAE latents and the criterion ---------------------------------------------------------------


class SAECriterion(Method):
    """SAE (§5.7) with the latent chosen from the concept's description alone (no labels).

    AxBench takes the GemmaScope latent whose Neuronpedia label names the concept. Here interpkit
    picks it: the description is compiled with a criterion compiler (default ``embedding``) over
    the task's unlabelled train outputs into pseudo-labelled texts split train/held-out; every
    latent's max-pooled activation on those texts is ranked with ``interpkit.rank`` and the top
    latent that is higher on the criterion's texts wins (near-ties within ``tie_tolerance`` go to
    the larger class gap, `criterion_pick`). psi is the SAE's own encoder for it (AxBench's
    JumpReLU ``1[pre > θ]·ReLU(pre)``; steering adds the unit decoder row). For TopK/BatchTopK
    SAEs, whose latents compete, ``latent_psi="encoder"`` (default) reads the latent from the
    full encoder's output (psi ``"sae"``) and ``"standalone"`` scores ``ReLU(pre)`` of the latent
    alone; selection reads the same activation as detection. The encoder reading is the default
    because it is the activation the SAE was trained to produce; on 5 AxBench 2B-L10 concepts (24
    texts per class, SmolLM2-135M layer 12, the context's TopK SAE) neither won clearly (mean eval
    AUROC: SAE 0.90 encoder vs 0.88 standalone; SAE-A 0.88 vs 0.92).
    """

    name, label = "sae", "SAE"
    defaults: ClassVar[dict[str, Any]] = {"compiler": "embedding", "max_per_class": None, "n_bootstrap": 20,
                                          "tie_tolerance": 0.01, "latent_psi": "encoder"}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"latent_psi": ("encoder", "standalone")}
    positive = ("max_per_class",)
    numeric = integers = ("max_per_class",)

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        fitted = criterion_pick(ctx, cid, self, kinds=("sae",))
        fitted.info["seconds"] = time.perf_counter() - t0
        return fitted


class SAEAuc(Method):
    """SAE-A (§5.8): the SAE latent whose max-pooled activation has the best train AUROC (labels used).

    Every latent is scored on the concept's training texts (max over kept tokens of its
    activation, `sae_pooled`) and the arg-max AUROC against the labels is taken; then it behaves
    like `SAECriterion` (same ``latent_psi``).
    """

    name, label = "sae-a", "SAE-A"
    defaults: ClassVar[dict[str, Any]] = {"latent_psi": "encoder"}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"latent_psi": ("encoder", "standalone")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from interpkit.rank._stats import auroc

        t0 = time.perf_counter()
        standalone = self.params(ctx)["latent_psi"] == "standalone"
        idx, labels = ctx.train_split(cid)
        codes = sae_pooled(ctx, "train", standalone=standalone)[np.asarray(idx, dtype=np.int64)]
        aucs = np.nan_to_num(auroc(codes, np.asarray(labels, dtype=bool)), nan=0.0)
        f = int(np.argmax(aucs))
        fitted = sae_fitted(ctx, self, cid, f, standalone=standalone)
        fitted.info.update(train_auroc=float(aucs[f]), seconds=time.perf_counter() - t0)
        return fitted


class CriterionOnly(Method):
    """Criterion-only: the top feature interpkit finds for the description, with no labels.

    The description is compiled over the task's unlabelled train outputs (as for `SAECriterion`);
    candidates are every neuron at the site (max-pooled raw activation), every SAE latent (when
    ``use_sae`` and the context provides an SAE) and the DiffMean direction of the pseudo-labels
    learned on the pseudo train split; ``interpkit.rank`` orders them by held-out association on the
    pseudo held-out split and the top one oriented towards the criterion is taken (near-ties within
    ``tie_tolerance``: direction, then SAE latent, then neuron; see `criterion_pick`). Its max-pooled
    eval score is the detection score; ``info`` names the feature, its kind and its held-out
    association. Detection only (``steer_vector`` is still filled for users who want it).
    """

    name, label = "criterion", "Criterion-only"
    steers = False
    defaults: ClassVar[dict[str, Any]] = {
        "compiler": "embedding", "max_per_class": None, "n_bootstrap": 20, "tie_tolerance": 0.01,
        "latent_psi": "encoder", "use_sae": True,
        "neurons": True, "direction": True,
    }
    positive = ("max_per_class",)
    numeric = integers = ("max_per_class",)
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"latent_psi": ("encoder", "standalone")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        t0 = time.perf_counter()
        p = self.params(ctx)
        kinds = tuple(k for k, on in (("neuron", p["neurons"]), ("sae", p["use_sae"]),
                                       ("direction", p["direction"])) if on)
        if not kinds:
            raise ValueError("method 'criterion': neurons, use_sae and direction are all off; no candidates")
        fitted = criterion_pick(ctx, cid, self, kinds=kinds, optional=("sae",))
        fitted.info["seconds"] = time.perf_counter() - t0
        return fitted


# ---- description-only selection (SAE, Criterion-only) --------------------------------------------


class _MemoEncoder:
    """A sentence encoder that remembers each text's embedding (the same outputs are scored per concept)."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self.name = getattr(encoder, "name", type(encoder).__name__)
        self._memo: dict[str, np.ndarray] = {}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        todo = [t for t in dict.fromkeys(texts) if t not in self._memo]
        if todo:
            for t, e in zip(todo, np.asarray(self.encoder.encode(todo), dtype=np.float32), strict=True):
                self._memo[t] = e
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([self._memo[t] for t in texts])


def _memo(ctx: Any) -> dict[Any, Any]:
    memo = getattr(ctx, "memo", None)
    if memo is None:
        memo = {}
        ctx.memo = memo
    return memo


def criterion_examples(ctx: Any, cid: int, *, compiler: str = "embedding",
                       max_per_class: int | None = None) -> dict[str, Any]:
    """The concept's description compiled over the task's unlabelled train outputs (cached on ``ctx``).

    The texts are the ``output`` column of every train row (positives of every concept and the
    negative pool alike; no label is read). The compiler's uncertain band is left out, classes are
    balanced and split half train / half held-out (seed ``ctx.seed``).

    Returns:
        ``{"rows": train-row indices, "score": criterion scores in [0, 1], "positive": bool,
        "split": "train"/"test" per row, "provenance": JSON-ready settings and counts}``.

    Raises:
        ValueError: the criterion found no positive or no negative texts (names the concept).
    """
    from interpkit.criterion import Criterion, get_compiler
    from interpkit.sources import PromptRow

    memo = _memo(ctx)
    key = ("criterion_examples", int(cid), compiler, max_per_class)
    if key in memo:
        return memo[key]
    desc = ctx.task.concept(cid).description
    outputs = ctx.task.train["output"].astype(str).tolist()
    pool = [PromptRow(prompt_id=i, text=t) for i, t in enumerate(outputs) if t.strip()]
    if compiler == "embedding":
        if "memo_encoder" not in memo:
            memo["memo_encoder"] = _MemoEncoder(ctx.encoder)
        comp = get_compiler("embedding", encoder=memo["memo_encoder"])
    else:
        comp = get_compiler(compiler)
    try:
        scored = comp.compile(Criterion(text=desc), pool=pool, max_per_class=max_per_class,
                              seed=int(getattr(ctx, "seed", 42)), test_fraction=0.5)
    except ValueError as err:
        raise ValueError(f"concept {cid} ({desc!r}): {err}") from None
    rows = np.array([int(s.prompt_id) for s in scored], dtype=np.int64)
    score = np.array([s.score for s in scored], dtype=np.float64)
    positive = np.array([s.label == "positive" for s in scored], dtype=bool)
    split = np.array([s.split for s in scored], dtype=object)
    out = {"rows": rows, "score": score, "positive": positive, "split": split, "provenance": {
        **comp.describe(), "criterion": desc, "pool": "task train outputs (unlabelled)", "pool_size": len(pool),
        "n_positive": int(positive.sum()), "n_negative": int((~positive).sum()),
        "n_test": int((split == "test").sum())}}
    memo[key] = out
    return out


def neuron_maxpool(ctx: Any) -> np.ndarray:
    """Max over kept tokens of every raw activation dimension, per train text (cached): ``[n_train, d]``."""
    memo = _memo(ctx)
    if "neuron_max" not in memo:
        acts = ctx.train_acts
        idx = np.arange(len(acts))
        out = np.zeros((len(acts), acts.values.shape[1]), dtype=np.float32)
        for start, stop, x, owner in iter_token_chunks(acts, idx):
            out[start:stop] = group_max(x, owner - start, stop - start)
        memo["neuron_max"] = out
    return memo["neuron_max"]


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


def sae_fitted(ctx: Any, method: Method, cid: int, latent: int, *, standalone: bool = False) -> Fitted:
    """A `Fitted` scoring one SAE latent with the SAE's own encoder and steering with its decoder row.

    For ReLU and JumpReLU SAEs (and with ``standalone``) the score is the linear form
    ``pre = s·h·W_enc[:, f] + b`` (fixed input scale ``s``, ``b_dec`` folded into ``b``) through
    ReLU, JumpReLU keeping its threshold. For TopK/BatchTopK SAEs psi is ``"sae"``: the latent's
    value in the full encoder's output, so the competition among latents applies (``vector``
    still holds the encoder column).
    """
    import torch

    sae = ctx.sae()
    cfg = sae.cfg
    f = int(latent)
    with torch.no_grad():
        scale = 1.0
        if cfg.normalize_activations == "expected_average_only_in" and cfg.norm_scaling_factor is not None:
            scale = float(cfg.norm_scaling_factor)
        vec = sae.W_enc[:, f].float().cpu().numpy() * scale
        bias = float(sae.encoder_bias()[f])
        dec = sae.W_dec[f].float().cpu().numpy()
        threshold = float(sae.threshold[f]) if cfg.architecture == "jumprelu" else 0.0
    info = {"feature": f"sae:{f}", "kind": "sae", "latent": f, "architecture": cfg.architecture,
            "decoder_norm": float(np.linalg.norm(dec))}
    if cfg.normalize_activations == "constant_norm_rescale":
        info["rescale_inputs"] = True
    if cfg.architecture == "jumprelu":
        score = "jumprelu"
    elif cfg.architecture in ELEMENTWISE or standalone:
        score = "relu"
    else:
        score = "sae"
    return method._fitted(cid, vec, steer_vector=unit(dec), bias=bias, threshold=threshold, score=score, info=info)


def _pseudo_diffmean(ctx: Any, rows: np.ndarray, positive: np.ndarray) -> np.ndarray:
    x, owner = ctx.train_acts.gather(rows)
    y = positive[owner]
    if y.all() or not y.any():
        raise ValueError("the pseudo train split lacks positive or negative tokens")
    return unit(x[y].mean(axis=0, dtype=np.float64) - x[~y].mean(axis=0, dtype=np.float64))


_KIND_ORDER = {"direction": 0, "sae": 1, "neuron": 2}
"""Tie-break order of candidate kinds in `criterion_pick`."""


def _class_gap(values: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """Per column ``(mean_pos - mean_neg) / pooled sd`` (Cohen's d; 0 where both classes are constant)."""
    x = np.asarray(values, dtype=np.float64)
    a, b = x[positive], x[~positive]
    sd = np.sqrt((a.var(axis=0) + b.var(axis=0)) / 2.0)
    diff = a.mean(axis=0) - b.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, diff / sd, 0.0)


def criterion_pick(ctx: Any, cid: int, method: Method, *, kinds: Sequence[str],
                   optional: Sequence[str] = ()) -> Fitted:
    """The top candidate feature for the concept's description, chosen without labels.

    Candidates (``kinds``): ``"neuron"`` (every dimension at the site, max-pooled), ``"sae"`` (every
    latent of ``ctx.sae()``), ``"direction"`` (DiffMean of the pseudo-labels on the pseudo train
    split). Each one's max-pooled value on the compiled texts goes into a `FeatureTable` with the
    criterion scores and splits; ``interpkit.rank`` orders them and the best one that is higher on
    criterion-positive texts is returned. Candidates within ``tie_tolerance`` of the best rank
    score count as tied (common: the pseudo-labelled texts are easy and hundreds of candidates
    reach a held-out AUROC of 1); among them the direction goes first, then SAE latents, then
    neurons, then the larger standardised gap between the criterion's classes over all compiled
    texts (`_class_gap`). Kinds in ``optional``
    are skipped (and the reason kept in ``info``) when they cannot be built. The labelled eval
    rows are never read.
    """
    import pandas as pd

    from interpkit.rank import rank
    from interpkit.table import FeatureTable

    p = method.params(ctx)
    standalone = p["latent_psi"] == "standalone"
    ex = criterion_examples(ctx, cid, compiler=p["compiler"], max_per_class=p["max_per_class"])
    rows, split = ex["rows"], ex["split"]
    blocks, ids, skipped = [], [], {}
    direction = None
    for kind in kinds:
        try:
            if kind == "neuron":
                vals = neuron_maxpool(ctx)[rows]
                names = [f"neuron:{i}" for i in range(vals.shape[1])]
            elif kind == "sae":
                vals = sae_pooled(ctx, "train", standalone=standalone)[rows]
                names = [f"sae:{j}" for j in range(vals.shape[1])]
            elif kind == "direction":
                train = split == "train"
                direction = _pseudo_diffmean(ctx, rows[train], ex["positive"][train])
                probe = Fitted(method=method.name, concept_id=int(cid), vector=direction, steer_vector=None)
                vals = pooled_scores(ctx, probe, "train", rows)[:, None]
                names = ["direction:diffmean"]
            else:
                raise ValueError(f"unknown candidate kind {kind!r}")
        except Exception as err:  # noqa: BLE001 - an optional candidate kind may be unavailable
            if kind not in optional:
                raise
            skipped[kind] = f"{type(err).__name__}: {err}"
            continue
        blocks.append(np.asarray(vals, dtype=np.float32))
        ids.extend(names)
    if not ids:
        raise ValueError(f"{method.label} concept {cid}: no candidate features ({skipped})")
    outputs = ctx.task.train["output"].astype(str).to_numpy()
    examples = pd.DataFrame({"example_id": [str(r) for r in rows], "text": outputs[rows].tolist(),
                             "criterion_score": ex["score"], "split": split.tolist()})
    table = FeatureTable(np.hstack(blocks), examples, pd.DataFrame({"feature_id": ids}),
                         meta={"criterion": ex["provenance"]["criterion"]})
    result = rank(table, null="asymptotic", n_bootstrap=p["n_bootstrap"], seed=int(getattr(ctx, "seed", 42)))
    # the pseudo-labelled texts are often easy, so many candidates tie near a held-out AUROC of 1:
    # within `tie_tolerance` of the best score, the kind order decides (a direction pools every
    # dimension's evidence; latents are trained to be monosemantic), then the class gap
    gap = _class_gap(table.dense(), ex["positive"])
    oriented = [r for r in result.rows if r.association.effect_sign > 0
                and (r.association.auroc_test is None or r.association.auroc_test > 0.5)]
    warnings = list(result.warnings)
    if not oriented:
        oriented = list(result.rows[:1])
        warnings.append("no candidate is higher on criterion-positive texts; the top-ranked one is used")
    best_tier = min(r.tier_rank for r in oriented)
    top = [r for r in oriented if r.tier_rank == best_tier]
    best = max(r.score for r in top)
    tied = [r for r in top if r.score >= best - p["tie_tolerance"]]
    chosen = min(tied, key=lambda r: (_KIND_ORDER.get(r.feature_id.partition(":")[0], 9), -gap[r.index], r.index))
    kind, _, ref = chosen.feature_id.partition(":")
    if kind == "sae":
        fitted = sae_fitted(ctx, method, cid, int(ref), standalone=standalone)
    elif kind == "neuron":
        vec = np.zeros(ctx.train_acts.values.shape[1], dtype=np.float32)
        vec[int(ref)] = 1.0
        fitted = method._fitted(cid, vec, steer_vector=vec, info={"kind": "neuron", "neuron": int(ref)})
    else:
        fitted = method._fitted(cid, direction, steer_vector=direction, info={"kind": "direction"})
    a = chosen.association
    fitted.info.update(
        feature=chosen.feature_id, rank=chosen.rank, tier=chosen.tier, rank_score=chosen.score,
        class_gap=float(gap[chosen.index]), n_tied=len(tied),
        association={"auroc_test": a.auroc_test, "auroc_train": a.auroc_train, "spearman_test": a.spearman_test,
                     "p_value": a.p_value, "q_value": a.q_value, "significant": a.significant,
                     "n_train": a.n_train, "n_test": a.n_test},
        n_candidates={k: sum(i.startswith(k + ":") for i in ids) for k in kinds if k not in skipped},
        criterion=ex["provenance"], **({"skipped": skipped} if skipped else {}),
        **({"warnings": warnings} if warnings else {}))
    return fitted


# ---- text classifiers ------------------------------------------------------------------------------


def _texts(ctx: Any, which: str) -> list[str]:
    if which not in ("train", "eval"):
        raise ValueError(f"which must be 'train' or 'eval', got {which!r}")
    return ctx.train_texts if which == "train" else ctx.eval_texts


class BagOfWords(Method):
    """BoW (§5.9): word counts + logistic regression on the formatted training texts; detection only.

    ``CountVectorizer()`` (default word pattern, lower-cased) and ``LogisticRegression`` (L2,
    ``C`` = 100, lbfgs, ``max_iter`` 1000, ``random_state`` = seed) on the chat-formatted
    instruction + response of the concept's positives and negatives; the score is P(positive).
    """

    name, label = "bow", "BoW"
    steers = False
    defaults: ClassVar[dict[str, Any]] = {"penalty": "l2", "C": 100.0, "max_iter": 1000}
    positive = ("C", "max_iter")
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"penalty": ("l1", "l2")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        t0 = time.perf_counter()
        p = self.params(ctx)
        idx, labels = ctx.train_split(cid)
        texts = [ctx.train_texts[int(i)] for i in idx]
        clf = LogisticRegression(C=p["C"], max_iter=p["max_iter"], random_state=int(getattr(ctx, "seed", 42)),
                                 **_penalty(p["penalty"]))
        pipe = make_pipeline(CountVectorizer(), clf).fit(texts, np.asarray(labels, dtype=int))
        vocab = len(pipe[0].vocabulary_)
        return self._fitted(cid, None, steer_vector=None, score="text", state=pipe,
                            info={"vocabulary": vocab, "seconds": time.perf_counter() - t0})

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """P(positive) per text."""
        texts = _texts(ctx, which)
        idx = range(len(texts)) if idx is None else idx
        return fitted.state.predict_proba([texts[int(i)] for i in idx])[:, 1].astype(np.float64)


def _penalty(penalty: str) -> dict[str, Any]:
    """LogisticRegression arguments for an L1/L2 penalty (scikit-learn 1.8 replaced ``penalty`` by ``l1_ratio``)."""
    import sklearn

    new = tuple(int(v) for v in sklearn.__version__.split(".")[:2] if v.isdigit()) >= (1, 8)
    if penalty == "l2":
        return {"solver": "lbfgs"}
    return {"solver": "liblinear", **({"l1_ratio": 1.0} if new else {"penalty": "l1"})}


JUDGE_PROMPT = (
    "Rate how strongly the text below is about, or clearly mentions, this concept: {concept}\n\n"
    "Text:\n{text}\n\n"
    "Answer with a single digit: 0 if the concept is absent, 1 if it is somewhat present, "
    "2 if it is clearly present."
)
"""Our own wording of AxBench's concept-relevance judge (§5.11: the response only, not the instruction)."""


class PromptDetection(Method):
    """Prompt (§5.11, detection): the local chat model rates the concept's presence in the response 0-2.

    The chat model (``ctx.chat``) reads the concept and the row's ``output`` only (not the
    instruction) under `JUDGE_PROMPT`. AxBench samples up to 512 tokens and parses the rating; here
    the score is the expected rating ``Σ_k k·P(k)`` from the next-token probabilities of ``0``,
    ``1``, ``2`` (continuous, deterministic, one forward pass). A chat model without choice
    probabilities is asked to complete and its last 0-2 digit is parsed (unparseable: -1). Response
    texts longer than ``max_chars`` are cut. Prompt steering lives in ``interpkit.bench._steer``.
    """

    name, label = "prompt", "Prompt"
    steers = False
    defaults: ClassVar[dict[str, Any]] = {"max_chars": 2000}
    positive = ("max_chars",)

    def fit(self, ctx: Any, cid: int) -> Fitted:
        if getattr(ctx, "chat", None) is None:
            raise ValueError("method 'prompt' needs a chat model (ctx.chat is None)")
        concept = ctx.task.concept(cid).description
        return self._fitted(cid, None, steer_vector=None, score="text", state={},
                            info={"concept": concept, "chat": getattr(ctx.chat, "name", type(ctx.chat).__name__),
                                  "scoring": "expected rating from choice probabilities"})

    def scores(self, ctx: Any, fitted: Fitted, which: str = "eval", idx: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Expected 0-2 rating per text (cached per text on the `Fitted`)."""
        frame = ctx.task.train if which == "train" else ctx.task.eval
        outputs = frame["output"].astype(str).tolist()
        idx = list(range(len(outputs))) if idx is None else [int(i) for i in idx]
        cache = fitted.state if isinstance(fitted.state, dict) else {}
        todo = sorted({i for i in idx if (which, i) not in cache})
        if todo:
            max_chars = self.params(ctx)["max_chars"]
            convs = [[{"role": "user", "content": JUDGE_PROMPT.format(
                concept=fitted.info["concept"], text=outputs[i][:max_chars])}] for i in todo]
            for i, r in zip(todo, rate(ctx.chat, convs), strict=True):
                cache[(which, i)] = r
        fitted.state = cache
        return np.array([cache[(which, i)] for i in idx], dtype=np.float64)


def rate(chat: Any, conversations: list[list[dict[str, str]]]) -> list[float]:
    """Expected 0-2 ratings of ``conversations`` from ``chat`` (choice probabilities, else parsed completions)."""
    import re

    choices = ["0", "1", "2"]
    levels = np.arange(3, dtype=np.float64)
    if hasattr(chat, "choice_probs_batch"):
        return [float(np.asarray(pr) @ levels) for pr in chat.choice_probs_batch(conversations, choices)]
    out = []
    for conv in conversations:
        probs = chat.choice_probs(conv, choices) if hasattr(chat, "choice_probs") else None
        if probs is not None:
            out.append(float(np.asarray(probs) @ levels))
            continue
        digits = re.findall(r"[0-2]", chat.complete(conv, max_tokens=16))
        out.append(float(digits[-1]) if digits else -1.0)
    return out


# ---- registry and export ---------------------------------------------------------------------------

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (DiffMean, PCA, LAT, LinearProbe, SteeringVector, ReFTr1, SAECriterion, SAEAuc, BagOfWords,
                PromptDetection, RandomDirection, CriterionOnly)
}
"""Registry name -> method class, in AxBench's table order (Criterion-only last)."""


def get_method(name: str, **options: Any) -> Method:
    """A method by registry name (case-insensitive) or display label, built with ``options``.

    Raises:
        ValueError: unknown name (the message lists the known ones) or a bad option.
    """
    key = str(name).strip().lower()
    by_label = {cls.label.lower(): cls for cls in METHODS.values()}
    cls = METHODS.get(key) or by_label.get(key)
    if cls is None:
        raise ValueError(f"unknown bench method {name!r}; known: {', '.join(METHODS)}")
    return cls(**options)


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
