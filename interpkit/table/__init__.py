"""FeatureTable: examples x features activations with their metadata.

The in-memory table every source produces and every ranking reads: dense or sparse float32
values, one frame describing the examples (id, text, criterion score, split), one describing the
features (id, model, site/layer, label, source), optional decoder vectors and token-level maxima.
It is built from activation records (streaming), saved as cfg.json + safetensors + parquet, and
streamed back to records.

>>> from interpkit.table import FeatureTable
>>> t = FeatureTable.from_records([
...     {"model": "m", "prompt_id": "a", "text": "hi", "criterion_score": 1.0,
...      "features": [{"feature_id": 7, "activation": 2.5}]},
...     {"model": "m", "prompt_id": "b", "text": "yo", "criterion_score": 0.0, "features": []},
... ])
>>> t
FeatureTable(2 examples x 1 features, dense)
>>> t.column("7").tolist()
[2.5, 0.0]
"""

from ._frames import EXAMPLE_COLUMNS, FEATURE_COLUMNS, TOKEN_COLUMNS, TableError
from ._table import FeatureTable

__all__ = ["EXAMPLE_COLUMNS", "FEATURE_COLUMNS", "TOKEN_COLUMNS", "FeatureTable", "TableError"]
