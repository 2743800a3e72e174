"""``comparison.md``: a `~interpkit.report.RunComparison` for reading."""

from __future__ import annotations

from typing import Any


def _num(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _interval(d: dict[str, Any] | None, key: str, value: str) -> str:
    if d is None:
        return "–"
    part = d[key]
    text = _num(part[value])
    if part.get("ci_low") is not None and part.get("ci_high") is not None:
        text += f" [{_num(part['ci_low'])}, {_num(part['ci_high'])}]"
    return text


def _cell(x: Any) -> str:
    return "–" if x is None else str(x).replace("|", "\\|").replace("\n", " ")


def render_comparison(c: Any) -> str:
    """The comparison as markdown: the verdict, settings, gained and lost, then one row per feature."""
    lines = [f"# Run comparison\n\n- A: `{c.a}`\n- B: `{c.b}`"]
    if c.versions[0] != c.versions[1]:
        lines.append(f"- interpkit versions: {c.versions[0]} vs {c.versions[1]}")
    if c.no_change:
        lines.append("\n**No change**: every setting, feature, rank, tier, label and number agrees "
                     f"(numbers within rel {c.tolerance['rel_tol']:g} / abs {c.tolerance['abs_tol']:g}; "
                     "paths, timestamps and durations are not compared).")
        return "\n".join(lines) + "\n"
    if c.settings_changed:
        lines += ["\n## Settings changed\n", "| setting | A | B |", "|---|---|---|"]
        for s in sorted(c.settings_changed, key=lambda s: (not s["key"], s["name"])):
            name = f"**{s['name']}**" if s["key"] else s["name"]
            lines.append(f"| {name} | {_cell(s['a'])} | {_cell(s['b'])} |")
    lines.append("\n## Top features\n")
    lines.append(f"- gained (in B's top, not A's): {', '.join(f'`{f}`' for f in c.gained) or 'none'}")
    lines.append(f"- lost (in A's top, not B's): {', '.join(f'`{f}`' for f in c.lost) or 'none'}")
    lines.append(f"- rank shifts: {len(c.rank_shifts)}; tier changes: {len(c.tier_changes)}; full-ranking "
                 f"rows that differ: {c.n_ranking_rows_changed} (only in A: {c.n_ranking_only_a}, only in B: "
                 f"{c.n_ranking_only_b})")
    lines += ["\n| feature | label A / B | rank A → B | tier A → B | AUROC A [95% CI] | AUROC B | "
              "causal effect A [CI] | causal effect B | changed |", "|---|---|---|---|---|---|---|---|---|"]
    for f in c.features:
        what = [k for k, flag in (("rank", f["rank_shift"]), ("tier", f["tier_changed"]),
                                  ("evidence", f["evidence_changed"]), ("label", f["label_changed"]),
                                  ("explanation", f["explanation_changed"])) if flag]
        label = _cell(f["label_a"]) if not f["label_changed"] else f"{_cell(f['label_a'])} / {_cell(f['label_b'])}"
        lines.append(
            f"| `{f['feature_id']}` | {label} | {_cell(f['rank_a'])} → {_cell(f['rank_b'])} | "
            f"{_cell(f['tier_a'])} → {_cell(f['tier_b'])} | {_interval(f['a'], 'association', 'auroc_test')} | "
            f"{_interval(f['b'], 'association', 'auroc_test')} | {_interval(f['a'], 'causal', 'effect')} | "
            f"{_interval(f['b'], 'causal', 'effect')} | {', '.join(what) or '–'} |")
    return "\n".join(lines) + "\n"
