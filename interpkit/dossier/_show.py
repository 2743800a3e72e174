"""`dossier_text` and `dossier_summary`: a dossier, its grade and the planner's next experiments, for people
(what ``interpkit dossier show`` prints, and a notebook) and for programs (``show --json``)."""

from __future__ import annotations

from typing import Any

from ._format import Dossier
from ._grade import grade, next_experiments

__all__ = ["dossier_summary", "dossier_text"]


def _fmt(x: object, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def dossier_summary(d: Dossier, *, project_dir: str | None = None) -> dict[str, Any]:
    """``{"key", "path", "grade", "next_experiments"}`` (what ``dossier show --json`` prints)."""
    return {"key": d.key, "path": str(d.path), "grade": grade(d).to_dict(),
            "next_experiments": [s.to_dict() for s in next_experiments(d, project_dir=project_dir)]}


def dossier_text(d: Dossier, *, project_dir: str | None = None) -> str:
    """The dossier as text: grade, rule, evidence and what is missing, each run, matches, artifacts, and
    the next experiments with their commands."""
    g, plan = grade(d), next_experiments(d, project_dir=project_dir)
    lines = [f"dossier {d.key}  ({d.path})",
             f"grade {g.level}: {g.name}{'  [synthetic data]' if g.synthetic else ''}",
             f"  rule: {g.rule}"]
    lines += [f"  evidence: {line}" for line in g.evidence]
    lines += [f"  missing: {line}" for line in g.missing]
    lines.append(f"runs ({len(d.entries)}):")
    for e in d.entries:
        a, c = e["association"], e["causal"]
        causal = "no causal evidence" if c is None else (
            f"{c['status']} {_fmt(c['effect'], '.3g')} [{_fmt(c['ci_low'], '.3g')}, {_fmt(c['ci_high'], '.3g')}] "
            f"n={c['n']}, controls {_control_kinds(c['controls'])}, beats controls {c['beats_controls']}")
        lines.append(
            f"  seed {e['settings']['seed']} rank {e['rank']}/{e['n_features']} [{e['tier']}] AUROC "
            f"{_fmt(a['auroc_test'])} [{_fmt(a['auroc_ci_low'])}, {_fmt(a['auroc_ci_high'])}] q {_fmt(a['q_value'], '.3g')}"
            f" | causal {causal} | stability {_fmt(e['stability']['stability'], '.2f')} | label "
            f"{e['label']['text']!r} score {_fmt(e['label']['score'], '.2f')}")
        lines.append(f"    {e['report_path']}")
        lines += [f"    {copy} (the same bytes)" for copy in e["copies"]]
    for m in d.matches:
        lines.append(f"  match: {m['other_feature_id']} in {m['other_model'] or '?'} score {_fmt(m['score'])} "
                     f"confidence {_fmt(m['confidence'], '.2f')} validated {m['validated']}")
    for art in d.artifacts:
        extra = f" validated {art['validated']}" if "validated" in art else ""
        lines.append(f"  artifact: {art['path']} kind {art['kind']}{extra} sha256 {art['sha256'][:12]}")
    for s in plan:
        lines.append(f"next (to grade {s.raises_to}): {s.why}")
        lines.append(f"  $ {s.command}")
        if s.placeholders:
            lines.append(f"  fill in: {', '.join(s.placeholders)}")
    return "\n".join(lines) + "\n"


def _control_kinds(controls: list[dict[str, Any]]) -> str:
    """``"3 (random, placebo 2)"``: how many controls, by kind."""
    counts: dict[str, int] = {}
    for c in controls:
        counts[c.get("kind", "random")] = counts.get(c.get("kind", "random"), 0) + 1
    kinds = ", ".join(k if n == 1 else f"{k} {n}" for k, n in counts.items())
    return f"{len(controls)}" + (f" ({kinds})" if kinds else "")
