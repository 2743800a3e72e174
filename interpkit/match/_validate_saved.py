"""`validate_saved_matches`: `validate_matches` on a saved ``matches.json`` (``interpkit validate-matches``).

``interpkit match`` writes which reports it matched (``settings.left.report`` /
``settings.right.report``); each report's features are edited through the FeatureTable saved
beside it (``<report folder>/table``, or the table given): a feature's direction is its decoder
vector (DiffMean, probe, SAE decoder row) or, for a neuron ``"<site>:n<i>"``, the basis vector
(`interpkit.explain.feature_direction`), at the site in its feature metadata. The metric is the
next-token mass on the given target tokens (`interpkit.criterion.LogitTargetMetric`) for the
left report's criterion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._compare import MatchResult
from ._similarity import MatchError

__all__ = ["features_from_table", "read_matches", "validate_saved_matches"]


def read_matches(path: str | os.PathLike[str]) -> MatchResult:
    """A ``matches.json`` written by `interpkit match` (or its folder), strictly.

    Raises:
        FileNotFoundError: no file at ``path``.
        MatchError: not valid JSON or not a matches file (the message names the file).
    """
    from interpkit._io import read_json_file

    p, data = read_json_file(
        path, name="matches.json",
        missing="no matches file at {path} (expected a matches.json written by `interpkit match`)",
        invalid=lambda f, exc: MatchError(f"{f}:{exc.lineno}: not valid JSON: {exc.msg}"))
    try:
        return MatchResult.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise MatchError(f"{p}: {exc}") from None


def features_from_table(table: Any, feature_ids: Sequence[str], model: Any) -> dict[str, Any]:
    """``{id: CausalFeature}`` for the ids of ``table`` (direction from decoder vector or neuron id,
    site from the feature metadata, resolved by ``model``); ids not in the table are left out."""
    from interpkit.causal import CausalFeature
    from interpkit.explain import feature_direction

    out = {}
    known = set(table.feature_ids)
    for fid in dict.fromkeys(feature_ids):
        if fid not in known:
            continue
        site = table.features.iloc[table.feature_index(fid)].get("site")
        if not isinstance(site, str) or not site:
            raise MatchError(f"feature {fid!r}: the table's feature metadata has no site to edit at")
        out[fid] = CausalFeature(feature_id=fid, site=model.resolve_site(site),
                                 direction=feature_direction(table, fid, model))
    return out


def _side_table(result: MatchResult, side: str, table: Any, source: str) -> Any:
    from interpkit.table import FeatureTable

    if table is None:
        report = (result.settings.get(side) or {}).get("report")
        if not report:
            raise MatchError(f"{source}: field 'settings.{side}.report' is missing: pass the {side} table")
        folder = Path(report)
        folder = folder.parent if folder.suffix == ".json" else folder
        table = folder / "table"
        if not table.is_dir():
            raise FileNotFoundError(f"{source}: the {side} report's table {table} does not exist (inspect saves it "
                                    f"for the model backend); pass the {side} table")
    return table if hasattr(table, "feature_ids") else FeatureTable.load(table)


def validate_saved_matches(
    matches: str | os.PathLike[str] | MatchResult,
    left_model: Any,
    right_model: Any,
    prompts: Sequence[str],
    target_tokens: Sequence[str],
    *,
    criterion: str | None = None,
    left_table: Any = None,
    right_table: Any = None,
    out: str | os.PathLike[str] | None = None,
    **kw: Any,
) -> MatchResult:
    """Validate a saved match result by interventions on both models (`validate_matches`).

    Args:
        matches: a ``matches.json`` path (or folder) or a `MatchResult`.
        left_model: the left side's ``ModelWrapper``.
        right_model: the right side's (the same object for two runs of one model).
        prompts: held-out prompts, run through both models.
        target_tokens: the strings whose next-token mass is the criterion metric.
        criterion: the metric's criterion text (default: the left report's).
        left_table: the left report's FeatureTable or folder (default ``<report folder>/table``).
        right_table: the same for the right side.
        out: write the validated result here (JSON, with the markdown beside it, or a folder).
        **kw: passed to `validate_matches` (``top_n``, ``kinds``, ``strength``, ``scale``,
            ``n_controls``, ``negatives``, ``rule``, ``seed``, ``batch_size``).

    Raises:
        FileNotFoundError: no matches file, or no table for a side.
        MatchError: a malformed matches file or a feature the table cannot place at a site.
        ValueError: what `validate_matches` refuses (no prompts, a bad ``top_n`` ...).
    """
    from interpkit.criterion import LogitTargetMetric

    from ._validate import validate_matches

    source = str(matches) if not isinstance(matches, MatchResult) else "<matches>"
    result = matches if isinstance(matches, MatchResult) else read_matches(matches)
    ltab = _side_table(result, "left", left_table, source)
    rtab = _side_table(result, "right", right_table, source)
    if criterion is None:
        from interpkit.records import read_report

        report = (result.settings.get("left") or {}).get("report")
        if not report:
            raise MatchError(f"{source}: no left report recorded: pass criterion")
        criterion = read_report(report).criterion
    metric = LogitTargetMetric(criterion, list(target_tokens))
    left = features_from_table(ltab, [m.left_id for m in result.matches], left_model)
    right = features_from_table(rtab, [m.right_id for m in result.matches], right_model)
    validated = validate_matches(result, left_model, right_model, left, right, list(prompts), metric, **kw)
    if out is not None:
        validated.save(out)
    return validated
