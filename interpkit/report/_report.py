"""The report: the ``report.json`` record with its ranking decoded, and the atomic writer of both files.

The file format itself (fields, schema version, strict reader) is `interpkit.records.ReportRecord`
and `interpkit.records.FeatureEntryRecord`; `Report` and `FeatureEntry` here add what needs the layers
above the records: the ranking as a :class:`~interpkit.rank.RankingResult`, the renderers
(``report.md``, the HTML feature cards) and `FeatureEntry.from_table`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from interpkit._constants import REPORT_JSON_NAME, REPORT_MD_NAME
from interpkit._io import atomic_write_text
from interpkit.records._report import (
    REPORT_KIND,
    SCHEMA_VERSION,
    FeatureEntryRecord,
    InputFile,
    ReportRecord,
    ReportSchemaError,
)

__all__ = ["REPORT_KIND", "SCHEMA_VERSION", "FeatureEntry", "InputFile", "Report", "ReportSchemaError", "load_report"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureEntry(FeatureEntryRecord):
    """A top feature as the report shows it (the fields are `~interpkit.records.FeatureEntryRecord`'s).

    Adds `from_table`, which reads a table and a ranking: the layers above the records.
    """

    @classmethod
    def from_table(
        cls,
        table: Any,
        feature_id: str,
        *,
        ranking: Any = None,
        interventions: Sequence[Any] = (),
        imported_causal_effects: Mapping[str, float] | None = None,
        explanation: Any = None,
        n_top_examples: int = 5,
    ) -> FeatureEntry:
        """The entry of one feature of a :class:`~interpkit.table.FeatureTable`.

        Args:
            table: the table; the feature's label, model, site, layer and source come from its
                feature metadata, the top examples from its column.
            feature_id: the feature.
            ranking: a :class:`~interpkit.rank.RankingResult` holding the feature (rank and
                components); None gives rank 0 and no components.
            interventions: intervention records; those of this feature are summed up per
                intervention kind (filter them by criterion first: this does not).
            imported_causal_effects: effects copied from a feature dump (reported, never ranked).
            explanation: a `~interpkit.explain.FeatureExplanation` or its dict; its label serves
                when the table has none.
            n_top_examples: highest-activating examples kept.

        Raises:
            KeyError: the feature is not in the table (or not in ``ranking``).
        """
        from interpkit.report._evidence import causal_summary, meta_value, top_examples

        fid = str(feature_id)
        j = table.feature_index(fid)
        meta = table.features.iloc[j]
        expl = None
        if explanation is not None:
            expl = explanation.to_dict() if hasattr(explanation, "to_dict") else dict(explanation)
        label = meta_value(meta, "label")
        if expl is not None and not label:
            label = expl.get("label")
        row = ranking.row(fid) if ranking is not None else None
        mine = [r for r in interventions if str(r.feature_id) == fid]
        return cls(
            rank=row.rank if row is not None else 0,
            feature_id=fid,
            label=label,
            model=meta_value(meta, "model"),
            site=meta_value(meta, "site"),
            layer=meta_value(meta, "layer"),
            source=meta_value(meta, "source"),
            components=row.to_dict() if row is not None else {},
            top_examples=top_examples(table, j, n_top_examples),
            causal_records=tuple(causal_summary(mine).get(fid, ())),
            imported_causal_effects={} if imported_causal_effects is None else imported_causal_effects,
            explanation=expl,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Report(ReportRecord):
    """What one inspection found. See the module docstring for the files it writes.

    The fields are `~interpkit.records.ReportRecord`'s; ``ranking`` is the full
    :class:`~interpkit.rank.RankingResult`.
    """

    @classmethod
    def _decode_ranking(cls, data: Any) -> Any:
        from interpkit.rank import RankingResult

        return RankingResult.from_dict(data)

    @classmethod
    def _decode_feature(cls, data: Any, where: str) -> FeatureEntry:
        return FeatureEntry.from_dict(data, where)

    def _encode_ranking(self) -> Any:
        return self.ranking.to_dict()

    def to_markdown(self) -> str:
        from interpkit.report._markdown import render_markdown

        return render_markdown(self)

    def to_html(self) -> str:
        """One self-contained HTML page (inline CSS and SVG, no network) with a card per feature."""
        from interpkit.report._html import render_html

        return render_html(self)

    def save_html(self, path: str | Path) -> Path:
        """Write `to_html` to ``path`` atomically (rendered first, so a failure writes nothing)."""
        return atomic_write_text(path, self.to_html())

    def save(self, out_dir: str | Path) -> Report:
        """Write ``report.json`` and ``report.md`` into ``out_dir`` atomically; return the saved report.

        The JSON is rendered and the markdown built before either file is touched, so an error
        while rendering leaves an earlier report in ``out_dir`` intact.
        """
        out = Path(out_dir)
        text_json, text_md = self.to_json(), self.to_markdown()
        json_path = out / REPORT_JSON_NAME
        atomic_write_text(out / REPORT_MD_NAME, text_md)
        atomic_write_text(json_path, text_json)
        return replace(self, path=json_path)


def load_report(path: str | Path) -> Report:
    """Load ``report.json`` (or the folder holding it) written by any interpkit command.

    Raises:
        FileNotFoundError: no report at ``path``.
        ReportSchemaError: the file is not valid JSON or not a report of a readable version.
    """
    return Report.load(path)
