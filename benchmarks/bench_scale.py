"""Memory of a Concept500-sized detection run under torchrun: concept blocks against the whole task in memory.

Builds a Concept500-format task (``--concepts`` concepts, AxBench's folder layout: metadata.jsonl,
train_data*.parquet and latent_eval_data*.parquet rotated every 500 concepts, 216 shared
negatives, 72 training positives and ~77 eval rows per concept) by repeating the concepts of the
two shipped Concept10 tasks (`interpkit.bench._task.tiled_task`), and a tiny Llama from a config
(character tokenizer, ``--d-model`` wide, ``--layers`` deep). Then it runs, in the same call,

* **baseline**: ``torchrun --nproc-per-node N -m interpkit bench detect ... --concept-block 0``
  (every rank holds every text's activations, as before concept blocks);
* **blocks**: the same command with ``--concept-block B`` (each rank reads only its blocks);

both with ``--no-cache`` (the activations are computed in each run, none read from disk), and
prints each rank's peak RSS and the most activation memory it held at once, the ratios
baseline / blocks, the wall time of each run, and whether every per-concept number agrees.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale.py --concepts 500 --nproc 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCES = REPO.parent / "shared" / "data" / "axbench-concept10"


def build(work: Path, args: argparse.Namespace) -> tuple[Path, Path]:
    """The task folder and the model folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from interpkit._testing import VOCAB_SIZE, tiny_tokenizer
    from interpkit.bench import load_task, save_task
    from interpkit.bench._task import tiled_task

    sources = [load_task(p) for p in sorted(Path(args.sources).iterdir()) if (p / "metadata.jsonl").is_file()]
    task = tiled_task(sources, args.concepts, name=f"concept{args.concepts}-tiled")
    folder = save_task(task, work / task.name)
    torch.manual_seed(0)
    config = LlamaConfig(num_hidden_layers=args.layers, hidden_size=args.d_model, intermediate_size=2 * args.d_model,
                         num_attention_heads=4, num_key_value_heads=2, vocab_size=VOCAB_SIZE,
                         max_position_embeddings=args.max_length + 8, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model_dir = work / "model"
    LlamaForCausalLM(config).eval().save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    files = sorted(p.name for p in folder.iterdir())
    print(f"task {folder}: {len(task.concepts)} concepts, {len(task.train)} train rows, {len(task.eval)} eval rows; "
          f"files {files}")
    return folder, model_dir


def run(task: Path, model: Path, out: Path, block: int, args: argparse.Namespace) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(args.nproc),
           "-m", "interpkit", "bench", "detect", "--task", str(task), "--model", str(model), "--layer",
           str(args.layers - 1), "--max-length", str(args.max_length), "--batch-size", str(args.batch_size),
           "--methods", args.methods, "--concept-block", str(block), "--no-cache", "--no-charts", "--quiet",
           "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print("$", " ".join(cmd[1:]), flush=True)
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    print(done.stdout.strip())
    return json.loads((out / "results.json").read_text()), seconds


def numbers(res: dict) -> dict:
    out = {}
    for label, entry in res["methods"].items():
        for cid, value in entry["per_concept"].items():
            out[(label, cid)] = {k: v for k, v in value.items() if k != "info"}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concepts", type=int, default=500)
    p.add_argument("--sources", default=str(SOURCES), help="folder of the AxBench tasks whose concepts are repeated")
    p.add_argument("--nproc", type=int, default=2)
    p.add_argument("--block", type=int, default=32, help="concepts per block (default 32, the automatic size)")
    p.add_argument("--methods", default="diffmean,probe")
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--max-length", type=int, default=64, help="characters (= tokens) per text")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--work", default=None, help="folder for the task, model and results (default: a temporary one)")
    p.add_argument("--skip-baseline", action="store_true")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    task, model = build(work, args)
    runs = {}
    if not args.skip_baseline:
        runs["baseline"] = run(task, model, work / "baseline", 0, args)
    runs["blocks"] = run(task, model, work / "blocks", args.block, args)
    print(f"\n{args.concepts} concepts, {args.nproc} ranks, d_model {args.d_model}, {args.max_length} tokens per text, "
          f"methods {args.methods}:")
    for name, (res, seconds) in runs.items():
        ranks = "; ".join(f"rank {r['rank']}: peak RSS {r['peak_rss_mb']:.0f} MB, activations held "
                          f"{r['held_acts_mb']:.1f} MB" for r in res["resources"]["per_rank"])
        means = ", ".join(f"{k} {v['mean_auroc']:.4f}" for k, v in res["methods"].items())
        print(f"  {name:<8} (concept_block {res['settings']['concept_block']}): {ranks}; {seconds:.0f} s; "
              f"mean AUROC {means}")
    if "baseline" in runs:
        base, blocks = runs["baseline"][0]["resources"], runs["blocks"][0]["resources"]
        print(f"  baseline / blocks: peak RSS {base['peak_rss_mb'] / blocks['peak_rss_mb']:.2f}x, activations held "
              f"{base['held_acts_mb'] / blocks['held_acts_mb']:.1f}x (max over ranks)")
        same = numbers(runs["baseline"][0]) == numbers(runs["blocks"][0])
        print(f"  every per-concept number equal: {same}")


if __name__ == "__main__":
    main()
