"""Explain features: top and quantile examples with token highlights, logit effects, labels, self-explanations.

A `Verbalizer` turns one feature of a `~interpkit.table.FeatureTable` into a fragment of the
explanation dict (the ``explanation`` of a report's ``FeatureEntry``, rendered by the HTML
cards): `TopExamples` (examples, highlights recomputed by a `FeatureReader`, histogram,
density), `LogitEffects` (direction through the unembedding), `AutoLabel` (a chat model's label,
scored by embedding detection on held-out examples) and `Patchscope` (the model verbalises the
direction). `explain_feature` runs them and records a failing one's error instead of failing.

Example:
    >>> from interpkit._testing import tiny_model
    >>> from interpkit.sources import neuron_table
    >>> model = tiny_model()
    >>> table = neuron_table(model, ["a cat sat", "the dog ran", "hi"], "layer1.resid_post",
    ...                      neurons=[4], progress=False)
    >>> e = explain_feature(table, "layer1.resid_post:n4", model=model, verbalizers=[TopExamples(n_top=1)])
    >>> top = e.top_examples[0]
    >>> top["text"] == "".join(top["tokens"]), abs(max(top["token_activations"]) - top["activation"]) < 1e-4, e.errors
    (True, True, {})
"""

from __future__ import annotations

from ._base import FeatureContext, FeatureExplanation, Verbalizer
from ._examples import TopExamples
from ._explain import default_verbalizers, explain_feature, explain_features
from ._label import AutoLabel, clean_label
from ._logits import LogitEffects, feature_direction
from ._patchscope import Patchscope
from ._reader import FeatureReader, feature_reader

__all__ = [
    "AutoLabel",
    "FeatureContext",
    "FeatureExplanation",
    "FeatureReader",
    "LogitEffects",
    "Patchscope",
    "TopExamples",
    "Verbalizer",
    "clean_label",
    "default_verbalizers",
    "explain_feature",
    "explain_features",
    "feature_direction",
    "feature_reader",
]
