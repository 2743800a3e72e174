"""Compare two saved runs: what changed between report A and report B.

`compare_runs` reads two ``report.json`` files (or their folders) and lists, feature by feature,
what a researcher asks after re-running an inspection with another seed, criterion, compiler,
site or model:

- **gained / lost**: feature ids in B's top features and not in A's, and the reverse;
- **rank shifts** and **tier changes**: for every feature in either top list, its rank and
  evidence tier in each run's *full* ranking (None where a ranking lacks the feature);
- **evidence**: the held-out association (AUROC with its Hanley-McNeil interval, q-value) and
  the causal effect (net value with its Student-t interval) in each run, and whether they differ;
- **settings**: every setting that differs (report fields, ``settings``, the ranking's settings,
  the inputs' content hashes), with the headline ones (model, site, criterion, compiler, seed)
  flagged ``key``.

What counts as a change: ids, ranks, tiers, labels and strings must be equal; numbers must agree
within ``rel_tol`` / ``abs_tol`` (default 1e-6 / 1e-9: two runs of one config on one machine are
bit-identical, the tolerance only absorbs summation-order noise across BLAS builds). Run-specific
fields are never compared: paths, timestamps and durations (`IGNORED_KEYS`). Every row of the two
full rankings is compared, not only the top features, so `RunComparison.no_change` is exact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interpkit.rank import auroc_interval
from interpkit.report._report import Report, load_report

__all__ = ["COMPARISON_KIND", "COMPARISON_SCHEMA_VERSION", "IGNORED_KEYS", "KEY_SETTINGS", "RunComparison",
           "auroc_interval", "compare_runs"]

COMPARISON_KIND = "interpkit_run_comparison"
COMPARISON_SCHEMA_VERSION = 1

IGNORED_KEYS = frozenset({
    "path", "paths", "out", "out_dir", "cache_dir", "spill_dir", "timestamp", "created", "created_at",
    "started_at", "finished_at", "time", "elapsed", "elapsed_s", "duration", "duration_s", "seconds",
    "wall_s", "hostname", "interpkit_version",
})
"""Setting names never compared (run-specific: where and when a run happened, not what it did).
``interpkit_version`` is here too: it is shown in the header of the comparison instead."""

KEY_SETTINGS = ("model", "criterion", "backend", "site", "compiler", "seed")
"""Settings flagged ``key`` in `RunComparison.settings_changed` (the last part of a dotted name)."""


def _same(x: Any, y: Any, rel: float, abs_: float) -> bool:
    """Equality with a float tolerance, recursively (bools and ints compare exactly)."""
    if isinstance(x, bool) or isinstance(y, bool):
        return x is y or x == y
    if isinstance(x, int | float) and isinstance(y, int | float):
        if isinstance(x, int) and isinstance(y, int):
            return x == y
        return math.isclose(float(x), float(y), rel_tol=rel, abs_tol=abs_)
    if isinstance(x, Mapping) and isinstance(y, Mapping):
        keys = (set(x) | set(y)) - IGNORED_KEYS
        return all(_same(x.get(k), y.get(k), rel, abs_) for k in keys)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(_same(a, b, rel, abs_) for a, b in zip(x, y, strict=True))
    return x == y


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if str(k) not in IGNORED_KEYS:
                _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value
    return out


def _settings(report: Report) -> dict[str, Any]:
    """Everything that configured a run, flattened to dotted names."""
    flat = {"model": report.model, "criterion": report.criterion, "backend": report.backend,
            "synthetic": report.synthetic}
    _flatten(dict(report.settings), "settings", flat)
    _flatten(report.ranking.settings.to_dict(), "ranking", flat)
    for f in report.inputs:  # by content: the same file at another path is the same input
        flat[f"inputs.{f.role}.sha256"] = f.sha256
        flat[f"inputs.{f.role}.rows"] = f.rows
    return flat


def _evidence(row: Any) -> dict[str, Any] | None:
    """One ranking row's association and causal effect with their intervals."""
    if row is None:
        return None
    a, c = row.association, row.causal
    lo, hi = auroc_interval(a.auroc_test, a.n_pos_test, a.n_neg_test, edge_width=False)
    return {
        "tier": row.tier, "rank": row.rank, "score": row.score,
        "association": {"auroc_test": a.auroc_test, "ci_low": lo, "ci_high": hi, "q_value": a.q_value,
                        "effect_size": a.effect_size, "significant": a.significant},
        "causal": {"status": c.status, "value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high,
                   "effect": c.effect, "n": c.n},
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class RunComparison:
    """What changed from run A to run B (see the module docstring); ``to_dict`` is comparison.json."""

    a: str
    """Report A's path."""
    b: str
    """Report B's path."""
    versions: tuple[str | None, str | None] = (None, None)
    """interpkit versions that wrote A and B (shown, not compared)."""
    gained: tuple[str, ...] = ()
    """Top features of B not among A's top features, in B's order."""
    lost: tuple[str, ...] = ()
    """Top features of A not among B's top features, in A's order."""
    features: tuple[dict[str, Any], ...] = ()
    """Per feature in either top list: ``feature_id``, ``label_a`` / ``label_b``, ``in_top_a`` /
    ``in_top_b``, ``rank_a`` / ``rank_b``, ``rank_shift`` (``rank_b - rank_a``), ``tier_a`` /
    ``tier_b``, ``tier_changed``, ``evidence_changed``, ``label_changed``, ``explanation_changed``
    (explanation, top examples or causal records of a feature in both top lists), ``a`` / ``b``
    (evidence)."""
    settings_changed: tuple[dict[str, Any], ...] = ()
    """``{name, a, b, key}`` per differing setting (dotted names; absent = None)."""
    n_ranking_rows_changed: int = 0
    """Features ranked in both runs whose full ranking row differs (any component)."""
    n_ranking_only_a: int = 0
    """Features in A's ranking but not in B's."""
    n_ranking_only_b: int = 0
    """Features in B's ranking but not in A's."""
    tolerance: dict[str, float] = field(default_factory=dict)
    """``rel_tol`` and ``abs_tol`` used for numbers."""

    @property
    def rank_shifts(self) -> list[dict[str, Any]]:
        """The `features` whose rank differs."""
        return [f for f in self.features if f["rank_shift"] not in (0, None) or
                (f["rank_a"] is None) != (f["rank_b"] is None)]

    @property
    def tier_changes(self) -> list[dict[str, Any]]:
        """The `features` whose evidence tier differs."""
        return [f for f in self.features if f["tier_changed"]]

    @property
    def no_change(self) -> bool:
        """True when nothing but run-specific fields differs (within the float tolerance)."""
        return not (self.gained or self.lost or self.settings_changed or self.n_ranking_rows_changed
                    or self.n_ranking_only_a or self.n_ranking_only_b
                    or any(f["tier_changed"] or f["evidence_changed"] or f["label_changed"] or f["explanation_changed"]
                               or f["rank_shift"]
                           for f in self.features))

    def to_dict(self) -> dict[str, Any]:
        from interpkit.records._report import _json_safe

        return _json_safe({
            "kind": COMPARISON_KIND, "schema_version": COMPARISON_SCHEMA_VERSION,
            "a": self.a, "b": self.b, "interpkit_versions": list(self.versions),
            "no_change": self.no_change, "gained": list(self.gained), "lost": list(self.lost),
            "settings_changed": [dict(s) for s in self.settings_changed],
            "n_ranking_rows_changed": self.n_ranking_rows_changed,
            "n_ranking_only_a": self.n_ranking_only_a, "n_ranking_only_b": self.n_ranking_only_b,
            "tolerance": dict(self.tolerance),
            "features": [dict(f) for f in self.features],
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def to_markdown(self) -> str:
        from interpkit.report._compare_md import render_comparison

        return render_comparison(self)


def _load(run: Any) -> Report:
    return run if isinstance(run, Report) else load_report(run)


def compare_runs(a: Any, b: Any, *, rel_tol: float = 1e-6, abs_tol: float = 1e-9) -> RunComparison:
    """Compare run A with run B (reports, or paths of ``report.json`` files or their folders).

    Args:
        a: the first run.
        b: the second run.
        rel_tol: relative tolerance for numbers.
        abs_tol: absolute tolerance for numbers.

    Raises:
        FileNotFoundError: no report at a path.
        ReportSchemaError: a file that is not a readable report.

    Example:
        >>> import tempfile, interpkit
        >>> from interpkit.report import compare_runs
        >>> a = interpkit.inspect("toy", "cats", backend="toy", out=tempfile.mkdtemp(), top_k=3)
        >>> b = interpkit.inspect("toy", "cats", backend="toy", out=tempfile.mkdtemp(), top_k=3)
        >>> compare_runs(a.path, b.path).no_change
        True
    """
    ra, rb = _load(a), _load(b)
    top_a = [f.feature_id for f in ra.features]
    top_b = [f.feature_id for f in rb.features]
    label_a = {f.feature_id: f.label for f in ra.features}
    label_b = {f.feature_id: f.label for f in rb.features}
    rows_a = {r.feature_id: r for r in ra.ranking.rows}
    rows_b = {r.feature_id: r for r in rb.ranking.rows}

    features = []
    for fid in dict.fromkeys(top_a + top_b):
        ea, eb = _evidence(rows_a.get(fid)), _evidence(rows_b.get(fid))
        rank_a = None if ea is None else ea["rank"]
        rank_b = None if eb is None else eb["rank"]
        tier_a = None if ea is None else ea["tier"]
        tier_b = None if eb is None else eb["tier"]
        both = ea is not None and eb is not None
        la = label_a.get(fid, rows_a[fid].label if fid in rows_a else None)
        lb = label_b.get(fid, rows_b[fid].label if fid in rows_b else None)
        features.append({
            "feature_id": fid, "label_a": la, "label_b": lb,
            "in_top_a": fid in label_a, "in_top_b": fid in label_b,
            "rank_a": rank_a, "rank_b": rank_b, "rank_shift": rank_b - rank_a if both else None,
            "tier_a": tier_a, "tier_b": tier_b, "tier_changed": tier_a != tier_b,
            "evidence_changed": not _same(ea, eb, rel_tol, abs_tol),
            "label_changed": la != lb,
            "explanation_changed": fid in label_a and fid in label_b
            and not _same(_entry(ra, fid), _entry(rb, fid), rel_tol, abs_tol),
            "a": ea, "b": eb,
        })

    sa, sb = _settings(ra), _settings(rb)
    changed = []
    for name in sorted(set(sa) | set(sb)):
        if not _same(sa.get(name), sb.get(name), rel_tol, abs_tol):
            changed.append({"name": name, "a": sa.get(name), "b": sb.get(name),
                            "key": name.rsplit(".", 1)[-1] in KEY_SETTINGS})
    shared = rows_a.keys() & rows_b.keys()
    n_rows = sum(not _same(rows_a[f].to_dict(), rows_b[f].to_dict(), rel_tol, abs_tol) for f in shared)
    return RunComparison(
        a=str(ra.path), b=str(rb.path), versions=(_version(ra), _version(rb)),
        gained=tuple(f for f in top_b if f not in label_a), lost=tuple(f for f in top_a if f not in label_b),
        features=tuple(features), settings_changed=tuple(changed), n_ranking_rows_changed=n_rows,
        n_ranking_only_a=len(rows_a.keys() - rows_b.keys()), n_ranking_only_b=len(rows_b.keys() - rows_a.keys()),
        tolerance={"rel_tol": rel_tol, "abs_tol": abs_tol},
    )


def _entry(report: Report, fid: str) -> Any:
    """A top feature's explanation and top examples (what its label and card rest on), or None."""
    for f in report.features:
        if f.feature_id == fid:
            return {"explanation": f.explanation, "top_examples": [dict(e) for e in f.top_examples],
                    "causal_records": [dict(c) for c in f.causal_records]}
    return None


def _version(report: Report) -> str | None:
    """The writing interpkit's version, read from the file (the record does not keep it)."""
    if report.path is None:
        return None
    try:
        return json.loads(Path(report.path).read_text(encoding="utf-8")).get("interpkit_version")
    except (OSError, ValueError):
        return None
