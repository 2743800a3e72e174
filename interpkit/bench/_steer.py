"""Steering evaluation (AxBench §4): add α·w at every position, sample, judge, pick the factor.

For each method and concept: α = factor × m_c (m_c = the concept's largest max-pooled detection
score, :func:`steering_magnitude`), ``AddVector(site, steer_vector, strength=α)`` during sampling
(temperature 1, no top-k/top-p, 128 new tokens), three 0-2 judge ratings per generation and their
harmonic mean; the factor is chosen on the first half of the instructions and its score read on
the second half (``_metrics.select_factor``). The Prompt baseline asks the chat model for a
steering prompt and puts it before each instruction (``"<prompt>\\n\\nQuestion: <instruction>"``);
it has no factor, so it is one generation per instruction, scored as the mean of the test half.

A fitted method may steer by something other than addition: a
`~interpkit.bench.methods.SteerContext` (LoRA and SFT carry one; the clamping modes of
``_interventions`` build one per fit), under which `context_generations` samples each factor.

Divergences (documented): every factor is sampled with the same seed (common random numbers:
factors differ by the edit, not by sampling noise); when m_c ≤ 0 the fallback is the mean
residual norm at the site (AxBench's constant 50 is Gemma-2 scale) unless given; the perplexity
recorded per factor (§4.5) is of the generation given the plain chat-formatted instruction under
the unsteered model, for the Prompt baseline too (AxBench: generation text only).

Example:
    >>> steering_magnitude(3.5), steering_magnitude(-1.0, fallback=20.0), steering_magnitude(None)
    (3.5, 20.0, 1.0)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from interpkit.bench._judge import AXES, perplexity

if TYPE_CHECKING:
    from interpkit.models import ModelWrapper

__all__ = ["FACTORS", "STEERING_PROMPT_TEMPLATE", "context_generations", "evaluate_steering",
           "fallback_steering_prompt",
           "prompt_generations", "steer_generations", "steering_magnitude", "write_generations",
           "write_steering_prompt"]

FACTORS = (0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0)
FALLBACK_MAGNITUDE = 50.0  # AxBench's m_c when the concept's max activation is <= 0 (Gemma-2 scale)
N_EXAMPLES = 3

STEERING_PROMPT_TEMPLATE = """Write a short instruction for an AI assistant (a system prompt) that makes it bring the \
concept below into every answer it gives, even when the user's question has nothing to do with the concept. The \
assistant must still respond to the question, but its answer has to contain content clearly about the concept.

Concept: {concept}

Return only the instruction itself: no title, no quotes, no explanation."""


def steering_magnitude(max_act: float | None, *, fallback: float = FALLBACK_MAGNITUDE) -> float:
    """m_c of §4.2: the concept's maximum detection score; ``fallback`` when it is ≤ 0.

    A missing value (None or NaN: the method gave no score for the concept) gives 1.0, as in
    AxBench.
    """
    # Tying alpha to the concept's own largest detection score makes the factor grid unit-free across methods
    # and layers: factor 1 adds the direction about as strongly as its strongest natural occurrence (for
    # psi = h·w with unit w, m_c is the largest projection seen on the eval rows). For a non-unit vector
    # (SSV) alpha·w scales with |w|^2, as in AxBench.
    if max_act is None or not math.isfinite(float(max_act)):
        return 1.0
    return float(max_act) if float(max_act) > 0 else float(fallback)


def fallback_steering_prompt(concept: str) -> str:
    """The fixed steering prompt used when the chat model writes none."""
    return (f"Whatever the question, answer it with content related to {concept}, "
            "even if the question itself is unrelated to it.")


def write_steering_prompt(chat: Any, concept: str, *, max_tokens: int = 200) -> tuple[str, str]:
    """Ask ``chat`` for a steering prompt for ``concept``; ``(prompt, "chat" | "fallback")``.

    The answer is stripped of surrounding quotes; an empty answer, no chat model, or a chat model
    that fails (:class:`~interpkit.models.ChatError`, warned) gives :func:`fallback_steering_prompt`.
    """
    from interpkit.models._chat import ChatError

    text = ""
    if chat is not None:
        try:
            text = chat.complete([{"role": "user", "content": STEERING_PROMPT_TEMPLATE.format(concept=concept)}],
                                 max_tokens=max_tokens, temperature=0.0)
        except ChatError as error:
            import warnings

            warnings.warn(f"steering prompt for {concept!r}: {error}; using the fallback sentence", stacklevel=2)
        text = (text or "").strip().strip("\"'`").strip()
    return (text, "chat") if text else (fallback_steering_prompt(concept), "fallback")


def _sample(model: ModelWrapper, texts: Sequence[str], *, max_new_tokens: int, temperature: float,
            batch_size: int, seed: int | None) -> list[str]:
    """Generate an answer to each user text: chat template when the tokenizer has one, else
    ``chat_prompt``'s plain ``"<text>\\n\\n"`` form."""
    from interpkit.bench._prompts import chat_prompt

    templated = bool(getattr(model.tokenizer, "chat_template", None))
    prompts = list(texts) if templated else [chat_prompt(model.tokenizer, t) for t in texts]
    sample = temperature > 0
    return model.generate(prompts, max_new_tokens=max_new_tokens, do_sample=sample,
                          temperature=temperature if sample else 1.0, chat=templated,
                          batch_size=batch_size, seed=seed)


def steer_generations(model: ModelWrapper, site: str, vector: Any, prompts: Sequence[str],
                      factors: Sequence[float], m_c: float, *, max_new_tokens: int = 128,
                      temperature: float = 1.0, batch_size: int = 16,
                      seed: int | None = 42) -> list[tuple[int, float, str]]:
    """Generations with ``AddVector(site, vector, strength=factor * m_c)`` at every position.

    Args:
        model: the model under study.
        site: where the vector is added (``"layer12.resid_post"``).
        vector: ``[d_model]`` steering vector (numpy or torch), used as given.
        prompts: raw instructions (chat-formatted here).
        factors: the steering factors.
        m_c: the concept's magnitude (:func:`steering_magnitude`).
        max_new_tokens, temperature, batch_size: sampling settings (temperature 0 = greedy).
        seed: the same seed for every factor (common random numbers).

    Returns:
        ``(instruction_id, factor, generation)`` for every factor, then every instruction.
    """
    import torch

    from interpkit.models import AddVector

    vec = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
    if vec.numel() != model.d_model:
        raise ValueError(f"steer_generations: vector has {vec.numel()} values, model {model.name} has "
                         f"d_model {model.d_model}")
    out = []
    # Reseeding each factor with the same seed (common random numbers) makes the factor-to-factor differences
    # reflect the edit, not sampling luck, which lowers the variance of the argmax in select_factor.
    for factor in factors:
        with model.edits(AddVector(site, vec, strength=float(factor) * float(m_c))):
            gens = _sample(model, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           batch_size=batch_size, seed=seed)
        out.extend((i, float(factor), g) for i, g in enumerate(gens))
    return out


def context_generations(model: ModelWrapper, steer: Any, prompts: Sequence[str], factors: Sequence[float],
                        m_c: float, *, max_new_tokens: int = 128, temperature: float = 1.0, batch_size: int = 16,
                        seed: int | None = 42) -> list[tuple[int, float, str]]:
    """Generations under ``steer.open(model, factor * m_c)`` (a `SteerContext`), factor by factor.

    A context that uses the strength samples every factor with the same seed (common random
    numbers, as `steer_generations`); one that ignores it (LoRA, SFT) gives factor ``j`` the seed
    ``seed + j``, so each factor row is one more independent sample (AxBench §4.3).

    Returns:
        ``(instruction_id, factor, generation)`` for every factor, then every instruction.
    """
    out = []
    for j, factor in enumerate(factors):
        row_seed = seed if seed is None or steer.uses_strength else int(seed) + j
        with steer.open(model, float(factor) * float(m_c)):
            gens = _sample(model, prompts, max_new_tokens=max_new_tokens, temperature=temperature,
                           batch_size=batch_size, seed=row_seed)
        out.extend((i, float(factor), g) for i, g in enumerate(gens))
    return out


def prompt_generations(model: ModelWrapper, chat: Any, concept: str, prompts: Sequence[str], *,
                       steering_prompt: str | None = None, max_new_tokens: int = 128,
                       temperature: float = 1.0, batch_size: int = 16,
                       seed: int | None = 42) -> tuple[dict, list[tuple[int, None, str]]]:
    """The Prompt steering baseline: one generation per instruction, no edit, no factor.

    Returns:
        ``({"steering_prompt": ..., "source": "chat" | "fallback" | "given"}, [(instruction_id, None, generation)])``.
    """
    if steering_prompt is None:
        steering_prompt, source = write_steering_prompt(chat, concept)
    else:
        source = "given"
    # AxBench's steered_input format (§4.1): the steering prompt, a blank line, then "Question: <instruction>".
    texts = [f"{steering_prompt}\n\nQuestion: {p}" for p in prompts]
    gens = _sample(model, texts, max_new_tokens=max_new_tokens, temperature=temperature,
                   batch_size=batch_size, seed=seed)
    return {"steering_prompt": steering_prompt, "source": source}, [(i, None, g) for i, g in enumerate(gens)]


def write_generations(records: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Write steering records as JSON lines, atomically."""
    from interpkit._io import atomic_write_text

    lines = [json.dumps(dict(r), ensure_ascii=False, default=_jsonable) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _mean_resid_norm(ctx: Any, max_rows: int = 4096) -> float | None:
    acts = getattr(ctx, "eval_acts", None)
    values = getattr(acts, "values", None)
    if values is None or len(values) == 0:
        return None
    # The model's own residual scale replaces AxBench's Gemma-2 constant 50: adding a unit direction times the
    # typical residual norm is a strong but same-order edit on any model.
    rows = np.asarray(values[: min(len(values), max_rows)], dtype=np.float32)
    return float(np.linalg.norm(rows, axis=1).mean())


def _nanmean(a: np.ndarray, axis: int = 0) -> list[float | None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(np.asarray(a, dtype=np.float64), axis=axis)
    return [float(v) if np.isfinite(v) else None for v in np.atleast_1d(m)]


def _judge_all(ctx: Any, judge: Any, concept: str, instructions: Sequence[str],
               gens: list[tuple[int, Any, str]], batch_size: int) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Ratings ``[n, 3]``, perplexities ``[n]`` and judge details for records in ``gens`` order."""
    ratings = np.zeros((len(gens), 3))
    details: list[dict] = [{} for _ in gens]
    for iid, instruction in enumerate(instructions):
        idx = [k for k, g in enumerate(gens) if g[0] == iid]
        if not idx:
            continue
        texts = [gens[k][2] for k in idx]
        if hasattr(judge, "rate_details"):
            r, d = judge.rate_details(concept, instruction, texts)
        else:
            r, d = judge.rate(concept, instruction, texts), [{} for _ in texts]
        r = np.asarray(r, dtype=np.float64).reshape(len(texts), 3)
        for j, k in enumerate(idx):
            ratings[k] = r[j]
            details[k] = dict(d[j]) if j < len(d) else {}
    # §4.5's perplexity is of the generation after its own instruction: reuse the judge's when it is that.
    # Perplexity under the unsteered model measures how unusual the steered text is; it is recorded, not scored.
    same = getattr(judge, "fluency_context", None) == "instruction"
    ppl = np.array([d.get("perplexity", np.nan) if same else np.nan for d in details], dtype=np.float64)
    todo = [k for k in range(len(gens)) if not np.isfinite(ppl[k]) and gens[k][2].strip()]
    if todo:
        from interpkit.bench._prompts import chat_prompt

        tok = ctx.model.tokenizer
        ppl[todo] = perplexity(ctx.model, [chat_prompt(tok, instructions[gens[k][0]]) for k in todo],
                               [gens[k][2] for k in todo], batch_size=max(1, batch_size // 2))
    return ratings, ppl, details


def _records(label: str, cid: int, instructions: Sequence[str], gens: list, ratings: np.ndarray,
             scores: np.ndarray, ppl: np.ndarray, details: list[dict], m_c: float | None) -> list[dict]:
    out = []
    for k, (iid, factor, text) in enumerate(gens):
        out.append({"method": label, "concept_id": int(cid), "instruction_id": int(iid),
                    "instruction": instructions[iid], "factor": factor,
                    "strength": None if factor is None or m_c is None else float(factor) * m_c,
                    "generation": text, "ratings": dict(zip(AXES, map(float, ratings[k]), strict=True)),
                    "score": float(scores[k]), "perplexity": float(ppl[k]) if np.isfinite(ppl[k]) else None,
                    "judge": details[k]})
    return out


def _examples(records: list[dict], factor: float | None, n_selection: int) -> list[dict]:
    """A few test-half generations at the chosen factor (what the report shows)."""
    keep = [r for r in records if r["factor"] == factor and r["instruction_id"] >= n_selection]
    return [{k: r[k] for k in ("instruction_id", "instruction", "factor", "generation", "ratings", "score")}
            for r in keep[:N_EXAMPLES]]


def _steer_context(ctx: Any, fitted: Any, mode: str) -> Any:
    """The fit's own `SteerContext`, else the mode's (None for addition, a reason string when it cannot apply)."""
    if fitted is None:
        return None
    own = getattr(fitted, "steer_context", None)
    if own is not None:
        return own
    if mode == "addition":
        return None
    from interpkit.bench._interventions import mode_context

    return mode_context(mode, ctx, fitted)


def evaluate_steering(ctx: Any, methods_fitted: Mapping[str, Mapping[int, Any]], judge: Any, *,
                      max_acts: Mapping[str, Mapping[int, float]], factors: Sequence[float] = FACTORS,
                      n_instructions: int = 10, max_new_tokens: int = 128, temperature: float = 1.0,
                      batch_size: int = 16, seed: int = 42, include_prompt: bool = True,
                      instruction_source: str | Path | None = None, fallback_magnitude: float | None = None,
                      generations: str | Path | None = None, progress: bool = True,
                      concepts: Sequence[int] | None = None, mode: str = "addition") -> dict:
    """The steering benchmark of AxBench §4 for fitted methods on ``ctx``'s model and site.

    Args:
        ctx: a BenchContext (uses ``model``, ``site``, ``task``, ``chat`` for the Prompt baseline,
            ``eval_acts`` for the magnitude fallback).
        methods_fitted: ``{method label: {concept id: Fitted}}``; a Fitted with neither a
            ``steer_vector`` nor a ``steer_context`` is skipped (recorded with the reason).
        judge: a :class:`~interpkit.bench._judge.Judge` (a calibrated LocalJudge, or an LMJudge).
        max_acts: ``{method label: {concept id (int or str): m}}``, each concept's largest raw max-pooled
            detection score of that method on its eval rows (the detection step's ``max_act``); it
            sets α = factor × m (:func:`steering_magnitude`; missing -> 1.0).
        factors: the factor grid (sorted here).
        n_instructions: instructions per concept (``_task.steering_instructions``); the first half
            selects the factor, the second half scores it.
        max_new_tokens, temperature, batch_size, seed: sampling (§4.4).
        include_prompt: also run the Prompt baseline (label ``"Prompt"``).
        instruction_source: an instruction file for ``steering_instructions`` (default: packaged pool).
        fallback_magnitude: m when a method's max activation is ≤ 0 (default: the mean residual norm
            at the site over ``ctx.eval_acts``, else 50).
        generations: a path; every generation with its ratings is written there as JSON lines.
        progress: show a progress bar (one step per method and concept).
        concepts: only these concept ids (a torch.distributed shard); default: every fitted concept
            (or every task concept when only the Prompt baseline runs).
        mode: the intervention, one of ``_interventions.STEER_MODES`` (``"addition"``; the clamping
            modes skip, with the reason, fits they cannot apply to). A Fitted with its own
            ``steer_context`` (LoRA, SFT) always steers through it.

    Returns:
        ``{"judge": judge.describe(), "settings": {...}, "methods": {label: {"mean_score", "ci95",
        "n_concepts", "seconds", "per_concept": {cid: {"factor", "test_score", "selection_score",
        "magnitude", "by_factor": {"factor", "score", "selection", "test", "concept", "instruction",
        "fluency", "perplexity", "strength"}, "examples": [...]}}}}, "generations_file": path | None}``.
        The Prompt baseline's per-concept entry has ``factor`` None, ``score`` lists of one value
        and its ``steering_prompt``.
    """
    from interpkit.bench._interventions import STEER_MODES
    from interpkit.bench._metrics import harmonic, select_factor, summarise_steering
    from interpkit.bench._prompts import steering_instructions

    if mode not in STEER_MODES:
        raise ValueError(f"steering mode must be one of {STEER_MODES}, got {mode!r}")
    factors = sorted(float(f) for f in factors)
    task, model, site = ctx.task, ctx.model, ctx.site
    cids = sorted({int(c) for fitted in methods_fitted.values() for c in fitted})
    if not cids and include_prompt:
        cids = [int(c.id) for c in task.concepts]
    if concepts is not None:
        cids = [int(c) for c in concepts]
    if fallback_magnitude is None:
        fallback_magnitude = _mean_resid_norm(ctx) or FALLBACK_MAGNITUDE
    labels = [m for m in methods_fitted if not (include_prompt and m == "Prompt")]
    labels += ["Prompt"] if include_prompt else []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(cids) * len(labels), desc=f"steering @ {site}", unit="run")
    sample_kw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "batch_size": batch_size,
                 "seed": seed}
    methods: dict[str, dict] = {label: {"per_concept": {}, "seconds": 0.0} for label in labels}
    all_records: list[dict] = []
    for cid in cids:
        instructions = steering_instructions(task, cid, n_instructions, source=instruction_source)
        concept = task.concept(cid).description
        for label in labels:
            start = time.perf_counter()
            entry: dict[str, Any]
            if label == "Prompt" and include_prompt:
                meta, gens = prompt_generations(model, getattr(ctx, "chat", None), concept, instructions,
                                                **sample_kw)
                ratings, ppl, details = _judge_all(ctx, judge, concept, instructions, gens, batch_size)
                scores = harmonic(ratings[:, 0], ratings[:, 1], ratings[:, 2])
                recs = _records(label, cid, instructions, gens, ratings, scores, ppl, details, None)
                # The same selection/test cut as select_factor, so Prompt is scored on the very instructions the
                # factor-based methods report on (one generation each, as the paper's factor-free baselines).
                k = min(max(int(len(instructions) * 0.5), 1), len(instructions) - 1)
                by_iid = np.full(len(instructions), np.nan)
                for (iid, _, _), s in zip(gens, scores, strict=True):
                    by_iid[iid] = s
                entry = {"factor": None, "test_score": _nanmean(by_iid[k:])[0],
                         "selection_score": _nanmean(by_iid[:k])[0], "magnitude": None, **meta,
                         "by_factor": {"factor": [None], "score": _nanmean(scores),
                                       **{a: _nanmean(ratings[:, j]) for j, a in enumerate(AXES)},
                                       "perplexity": _nanmean(ppl)},
                         "examples": _examples(recs, None, k)}
            else:
                fitted = methods_fitted[label].get(cid)
                vector = None if fitted is None else getattr(fitted, "steer_vector", None)
                steer = _steer_context(ctx, fitted, mode)
                if isinstance(steer, str) or (steer is None and vector is None):
                    why = ("not fitted for this concept" if fitted is None else
                           steer if isinstance(steer, str) else "no steer_vector")
                    methods[label]["per_concept"][str(cid)] = {"skipped": why, "test_score": None}
                    if bar is not None:
                        bar.update(1)
                    continue
                acts = max_acts.get(label, {})
                raw = acts.get(cid, acts.get(str(cid)))  # int keys, or the str keys of results.json
                m_c = steering_magnitude(raw, fallback=fallback_magnitude)
                if steer is None:
                    gens = steer_generations(model, site, vector, instructions, factors, m_c, **sample_kw)
                else:
                    gens = context_generations(model, steer, instructions, factors, m_c, **sample_kw)
                    if not steer.uses_strength:
                        m_c = None  # the factor is only a sample index; no strength to record
                ratings, ppl, details = _judge_all(ctx, judge, concept, instructions, gens, batch_size)
                scores = harmonic(ratings[:, 0], ratings[:, 1], ratings[:, 2])
                recs = _records(label, cid, instructions, gens, ratings, scores, ppl, details, m_c)
                fi = {f: j for j, f in enumerate(factors)}
                grid = np.full((len(instructions), len(factors)), np.nan)
                sub = np.full((3, len(instructions), len(factors)), np.nan)
                pgrid = np.full((len(instructions), len(factors)), np.nan)
                for (iid, f, _), s, r, p in zip(gens, scores, ratings, ppl, strict=True):
                    grid[iid, fi[f]] = s
                    sub[:, iid, fi[f]] = r
                    pgrid[iid, fi[f]] = p
                chosen = select_factor(grid, factors)
                entry = {"factor": chosen["factor"], "test_score": chosen["test_score"],
                         "selection_score": chosen["selection_score"], "magnitude": m_c,
                         "max_act": None if raw is None else float(raw),
                         "by_factor": {"factor": factors, "score": _nanmean(grid),
                                       "selection": chosen["selection_by_factor"], "test": chosen["test_by_factor"],
                                       **{a: _nanmean(sub[j]) for j, a in enumerate(AXES)},
                                       "perplexity": _nanmean(pgrid),
                                       "strength": None if m_c is None else [f * m_c for f in factors]},
                         "n_selection": chosen["n_selection"], "n_test": chosen["n_test"],
                         "intervention": "addition" if steer is None else steer.kind,
                         "examples": _examples(recs, chosen["factor"], chosen["n_selection"])}
            entry["seconds"] = time.perf_counter() - start
            methods[label]["per_concept"][str(cid)] = entry
            methods[label]["seconds"] += entry["seconds"]
            all_records.extend(recs)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    for label in labels:
        methods[label].update(summarise_steering(methods[label]["per_concept"]))
    path = None
    if generations is not None:
        path = str(write_generations(all_records, generations))
    return {"judge": judge.describe(), "site": site,
            "settings": {"factors": factors, "n_instructions": n_instructions, "max_new_tokens": max_new_tokens,
                         "temperature": temperature, "batch_size": batch_size, "seed": seed,
                         "fallback_magnitude": fallback_magnitude, "mode": mode, "instruction_source":
                         None if instruction_source is None else str(instruction_source),
                         "seeding": "same seed for every factor (common random numbers)"},
            "methods": methods, "generations_file": path}
