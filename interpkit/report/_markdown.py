"""``report.md``: the human-readable view of a :class:`~interpkit.report.Report`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interpkit.report._report import Report

_SYNTHETIC_BANNER = (
    "> **SYNTHETIC DATA.** Every number below comes from a generated table with planted ground truth "
    "(the `toy` backend), not from a model. Use it to learn the tool, never as a finding."
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        if value != 0 and (abs(value) < 10 ** (-digits) or abs(value) >= 1e5):
            return f"{value:.2e}"
        return f"{value:.{digits}f}"
    return str(value)


def _cell(text: Any) -> str:
    return _fmt(text).replace("|", "\\|").replace("\n", " ")


def _get(components: Mapping[str, Any], *path: str) -> Any:
    node: Any = components
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def _causal_text(causal: Mapping[str, Any] | None) -> str:
    if not causal:
        return "no causal evidence"
    status = causal.get("status")
    value = causal.get("value")
    if value is None:
        return str(status)
    text = f"{_fmt(value)}"
    if causal.get("ci_low") is not None and causal.get("ci_high") is not None:
        text += f" [{_fmt(causal['ci_low'])}, {_fmt(causal['ci_high'])}]"
    n = causal.get("n")
    return f"{text} (n={n}, {status})" if n is not None else f"{text} ({status})"


def render_markdown(report: Report) -> str:
    """Render the report as Markdown: summary, inputs, the ranking table and one section per feature."""
    lines: list[str] = [f"# interpkit report: {report.criterion}", ""]
    if report.synthetic:
        lines += [_SYNTHETIC_BANNER, ""]
    lines += [
        f"- model: `{report.model}`",
        f"- backend: `{report.backend}`",
        f"- criterion: {report.criterion}",
    ]
    for key, value in report.settings.items():
        lines.append(f"- {key}: {_fmt(value) if not isinstance(value, Mapping) else value}")
    lines.append("")
    if report.inputs:
        lines += ["## Inputs", "", "| role | path | rows | sha256 |", "|---|---|---|---|"]
        lines += [f"| {i.role} | `{i.path}` | {_cell(i.rows)} | `{i.sha256[:16]}…` |" for i in report.inputs]
        lines.append("")
    if report.warnings:
        lines += ["## Warnings", ""] + [f"- {w}" for w in report.warnings] + [""]

    lines += [
        "## Ranking",
        "",
        "Association is measured on the held-out split (features were oriented on the train split); "
        "q is the Benjamini-Hochberg adjusted permutation p-value. Causal evidence comes only from "
        "intervention records and is never imputed.",
        "",
        "| # | feature | label | tier | combined | AUROC (held-out) | q | specificity | stability | causal |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for f in report.features:
        c = f.components
        lines.append(
            "| "
            + " | ".join(
                [
                    str(f.rank),
                    f"`{f.feature_id}`",
                    _cell(f.label),
                    _cell(_get(c, "tier")),
                    _cell(_get(c, "combined")),
                    _cell(_get(c, "association", "auroc_test")),
                    _cell(_get(c, "association", "q_value")),
                    _cell(_get(c, "specificity") if not isinstance(_get(c, "specificity"), Mapping)
                          else _get(c, "specificity", "value")),
                    _cell(_get(c, "stability") if not isinstance(_get(c, "stability"), Mapping)
                          else _get(c, "stability", "value")),
                    _cell(_causal_text(_get(c, "causal"))),
                ]
            )
            + " |"
        )
    lines.append("")

    for f in report.features:
        lines += [f"### {f.rank}. `{f.feature_id}`" + (f" — {f.label}" if f.label else ""), ""]
        meta = [f"{k}: `{v}`" for k, v in (("model", f.model), ("site", f.site), ("layer", f.layer),
                                            ("source", f.source)) if v is not None]
        if meta:
            lines += ["- " + ", ".join(meta), ""]
        assoc = _get(f.components, "association")
        if isinstance(assoc, Mapping):
            lines.append("- association: " + ", ".join(f"{k}={_fmt(v)}" for k, v in assoc.items()))
        lines.append(f"- causal: {_causal_text(_get(f.components, 'causal'))}")
        for rec in f.causal_records:
            lines.append(
                f"  - {rec.get('intervention')}: n={rec.get('n')}, mean signed effect "
                f"{_fmt(rec.get('mean_signed_effect'))}, mean side effect {_fmt(rec.get('mean_side_effect'))}"
            )
        if f.imported_causal_effects:
            lines.append(
                "- imported causal effects (from the feature dump, not used for ranking): "
                + ", ".join(f"{k}={_fmt(v)}" for k, v in f.imported_causal_effects.items())
            )
        if f.top_examples:
            lines += ["", "| activation | score | split | text |", "|---|---|---|---|"]
            for ex in f.top_examples:
                text = str(ex.get("text", ""))
                text = text if len(text) <= 160 else text[:157] + "…"
                lines.append(
                    f"| {_cell(ex.get('activation'))} | {_cell(ex.get('criterion_score'))} | "
                    f"{_cell(ex.get('split'))} | {_cell(text)} |"
                )
        lines.append("")
    if report.synthetic:
        lines += [_SYNTHETIC_BANNER, ""]
    return "\n".join(lines)
