"""Names a package exports but imports on first use (PEP 562 module ``__getattr__``).

``import interpkit`` (and each subpackage) must stay fast and must not import torch, anywidget or
altair: a package lists what it exports and the module each name lives in, and the module is
imported only when the name is first read. The value is then cached in the package's globals, so
the loader runs once per name.

Example (in a package's ``__init__.py``)::

    from interpkit._lazy import lazy_exports

    _LAZY = {"rank": "._rank", "parse_neuronpedia_ref": "interpkit.sources.neuronpedia:parse_ref"}
    __getattr__, __dir__ = lazy_exports(__name__, _LAZY)

Two subpackages are named after their main function (``interpkit.rank``, ``interpkit.inspect``):
`callable_package` makes the package module itself callable, so ``interpkit.rank(...)`` works
whichever of the module and the function a reader reaches first.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], *, modules: frozenset[str] = frozenset()
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, loading each of ``names`` from its module on first use.

    ``names`` maps an exported name to ``"module"`` (absolute, or relative to ``package`` when it
    starts with a dot) or to ``"module:attribute"`` when the module calls it something else. A name
    in ``modules`` is the module itself (a `callable_package`), not an attribute of it.
    """

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        imported = importlib.import_module(module, package)
        value = imported if name in modules else getattr(imported, attribute or name)
        sys.modules[package].__dict__[name] = value
        return value

    def __dir__() -> list[str]:
        namespace = sys.modules[package].__dict__
        shown = namespace.get("__all__") or [n for n in namespace if not n.startswith("_")]
        return sorted(set(shown) | set(names))

    return __getattr__, __dir__


def callable_package(package: str, function: Callable[..., Any]) -> None:
    """Make the module ``package`` callable as ``function`` (with its signature, for ``help`` and IDEs).

    Why: ``interpkit.rank`` names both a subpackage and its main function. Python binds a subpackage
    as an attribute of its parent whenever it is imported, so after any ``import interpkit.rank...``
    the name ``interpkit.rank`` is the module, whatever the parent had bound before. A callable
    module keeps the documented ``interpkit.rank(table, ...)`` working in any import order, and
    ``interpkit.rank.RankingResult`` too; the parent hands out the module (``modules=`` of
    `lazy_exports`), so there is one object either way.
    """

    class CallablePackage(types.ModuleType):
        __signature__ = inspect.signature(function)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return function(*args, **kwargs)

    CallablePackage.__call__.__doc__ = function.__doc__
    sys.modules[package].__class__ = CallablePackage
