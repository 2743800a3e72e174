"""SAE training speed on SmolLM2-135M, each figure against a baseline measured in the same run.

(a) A TopK SAE (d_in 576, 16x latents = 9216, k 32) trained from cached layer-15 activations by
    `interpkit.sae.train_sae`, against the machine's float32 matmul rate measured here: tokens/s,
    and the ratio to the roofline of the step's FLOPs (goal >= 0.85). interpkit's step does one
    dense [batch, 576] x [576, 9216] product (the encoder forward: every pre-activation is needed
    to pick the top k); the encoder weight gradient is a sparse product over the n·k chosen
    entries, and decoding gathers the k active decoder rows (forward and both gradients):
    FLOPs/token = 2·d·m + 8·k·d. Printed against that roofline, and against the roofline of the
    usual TopK step whose encoder weight gradient is dense (4·d·m + 6·k·d), plus the naive dense
    step (dense codes @ W_dec and its gradients) timed here.
(b) `train_sae` straight from the model (one epoch, activations streamed, never held whole)
    against the bare forward pass to layer 15 over the same texts: the ratio of tokens/s
    (goal >= 0.8: training hides behind the forward pass).

Run: .venv/bin/python benchmarks/sae_train.py [--batch 4096] [--steps 6] [--texts 120]
"""

from __future__ import annotations

import argparse
import statistics
import time
from importlib import resources

import numpy as np
import torch

from interpkit.models import load_model
from interpkit.sae import ArraySource, SAEConfig, make_sae, train_sae
from interpkit.sources import read_prompt_dataset, stream_activations

D_IN, EXPANSION, K, LAYER = 576, 16, 32, 15


def _median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _naive_step_seconds(x: torch.Tensor, repeat: int) -> float:
    """The dense TopK step: dense codes, dense decode and its gradients."""
    sae = make_sae(SAEConfig(architecture="topk", d_in=D_IN, d_sae=D_IN * EXPANSION, k=K), seed=0).train()
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step() -> None:
        pre = (x - sae.b_dec) @ sae.W_enc + sae.b_enc
        codes = sae._activate(pre)
        loss = (x - (codes @ sae.W_dec + sae.b_dec)).pow(2).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return _median_time(step, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=6, help="optimiser steps timed in (a)")
    parser.add_argument("--texts", type=int, default=120, help="texts of the packaged corpus used")
    args = parser.parse_args()
    torch.manual_seed(0)

    model = load_model("smollm2-135m", "nnsight")
    rows = read_prompt_dataset(str(resources.files("interpkit") / "data" / "axbench_dates.jsonl"))[: args.texts]
    texts = [r.text for r in rows]
    site = f"layer{LAYER}.resid_post"
    d_sae = D_IN * EXPANSION

    # ---- (b) baseline first: the bare forward pass to the layer over the texts --------------------
    start = time.perf_counter()
    acts = stream_activations(model, texts, site, pooling="tokens", batch_size=8, progress=False)
    forward_s = time.perf_counter() - start
    cached = acts[site, "tokens"].to_numpy()
    n_tokens = cached.shape[0]
    forward_tps = n_tokens / forward_s

    # ---- (a) matmul roofline and training from cached activations --------------------------------
    a = torch.randn(args.batch, D_IN)
    w = torch.randn(D_IN, d_sae)
    mm_s = _median_time(lambda: a @ w, 5)
    flops_per_s = 2 * args.batch * D_IN * d_sae / mm_s
    roofline_tps = flops_per_s / (2 * D_IN * d_sae + 8 * K * D_IN)
    usual_roofline_tps = flops_per_s / (4 * D_IN * d_sae + 6 * K * D_IN)

    rng = np.random.default_rng(0)
    need = args.batch * (args.steps + 1)
    reps = -(-need // n_tokens)
    data = np.concatenate([cached] * reps)[:need]
    data = data[rng.permutation(need)]
    result = train_sae(ArraySource(data, eval_fraction=0.0), architecture="topk", latent_dim=d_sae, k=K, epochs=1,
                       batch_size=args.batch, seed=0)
    train_tps = result.metrics["tokens_per_s"]
    naive_s = _naive_step_seconds(torch.from_numpy(data[: args.batch]), 3)
    naive_tps = args.batch / naive_s

    # ---- (b) train-sae straight from the model: one epoch, forward included ------------------------
    start = time.perf_counter()
    streamed = train_sae(model, texts=texts, site=site, architecture="topk", latent_dim=d_sae, k=K, epochs=1,
                         batch_size=1024, eval_fraction=0.0, seed=0)
    stream_s = time.perf_counter() - start
    stream_tps = n_tokens / stream_s

    print(f"machine: {torch.get_num_threads()} torch threads; float32 matmul "
          f"[{args.batch}x{D_IN}]@[{D_IN}x{d_sae}]: {flops_per_s / 1e9:.1f} GFLOP/s")
    print(f"(a) TopK SAE d_in {D_IN}, d_sae {d_sae}, k {K}, batch {args.batch}, {result.metrics['steps']} steps "
          "from cached activations")
    print(f"    train_sae:          {train_tps:8.0f} tokens/s")
    print(f"    roofline of its FLOPs (2dm+8kd):         {roofline_tps:8.0f} tokens/s   ratio "
          f"{train_tps / roofline_tps:.2f}  (goal >= 0.85)")
    print(f"    roofline of the dense-gradient step (4dm+6kd): {usual_roofline_tps:8.0f} tokens/s   ratio "
          f"{train_tps / usual_roofline_tps:.2f}")
    print(f"    naive dense step:   {naive_tps:8.0f} tokens/s   train_sae is {train_tps / naive_tps:.2f}x faster")
    print(f"(b) {len(texts)} texts, {n_tokens} tokens at {site}")
    print(f"    bare forward:       {forward_tps:8.0f} tokens/s ({forward_s:.1f} s)")
    print(f"    train_sae from model (1 epoch, streamed): {stream_tps:8.0f} tokens/s ({stream_s:.1f} s)   "
          f"ratio {stream_tps / forward_tps:.2f}  (goal >= 0.8)")
    print(f"    (its SAE: {streamed.metrics['steps']} steps; the forward-free step rate above bounds the rest)")


if __name__ == "__main__":
    main()
