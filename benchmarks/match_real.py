"""Cross-model matching on real models: AxBench concept directions and SAE latents across seeds.

Three experiments, all on the two Gemma-2-2B AxBench Concept10 tasks (``prod_2b_l10_v1`` and
``prod_2b_l20_v1``; the texts are model-independent):

1. **SmolLM2 layer 10 vs layer 20.** One DiffMean direction per concept at each layer, learned on
   ``train_data.parquet`` (the concept's positives minus the genre-matched shared negatives;
   mean-pooled activations, BOS and attention-sink positions excluded). Each direction's
   fingerprint is its activation signature: the projections of the mean-pooled activations of
   the held-out probe set (``latent_eval_data.parquet`` positives and negatives of the task) onto
   it. The two sides are matched one-to-one by `interpkit.match.match_fingerprints`; the accuracy
   is the fraction of concepts matched to the same concept.
2. **SmolLM2 (layer 20) vs MiniLM.** The same, with MiniLM's sentence embeddings (384 dims) as
   the second model's activations.
3. **SAE latents across seeds.** Two TopK SAEs (same data, different seeds) on SmolLM2 layer-15
   token activations of the train texts; signatures are each latent's activations over the
   tokens of held-out texts; the share of latents whose one-to-one partner is confident
   (signature Pearson >= 0.7; the decoder cosine of the pair is reported beside it), to compare
   with the 30-53% shared across seeds reported by Paulo & Belrose (2025).
4. **Validation by steering** (``--validate N`` concepts per task): each layer-10 <-> layer-20
   concept pair is validated by `interpkit.match._validate.validate_matches` (steer each layer
   with its direction at 1x the site's median token norm on the same neutral prompts; metric: the
   next-token mass of the concept's contrast tokens), and so is each shifted, wrong pair (concept
   i at layer 10 with concept i+1 at layer 20), whose validated share is the rule's false-positive
   rate.

Null for the accuracies: the same matching after permuting the probe axis of one side's
signatures (``--null`` permutations), which breaks every true correspondence and keeps each
signature's distribution. Activations are cached (`interpkit.sources.ActivationCache` for pooled
sets; a ``.npy`` file under --cache for the layer-15 tokens), so a second run skips the model.

Run: .venv/bin/python benchmarks/match_real.py --out match_real.json
     [--data /work/shared/data/axbench-concept10] [--max-length 64] [--sae-latents 2048]
     [--sae-k 32] [--sae-epochs 8] [--null 200] [--validate 0] [--cache .interpkit-cache/match_real]
     [--no-sae]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from interpkit._io import atomic_write_text

TASKS = ("prod_2b_l10_v1", "prod_2b_l20_v1")
SITES = ("layer10.resid_post", "layer20.resid_post")
SAE_SITE = "layer15.resid_post"
EXCLUDE = ("bos", "massive")
CONFIDENT = 0.7
"""Signature Pearson (and decoder cosine) a matched SAE pair needs to count as shared: the 0.7 of
Paulo & Belrose (2025), who call a latent shared when its Hungarian partner's cosine exceeds it."""


@dataclass
class Task:
    """One AxBench task: its train rows (directions) and probe rows (signatures)."""

    name: str
    concepts: dict[int, str]
    train: pd.DataFrame
    probe: pd.DataFrame


def _sample(frame: pd.DataFrame, by: str, n: int | None, seed: int) -> pd.DataFrame:
    """At most ``n`` rows per value of ``by`` (a seeded sample, original order kept)."""
    if n is None:
        return frame.reset_index(drop=True)
    parts = [g.sample(n=min(n, len(g)), random_state=seed) for _, g in frame.groupby(by, sort=True)]
    return pd.concat(parts).sort_index().reset_index(drop=True)


def load_tasks(data: Path, tasks: Sequence[str], *, train_per_concept: int | None = None,
               probe_per_class: int | None = None, seed: int = 0) -> list[Task]:
    """Train rows and the held-out probe rows (eval positives and negatives, no hard negatives).

    ``train_per_concept`` keeps that many positives per concept (every shared negative stays);
    ``probe_per_class`` keeps that many positives and negatives per concept in the probe set.
    """
    out = []
    for name in tasks:
        folder = data / name
        meta = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines() if line.strip()]
        train = pd.read_parquet(folder / "train_data.parquet")
        pos = _sample(train[train["concept_id"] >= 0], "concept_id", train_per_concept, seed)
        train = pd.concat([pos, train[train["concept_id"] < 0]]).reset_index(drop=True)
        probe = pd.read_parquet(folder / "latent_eval_data.parquet")
        probe = probe[probe["category"].isin(["positive", "negative"])]
        probe = _sample(probe.assign(_cls=probe["concept_id"].astype(str) + probe["category"]), "_cls",
                        probe_per_class, seed).drop(columns="_cls")
        out.append(Task(name, {int(m["concept_id"]): m["concept"] for m in meta}, train, probe))
    return out


def all_texts(tasks: Sequence[Task]) -> list[str]:
    """Every train and probe text of every task, deduplicated in first-seen order."""
    texts: dict[str, None] = {}
    for task in tasks:
        for frame in (task.train, task.probe):
            texts.update(dict.fromkeys(frame["output"].tolist()))
    return list(texts)


def smollm2_pooled(model: Any, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """Mean-pooled activations ``[n_texts, 576]`` at both sites (one cached streaming pass)."""
    from interpkit.sources import ActivationCache

    res = ActivationCache().get_or_compute(model, texts, list(SITES), pooling=("mean", "max"),
                                           max_length=max_length, exclude_positions=EXCLUDE, progress=False)
    return {site: res[site, "mean"].to_numpy() for site in SITES}


def minilm_pooled(texts: list[str], cache: Path) -> np.ndarray:
    """MiniLM sentence embeddings ``[n_texts, 384]`` (mean-pooled, unit norm), cached on disk."""
    from interpkit.models import SentenceEncoder

    return SentenceEncoder("minilm-l6", cache=cache / "minilm").encode(texts)


def diffmean_directions(task: Task, acts: np.ndarray, index: dict[str, int]) -> dict[int, np.ndarray]:
    """One unit DiffMean direction per concept: positives minus the shared negatives of its genre."""
    from interpkit.sources import contrast_direction

    train = task.train
    neg = train[train["concept_id"] == -1]
    out = {}
    for cid in sorted(task.concepts):
        pos = train[train["concept_id"] == cid]
        genre = pos["concept_genre"].iloc[0]
        negs = neg[neg["concept_genre"] == genre]
        rows = [index[t] for t in pos["output"]] + [index[t] for t in negs["output"]]
        labels = [1] * len(pos) + [0] * len(negs)
        out[cid] = contrast_direction(acts[rows], labels, normalize=True)
    return out


def signatures(task: Task, acts: np.ndarray, index: dict[str, int], directions: dict[int, np.ndarray]) -> np.ndarray:
    """``[n_concepts, n_probe]``: each direction's projection of every probe text's pooled activation."""
    probe = acts[[index[t] for t in task.probe["output"]]]
    return np.stack([probe @ directions[cid] for cid in sorted(directions)]).astype(np.float32)


# ---- SAE latents across seeds -----------------------------------------------------------------


def sae_tokens(model: Any, texts: list[str], max_length: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Layer-15 token activations of ``texts`` and each row's text index (cached as ``.npz``)."""
    import hashlib

    from interpkit.sources import dataset_hash, model_fingerprint, stream_activations

    key = hashlib.sha256(json.dumps([model_fingerprint(model), SAE_SITE, dataset_hash(texts), max_length,
                                     list(EXCLUDE)]).encode()).hexdigest()[:16]
    path = cache / f"tokens-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["values"], z["example_idx"]
    res = stream_activations(model, texts, SAE_SITE, pooling="tokens", max_length=max_length,
                             exclude_positions=EXCLUDE, progress=False)
    chunk = res[SAE_SITE, "tokens"].to_chunk(max_bytes=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, values=chunk.values.astype(np.float32), example_idx=chunk.example_idx)
    tmp.replace(path)
    return chunk.values, chunk.example_idx


def train_two_saes(tokens: np.ndarray, example_idx: np.ndarray, *, latents: int, k: int, epochs: int,
                   seeds: tuple[int, int], held_out: float = 0.15) -> dict[str, Any]:
    """Two TopK SAEs (seeds differ, data identical) and their codes on the held-out texts' tokens."""
    import torch

    from interpkit.sae import train_sae

    texts = np.unique(example_idx)
    rng = np.random.default_rng(1234)
    held = set(rng.choice(texts, size=max(1, int(round(held_out * len(texts)))), replace=False).tolist())
    mask = np.array([i in held for i in example_idx])
    train, test = tokens[~mask], tokens[mask]
    saes, metrics, codes = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        res = train_sae(train, architecture="topk", latent_dim=latents, k=k, epochs=epochs, batch_size=256,
                        seed=seed, eval_fraction=0.05)
        with torch.no_grad():
            z = res.sae.encode(torch.from_numpy(test)).numpy()
        saes.append(res.sae)
        codes.append(z)
        metrics.append({"seed": seed, "fvu": float(res.metrics["fvu"]), "l0": float(res.metrics["l0"]),
                        "dead_fraction": float(res.metrics["dead_fraction"]), "seconds": time.perf_counter() - t0})
    return {"saes": saes, "codes": codes, "metrics": metrics, "n_train_tokens": int(len(train)),
            "n_heldout_tokens": int(len(test)), "n_heldout_texts": len(held)}


# ---- matching --------------------------------------------------------------------------------


def direction_fingerprints(sigs: np.ndarray, task: Task, model: str) -> list[Any]:
    """One fingerprint per concept direction (activation signature over the task's probe texts)."""
    from interpkit.match import FeatureFingerprint

    probe_ids = tuple(f"{task.name}:{i}" for i in range(sigs.shape[1]))
    return [FeatureFingerprint(feature_id=f"c{cid}", model=model, label=task.concepts[cid],
                               activation_signature=sig, probe_ids=probe_ids)
            for cid, sig in zip(sorted(task.concepts), sigs, strict=True)]


def _match(left: list[Any], right: list[Any], null_samples: int = 2000) -> Any:
    from interpkit.match import match_fingerprints

    return match_fingerprints(left, right, weights={"activation": 1.0}, null_samples=null_samples)


def _permuted(fps: list[Any], rng: np.random.Generator) -> list[Any]:
    """The fingerprints with one shared permutation of the probe axis (breaks every correspondence)."""
    import dataclasses

    perm = rng.permutation(fps[0].activation_signature.shape[0])
    return [dataclasses.replace(fp, activation_signature=fp.activation_signature[perm]) for fp in fps]


def match_directions(left: list[Any], right: list[Any], n_null: int, seed: int = 0) -> dict[str, Any]:
    """Accuracy of the one-to-one assignment (same concept id), with the shuffled-probe null."""
    res = _match(left, right)
    truth = {fp.feature_id: fp.feature_id for fp in left}
    rng = np.random.default_rng(seed)
    null = [_match(left, _permuted(right, rng), null_samples=50).accuracy(truth) for _ in range(n_null)]
    lsig = np.stack([fp.activation_signature for fp in left])
    rsig = np.stack([fp.activation_signature for fp in right])
    corr = np.corrcoef(lsig, rsig)[: len(left), len(left):]
    return {
        "accuracy": res.accuracy(truth),
        "n_concepts": len(left),
        "null_accuracy_mean": float(np.mean(null)),
        "null_accuracy_p95": float(np.quantile(null, 0.95)),
        "p_value": float((1 + sum(a >= res.accuracy(truth) for a in null)) / (1 + len(null))),
        "chance": 1.0 / len(left),
        "mean_same_concept_pearson": float(np.mean(np.diag(corr))),
        "mean_other_concept_pearson": float(corr[~np.eye(len(left), dtype=bool)].mean()),
        "mean_match_score": float(np.mean([m.score for m in res.matches])),
        "score_null": {"mean": res.null["mean"], "std": res.null["std"]},
        "n_confident": len(res.confident()),
        "matches": [{"left": m.left_id, "right": m.right_id, "score": m.score, "confidence": m.confidence,
                     "null_z": m.null_z, "correct": m.left_id == m.right_id} for m in res.matches],
    }


def match_saes(run: dict[str, Any], n_null: int, seed: int = 0) -> dict[str, Any]:
    """Share of latents with a confident one-to-one partner across the two seeds."""
    from interpkit.match import FeatureFingerprint

    def fps(codes: np.ndarray, tag: str) -> tuple[list[Any], np.ndarray]:
        alive = np.flatnonzero(codes.std(axis=0) > 0)
        return [FeatureFingerprint(feature_id=f"{tag}{j}", activation_signature=codes[:, j]) for j in alive], alive

    (a, alive_a), (b, alive_b) = fps(run["codes"][0], "a"), fps(run["codes"][1], "b")
    t0 = time.perf_counter()
    res = _match(a, b)
    seconds = time.perf_counter() - t0
    wa, wb = (sae.W_dec.detach().float().numpy() for sae in run["saes"])
    wa, wb = (w / np.linalg.norm(w, axis=1, keepdims=True) for w in (wa, wb))
    scores = np.array([m.score for m in res.matches])
    dec = np.array([float(wa[int(m.left_id[1:])] @ wb[int(m.right_id[1:])]) for m in res.matches])
    d_sae = run["codes"][0].shape[1]
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(n_null):
        nres = _match(a, _permuted(b, rng), null_samples=200)
        null.append(sum(m.score >= CONFIDENT for m in nres.matches) / d_sae)
    return {
        "d_sae": d_sae,
        "alive_heldout": [int(len(alive_a)), int(len(alive_b))],
        "n_matched": len(res.matches),
        "shared_fraction_activation": float((scores >= CONFIDENT).sum() / d_sae),
        "shared_fraction_decoder": float((dec >= CONFIDENT).sum() / d_sae),
        "shared_fraction_both": float(((scores >= CONFIDENT) & (dec >= CONFIDENT)).sum() / d_sae),
        "confident_fraction_matcher": float(len(res.confident()) / d_sae),
        "null_shared_fraction_activation": float(np.mean(null)) if null else None,
        "median_match_score": float(np.median(scores)),
        "median_decoder_cosine": float(np.median(dec)),
        "match_seconds": seconds,
    }


def neutral_prompts(task: Task, genre: str, n: int, seed: int, words: int = 8) -> list[str]:
    """The first ``words`` words of ``n`` probe negatives of ``genre`` (texts without the concepts)."""
    neg = task.probe[(task.probe["category"] == "negative") & (task.probe["concept_genre"] == genre)]
    texts = sorted(set(neg["output"]))
    picks = np.random.default_rng(seed).choice(len(texts), size=min(n, len(texts)), replace=False)
    return [" ".join(texts[i].split()[:words]) for i in sorted(picks)]


def validate_concepts(model: Any, task: Task, directions: dict[str, dict[int, np.ndarray]], n: int, *,
                      seed: int = 0, n_prompts: int = 6) -> dict[str, Any]:
    """Validate layer-10 <-> layer-20 concept pairs by steering, and shifted (wrong) pairs as a null.

    Each concept's criterion metric is the next-token mass on its contrast tokens
    (`~interpkit.match._validate.target_tokens_from_contrast` of its train positives vs the
    genre's shared negatives); the prompts are the starts of held-out negatives of its genre.
    """
    from interpkit.causal import CausalFeature, LogitTargetMetric
    from interpkit.match import Match, MatchResult
    from interpkit.match._validate import target_tokens_from_contrast, validate_matches

    train = task.train
    cids = sorted(task.concepts)[:n]
    rows = []
    for shift, kind in ((0, "same_concept"), (1, "shifted")):
        for j, cid in enumerate(cids):
            other = cids[(j + shift) % len(cids)]
            pos = train[train["concept_id"] == cid]
            genre = pos["concept_genre"].iloc[0]
            neg = train[(train["concept_id"] == -1) & (train["concept_genre"] == genre)]["output"].tolist()
            metric = LogitTargetMetric(task.concepts[cid], target_tokens_from_contrast(model, pos["output"].tolist(), neg))
            left = [CausalFeature(feature_id=f"c{cid}", site=SITES[0], direction=directions[SITES[0]][cid])]
            right = [CausalFeature(feature_id=f"c{other}", site=SITES[1], direction=directions[SITES[1]][other])]
            pair = MatchResult(matches=[Match(left_id=f"c{cid}", right_id=f"c{other}", score=1.0, components={},
                                              confidence=1.0, null_z=None, mutual=True)],
                               weights={}, null={})
            m = validate_matches(pair, model, model, left, right, neutral_prompts(task, genre, n_prompts, seed),
                                 metric, top_n=1, strength=1.0, n_controls=3, seed=seed).matches[0]
            steer = m.validation["kinds"]["steer"]
            rows.append({"pair": kind, "left": f"c{cid}", "right": f"c{other}", "validated": m.validated,
                         "reasons": m.validation["reasons"], "left_effect": steer["left"]["effect"],
                         "right_effect": steer["right"]["effect"], "left_control_max": steer["left"]["control_max"],
                         "right_control_max": steer["right"]["control_max"]})
    summary = {kind: float(np.mean([r["validated"] for r in rows if r["pair"] == kind]))
               for kind in ("same_concept", "shifted")}
    return {"validated_fraction": summary, "pairs": rows}


# ---- the run ---------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All three experiments; returns the JSON-ready results."""
    from interpkit.models import load_model

    t_start = time.perf_counter()
    tasks = load_tasks(args.data, args.tasks.split(","), train_per_concept=args.train_per_concept,
                       probe_per_class=args.probe_per_class, seed=args.seed)
    texts = all_texts(tasks)
    index = {t: i for i, t in enumerate(texts)}
    model = load_model("smollm2-135m", "transformer_lens")
    t0 = time.perf_counter()
    pooled = smollm2_pooled(model, texts, args.max_length)
    pooled["minilm"] = minilm_pooled(texts, args.cache)
    timings = {"activations_s": time.perf_counter() - t0}
    pairs = {"layer10_vs_layer20": (SITES[0], SITES[1]), "smollm2_l20_vs_minilm": (SITES[1], "minilm"),
             "smollm2_l10_vs_minilm": (SITES[0], "minilm")}
    out: dict[str, Any] = {"directions": {}, "settings": {**{k: str(v) if isinstance(v, Path) else v
                                                          for k, v in vars(args).items()},
                                                       "n_texts": len(texts), "sites": list(SITES),
                                                       "exclude_positions": list(EXCLUDE)}}
    t0 = time.perf_counter()
    directions: dict[str, dict[str, dict[int, np.ndarray]]] = {}
    for task in tasks:
        fps = {}
        directions[task.name] = {}
        for space in (*SITES, "minilm"):
            dirs = directions[task.name][space] = diffmean_directions(task, pooled[space], index)
            fps[space] = direction_fingerprints(signatures(task, pooled[space], index, dirs), task, space)
        out["directions"][task.name] = {
            name: match_directions(fps[a], fps[b], args.null, seed=args.seed) for name, (a, b) in pairs.items()
        }
        out["directions"][task.name]["n_probe"] = len(task.probe)
        out["directions"][task.name]["n_train"] = len(task.train)
    timings["directions_s"] = time.perf_counter() - t0
    if args.validate:
        t0 = time.perf_counter()
        out["validation"] = {task.name: validate_concepts(model, task, directions[task.name], args.validate,
                                                          seed=args.seed) for task in tasks}
        timings["validation_s"] = time.perf_counter() - t0
    if not args.no_sae:
        t0 = time.perf_counter()
        train_texts = list(dict.fromkeys(t for task in tasks for t in task.train["output"]))
        tokens, ex = sae_tokens(model, train_texts, args.max_length, args.cache)
        timings["sae_tokens_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        sae_run = train_two_saes(tokens, ex, latents=args.sae_latents, k=args.sae_k, epochs=args.sae_epochs,
                                 seeds=(0, 1))
        timings["sae_train_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        out["sae"] = {**match_saes(sae_run, args.sae_null, seed=args.seed), "site": SAE_SITE,
                      "train": sae_run["metrics"], "n_train_tokens": sae_run["n_train_tokens"],
                      "n_heldout_tokens": sae_run["n_heldout_tokens"], "n_heldout_texts": sae_run["n_heldout_texts"],
                      "confident_threshold": CONFIDENT, "published_shared_range": [0.30, 0.53]}
        timings["sae_match_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - t_start
    out["timings"] = timings
    out["machine"] = {"platform": platform.platform(), "python": platform.python_version()}
    return out


def table(res: dict[str, Any]) -> str:
    """A plain-text table of the accuracies (and the SAE line)."""
    lines = [f"{'task':<16} {'pair':<24} {'accuracy':>8} {'null mean':>9} {'null p95':>8} {'p':>6} "
             f"{'r same':>7} {'r other':>7}"]
    for task, per in res["directions"].items():
        for pair, r in per.items():
            if not isinstance(r, dict):
                continue
            lines.append(f"{task:<16} {pair:<24} {r['accuracy']:>8.2f} {r['null_accuracy_mean']:>9.2f} "
                         f"{r['null_accuracy_p95']:>8.2f} {r['p_value']:>6.3f} {r['mean_same_concept_pearson']:>7.2f} "
                         f"{r['mean_other_concept_pearson']:>7.2f}")
    if "sae" in res:
        s = res["sae"]
        lines.append(
            f"SAE {s['site']} d_sae={s['d_sae']} (seeds 0/1, FVU {s['train'][0]['fvu']:.3f}/{s['train'][1]['fvu']:.3f}): "
            f"shared (signature r>={CONFIDENT}) {s['shared_fraction_activation']:.1%}, decoder cos>={CONFIDENT} "
            f"{s['shared_fraction_decoder']:.1%}, both {s['shared_fraction_both']:.1%}, matcher-confident "
            f"{s['confident_fraction_matcher']:.1%}; null {s['null_shared_fraction_activation']:.1%} "
            "(published 30-53%)")
    for task, v in res.get("validation", {}).items():
        f = v["validated_fraction"]
        lines.append(f"validated by steering ({task}, layer 10 vs 20): same concept {f['same_concept']:.0%}, "
                     f"shifted (wrong) pairs {f['shifted']:.0%}")
    lines.append(f"total {res['timings']['total_s']:.0f} s")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/axbench-concept10"))
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--max-length", type=int, default=32)
    parser.add_argument("--train-per-concept", type=int, default=40)
    parser.add_argument("--probe-per-class", type=int, default=20)
    parser.add_argument("--null", type=int, default=200)
    parser.add_argument("--sae-latents", type=int, default=2048)
    parser.add_argument("--sae-k", type=int, default=32)
    parser.add_argument("--sae-epochs", type=int, default=8)
    parser.add_argument("--sae-null", type=int, default=1)
    parser.add_argument("--no-sae", action="store_true")
    parser.add_argument("--validate", type=int, default=0,
                        help="concepts per task whose layer-10/20 pair is validated by steering (0: none)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".interpkit-cache/match_real"))
    args = parser.parse_args(argv)
    res = run(args)
    print(table(res))
    if args.out is not None:
        atomic_write_text(args.out, json.dumps(res, indent=2, default=float) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
