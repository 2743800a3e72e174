"""Concept-block detection: same results as the in-memory path, memory flat in the number of concepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from interpkit.bench import bench, load_task, save_task
from interpkit.bench._metrics import NegativeCounts, imbalanced_f1
from interpkit.bench._task import tiled_task

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASK = Path(__file__).resolve().parents[1] / "data" / "axbench_quick_l10"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def _reference_f1(p: np.ndarray, n: np.ndarray, ratio: float) -> tuple[float, float, int]:
    """The pre-NegativeCounts formula: every distinct score of positives and negatives is a threshold."""
    w = ratio * p.size / n.size
    thresholds = np.unique(np.concatenate([p, n]))[::-1]
    tp = (p[None, :] >= thresholds[:, None]).sum(axis=1).astype(np.float64)
    fp_rows = (n[None, :] >= thresholds[:, None]).sum(axis=1)
    f1 = 2 * tp / np.maximum(2 * tp + fp_rows * w + (p.size - tp), 1e-300)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best]), int(fp_rows[best])


def test_negative_counts_summed_in_parts_give_the_f1_of_all_the_scores():
    rng = np.random.default_rng(0)
    for trial in range(200):
        p = np.round(rng.normal(1.0, 1.0, rng.integers(1, 12)), 1)
        n = np.round(rng.normal(0.0, 1.0, rng.integers(1, 60)), 1)  # rounded: ties within and across classes
        ratio = float(rng.choice([1.0, 10.0, 100.0]))
        f1, threshold, fp = _reference_f1(p, n, ratio)
        whole = imbalanced_f1(p, n, ratio=ratio)
        assert (whole["f1"], whole["threshold"], whole["counts"]["fp"]) == (f1, threshold, fp), trial
        parts = [NegativeCounts.start(p) for _ in range(3)]
        for part, chunk in zip(parts, np.array_split(n, 3), strict=True):
            part.add(chunk)
        for part in parts[1:]:
            parts[0].merge(part)
        assert imbalanced_f1(p, parts[0], ratio=ratio) == whole, trial
    # NaN and -inf sit at the pool's finite minimum, +inf at its maximum, as in the cleaned scores
    n = np.array([np.nan, -np.inf, 0.2, np.inf, 0.9])
    counts = NegativeCounts.start([1.0, 0.5])
    counts.add(n[:2])
    counts.add(n[2:])
    assert imbalanced_f1([1.0, 0.5], counts, ratio=2) == imbalanced_f1([1.0, 0.5], n, ratio=2)
    with pytest.raises(ValueError, match="other positives"):
        imbalanced_f1([2.0], counts)


def _numbers(res: dict) -> dict:
    """Every per-concept entry without the timing."""
    from interpkit.bench._report import json_ready

    out = {}
    for label, entry in json_ready(res)["methods"].items():
        assert entry["mean_auroc"] is not None
        for cid, value in entry["per_concept"].items():
            value = dict(value)
            info = {k: v for k, v in value.pop("info").items() if k != "seconds"}
            out[(label, cid)] = (value, info, entry["mean_auroc"], entry["ci95"])
    return out


def test_the_block_path_writes_the_numbers_of_the_in_memory_path(tiny, tmp_path):
    task = tiled_task(load_task(TASK), 6)
    kw = {"model": tiny, "layer": 1, "max_length": 60, "methods": ["diffmean", "probe", "bow"], "progress": False,
          "options": {"probe": {"epochs": 2}}}
    whole = bench("detect", task, concept_block=0, cache_dir=None, out=tmp_path / "whole", **kw)
    blocks = bench("detect", task, concept_block=4, cache_dir=tmp_path / "cache", out=tmp_path / "blocks", **kw)
    assert _numbers(blocks) == _numbers(whole)
    assert "f1_imbalanced" in blocks["methods"]["DiffMean"]["per_concept"]["5"]
    on_disk = [json.loads((tmp_path / d / "results.json").read_text()) for d in ("whole", "blocks")]
    assert _numbers(on_disk[1]) == _numbers(on_disk[0])
    assert {k: v for k, v in on_disk[1]["settings"].items() if k != "concept_block"} == \
        {k: v for k, v in on_disk[0]["settings"].items() if k != "concept_block"}
    res = on_disk[1]["resources"]
    assert res["per_rank"][0]["n_blocks"] == 2 and res["peak_rss_mb"] > 0
    assert 0 < res["held_acts_mb"] <= on_disk[0]["resources"]["held_acts_mb"]
    # a second block run reads the per-block activation and fit caches
    again = bench("detect", task, concept_block=4, cache_dir=tmp_path / "cache", **kw)
    assert _numbers(again).keys() == _numbers(blocks).keys()
    assert again["methods"]["DiffMean"]["per_concept"]["0"]["info"]["cached"] is True


def test_task_wide_methods_and_steering_refuse_blocks_and_large_runs_choose_them(tiny):
    from interpkit.bench._blocks import AUTO_BLOCK, resolve_block

    with pytest.raises(ValueError, match="SAE|sae"):
        resolve_block(4, mode="detect", n_concepts=10, methods=["diffmean", "sae"])
    with pytest.raises(ValueError, match="detection"):
        resolve_block(4, mode="steer", n_concepts=10, methods=["diffmean"])
    assert resolve_block(None, mode="detect", n_concepts=10, methods=["diffmean"]) == 0
    assert resolve_block(None, mode="detect", n_concepts=500, methods=["diffmean", "probe"]) == AUTO_BLOCK
    with pytest.warns(UserWarning, match="in memory"):
        assert resolve_block(None, mode="detect", n_concepts=500, methods=["diffmean", "criterion"]) == 0


def _peak_numpy(tiny, n_concepts: int, block: int) -> int:
    task = tiled_task(load_task(TASK), n_concepts)
    tracemalloc.start()
    try:
        bench("detect", task, model=tiny, layer=1, max_length=60, methods=["diffmean"], concept_block=block,
              cache_dir=None, progress=False)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_block_memory_does_not_grow_with_the_number_of_concepts(tiny):
    bench("detect", tiled_task(load_task(TASK), 2), model=tiny, layer=1, max_length=60, methods=["diffmean"],
          concept_block=1, cache_dir=None, progress=False)  # first-call imports are not the run's memory
    whole_small, whole_large = _peak_numpy(tiny, 6, 0), _peak_numpy(tiny, 24, 0)
    small, large = _peak_numpy(tiny, 6, 3), _peak_numpy(tiny, 24, 3)
    # the in-memory path holds every text's activations: 4x the concepts, ~4x the peak
    assert whole_large > 2.5 * whole_small
    # blocks of 3: the peak is one block's (plus per-concept results and fits, a few kB each); measured
    # 0.88 MB for 8 and 0.89 MB for 32 concepts in blocks of 4, against 1.8 and 6.8 MB in memory
    assert large < 1.25 * small, (small, large, whole_small, whole_large)
    assert large < whole_large / 2


def test_a_concept500_layout_with_rotated_files_loads_and_runs_in_blocks(tiny, tmp_path):
    task = tiled_task(load_task(TASK), 503)
    folder = save_task(task, tmp_path / "c503")
    assert {p.name for p in folder.iterdir()} == {"metadata.jsonl", "generator.json", "train_data.parquet",
                                                  "train_data_1.parquet", "latent_eval_data.parquet",
                                                  "latent_eval_data_1.parquet"}
    loaded = load_task(folder)
    assert len(loaded.concepts) == 503 and len(loaded.train) == len(task.train) and len(loaded.eval) == len(task.eval)
    assert loaded.concept(502).description == task.concept(502).description
    assert (loaded.train_rows(502)["output"].tolist() == task.train_rows(502)["output"].tolist())
    res = bench("detect", loaded, model=tiny, layer=1, max_length=60, methods=["diffmean"], concepts=[1, 501],
                concept_block=1, imbalance_ratio=None, cache_dir=None, progress=False)
    per = res["methods"]["DiffMean"]["per_concept"]
    # concept 501 repeats concept 1 of the source (503 = 2 * 251 + 1), and lives in the second files
    assert per["1"]["auroc"] == per["501"]["auroc"]


@pytest.mark.slow
def test_torchrun_two_ranks_run_blocks_and_merge_to_the_single_process_result(tiny, tmp_path):
    from interpkit._testing import tiny_hf_llama, tiny_tokenizer

    task_dir = save_task(tiled_task(load_task(TASK), 6), tmp_path / "task")
    model_dir = tmp_path / "model"
    tiny_hf_llama().save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    args = ["--task", str(task_dir), "--model", str(model_dir), "--layer", "1", "--max-length", "60",
            "--methods", "diffmean,probe", "--options", '{"probe": {"epochs": 2}}', "--no-cache", "--no-charts",
            "--quiet"]
    start = time.perf_counter()
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          "-m", "interpkit", "bench", "detect", *args, "--concept-block", "2",
                          "--out", str(tmp_path / "dist")], env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "peak RSS per rank (concept blocks of 2)" in run.stdout
    single = subprocess.run([sys.executable, "-m", "interpkit", "bench", "detect", *args, "--concept-block", "0",
                             "--out", str(tmp_path / "single")], env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    dist, one = (json.loads((tmp_path / d / "results.json").read_text()) for d in ("dist", "single"))
    assert dist["settings"]["world_size"] == 2 and [r["rank"] for r in dist["resources"]["per_rank"]] == [0, 1]
    assert _numbers(dist) == _numbers(one)
    assert time.perf_counter() - start < 600
