"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread (restored after).

    The SAE and crosscoder tests train on tiny matrices: a second OpenMP thread only adds barrier
    waits, which turn into seconds per step when other processes share the machine's two cores.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
