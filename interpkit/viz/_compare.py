"""`run_comparison_chart`: two runs side by side, feature by feature (``interpkit compare-runs``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interpkit._io import dir_mode

__all__ = ["run_comparison_chart", "save_run_comparison"]


def run_comparison_chart(comparison: Any) -> Any:
    """Each feature of either run's top list: its rank in A and in B (left), and its held-out
    AUROC and causal effect with their intervals in each run (right).

    Args:
        comparison: a `~interpkit.report.RunComparison` (or its ``to_dict()``).
    """
    import altair as alt

    data = comparison.to_dict() if hasattr(comparison, "to_dict") else dict(comparison)
    ranks, evidence = [], []
    for f in data["features"]:
        name = f["feature_id"] + (f" · {f['label_a'] or f['label_b']}" if (f["label_a"] or f["label_b"]) else "")
        for run in ("a", "b"):
            rank, ev = f[f"rank_{run}"], f[run]
            if rank is not None:
                ranks.append({"feature": name, "run": run.upper(), "rank": rank, "tier": f[f"tier_{run}"]})
            if ev is None:
                continue
            for measure, part, key in (("AUROC (held-out)", "association", "auroc_test"),
                                       ("causal effect", "causal", "effect")):
                value = ev[part][key]
                if value is not None:
                    evidence.append({"feature": name, "run": run.upper(), "measure": measure, "value": value,
                                     "low": ev[part]["ci_low"], "high": ev[part]["ci_high"]})
    order = list(dict.fromkeys(r["feature"] for r in ranks))
    title = "no change" if data["no_change"] else (
        f"{len(data['gained'])} gained, {len(data['lost'])} lost, {len(data['settings_changed'])} settings changed")
    color = alt.Color("run:N", scale=alt.Scale(domain=["A", "B"]), title="run")
    y = alt.Y("feature:N", sort=order, title=None)
    base = alt.Chart(alt.Data(values=ranks))
    rank_chart = (base.mark_line(color="#999").encode(y=y, x=alt.X("rank:Q", title="rank (1 = best)"),
                                                      detail="feature:N")
                  + base.mark_point(filled=True, size=60).encode(
                      y=y, x="rank:Q", color=color, tooltip=["feature:N", "run:N", "rank:Q", "tier:N"])
                  ).properties(width=220, title="rank")
    enc = {"y": y, "yOffset": alt.YOffset("run:N"), "color": color}
    # a facet of a layer needs the data on the layer, not on its members
    evidence_chart = alt.layer(
        alt.Chart().mark_rule().encode(x=alt.X("low:Q", title=None), x2="high:Q", **enc),
        alt.Chart().mark_point(filled=True).encode(
            x="value:Q", tooltip=["feature:N", "run:N", "measure:N", "value:Q", "low:Q", "high:Q"], **enc),
        data=alt.Data(values=evidence),
    ).properties(width=200).facet(column=alt.Column("measure:N", title=None)).resolve_scale(x="independent")
    return alt.hconcat(rank_chart, evidence_chart).properties(
        title={"text": "run comparison: A vs B", "subtitle": [title]})


def save_run_comparison(comparison: Any, out: str | os.PathLike[str]) -> list[Path]:
    """Write ``comparison.json``, ``comparison.md``, the chart's ``comparison.vl.json`` and its
    offline ``comparison.html`` (vega bundled; skipped without vl-convert) into the folder ``out``.

    The folder is built beside ``out`` and swapped in whole (`interpkit._io.atomic_dir`): a failure
    leaves the previous folder as it was. Returns the written paths (under ``out``).
    """
    from interpkit._io import atomic_dir

    from ._save import save_chart

    # rendered before the folder is touched: an error here writes nothing
    text_json, text_md, chart = comparison.to_json(), comparison.to_markdown(), run_comparison_chart(comparison)
    names = ["comparison.json", "comparison.md", "comparison.vl.json"]
    with atomic_dir(out) as tmp:
        (tmp / names[0]).write_text(text_json, encoding="utf-8")
        (tmp / names[1]).write_text(text_md, encoding="utf-8")
        save_chart(chart, tmp / names[2], format="json")
        try:
            save_chart(chart, tmp / "comparison.html", format="html")
            names.append("comparison.html")
        except ImportError:
            pass
        os.chmod(tmp, dir_mode())
    return [Path(out) / n for n in names]
