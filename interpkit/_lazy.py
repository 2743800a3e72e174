"""Names a package exports but imports on first use (PEP 562 module ``__getattr__``).

``import interpkit`` (and each subpackage) must stay fast and must not import torch, anywidget or
altair: a package lists what it exports and the module each name lives in, and the module is
imported only when the name is first read. The value is then cached in the package's globals, so
the loader runs once per name.

Example (in a package's ``__init__.py``)::

    from interpkit._lazy import lazy_exports

    _LAZY = {"rank": "._rank", "parse_neuronpedia_ref": "interpkit.sources.neuronpedia:parse_ref"}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, loading each of ``names`` from its module on first use.

    ``names`` maps an exported name to ``"module"`` (absolute, or relative to ``package`` when it
    starts with a dot) or to ``"module:attribute"`` when the module calls it something else.
    """

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module, package), attribute or name)
        sys.modules[package].__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        namespace = sys.modules[package].__dict__
        shown = namespace.get("__all__") or [n for n in namespace if not n.startswith("_")]
        return sorted(set(shown) | set(names))

    return __getattr__, __dir__
