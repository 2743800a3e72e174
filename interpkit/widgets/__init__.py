"""Jupyter widgets (anywidget) over interpkit's ranking, steering, matching and explanations.

- `CriterionEditor`: edit a criterion, its compiler and pinned examples; the ranked feature table
  follows (debounced, with a busy state); clicking a feature shows its card.
- `SteeringPanel`: one strength slider per steering vector, baseline and steered generations side
  by side with a criterion score and side-effect scores; exports an intervention spec.
- `FingerprintHeatmap`: the similarity matrix between two feature sets (binary float32 buffer),
  sortable, zoomable, coloured by the combined or any component score; click a cell for the pair.
- `FeatureCard`: the report's HTML feature card as a live widget.
- `GraphView`: an attribution graph (``interpkit.circuits``) as SVG, layers left to right; click a node
  for its card (token, activation, influence, strongest edges, its explanation when given).

The widgets hold no analysis of their own: every number comes from ``interpkit.rank``,
``interpkit.criterion``, ``interpkit.models``, ``interpkit.causal``, ``interpkit.match`` and
``interpkit.explain`` (and ``interpkit.circuits`` / ``interpkit.viz`` for the graph), and the files they write from ``interpkit.records``. Their
front-end modules are plain ES modules shipped in the package (``widgets/*.js``); nothing is loaded
from the network. Classes load on first use, so importing this package does not import anywidget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports

if TYPE_CHECKING:
    from ._card import FeatureCard, card_html, feature_entry
    from ._criterion_editor import CriterionEditor, ranking_rows
    from ._graph import GraphView
    from ._heatmap import FingerprintHeatmap
    from ._static import STATIC, asset
    from ._steering import SPEC_KIND, SteeringPanel, vector_sha256

_LAZY = {
    "CriterionEditor": "._criterion_editor",
    "ranking_rows": "._criterion_editor",
    "FeatureCard": "._card",
    "card_html": "._card",
    "feature_entry": "._card",
    "FingerprintHeatmap": "._heatmap",
    "GraphView": "._graph",
    "SteeringPanel": "._steering",
    "SPEC_KIND": "._steering",
    "vector_sha256": "._steering",
    "STATIC": "._static",
    "asset": "._static",
}

__all__ = [
    "SPEC_KIND",
    "STATIC",
    "CriterionEditor",
    "FeatureCard",
    "FingerprintHeatmap",
    "GraphView",
    "SteeringPanel",
    "asset",
    "card_html",
    "feature_entry",
    "ranking_rows",
    "vector_sha256",
]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
