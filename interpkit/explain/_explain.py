"""`explain_feature` / `explain_features`: run verbalizers and merge their fragments.

Each verbalizer runs on its own; one that raises leaves ``errors[name] = "Type: message"`` and the
others still fill their parts. With no ``verbalizers`` given: `TopExamples` always,
`LogitEffects` and `Patchscope` when a model is given, `AutoLabel` when a chat model is given.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from ._base import FeatureContext, FeatureExplanation, Verbalizer
from ._examples import TopExamples
from ._label import AutoLabel
from ._logits import LogitEffects
from ._patchscope import Patchscope
from ._reader import feature_reader

__all__ = ["default_verbalizers", "explain_feature", "explain_features"]

log = logging.getLogger(__name__)


def default_verbalizers(*, model: Any = None, chat: Any = None) -> list[Verbalizer]:
    """The verbalizers `explain_feature` runs when none are given."""
    out: list[Verbalizer] = [TopExamples()]
    if model is not None:
        out.append(LogitEffects())
    if chat is not None:
        out.append(AutoLabel())
    if model is not None:
        out.append(Patchscope())
    return out


def explain_feature(
    table: Any,
    feature_id: str,
    *,
    model: Any = None,
    chat: Any = None,
    encoder: Any = None,
    sae: Any = None,
    verbalizers: Sequence[Verbalizer] | None = None,
    seed: int = 0,
    cache: dict[Any, Any] | None = None,
    timings: dict[str, float] | None = None,
) -> FeatureExplanation:
    """Explain one feature of ``table``.

    Args:
        table: the `~interpkit.table.FeatureTable`.
        feature_id: the feature (must be in the table).
        model: the ``ModelWrapper`` the table came from (token highlights, logit effects,
            Patchscope); None for table-only explanations.
        chat: a chat model for `AutoLabel` (or a spec such as ``"local"``).
        encoder: a sentence encoder for label scoring (default: MiniLM, loaded when needed).
        sae: the SAE of an SAE table (token highlights of its latents).
        verbalizers: what to run (default: `default_verbalizers`).
        seed: seed for sampled examples and held-out splits.
        cache: scratch shared across calls (site activations, measured norms); `explain_features`
            passes one dict to every feature.
        timings: filled with seconds per verbalizer name (plus ``"reader"``) when given.

    Returns:
        The merged `FeatureExplanation`.

    Raises:
        KeyError: ``feature_id`` is not in the table.
    """
    table.feature_index(feature_id)
    shared = cache if cache is not None else {}
    if chat is not None:
        from ._label import _resolve_chat

        chat = _resolve_chat(chat)
    reader_cache = shared.setdefault("readers", {})
    reader = feature_reader(table, feature_id, model, sae, cache=reader_cache) if model is not None else None
    ctx = FeatureContext(table=table, feature_id=str(feature_id), model=model, reader=reader, chat=chat,
                         encoder=encoder, seed=seed, cache=shared.setdefault("verbalizers", {}))
    if verbalizers is None:
        verbalizers = default_verbalizers(model=model, chat=chat)
    result: dict[str, Any] = {"feature_id": str(feature_id)}
    errors: dict[str, str] = {}
    for verbalizer in verbalizers:
        start = time.perf_counter()
        try:
            fragment = verbalizer.explain(ctx)
        except Exception as error:  # a failing verbalizer must not sink the others
            log.warning("explain %s: %s failed: %s", feature_id, verbalizer.name, error)
            errors[verbalizer.name] = f"{type(error).__name__}: {error}"
        else:
            result.update(fragment)
        if timings is not None:
            timings[verbalizer.name] = timings.get(verbalizer.name, 0.0) + time.perf_counter() - start
    result["errors"] = errors
    return FeatureExplanation.from_dict(result)


def explain_features(
    table: Any, feature_ids: Sequence[str], **kw: Any
) -> dict[str, FeatureExplanation]:
    """`explain_feature` for each id, sharing one cache (features at one site share forward passes).

    Args:
        table: the `~interpkit.table.FeatureTable`.
        feature_ids: the features, in the order of the returned dict.
        **kw: passed to `explain_feature`.
    """
    cache = kw.pop("cache", None)
    shared = cache if cache is not None else {}
    return {str(fid): explain_feature(table, fid, cache=shared, **kw) for fid in feature_ids}
