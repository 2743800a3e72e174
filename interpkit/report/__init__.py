"""Reports: the versioned ``report.json`` and the readable ``report.md`` that ``inspect`` writes.

A :class:`Report` is what one inspection found: the model, the criterion, the inputs with their
sha256, the full :class:`~interpkit.rank.RankingResult` and, for the top features, labels, top
examples and causal evidence. ``Report.save(dir)`` writes both files atomically (a crash leaves the
previous report or the new one, never half of one) and :func:`load_report` reads any report that
interpkit wrote, with a strict schema check. ``FeatureEntry.from_table`` builds one feature's entry
from a table and a ranking; :func:`feature_card_html` and :func:`card_css` give its HTML card (as
``report.html`` shows it) for use elsewhere, e.g. a notebook widget.

Example:
    >>> import tempfile, interpkit
    >>> from interpkit.report import load_report
    >>> report = interpkit.inspect("toy", "the text is about cats", backend="toy",
    ...                            out=tempfile.mkdtemp(), top_k=3)
    >>> load_report(report.path).criterion
    'the text is about cats'
"""

from interpkit.report._compare import RunComparison, compare_runs
from interpkit.report._html import card_css, feature_card_html
from interpkit.report._report import (
    REPORT_KIND,
    FeatureEntry,
    InputFile,
    Report,
    ReportSchemaError,
    load_report,
)
from interpkit.report._search import SearchHit, search_features

__all__ = [
    "REPORT_KIND",
    "FeatureEntry",
    "InputFile",
    "Report",
    "ReportSchemaError",
    "RunComparison",
    "SearchHit",
    "card_css",
    "compare_runs",
    "feature_card_html",
    "load_report",
    "search_features",
]
