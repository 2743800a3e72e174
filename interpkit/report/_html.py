"""``report.html``: one self-contained page with a feature card per top feature.

The page is a researcher's dashboard in the style of Neuronpedia / SAE-Vis cards: a header (model,
criterion, backend, settings, warnings, inputs), a summary table linking to the cards, and per
feature its label and label score, the ranking components, an SVG activation histogram, top and
quantile examples with per-token highlights, logit effects, causal evidence, the self-explanation
and any verbalizer errors. Nothing is fetched: CSS, SVG and a small optional sorting script are
inline, and a Content-Security-Policy forbids every network load. Every text is untrusted and
escaped; keys missing from ``FeatureEntry.explanation`` (or the whole explanation) only hide their
section. The same report always renders to the same string.

Example:
    >>> import interpkit
    >>> report = interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=2, n_permutations=50)
    >>> page = report.to_html()
    >>> page.startswith("<!DOCTYPE html>"), page.count('<article class="card"')
    (True, 2)
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from interpkit._io import slug
from interpkit.report._markdown import _causal_text, _fmt

if TYPE_CHECKING:
    from interpkit.report._report import FeatureEntry, Report

_MAX_CONTEXT = 48
"""Tokens shown around an example's maximum; longer contexts show the rest in a closed ``<details>``."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
"""Control characters other than tab/newline/CR: shown as Unicode control pictures (U+2400 block)."""
_CONTROL_PICTURES = {"\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"}


def _e(value: Any) -> str:
    """Escape for text and double-quoted attributes; lone surrogates and control bytes made visible."""
    text = str(value).encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(lambda m: "\u2421" if m[0] == "\x7f" else chr(0x2400 + ord(m[0])), text)
    return html.escape(text, quote=True)


def _num(value: Any) -> float | None:
    """A finite float, or None for anything else (bools, strings, NaN, missing)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _seq(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _f(value: Any, digits: int = 3) -> str:
    return _e(_fmt(value, digits))


def _scalar(value: Any) -> Any:
    """``specificity``/``stability`` are numbers, or mappings with a ``value`` in older components."""
    return value.get("value") if isinstance(value, Mapping) else value


_slug = slug


# ---------------------------------------------------------------------------------------- tokens


def _token_text(token: str) -> str:
    """Escaped token with newlines/tabs shown as glyphs (a newline also breaks the line)."""
    out = _e(token)
    for raw, glyph in _CONTROL_PICTURES.items():
        out = out.replace(raw, glyph + ("<br>" if raw == "\n" else ""))
    return out


def _token_span(token: str, value: float | None, scale: float) -> str:
    classes = "tok ws" if token.strip() == "" else "tok"
    if value is None:
        return f'<span class="{classes}" title="no value">{_token_text(token)}</span>'
    alpha = min(abs(value) / scale, 1.0) if scale > 0 else 0.0
    rgb = "255,112,0" if value >= 0 else "40,110,255"
    return (f'<span class="{classes}" style="background:rgba({rgb},{alpha:.3f})" '
            f'title="{_e(_fmt(value))}" data-act="{_e(_fmt(value))}">{_token_text(token)}</span>')


def _token_values(example: Mapping[str, Any]) -> tuple[list[str], list[float | None]] | None:
    tokens, values = _seq(example.get("tokens")), _seq(example.get("token_activations"))
    if not tokens or len(tokens) != len(values):
        return None
    return [str(t) for t in tokens], [_num(v) for v in values]


def _feature_scale(examples: Sequence[Mapping[str, Any]]) -> float:
    """The feature's maximum |token activation| over every shown example (the 100 % highlight)."""
    best = 0.0
    for ex in examples:
        tv = _token_values(ex)
        if tv:
            best = max([best] + [abs(v) for v in tv[1] if v is not None])
    return best


def _tokens_html(tokens: list[str], values: list[float | None], scale: float) -> str:
    spans = [_token_span(t, v, scale) for t, v in zip(tokens, values, strict=True)]
    if len(tokens) <= _MAX_CONTEXT:
        return "".join(spans)
    peak = max(range(len(values)), key=lambda i: abs(values[i]) if values[i] is not None else -1.0)
    lo = max(0, min(peak - _MAX_CONTEXT * 2 // 3, len(tokens) - _MAX_CONTEXT))
    hi = lo + _MAX_CONTEXT
    head = f'<span class="cut">…{lo} tokens </span>' if lo else ""
    tail = f'<span class="cut"> …{len(tokens) - hi} tokens</span>' if hi < len(tokens) else ""
    return (f"{head}{''.join(spans[lo:hi])}{tail}"
            f'<details class="full"><summary>full context ({len(tokens)} tokens)</summary>'
            f"{''.join(spans)}</details>")


def _example_html(example: Mapping[str, Any], scale: float) -> str:
    ex = _map(example)
    sub = []
    if ex.get("criterion_score") is not None:
        sub.append(f'<span class="crit" title="criterion score">crit {_f(ex.get("criterion_score"), 2)}</span>')
    if ex.get("split"):
        sub.append(f'<span class="split">{_e(ex.get("split"))}</span>')
    if ex.get("example_id") is not None:
        sub.append(f'<span class="eid">#{_e(ex.get("example_id"))}</span>')
    meta = [f'<span class="act" title="activation">{_f(ex.get("activation"))}</span>',
            f'<span class="sub">{" ".join(sub)}</span>']
    tv = _token_values(ex)
    body = _tokens_html(*tv, scale) if tv else f'<span class="plain">{_token_text(str(ex.get("text", "")))}</span>'
    return f'<div class="ex"><div class="exmeta">{"".join(meta)}</div><div class="toks">{body}</div></div>'


def _examples_section(entry: FeatureEntry, expl: Mapping[str, Any]) -> str:
    # The ranking's own examples carry criterion score and split; explanations usually do not.
    known = {str(x.get("example_id")): x for x in map(_map, entry.top_examples) if x.get("example_id") is not None}

    def with_known(x: Any) -> Mapping[str, Any]:
        x = _map(x)
        extra = _map(known.get(str(x.get("example_id")))) if x.get("example_id") is not None else {}
        return {**x, **{k: extra[k] for k in ("criterion_score", "split") if x.get(k) is None and extra.get(k) is not None}}

    top = [with_known(x) for x in _seq(expl.get("top_examples"))]
    source = "explanation"
    if not top:
        top, source = [_map(x) for x in entry.top_examples], "ranking table"
    groups = [_map(g) for g in _seq(expl.get("quantile_examples"))]
    q_examples = [with_known(x) for g in groups for x in _seq(g.get("examples"))]
    scale = _feature_scale(top + q_examples)
    parts = []
    if top:
        legend = (f'<span class="legend">highlight = activation / {_f(scale)} (feature max)</span>'
                  if scale > 0 else "")
        parts.append(f'<h4>Top activations <span class="src">({source})</span>{legend}</h4>'
                     + "".join(_example_html(x, scale) for x in top))
    else:
        parts.append('<h4>Top activations</h4><p class="none">no examples recorded</p>')
    for g in groups:
        examples = [with_known(x) for x in _seq(g.get("examples"))]
        rng = f"[{_f(g.get('lo'))}, {_f(g.get('hi'))}]"
        parts.append(f'<details class="quant"><summary>Quantile {_e(g.get("name", "?"))} {rng} '
                     f'· {len(examples)} example{"s" * (len(examples) != 1)}</summary>'
                     + "".join(_example_html(x, scale) for x in examples) + "</details>")
    return f'<section class="examples">{"".join(parts)}</section>'


# ---------------------------------------------------------------------------------------- charts


def _histogram_svg(hist: Mapping[str, Any], density: Any) -> str:
    edges = [_num(x) for x in _seq(hist.get("edges"))]
    counts = [_num(x) for x in _seq(hist.get("counts"))]
    dens = f'<div class="dens">density <b>{_f(_num(density) * 100, 2)}%</b></div>' if _num(density) is not None else ""
    if not counts or len(edges) != len(counts) + 1 or None in edges or None in counts:
        note = "histogram malformed" if hist else "no histogram"
        return f'<div class="hist"><h4>Activations</h4>{dens}<p class="none">{note}</p></div>'
    w, h, left, bottom, top = 300, 120, 34, 28, 6
    pw, ph = w - left - 6, h - bottom - top
    x0, x1 = edges[0], edges[-1]
    span = (x1 - x0) or 1.0
    ordered = sorted(counts)
    peak = ordered[-1] or 1.0
    # One bin (usually the zeros of a sparse feature) can dwarf the rest: clip it and say so.
    second = ordered[-2] if len(ordered) > 1 else 0.0
    ymax = second * 1.25 if second > 0 and peak > 4 * second else peak
    bars = []
    for i, c in enumerate(counts):
        bx = left + (edges[i] - x0) / span * pw
        bw = max((edges[i + 1] - edges[i]) / span * pw - 0.6, 0.6)
        bh = min(c / ymax, 1.0) * ph
        bars.append(f'<rect class="bar" x="{bx:.2f}" y="{top + ph - bh:.2f}" width="{bw:.2f}" height="{bh:.2f}">'
                    f"<title>[{_f(edges[i])}, {_f(edges[i + 1])}): {_f(c, 0)}</title></rect>")
        if c > ymax:
            bars.append(f'<text class="clip" x="{bx + bw + 2:.2f}" y="{top + 8}">{_f(c, 0)} (clipped)</text>'
                        f'<line class="brk" x1="{bx:.2f}" y1="{top + 6}" x2="{bx + bw:.2f}" y2="{top + 3}"/>')
    base = top + ph
    axes = (f'<line class="axis" x1="{left}" y1="{base}" x2="{left + pw}" y2="{base}"/>'
            f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{base}"/>'
            f'<text x="{left}" y="{base + 11}" text-anchor="start">{_f(x0, 2)}</text>'
            f'<text x="{left + pw}" y="{base + 11}" text-anchor="end">{_f(x1, 2)}</text>'
            f'<text x="{left + pw / 2:.1f}" y="{h - 3}" text-anchor="middle" class="lab">activation</text>'
            f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{_f(ymax, 0)}</text>'
            f'<text x="{left - 3}" y="{base}" text-anchor="end">0</text>'
            f'<text x="10" y="{top + ph / 2:.1f}" text-anchor="middle" class="lab" '
            f'transform="rotate(-90 10 {top + ph / 2:.1f})">count</text>')
    svg = (f'<svg class="histsvg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" '
           f'aria-label="activation histogram">{"".join(bars)}{axes}</svg>')
    return f'<div class="hist"><h4>Activations</h4>{dens}{svg}</div>'


def _bar_rows(items: Sequence[tuple[str, float | None]], scale: float, cls: str) -> str:
    rows = []
    for name, value in items:
        width = min(abs(value) / scale * 100, 100) if value is not None and scale > 0 else 0
        rows.append(f'<div class="brow"><span class="bname" title="{_e(name)}">{_token_text(name)}</span>'
                    f'<span class="btrack"><span class="bfill {cls}" style="width:{width:.1f}%"></span></span>'
                    f'<span class="bval">{_f(value)}</span></div>')
    return "".join(rows)


def _logit_section(logits: Mapping[str, Any]) -> str:
    if not logits:
        return ""
    sides = {}
    for side in ("promoted", "suppressed"):
        sides[side] = [(str(_map(x).get("token", "")), _num(_map(x).get("value")))
                       for x in _seq(logits.get(side))]
    scale = max([abs(v) for items in sides.values() for _, v in items if v is not None] or [0.0])
    cols = "".join(f'<div class="lcol"><h5>{side}</h5>{_bar_rows(items, scale, side) or "<p class=none>none</p>"}'
                   "</div>" for side, items in sides.items())
    method = f' <span class="src">({_e(logits["method"])})</span>' if logits.get("method") else ""
    return f'<section class="logits"><h4>Logit effects{method}</h4><div class="lcols">{cols}</div></section>'


# ---------------------------------------------------------------------------------------- card


_UNIT_STATS = frozenset({"AUROC (held-out)", "specificity", "stability"})
"""Stats in [0, 1], drawn with a small meter under the value."""


def _stat(name: str, value: Any, *, title: str = "", digits: int = 3) -> str:
    v = _num(value)
    width = min(max(v, 0.0), 1.0) * 100 if name in _UNIT_STATS and v is not None else 0.0
    meter = f'<span class="meter{"" if name in _UNIT_STATS else " blank"}"><span style="width:{width:.1f}%"></span></span>'
    tip = f' title="{_e(title)}"' if title else ""
    return f'<div class="stat"{tip}><span class="k">{_e(name)}</span><span class="v">{_f(value, digits)}</span>{meter}</div>'


def _components_section(c: Mapping[str, Any]) -> str:
    assoc = _map(c.get("association"))
    causal = _map(c.get("causal"))
    q = _num(assoc.get("q_value"))
    sig = "significant" if assoc.get("significant") else "not significant"
    stats = [
        _stat("combined", c.get("combined"), title=f"within-tier score {_fmt(c.get('score'))}"),
        _stat("AUROC (held-out)", assoc.get("auroc_test"),
              title=f"n_test={assoc.get('n_test')} ({assoc.get('n_pos_test')}+/{assoc.get('n_neg_test')}-), "
                    f"train AUROC {_fmt(assoc.get('auroc_train'))}"),
        _stat("q-value", q, title=f"p={_fmt(assoc.get('p_value'))}, {sig}"),
        _stat("specificity", _scalar(c.get("specificity"))),
        _stat("stability", _scalar(c.get("stability")), title=f"AUROC sd {_fmt(c.get('stability_auroc_sd'))}"),
    ]
    causal_html = (f'<div class="stat wide"><span class="k">causal</span>'
                   f'<span class="v">{_e(_causal_text(causal or None))}</span></div>')
    return f'<section class="comps"><div class="stats">{"".join(stats)}{causal_html}</div></section>'


def _causal_section(entry: FeatureEntry, causal: Mapping[str, Any]) -> str:
    parts = []
    if causal.get("effect") is not None or causal.get("side_effect") is not None:
        parts.append(f'<p class="ceff">mean raw effect <b>{_f(causal.get("effect"))}</b>, mean |side effect| '
                     f'<b>{_f(causal.get("side_effect"))}</b></p>')
    records = [_map(r) for r in entry.causal_records]
    if records:
        scale = max([abs(v) for r in records for k in ("mean_signed_effect", "mean_side_effect")
                     if (v := _num(r.get(k))) is not None] or [0.0])
        rows = "".join(
            f"<tr><td>{_e(r.get('intervention', '?'))}</td><td>{_f(r.get('n'))}</td>"
            f"<td>{_bar_rows([('', _num(r.get('mean_signed_effect')))], scale, 'signed')}</td>"
            f"<td>{_bar_rows([('', _num(r.get('mean_side_effect')))], scale, 'side')}</td></tr>"
            for r in records)
        parts.append('<table class="ctab"><thead><tr><th>intervention</th><th>n</th><th>mean signed effect</th>'
                     f"<th>mean side effect</th></tr></thead><tbody>{rows}</tbody></table>")
    imported = _map(entry.imported_causal_effects)
    if imported:
        rows = "".join(f"<tr><td>{_e(k)}</td><td>{_f(_num(v) if _num(v) is not None else v)}</td></tr>"
                       for k, v in imported.items())
        parts.append('<p class="note">imported from the feature dump (reported, not used for ranking)</p>'
                     f'<table class="ctab"><tbody>{rows}</tbody></table>')
    if not parts:
        return ""
    return f'<section class="causal"><h4>Causal effects</h4>{"".join(parts)}</section>'


def _self_explanation(se: Mapping[str, Any]) -> str:
    if not se:
        return ""
    meta = ", ".join(f"{k} {_e(_fmt(se[k]))}" for k in ("method", "layer", "scale") if se.get(k) is not None)
    prompt = f'<div class="prompt">prompt: <code>{_token_text(str(se["prompt"]))}</code></div>' if se.get("prompt") else ""
    text = _token_text(str(se.get("text") or ""))
    return (f'<section class="selfx"><h4>Self-explanation <span class="src">({meta})</span></h4>{prompt}'
            f'<blockquote>{text or "<i>empty</i>"}</blockquote></section>')


def _errors(errors: Mapping[str, Any]) -> str:
    if not errors:
        return ""
    items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in errors.items())
    return f'<section class="errors"><h4>Verbalizer errors</h4><ul>{items}</ul></section>'


def _label_block(entry: FeatureEntry, expl: Mapping[str, Any]) -> str:
    label = expl.get("label") or entry.label
    head = f'<span class="label">{_e(label)}</span>' if label else '<span class="label none">unlabelled</span>'
    bits = []
    if expl.get("label_source"):
        bits.append(f"by {_e(expl['label_source'])}")
    if expl.get("label") and entry.label and expl.get("label") != entry.label:
        bits.append(f"table label: {_e(entry.label)}")
    score = _num(expl.get("label_score"))
    scoring = _map(expl.get("label_scoring"))
    if score is not None or scoring:
        how = " ".join(_e(scoring[k]) for k in ("method", "metric") if scoring.get(k))
        n = (f", {_e(scoring.get('n_positive'))}+/{_e(scoring.get('n_negative'))}−"
             if scoring.get("n_positive") is not None else "")
        bits.append(f'label score <b class="lscore">{_f(score)}</b>' + (f" ({how}{n})" if how or n else ""))
    sub = f'<div class="lmeta">{" · ".join(bits)}</div>' if bits else ""
    return f"{head}{sub}"


def _card(entry: FeatureEntry, anchor: str) -> str:
    expl = _map(entry.explanation)
    c = _map(entry.components)
    tier_rank = _num(c.get("tier_rank"))
    tier_cls = f"t{int(tier_rank)}" if tier_rank is not None and 0 <= tier_rank <= 5 else "tx"
    where = " · ".join(f"{k} {_e(v)}" for k, v in (("model", entry.model), ("site", entry.site),
                                                     ("layer", entry.layer), ("source", entry.source))
                       if v is not None)
    header = (f'<header><span class="rank">#{_e(entry.rank)}</span><code class="fid">{_e(entry.feature_id)}</code>'
              f'<span class="tier {tier_cls}">{_e(c.get("tier") or "no tier")}</span>'
              f'<div class="where">{where}</div><div class="lbl">{_label_block(entry, expl)}</div></header>')
    left = (_components_section(c) + _histogram_svg(_map(expl.get("histogram")), expl.get("density"))
            + _logit_section(_map(expl.get("logit_effects"))) + _causal_section(entry, _map(c.get("causal"))))
    right = (_examples_section(entry, expl) + _self_explanation(_map(expl.get("self_explanation")))
             + _errors(_map(expl.get("errors"))))
    return (f'<article class="card" id="{anchor}" data-rank="{_e(entry.rank)}">{header}'
            f'<div class="cbody"><div class="cleft">{left}</div><div class="cright">{right}</div></div></article>')


def feature_card_html(entry: FeatureEntry, anchor: str | None = None) -> str:
    """One feature's card, the markup ``report.html`` shows for it.

    Args:
        entry: the report entry.
        anchor: the card's element id (default ``card-<feature id slug>``).
    """
    return _card(entry, anchor or f"card-{_slug(str(entry.feature_id))}")


def card_css() -> str:
    """The cards' stylesheet for a shadow root (``:root`` variables on ``:host``): cards shown
    outside ``report.html``, e.g. in a notebook widget, neither leak nor take the page's styles."""
    return _CSS.replace(":root", ":host")


# ---------------------------------------------------------------------------------------- page


def _summary_table(report: Report, anchors: list[str]) -> str:
    head = ["#", "feature", "label", "tier", "combined", "AUROC", "q", "spec.", "stab.", "causal", "label score",
            "density"]
    rows = []
    for entry, anchor in zip(report.features, anchors, strict=True):
        c, expl = _map(entry.components), _map(entry.explanation)
        assoc, causal = _map(c.get("association")), _map(c.get("causal"))
        nums = [c.get("combined"), assoc.get("auroc_test"), assoc.get("q_value"), _scalar(c.get("specificity")),
                _scalar(c.get("stability"))]
        cells = [f'<td data-v="{_e(entry.rank)}">{_e(entry.rank)}</td>',
                 f'<td><a href="#{anchor}"><code>{_e(entry.feature_id)}</code></a></td>',
                 f"<td>{_e(expl.get('label') or entry.label or '')}</td>",
                 f'<td data-v="{_f(c.get("tier_rank"), 0)}">{_e(c.get("tier") or "")}</td>']
        cells += [f'<td class="n" data-v="{_f(v, 6)}">{_f(v)}</td>' for v in nums]
        cells.append(f'<td data-v="{_f(causal.get("value"), 6)}">{_e(_causal_text(causal or None))}</td>')
        for v in (expl.get("label_score"), expl.get("density")):
            cells.append(f'<td class="n" data-v="{_f(v, 6)}">{_f(v)}</td>')
        rows.append(f"<tr>{''.join(cells)}</tr>")
    ths = "".join(f'<th data-col="{j}">{_e(h)}</th>' for j, h in enumerate(head))
    return (f'<table class="summary sortable"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="note">Association is measured on the held-out split (features oriented on the train '
            "split); q is the Benjamini-Hochberg adjusted p-value. Causal evidence comes only from intervention "
            "records and is never imputed. Click a column header to sort.</p>")


def _settings_html(settings: Mapping[str, Any]) -> str:
    items = []
    for k, v in settings.items():
        shown = json.dumps(v, sort_keys=True, default=str) if isinstance(v, Mapping | list | tuple) else _fmt(v)
        items.append(f"<span><b>{_e(k)}</b> {_e(shown)}</span>")
    return f'<div class="settings">{"".join(items)}</div>' if items else ""


def _inputs_html(report: Report) -> str:
    if not report.inputs:
        return '<p class="none">inputs: none read from files</p>'
    rows = "".join(
        f"<tr><td>{_e(i.role)}</td><td><code>{_e(i.path)}</code></td><td>{_f(i.rows)}</td>"
        f'<td><code title="{_e(i.sha256)}">{_e(str(i.sha256)[:12])}…</code></td></tr>' for i in report.inputs)
    return ('<table class="inputs"><thead><tr><th>role</th><th>path</th><th>rows</th><th>sha256</th></tr></thead>'
            f"<tbody>{rows}</tbody></table>")


_SYNTHETIC = ('<div class="synthetic" role="alert"><b>SYNTHETIC DATA.</b> Every number on this page comes from a '
              "generated table with planted ground truth (the <code>toy</code> backend), not from a model. Use it "
              "to learn the tool, never as a finding.</div>")


def render_html(report: Report) -> str:
    """Render ``report`` as one self-contained HTML page (no external resources; deterministic).

    Args:
        report: the report; ``FeatureEntry.explanation`` may be None or lack any key.

    Returns:
        The page as a string (UTF-8 when written).
    """
    anchors = [f"card-{i + 1}-{_slug(str(f.feature_id))}" for i, f in enumerate(report.features)]
    synthetic = _SYNTHETIC if report.synthetic else ""
    warnings = ("<div class=\"warnings\"><b>Warnings</b><ul>" + "".join(f"<li>{_e(w)}</li>" for w in report.warnings)
                + "</ul></div>") if report.warnings else ""
    cards = "".join(_card(f, a) for f, a in zip(report.features, anchors, strict=True))
    body = (f'<header class="top"><h1>interpkit report <span class="crit">{_e(report.criterion)}</span></h1>'
            f'{synthetic}<div class="meta"><span><b>model</b> <code>{_e(report.model)}</code></span>'
            f'<span><b>backend</b> <code>{_e(report.backend)}</code></span>'
            f"<span><b>criterion</b> {_e(report.criterion)}</span>"
            f"<span><b>features shown</b> {len(report.features)}</span></div>"
            f"{_settings_html(_map(report.settings))}{warnings}{_inputs_html(report)}</header>"
            f'<main><h2>Top features</h2>{_summary_table(report, anchors) if report.features else ""}'
            f'<div class="cards">{cards or "<p class=none>no features in this report</p>"}</div></main>'
            f"{synthetic}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<link rel="icon" href="data:,">'
            f"<title>interpkit report: {_e(report.criterion)}</title><style>{_CSS}</style></head>"
            f"<body>{body}<script>{_JS}</script></body></html>\n")


_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:; "
        "base-uri 'none'; form-action 'none'")

_CSS = """
:root{--fg:#1d2330;--mute:#6b7385;--line:#e3e6ec;--bg:#f6f7f9;--card:#fff;--acc:#2b5fd9}
*{box-sizing:border-box}body{margin:0;background:var(--bg);color:var(--fg);
font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header.top,main{max-width:1280px;margin:0 auto;padding:12px 20px}
h1{font-size:20px;margin:4px 0 8px}h1 .crit{color:var(--acc);font-weight:500}h2{font-size:16px;margin:14px 0 6px}
h4{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--mute);margin:10px 0 4px}
h5{font-size:11px;margin:2px 0;color:var(--mute)}code{font:12px ui-monospace,Menlo,Consolas,monospace}
.synthetic{background:#b3261e;color:#fff;padding:8px 12px;border-radius:6px;margin:6px 0;font-size:14px}
.synthetic code{color:#fff}.meta,.settings{display:flex;flex-wrap:wrap;gap:4px 16px;margin:4px 0}
.settings span{background:#eceef3;border-radius:4px;padding:0 6px;font-size:12px}
.warnings{background:#fff6d6;border:1px solid #f0d98a;border-radius:6px;padding:6px 10px;margin:8px 0}
.warnings ul{margin:2px 0;padding-left:18px}.none{color:var(--mute);font-style:italic;margin:2px 0}
.note{color:var(--mute);font-size:12px;margin:4px 0}.src{text-transform:none;letter-spacing:0;font-weight:400}
table{border-collapse:collapse;background:var(--card)}td,th{padding:3px 8px;border-bottom:1px solid var(--line);
text-align:left;vertical-align:top}th{font-size:12px;color:var(--mute);user-select:none}
table.sortable th{cursor:pointer}td.n{text-align:right;font-variant-numeric:tabular-nums}
.summary{width:100%;border:1px solid var(--line);border-radius:6px}.summary a{color:var(--acc);text-decoration:none}
.inputs{margin:6px 0;font-size:12px}
.cards{display:flex;flex-direction:column;gap:14px;margin-top:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 14px;
box-shadow:0 1px 2px rgba(0,0,0,.04)}
.card header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 10px;border-bottom:1px solid var(--line);
padding-bottom:6px}.rank{font-weight:700;color:var(--mute)}.fid{font-size:14px;font-weight:600}
.where{color:var(--mute);font-size:12px}.lbl{flex-basis:100%}.label{font-size:16px;font-weight:600}
.label.none{color:var(--mute);font-weight:400}.lmeta{color:var(--mute);font-size:12px}
.tier{border-radius:10px;padding:0 8px;font-size:11px;font-weight:600;color:#fff;background:#8a92a3}
.t0{background:#1b7f3b}.t1{background:#3e9c5a}.t2{background:#8e44ad}.t3{background:#2b5fd9}.t4{background:#c27c0e}
.cbody{display:grid;grid-template-columns:minmax(280px,330px) 1fr;gap:16px}
@media (max-width:820px){.cbody{grid-template-columns:1fr}}
.stats{display:grid;grid-template-columns:1fr 1fr;gap:4px 10px;margin-top:8px}
.stat{display:flex;flex-wrap:wrap;justify-content:space-between;border-bottom:1px dotted var(--line)}
.stat .k{color:var(--mute)}.stat .v{font-variant-numeric:tabular-nums;font-weight:600}
.stat.wide{grid-column:1/-1}.meter{flex-basis:100%;height:3px;background:#eceef3;border-radius:2px;margin-bottom:2px}
.meter span{display:block;height:100%;background:var(--acc);border-radius:2px}
.histsvg{display:block;max-width:100%;height:auto}.histsvg .bar{fill:#f08a3a}.histsvg .axis{stroke:#9aa1b0}
.histsvg text{font-size:9px;fill:var(--mute)}.histsvg .lab{font-size:10px}
.histsvg .clip{font-size:9px;fill:var(--fg)}.histsvg .brk{stroke:#fff;stroke-width:2}.dens{font-size:12px}
.lcols{display:grid;grid-template-columns:1fr 1fr;gap:8px}
.brow{display:grid;grid-template-columns:minmax(0,5em) 1fr 3.6em;gap:4px;align-items:center;font-size:12px}
.ctab .brow{grid-template-columns:1fr 3.6em}.ctab .bname{display:none}
.bname{overflow:hidden;text-overflow:ellipsis;white-space:pre;font-family:ui-monospace,Menlo,monospace}
.btrack{height:8px;background:#f0f1f4;border-radius:2px}.bfill{display:block;height:100%;border-radius:2px}
.promoted,.signed{background:#2e9e5b}.suppressed{background:#d64545}.side{background:#9aa1b0}
.bval{text-align:right;font-variant-numeric:tabular-nums}.ctab{font-size:12px;width:100%}.ceff{margin:2px 0}
.ex{border-bottom:1px solid var(--line);padding:3px 0;display:flex;gap:8px}
.exmeta{flex:0 0 9em;display:flex;flex-direction:column;font-size:11px;color:var(--mute);line-height:1.3}
.exmeta .sub{display:flex;flex-wrap:wrap;gap:0 6px}.meter.blank{background:transparent}
.exmeta .act{font-weight:700;color:var(--fg);font-size:12px}
.toks{font:12px/1.7 ui-monospace,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word;min-width:0}
.tok{border-radius:2px;padding:1px 0}.tok.ws{outline:1px dotted #c5c9d3}.tok:hover{outline:1px solid #333}
.cut{color:var(--mute)}legend,.legend{float:right;text-transform:none;letter-spacing:0;font-weight:400}
details summary{cursor:pointer;color:var(--acc);font-size:12px;margin:4px 0}
.selfx blockquote{margin:4px 0;padding:4px 10px;border-left:3px solid var(--acc);background:#f3f6fd;
white-space:pre-wrap}.prompt{font-size:12px;color:var(--mute)}
.errors{background:#fdecec;border:1px solid #f3b7b7;border-radius:6px;padding:2px 10px;margin-top:8px}
.errors ul{margin:2px 0;padding-left:18px}
"""

_JS = """
(function(){
  document.querySelectorAll("table.sortable").forEach(function(t){
    t.querySelectorAll("th").forEach(function(th){
      th.addEventListener("click",function(){
        var col=+th.dataset.col, body=t.tBodies[0], asc=th.dataset.dir!=="asc";
        t.querySelectorAll("th").forEach(function(h){delete h.dataset.dir;});
        th.dataset.dir=asc?"asc":"desc";
        var key=function(r){var c=r.cells[col],v=c.dataset.v;var n=parseFloat(v);
          return isNaN(n)?(v===undefined?c.textContent:(asc?Infinity:-Infinity)):n;};
        Array.prototype.slice.call(body.rows).sort(function(a,b){var x=key(a),y=key(b);
          if(typeof x==="string"||typeof y==="string"){x=String(x);y=String(y);return asc?x.localeCompare(y):y.localeCompare(x);}
          return asc?x-y:y-x;}).forEach(function(r){body.appendChild(r);});
      });
    });
  });
})();
"""
