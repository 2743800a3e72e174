"""Search features across saved runs by text: labels, explanations, top examples, then embeddings.

`search_features` reads report folders (``report.json``) and saved FeatureTable folders (their
feature labels), or folders holding either, and returns `SearchHit` rows, best first:

1. **exact** hits: a feature whose label (or explanation label, or a top example's text) equals the
   query, case and surrounding space ignored;
2. **substring** hits: the query occurs in one of those texts (or every query word does);
3. **embedding** hits (``embed=True``): the remaining features by the largest cosine similarity
   between the query and any of their texts under a sentence encoder (the packaged MiniLM,
   ``interpkit.models.sentence_encoder``, unless ``encoder`` is given).

Within the exact and substring groups, a match in the label beats one in the explanation, which
beats one in an example; then report rank. Each feature appears once, with its best match. A
report's own ``table/`` folder is not searched again when the report is (its labels are the
report's); pass the table folder itself to search every feature of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interpkit._constants import CFG_NAME, REPORT_JSON_NAME

__all__ = ["SEARCH_KIND", "SEARCH_SCHEMA_VERSION", "SearchHit", "search_features", "search_hits_json"]

SEARCH_KIND = "interpkit_feature_search"
SEARCH_SCHEMA_VERSION = 1
_WHERE = ("label", "explanation", "example")


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchHit:
    """One feature found by `search_features`."""

    source: str
    """The ``report.json`` or FeatureTable folder it was found in."""
    source_kind: str
    """``"report"`` or ``"table"``."""
    feature_id: str
    rank: int | None
    """Its rank in the report (None for a table)."""
    label: str | None
    tier: str | None
    """Its evidence tier in the report's ranking (None for a table)."""
    label_score: float | None
    """The explanation's label score (how well the label predicts the activations), when scored."""
    where: str
    """What matched: ``"label"``, ``"explanation"`` or ``"example"``."""
    match: str
    """``"exact"``, ``"substring"`` or ``"embedding"``."""
    score: float
    """1.0 for exact, 0.5 + 0.5 * (query length / text length) for substring, the cosine for embedding."""
    text: str
    """The matched text."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Doc:
    """A feature to search: the identity fields of its hits, and its texts as ``(where, text)``."""

    who: dict[str, Any]
    texts: tuple[tuple[str, str], ...]


def _is_table(folder: Path) -> bool:
    from interpkit.table._io import _is_table_dir

    return _is_table_dir(folder)


def _sources(paths: Iterable[str | Path]) -> list[tuple[str, Path]]:
    """``(kind, path)`` per report.json and table folder under ``paths``, each once, in order."""
    out: dict[Path, str] = {}
    for given in paths:
        p = Path(given)
        if p.is_file():
            if p.name != REPORT_JSON_NAME and p.suffix != ".json":
                raise ValueError(f"{p}: not a report.json, a report folder or a saved FeatureTable folder")
            out.setdefault(p, "report")
        elif not p.is_dir():
            raise FileNotFoundError(f"--reports: {p} does not exist")
        elif (p / REPORT_JSON_NAME).is_file():
            out.setdefault(p / REPORT_JSON_NAME, "report")
        elif _is_table(p):
            out.setdefault(p, "table")
        else:
            found = sorted(p.rglob(REPORT_JSON_NAME))
            report_dirs = {r.parent for r in found}
            for r in found:
                out.setdefault(r, "report")
            for cfg in sorted(p.rglob(CFG_NAME)):
                t = cfg.parent
                if t.parent not in report_dirs and _is_table(t):  # a report's own table: searched as the report
                    out.setdefault(t, "table")
            if not found and not any(k == "table" for k in out.values()):
                raise FileNotFoundError(f"--reports: no report.json or saved FeatureTable under {p}")
    return [(kind, path) for path, kind in out.items()]


def _report_docs(path: Path) -> list[_Doc]:
    from interpkit.records import read_report

    report = read_report(path)
    tiers = {}
    for row in report.ranking.get("rows", []):
        if isinstance(row, dict):
            tiers[str(row.get("feature_id"))] = row.get("tier")
    docs = []
    for f in report.features:
        expl = dict(f.explanation or {})
        texts: list[tuple[str, str]] = []
        if f.label:
            texts.append(("label", str(f.label)))
        for key in ("label", "self_explanation"):
            value = expl.get(key)
            if isinstance(value, dict):  # a self-explanation holds its text under "text"
                value = value.get("text") or value.get("label")
            if isinstance(value, str) and value.strip() and value != f.label:
                texts.append(("explanation", value))
        examples = list(f.top_examples) or list(expl.get("top_examples") or [])
        texts += [("example", str(e["text"])) for e in examples if e.get("text")]
        score = expl.get("label_score")
        who = {"source": str(path), "source_kind": "report", "feature_id": f.feature_id, "rank": f.rank,
               "label": f.label or expl.get("label"),
               "tier": (f.components or {}).get("tier") or tiers.get(f.feature_id),
               "label_score": None if score is None else float(score)}
        docs.append(_Doc(who, tuple(texts)))
    return docs


def _table_docs(path: Path) -> list[_Doc]:
    from interpkit.report._evidence import meta_value
    from interpkit.table import FeatureTable

    table = FeatureTable.load(path, verify=False)
    docs = []
    for j, fid in enumerate(table.feature_ids):
        meta = table.features.iloc[j]
        label = meta_value(meta, "label")
        texts = [("label", str(label))] if label else []
        desc = meta_value(meta, "description")
        if isinstance(desc, str) and desc.strip() and desc != label:
            texts.append(("explanation", desc))
        if texts:
            who = {"source": str(path), "source_kind": "table", "feature_id": str(fid), "rank": None,
                   "label": None if label is None else str(label), "tier": None, "label_score": None}
            docs.append(_Doc(who, tuple(texts)))
    return docs


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def _text_match(query: str, doc: _Doc) -> tuple[int, int, float, str, str] | None:
    """(group, where index, -score, where, text) of the doc's best exact or substring match."""
    q = _norm(query)
    words = q.split()
    best = None
    for where, text in doc.texts:
        t = _norm(text)
        if t == q:
            key = (0, _WHERE.index(where), -1.0, where, text)
        elif q in t or (len(words) > 1 and all(w in t for w in words)):
            key = (1, _WHERE.index(where), -(0.5 + 0.5 * len(q) / max(len(t), 1)), where, text)
        else:
            continue
        best = key if best is None or key < best else best
    return best


def _hit(doc: _Doc, where: str, match: str, score: float, text: str) -> SearchHit:
    return SearchHit(**doc.who, where=where, match=match, score=float(score), text=text)


def search_features(
    query: str,
    reports: str | Path | Sequence[str | Path],
    *,
    top_k: int = 20,
    embed: bool = True,
    encoder: Any = None,
) -> list[SearchHit]:
    """Features of saved reports and FeatureTables whose texts match ``query``, best first.

    Args:
        query: the text searched for (a concept, a label, words from an example).
        reports: report.json files, report folders, saved FeatureTable folders, or folders
            holding any of them (searched recursively).
        top_k: hits returned (text hits first, then embedding hits).
        embed: rank the features without a text hit by embedding similarity.
        encoder: an object with ``encode(texts) -> [n, d]`` unit vectors; default the packaged
            MiniLM (``interpkit.models.sentence_encoder()``), loaded only when ``embed``.

    Raises:
        ValueError: an empty query or ``top_k < 1``.
        FileNotFoundError: a path that does not exist or holds no report or table.
        interpkit.records.ReportSchemaError: a file that is not a readable report.

    Example:
        >>> import tempfile, interpkit
        >>> from interpkit.report import search_features
        >>> out = tempfile.mkdtemp()
        >>> _ = interpkit.inspect("toy", "cats", backend="toy", out=out, top_k=3)
        >>> [h.feature_id for h in search_features("planted carrier", [out], embed=False)]
        ['f001']
    """
    if not isinstance(query, str) or not query.strip():
        raise ValueError("search_features needs a non-empty query")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    paths = [reports] if isinstance(reports, str | Path) else list(reports)
    docs: list[_Doc] = []
    for kind, path in _sources(paths):
        docs += _report_docs(path) if kind == "report" else _table_docs(path)

    ranked = []
    rest = []
    for i, doc in enumerate(docs):
        m = _text_match(query, doc)
        if m is None:
            rest.append(doc)
        else:
            ranked.append(((m[0], m[1], m[2], doc.who["rank"] if doc.who["rank"] is not None else 1 << 30, i), doc, m))
    ranked.sort(key=lambda x: x[0])
    hits = [_hit(doc, m[3], ("exact", "substring")[m[0]], -m[2], m[4]) for _, doc, m in ranked]
    if embed and len(hits) < top_k and rest:
        hits += _embedding_hits(query, rest, encoder)
    return hits[:top_k]


def _embedding_hits(query: str, docs: list[_Doc], encoder: Any) -> list[SearchHit]:
    import numpy as np

    if encoder is None:
        from interpkit.models import sentence_encoder

        encoder = sentence_encoder()
    flat = [(i, where, text) for i, d in enumerate(docs) for where, text in d.texts]
    if not flat:
        return []
    vecs = np.asarray(encoder.encode([t for _, _, t in flat]), dtype=np.float32)
    q = np.asarray(encoder.encode([query]), dtype=np.float32)[0]
    sims = vecs @ q
    best: dict[int, tuple[float, int]] = {}
    for k, (i, _, _) in enumerate(flat):
        if i not in best or sims[k] > best[i][0]:
            best[i] = (float(sims[k]), k)
    order = sorted(best, key=lambda i: (-best[i][0], i))
    return [_hit(docs[i], flat[best[i][1]][1], "embedding", best[i][0], flat[best[i][1]][2]) for i in order]


def search_hits_json(query: str, hits: Sequence[SearchHit], *, embed: bool) -> str:
    """The hits as one JSON document (``kind`` `SEARCH_KIND`; see docs/formats.md)."""
    return json.dumps({"kind": SEARCH_KIND, "schema_version": SEARCH_SCHEMA_VERSION, "query": query,
                       "embed": embed, "hits": [h.to_dict() for h in hits]}, indent=2, allow_nan=False) + "\n"
