"""Deterministic hashed splits: duplicates share a split, the seed and fraction behave."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from interpkit.rank import hash_splits, normalize_text


def test_duplicates_share_a_split():
    texts = [f"prompt number {i}" for i in range(300)]
    variants = [t.upper() for t in texts] + ["  " + t.replace(" ", "\t\n ") + " " for t in texts]
    split = hash_splits(texts + variants, 0.5, seed=3).reshape(3, 300)
    assert (split[0] == split[1]).all() and (split[0] == split[2]).all()
    assert normalize_text(" A\u00a0b ") == "a b"


def test_fraction_seed_and_determinism():
    texts = [f"t{i}" for i in range(4000)]
    s = hash_splits(texts, 0.3, seed=0)
    assert set(s) == {"train", "test"}
    assert abs((s == "test").mean() - 0.3) < 0.03
    assert (hash_splits(texts, 0.3, seed=0) == s).all()
    assert (hash_splits(texts, 0.3, seed=1) != s).any()
    with pytest.raises(ValueError):
        hash_splits(texts, 1.0)


def test_split_does_not_depend_on_python_hash_seed():
    code = "from interpkit.rank import hash_splits; print(''.join(s[1] for s in hash_splits([str(i) for i in range(64)])))"
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": str(h), "PYTHONPATH": str(Path(__file__).parents[2])},
        ).stdout
        for h in (1, 2)
    }
    assert len(outs) == 1
    assert np.array_equal(
        list(outs.pop().strip()), [s[1] for s in hash_splits([str(i) for i in range(64)])]
    )
