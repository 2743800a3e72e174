"""Paired rows for a transcoder: inputs ``x`` and targets ``y`` held in memory.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> src = PairedArraySource(rng.normal(size=(100, 8)), rng.normal(size=(100, 4)), eval_fraction=0.2)
    >>> x, y = next(iter(src.batches(0, 32, seed=0)))
    >>> tuple(x.shape), tuple(y.shape), src.d_out
    ((32, 8), (32, 4), 4)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from ._data import ArraySource

__all__ = ["PairedArraySource"]


class PairedArraySource:
    """Two row-aligned matrices in memory: inputs ``x`` and targets ``y`` of a transcoder.

    The held-out split and the batch order are those an `ArraySource` of the same row count and seed
    would use.

    Args:
        x: ``[n, d_in]`` inputs.
        y: ``[n, d_out]`` targets (row ``i`` is the output of row ``i``).
        eval_fraction: share of rows held out.
        seed: seed of the held-out split.

    Raises:
        ValueError: either is not a non-empty 2-D matrix, or their row counts differ.
    """

    def __init__(self, x: Any, y: Any, *, eval_fraction: float = 0.1, seed: int = 0) -> None:
        xs, ys = (torch.as_tensor(np.asarray(a) if not isinstance(a, torch.Tensor) else a).detach()
                  .to("cpu", torch.float32) for a in (x, y))
        for name, t in (("x", xs), ("y", ys)):
            if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
                raise ValueError(f"paired rows: {name} must be a non-empty [n, d] matrix, got shape {tuple(t.shape)}")
        if xs.shape[0] != ys.shape[0]:
            raise ValueError(f"paired rows: x has {xs.shape[0]} rows but y has {ys.shape[0]}; row i of y must be "
                             "the target of row i of x")
        self.d_in, self.d_out = int(xs.shape[1]), int(ys.shape[1])
        self._rows = ArraySource(torch.cat([xs, ys], 1), eval_fraction=eval_fraction, seed=seed)
        self.n_rows: int | None = self._rows.n_rows
        self.eval_fraction = eval_fraction

    def _split(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return rows[:, : self.d_in], rows[:, self.d_in :]

    def batches(self, epoch: int, batch_size: int, seed: int, *,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Shuffled ``(x, y)`` training batches (``start`` skips that many)."""
        return (self._split(b) for b in self._rows.batches(epoch, batch_size, seed, start=start))

    def eval_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The held-out ``(x, y)`` rows."""
        return self._split(self._rows.eval_rows())

    def describe(self) -> dict[str, Any]:
        """Kind and sizes."""
        return {"kind": "array_pair", "d_in": self.d_in, "d_out": self.d_out, "n_train_rows": self.n_rows,
                "n_eval_rows": int(self._rows.eval_rows().shape[0])}
