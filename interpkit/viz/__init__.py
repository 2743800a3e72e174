"""Charts: pure functions that return altair charts (they neither display nor save).

- `ranking_bars`: the top features' ranking components (effect size, specificity, stability, causal);
- `activation_histogram`: one feature's activations, split by criterion class;
- `roc_curves`: ROC curves from bench results or from ``{name: (scores, labels)}``;
- `steering_curve`: criterion score (and side effect) against steering strength;
- `match_heatmap`: a match result's (or a `~interpkit.widgets.FingerprintHeatmap`'s) similarities;
- `auroc_bars`, `bench_roc`, `bench_steering`: the benchmark report's charts (``interpkit.bench`` results);
  `bench_charts` builds all three, `write_bench_charts` writes them (the ``charts/`` of `interpkit bench`);
- `run_comparison_chart`: two runs' ranks, AUROCs and causal effects per feature (``compare-runs``),
  `save_run_comparison` writes it with the comparison's JSON and markdown;
- `graph_chart`: an attribution graph (``interpkit.circuits``), layers left to right, nodes sized by
  influence and coloured by kind, edges by weight and sign (`graph_chart_data`: its rows);
- `save_chart`: PNG/SVG (offline, vl-convert), self-contained HTML, or the vega-lite JSON.

Example:
    >>> import interpkit
    >>> from interpkit.viz import ranking_bars
    >>> data = interpkit.make_toy_table(n_examples=80, n_features=6, seed=0)
    >>> chart = ranking_bars(interpkit.rank(data.table, n_permutations=50), k=3)
    >>> chart.to_dict()["mark"]["type"]
    'bar'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports

if TYPE_CHECKING:
    from ._bench import auroc_bars, bench_charts, bench_roc, bench_steering, write_bench_charts
    from ._charts import activation_histogram, match_heatmap, ranking_bars, roc_curves, steering_curve
    from ._compare import run_comparison_chart, save_run_comparison
    from ._graph import graph_chart, graph_chart_data
    from ._save import save_chart

_LAZY = {
    "activation_histogram": "._charts",
    "match_heatmap": "._charts",
    "ranking_bars": "._charts",
    "roc_curves": "._charts",
    "steering_curve": "._charts",
    "auroc_bars": "._bench",
    "bench_charts": "._bench",
    "bench_roc": "._bench",
    "bench_steering": "._bench",
    "write_bench_charts": "._bench",
    "run_comparison_chart": "._compare",
    "save_run_comparison": "._compare",
    "graph_chart": "._graph",
    "graph_chart_data": "._graph",
    "save_chart": "._save",
}

__all__ = [
    "activation_histogram",
    "auroc_bars",
    "bench_charts",
    "bench_roc",
    "bench_steering",
    "graph_chart",
    "graph_chart_data",
    "match_heatmap",
    "ranking_bars",
    "roc_curves",
    "run_comparison_chart",
    "save_chart",
    "save_run_comparison",
    "steering_curve",
    "write_bench_charts",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
