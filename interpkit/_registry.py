"""The one name -> class registration rule behind the plug-in registries (compilers, bench methods,
SAE architectures): a name is held by one class; registering the same class again is a no-op (a
module imported twice), registering another class under a held name is an error."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T", bound=type)


def register(registry: dict[str, T], name: str, cls: T, what: str) -> T:
    """Put ``cls`` into ``registry`` under ``name`` and return it.

    Raises:
        ValueError: another class already holds ``name`` (``what`` names the kind of plug-in).
    """
    held = registry.get(name)
    if held is not None and held is not cls:
        raise ValueError(f"{what} {name!r} is already registered by {held.__qualname__}")
    registry[name] = cls
    return cls
