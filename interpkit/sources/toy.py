"""Synthetic feature tables with planted ground truth, for demos and for testing the ranking exactly.

:func:`make_toy_table` draws a binary-ish criterion and SAE-like sparse, non-negative features whose
roles are known: a **carrier** (fires on criterion-positive examples, and intervening on it moves
the criterion), a **decoy** (correlated with the criterion only through a confounder; interventions
on it show ~0 effect), a **causal-only** feature (barely associated, yet interventions move the
criterion), **correlated** features without interventions, and **noise**. Roles are assigned to
random columns so that table order never decides a test. Everything it returns is marked
synthetic: ``table.synthetic``, ``table.meta['synthetic']`` and every record's ``extra``.

Example:
    >>> data = make_toy_table(n_examples=100, n_features=10, seed=1)
    >>> data.table.synthetic, len(data.truth.noise)
    (True, 5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

TOY_CRITERION = "synthetic toy criterion"
"""Criterion text of toy tables and their intervention records unless another is given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ToyTruth:
    """Which feature ids play which planted role."""

    carrier: str
    """Associated with the criterion and causal (its ablation lowers the criterion)."""
    decoy: str
    """Associated through a confounder; interventions show an effect of ~0 (causally inert)."""
    causal_only: str
    """Weakly associated at most; interventions strongly promote the criterion."""
    correlated: tuple[str, ...]
    """Associated, no interventions; listed from strongest to weakest association."""
    noise: tuple[str, ...]
    """Independent of the criterion."""
    under_measured: str | None
    """A noise feature with only 2 intervention records (``"insufficient n"``), if any noise exists."""

    @property
    def expected_order(self) -> tuple[str, ...]:
        """The order a careful ranking gives the planted (non-noise) features, best first."""
        return (self.carrier, self.causal_only, *self.correlated, self.decoy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "carrier": self.carrier,
            "decoy": self.decoy,
            "causal_only": self.causal_only,
            "correlated": list(self.correlated),
            "noise": list(self.noise),
            "under_measured": self.under_measured,
        }


class ToyData(NamedTuple):
    """What :func:`make_toy_table` returns; unpacks as ``table, interventions, truth``."""

    table: Any
    """The :class:`~interpkit.table.FeatureTable` (synthetic)."""
    interventions: list[Any]
    """:class:`~interpkit.records.InterventionRecord` rows (synthetic)."""
    truth: ToyTruth
    """The planted roles."""


def shuffled_criterion(scores: Any, seed: int = 0) -> np.ndarray:
    """A random permutation of ``scores``: any association with features becomes chance."""
    return np.random.default_rng(seed).permutation(np.asarray(scores, dtype=np.float64))


def _sparse_feature(rng: np.random.Generator, fire_prob: np.ndarray) -> np.ndarray:
    fires = rng.random(fire_prob.shape) < fire_prob
    return np.where(fires, rng.lognormal(0.3, 0.4, fire_prob.shape), 0.0)


def _records(rng, fid, effects_mean, effects_sd, n, criterion, kinds) -> list[dict[str, Any]]:
    rows = []
    for k in range(n):
        kind = kinds[k % len(kinds)]
        eff = float(rng.normal(effects_mean, effects_sd))
        if kind == "ablate":  # signed_effect = baseline - intervention
            base = float(rng.uniform(0.7, 0.9))
            new = base - eff
        else:  # steer: signed_effect = intervention - baseline
            base = float(rng.uniform(0.1, 0.3))
            new = base + eff
        rows.append(
            {
                "model": "toy",
                "feature_id": fid,
                "criterion": criterion,
                "intervention": kind,
                "prompt_id": f"toy-prompt-{k}",
                "baseline_score": base,
                "intervention_score": new,
                "side_effect_score": float(abs(rng.normal(0.0, 0.01))),
                "synthetic": True,
            }
        )
    return rows


def make_toy_table(
    n_examples: int = 400,
    n_features: int = 32,
    seed: int = 0,
    *,
    n_correlated: int = 2,
    n_measurements: int = 8,
    criterion: str = TOY_CRITERION,
    sparse: bool = False,
) -> ToyData:
    """Generate a synthetic table with planted carrier, decoy, causal-only, correlated and noise features.

    Args:
        n_examples: examples (rows); half are criterion-positive in expectation.
        n_features: features; at least ``3 + n_correlated``, the rest are noise.
        seed: everything is a deterministic function of the arguments.
        n_correlated: correlated features without interventions.
        n_measurements: intervention records (prompts) per intervened feature, at least 3.
        criterion: criterion text set on the table meta and every intervention record.
        sparse: store values as a ``scipy.sparse.csr_array``.

    Returns:
        :class:`ToyData` ``(table, interventions, truth)``.

    Raises:
        ValueError: if there are too few features or measurements.
    """
    import pandas as pd

    from interpkit.records import InterventionRecord
    from interpkit.table import FeatureTable

    if n_features < 3 + n_correlated:
        raise ValueError(f"n_features must be >= {3 + n_correlated}, got {n_features}")
    if n_measurements < 3:
        raise ValueError(f"n_measurements must be >= 3, got {n_measurements}")
    rng = np.random.default_rng(seed)
    y = rng.random(n_examples) < 0.5
    scores = np.clip(np.where(y, 0.9, 0.1) + rng.normal(0.0, 0.05, n_examples), 0.0, 1.0)
    confounder = np.where(rng.random(n_examples) < 0.15, ~y, y)
    cols = rng.permutation(n_features)
    carrier, decoy, causal_only = (int(c) for c in cols[:3])
    correlated = [int(c) for c in cols[3 : 3 + n_correlated]]
    noise = sorted(int(c) for c in cols[3 + n_correlated :])

    X = np.empty((n_examples, n_features))
    X[:, carrier] = _sparse_feature(rng, np.where(y, 0.85, 0.05))
    X[:, decoy] = _sparse_feature(rng, np.where(confounder, 0.7, 0.08))
    X[:, causal_only] = _sparse_feature(rng, np.where(y, 0.27, 0.23))
    gaps = np.linspace(0.65, 0.35, n_correlated) if n_correlated > 1 else [0.5] * n_correlated
    for gap, j in zip(gaps, correlated, strict=True):
        X[:, j] = _sparse_feature(rng, np.where(y, 0.15 + gap, 0.15))
    for j in noise:
        X[:, j] = _sparse_feature(rng, np.full(n_examples, rng.uniform(0.05, 0.3)))

    ids = [f"f{j:03d}" for j in range(n_features)]
    roles = {carrier: "carrier", decoy: "decoy", causal_only: "causal-only"}
    roles.update({j: f"correlated {k + 1}" for k, j in enumerate(correlated)})
    features = pd.DataFrame(
        {
            "feature_id": ids,
            "model": "toy",
            "site": "layer0.toy",
            "layer": pd.array([0] * n_features, dtype="Int64"),
            "label": [f"planted {roles[j]}" if j in roles else "noise" for j in range(n_features)],
            "source": "toy",
        }
    )
    examples = pd.DataFrame(
        {
            "example_id": [f"toy-{i:05d}" for i in range(n_examples)],
            "text": [f"synthetic example {i}" for i in range(n_examples)],
            "criterion_score": scores,
            "split": pd.Series([None] * n_examples, dtype=object),
        }
    )
    under = ids[noise[0]] if noise else None
    rows = _records(rng, ids[carrier], 0.4, 0.05, n_measurements, criterion, ("ablate", "steer"))
    rows += _records(rng, ids[decoy], 0.0, 0.01, n_measurements, criterion, ("ablate", "steer"))
    rows += _records(rng, ids[causal_only], 0.3, 0.05, n_measurements, criterion, ("steer", "ablate"))
    if under is not None:
        rows += _records(rng, under, 0.0, 0.05, 2, criterion, ("ablate",))
    truth = ToyTruth(
        carrier=ids[carrier],
        decoy=ids[decoy],
        causal_only=ids[causal_only],
        correlated=tuple(ids[j] for j in correlated),
        noise=tuple(ids[j] for j in noise),
        under_measured=under,
    )
    values = X.astype(np.float32)
    if sparse:
        import scipy.sparse as sp

        values = sp.csr_array(values)
    meta = {
        "criterion": criterion,
        "model": "toy",
        "source": "toy",
        "synthetic": True,
        "seed": seed,
        "truth": truth.to_dict(),
    }
    table = FeatureTable(values, examples, features, meta=meta, synthetic=True)
    return ToyData(table, [InterventionRecord.from_dict(r) for r in rows], truth)
