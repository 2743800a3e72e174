"""The explanation step of ``inspect``: the labelling chat model and the report entries' explanations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any


def labeler_chat(labeler: Any, wrapper: Any) -> Any:
    """The chat model that writes labels: reuse the inspected model when it is the packaged chat model."""
    if labeler in (None, "none", False):
        return None
    from interpkit.models._chat import LocalChat, chat_model

    if labeler in ("local", "smollm2-135m") and getattr(wrapper, "name", None) == "smollm2-135m":
        return LocalChat(wrapper)
    return chat_model(labeler)


def explain_entries(
    table: Any,
    entries: Sequence[Any],
    *,
    wrapper: Any = None,
    chat: Any = None,
    self_explain: bool = False,
    seed: int = 0,
    precomputed: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[list[Any], list[str]]:
    """The report's entries with ``explanation`` filled in (and ``label`` from it when they had none)."""
    from interpkit.explain import AutoLabel, LogitEffects, Patchscope, TopExamples, explain_features

    precomputed = dict(precomputed or {})
    verbalizers: list[Any] = [TopExamples()]
    if wrapper is not None:
        verbalizers.append(LogitEffects())
    if chat is not None:
        verbalizers.append(AutoLabel())
    if self_explain and wrapper is not None:
        verbalizers.append(Patchscope())
    todo = [e.feature_id for e in entries if e.feature_id not in precomputed]
    found = explain_features(table, todo, model=wrapper, chat=chat, verbalizers=verbalizers, seed=seed) if todo else {}
    warnings: list[str] = []
    out = []
    for e in entries:
        if e.feature_id in precomputed:
            expl = dict(precomputed[e.feature_id])
        else:
            expl = found[e.feature_id].to_dict()
        for name, msg in (expl.get("errors") or {}).items():
            warnings.append(f"{e.feature_id}: explanation step {name} failed: {msg}")
        out.append(replace(e, explanation=expl, label=e.label or expl.get("label")))
    return out, warnings
