"""Strength sweeps: choose a steering strength on the train split, report its effect on the test split.

For each strength the train positives give the criterion effect (mean metric change, signed by the
kind's expected direction) and the train negatives the side effect (mean TV distance, see
`interpkit.causal.run_interventions`). The MOST SPECIFIC strength maximises
``effect - side_effect_weight * side_effect``. Only then are the chosen strength and its random
same-norm controls run on the TEST split, so the reported effect was not used to pick anything.

Splits come from each row's ``split`` when set (`assign_prompt_splits`), otherwise from
`interpkit.rank.hash_splits` (the hash split ``inspect`` uses for records without a split).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from interpkit.records import INTERVENTION_KINDS, InterventionRecord, canonical_intervention

from ._metric import CriterionMetric
from ._runner import CausalFeature, _Baseline, measure_edit, run_interventions

if TYPE_CHECKING:
    from interpkit.sources import PromptRow

__all__ = ["SweepResult", "assign_prompt_splits", "parse_strengths", "split_by_score", "sweep_strengths"]


def parse_strengths(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"3,10,30,100"`` -> ``(3.0, 10.0, 30.0, 100.0)``.

    Raises:
        ValueError: empty, non-numeric or non-finite values.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        out = tuple(float(x) for x in items if str(x).strip())
    except ValueError:
        raise ValueError(f"--strength-sweep: expected comma-separated numbers, got {text!r}") from None
    if not out or not all(np.isfinite(out)):
        raise ValueError(f"--strength-sweep: expected finite numbers, got {text!r}")
    return out


def assign_prompt_splits(rows: Sequence[PromptRow], *, test_fraction: float = 0.5, seed: int = 0) -> list[str]:
    """The split of each row: its own ``split`` when set, else the hash split of its text."""
    from interpkit.rank import hash_splits

    hashed = hash_splits([r.text for r in rows], test_fraction, seed) if rows else []
    return [r.split if r.split is not None else str(h) for r, h in zip(rows, hashed, strict=True)]


def split_by_score(
    rows: Sequence[PromptRow], *, threshold: float = 0.5
) -> tuple[list[PromptRow], list[PromptRow]]:
    """(positives, negatives): rows with ``criterion_score >= threshold`` and the scored rest.

    Rows without a score are left out.
    """
    pos = [r for r in rows if r.criterion_score is not None and r.criterion_score >= threshold]
    neg = [r for r in rows if r.criterion_score is not None and r.criterion_score < threshold]
    return pos, neg


@dataclass(frozen=True, slots=True, kw_only=True)
class SweepResult:
    """The chosen strength, the train-split table behind the choice, and the test-split records."""

    strength: float
    """The most specific strength on the train split."""
    train: tuple[dict[str, float], ...]
    """One row per strength: ``strength``, ``effect``, ``side_effect``, ``specificity``."""
    records: tuple[InterventionRecord, ...] = field(default=())
    """Test-split records for the feature and its controls at ``strength``."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (records left out)."""
        return {"strength": self.strength, "train": [dict(r) for r in self.train], "n_records": len(self.records)}


def sweep_strengths(
    model: Any,
    feature: CausalFeature,
    positives: Sequence[PromptRow],
    negatives: Sequence[PromptRow],
    metric: CriterionMetric,
    strengths: Sequence[float],
    *,
    kind: str = "steer",
    splits: tuple[Sequence[str], Sequence[str]] | None = None,
    side_effect_weight: float = 1.0,
    n_controls: int = 1,
    controls: Sequence[str] | str = ("random",),
    control_features: Sequence[CausalFeature] | None = None,
    seed: int = 0,
    batch_size: int = 16,
) -> SweepResult:
    """Pick a strength on train, then run the feature and its controls on test at that strength.

    Args:
        model: an interpkit ``ModelWrapper``.
        feature: the feature to steer.
        positives: rows where the criterion holds.
        negatives: rows where it does not.
        metric: the criterion metric.
        strengths: candidate strengths.
        kind: ``steer`` or ``amplify``.
        splits: (positives' splits, negatives' splits); default `assign_prompt_splits` of each.
        side_effect_weight: weight of the side effect in the specificity.
        n_controls: controls per control kind on the test split.
        controls: control kinds (``random``, ``matched_frequency``, ``placebo``; see `run_interventions`),
            built from the test split's prompts.
        control_features: controls already built (``control_of`` set), run instead of building
            ``n_controls`` of each kind (`export_contrast` saves their vectors beside its records).
        seed: seeds the controls.
        batch_size: prompts per forward pass.

    Raises:
        ValueError: a split has no positives, or train has no negatives.
    """
    kind = canonical_intervention(kind)
    sign = INTERVENTION_KINDS[kind]
    pos_splits, neg_splits = splits or (assign_prompt_splits(positives), assign_prompt_splits(negatives))
    pos_train = [r for r, s in zip(positives, pos_splits, strict=True) if s == "train"]
    pos_test = [r for r, s in zip(positives, pos_splits, strict=True) if s == "test"]
    neg_train = [r for r, s in zip(negatives, neg_splits, strict=True) if s == "train"]
    neg_test = [r for r, s in zip(negatives, neg_splits, strict=True) if s == "test"]
    if not pos_train or not pos_test:
        raise ValueError(
            f"the strength sweep needs positives in both splits (train {len(pos_train)}, test {len(pos_test)}); "
            "add rows or set their 'split' field"
        )
    if not neg_train:
        raise ValueError("the strength sweep needs negative prompts in the train split to measure side effects")
    d_model = int(model.d_model)
    base = _Baseline(model, metric, [r.text for r in pos_train], [r.text for r in neg_train], batch_size)
    table = []
    for s in strengths:
        outcome = measure_edit(base, feature.edit(kind, d_model=d_model, strength=float(s)))
        effect = float(sign * np.mean(outcome.scores - base.scores))
        side = float(outcome.side_effect or 0.0)
        table.append({"strength": float(s), "effect": effect, "side_effect": side,
                      "specificity": effect - side_effect_weight * side})
    best = max(table, key=lambda r: r["specificity"])["strength"]
    test_pos = [_with_split(r, "test") for r in pos_test]
    prebuilt = list(control_features or ())
    records = run_interventions(
        model, [feature, *prebuilt], test_pos, neg_test, metric, kinds=(kind,), strength=best,
        n_controls=0 if control_features is not None else n_controls, controls=controls, seed=seed,
        batch_size=batch_size,
        extra={"split": "test", "strength_chosen_on": "train", "sweep_side_effect_weight": float(side_effect_weight)},
    )
    return SweepResult(strength=best, train=tuple(table), records=tuple(records))


def _with_split(row: PromptRow, split: str) -> PromptRow:
    from dataclasses import replace

    return row if row.split == split else replace(row, split=split)
