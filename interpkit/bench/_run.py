"""Run the benchmark: fit every method per concept, score detection and steering, write the results.

`run_detect` follows AxBench §3: each method's per-text score on the concept's eval rows
(max-pooled per-token scores for the representation methods), min-max per concept, AUROC of
positives vs negatives, hard-negative accuracy at the Youden threshold, and F1 in the 1:100
imbalanced setting (§2.7). `run_steer` follows §4 through `evaluate_steering`. `bench` is what the
CLI calls: it builds the context (one activation pass, cached), optionally shards concepts over
``torch.distributed`` ranks (``torchrun``: each rank takes every ``world``-th concept, rank 0
merges), and writes results.json, results.md, the learned directions as a FeatureTable and, with a
chart writer (the CLI passes `interpkit.viz.write_bench_charts`), the charts.

Fitted directions are cached on disk per (activations, method, options, seed, concept), so a
steering run after a detection run on the same site does not train ReFT-r1 again.

Example:
    >>> from interpkit.bench import bench  # doctest: +SKIP
    >>> res = bench("detect", "axbench-concept10/prod_2b_l10_v1", model="smollm2-135m", layer=12,
    ...             methods=["diffmean", "probe"], out="runs/l10")  # doctest: +SKIP
    >>> res["methods"]["DiffMean"]["mean_auroc"]  # doctest: +SKIP
    0.93
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._doctor import environment
from interpkit._version import __version__

__all__ = [
    "DETECT_METHODS",
    "STEER_METHODS",
    "bench",
    "fit_method",
    "quick_task",
    "run_detect",
    "run_steer",
]

DETECT_METHODS = ("diffmean", "pca", "lat", "probe", "ssv", "reft-r1", "sae", "sae-a", "bow", "prompt", "random",
                  "criterion")
STEER_METHODS = ("prompt", "diffmean", "reft-r1", "sae", "random")
QUICK = {"concepts": 2, "max_per_class": 8, "max_length": 128}
"""``--quick``: the first 2 concepts, at most 8 rows per class, texts cut to 128 tokens."""


def quick_task(task: Any, *, concepts: int = QUICK["concepts"], max_per_class: int = QUICK["max_per_class"],
               seed: int = 42) -> Any:
    """The reduced task of a ``--quick`` run."""
    return task.subset(concepts=concepts, max_per_class=max_per_class, seed=seed)


def _fit_key(ctx: Any, method: Any, cid: int) -> str:
    from ._context import _acts_key

    h = hashlib.sha256()
    if "acts_key" not in ctx.memo:  # hashed once per context, not once per (method, concept)
        ctx.memo["acts_key"] = _acts_key(ctx.train_acts)
    # every hyper-parameter in force (defaults included: a changed default must not return a stale fit) and the
    # method's fit_version
    h.update(json.dumps({"acts": ctx.memo["acts_key"], "site": ctx.site, "method": method.name,
                         "params": method.params(ctx), "fit_version": method.fit_version,
                         "seed": ctx.seed, "cid": cid,
                         "concept": ctx.task.concept(cid).description, "n_train": len(ctx.train_texts)},
                        sort_keys=True, default=str).encode())
    return h.hexdigest()[:24]


def fit_method(ctx: Any, method: Any, cid: int) -> Any:
    """``method.fit(ctx, cid)``, read from / written to the fitted-direction cache for vector methods."""
    from .methods import Fitted

    cacheable = ctx.cache_dir is not None and getattr(method, "cacheable", method.name not in ("bow", "prompt"))
    path = None
    if cacheable:
        path = ctx.cache_dir / "bench_fits" / f"{method.name}-{_fit_key(ctx, method, cid)}.npz"
        if path.is_file():
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                return Fitted(method=meta["method"], concept_id=cid,
                              vector=z.get("vector"), steer_vector=z.get("steer_vector"),
                              score=meta["score"], bias=meta["bias"], threshold=meta["threshold"],
                              info={**meta["info"], "cached": True})
    start = time.perf_counter()
    fitted = method.fit(ctx, cid)
    fitted.info.setdefault("seconds", round(time.perf_counter() - start, 3))
    if path is not None and fitted.score != "text":
        arrays = {k: np.asarray(v, np.float32) for k, v in (("vector", fitted.vector),
                                                            ("steer_vector", fitted.steer_vector)) if v is not None}
        meta = {"method": fitted.method, "score": fitted.score, "bias": float(fitted.bias),
                "threshold": float(fitted.threshold), "info": fitted.info}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, meta=np.asarray(json.dumps(meta, default=_json_default)), **arrays)
        os.replace(tmp, path)
    return fitted


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def run_detect(
    ctx: Any,
    methods: Sequence[str | Any],
    *,
    concepts: Sequence[int] | None = None,
    imbalance_ratio: float | None = 100.0,
    progress: bool = True,
    keep_fitted: dict | None = None,
    keep_positive_scores: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Concept detection for every method and concept of ``ctx.task`` (or ``concepts``).

    The imbalanced F1 (``imbalance_ratio``) pools the eval negatives of every concept of
    ``ctx.task``. ``keep_fitted`` / ``keep_positive_scores`` (``{label: {cid: ...}}``) receive each
    fit and, for methods cheap to score, the raw scores of the concept's eval positives (the
    concept-block path pools the negatives from them, `interpkit.bench._blocks`).

    Returns:
        ``{"methods": {label: {"per_concept": {cid: {...metrics, "info": ...}}}}}`` without the
        means (`interpkit.bench._report.merge_results` adds them) and the max raw activation per
        concept (``max_act``, the steering magnitude's scale).
    """
    from ._metrics import concept_detection, imbalanced_f1
    from .methods import get_method

    cids = [c.id for c in ctx.task.concepts] if concepts is None else list(concepts)
    neg_pool = np.flatnonzero(ctx.task.eval["category"].to_numpy() == "negative")
    out: dict[str, Any] = {}
    for spec in methods:
        method = get_method(spec, **ctx.method_options(spec)) if isinstance(spec, str) else spec
        if not method.detects:
            continue
        per: dict[str, Any] = {}
        t0 = time.perf_counter()
        for cid in cids:
            try:
                fitted = fit_method(ctx, method, cid)
                idx = ctx.eval_split(cid)
                scores = np.asarray(method.scores(ctx, fitted, "eval", idx), dtype=np.float64)
            except (ValueError, RuntimeError) as exc:
                # one concept a method cannot handle (e.g. a criterion that leaves too few confident
                # texts) is recorded with its reason; the method's mean is over the other concepts
                per[str(cid)] = {"auroc": None, "error": f"{type(exc).__name__}: {exc}"}
                if log is not None:
                    log(f"  {method.label:<14} concept {cid}: failed ({exc})")
                continue
            if keep_fitted is not None:
                keep_fitted.setdefault(method.label, {})[cid] = fitted
            cats = ctx.eval_categories(cid)
            res = concept_detection(scores, cats)
            cheap = getattr(method, "cheap_scoring", method.name != "prompt")
            pos = scores[np.asarray(cats) == "positive"]
            if keep_positive_scores is not None and cheap:
                keep_positive_scores.setdefault(method.label, {})[cid] = pos
            if imbalance_ratio and cheap:
                pool = np.asarray(method.scores(ctx, fitted, "eval", neg_pool), dtype=np.float64)
                res["f1_imbalanced"] = imbalanced_f1(pos, pool, ratio=imbalance_ratio)
            res["info"] = fitted.info
            per[str(cid)] = res
            if log is not None:
                log(f"  {method.label:<14} concept {cid}: AUROC {res['auroc']:.3f}")
        out[method.label] = {"name": method.name, "per_concept": per, "seconds": round(time.perf_counter() - t0, 2),
                             "settings": getattr(method, "options", {})}
    return {"methods": out}


def run_steer(
    ctx: Any,
    methods: Sequence[str],
    *,
    judge: Any = "local",
    concepts: Sequence[int] | None = None,
    factors: Sequence[float] | None = None,
    n_instructions: int = 10,
    max_new_tokens: int = 128,
    temperature: float = 1.0,
    batch_size: int = 16,
    instructions: str | os.PathLike[str] | None = None,
    progress: bool = True,
    generations_path: Path | None = None,
    mode: str = "addition",
) -> dict[str, Any]:
    """Steering for every method (plus the Prompt baseline when listed) per AxBench §4.

    The steering magnitude per concept is the method's max detection score on the concept's eval
    rows (§4.2), so detection scores are computed here too (cheap once activations are cached);
    steer-only methods (LoRA, SFT) have none. ``mode`` is the intervention
    (``_interventions.STEER_MODES``); with ``factors`` None the grid is the mode's
    (`~interpkit.bench._interventions.mode_factors`: AxBench's SAE clamping grid for the SAE modes).
    """
    from ._interventions import factor_grid
    from ._steer import evaluate_steering
    from .methods import get_method

    cids = [c.id for c in ctx.task.concepts] if concepts is None else list(concepts)
    fitted: dict[str, dict[int, Any]] = {}
    max_acts: dict[str, dict[int, float]] = {}
    include_prompt = False
    for name in methods:
        if name == "prompt":
            include_prompt = True
            continue
        method = get_method(name, **ctx.method_options(name))
        if not method.steers:
            raise ValueError(f"method {name!r} cannot steer (it scores texts); steering methods: {STEER_METHODS}")
        for cid in cids:
            f = fit_method(ctx, method, cid)
            fitted.setdefault(method.label, {})[cid] = f
            if not method.detects:
                continue
            scores = np.asarray(method.scores(ctx, f, "eval", ctx.eval_split(cid)), dtype=np.float64)
            max_acts.setdefault(method.label, {})[cid] = float(np.nanmax(scores)) if scores.size else 0.0
    judge_obj = _judge(ctx, judge)
    return evaluate_steering(
        ctx, fitted, judge_obj, max_acts=max_acts, concepts=cids, factors=factor_grid(mode, factors), mode=mode,
        n_instructions=n_instructions, max_new_tokens=max_new_tokens, temperature=temperature,
        batch_size=batch_size, seed=ctx.seed, include_prompt=include_prompt, instruction_source=instructions,
        progress=progress, generations=generations_path,
    )


def _judge(ctx: Any, judge: Any) -> Any:
    from ._judge import LMJudge, LocalJudge

    if judge in (None, "local"):
        j = LocalJudge(encoder=ctx.encoder, model=ctx.model)
        j.calibrate(ctx.task, max_rows=48 if ctx.quick else 300)
        return j
    if isinstance(judge, str):
        from interpkit.models import chat_model

        return LMJudge(chat_model(judge))
    return judge


def _world() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


def _gather(obj: Any, world: int) -> list[Any]:
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    parts: list[Any] = [None] * world
    dist.all_gather_object(parts, obj)
    return parts


def bench(
    mode: str,
    task: Any,
    *,
    model: Any = "smollm2-135m",
    layer: int | str | None = None,
    site: str | None = None,
    methods: Sequence[str] | None = None,
    out: str | os.PathLike[str] | None = None,
    quick: bool = False,
    concepts: Sequence[int] | None = None,
    max_length: int | None = 256,
    batch_size: int = 8,
    seed: int = 42,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    sae: Any = None,
    sae_settings: Mapping[str, Any] | None = None,
    chat: Any = None,
    judge: Any = "local",
    factors: Sequence[float] | None = None,
    n_instructions: int = 10,
    max_new_tokens: int = 128,
    gen_batch_size: int = 16,
    instructions: str | os.PathLike[str] | None = None,
    steer_mode: str = "addition",
    imbalance_ratio: float | None = 100.0,
    layer_choice: str | None = None,
    cache_dir: Any = True,
    charts: Callable[[Mapping[str, Any], Path], Any] | None = None,
    backend: str = "nnsight",
    tokens: str = "all",
    concept_block: int | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    command: str | None = None,
) -> dict[str, Any]:
    """Run ``mode`` (``"detect"`` or ``"steer"``) and write the results to ``out``.

    Args:
        mode: ``"detect"`` or ``"steer"``.
        task: an `AxBenchTask` or its folder.
        model: a ``ModelWrapper`` or name (default: the packaged SmolLM2-135M-Instruct).
        layer / site: where to read and steer (default: `default_layer`, ~40 % depth); ``layer="auto"``
            chooses it on the training texts alone (`interpkit.bench._layers.choose_layer`: DiffMean
            cross-validated per candidate layer) and records every candidate's score as ``layer_selection``.
        methods: registry names (default `DETECT_METHODS` / `STEER_METHODS`).
        out: output folder (results.json, results.md, features/, charts/ with a ``charts`` writer;
            steering adds generations.jsonl).
        quick: the reduced run of `QUICK` (tests, smoke checks).
        concepts: only these concept ids.
        max_length: token limit per text (``quick``: 64).
        batch_size: texts per forward pass.
        seed: seed of every random choice (42 as AxBench).
        options: per-method hyper-parameter overrides.
        sae: an SAE (object or path) for the SAE rows; default: trained on the task and cached.
        sae_settings: overrides of the trained SAE's settings.
        chat: chat model for the Prompt baseline (detection rating, steering prompt).
        judge: ``"local"`` (MiniLM + perplexity, calibrated) or a chat spec (LM judge, AxBench rubric).
        factors: steering factors (default AxBench's 14).
        n_instructions: steering instructions per concept (half choose the factor, half report).
        max_new_tokens: tokens generated per steering sample.
        gen_batch_size: prompts per batched generation.
        instructions: file of steering instructions (AlpacaEval json, jsonl or txt).
        steer_mode: the steering intervention (AxBench §4.3): ``"addition"``, ``"clamping"``
            (subspace clamping of rank-1 directions), ``"sae-clamping"`` or ``"sae-min-clamping"``
            (SAE latents; default factors AxBench's SAE clamping grid).
        imbalance_ratio: negatives per positive for the imbalanced F1 (None skips it).
        layer_choice: a sentence for the results saying how the layer was chosen.
        cache_dir: activation / fit / SAE cache (True: the interpkit cache folder).
        charts: writes the chart files, ``writer(results, folder)``: `interpkit.viz.write_bench_charts`
            for the ``charts/`` of ``interpkit bench``; None: no charts (see `write_results`).
        backend: backend used when ``model`` is a name.
        tokens: ``"all"`` (AxBench: instruction, template glue and response are scored) or
            ``"response"`` (only the response's tokens).
        concept_block: detection in blocks of this many concepts, each rank reading activations
            only for its own blocks (`interpkit.bench._blocks`; same results, memory bounded by a
            block); 0 holds the whole task in memory; None (default) uses blocks of 32 for more
            than 64 concepts when no method is task-wide (SAE, SAE-A, Criterion-only).
        progress: progress output.
        log: called with a line per (method, concept) result (the CLI passes ``print``).
        command: the command line that ran it (the CLI passes its own), recorded in the results with the
            package versions and the machine (``environment``).
    """
    from ._blocks import add_pooled_f1, detect_in_blocks, merge_describe, rank_resources, resolve_block
    from ._context import build_context
    from ._report import chart_writer, merge_results, write_results
    from ._task import AxBenchTask, load_task

    if mode not in ("detect", "steer"):
        raise ValueError(f"mode must be 'detect' or 'steer', got {mode!r}")
    charts = chart_writer(charts)  # a wrong charts= fails now, not after the run
    if not isinstance(task, AxBenchTask):
        task = load_task(task)
    full_task = task
    if quick:
        task = quick_task(task, seed=seed)
        max_length = min(max_length or QUICK["max_length"], QUICK["max_length"])
    if concepts is not None:
        # keep the whole task: the activation cache and the fitted directions are keyed by its texts
        unknown = sorted(set(concepts) - {c.id for c in task.concepts})
        if unknown:
            raise ValueError(f"--concepts: task {task.name!r} has no concept {unknown}; ids: {[c.id for c in task.concepts]}")
    methods = list(methods or (DETECT_METHODS if mode == "detect" else STEER_METHODS))
    rank, world = _world()
    t0 = time.perf_counter()
    layer_selection = None
    if layer == "auto":
        if site is not None:
            raise ValueError("bench: give layer='auto' or a site, not both")
        from interpkit.models import load_model

        from ._layers import choose_layer

        if isinstance(model, str | os.PathLike):
            model = load_model(model, backend)
        choice = choose_layer(task, model, max_length=max_length, batch_size=batch_size, cache_dir=cache_dir,
                              seed=seed, tokens=tokens, progress=progress and rank == 0)
        layer, layer_selection = choice.layer, choice.to_dict()
        layer_choice = layer_choice or choice.rule
        if log is not None and rank == 0:
            log(f"layer {choice.layer} chosen on the training texts: "
                + ", ".join(f"L{k} {v:.3f}" for k, v in choice.scores.items()))
    elif layer is not None and not isinstance(layer, int):
        raise ValueError(f"bench: layer must be an integer or 'auto', got {layer!r}")
    cids = [c.id for c in task.concepts] if concepts is None else [int(c) for c in concepts]
    block = resolve_block(concept_block, mode=mode, n_concepts=len(cids), methods=methods)
    context = {"layer": layer, "site": site, "max_length": max_length, "batch_size": batch_size,
               "cache_dir": cache_dir, "options": options, "seed": seed, "quick": quick, "sae": sae,
               "sae_settings": sae_settings, "chat": chat, "backend": backend, "tokens": tokens,
               "progress": progress and rank == 0}
    out_path = Path(out) if out is not None else None
    if block:
        run = detect_in_blocks(task, model, methods, concepts=cids, size=block, rank=rank, world=world,
                               context=context, imbalance_ratio=imbalance_ratio,
                               gather=lambda obj: _gather(obj, world), log=log)
        gathered = _gather((run.parts, run.counts, run.resources, run.describe), world) if world > 1 else \
            [(run.parts, run.counts, run.resources, run.describe)]
        if rank != 0:
            return merge_results(run.parts)
        parts = [p for g in gathered for p in g[0]]
        if imbalance_ratio:
            add_pooled_f1(parts, [g[1] for g in gathered], ratio=imbalance_ratio)
        results = merge_results(parts)
        header = {"model": getattr(run.model, "name", str(model)), "site": run.site, "layer": run.layer,
                  "describe": merge_describe([g[3] for g in gathered]), "options": run.options, "sae": None}
        return _finish(results, [g[2] for g in gathered], header, mode=mode, task=task, full_task=full_task,
                       layer=layer, site=site, layer_choice=layer_choice, quick=quick, cids=cids, methods=methods,
                       imbalance_ratio=imbalance_ratio, world=world, block=block, t0=t0, command=command, layer_selection=layer_selection,
                       out_path=out_path, charts=charts)
    ctx = build_context(task, model, **context)
    mine = cids[rank::world]
    fitted: dict[str, dict[int, Any]] = {}
    if mode == "detect":
        part = run_detect(ctx, methods, concepts=mine, imbalance_ratio=imbalance_ratio,
                          progress=progress, keep_fitted=fitted, log=log)
    else:
        gen_path = None
        if out_path is not None:
            gen_path = out_path / (f"generations.rank{rank}.jsonl" if world > 1 else "generations.jsonl")
        part = {"steering": run_steer(ctx, methods, judge=judge, concepts=mine, factors=factors,
                                      n_instructions=n_instructions, max_new_tokens=max_new_tokens,
                                      batch_size=gen_batch_size, instructions=instructions, progress=progress,
                                      generations_path=gen_path, mode=steer_mode)}
    held = ctx.train_acts.values.nbytes + ctx.eval_acts.values.nbytes
    gathered = _gather((part, rank_resources(rank, held)), world) if world > 1 else [(part, rank_resources(rank, held))]
    if rank != 0:
        return part
    results = merge_results([g[0] for g in gathered])
    header = {"model": getattr(ctx.model, "name", str(model)), "site": ctx.site, "layer": ctx.layer,
              "describe": ctx.describe(), "options": ctx.options, "sae": ctx.sae_info if ctx._sae is not None else None}
    results = _finish(results, [g[1] for g in gathered], header, mode=mode, task=task, full_task=full_task,
                      layer=layer, site=site, layer_choice=layer_choice, quick=quick, cids=cids, methods=methods,
                      imbalance_ratio=imbalance_ratio, world=world, block=0, t0=t0, command=command, layer_selection=layer_selection,
                      out_path=None, charts=charts)
    if mode == "steer":
        results["settings"].update(factors=list(factors) if factors else None, steer_mode=steer_mode,
                                   n_instructions=n_instructions,
                                   max_new_tokens=max_new_tokens, judge=judge if isinstance(judge, str) else repr(judge))
    if out_path is not None:
        write_results(results, out_path, charts=charts)
        if mode == "detect" and fitted:
            _save_features(ctx, fitted, out_path)
    return results


def _finish(results: dict[str, Any], per_rank: Sequence[Mapping[str, Any]], header: Mapping[str, Any], *, mode: str,
            task: Any, full_task: Any, layer: int | None, site: str | None, layer_choice: str | None, quick: bool,
            cids: list[int], methods: list, imbalance_ratio: float | None, world: int, block: int, t0: float,
            command: str | None, out_path: Path | None, charts: Any,
            layer_selection: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The merged results with their header, settings and memory report; written when ``out_path`` is given."""
    from ._report import write_results

    results.update({
        "kind": "interpkit.bench", "schema": 1, "mode": mode,
        "task": {"name": full_task.name, "path": None if full_task.path is None else str(full_task.path),
                 "generator": full_task.generator, **task.describe()},
        "model": header["model"], "site": header["site"], "layer": header["layer"],
        "layer_choice": layer_choice or ("given" if (layer is not None or site is not None)
                                         else "default: round(0.4 * n_layers), AxBench's shallower site"),
        **({"layer_selection": dict(layer_selection)} if layer_selection is not None else {}),
        "quick": quick, "settings": {**header["describe"], "concepts": cids, "methods": methods,
                                     "imbalance_ratio": imbalance_ratio,
                                     "world_size": world, "concept_block": block, "options": header["options"],
                                     **({"sae": header["sae"]} if header["sae"] is not None else {})},
        "resources": {"peak_rss_mb": max(r["peak_rss_mb"] for r in per_rank),
                      "held_acts_mb": max(r["held_acts_mb"] for r in per_rank), "per_rank": list(per_rank)},
        "interpkit_version": __version__, "seconds": round(time.perf_counter() - t0, 1),
        "environment": environment(), "command": command,
    })
    if out_path is not None:
        write_results(results, out_path, charts=charts)
    return results


def _save_features(ctx: Any, fitted: Mapping[str, Mapping[int, Any]], out: Path) -> None:
    """The learned directions as a FeatureTable (``out/features``): rank, explain and match read it."""
    from .methods import fitted_table

    flat = {(label, cid): f for label, per in fitted.items() for cid, f in per.items()
            if f.vector is not None and f.score != "text"}
    if not flat:
        return
    table = fitted_table(ctx, flat, which="eval")
    table.save(out / "features")

