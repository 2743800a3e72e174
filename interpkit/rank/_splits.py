"""Deterministic train/held-out splits that keep duplicate texts together.

A split is a pure function of the example's *normalised* text and a seed: the text is NFKC-normalised,
casefolded and its whitespace collapsed, then hashed with SHA-256 (never Python's salted ``hash``). The
first 8 bytes of the digest, read as a fraction of 2**64, put the example in ``"test"`` when below
``test_fraction``. Two examples whose texts normalise alike always share a split, so a prompt repeated
in the data cannot leak from the selection split into the reporting split.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

import numpy as np

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return the key that decides an example's split: NFKC, casefolded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", str(text)).casefold()).strip()


def _unit_interval(key: str, seed: int) -> float:
    # The \x1f (unit separator) keeps (seed, key) pairs such as (1, "2a") and (12, "a") from hashing alike.
    # 64 bits of a cryptographic hash are uniform on [0, 1) for practical purposes and stable across runs
    # and platforms, unlike Python's per-process salted hash().
    digest = hashlib.sha256(f"{seed}\x1f{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_splits(texts: Iterable[str], test_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Assign each text to ``"train"`` or ``"test"`` by a stable hash of its normalised form.

    Args:
        texts: example texts, in table order.
        test_fraction: expected share of distinct texts in the held-out split, in (0, 1).
        seed: changes the assignment; the same seed always gives the same split.

    Returns:
        Object ndarray of ``"train"``/``"test"`` aligned with ``texts``.

    Raises:
        ValueError: if ``test_fraction`` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    cache: dict[str, str] = {}
    out = []
    for text in texts:
        key = normalize_text(text)
        # A memo only: the hash is deterministic, so equal keys get the same split with or without it.
        split = cache.get(key)
        if split is None:
            split = "test" if _unit_interval(key, seed) < test_fraction else "train"
            cache[key] = split
        out.append(split)
    return np.asarray(out, dtype=object)
