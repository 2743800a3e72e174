"""Neuronpedia's JSON formats: feature references, strict parsing of one feature, conversions, exports.

`NeuronpediaRef` / `parse_ref` name a feature (``model@source:index``, a page URL or an API URL).
`_parse` checks one feature object (an API answer or an export row) against the fields listed in
`interpkit.sources.neuronpedia`'s docstring and normalises it; `feature_dump_from_json`,
`explanation_from_neuronpedia` and `fingerprint_from_neuronpedia` convert it; `read_exports` reads
and merges export files. Nothing here touches the network: the client is
`interpkit.sources.neuronpedia.NeuronpediaClient`, which re-exports these names.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from interpkit.records import FeatureDump
from interpkit.records._errors import RecordError

__all__ = [
    "DEFAULT_BASE_URL",
    "NeuronpediaRef",
    "explanation_from_neuronpedia",
    "feature_dump_from_json",
    "fingerprint_from_neuronpedia",
    "parse_ref",
    "read_exports",
]

DEFAULT_BASE_URL = "https://www.neuronpedia.org"
_REF_FORMS = (
    "model@source:index (gemma-2-2b@20-gemmascope-res-16k:1234), "
    "a page URL https://www.neuronpedia.org/<model>/<source>/<index>, "
    "or an API URL https://www.neuronpedia.org/api/feature/<model>/<source>/<index>"
)
_SHORT = re.compile(r"^([^@\s/]+)@([^:\s/]+):(\d+)$")
# Special tokens Neuronpedia shows at the start of activation windows; left out of example texts
# (which get scored for criteria) but kept in ``tokens`` so activations stay aligned.
_SPECIAL = frozenset({"<bos>", "<eos>", "<pad>", "<s>", "</s>", "<|endoftext|>", "<|begin_of_text|>"})
_MISSING: Any = object()


@dataclass(frozen=True, slots=True)
class NeuronpediaRef:
    """One Neuronpedia feature: model id, source (SAE or layer) id and feature index."""

    model_id: str
    """Neuronpedia model id (``gemma-2-2b``)."""
    source: str
    """Source id, Neuronpedia's ``layer`` field (``20-gemmascope-res-16k``)."""
    index: int
    """Feature index within the source."""

    def __post_init__(self) -> None:
        for name in ("model_id", "source"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or "/" in value:
                raise ValueError(f"NeuronpediaRef.{name}: expected a non-empty id without '/', got {value!r}")
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise ValueError(f"NeuronpediaRef.index: expected a non-negative integer, got {self.index!r}")

    @property
    def id(self) -> str:
        """The ``model@source:index`` form."""
        return f"{self.model_id}@{self.source}:{self.index}"

    @property
    def page_url(self) -> str:
        """The feature's page on neuronpedia.org."""
        return f"{DEFAULT_BASE_URL}/{self._path()}"

    def api_url(self, base: str = DEFAULT_BASE_URL) -> str:
        """The feature's JSON endpoint under ``base``."""
        return f"{base.rstrip('/')}/api/feature/{self._path()}"

    def _path(self) -> str:
        q = urllib.parse.quote
        return f"{q(self.model_id, safe='')}/{q(self.source, safe='')}/{self.index}"

    def __str__(self) -> str:
        return self.id


def parse_ref(ref: str | NeuronpediaRef) -> NeuronpediaRef:
    """Read a feature reference in any of the three accepted forms.

    Raises:
        ValueError: ``ref`` is none of ``model@source:index``, a page URL or an API URL.
    """
    if isinstance(ref, NeuronpediaRef):
        return ref
    text = ref.strip() if isinstance(ref, str) else ""
    parts: list[str] = []
    if "://" in text:
        path = urllib.parse.urlsplit(text).path
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if parts[:2] == ["api", "feature"]:
            parts = parts[2:]
    else:
        m = _SHORT.match(text)
        parts = list(m.groups()) if m else []
    if len(parts) == 3 and parts[2].isdigit() and all(p.strip() for p in parts[:2]):
        return NeuronpediaRef(parts[0], parts[1], int(parts[2]))
    raise ValueError(f"cannot read Neuronpedia feature reference {ref!r}: expected {_REF_FORMS}")


# ---------------------------------------------------------------- strict parsing of one feature


def _fail(expected: str, got: Any, field: str | None, where: str) -> RecordError:
    return RecordError(expected, got, field=field, path=where)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _num(raw: Mapping[str, Any], key: str, where: str, *, optional: bool = True, field: str | None = None) -> float | None:
    v = raw.get(key, _MISSING)
    if (v is _MISSING or v is None) and optional:
        return None
    if not _is_num(v):
        raise _fail("a finite number" + (" or null" if optional else ""), v, field or key, where)
    return float(v)


def _str_of(raw: Mapping[str, Any], key: str, where: str, field: str | None = None) -> str:
    v = raw.get(key, _MISSING)
    if not isinstance(v, str) or not v.strip():
        raise _fail("a non-empty string", v, field or key, where)
    return v


def _list_of(raw: Mapping[str, Any], key: str, where: str, kind: str, field: str | None = None) -> list[Any] | None:
    v = raw.get(key, _MISSING)
    if v is _MISSING or v is None:
        return None
    ok = isinstance(v, list) and all(_is_num(x) if kind == "number" else isinstance(x, str) for x in v)
    if not ok:
        raise _fail(f"a list of {kind}s", v, field or key, where)
    return v


def _index_of(raw: Mapping[str, Any], where: str) -> int:
    v = raw.get("index", _MISSING)
    if isinstance(v, str) and v.strip().isdigit():
        return int(v)
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise _fail("a feature index (a string of digits, as Neuronpedia writes it, or an integer)", v, "index", where)


def _pairs(raw: Mapping[str, Any], skey: str, vkey: str, where: str) -> list[dict[str, Any]]:
    strs = _list_of(raw, skey, where, "string")
    vals = _list_of(raw, vkey, where, "number")
    if strs is None and vals is None:
        return []
    if strs is None or vals is None or len(strs) != len(vals):
        raise _fail(f"as many numbers as {skey} has tokens", vals, vkey, where)
    return [{"token": s, "value": float(v)} for s, v in zip(strs, vals, strict=True)]


@dataclass
class _Feature:
    """One feature, checked and normalised (internal)."""

    ref: NeuronpediaRef
    explanations: list[dict[str, Any]]
    activations: list[dict[str, Any]]
    pos: list[dict[str, Any]]
    neg: list[dict[str, Any]]
    density: float | None = None
    max_act: float | None = None
    hook_name: str | None = None
    vector: list[float] | None = None
    hists: dict[str, dict[str, list[float]] | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        return self.explanations[0]["description"] if self.explanations else None


def _activation(a: Any, i: int, where: str) -> dict[str, Any]:
    f = f"activations[{i}]"
    if not isinstance(a, Mapping):
        raise _fail("an activation object", a, f, where)
    tokens = _list_of(a, "tokens", where, "string", field=f"{f}.tokens")
    values = _list_of(a, "values", where, "number", field=f"{f}.values")
    if tokens is None:
        raise _fail("a list of token strings", a.get("tokens", _MISSING), f"{f}.tokens", where)
    if values is None or len(values) != len(tokens):
        raise _fail(f"a list of {len(tokens)} numbers (one per token)", a.get("values", _MISSING), f"{f}.values", where)
    top = _num(a, "maxValue", where, field=f"{f}.maxValue")
    pos = a.get("maxValueTokenIndex")
    if pos is not None and (isinstance(pos, bool) or not isinstance(pos, int) or not 0 <= pos < len(tokens)):
        raise _fail(f"a token position in [0, {len(tokens)})", pos, f"{f}.maxValueTokenIndex", where)
    if values and pos is None:
        pos = max(range(len(values)), key=values.__getitem__)
    if top is None:
        top = max(values) if values else 0.0
    return {"id": a.get("id") if isinstance(a.get("id"), str) else None, "tokens": list(tokens),
            "values": [float(v) for v in values], "max_value": top, "max_index": pos,
            "bin_min": _num(a, "binMin", where, field=f"{f}.binMin"),
            "bin_max": _num(a, "binMax", where, field=f"{f}.binMax"),
            "bin_contains": _num(a, "binContains", where, field=f"{f}.binContains")}


def _explanation(e: Any, where: str, f: str) -> dict[str, Any]:
    if not isinstance(e, Mapping):
        raise _fail("an explanation object", e, f, where)
    desc = e.get("description", _MISSING)
    if not isinstance(desc, str):
        raise _fail("a string", desc, f"{f}.description" if f else "description", where)
    return {"description": desc.strip(), "model": e.get("explanationModelName"), "type": e.get("typeName")}


def _histogram(raw: Mapping[str, Any], prefix: str, where: str) -> dict[str, list[float]] | None:
    centres = _list_of(raw, f"{prefix}_bar_values", where, "number")
    heights = _list_of(raw, f"{prefix}_bar_heights", where, "number")
    if not centres and not heights:
        return None
    if centres is None or heights is None or len(centres) != len(heights):
        raise _fail(f"as many bar heights as {prefix}_bar_values", heights, f"{prefix}_bar_heights", where)
    return {"centers": [float(c) for c in centres], "heights": [float(h) for h in heights]}


def _parse(raw: Any, where: str, *, api: bool = False) -> _Feature:
    """Check one feature object; ``api=True`` also requires the two lists the API always sends."""
    if not isinstance(raw, Mapping):
        raise _fail("a Neuronpedia feature JSON object", raw, None, where)
    ref = NeuronpediaRef(_str_of(raw, "modelId", where), _str_of(raw, "layer", where), _index_of(raw, where))
    notes: list[str] = []
    if "activations" not in raw and "explanations" not in raw and (api or "description" not in raw):
        raise _fail("a list of activation objects (the feature's top activations)", _MISSING, "activations", where)
    if "explanations" in raw or api:
        exps = raw.get("explanations", _MISSING)
        if not isinstance(exps, list):
            raise _fail("a list of explanation objects", exps, "explanations", where)
        explanations = [_explanation(e, where, f"explanations[{i}]") for i, e in enumerate(exps)]
    else:
        explanations = [_explanation(raw, where, "")]
    if "activations" in raw or api:
        acts = raw.get("activations", _MISSING)
        if not isinstance(acts, list):
            raise _fail("a list of activation objects", acts, "activations", where)
        activations = [_activation(a, i, where) for i, a in enumerate(acts)]
        if not activations:
            notes.append("Neuronpedia lists no activations for this feature: no examples")
    else:
        activations = []
        notes.append("explanations-only Neuronpedia export: label only, no activation examples")
    if not explanations:
        notes.append("Neuronpedia has no explanation for this feature: no label")
    vector = _list_of(raw, "vector", where, "number")
    hook = raw.get("hookName")
    return _Feature(
        ref=ref, explanations=explanations, activations=activations,
        pos=_pairs(raw, "pos_str", "pos_values", where), neg=_pairs(raw, "neg_str", "neg_values", where),
        density=_num(raw, "frac_nonzero", where), max_act=_num(raw, "maxActApprox", where),
        hook_name=hook if isinstance(hook, str) else None, vector=[float(v) for v in vector] if vector else None,
        hists={"activations": _histogram(raw, "freq_hist_data", where),
               "logits": _histogram(raw, "logits_hist_data", where)},
        notes=notes,
    )


# ---------------------------------------------------------------- conversions


def feature_dump_from_json(raw: Mapping[str, Any], *, where: str = "<json>") -> FeatureDump:
    """One Neuronpedia feature object (API answer or export row) as a `FeatureDump`.

    The label is the best explanation's ``description``; each activation becomes an example
    ``{"text", "tokens", "token_activations", "activation" (= maxValue), "max_token_index"}``
    (``text`` joins the tokens, leaving out special tokens such as ``<bos>``).
    ``extra`` keeps the page URL, density, logits, histograms and every explanation.

    Args:
        raw: the parsed JSON object.
        where: where it came from (a URL or ``file:line``), named in errors.

    Raises:
        RecordError: a field is missing or has the wrong type; the message names it and ``where``.
    """
    f = _parse(raw, where)
    examples = []
    for a in f.activations:
        ex: dict[str, Any] = {"text": _text(a["tokens"]), "tokens": a["tokens"], "token_activations": a["values"],
                              "activation": a["max_value"], "max_token_index": a["max_index"]}
        if a["id"]:
            ex["neuronpedia_activation_id"] = a["id"]
        if a["bin_min"] is not None:
            ex.update(bin_min=a["bin_min"], bin_max=a["bin_max"], bin_contains=a["bin_contains"])
        examples.append(ex)
    extra = {"neuronpedia_url": f.ref.page_url, "neuronpedia_source": f.ref.source, "neuronpedia_index": f.ref.index,
             "hook_name": f.hook_name, "max_act_approx": f.max_act, "density": f.density,
             "pos_logits": f.pos, "neg_logits": f.neg, "activation_histogram": f.hists["activations"],
             "logits_histogram": f.hists["logits"], "explanations": f.explanations, "neuronpedia_notes": f.notes}
    return FeatureDump(feature_id=f.ref.id, model=f.ref.model_id, layer=f.ref.source, label=f.label,
                       examples=examples, decoder_signature=f.vector, source="neuronpedia", extra=extra)


def _text(tokens: list[str]) -> str:
    return "".join(t for t in tokens if t not in _SPECIAL)


def _edges(centres: list[float]) -> list[float]:
    """Bin edges from equal-width bin centres (SAEDashboard's HistogramData writes centres)."""
    width = (centres[-1] - centres[0]) / (len(centres) - 1) if len(centres) > 1 else 0.0
    return [round(c - width / 2, 6) for c in centres] + [round(centres[-1] + width / 2, 6)]


def _example(f: _Feature, a: dict[str, Any], i: int) -> dict[str, Any]:
    return {"example_id": a["id"] or f"{f.ref.id}#{i}", "text": _text(a["tokens"]), "activation": a["max_value"],
            "tokens": a["tokens"], "token_activations": a["values"]}


def explanation_from_neuronpedia(raw: Mapping[str, Any], *, where: str = "<json>", n_top: int = 10) -> dict[str, Any]:
    """One Neuronpedia feature object in interpkit's explanation schema (``FeatureEntry.explanation``).

    Top examples are the top-activation group (``binMin`` -1 or absent), largest first; activations
    from interval bins become ``quantile_examples`` (``q1`` = lowest bin). The histogram is the
    activation-frequency histogram, ``density`` is ``frac_nonzero``, ``logit_effects`` the
    ``pos_*``/``neg_*`` logits. Anything missing is said in ``errors["neuronpedia"]``.

    Raises:
        RecordError: a field is missing or has the wrong type (message names it and ``where``).
    """
    f = _parse(raw, where)
    indexed = list(enumerate(f.activations))
    top = [(i, a) for i, a in indexed if a["bin_min"] is None or a["bin_min"] < 0]
    top.sort(key=lambda p: -p[1]["max_value"])
    bins: dict[tuple[float, float | None], list[tuple[int, dict[str, Any]]]] = {}
    for i, a in indexed:
        if a["bin_min"] is not None and a["bin_min"] >= 0:
            bins.setdefault((a["bin_min"], a["bin_max"]), []).append((i, a))
    quantiles = [{"name": f"q{k}", "lo": lo, "hi": hi, "fraction": items[0][1]["bin_contains"],
                  "examples": [_example(f, a, i) for i, a in sorted(items, key=lambda p: -p[1]["max_value"])]}
                 for k, ((lo, hi), items) in enumerate(sorted(bins.items(), key=lambda kv: kv[0][0]), 1)]
    hist = f.hists["activations"]
    best = f.explanations[0] if f.explanations else {}
    out: dict[str, Any] = {
        "feature_id": f.ref.id, "label": f.label, "label_source": "neuronpedia" if f.label else None,
        "top_examples": [_example(f, a, i) for i, a in top[:n_top]], "quantile_examples": quantiles,
        "histogram": {"edges": _edges(hist["centers"]), "counts": [round(h) for h in hist["heights"]]} if hist else None,
        "density": f.density,
        "logit_effects": {"method": "neuronpedia: decoder direction through the unembedding (pos_str/neg_str)",
                          "promoted": f.pos, "suppressed": f.neg} if f.pos or f.neg else None,
        "neuronpedia": {"url": f.ref.page_url, "explainer": best.get("model"), "explanation_type": best.get("type"),
                        "other_labels": [e["description"] for e in f.explanations[1:]]},
    }
    if f.notes:
        out["errors"] = {"neuronpedia": "; ".join(f.notes)}
    return out


def _norm_token(token: str) -> str:
    return token.strip().lower() or token


def fingerprint_from_neuronpedia(raw: Mapping[str, Any], *, where: str = "<json>", k: int = 10) -> dict[str, Any]:
    """A stable summary of a feature for matching it across models and sources.

    Logit tokens keep Neuronpedia's order (largest first). Top activating tokens are the tokens at
    each activation's maximum, stripped and lower-cased, weighted by ``maxValue`` and normalised to
    sum 1; ties sort by token. Floats are rounded to 6 decimals so equal inputs give equal JSON.

    Raises:
        RecordError: a field is missing or has the wrong type (message names it and ``where``).
    """
    f = _parse(raw, where)
    weights: dict[str, float] = {}
    for a in f.activations:
        if a["max_index"] is not None and a["max_value"] > 0:
            tok = _norm_token(a["tokens"][a["max_index"]])
            weights[tok] = weights.get(tok, 0.0) + a["max_value"]
    total = sum(weights.values()) or 1.0
    top = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 6)

    return {
        "kind": "neuronpedia_fingerprint", "feature_id": f.ref.id, "model": f.ref.model_id, "source": f.ref.source,
        "index": f.ref.index, "label": f.label, "density": r(f.density), "max_activation": r(f.max_act),
        "top_logit_tokens": [{"token": p["token"], "value": r(p["value"])} for p in f.pos[:k]],
        "bottom_logit_tokens": [{"token": p["token"], "value": r(p["value"])} for p in f.neg[:k]],
        "top_activating_tokens": [{"token": t, "weight": r(w / total)} for t, w in top],
    }


# ---------------------------------------------------------------- exported files


def _json_rows(path: str) -> list[tuple[Any, int]]:
    """Every JSON value of a feature file (one object, a list, or JSONL) with its 1-based line."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError("a readable UTF-8 JSON or JSONL file", rendered=str(exc), path=path) from None
    if not text.strip():
        raise RecordError("a Neuronpedia feature object, a list of them, or JSONL", rendered="an empty file", path=path)
    try:
        whole = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines()
        first = next((n for n, line in enumerate(lines) if line.strip()), 0)
        try:
            json.loads(lines[first])
        except json.JSONDecodeError:
            raise RecordError("valid JSON", rendered=f"a parse error ({exc.msg})", path=path, line=exc.lineno) from None
        rows = []
        for n, line in enumerate(lines, 1):
            if line.strip():
                try:
                    rows.append((json.loads(line), n))
                except json.JSONDecodeError as e:
                    raise RecordError("one JSON object per line", rendered=f"invalid JSON ({e.msg})",
                                      path=path, line=n) from None
        return rows
    start = len(text) - len(text.lstrip())
    if not isinstance(whole, list):
        return [(whole, text.count("\n", 0, start) + 1)]
    out, dec = [], json.JSONDecoder()
    i, pos, line = _skip(text, start + 1), 0, 1
    for value in whole:  # find each element's line: the whole text already parsed, so this cannot fail
        line += text.count("\n", pos, i)
        pos = i
        out.append((value, line))
        i = _skip(text, dec.raw_decode(text, i)[1])
    return out


def _skip(text: str, i: int) -> int:
    while i < len(text) and (text[i].isspace() or text[i] == ","):
        i += 1
    return i


def _kind(row: Mapping[str, Any]) -> str:
    if "activations" in row or "explanations" in row:
        return "feature"
    if "tokens" in row and "values" in row:
        return "activation"
    if "description" in row:
        return "explanation"
    return "neuron"


def _score(row: Mapping[str, Any]) -> tuple[float, ...]:
    """Sort key putting the best explanation first, as the API does (scoreV2, then scoreV1)."""
    return tuple(-float(row[k]) if _is_num(row.get(k)) else math.inf for k in ("scoreV2", "scoreV1"))


def read_exports(files: Iterable[str | os.PathLike[str]]) -> dict[tuple[str, str, int], tuple[dict[str, Any], str]]:
    """Features in exported files, merged per ``(model, source, index)``, each with where it was read.

    A row is a whole feature (with ``activations`` or ``explanations``), an activation row
    (``tokens`` + ``values``), an explanation row (``description``) or a bare Neuron row; rows of
    one feature spread over several files are joined (explanations best first, activations largest
    first). A later whole feature replaces an earlier one.

    Raises:
        RecordError: a file or row is unreadable; the message names ``file:line`` and the field.
    """
    found: dict[tuple[str, str, int], dict[str, Any]] = {}
    for file in files:
        path = os.fspath(file)
        for row, line in _json_rows(path):
            where = f"{path}:{line}"
            if not isinstance(row, Mapping):
                raise RecordError("a JSON object (a Neuronpedia feature or export row)", row, path=path, line=line)
            key = (_str_of(row, "modelId", where), _str_of(row, "layer", where), _index_of(row, where))
            slot = found.setdefault(key, {"where": where, "feature": None, "neuron": None, "acts": [], "exps": []})
            kind = _kind(row)
            if kind in ("feature", "neuron"):
                slot[kind], slot["where"] = dict(row), where
            else:
                slot["acts" if kind == "activation" else "exps"].append(dict(row))
    out: dict[tuple[str, str, int], tuple[dict[str, Any], str]] = {}
    for key, slot in found.items():
        raw = slot["feature"] or slot["neuron"] or {"modelId": key[0], "layer": key[1], "index": str(key[2])}
        raw = dict(raw)
        if slot["exps"] and "explanations" not in raw:
            raw["explanations"] = sorted(slot["exps"], key=_score)
        if slot["acts"] and "activations" not in raw:
            raw["activations"] = sorted(slot["acts"], key=lambda a: -a["maxValue"] if _is_num(a.get("maxValue")) else 0)
        _parse(raw, slot["where"])
        out[key] = (raw, slot["where"])
    return out
