"""Steering one prompt: baseline vs steered generation with their scores, and a sweep over strengths.

`steer_compare` generates from the prompt twice with the same settings (and seed): without edits,
and inside ``model.edits(*edits)``. Each continuation is scored (`GenerationScores`):

- ``criterion_score``: a criterion compiler's score of the continuation (when a criterion is given);
- ``metric``: a `CriterionMetric` (e.g. `LogitTargetMetric`) on the prompt under the setting's edits;
- ``perplexity``: of the continuation given the prompt under the *unsteered* model (fluency, as the
  AxBench steering evaluation measures it; `interpkit.models.perplexity`).

The comparison adds ``next_token_tv``: the total-variation distance between the unsteered and
steered next-token distributions after the prompt (the side-effect measure `run_interventions`
uses). `steer_sweep` steers one vector at several strengths and returns one row per strength, the
rows the ``steering_curve`` chart plots; it looks at one prompt's generations, where
`sweep_strengths` chooses a strength on a train split of many prompts by a metric.
`spec_edits` turns an intervention spec (`interpkit.records.read_intervention_spec`) back into
edits. The notebook steering panel (``SteeringPanel``) is a view over these functions.

Example:
    >>> import numpy as np
    >>> from interpkit._testing import tiny_model
    >>> from interpkit.models import AddVector
    >>> model = tiny_model()
    >>> out = steer_compare(model, "the cat", [AddVector("layer1.resid_post", np.ones(16), strength=6.0)],
    ...                     max_new_tokens=4)
    >>> out.next_token_tv > 0, steer_compare(model, "the cat", [], max_new_tokens=4).next_token_tv
    (True, 0.0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._metric import CriterionMetric, next_token_probs
from ._runner import _tv

__all__ = ["GenerationScores", "SteerComparison", "score_generation", "spec_edits", "steer_compare", "steer_sweep"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GenerationScores:
    """One continuation and its scores (None where a score was not asked for or is undefined)."""

    text: str
    """The generated continuation (the new text only)."""
    criterion_score: float | None = None
    """The criterion compiler's score of ``text``."""
    metric: float | None = None
    """The criterion metric on the prompt, under the edits ``text`` was generated with."""
    perplexity: float | None = None
    """Perplexity of ``text`` after the prompt under the unedited model (None for an empty text)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"text", "criterion_score", "metric", "perplexity"}``."""
        return {"text": self.text, "criterion_score": self.criterion_score, "metric": self.metric,
                "perplexity": self.perplexity}


@dataclass(frozen=True, slots=True, kw_only=True)
class SteerComparison:
    """Baseline and steered continuations of one prompt, and how far the next-token distribution moved."""

    baseline: GenerationScores
    """Generated without edits."""
    steered: GenerationScores
    """Generated under the edits."""
    next_token_tv: float
    """Total-variation distance between the unsteered and steered next-token distributions (0..1)."""

    def to_dict(self) -> dict[str, Any]:
        """``{"baseline": {...}, "steered": {...}, "next_token_tv": x}`` (JSON-ready)."""
        return {"baseline": self.baseline.to_dict(), "steered": self.steered.to_dict(),
                "next_token_tv": self.next_token_tv}


def _prompt_text(model: Any, prompt: str, chat: bool) -> str:
    """The prompt as the model sees it: wrapped in the chat template when ``chat``."""
    if not chat:
        return prompt
    return model.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                               add_generation_prompt=True, tokenize=False)


def score_generation(
    model: Any,
    prompt: str,
    edits: Sequence[Any] = (),
    *,
    criterion: Any = None,
    compiler: Any = "embedding",
    compiler_options: Mapping[str, Any] | None = None,
    metric: CriterionMetric | None = None,
    max_new_tokens: int = 32,
    do_sample: bool = False,
    chat: bool = False,
    seed: int = 0,
) -> GenerationScores:
    """Generate a continuation of ``prompt`` under ``edits`` and score it.

    Args:
        model: a ``ModelWrapper``.
        prompt: the prompt continued.
        edits: models-layer edits active while generating (and while scoring ``metric``).
        criterion: criterion text (or `~interpkit.criterion.Criterion`) the continuation is scored
            for; None skips the score.
        compiler: compiler name for ``criterion`` (``"keyword"`` needs no model; ``"embedding"``
            loads MiniLM) or a compiler instance.
        compiler_options: options for a compiler given by name.
        metric: a `CriterionMetric` scored on the prompt; None skips it.
        max_new_tokens, do_sample, chat, seed: generation settings (``chat`` wraps the prompt in
            the chat template).
    """
    from interpkit.models import perplexity

    with model.edits(*edits):
        text = model.generate(prompt, max_new_tokens=int(max_new_tokens), do_sample=bool(do_sample),
                              chat=bool(chat), seed=int(seed))[0]
    seen = _prompt_text(model, prompt, chat)
    crit_score = None
    if criterion is not None:
        from interpkit.criterion import as_criterion, get_compiler

        comp = get_compiler(compiler, **dict(compiler_options or {}))
        crit_score = comp.score_texts(as_criterion(criterion), [text])[0].score
    metric_score = None
    if metric is not None:
        with model.edits(*edits):
            metric_score = float(np.asarray(metric.score(model, [seen]))[0])
    ppl = float(perplexity(model, [seen], [text])[0]) if text else None
    return GenerationScores(text=text, criterion_score=crit_score, metric=metric_score,
                            perplexity=ppl if ppl is not None and np.isfinite(ppl) else None)


def steer_compare(
    model: Any,
    prompt: str,
    edits: Sequence[Any],
    *,
    baseline: GenerationScores | None = None,
    chat: bool = False,
    **options: Any,
) -> SteerComparison:
    """Baseline and steered continuations of ``prompt`` with their scores and the next-token TV distance.

    Args:
        model: a ``ModelWrapper``.
        prompt: the prompt continued.
        edits: the steering edits (e.g. `~interpkit.models.AddVector`); empty gives two identical runs.
        baseline: the unsteered `score_generation` of this prompt with the same settings, when
            already computed (it does not depend on ``edits``); None generates it.
        chat: wrap the prompt in the chat template.
        **options: `score_generation`'s scoring and generation settings (``criterion``,
            ``compiler``, ``compiler_options``, ``metric``, ``max_new_tokens``, ``do_sample``, ``seed``).
    """
    edits = list(edits)
    if baseline is None:
        baseline = score_generation(model, prompt, (), chat=chat, **options)
    steered = score_generation(model, prompt, edits, chat=chat, **options)
    seen = [_prompt_text(model, prompt, chat)]
    p = next_token_probs(model, seen)
    with model.edits(*edits):
        q = next_token_probs(model, seen)
    return SteerComparison(baseline=baseline, steered=steered, next_token_tv=_tv(p, q))


def steer_sweep(
    model: Any,
    prompt: str,
    site: str,
    vector: Any,
    strengths: Sequence[float],
    *,
    feature: str | None = None,
    baseline: GenerationScores | None = None,
    **options: Any,
) -> list[dict[str, Any]]:
    """Steer ``vector`` at ``site`` by each strength (0: no edit) and score each steered continuation.

    Args:
        model: a ``ModelWrapper``.
        prompt: the prompt continued.
        site: where the vector is added.
        vector: ``[d_model]`` steering vector (strength 1 adds it once).
        strengths: the strengths, in the order of the rows.
        feature: the name written into each row's ``feature`` (default: ``site``).
        baseline: the unsteered `score_generation`, when already computed (generated once otherwise).
        **options: `steer_compare`'s settings (``chat``, ``criterion``, ``metric``, ``max_new_tokens``, ...).

    Returns:
        One ``{"feature", "strength", "criterion_score", "perplexity", "next_token_tv", "text"}`` per
        strength: rows for the ``steering_curve`` chart.
    """
    from interpkit.models import AddVector

    if baseline is None:
        baseline = score_generation(model, prompt, (), **options)
    rows = []
    for s in strengths:
        edits = [AddVector(site, vector, strength=float(s))] if float(s) != 0.0 else []
        out = steer_compare(model, prompt, edits, baseline=baseline, **options)
        st = out.steered
        rows.append({"feature": feature if feature is not None else site, "strength": float(s),
                     "criterion_score": st.criterion_score, "perplexity": st.perplexity,
                     "next_token_tv": out.next_token_tv, "text": st.text})
    return rows


def spec_edits(spec: Any) -> list[Any]:
    """``AddVector`` edits from an intervention spec (an `~interpkit.records.InterventionSpec`, its dict, or its file).

    Raises:
        interpkit.records.RecordError: not an intervention spec, or a vector that does not match
            its ``vector_sha256`` (the message names the file and the field).
    """
    import torch

    from interpkit.models import AddVector
    from interpkit.records import InterventionSpec, read_intervention_spec

    if not isinstance(spec, InterventionSpec):
        spec = read_intervention_spec(spec)
    return [AddVector(e.site, torch.from_numpy(np.asarray(e.vector, dtype=np.float32)), strength=float(e.strength))
            for e in spec.edits]
