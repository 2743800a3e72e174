"""`FeatureFingerprint`: what one feature looks like from the outside, comparable across models.

Each component is optional and compared on its own (see ``interpkit.match._similarity``):

- ``activation_signature``: the feature's activations over a shared probe set of texts, aligned
  across models by ``probe_ids`` (so features of models of any width compare);
- ``explanation_embedding``: a sentence-encoder (MiniLM) embedding of its label and top examples;
- ``decoder_signature``: token -> logit effect, meaningful when both models share a tokenizer;
- ``causal_effects``: effect name (intervention or criterion) -> signed effect;
- ``examples``: texts of its top examples.

Fingerprints come from a `FeatureTable` (full activation signatures over the table's examples)
or from a `Report` (which holds only the top features; their activation signatures then come from
the explanation's example activations unless a table is given).

Example:
    >>> import numpy as np
    >>> fp = FeatureFingerprint(feature_id="f1", activation_signature=np.array([0.0, 1.0, 2.0]),
    ...                         probe_ids=("a", "b", "c"), causal_effects={"steer": 0.4})
    >>> FeatureFingerprint.from_dict(fp.to_dict()).causal_effects
    {'steer': 0.4}
    >>> fp.components()
    ('activation', 'causal')
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

FINGERPRINT_KIND = "interpkit_feature_fingerprint"
SCHEMA_VERSION = 1

COMPONENTS = ("activation", "explanation", "decoder", "causal", "examples")
"""Fingerprint components, in the order they are reported."""


class FingerprintError(ValueError):
    """A fingerprint (or its dict form) that cannot be built or read; the message names the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureFingerprint:
    """The comparable description of one feature (every component optional)."""

    feature_id: str
    model: str | None = None
    label: str | None = None
    activation_signature: np.ndarray | None = None
    """Activations ``[n_probes]`` over a shared probe set (float32)."""
    probe_ids: tuple[str, ...] | None = None
    """Ids (or text hashes) of the probes, aligned with ``activation_signature``; None = by position."""
    explanation_embedding: np.ndarray | None = None
    """Sentence embedding of the label (+ top example texts)."""
    decoder_signature: Mapping[str, float] | None = None
    """Token -> logit effect (promoted positive, suppressed negative)."""
    causal_effects: Mapping[str, float] = field(default_factory=dict)
    """Effect name -> signed effect; the first entry is the feature's primary effect."""
    examples: tuple[str, ...] = ()
    """Texts of the top examples."""

    def __post_init__(self) -> None:
        where = f"fingerprint {self.feature_id!r}"
        sig = self.activation_signature
        if sig is not None:
            sig = np.asarray(sig, dtype=np.float32).reshape(-1)
            object.__setattr__(self, "activation_signature", sig)
            if self.probe_ids is not None:
                object.__setattr__(self, "probe_ids", tuple(str(p) for p in self.probe_ids))
                if len(self.probe_ids) != sig.shape[0]:
                    raise FingerprintError(
                        f"{where}: probe_ids has {len(self.probe_ids)} entries but activation_signature "
                        f"has {sig.shape[0]}"
                    )
        if self.explanation_embedding is not None:
            emb = np.asarray(self.explanation_embedding, dtype=np.float32).reshape(-1)
            object.__setattr__(self, "explanation_embedding", emb)
        if self.decoder_signature is not None:
            object.__setattr__(self, "decoder_signature", {str(k): float(v) for k, v in self.decoder_signature.items()})
        object.__setattr__(self, "causal_effects", {str(k): float(v) for k, v in self.causal_effects.items()})
        object.__setattr__(self, "examples", tuple(str(t) for t in self.examples))

    def components(self) -> tuple[str, ...]:
        """The components this fingerprint has, in `COMPONENTS` order."""
        have = {
            "activation": self.activation_signature is not None and self.activation_signature.size > 0,
            "explanation": self.explanation_embedding is not None and self.explanation_embedding.size > 0,
            "decoder": bool(self.decoder_signature),
            "causal": bool(self.causal_effects),
            "examples": bool(self.examples),
        }
        return tuple(c for c in COMPONENTS if have[c])

    @property
    def primary_effect(self) -> float | None:
        """The first causal effect (the one reports show), or None."""
        return next(iter(self.causal_effects.values()), None)

    def to_dict(self) -> dict[str, Any]:
        def arr(a: np.ndarray | None) -> list[float] | None:
            return None if a is None else [float(x) for x in a]

        return {
            "kind": FINGERPRINT_KIND,
            "schema_version": SCHEMA_VERSION,
            "feature_id": self.feature_id,
            "model": self.model,
            "label": self.label,
            "activation_signature": arr(self.activation_signature),
            "probe_ids": None if self.probe_ids is None else list(self.probe_ids),
            "explanation_embedding": arr(self.explanation_embedding),
            "decoder_signature": None if self.decoder_signature is None else dict(self.decoder_signature),
            "causal_effects": dict(self.causal_effects),
            "examples": list(self.examples),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, lenient: bool = False) -> FeatureFingerprint:
        """Rebuild from `to_dict`; unknown keys raise unless ``lenient``."""
        if not isinstance(data, Mapping):
            raise FingerprintError(f"fingerprint: expected a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"kind", "schema_version"})
        if unknown and not lenient:
            raise FingerprintError(f"fingerprint: unknown field(s) {unknown}; expected some of {sorted(known)}")
        if "feature_id" not in data:
            raise FingerprintError("fingerprint: missing field 'feature_id'")
        d = {k: v for k, v in data.items() if k in known}
        if d.get("probe_ids") is not None:
            d["probe_ids"] = tuple(d["probe_ids"])
        d["examples"] = tuple(d.get("examples") or ())
        d["causal_effects"] = dict(d.get("causal_effects") or {})
        return cls(**d)


def text_probe_id(text: str) -> str:
    """A stable probe id from a text (so two tables with different example ids but the same texts align)."""
    return "t:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def _probe_ids(table: Any, probe_key: str) -> tuple[str, ...]:
    ex = table.examples
    ids = [str(i) for i in ex["example_id"]]
    if probe_key == "id":
        return tuple(ids)
    texts = [t if isinstance(t, str) else "" for t in ex["text"]] if "text" in ex else [""] * len(ids)
    usable = all(texts) and len(set(texts)) == len(texts)
    if probe_key == "text" and not usable:
        raise FingerprintError("fingerprints_from_table: probe_key='text' needs a unique non-empty text per example")
    return tuple(text_probe_id(t) for t in texts) if usable else tuple(ids)


def _embed(encoder: Any, texts: Sequence[str]) -> np.ndarray:
    vecs = np.asarray(encoder.encode(list(texts)), dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape[0] != len(texts):
        raise FingerprintError(f"encoder.encode returned shape {vecs.shape} for {len(texts)} texts")
    return vecs


def _explanation_text(label: str | None, examples: Sequence[str], n: int = 3) -> str:
    parts = ([label] if label else []) + [t for t in examples[:n] if t]
    return " | ".join(parts)


def _logit_signature(expl: Mapping[str, Any] | None) -> dict[str, float] | None:
    effects = (expl or {}).get("logit_effects") or {}
    out: dict[str, float] = {}
    for side in ("promoted", "suppressed"):
        for item in effects.get(side) or ():
            tok = item.get("token") if item.get("token") is not None else item.get("token_id")
            if tok is not None and item.get("value") is not None:
                out[str(tok)] = float(item["value"])
    return out or None


def fingerprints_from_table(
    table: Any,
    feature_ids: Sequence[str] | None = None,
    *,
    encoder: Any = None,
    explanations: Mapping[str, Any] | None = None,
    n_examples: int = 5,
    probe_key: str = "auto",
) -> list[FeatureFingerprint]:
    """Fingerprints of a table's features: activation signatures over the table's examples.

    Args:
        table: a `FeatureTable`, or a folder saved by `FeatureTable.save`.
        feature_ids: the features to take (default: all).
        encoder: anything with ``encode(texts) -> [n, d]`` (`interpkit.models.sentence_encoder()`);
            when given, each feature's label and top example texts are embedded.
        explanations: feature id -> explanation dict (``label``, ``logit_effects``) or a label string.
        n_examples: top example texts kept per feature.
        probe_key: how probes are identified across models: ``"text"`` (hash of the example text),
            ``"id"`` (example id) or ``"auto"`` (text when every example has a unique text, else id).

    Returns:
        One fingerprint per feature, in table order (or the order of ``feature_ids``).
    """
    from interpkit.table import FeatureTable

    if isinstance(table, str | Path):
        table = FeatureTable.load(table)
    if probe_key not in ("auto", "text", "id"):
        raise FingerprintError(f"probe_key must be 'auto', 'text' or 'id', got {probe_key!r}")
    probes = _probe_ids(table, probe_key)
    ids = table.feature_ids if feature_ids is None else [str(f) for f in feature_ids]
    cols = [table.feature_index(f) for f in ids]
    feats = table.features
    texts = [t if isinstance(t, str) else "" for t in table.examples["text"]]
    explanations = explanations or {}
    out: list[FeatureFingerprint] = []
    for fid, j in zip(ids, cols, strict=True):
        col = np.asarray(table.column(j), dtype=np.float32)
        top = np.argsort(-col, kind="stable")[:n_examples]
        expl = explanations.get(fid)
        expl = {"label": expl} if isinstance(expl, str) else (expl or {})
        label = expl.get("label") or _nonempty(feats["label"].iloc[j])
        out.append(FeatureFingerprint(
            feature_id=fid,
            model=_nonempty(feats["model"].iloc[j]) or table.meta.get("model"),
            label=label,
            activation_signature=col,
            probe_ids=probes,
            decoder_signature=_logit_signature(expl),
            examples=tuple(texts[i] for i in top if texts[i]),
        ))
    return _with_embeddings(out, encoder)


def _nonempty(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _with_embeddings(fps: list[FeatureFingerprint], encoder: Any) -> list[FeatureFingerprint]:
    if encoder is None or not fps:
        return fps
    from dataclasses import replace

    texts = [_explanation_text(fp.label, fp.examples) for fp in fps]
    idx = [i for i, t in enumerate(texts) if t]
    if not idx:
        return fps
    vecs = _embed(encoder, [texts[i] for i in idx])
    out = list(fps)
    for row, i in enumerate(idx):
        out[i] = replace(fps[i], explanation_embedding=vecs[row])
    return out


def _report_causal(entry: Any) -> dict[str, float]:
    effects: dict[str, float] = {}
    causal = (entry.components or {}).get("causal")
    if isinstance(causal, Mapping) and causal.get("effect") is not None:
        effects["criterion"] = float(causal["effect"])
    for rec in entry.causal_records:
        if rec.get("mean_signed_effect") is not None:
            effects[str(rec.get("intervention", "effect"))] = float(rec["mean_signed_effect"])
    for name, value in (entry.imported_causal_effects or {}).items():
        if value is not None:
            effects.setdefault(str(name), float(value))
    return effects


def _report_examples(entry: Any) -> list[Mapping[str, Any]]:
    expl = entry.explanation or {}
    items = list(expl.get("top_examples") or entry.top_examples or ())
    for q in expl.get("quantile_examples") or ():
        items.extend(q.get("examples") or ())
    return items


def fingerprints_from_report(report: Any, *, table: Any = None, encoder: Any = None) -> list[FeatureFingerprint]:
    """Fingerprints of a report's top features.

    Activation signatures come from ``table`` when given (a `FeatureTable` or its saved folder);
    else from a table saved beside the report (``<report folder>/table``, written with
    ``FeatureTable.save(report_dir / "table")``); else from the explanation's example activations
    (top and quantile examples: a sparse signature whose probes are the example texts, so two
    reports over the same texts align; probes a feature did not show count as 0).

    Args:
        report: a `Report`, or the path of a ``report.json`` (or its folder).
        table: the table the report was ranked from (optional).
        encoder: a sentence encoder (``encode(texts)``) for explanation embeddings (optional).
    """
    from interpkit.records import read_report
    from interpkit.table import FeatureTable

    if isinstance(report, str | Path):
        report = read_report(report)  # the features are all it needs: no RankingResult, no report layer
    if table is None and report.path is not None and (Path(report.path).parent / "table").is_dir():
        table = Path(report.path).parent / "table"
    if isinstance(table, str | Path):
        table = FeatureTable.load(table)
    sigs: dict[str, FeatureFingerprint] = {}
    if table is not None:
        ids = [e.feature_id for e in report.features]
        missing = [f for f in ids if f not in set(table.feature_ids)]
        if missing:
            raise FingerprintError(f"report {report.path or report.model}: features {missing[:5]} are not in the table")
        sigs = {fp.feature_id: fp for fp in fingerprints_from_table(table, ids)}
    out: list[FeatureFingerprint] = []
    for entry in report.features:
        expl = entry.explanation or {}
        items = _report_examples(entry)
        texts = tuple(dict.fromkeys(str(e["text"]) for e in items if e.get("text")))
        sig = probes = None
        if entry.feature_id in sigs:
            sig, probes = sigs[entry.feature_id].activation_signature, sigs[entry.feature_id].probe_ids
        else:
            acts: dict[str, float] = {}
            for e in items:
                if e.get("activation") is None:
                    continue
                key = text_probe_id(str(e["text"])) if e.get("text") else f"id:{e.get('example_id')}"
                acts[key] = float(e["activation"])
            if acts:
                probes, sig = tuple(acts), np.array(list(acts.values()), dtype=np.float32)
        out.append(FeatureFingerprint(
            feature_id=entry.feature_id,
            model=entry.model or report.model,
            label=expl.get("label") or entry.label,
            activation_signature=sig,
            probe_ids=probes,
            decoder_signature=_logit_signature(expl),
            causal_effects=_report_causal(entry),
            examples=texts[:10],
        ))
    return _with_embeddings(out, encoder)
