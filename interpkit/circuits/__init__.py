"""Circuits: attribution graphs over transcoders, validated by ablation, and SAE-to-SAE causal paths.

- `attribute` builds a prompt's `AttributionGraph` (circuit-tracer's linearised direct effects:
  attention patterns and norm scales frozen, MLPs replaced by transcoders plus error nodes);
  `AttributionGraph.prune` keeps what carries the influence, `AttributionGraph.scores` says how much
  of it the errors take;
- `ReplacementModel` is the layer-by-layer replica the graph is built on (and ablations replayed on);
- `latent_paths` measures SAE-to-SAE causal paths: the total, direct and indirect effect of ablating
  or steering one upstream latent on every downstream latent, with random controls and bootstrap
  intervals (`PathResult`, saved as ``paths.json`` + ``paths.md``; read back by `read_paths`).
"""

from __future__ import annotations

from interpkit._lazy import lazy_exports

_LAZY = {
    "AttributionGraph": "._graph",
    "CircuitError": "._replacement",
    "Direction": "._targets",
    "ReplacementModel": "._replacement",
    "Target": "._targets",
    "attribute": "._attribute",
    "compute_influence": "._graph",
    "dictionary_parts": "._attribute",
    "graph_from_record": "._export",
    "graph_markdown": "._export",
    "graph_record": "._export",
    "load_graph": "._export",
    "save_graph": "._export",
    "normalize_rows": "._graph",
    "PlantedCircuit": "._planted",
    "planted_circuit": "._planted",
    "default_layers": "._transcoders",
    "ensure_transcoders": "._transcoders",
    "validate_graph": "._validate",
    "FaithfulnessResult": "._validate",
    "top_path": "._validate",
    "predict_ablation": "._validate",
    "ablate_nodes": "._validate",
    "Downstream": "._paths",
    "LatentRef": "._paths",
    "PathDictionaries": "._paths",
    "PathResult": "._paths_result",
    "latent_paths": "._paths",
    "parse_downstream": "._paths",
    "parse_latent": "._paths",
    "read_paths": "._paths_result",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
