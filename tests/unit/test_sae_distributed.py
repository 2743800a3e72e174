"""Distributed SAE training: two gloo processes on CPU agree with each other and with one process."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from interpkit.sae._train import train_sae

# 448 rows, 64 held out: 384 training rows = 6 batches of 64, or 12 of 32 split over two ranks, so
# every step of the 2-rank run sees the same 64 rows as the matching single-process step.
N_ROWS, EVAL_FRACTION = 448, 1 / 7
KW = {"architecture": "relu", "latent_dim": 32, "epochs": 2, "seed": 0, "lr": 3e-3,
      "eval_fraction": EVAL_FRACTION, "dead_steps": 10**6}  # no dead latents: AuxK is per batch


def _rows() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(N_ROWS, 8)).astype(np.float32)


def _worker(rank: int, world: int, port: int, folder: str, torchrun_env: bool) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    if torchrun_env:  # what torchrun sets: train_sae opens (and closes) the process group itself
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    else:
        dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        res = train_sae(_rows(), batch_size=32, out=os.path.join(folder, "run"), checkpoint_every=4, **KW)
        torch.save({k: v.clone() for k, v in res.sae.tensors().items()}, os.path.join(folder, f"rank{rank}.pt"))
        assert (res.out is not None) == (rank == 0)  # only the writing rank reports a folder
    finally:
        if dist.is_initialized():
            assert not torchrun_env, "train_sae left its process group open"
            dist.barrier()  # as train_sae does: no rank tears gloo down under another
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("torchrun_env", [False, True], ids=["initialised-group", "torchrun-env"])
def test_two_gloo_ranks_match_one_process(tmp_path, torchrun_env):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), torchrun_env), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP keeps the ranks identical
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file() and (run / "sae.safetensors").is_file()
    assert {p.name for p in (run / "checkpoints").iterdir()} == {"step-8", "step-12"}  # 2 epochs × 6 steps
    torch.set_num_threads(1)
    single = train_sae(_rows(), batch_size=64, **KW)
    assert single.metrics["steps"] == 12
    for name, t in single.sae.tensors().items():
        assert torch.allclose(r0[name], t, atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("world", [1])
def test_single_process_ignores_world_size_one(monkeypatch, world):
    monkeypatch.setenv("WORLD_SIZE", str(world))
    res = train_sae(_rows(), batch_size=64, **{**KW, "epochs": 1})
    assert res.metrics["steps"] == 6
