"""Feature sources: turn activations, records or files into a :class:`~interpkit.table.FeatureTable`.

``toy`` generates synthetic tables with planted ground truth (always marked synthetic); ``dumps``
builds a table from feature-dump JSONL; ``neuronpedia`` fetches (or reads exported) Neuronpedia
features as feature dumps and explanations; ``_stream`` streams a model's activations over a prompt
dataset (``_datasets``) into chunks held in memory or on disk (``_chunks``). Submodules load on
first use, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "make_toy_table": "interpkit.sources.toy",
    "shuffled_criterion": "interpkit.sources.toy",
    "ToyData": "interpkit.sources.toy",
    "ToyTruth": "interpkit.sources.toy",
    "TOY_CRITERION": "interpkit.sources.toy",
    "table_from_feature_dumps": "interpkit.sources.dumps",
    "ActivationChunk": "interpkit.sources._chunks",
    "ActivationSet": "interpkit.sources._chunks",
    "StreamResult": "interpkit.sources._stream",
    "stream_activations": "interpkit.sources._stream",
    "PromptRow": "interpkit.sources._datasets",
    "dataset_hash": "interpkit.sources._datasets",
    "iter_prompt_dataset": "interpkit.sources._datasets",
    "read_prompt_dataset": "interpkit.sources._datasets",
    "as_prompt_rows": "interpkit.sources._datasets",
    "ActivationCache": "interpkit.sources._cache",
    "model_fingerprint": "interpkit.sources._cache",
    "default_cache_root": "interpkit.sources._cache",
    "neuron_table": "interpkit.sources.neurons",
    "DirectionSet": "interpkit.sources.directions",
    "direction_table": "interpkit.sources.directions",
    "contrast_direction": "interpkit.sources.directions",
    "DIRECTION_KINDS": "interpkit.sources.directions",
    "NeuronpediaClient": "interpkit.sources.neuronpedia",
    "NeuronpediaError": "interpkit.sources.neuronpedia",
    "NeuronpediaRef": "interpkit.sources.neuronpedia",
    "load_neuronpedia_features": "interpkit.sources.neuronpedia",
    "feature_dump_from_json": "interpkit.sources.neuronpedia",
    "explanation_from_neuronpedia": "interpkit.sources.neuronpedia",
    "fingerprint_from_neuronpedia": "interpkit.sources.neuronpedia",
    "parse_neuronpedia_ref": "interpkit.sources.neuronpedia:parse_ref",
}

__all__ = [
    "DIRECTION_KINDS",
    "TOY_CRITERION",
    "ActivationCache",
    "DirectionSet",
    "as_prompt_rows",
    "contrast_direction",
    "default_cache_root",
    "direction_table",
    "model_fingerprint",
    "neuron_table",
    "ActivationChunk",
    "ActivationSet",
    "PromptRow",
    "StreamResult",
    "ToyData",
    "ToyTruth",
    "dataset_hash",
    "iter_prompt_dataset",
    "make_toy_table",
    "read_prompt_dataset",
    "shuffled_criterion",
    "stream_activations",
    "table_from_feature_dumps",
    "NeuronpediaClient",
    "NeuronpediaError",
    "NeuronpediaRef",
    "load_neuronpedia_features",
    "feature_dump_from_json",
    "explanation_from_neuronpedia",
    "fingerprint_from_neuronpedia",
    "parse_neuronpedia_ref",
]

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


if TYPE_CHECKING:  # pragma: no cover
    from interpkit.sources._cache import ActivationCache, default_cache_root, model_fingerprint
    from interpkit.sources._chunks import ActivationChunk, ActivationSet
    from interpkit.sources._datasets import (
        PromptRow,
        as_prompt_rows,
        dataset_hash,
        iter_prompt_dataset,
        read_prompt_dataset,
    )
    from interpkit.sources._stream import StreamResult, stream_activations
    from interpkit.sources.directions import (
        DIRECTION_KINDS,
        DirectionSet,
        contrast_direction,
        direction_table,
    )
    from interpkit.sources.dumps import table_from_feature_dumps
    from interpkit.sources.neurons import neuron_table
    from interpkit.sources.toy import TOY_CRITERION, ToyData, ToyTruth, make_toy_table, shuffled_criterion
