"""The bench activation pass against the bare early-exit forward, on the same texts in the same run.

The bench's activation pass (`interpkit.bench.token_activations`: tokenize, forward to the site,
keep the scored positions of each text) should cost no more than running the model's blocks up to
the site on those tokens. This script times, on the first ``--n`` texts of an AxBench task
(chat-formatted as the bench formats them), with the same tokenizer, truncation and batch size:

* **bare**: the HF model's own forward with its decoder blocks cut to 0..L, on length-sorted,
  right-padded batches (no hooks, no wrapper, no copies: the least any activation pass can do);
* **bench**: `token_activations(..., cache_dir=None)` for ``layer{L}.resid_post``;

and prints tokens per second of each (real tokens, padding not counted) and the ratio
bench / bare (goal: >= 0.9). Run it with the thread count the benchmarks run with:

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_acts.py --task ../shared/data/axbench-concept10/prod_2b_l10_v1 --layer 12
"""

from __future__ import annotations

import argparse
import time

import torch


def _bare(hf, batches, layer):
    """The HF model's own forward with only blocks 0..layer (the rest cut off); real-token count."""
    core = hf.model
    blocks = core.layers
    n = 0
    try:
        core.layers = blocks[: layer + 1]  # early exit: the later blocks never run
        with torch.no_grad():
            for ids, mask in batches:
                core(input_ids=ids, attention_mask=mask, use_cache=False)
                n += int(mask.sum())
    finally:
        core.layers = blocks
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, help="an AxBench task folder")
    parser.add_argument("--layer", type=int, default=12)
    parser.add_argument("--n", type=int, default=160, help="texts (train split first)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--backend", default="nnsight")
    args = parser.parse_args()

    from interpkit.bench import load_task, token_activations
    from interpkit.bench._prompts import format_pair
    from interpkit.models import load_model

    model = load_model("smollm2-135m", args.backend)
    task = load_task(args.task)
    frame = task.train.head(args.n)
    pairs = [format_pair(model.tokenizer, str(i), str(o)) for i, o in zip(frame["input"], frame["output"], strict=True)]
    texts = [p[0] for p in pairs]
    prefix, bos = pairs[0][1], pairs[0][2]
    site = f"layer{args.layer}.resid_post"
    hf = model.hf_model
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    batches = []
    for start in range(0, len(order), args.batch_size):
        b = model.tokenize([texts[i] for i in order[start : start + args.batch_size]], max_length=args.max_length,
                           prepend_bos=bos)
        batches.append((b.input_ids, b.attention_mask))
    _bare(hf, batches[:1], args.layer)  # warm-up
    t0 = time.perf_counter()
    n_tokens = _bare(hf, batches, args.layer)
    bare_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acts = token_activations(model, texts, site, prefix_length=prefix, prepend_bos=bos, max_length=args.max_length,
                             batch_size=args.batch_size, cache_dir=None, progress=False)
    bench_s = time.perf_counter() - t0
    bare_tps, bench_tps = n_tokens / bare_s, n_tokens / bench_s
    print(f"{len(texts)} texts, {n_tokens} tokens, {site}, batch {args.batch_size}, threads {torch.get_num_threads()}")
    print(f"bare early-exit forward : {bare_s:7.2f} s  {bare_tps:7.0f} tokens/s")
    print(f"bench token_activations : {bench_s:7.2f} s  {bench_tps:7.0f} tokens/s  ({acts.n_tokens} rows kept)")
    print(f"ratio bench / bare      : {bench_tps / bare_tps:.2f}  (goal >= 0.90)")


if __name__ == "__main__":
    main()
