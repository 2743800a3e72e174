"""`match_fingerprints` and `compare`: scored one-to-one matches with a null, saved as JSON + markdown.

The combined score of a pair is the weighted mean of the component scores the pair has (weights
renormalised over those components). Candidates come from `blocked_topk` over the weighted
concatenation of every component's normalised rows (its dot product is the weighted sum of the
component cosines), are rescored exactly, and assigned one-to-one (`assign_one_to_one`).

The null is the same scoring on shuffled pairings: ``null_samples`` random (left, right) pairs,
overall and per component. Each match gets ``null_z = (score - null mean) / null std`` and a
``confidence`` in [0, 1]: ``clip(margin / (2 * null std), 0, 1) * clip(null_z / 5, 0, 1)``,
where the margin is the score minus the runner-up (the best other candidate of either member; the
null mean when there is none). A match is *confident* when ``confidence >= 0.5``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> sigs = rng.normal(size=(30, 40))
    >>> left = [FeatureFingerprint(feature_id=f"L{i}", activation_signature=s) for i, s in enumerate(sigs)]
    >>> right = [FeatureFingerprint(feature_id=f"R{i}", activation_signature=s + 0.5 * rng.normal(size=40))
    ...          for i, s in enumerate(sigs)]
    >>> res = match_fingerprints(left, right, weights={"activation": 1.0})
    >>> res.accuracy({f"L{i}": f"R{i}" for i in range(30)}), res.null["mean"] < 0.1 < res.matches[0].null_z
    (1.0, True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._io import atomic_write_text

from ._assign import assign_one_to_one
from ._fingerprint import COMPONENTS, FeatureFingerprint, fingerprints_from_report
from ._similarity import MatchError, blocked_topk, combined_scores, component_data

MATCHES_KIND = "interpkit_matches"
SCHEMA_VERSION = 1
DEFAULT_WEIGHTS: dict[str, float] = {
    "activation": 1.0, "explanation": 0.5, "decoder": 0.5, "causal": 0.25, "examples": 0.25,
}
CONFIDENT = 0.5
"""``confidence`` at or above which a match counts as confident."""


def _num(x: Any) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@dataclass
class Match:
    """One assigned pair with its scores, null z-score, confidence and the two features' effects."""

    left_id: str
    right_id: str
    score: float
    components: dict[str, float | None]
    confidence: float
    null_z: float | None
    mutual: bool
    left_label: str | None = None
    right_label: str | None = None
    left_effect: float | None = None
    right_effect: float | None = None
    margin: float | None = None
    """Score minus the runner-up candidate of either member."""
    validated: bool | None = None
    validation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "left_id": self.left_id, "right_id": self.right_id, "score": _num(self.score),
            "components": {k: _num(v) for k, v in self.components.items()},
            "confidence": _num(self.confidence), "null_z": _num(self.null_z), "mutual": self.mutual,
            "margin": _num(self.margin), "left_label": self.left_label, "right_label": self.right_label,
            "left_effect": _num(self.left_effect), "right_effect": _num(self.right_effect),
            "validated": self.validated, "validation": self.validation,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Match:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise MatchError(f"match: unknown field(s) {unknown}")
        return cls(**dict(data))


@dataclass
class MatchResult:
    """Matches (best first), the weights used, the shuffled-pairing null and the settings."""

    matches: list[Match]
    weights: dict[str, float]
    """Weights as requested, over every component."""
    null: dict[str, Any]
    """``mean``, ``std``, ``n`` of the combined score on shuffled pairs, and ``components`` (same, each)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """top_k, min_score, seed, sides, components used and skipped (with reasons), renormalised weights."""

    def confident(self, threshold: float = CONFIDENT) -> list[Match]:
        """Matches whose confidence is at least ``threshold``."""
        return [m for m in self.matches if m.confidence >= threshold]

    def accuracy(self, truth: Mapping[str, str]) -> float:
        """Fraction of ``truth``'s left ids matched to their true right id (unmatched count as wrong)."""
        got = {m.left_id: m.right_id for m in self.matches}
        return float(np.mean([got.get(k) == v for k, v in truth.items()])) if truth else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": MATCHES_KIND, "schema_version": SCHEMA_VERSION,
            "weights": dict(self.weights), "null": _clean(self.null), "settings": _clean(self.settings),
            "n_matches": len(self.matches), "n_confident": len(self.confident()),
            "matches": [m.to_dict() for m in self.matches],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchResult:
        if data.get("kind") != MATCHES_KIND:
            raise MatchError(f"not a matches file: kind {data.get('kind')!r}, expected {MATCHES_KIND!r}")
        return cls(matches=[Match.from_dict(m) for m in data.get("matches", [])], weights=dict(data["weights"]),
                   null=dict(data["null"]), settings=dict(data.get("settings", {})))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_markdown(self, limit: int = 50) -> str:
        from ._markdown import render_matches

        return render_matches(self, limit=limit)

    def save(self, out: str | Path) -> Path:
        """Write ``out`` (JSON) and the markdown beside it (same stem, ``.md``) atomically; return the JSON path.

        ``out`` may be a folder: then ``matches.json`` and ``matches.md`` go inside it.
        """
        path = Path(out)
        if path.suffix.lower() != ".json":
            path = path / "matches.json"
        text_json, text_md = self.to_json(), self.to_markdown()
        atomic_write_text(path.with_suffix(".md"), text_md)
        atomic_write_text(path, text_json)
        return path


def _clean(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return _num(value)
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def parse_weights(weights: Mapping[str, float] | str | None) -> dict[str, float]:
    """Weights from a mapping or ``"activation=1,explanation=0.5"`` (None: `DEFAULT_WEIGHTS`).

    Given weights name the components to use: components they leave out get weight 0.
    """
    if weights is None:
        return dict(DEFAULT_WEIGHTS)
    if isinstance(weights, str):
        parsed: dict[str, float] = {}
        for item in filter(None, (w.strip() for w in weights.split(","))):
            name, sep, value = item.partition("=")
            try:
                parsed[name.strip()] = float(value)
            except ValueError:
                raise MatchError(f"weights: {item!r} is not name=number (e.g. activation=1,explanation=0.5)") from None
            if not sep:
                raise MatchError(f"weights: {item!r} is not name=number (e.g. activation=1,explanation=0.5)")
        weights = parsed
    unknown = sorted(set(weights) - set(COMPONENTS))
    if unknown:
        raise MatchError(f"weights: unknown component(s) {unknown}; expected some of {list(COMPONENTS)}")
    bad = {k: v for k, v in weights.items() if not (math.isfinite(float(v)) and float(v) >= 0)}
    if bad:
        raise MatchError(f"weights must be finite and >= 0, got {bad}")
    out = {c: float(weights.get(c, 0.0)) for c in COMPONENTS}
    if not any(out.values()):
        raise MatchError("weights: every component has weight 0")
    return out


def _null(data: dict, weights: dict[str, float], n_left: int, n_right: int, n: int,
          rng: np.random.Generator) -> dict[str, Any]:
    n = int(min(n, n_left * n_right))
    # Random (left, right) pairs are almost all non-matches (a true pair turns up with probability ~1/n_right),
    # so their scores estimate what an unrelated pair scores, including any baseline similarity that all
    # features of the two models share. No distributional assumption is made beyond using mean and std.
    li = rng.integers(0, n_left, size=n)
    # Each right feature appears about n / n_right times, so a few hub features cannot dominate the null.
    ri = rng.permutation(np.resize(rng.permutation(n_right), n))  # shuffled pairing of the right side
    score, per = combined_scores(data, weights, li, ri)

    def stats(x: np.ndarray) -> dict[str, Any]:
        x = x[~np.isnan(x)]
        return {"mean": float(x.mean()) if len(x) else None, "std": float(x.std(ddof=1)) if len(x) > 1 else None,
                "n": len(x)}

    return {**stats(score), "components": {k: stats(v) for k, v in per.items()}}


def _usable_components(left: Sequence[FeatureFingerprint], right: Sequence[FeatureFingerprint],
                       weights: Mapping[str, float] | str | None, where: str) -> tuple[dict, dict, dict, dict]:
    """(parsed weights, aligned data of the components both sides have, why others were skipped,
    weights renormalised over the usable components)."""
    w = parse_weights(weights)
    data, skipped = component_data(left, right, [c for c in COMPONENTS if w[c] > 0])
    if not data:
        raise MatchError(f"{where}: no component usable on both sides ({skipped})")
    total = sum(w[c] for c in data)
    return w, data, skipped, {c: w[c] / total for c in data}


@dataclass(frozen=True)
class SimilarityMatrices:
    """Every pair's scores as dense ``[n_left, n_right]`` matrices (NaN where a pair lacks a score)."""

    combined: np.ndarray
    """The combined score, as `match_fingerprints` scores its candidates."""
    components: dict[str, np.ndarray]
    """Per usable component (in `COMPONENTS` order), its pair scores."""
    weights: dict[str, float]
    """The weights used, renormalised over the usable components."""
    skipped: dict[str, str]
    """Components left out, and why."""


def similarity_matrices(
    left: Sequence[FeatureFingerprint],
    right: Sequence[FeatureFingerprint],
    *,
    weights: Mapping[str, float] | str | None = None,
) -> SimilarityMatrices:
    """The combined and per-component similarity of every (left, right) pair.

    The scores are the ones `match_fingerprints` computes for its candidates, for all ``n x m``
    pairs at once: memory grows with ``n * m`` per component, so this is for views of feature
    subsets (the ``FingerprintHeatmap`` widget); the matcher itself never builds it.

    Args:
        left: fingerprints of one side.
        right: fingerprints of the other.
        weights: per-component weights (as `match_fingerprints` takes them); default `DEFAULT_WEIGHTS`.

    Raises:
        MatchError: bad weights, or no component usable on both sides.
    """
    _, data, skipped, used = _usable_components(left, right, weights, "similarity_matrices")
    n, m = len(left), len(right)
    score, per = combined_scores(data, used, np.repeat(np.arange(n), m), np.tile(np.arange(m), n))
    return SimilarityMatrices(combined=score.reshape(n, m), components={c: s.reshape(n, m) for c, s in per.items()},
                              weights=used, skipped=skipped)


def match_fingerprints(
    left: Sequence[FeatureFingerprint],
    right: Sequence[FeatureFingerprint],
    *,
    weights: Mapping[str, float] | str | None = None,
    top_k: int = 10,
    min_score: float | None = None,
    null_samples: int = 2000,
    seed: int = 0,
    block: int = 2048,
) -> MatchResult:
    """Match two sets of fingerprints one-to-one.

    Args:
        left: fingerprints of one model's features.
        right: the other model's (any number: widths may differ).
        weights: per-component weights (mapping or ``"activation=1,explanation=0.5"``); default
            `DEFAULT_WEIGHTS`. A component absent on either side is skipped and the remaining
            weights renormalised; ``settings["skipped_components"]`` says why.
        top_k: candidates per left feature.
        min_score: pairs scoring below this are never matched.
        null_samples: shuffled pairs scored for the null.
        seed: seed of the null's shuffles.
        block: rows per block in the candidate search.

    Raises:
        MatchError: an empty side, duplicate ids, bad weights, no component usable on both sides.
    """
    if not left or not right:
        raise MatchError(f"match_fingerprints: need fingerprints on both sides, got {len(left)} left, {len(right)} right")
    for side, fps in (("left", left), ("right", right)):
        ids = [fp.feature_id for fp in fps]
        if len(set(ids)) != len(ids):
            dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
            raise MatchError(f"match_fingerprints: {side} feature ids repeat: {dup}")
    w, data, skipped, used = _usable_components(left, right, weights, "match_fingerprints")
    wanted = [c for c in COMPONENTS if w[c] > 0]
    # candidate search on the weighted concatenation (dot = weighted sum of component cosines)
    # With unit-normalised component rows, scaling each block by sqrt(w_c) makes the dot product of the
    # concatenations sum_c w_c cos_c: one matrix product finds candidates for all components at once. It
    # differs from the combined score when a pair lacks a component (the combined score renormalises over
    # those present) and for the size-aware causal term, so the candidates are rescored exactly below.
    lcat = np.concatenate([math.sqrt(used[c]) * data[c].left for c in data], axis=1)
    rcat = np.concatenate([math.sqrt(used[c]) * data[c].right for c in data], axis=1)
    idx, _ = blocked_topk(lcat, rcat, top_k, block=block, center=False, normalize=False)
    del lcat, rcat
    li = np.repeat(np.arange(len(left)), idx.shape[1])
    score, _ = combined_scores(data, used, li, idx.reshape(-1))
    sim = np.where(np.isnan(score), -np.inf, score).reshape(idx.shape)
    pairs = assign_one_to_one(idx, sim, len(right), min_score=min_score)
    null = _null(data, used, len(left), len(right), null_samples, np.random.default_rng(seed))
    mean, std = null["mean"] or 0.0, null["std"]
    pl = np.array([p.left for p in pairs], dtype=np.int64)
    pr = np.array([p.right for p in pairs], dtype=np.int64)
    _, per = combined_scores(data, used, pl, pr)
    matches = []
    for t, p in enumerate(pairs):
        # confidence = separation from the runner-up (in units of null spread, saturating at 2 std) times
        # separation from chance (saturating at z = 5): high only when the match is both unambiguous and far
        # above what unrelated pairs score. Without a runner-up the null mean stands in for it.
        runner = p.runner_up if math.isfinite(p.runner_up) else mean
        margin = p.score - runner
        z = (p.score - mean) / std if std else None
        conf = 0.0
        if std:
            conf = float(np.clip(margin / (2 * std), 0, 1) * np.clip((z or 0.0) / 5.0, 0, 1))
        a, b = left[p.left], right[p.right]
        matches.append(Match(
            left_id=a.feature_id, right_id=b.feature_id, score=p.score,
            components={c: (_num(per[c][t]) if c in per else None) for c in wanted},
            confidence=conf, null_z=z, mutual=p.mutual, margin=margin,
            left_label=a.label, right_label=b.label, left_effect=a.primary_effect, right_effect=b.primary_effect,
        ))
    settings = {
        "top_k": top_k, "min_score": min_score, "null_samples": null_samples, "seed": seed,
        "left": {"n_features": len(left), "models": sorted({fp.model for fp in left if fp.model})},
        "right": {"n_features": len(right), "models": sorted({fp.model for fp in right if fp.model})},
        "components_used": list(data), "weights_used": used,
        "aligned_dims": {c: d.keys for c, d in data.items()},
        "skipped_components": skipped,
        "confident_threshold": CONFIDENT,
    }
    return MatchResult(matches=matches, weights=w, null=null, settings=settings)


def compare(
    left_report: Any,
    right_report: Any,
    out: str | Path | None = None,
    *,
    left_table: Any = None,
    right_table: Any = None,
    encoder: Any = None,
    **kw: Any,
) -> MatchResult:
    """Match the features of two reports (or report paths); write matches.json + matches.md when ``out``.

    Args:
        left_report: a `Report` or a ``report.json`` path (or its folder).
        right_report: the other one.
        out: a ``.json`` path (the markdown goes beside it) or a folder.
        left_table: the left report's `FeatureTable` (or saved folder) for full activation signatures.
        right_table: the same for the right report.
        encoder: a sentence encoder for explanation embeddings (e.g. ``interpkit.models.sentence_encoder()``).
        **kw: passed to `match_fingerprints` (``weights``, ``top_k``, ``min_score``, ``null_samples``, ``seed``).

    Example:
        >>> import interpkit  # doctest: +SKIP
        >>> res = interpkit.compare("A/report.json", "B/report.json", out="matches.json")  # doctest: +SKIP
    """
    left = fingerprints_from_report(left_report, table=left_table, encoder=encoder)
    right = fingerprints_from_report(right_report, table=right_table, encoder=encoder)
    result = match_fingerprints(left, right, **kw)
    for side, rep in (("left", left_report), ("right", right_report)):
        result.settings[side]["report"] = str(getattr(rep, "path", None) or rep) if not hasattr(rep, "features") \
            else (str(rep.path) if rep.path else None)
    if out is not None:
        result.save(out)
    return result
