"""How well each criterion compiler detects AxBench concepts: AUROC per concept and compiler.

For both Gemma-2-2B AxBench Concept10 tasks, every concept description is used as the criterion
and every compiler scores that concept's ``latent_eval_data.parquet`` rows: positives (written
while weaving the concept in) against negatives (written while avoiding it); hard negatives are
left out, as AxBench's AUROC does (docs/AXBENCH.md §3.4). The number per task is the unweighted
mean over concepts. Compilers come from ``interpkit.criterion.get_compiler``: keyword, embedding,
judge (SmolLM2 by default) and generative (its kept generated examples are the prototypes). The
logit compiler is reported as n/a: it needs target tokens, which a concept description lacks.

Sentence encodings and chat answers are cached under --cache, so a re-run is cheap. A text a
compiler could not score (score None) counts as 0.5 and is counted in ``n_unscored``.

Run: .venv/bin/python benchmarks/criterion_auroc.py --compilers keyword,embedding --out auroc.json
     [--data /work/shared/data/axbench-concept10] [--tasks prod_2b_l10_v1,prod_2b_l20_v1]
     [--concepts 0,1] [--n-per-class 12] [--seed 0] [--chat local] [--generative-n 8]
     [--cache .interpkit-cache/criterion_auroc]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interpkit._http import JsonCache
from interpkit._io import atomic_open, atomic_write_text
from interpkit.criterion import Criterion, get_compiler

TASKS = ("prod_2b_l10_v1", "prod_2b_l20_v1")
LOGIT_NA = ("the logit compiler scores next-token mass on user-given target tokens; an AxBench concept "
            "description has none, and interpkit never invents a token list")


class CachedEncoder:
    """A sentence encoder whose embeddings persist in one ``.npz`` file keyed by text hash."""

    def __init__(self, name: str, folder: Path) -> None:
        from interpkit.models import sentence_encoder

        self.name = name
        self.inner = sentence_encoder(name)
        self.file = folder / f"encodings-{name}.npz"
        self.store: dict[str, np.ndarray] = {}
        if self.file.is_file():
            with np.load(self.file) as z:
                self.store = {k: z[k] for k in z.files}
        self.dirty = False

    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.store}.items())
        if todo:
            for (k, _), v in zip(todo, self.inner.encode([t for _, t in todo]), strict=True):
                self.store[k] = v
            self.dirty = True
        return np.stack([self.store[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def similarity(self, a: str | Sequence[str], b: str | Sequence[str]) -> np.ndarray:
        return self.encode(a) @ self.encode(b).T

    def save(self) -> None:
        if self.dirty:
            with atomic_open(self.file, "wb") as fh:
                np.savez(fh, **self.store)
            self.dirty = False


class CachedChat:
    """Wraps a chat model: ``complete``/``choice_probs``/``continuation_logprobs`` answers persist in a
    JSON cache (the judge's ``topic`` method needs ``continuation_logprobs``; without it the judge
    would fall back to ``rating``)."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner = inner
        self.name = getattr(inner, "name", repr(inner))
        self.cache = JsonCache(folder / "chat")

    def _key(self, kind: str, *parts: Any) -> str:
        return json.dumps([kind, self.name, *parts], sort_keys=True, ensure_ascii=False)

    def complete(self, messages: list[dict[str, str]], *, max_tokens: int = 128, temperature: float = 0.0) -> str:
        key = self._key("complete", messages, max_tokens, temperature)
        hit = self.cache.get(key)
        if hit is None:
            hit = self.inner.complete(messages, max_tokens=max_tokens, temperature=temperature)
            if temperature == 0.0:
                self.cache.put(key, hit)
        return hit

    def __getattr__(self, name: str) -> Any:
        if name == "continuation_logprobs" and hasattr(self.inner, name):
            return self._continuation_logprobs
        raise AttributeError(name)

    def _continuation_logprobs(self, conversations: Sequence[list[dict[str, str]]], continuation: str) -> np.ndarray:
        keys = [self._key("continuation_logprobs", m, continuation) for m in conversations]
        out: list[Any] = [self.cache.get(k) for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            fresh = self.inner.continuation_logprobs([conversations[i] for i in todo], continuation)
            for i, v in zip(todo, fresh, strict=True):
                out[i] = float(v)
                self.cache.put(keys[i], out[i])
        return np.asarray(out, dtype=np.float64)

    def choice_probs(self, messages: list[dict[str, str]], choices: Sequence[str]) -> np.ndarray | None:
        return self.choice_probs_batch([messages], choices)[0]

    def choice_probs_batch(self, conversations: Sequence[list[dict[str, str]]],
                           choices: Sequence[str]) -> list[np.ndarray | None]:
        keys = [self._key("choice_probs", m, list(choices)) for m in conversations]
        out: list[Any] = [self.cache.get(k) for k in keys]
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            if hasattr(self.inner, "choice_probs_batch"):
                fresh = self.inner.choice_probs_batch([conversations[i] for i in todo], choices)
            else:
                fresh = [self.inner.choice_probs(conversations[i], choices) for i in todo]
            for i, v in zip(todo, fresh, strict=True):
                out[i] = "none" if v is None else np.asarray(v, dtype=float).tolist()
                self.cache.put(keys[i], out[i])
        return [None if v == "none" else np.asarray(v, dtype=float) for v in out]


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half), as sklearn's roc_auc_score."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def load_task(data: Path, task: str, n_per_class: int | None, seed: int) -> list[dict[str, Any]]:
    """One entry per concept: id, description, texts and 1/0 labels (hard negatives dropped)."""
    df = pd.read_parquet(data / task / "latent_eval_data.parquet")
    meta = [json.loads(line) for line in (data / task / "metadata.jsonl").read_text().splitlines() if line.strip()]
    out = []
    for m in meta:
        cid = int(m["concept_id"])
        rows = df[df.concept_id == cid]
        parts = []
        for cat, lab in (("positive", 1), ("negative", 0)):
            sub = rows[rows.category == cat]
            if n_per_class is not None and len(sub) > n_per_class:
                sub = sub.sample(n=n_per_class, random_state=seed + cid)
            parts.append((sub.output.tolist(), [lab] * len(sub)))
        out.append({"concept_id": cid, "concept": m["concept"], "texts": parts[0][0] + parts[1][0],
                    "labels": np.array(parts[0][1] + parts[1][1])})
    return out


def build_compiler(name: str, args: argparse.Namespace, cache: Path, state: dict[str, Any]) -> Any:
    """The compiler for ``name`` with cached encoders / chat answers."""
    if name == "keyword":
        return get_compiler("keyword")
    if name == "embedding":
        state.setdefault("encoder", CachedEncoder("minilm-l6", cache))
        return get_compiler("embedding", encoder=state["encoder"])
    if name in ("judge", "generative"):
        if "chat" not in state:
            from interpkit.models._chat import chat_model

            state["chat"] = CachedChat(chat_model(args.chat), cache)
        if name == "generative":
            state.setdefault("encoder", CachedEncoder("minilm-l6", cache))
            return get_compiler(name, chat=state["chat"], encoder=state["encoder"],
                                n_positive=args.generative_n, n_negative=args.generative_n)
        return get_compiler(name, chat=state["chat"])
    return get_compiler(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/axbench-concept10"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--compilers", default="keyword,embedding,judge,generative,logit")
    parser.add_argument("--concepts", default=None, help="comma-separated concept ids (default: all)")
    parser.add_argument("--n-per-class", type=int, default=None, help="subsample per class (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generative-n", type=int, default=8,
                        help="examples the generative compiler writes per class and concept (default 8)")
    parser.add_argument("--chat", default="local", help="chat model for judge/generative (local or api)")
    parser.add_argument("--cache", type=Path, default=Path(".interpkit-cache/criterion_auroc"))
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    args = parser.parse_args()
    names = [c.strip() for c in args.compilers.split(",") if c.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    args.cache.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {}
    results: dict[str, Any] = {}
    seconds: dict[str, float] = dict.fromkeys(names, 0.0)
    for task in tasks:
        concepts = load_task(args.data, task, args.n_per_class, args.seed)
        if args.concepts is not None:
            wanted = {int(c) for c in args.concepts.split(",") if c.strip()}
            concepts = [c for c in concepts if c["concept_id"] in wanted]
        results[task] = {}
        for c in concepts:
            entry: dict[str, Any] = {"concept": c["concept"], "n_positive": int(c["labels"].sum()),
                                     "n_negative": int((1 - c["labels"]).sum())}
            for name in names:
                if name == "logit":
                    entry[name] = {"auroc": None, "why": LOGIT_NA}
                    continue
                t0 = time.perf_counter()
                comp = build_compiler(name, args, args.cache, state)
                scored = comp.score_texts(Criterion(text=c["concept"]), c["texts"])
                seconds[name] += time.perf_counter() - t0
                s = np.array([0.5 if x.score is None else x.score for x in scored])
                entry[name] = {"auroc": auroc(c["labels"], s), "n_unscored": sum(x.score is None for x in scored),
                               "n_labelled_positive": sum(x.label == "positive" for x in scored),
                               "n_uncertain": sum(x.label == "uncertain" for x in scored)}
            results[task][c["concept_id"]] = entry
            if "encoder" in state:
                state["encoder"].save()
    means = {task: {n: _mean([e[n]["auroc"] for e in results[task].values()]) for n in names} for task in tasks}
    _print_table(results, means, names, seconds)
    payload = {"config": {"data": str(args.data), "tasks": tasks, "compilers": names,
                          "concepts": args.concepts, "n_per_class": args.n_per_class, "seed": args.seed, "chat": args.chat,
                          "generative_n": args.generative_n},
               "means": means, "seconds": seconds, "results": results}
    atomic_write_text(args.out, json.dumps(payload, indent=1, default=str) + "\n")
    print(f"wrote {args.out}")


def _mean(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None


def _fmt(v: float | None) -> str:
    return "   n/a" if v is None else f"{v:6.3f}"


def _print_table(results: dict[str, Any], means: dict[str, Any], names: list[str], seconds: dict[str, float]) -> None:
    print(f"{'task':16} {'id':>3} {'concept':46} " + " ".join(f"{n[:10]:>10}" for n in names))
    for task, concepts in results.items():
        for cid, e in concepts.items():
            print(f"{task:16} {cid:>3} {e['concept'][:46]:46} "
                  + " ".join(f"{_fmt(e[n]['auroc']):>10}" for n in names))
        print(f"{task:16} {'':>3} {'MEAN':46} " + " ".join(f"{_fmt(means[task][n]):>10}" for n in names))
    print("seconds: " + ", ".join(f"{n} {seconds[n]:.1f}" for n in names if n != "logit"))
    if "logit" in names:
        print(f"logit: n/a ({LOGIT_NA})")


if __name__ == "__main__":
    main()
