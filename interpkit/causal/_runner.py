"""Run edits on features and write one `InterventionRecord` per (feature, kind, positive prompt).

A `CausalFeature` is a site plus either a direction (``[d_model]`` vector) or a neuron index. Its
edits:

- ``steer``/``amplify``: ``AddVector(site, direction, strength)`` (a neuron steers along its basis
  vector);
- ``ablate``: a direction is projection-ablated (``Clamp(site, direction=v, value=c)``: the
  component along the unit direction is set to ``c``: 0 for ``ablate_mode="zero"``, the mean
  projection for ``"mean"``); a neuron gets ``Ablate(site, dims=(i,), mode=...)``.

Scores: the criterion effect is measured on POSITIVE prompts (``baseline_score`` and
``intervention_score`` are the metric without and with the edit, one record per prompt). The
``side_effect_score`` of every record of an edit is measured on NEGATIVE prompts: the mean total
variation distance ``0.5 * sum_v |p(v) - q(v)|`` between the baseline and edited next-token
distributions (0 = nothing changed, 1 = disjoint). It is in probability units, like the logit
metric, and it counts both a criterion rise where the criterion should not hold and any other
disruption of the next-token prediction.

Controls: for each feature, kind and control kind (``controls=``: ``random``, the default,
``matched_frequency``, ``placebo``; defined in `interpkit.causal._controls`), ``n_controls``
controls at the same site get the same edit. They are written as features of their own,
``"<feature>::control<k>"`` (random) or ``"<feature>::<control kind><k>"``, with extras
``control: true``, ``control_of: <feature>`` and ``control_kind``; the ranking's causal component
requires a feature to beat every control kind it was measured against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from interpkit.records import InterventionRecord, canonical_intervention

from ._metric import CriterionMetric, next_token_probs

if TYPE_CHECKING:
    import torch

    from interpkit.sources import PromptRow

__all__ = [
    "CausalFeature",
    "EditOutcome",
    "control_features",
    "measure_edit",
    "neuron_feature",
    "run_interventions",
    "site_mean",
]

_NEURON_ID = re.compile(r"^(?P<site>.+):n(?P<index>\d+)$")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class CausalFeature:
    """A feature the runner can edit: a direction or a neuron at one site."""

    feature_id: str
    """The id written into the records."""
    site: str
    """Canonical site name (``"layer15.resid_post"``)."""
    direction: np.ndarray | None = None
    """``[d_model]`` vector (used as given for steering); exactly one of direction / neuron."""
    neuron: int | None = None
    """Hidden dimension index at ``site``."""
    control_of: str | None = None
    """For a control: the id of the feature it controls."""
    control_kind: str | None = None
    """For a control: ``random``, ``matched_frequency`` or ``placebo`` (None reads as random)."""

    def __post_init__(self) -> None:
        if (self.direction is None) == (self.neuron is None):
            raise ValueError(f"feature {self.feature_id!r} needs exactly one of direction= or neuron=")
        if self.direction is not None:
            v = np.asarray(self.direction, dtype=np.float32).reshape(-1)
            if not np.isfinite(v).all() or not np.linalg.norm(v) > 0:
                raise ValueError(f"feature {self.feature_id!r}: direction must be finite and non-zero")
            object.__setattr__(self, "direction", v)

    @property
    def is_control(self) -> bool:
        """True for a random control feature."""
        return self.control_of is not None

    def vector(self, d_model: int) -> np.ndarray:
        """The feature's write direction (a neuron's is its basis vector)."""
        if self.direction is not None:
            return self.direction
        v = np.zeros(d_model, dtype=np.float32)
        v[int(self.neuron)] = 1.0
        return v

    def edit(self, kind: str, *, d_model: int, strength: float = 1.0, mean: Any = None) -> Any:
        """The models-layer edit for ``kind`` (``steer``/``amplify`` or ``ablate``).

        Args:
            kind: intervention kind.
            d_model: the site's width.
            strength: steering strength.
            mean: ``[d_model]`` mean activation at the site for mean ablation (None: zero ablation).
        """
        import torch

        from interpkit.models import Ablate, AddVector, Clamp

        kind = canonical_intervention(kind)
        if kind in ("steer", "amplify"):
            return AddVector(self.site, torch.from_numpy(self.vector(d_model).copy()), strength=float(strength))
        if kind == "ablate":
            if self.neuron is not None:
                if mean is None:
                    return Ablate(self.site, mode="zero", dims=(int(self.neuron),))
                return Ablate(self.site, mode="mean", mean=torch.as_tensor(mean, dtype=torch.float32),
                              dims=(int(self.neuron),))
            # Projection ablation removes only the feature's component (x <- x - (x·u - c) u) and leaves the rest of
            # the residual intact; zeroing the whole site would destroy far more than the feature.
            v = torch.from_numpy(self.direction.copy())
            value = 0.0
            if mean is not None:
                unit = v / v.norm()
                # Mean ablation sets the component to its average value instead of 0: 0 may lie far outside the
                # direction's usual range (an off-distribution input), while the mean removes only the variation.
                value = float(torch.as_tensor(mean, dtype=torch.float32) @ unit)
            return Clamp(self.site, direction=v, value=value)
        raise ValueError(f"intervention kind {kind!r} is not supported by the runner; use steer, amplify or ablate")


def neuron_feature(feature_id: str) -> CausalFeature:
    """A neuron feature from a ``neuron_table`` id ``"<site>:n<i>"``.

    Raises:
        ValueError: the id is not of that form.
    """
    m = _NEURON_ID.match(str(feature_id))
    if m is None:
        raise ValueError(f"{feature_id!r} is not a neuron feature id ('<site>:n<index>')")
    return CausalFeature(feature_id=str(feature_id), site=m["site"], neuron=int(m["index"]))


def control_features(feature: CausalFeature, n: int, *, d_model: int, seed: int = 0) -> list[CausalFeature]:
    """``n`` random directions with the norm of ``feature``'s vector, at its site (seeded by id).

    Same norm, same site, random direction: a steering control moves the residual exactly as far, so an
    effect the feature shares with its controls comes from the edit's size, not its direction. The other
    control kinds are in `interpkit.causal._controls`.
    """
    from ._controls import random_controls

    return random_controls(feature, n, d_model=d_model, seed=seed)


def site_mean(model: Any, texts: Sequence[str], site: str, *, batch_size: int = 16) -> np.ndarray:
    """Mean activation ``[d_model]`` at ``site`` over every real token of ``texts``."""
    import torch

    # Accumulated over batches (never holding every token), masked to real tokens so padding does not
    # pull the mean towards the pad embedding.
    total = None
    count = 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenize(list(texts[start : start + batch_size]))
            acts = model.capture(batch, site)[site].float().cpu()
            mask = batch.attention_mask.cpu().bool()
            rows = acts[mask]
            total = rows.sum(0) if total is None else total + rows.sum(0)
            count += rows.shape[0]
    if total is None or count == 0:
        raise ValueError("site_mean needs at least one text")
    return (total / count).numpy()


@dataclass(frozen=True, slots=True)
class EditOutcome:
    """Scores of one edit: positives' metric and the negatives' mean TV distance."""

    scores: np.ndarray
    """Metric on each positive prompt under the edit."""
    side_effect: float | None
    """Mean total-variation distance on the negatives (None without negatives)."""


class _Baseline:
    def __init__(self, model: Any, metric: CriterionMetric, pos: Sequence[str], neg: Sequence[str], batch_size: int):
        self.model, self.metric, self.pos, self.neg, self.batch_size = model, metric, list(pos), list(neg), batch_size
        # Baselines are measured once and shared by every edit and control, so all records compare with the same
        # unedited run.
        self.scores = _score(model, metric, self.pos, batch_size)
        self.neg_probs = next_token_probs(model, self.neg, batch_size=batch_size) if self.neg else None


def _score(model: Any, metric: CriterionMetric, texts: Sequence[str], batch_size: int) -> np.ndarray:
    if not texts:
        return np.zeros(0)
    score_probs = getattr(metric, "score_probs", None)
    if score_probs is not None:
        return np.asarray(score_probs(model, next_token_probs(model, texts, batch_size=batch_size)), dtype=float)
    return np.asarray(metric.score(model, list(texts)), dtype=float)


def _tv(p: torch.Tensor, q: torch.Tensor) -> float:
    # Total variation, 0.5 * L1 = max_A |P(A) - Q(A)|: bounded in [0, 1], symmetric, finite even when the edit
    # puts zero mass where the baseline had some (unlike KL), and in the same probability units as the metric.
    return float(0.5 * (p - q).abs().sum(dim=-1).mean())


def measure_edit(base: _Baseline, edit: Any) -> EditOutcome:
    """Metric on the positives and mean TV distance on the negatives under ``edit``."""
    model = base.model
    with model.edits(edit):
        scores = _score(model, base.metric, base.pos, base.batch_size)
        side = None
        if base.neg_probs is not None:
            side = _tv(base.neg_probs, next_token_probs(model, base.neg, batch_size=base.batch_size))
    return EditOutcome(scores=scores, side_effect=side)


def _texts_ids(rows: Iterable[PromptRow | str]) -> list[PromptRow]:
    from interpkit.sources._datasets import as_prompt_rows

    return as_prompt_rows(rows)


def run_interventions(
    model: Any,
    features: Sequence[CausalFeature],
    positives: Sequence[PromptRow | str],
    negatives: Sequence[PromptRow | str],
    metric: CriterionMetric,
    *,
    kinds: Sequence[str] = ("steer",),
    strength: float = 1.0,
    n_controls: int = 1,
    controls: Sequence[str] | str = ("random",),
    ablate_mode: str = "zero",
    seed: int = 0,
    batch_size: int = 16,
    extra: dict[str, Any] | None = None,
) -> list[InterventionRecord]:
    """Intervention records for every feature (and its random controls) and kind.

    Args:
        model: an interpkit ``ModelWrapper``.
        features: features to edit (`CausalFeature`, e.g. from `neuron_feature`).
        positives: prompts where the criterion should hold (rows or texts); one record each.
        negatives: prompts where it should not; they give the ``side_effect_score`` (mean TV
            distance of the next-token distribution; see the module docstring).
        metric: the criterion metric (its ``criterion`` text goes into every record).
        kinds: intervention kinds: ``steer``, ``amplify``, ``ablate``.
        strength: steering strength (``steer``/``amplify``).
        n_controls: controls per feature, kind and control kind (0: none).
        controls: control kinds: ``"random"`` (same-norm random directions), ``"matched_frequency"``
            (as often active on the prompts as the feature), ``"placebo"`` (an on-distribution
            direction orthogonal to the feature and to the class contrast); see
            `interpkit.causal._controls`. A comma-separated string is accepted.
        ablate_mode: ``"zero"`` or ``"mean"`` (mean over every real token of the prompts).
        seed: seeds the control directions.
        batch_size: prompts per forward pass.
        extra: extra keys written into every record (e.g. ``{"split": "test"}``).

    Returns:
        Records in order feature, kind, control, prompt.
    """
    if ablate_mode not in ("zero", "mean"):
        raise ValueError(f"ablate_mode must be 'zero' or 'mean', got {ablate_mode!r}")
    pos_rows, neg_rows = _texts_ids(positives), _texts_ids(negatives)
    if not pos_rows:
        raise ValueError("run_interventions needs at least one positive prompt")
    from ._controls import check_controls, make_controls

    control_kinds = check_controls(controls)
    kinds = [canonical_intervention(k) for k in kinds]
    d_model = int(model.d_model)
    base = _Baseline(model, metric, [r.text for r in pos_rows], [r.text for r in neg_rows], batch_size)
    means: dict[str, np.ndarray] = {}
    acts: dict[str, list[np.ndarray]] = {}
    out: list[InterventionRecord] = []
    for feature in features:
        # data-dependent kinds are measured on the run's positives and negatives (token activations per site
        # read once, into acts)
        ctrls = make_controls(model, feature, control_kinds, n_controls, base.pos + base.neg, len(base.pos),
                              seed=seed, batch_size=batch_size, acts=acts)
        for kind in kinds:
            mean = None
            if kind == "ablate" and ablate_mode == "mean":
                if feature.site not in means:
                    means[feature.site] = site_mean(model, base.pos + base.neg, feature.site, batch_size=batch_size)
                mean = means[feature.site]
            for feat in [feature, *ctrls]:
                outcome = measure_edit(base, feat.edit(kind, d_model=d_model, strength=strength, mean=mean))
                out.extend(_records(model, metric, feat, kind, pos_rows, base.scores, outcome,
                                    strength=strength if kind in ("steer", "amplify") else None,
                                    ablate_mode=ablate_mode if kind == "ablate" else None,
                                    n_negatives=len(neg_rows), extra=extra))
    return out


class EditSession:
    """Baseline scores of a prompt set, measured once, then intervention records for any edit.

    For edits `run_interventions` does not build itself (an SAE latent clamp, a custom
    `~interpkit.models.Apply`): each `records` call runs the edited model on the positives (the
    criterion effect) and negatives (the side effect) and writes one record per positive prompt,
    in the same form `run_interventions` writes.

    Args:
        model: an interpkit ``ModelWrapper``.
        metric: the criterion metric.
        positives: prompts where the criterion should hold (rows or texts).
        negatives: prompts where it should not.
        batch_size: prompts per forward pass.
    """

    def __init__(self, model: Any, metric: CriterionMetric, positives: Sequence[PromptRow | str],
                 negatives: Sequence[PromptRow | str], *, batch_size: int = 16) -> None:
        self.pos_rows, self.neg_rows = _texts_ids(positives), _texts_ids(negatives)
        if not self.pos_rows:
            raise ValueError("an edit session needs at least one positive prompt")
        self.model, self.metric = model, metric
        self._base = _Baseline(model, metric, [r.text for r in self.pos_rows], [r.text for r in self.neg_rows],
                               batch_size)

    def records(self, feature: CausalFeature, kind: str, edit: Any, *, strength: float | None = None,
                ablate_mode: str | None = None, extra: dict[str, Any] | None = None) -> list[InterventionRecord]:
        """Records of ``edit`` (a models-layer edit) applied as ``feature``'s ``kind`` intervention."""
        outcome = measure_edit(self._base, edit)
        return _records(self.model, self.metric, feature, canonical_intervention(kind), self.pos_rows,
                        self._base.scores, outcome, strength=strength, ablate_mode=ablate_mode,
                        n_negatives=len(self.neg_rows), extra=extra)


def _records(model, metric, feat, kind, rows, baseline, outcome, *, strength, ablate_mode, n_negatives, extra):
    common: dict[str, Any] = {"site": feat.site}
    if strength is not None:
        common["strength"] = float(strength)
    if ablate_mode is not None:
        common["ablate_mode"] = ablate_mode
    common["control"] = feat.is_control
    if feat.is_control:
        common["control_of"] = feat.control_of
        common["control_kind"] = feat.control_kind or "random"
    common["side_effect"] = "mean_tv_next_token_on_negatives"
    common["n_negatives"] = n_negatives
    common.update(extra or {})
    out = []
    for row, b, s in zip(rows, baseline, outcome.scores, strict=True):
        row_extra = dict(common)
        if row.split is not None and "split" not in row_extra:
            row_extra["split"] = row.split
        out.append(InterventionRecord(
            model=model.name, feature_id=feat.feature_id, criterion=metric.criterion, intervention=kind,
            prompt_id=row.prompt_id, baseline_score=float(b), intervention_score=float(s),
            side_effect_score=outcome.side_effect, extra=row_extra,
        ))
    return out
