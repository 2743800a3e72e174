"""SAE latents and criterion picks: SAE (§5.7), SAE-A (§5.8), Criterion-only, and `criterion_pick`.

SAE and Criterion-only share one description-only selection, `criterion_pick`: the concept's
description compiled over the task's unlabelled train outputs (`criterion_examples`, cached per
concept on the context), candidate features ranked by ``interpkit.rank`` on the pseudo-labelled
held-out half. SAE-A takes the latent with the best labelled train AUROC.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from ._base import (
    ELEMENTWISE,
    Fitted,
    Method,
    _memo,
    group_max,
    iter_token_chunks,
    pooled_scores,
    register_method,
    sae_pooled,
    unit,
)

__all__ = [
    "CriterionOnly",
    "SAEAuc",
    "SAECriterion",
    "criterion_examples",
    "criterion_pick",
    "neuron_maxpool",
    "sae_fitted",
]


@register_method
class SAECriterion(Method):
    """SAE (§5.7) with the latent chosen from the concept's description alone (no labels).

    Maths: latent ``f* = argmax_f rank score(max_t z_f(h_t))`` on the criterion's pseudo-labels; psi ``z_f*``.

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
    task_wide = True
    order = 7
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


@register_method
class SAEAuc(Method):
    """SAE-A (§5.8): the SAE latent whose max-pooled activation has the best train AUROC (labels used).

    Maths: ``f* = argmax_f AUROC(max_t z_f(h_t), y)`` on the labelled training texts; psi ``z_f*``.

    Every latent is scored on the concept's training texts (max over kept tokens of its
    activation, `sae_pooled`) and the arg-max AUROC against the labels is taken; then it behaves
    like `SAECriterion` (same ``latent_psi``).
    """

    name, label = "sae-a", "SAE-A"
    task_wide = True
    order = 8
    defaults: ClassVar[dict[str, Any]] = {"latent_psi": "encoder"}
    choices: ClassVar[dict[str, tuple[Any, ...]]] = {"latent_psi": ("encoder", "standalone")}

    def fit(self, ctx: Any, cid: int) -> Fitted:
        from interpkit.rank._stats import auroc

        t0 = time.perf_counter()
        standalone = self.params(ctx)["latent_psi"] == "standalone"
        idx, labels = ctx.train_split(cid)
        codes = sae_pooled(ctx, "train", standalone=standalone)[np.asarray(idx, dtype=np.int64)]
        # Picking the arg-max over d_sae latents on the training texts is a selection, so SAE-A's train AUROC is
        # optimistic; detection is reported on the eval rows, which the selection never saw. Signed, as in
        # AxBench: no latent is flipped, so one that fires on the negatives (AUROC < 0.5) is not preferred.
        aucs = np.nan_to_num(auroc(codes, np.asarray(labels, dtype=bool)), nan=0.0)
        f = int(np.argmax(aucs))
        fitted = sae_fitted(ctx, self, cid, f, standalone=standalone)
        fitted.info.update(train_auroc=float(aucs[f]), seconds=time.perf_counter() - t0)
        return fitted


@register_method
class CriterionOnly(Method):
    """Criterion-only: the top feature interpkit finds for the description, with no labels.

    Maths: ``argmax_c`` rank score on the held-out pseudo-labels, ``c`` ∈ neurons ∪ latents ∪ {pseudo DiffMean}.

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
    task_wide = True
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
        # Fold the SAE's fixed input scale into the vector: pre = (s·h)·W_enc[:, f] + b = h·(s·W_enc[:, f]) + b.
        # (constant_norm_rescale depends on each row's norm and is applied at scoring time instead.)
        if cfg.normalize_activations == "expected_average_only_in" and cfg.norm_scaling_factor is not None:
            scale = float(cfg.norm_scaling_factor)
        vec = sae.W_enc[:, f].float().cpu().numpy() * scale
        # b_enc[f] - b_dec·W_enc[:, f] when the SAE subtracts b_dec from its input (folded into the bias).
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
    # Steer along the decoder row (the latent's write direction) at unit norm, like the other methods'
    # vectors, so alpha = factor * max activation means the same thing for every method.
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
    # Pooled sd with equal class weights (the compiled classes are balanced).
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
    # Asymptotic null: with thousands of candidates (every latent and neuron) a permutation p-value is floored
    # at 1 / (1 + n_permutations), too coarse for BH, and the permutation pass would dominate the run time.
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
