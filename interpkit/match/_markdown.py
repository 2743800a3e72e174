"""``matches.md``: a readable table of matches (labels, component scores, signed effects, null)."""

from __future__ import annotations

from typing import Any


def _f(x: Any, digits: int = 3) -> str:
    return "–" if x is None else f"{x:+.{digits}f}" if isinstance(x, float) else str(x)


def _cell(text: Any) -> str:
    return "" if text is None else str(text).replace("|", "\\|").replace("\n", " ")


def render_matches(result: Any, limit: int = 50) -> str:
    """Markdown for a `MatchResult`: settings, weights, null, then the top ``limit`` matches."""
    s = result.settings
    null = result.null
    lines = [
        "# Feature matches",
        "",
        f"- left: {s['left']['n_features']} features {', '.join(s['left']['models'])}".rstrip(),
        f"- right: {s['right']['n_features']} features {', '.join(s['right']['models'])}".rstrip(),
        f"- matches: {len(result.matches)} (confident, confidence >= {s['confident_threshold']}: "
        f"{len(result.confident())})",
        "- weights: " + ", ".join(f"{k}={v:g}" for k, v in result.weights.items() if v > 0)
        + " (renormalised over the components used: "
        + ", ".join(f"{k}={v:.3f}" for k, v in s["weights_used"].items()) + ")",
    ]
    for name, why in s["skipped_components"].items():
        lines.append(f"- skipped component **{name}**: {why}; its weight was renormalised away")
    lines.append(
        f"- null (shuffled pairings, n={null['n']}): mean {_f(null['mean'])}, sd {_f(null['std'])}"
        + "".join(f"; {k} {_f(v['mean'])} ± {_f(v['std'])}" for k, v in null.get("components", {}).items())
    )
    comps = s["components_used"]
    lines += [
        "",
        "| # | left | right | score | " + " | ".join(comps) + " | null z | confidence | mutual | effect L → R |",
        "|---|---|---|---|" + "---|" * len(comps) + "---|---|---|---|",
    ]
    for i, m in enumerate(result.matches[:limit], 1):
        left = f"`{_cell(m.left_id)}`" + (f" {_cell(m.left_label)}" if m.left_label else "")
        right = f"`{_cell(m.right_id)}`" + (f" {_cell(m.right_label)}" if m.right_label else "")
        z = "–" if m.null_z is None else f"{m.null_z:.1f}"
        eff = f"{_f(m.left_effect)} → {_f(m.right_effect)}"
        if m.validated is not None:
            eff += " ✔" if m.validated else " ✘"
        lines.append(
            f"| {i} | {left} | {right} | {m.score:.3f} | "
            + " | ".join(_f(m.components.get(c)) for c in comps)
            + f" | {z} | {m.confidence:.2f} | {'yes' if m.mutual else 'no'} | {eff} |"
        )
    if len(result.matches) > limit:
        lines.append(f"\n{len(result.matches) - limit} more matches in the JSON file.")
    return "\n".join(lines) + "\n"
