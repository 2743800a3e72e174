"""Capture speed on SmolLM2-135M: backend overhead and early stop, measured in one run.

Prints, for the same batch:
  * raw HF forward through all 30 blocks vs capturing layer29.resid_post through each backend
    (same depth; goal: at most 1.03x the raw time);
  * capturing layer15.resid_post with early stop vs a naive full forward with
    output_hidden_states=True (goal: at least 1.8x faster).

Run: .venv/bin/python benchmarks/capture.py [--batch 8] [--tokens 64] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from interpkit.models import load_model
from interpkit.models.zoo import load_packaged


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()

    hf, _ = load_packaged("smollm2-135m", progress=True)
    tl = load_model("smollm2-135m", "transformer_lens")
    nn = load_model("smollm2-135m", "nnsight")

    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "rivers", "run"]
    texts = [" ".join(words[(i + j) % len(words)] for j in range(args.tokens)) for i in range(args.batch)]
    batch = nn.tokenize(texts, max_length=args.tokens)
    ids, mask = batch.input_ids, batch.attention_mask
    last = f"layer{hf.config.num_hidden_layers - 1}.resid_post"

    def raw_blocks():
        with torch.no_grad():
            hf.model(input_ids=ids, attention_mask=mask)

    def naive_hidden_states():
        with torch.no_grad():
            hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)

    cases = {
        "raw HF forward, 30 blocks": raw_blocks,
        f"transformer_lens capture {last}": lambda: tl.capture(batch, last),
        f"nnsight capture {last}": lambda: nn.capture(batch, last),
        "naive full forward, output_hidden_states": naive_hidden_states,
        "transformer_lens capture layer15.resid_post (early stop)": lambda: tl.capture(batch, "layer15.resid_post"),
        "nnsight capture layer15.resid_post (early stop)": lambda: nn.capture(batch, "layer15.resid_post"),
    }
    for fn in cases.values():  # warm-up
        fn()
    # Rounds interleave the cases (order rotated each round) and each ratio is taken within a
    # round, so drift in machine load hits numerator and denominator alike.
    samples: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_ in range(args.repeat):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            samples[name].append(_time(cases[name]))
    t = {name: statistics.median(values) for name, values in samples.items()}

    def ratio(num: str, den: str) -> float:
        return statistics.median(a / b for a, b in zip(samples[num], samples[den], strict=True))

    print(f"SmolLM2-135M, batch {ids.shape[0]} x {ids.shape[1]} tokens, {args.repeat} interleaved rounds, "
          f"{torch.get_num_threads()} threads (medians; ratios are medians of per-round ratios)")
    for name, value in t.items():
        print(f"  {name:<60s} {value * 1000:8.1f} ms")
    for backend in ("transformer_lens", "nnsight"):
        overhead = ratio(f"{backend} capture {last}", "raw HF forward, 30 blocks")
        speedup = ratio("naive full forward, output_hidden_states", f"{backend} capture layer15.resid_post (early stop)")
        print(f"{backend:>16s}: capture/raw = {overhead:.3f}x (goal <= 1.03x)   "
              f"early-stop speedup = {speedup:.2f}x (goal >= 1.8x)")


if __name__ == "__main__":
    main()
