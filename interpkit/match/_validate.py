"""Validate matches by intervening on both models: does each side's feature move the criterion alike?

A similarity score says two features *look* alike; `validate_matches` tests whether they *act*
alike. For each of the top matches it edits the left model with the left feature and the right
model with the right feature (`~interpkit.causal.run_interventions`: ``steer`` adds the direction,
``ablate`` projects it out) on the SAME held-out prompts, and measures the change of the shared
criterion metric (e.g. `~interpkit.causal.LogitTargetMetric`, next-token mass on target tokens).
Each edit is compared with ``n_controls`` random directions of the same norm at the same site.

Steering strengths compare across models only in each site's own units, so by default
(``scale="site_norm"``) every direction is rescaled to ``strength`` x the median token norm of
its site over the prompts; ``scale="as_given"`` uses the vectors as given.

Decision rule (`ValidationRule`), per intervention kind, with ``e`` the mean metric change over
the prompts and ``c`` the largest absolute change among that feature's controls:

- a side has an effect when ``|e| > control_factor * c`` and ``|e| > min_effect``; otherwise
  ``left_no_effect`` / ``right_no_effect`` (then sign and size are not judged: noise has no sign);
- with both effects present, ``sign_mismatch`` when their signs differ, else ``size_mismatch``
  when ``|e_left| / |e_right|`` lies outside ``[1 / size_ratio, size_ratio]``;
- a match is validated when no kind gives a reason. A top match whose features are missing gets
  ``not_run`` and ``validated=None`` (not tested), as do matches beyond ``top_n`` (untouched).

Example:
    >>> rule = ValidationRule(size_ratio=3.0)
    >>> left = SideEffect(effect=0.20, controls=(0.01, -0.02))
    >>> right = SideEffect(effect=0.12, controls=(0.03,))
    >>> decide(left, right, rule)
    ()
    >>> decide(left, SideEffect(effect=-0.12, controls=(0.03,)), rule)
    ('sign_mismatch',)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

if TYPE_CHECKING:
    from interpkit.causal import CausalFeature, CriterionMetric

    from ._compare import MatchResult

__all__ = [
    "REASONS",
    "SideEffect",
    "ValidationRule",
    "decide",
    "median_token_norm",
    "orthogonal_controls",
    "target_tokens_from_contrast",
    "validate_matches",
]

REASONS = ("sign_mismatch", "left_no_effect", "right_no_effect", "size_mismatch", "not_run")
"""Reason codes a failed (or untested) validation carries."""
Scale = Literal["site_norm", "as_given"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationRule:
    """When two measured effects count as the same effect."""

    size_ratio: float = 3.0
    """Largest allowed ``|e_left| / |e_right|`` (and its inverse)."""
    control_factor: float = 1.0
    """An effect must exceed this many times the largest absolute control effect."""
    min_effect: float = 0.0
    """An effect must also exceed this absolute size (metric units)."""

    def __post_init__(self) -> None:
        if not self.size_ratio >= 1.0:
            raise ValueError(f"size_ratio must be >= 1, got {self.size_ratio}")
        if self.control_factor < 0 or self.min_effect < 0:
            raise ValueError("control_factor and min_effect must be >= 0")

    def to_dict(self) -> dict[str, float]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True, kw_only=True)
class SideEffect:
    """One side's measured effect of one intervention kind (not a side effect in the causal sense)."""

    effect: float
    """Mean change of the metric over the prompts (edited minus baseline)."""
    controls: tuple[float, ...] = ()
    """The same mean change for each random same-norm control direction."""
    stderr: float = 0.0
    """Standard error of ``effect`` over the prompts."""
    norm: float | None = None
    """Norm of the vector added (steering) or of the direction (ablation)."""

    @property
    def control_max(self) -> float:
        """Largest absolute control effect (0 without controls)."""
        return max((abs(c) for c in self.controls), default=0.0)

    def has_effect(self, rule: ValidationRule) -> bool:
        """Whether the effect stands beyond its controls and the absolute floor."""
        size = abs(self.effect)
        # Same-norm random controls at the same site are the yardstick: any edit of that size perturbs the
        # model (and so the metric) somewhat; only an effect beyond the largest control is specific to the
        # direction. The max (not the mean) of the controls is deliberately conservative.
        return size > rule.control_factor * self.control_max and size > rule.min_effect

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (with ``control_max``)."""
        return {"effect": self.effect, "stderr": self.stderr, "controls": list(self.controls),
                "control_max": self.control_max, "norm": self.norm}


def decide(left: SideEffect, right: SideEffect, rule: ValidationRule) -> tuple[str, ...]:
    """Reason codes for one intervention kind (empty: the two effects agree)."""
    reasons = []
    if not left.has_effect(rule):
        reasons.append("left_no_effect")
    if not right.has_effect(rule):
        reasons.append("right_no_effect")
    if reasons:
        return tuple(reasons)
    if np.sign(left.effect) != np.sign(right.effect):
        return ("sign_mismatch",)
    # A ratio band [1/r, r] is symmetric in the two sides; it presumes comparable edit sizes (scale='site_norm').
    ratio = abs(left.effect) / abs(right.effect)
    if not 1.0 / rule.size_ratio <= ratio <= rule.size_ratio:
        return ("size_mismatch",)
    return ()


def median_token_norm(model: Any, texts: Sequence[str], site: str, *, batch_size: int = 16) -> float:
    """Median L2 norm of the activations at ``site`` over every real token of ``texts``.

    The median, not the mean: attention-sink tokens reach norms hundreds of times the rest.
    """
    import torch

    norms = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenize(list(texts[start : start + batch_size]))
            acts = model.capture(batch, site)[site].float().cpu()
            norms.append(acts[batch.attention_mask.cpu().bool()].norm(dim=-1))
    if not norms:
        raise ValueError("median_token_norm needs at least one text")
    return float(torch.cat(norms).median())


def target_tokens_from_contrast(model: Any, positives: Sequence[str], negatives: Sequence[str], *,
                                k: int = 20, min_texts: int = 3) -> tuple[str, ...]:
    """Tokens over-represented in ``positives``: target tokens for a concept's logit metric.

    A concept ("C/C++ syntax", "biographical information") has no target tokens of its own; the
    tokens of its example texts that occur in many positive texts and few negative ones stand in.
    Ranked by the smoothed log-odds of occurring in a positive vs a negative text; only tokens in
    at least ``min_texts`` positive texts, and only those whose decoded string tokenizes back to
    the same first id (`~interpkit.causal.LogitTargetMetric` re-tokenizes its targets).

    Raises:
        ValueError: no token qualifies.
    """
    tok = model.tokenizer

    def doc_freq(texts: Sequence[str]) -> dict[int, int]:
        counts: dict[int, int] = {}
        for text in texts:
            for i in set(tok(text, add_special_tokens=False)["input_ids"]):
                counts[int(i)] = counts.get(int(i), 0) + 1
        return counts

    pos, neg = doc_freq(positives), doc_freq(negatives)
    n_pos, n_neg = len(positives), len(negatives)
    scored = []
    for i, c in pos.items():
        if c < min_texts:
            continue
        # Log odds ratio of "token occurs in the text" between positives and negatives, with the +0.5
        # (Haldane-Anscombe) correction so a token absent from every negative gets a large but finite score.
        # Document frequency (not counts) keeps one repetitive text from promoting its tokens.
        lo = np.log((c + 0.5) / (n_pos - c + 0.5)) - np.log((neg.get(i, 0) + 0.5) / (n_neg - neg.get(i, 0) + 0.5))
        scored.append((-lo, i))
    out: list[str] = []
    for _, i in sorted(scored):
        text = tok.decode([i])
        ids = tok(text, add_special_tokens=False)["input_ids"] if text.strip() else []
        if ids and int(ids[0]) == i and text not in out:
            out.append(text)
        if len(out) == k:
            break
    if not out:
        raise ValueError(f"no token occurs in at least {min_texts} of the {n_pos} positive texts")
    return tuple(out)


def _feature_map(features: Any) -> dict[str, CausalFeature]:
    from interpkit.causal import CausalFeature

    if hasattr(features, "vectors") and hasattr(features, "names"):  # a DirectionSet
        return {n: CausalFeature(feature_id=n, site=features.site, direction=v)
                for n, v in zip(features.names, features.vectors, strict=True)}
    if isinstance(features, Mapping):
        return dict(features)
    return {f.feature_id: f for f in features}


def _rescaled(feature: CausalFeature, norm: float, d_model: int) -> CausalFeature:
    from interpkit.causal import CausalFeature

    v = feature.vector(d_model)
    return CausalFeature(feature_id=feature.feature_id, site=feature.site,
                         direction=v / np.linalg.norm(v) * norm)


def orthogonal_controls(feature: CausalFeature, n: int, *, d_model: int, seed: int = 0) -> list[CausalFeature]:
    """``n`` random directions orthogonal to ``feature``'s vector, with its norm, at its site.

    Orthogonal, unlike `~interpkit.causal.control_features`: in a narrow model a random direction
    overlaps the feature (cosine ~ ``1 / sqrt(d_model)``) and would carry part of its effect.
    """
    from interpkit.causal import CausalFeature

    v = feature.vector(d_model).astype(np.float64)
    unit = v / np.linalg.norm(v)
    # A deterministic key from the id (Python's hash() is salted per process), so the controls of a feature
    # are the same in every run and differ between features.
    key = sum(ord(c) * (i + 1) for i, c in enumerate(feature.feature_id)) % (2**31)
    rng = np.random.default_rng([seed, key, 0x0C7A])
    out = []
    for k in range(n):
        r = rng.standard_normal(d_model)
        # Gram-Schmidt against the feature: a control then carries none of the feature's own direction.
        r -= (r @ unit) * unit
        out.append(CausalFeature(feature_id=f"{feature.feature_id}::control{k}", site=feature.site,
                                 direction=(r / np.linalg.norm(r) * np.linalg.norm(v)).astype(np.float32),
                                 control_of=feature.feature_id))
    return out


def _measure(model: Any, features: list[CausalFeature], prompts: Sequence[str], negatives: Sequence[str],
             metric: CriterionMetric, *, kinds: Sequence[str], strength: float, scale: str, n_controls: int,
             seed: int, batch_size: int) -> dict[tuple[str, str], SideEffect]:
    """One `SideEffect` per (feature id, kind) on one model."""
    from interpkit.causal import run_interventions

    d_model = int(model.d_model)
    if scale == "site_norm":
        # Rescale to strength x the site's median token norm: residual norms differ widely between models and
        # layers, so "the same edit" on both sides means the same size relative to each site's activations.
        norms = {s: median_token_norm(model, prompts, s, batch_size=batch_size) for s in {f.site for f in features}}
        features = [_rescaled(f, norms[f.site], d_model) for f in features]
    edited = [g for f in features for g in (f, *orthogonal_controls(f, n_controls, d_model=d_model, seed=seed))]
    records = run_interventions(model, edited, list(prompts), list(negatives), metric, kinds=kinds,
                                strength=strength, n_controls=0, batch_size=batch_size)
    deltas: dict[tuple[str, str, str], list[float]] = {}
    for r in records:
        owner = r.feature_id.split("::control")[0]
        deltas.setdefault((owner, r.intervention, r.feature_id), []).append(r.intervention_score - r.baseline_score)
    vectors = {f.feature_id: f for f in features}
    out: dict[tuple[str, str], SideEffect] = {}
    for (owner, kind, fid), values in deltas.items():
        if fid != owner:
            continue
        d = np.asarray(values, dtype=float)
        controls = tuple(float(np.mean(v)) for (o, k, c), v in deltas.items() if o == owner and k == kind and c != owner)
        norm = float(np.linalg.norm(vectors[owner].vector(d_model)))
        out[owner, kind] = SideEffect(effect=float(d.mean()), controls=controls,
                                      stderr=float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0,
                                      norm=norm * (abs(strength) if kind in ("steer", "amplify") else 1.0))
    return out


def validate_matches(
    result: MatchResult,
    left_model: Any,
    right_model: Any,
    left_features: Any,
    right_features: Any,
    prompts: Sequence[str],
    metric: CriterionMetric | tuple[CriterionMetric, CriterionMetric],
    *,
    top_n: int = 5,
    negatives: Sequence[str] = (),
    kinds: Sequence[str] = ("steer",),
    strength: float = 1.0,
    scale: Scale = "site_norm",
    n_controls: int = 4,
    rule: ValidationRule | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> MatchResult:
    """A copy of ``result`` whose top matches carry ``validated`` and ``validation``.

    Args:
        result: the matches (`~interpkit.match.match_fingerprints` or `~interpkit.match.compare`).
        left_model: the left side's ``ModelWrapper``.
        right_model: the right side's ``ModelWrapper`` (may be the same model: two sites).
        left_features: the left features to edit, by the match's ``left_id``: a mapping id ->
            `~interpkit.causal.CausalFeature`, a sequence of them, or a
            `~interpkit.sources.DirectionSet`.
        right_features: the same for the right side.
        prompts: held-out prompts, run through both models.
        metric: the shared criterion metric, or one per side (``(left, right)``) when it must be
            built per model; both must measure the same criterion in the same units.
        top_n: validate the ``top_n`` highest-scoring matches.
        negatives: prompts where the criterion should not hold (only the records' side-effect
            score uses them; empty skips that cost).
        kinds: intervention kinds: ``steer`` (add the direction) and/or ``ablate`` (project it out).
        strength: steering strength: a multiple of the site's median token norm (``site_norm``)
            or of the vector as given (``as_given``); negative steers away.
        scale: ``"site_norm"`` or ``"as_given"`` (see the module docstring).
        n_controls: random same-norm control directions per feature and kind (at least 1).
        rule: the decision rule (default `ValidationRule()`).
        seed: seeds the control directions.
        batch_size: prompts per forward pass.

    Returns:
        A new `~interpkit.match.MatchResult`; matches keep their order. Each validated top match
        has ``validation = {"validated", "reasons", "kinds": {kind: {"left", "right", "ratio",
        "reasons"}}, "rule", "strength", "scale", "n_prompts", "metric", ...}``.

    Raises:
        ValueError: no prompts, ``n_controls < 1``, an unknown ``scale``, or ``top_n < 1``.
    """
    if not prompts:
        raise ValueError("validate_matches needs at least one held-out prompt")
    if n_controls < 1:
        raise ValueError(f"n_controls must be >= 1 (controls are the no-effect yardstick), got {n_controls}")
    if scale not in get_args(Scale):
        raise ValueError(f"scale must be one of {get_args(Scale)}, got {scale!r}")
    if top_n < 1:
        raise ValueError(f"top_n must be >= 1, got {top_n}")
    from interpkit.records import canonical_intervention

    rule = rule or ValidationRule()
    left_metric, right_metric = metric if isinstance(metric, tuple) else (metric, metric)
    lmap, rmap = _feature_map(left_features), _feature_map(right_features)
    order = sorted(range(len(result.matches)), key=lambda i: -float(result.matches[i].score))[:top_n]
    chosen = [result.matches[i] for i in order]
    runnable = [m.left_id in lmap and m.right_id in rmap for m in chosen]
    run = [m for m, ok in zip(chosen, runnable, strict=True) if ok]
    common = {"kinds": list(kinds), "strength": float(strength), "scale": scale, "n_controls": n_controls,
              "n_prompts": len(prompts), "metric": getattr(left_metric, "criterion", None), "rule": rule.to_dict()}
    measured: dict[str, dict[tuple[str, str], SideEffect]] = {}
    for side, model, fmap, met, ids in (("left", left_model, lmap, left_metric, [m.left_id for m in run]),
                                        ("right", right_model, rmap, right_metric, [m.right_id for m in run])):
        feats = [fmap[i] for i in dict.fromkeys(ids)]
        measured[side] = _measure(model, feats, prompts, negatives, met, kinds=kinds, strength=strength,
                                  scale=scale, n_controls=n_controls, seed=seed, batch_size=batch_size) if feats else {}
    new = list(result.matches)
    for i, m, ok in zip(order, chosen, runnable, strict=True):
        if not ok:
            missing = [f"{side} feature {fid!r}" for side, fid, fmap in
                       (("left", m.left_id, lmap), ("right", m.right_id, rmap)) if fid not in fmap]
            info = {**common, "validated": None, "reasons": ["not_run"], "detail": "no " + " and no ".join(missing)}
            new[i] = dataclasses.replace(m, validated=None, validation=info)
            continue
        per_kind, reasons = {}, []
        for kind in kinds:
            k = canonical_intervention(kind)
            left, right = measured["left"][m.left_id, k], measured["right"][m.right_id, k]
            why = decide(left, right, rule)
            reasons.extend(r for r in why if r not in reasons)
            ratio = abs(left.effect) / abs(right.effect) if right.effect else None
            per_kind[k] = {"left": left.to_dict(), "right": right.to_dict(), "ratio": ratio, "reasons": list(why)}
        info = {**common, "validated": not reasons, "reasons": reasons, "kinds": per_kind}
        new[i] = dataclasses.replace(m, validated=not reasons, validation=info)
    return dataclasses.replace(result, matches=new)
