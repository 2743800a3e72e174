"""Feature sources: turn activations, records or files into a :class:`~interpkit.table.FeatureTable`.

``toy`` generates synthetic tables with planted ground truth (always marked synthetic); ``dumps``
builds a table from feature-dump JSONL. Submodules load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "make_toy_table": "interpkit.sources.toy",
    "shuffled_criterion": "interpkit.sources.toy",
    "ToyData": "interpkit.sources.toy",
    "ToyTruth": "interpkit.sources.toy",
    "TOY_CRITERION": "interpkit.sources.toy",
    "table_from_feature_dumps": "interpkit.sources.dumps",
}

__all__ = [
    "TOY_CRITERION",
    "ToyData",
    "ToyTruth",
    "make_toy_table",
    "shuffled_criterion",
    "table_from_feature_dumps",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'interpkit.sources' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


if TYPE_CHECKING:  # pragma: no cover
    from interpkit.sources.dumps import table_from_feature_dumps
    from interpkit.sources.toy import TOY_CRITERION, ToyData, ToyTruth, make_toy_table, shuffled_criterion
