"""The report: the ``report.json`` record with its ranking decoded, and the atomic writer of both files.

The file format itself (fields, schema version, strict reader) is `interpkit.records.ReportRecord`;
`Report` adds what needs the layers above the records: the ranking as a
:class:`~interpkit.rank.RankingResult` and the renderers (``report.md``, the HTML feature cards).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from interpkit._constants import REPORT_JSON_NAME, REPORT_MD_NAME
from interpkit._io import atomic_write_text
from interpkit.records._report import (
    REPORT_KIND,
    SCHEMA_VERSION,
    FeatureEntry,
    InputFile,
    ReportRecord,
    ReportSchemaError,
)

__all__ = ["REPORT_KIND", "SCHEMA_VERSION", "FeatureEntry", "InputFile", "Report", "ReportSchemaError", "load_report"]


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
