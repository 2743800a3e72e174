"""`TopExamples`: top and quantile-sampled examples with token highlights, a histogram, density.

Top examples are the highest pooled values of the feature's column (signed: for neurons and
directions, which take both signs, this is the positive side; read the negative side by negating
the direction). Quantile examples are drawn (seeded) from ``n_quantiles`` equal-mass bins of the
column, so a card shows how the feature behaves across its range, not only at its peak. When
most of the column is zero (a sparse SAE latent), the bins split the non-zero values only: the
zeros would otherwise fill every bin. Token highlights come from one batched model run over the
displayed examples only (`~interpkit.explain.FeatureReader`). ``density`` is the fraction of
examples with activation > 0 (strictly), so a feature that is never positive has density 0.

Example:
    >>> import numpy as np
    >>> from interpkit.table import FeatureTable
    >>> from interpkit.explain import FeatureContext
    >>> table = FeatureTable(np.arange(10, dtype=np.float32)[:, None] - 2)
    >>> out = TopExamples(n_top=2).explain(FeatureContext(table=table, feature_id=table.feature_ids[0]))
    >>> [e["activation"] for e in out["top_examples"]], out["density"], sum(out["histogram"]["counts"])
    ([7.0, 6.0], 0.7, 10)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ._base import FeatureContext, Verbalizer

__all__ = ["TopExamples", "example_dicts"]


def example_dicts(ctx: FeatureContext, indices: list[int], column: np.ndarray) -> list[dict[str, Any]]:
    """Example dicts for table rows ``indices``, with token activations when ``ctx.reader`` is set."""
    examples = ctx.table.examples
    texts = [str(examples["text"].iloc[i]) for i in indices]
    out = [
        {"example_id": str(examples["example_id"].iloc[i]), "text": t, "activation": float(column[i])}
        for i, t in zip(indices, texts, strict=True)
    ]
    if ctx.reader is not None and indices:
        acts = ctx.reader(texts)
        tokens = ctx.reader.tokens(texts)
        for d, a, toks in zip(out, acts, tokens, strict=True):
            d["tokens"] = list(toks)
            d["token_activations"] = [float(x) for x in a]
    return out


class TopExamples(Verbalizer):
    """Top examples, quantile samples, histogram and density of one feature.

    Args:
        n_top: number of top examples.
        n_quantiles: number of equal-mass activation bins.
        per_quantile: examples drawn from each bin (fewer when a bin holds fewer).
        n_bins: histogram bins over the whole column.
    """

    name: ClassVar[str] = "top_examples"

    def __init__(self, n_top: int = 5, n_quantiles: int = 4, per_quantile: int = 2, n_bins: int = 20) -> None:
        if min(n_top, n_quantiles, n_bins) < 1 or per_quantile < 0:
            raise ValueError("n_top, n_quantiles and n_bins must be >= 1 and per_quantile >= 0")
        self.n_top, self.n_quantiles, self.per_quantile, self.n_bins = n_top, n_quantiles, per_quantile, n_bins

    def __repr__(self) -> str:
        return (f"TopExamples(n_top={self.n_top}, n_quantiles={self.n_quantiles}, "
                f"per_quantile={self.per_quantile}, n_bins={self.n_bins})")

    def quantile_bins(self, column: np.ndarray) -> list[tuple[str, float, float, np.ndarray]]:
        """``(name, lo, hi, member indices)`` per bin, lowest first (members: ``lo <= v <= hi``,
        each example in one bin: the first whose ``hi`` it does not exceed)."""
        in_pop = np.ones(len(column), dtype=bool)
        if np.mean(column == 0) > 0.5 and np.count_nonzero(column) >= self.n_quantiles:
            in_pop = column != 0
        # Equal-mass (quantile) bins rather than equal-width: activations are heavy-tailed, so equal-width bins
        # would put almost every example in the lowest bin and leave the top bins empty.
        edges = np.quantile(column[in_pop].astype(np.float64), np.linspace(0.0, 1.0, self.n_quantiles + 1))
        # side="left" on the inner edges puts v in the first bin whose upper edge is >= v (ties go down).
        which = np.clip(np.searchsorted(edges[1:-1], column, side="left"), 0, self.n_quantiles - 1)
        return [(f"q{b + 1}", float(edges[b]), float(edges[b + 1]), np.flatnonzero((which == b) & in_pop))
                for b in range(self.n_quantiles)]

    def explain(self, ctx: FeatureContext) -> dict[str, Any]:
        """Top examples, quantile examples, histogram and density."""
        column = np.asarray(ctx.column, dtype=np.float32)
        n = len(column)
        if n == 0:
            raise ValueError(f"feature {ctx.feature_id!r}: the table has no examples")
        top = np.argsort(-column, kind="stable")[: self.n_top].tolist()
        # Seeded random draws inside each bin (not its extremes) show typical examples of that range; the top
        # examples are excluded so a card never shows one twice.
        rng = np.random.default_rng(ctx.seed)
        shown = set(top)
        bins = []
        for name, lo, hi, members in self.quantile_bins(column):
            pool = np.array([i for i in members.tolist() if i not in shown], dtype=np.int64)
            k = min(self.per_quantile, len(pool))
            drawn = rng.choice(pool, size=k, replace=False).tolist() if k else []
            drawn.sort(key=lambda i: -column[i])
            bins.append((name, lo, hi, drawn))
        # One batched model run over every displayed example.
        wanted = top + [i for *_, drawn in bins for i in drawn]
        dicts = dict(zip(wanted, example_dicts(ctx, wanted, column), strict=True))
        counts, edges = np.histogram(column.astype(np.float64), bins=self.n_bins)
        return {
            "top_examples": [dicts[i] for i in top],
            "quantile_examples": [
                {"name": name, "lo": lo, "hi": hi, "examples": [dicts[i] for i in drawn]}
                for name, lo, hi, drawn in bins
            ],
            "histogram": {"edges": edges.tolist(), "counts": [int(c) for c in counts]},
            "density": float(np.mean(column > 0)),
        }
