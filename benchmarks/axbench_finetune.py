"""LoRA and SFT (AxBench §5.12) on a real model at a small CPU budget: loss before/after, seconds, restore check.

For one concept of an AxBench task, each method is fitted on a few positives; the response-only
LM loss on those same training examples is measured under the plain model and under the method's
steering context, the seconds per optimiser step are reported, and the model's state dict is
compared byte for byte with its state before (it must be unchanged after fitting and steering).

Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/axbench_finetune.py [--task .../prod_2b_l10_v1]
     [--concept 0] [--examples 12] [--epochs 2] [--lora-lr 9e-4] [--sft-lr 4e-5] [--methods lora,sft]
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="/work/shared/data/axbench-concept10/prod_2b_l10_v1")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--layer", type=int, default=12)
    ap.add_argument("--concept", type=int, default=0)
    ap.add_argument("--examples", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=6)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--lora-lr", type=float, default=9e-4)
    ap.add_argument("--sft-lr", type=float, default=4e-5)
    ap.add_argument("--methods", default="lora,sft")
    args = ap.parse_args()

    import torch

    from interpkit.bench import build_context, load_task
    from interpkit.bench._run import quick_task
    from interpkit.bench.methods import get_method, response_loss
    from interpkit.bench.methods._finetune import _positive_examples
    from interpkit.models import load_model

    model = load_model(args.model, "nnsight")
    task = quick_task(load_task(args.task))
    ctx = build_context(task, model, layer=args.layer, max_length=128, progress=False)
    before = {n: p.detach().clone() for n, p in model.hf_model.state_dict().items()}
    common = {"epochs": args.epochs, "batch_size": args.batch_size, "grad_accum": 1,
              "max_train_tokens": args.tokens, "max_examples": args.examples}
    lrs = {"lora": args.lora_lr, "sft": args.sft_lr}
    out = {"model": args.model, "task": args.task, "concept": args.concept, **common}
    for name in [m.strip() for m in args.methods.split(",") if m.strip()]:
        method = get_method(name, lr=lrs[name], **common)
        fitted = method.fit(ctx, args.concept)
        examples = _positive_examples(ctx, args.concept, {**method.params(ctx), **common},
                                      int(ctx.seed) * 1000 + args.concept)
        plain = response_loss(model, examples, batch_size=args.batch_size)
        with fitted.steer_context.open(model, 1.0):
            tuned = response_loss(model, examples, batch_size=args.batch_size)
        after = model.hf_model.state_dict()
        same = all(torch.equal(before[n], after[n]) for n in before)
        info = fitted.info
        out[name] = {"lr": lrs[name], "steps": info["steps"], "n_examples": info["n_examples"],
                     "step_losses": info["loss"], "loss_plain": round(plain, 4), "loss_tuned": round(tuned, 4),
                     "seconds": info["seconds"], "seconds_per_step": round(info["seconds"] / max(info["steps"], 1), 2),
                     "weights_unchanged": same, **({"modules": info["modules"]} if "modules" in info else {})}
    print(json.dumps(out, indent=1))  # noqa: T201


if __name__ == "__main__":
    main()
