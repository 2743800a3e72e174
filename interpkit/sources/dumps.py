"""FeatureTable from feature dumps: one JSON row per feature with its listed examples.

A feature dump lists, per feature, examples with their activations (typically its top-activating
ones). The table's examples are the union of all listed examples (keyed by ``prompt_id`` when given,
else by text); a feature's activation on an example it does not list is taken as 0, which is exact
for dumps that list every example of a shared probe set and a lower bound for top-k dumps (the
caller is warned). Criterion scores come from the examples' own ``criterion_score`` fields or from
a score map the caller supplies (e.g. from activation records of the same prompts).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

_ACT_KEYS = ("activation", "max_activation", "maxValue", "value")


def _example_key(ex: Mapping[str, Any]) -> str | None:
    if ex.get("prompt_id") is not None:
        return f"id:{ex['prompt_id']}"
    text = ex.get("text")
    if text is None and isinstance(ex.get("tokens"), list):
        text = "".join(str(t) for t in ex["tokens"])
    return None if text is None else f"text:{text}"


def _example_text(ex: Mapping[str, Any]) -> str:
    if ex.get("text") is not None:
        return str(ex["text"])
    if isinstance(ex.get("tokens"), list):
        return "".join(str(t) for t in ex["tokens"])
    return ""


def table_from_feature_dumps(
    dumps: Iterable[Any], *, scores: Mapping[str, float] | None = None
) -> tuple[Any, list[str], dict[str, dict[str, float]]]:
    """Build a FeatureTable from :class:`~interpkit.records.FeatureDump` rows.

    Args:
        dumps: feature dumps, in the order their features should appear.
        scores: optional criterion scores keyed by ``prompt_id`` (as str) or by text; they fill
            in examples that carry no ``criterion_score`` of their own.

    Returns:
        ``(table, warnings, imported_causal_effects)``, the last keyed by feature id.

    Raises:
        ValueError: no dump lists an example with an activation.
    """
    import pandas as pd

    from interpkit.table import FeatureTable

    scores = dict(scores or {})
    warnings: list[str] = []
    ex_index: dict[str, int] = {}
    ex_rows: list[dict[str, Any]] = []
    feat_rows: list[dict[str, Any]] = []
    entries: list[tuple[int, int, float]] = []
    decoders: dict[str, np.ndarray] = {}
    causal: dict[str, dict[str, float]] = {}
    unusable = 0
    for j, dump in enumerate(dumps):
        fid = str(dump.feature_id)
        feat_rows.append(
            {
                "feature_id": fid,
                "model": dump.model,
                "site": None if dump.layer is None else str(dump.layer),
                "layer": dump.layer if isinstance(dump.layer, int) else None,
                "label": dump.label,
                "source": dump.source or "feature_dump",
            }
        )
        if dump.decoder_signature:
            decoders[fid] = np.asarray(dump.decoder_signature, dtype=np.float32)
        if dump.causal_effects:
            causal[fid] = {str(k): float(v) for k, v in dump.causal_effects.items()}
        for ex in dump.examples or ():
            if not isinstance(ex, Mapping):
                unusable += 1
                continue
            act = next((ex[k] for k in _ACT_KEYS if isinstance(ex.get(k), int | float)), None)
            key = _example_key(ex)
            if act is None or key is None:
                unusable += 1
                continue
            if key not in ex_index:
                ex_index[key] = len(ex_rows)
                score = ex.get("criterion_score")
                if score is None:
                    score = scores.get(str(ex.get("prompt_id")), scores.get(_example_text(ex)))
                ex_rows.append(
                    {
                        "example_id": str(ex.get("prompt_id", f"ex{len(ex_rows)}")),
                        "text": _example_text(ex),
                        "criterion_score": math.nan if score is None else float(score),
                        "split": ex.get("split"),
                    }
                )
            entries.append((ex_index[key], j, float(act)))
    if not entries:
        raise ValueError(
            "the feature dumps list no examples with an activation (expected `examples` entries like "
            '{"text": ..., "activation": ...}); nothing to rank'
        )
    if unusable:
        warnings.append(f"{unusable} dump example(s) had no text/prompt_id or no activation and were skipped")
    values = np.zeros((len(ex_rows), len(feat_rows)), dtype=np.float32)
    listed = np.zeros_like(values, dtype=bool)
    for i, j, a in entries:  # an example a dump lists twice keeps its larger activation
        values[i, j] = max(values[i, j], a) if listed[i, j] else a
        listed[i, j] = True
    if not listed.all():
        warnings.append(
            f"{int((~listed).sum())} (feature, example) pairs are not listed in the dumps and count as "
            "activation 0; for top-k dumps this understates activations on other features' examples"
        )
    if all(math.isnan(r["criterion_score"]) for r in ex_rows):
        raise ValueError(
            "no dump example carries a criterion_score and no scores were supplied (pass --records with "
            "activation records of the same prompts, or add criterion_score to each example)"
        )
    table = FeatureTable(
        values,
        pd.DataFrame(ex_rows),
        pd.DataFrame(feat_rows),
        decoder_vectors=decoders or None,
        meta={"source": "feature_dumps"},
    )
    return table, warnings, causal


# interp-lab 0.1 (the seed tool) writes feature dumps as its ``FeatureEvidence`` rows: the same field
# names as ours, but ``examples`` are plain texts (no activation) and ``causal_effects`` hold its own
# 0-1 scores. Nothing in such a file says how strongly a feature fires where, so the layout is
# detected by those fields and translated explicitly, with a note per translated field.
_INTERP_LAB_EFFECTS = frozenset({"criterion", "specificity", "side_effect", "signed_association",
                                 "signed_causal_effect", "raw_intervention_delta", "intervention_record_count"})


def is_interp_lab_dumps(dumps: Iterable[Any]) -> bool:
    """Whether feature dumps are in interp-lab 0.1's layout (see `interp_lab_dump_notes`).

    The layout: no example is an object (every listed example is a plain text), and some row lists a
    text example, carries interp-lab's ``causal_effects`` keys (``criterion``, ``specificity``,
    ``side_effect``) or its ``metadata`` object. A file of ours with an activation on any example is
    never read as interp-lab's.
    """
    rows = list(dumps)
    if not rows or any(isinstance(ex, Mapping) for d in rows for ex in d.examples):
        return False
    return any(d.examples or set(d.causal_effects) & _INTERP_LAB_EFFECTS or "metadata" in d.extra for d in rows)


def interp_lab_dump_notes(name: str, dumps: Iterable[Any], *, activations_from: str | None) -> list[str]:
    """The translation notes of an interp-lab dump file ``name`` (they go to the report's warnings).

    Args:
        activations_from: the activation-records file the activations come from; None when the listed
            texts stand in for them (`listed_text_dumps`).
    """
    rows = list(dumps)
    if activations_from is not None:
        ex_note = (f"field 'examples' (plain texts) kept as the features' display examples; activations read "
                   f"from {activations_from} (activation records of the same feature ids)")
    else:
        ex_note = ("field 'examples' (plain texts, no activations) read as the examples each feature fires "
                   "on: activation 1.0 on its own listed texts, 0 on the texts other features list")
    notes = [f"{name}: interp-lab layout: {ex_note}"]
    keys = sorted({k for d in rows for k in d.causal_effects})
    if keys:
        notes.append(f"{name}: interp-lab layout: field 'causal_effects' ({', '.join(keys)}: interp-lab's own "
                     "scores) kept as imported causal effects: reported, not ranked")
    if any("metadata" in d.extra for d in rows):
        notes.append(f"{name}: interp-lab layout: field 'metadata' kept verbatim (not interpreted)")
    return notes


def listed_text_dumps(dumps: Iterable[Any]) -> list[Any]:
    """interp-lab dumps with each listed text as an example of activation 1.0 (for `table_from_feature_dumps`).

    A text-only dump says only *that* a feature fires on its texts, so its table is a presence indicator:
    the ranking then asks whether the texts a feature lists score higher for the criterion than the texts
    the other features list.
    """
    from dataclasses import replace

    return [replace(d, examples=tuple({"text": t, "activation": 1.0} for t in d.examples)) for d in dumps]
