"""Evidence dossiers: everything known about one feature across runs, graded by stated rules.

A dossier (``<project>/dossiers/<slug>/dossier.json``) holds one entry per report that detailed the
feature (held-out association with its interval, causal interval and same-norm controls, stability,
tier, label and its detection score), its matches in other models and the artifacts exported from
it. `add_to_dossier` writes them (idempotent per report sha256), `grade` states the claim the
evidence supports by the rules of docs/dossiers.md, `next_experiments` says which run would raise
it and gives the command.

Example:
    >>> import interpkit, tempfile  # doctest: +SKIP
    >>> project = tempfile.mkdtemp()  # doctest: +SKIP
    >>> report = interpkit.inspect("toy", "x", backend="toy", out=f"{project}/run")  # doctest: +SKIP
    >>> [d] = add_to_dossier(project, f"{project}/run", report.features[0].feature_id)  # doctest: +SKIP
    >>> grade(d).name  # doctest: +SKIP
    'correlational'
"""

from __future__ import annotations

from interpkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "DOSSIER_KIND": "._format",
    "DOSSIER_SCHEMA_VERSION": "._format",
    "Dossier": "._format",
    "DossierError": "._format",
    "feature_key": "._format",
    "read_dossier": "._format",
    "write_dossier": "._format",
    "add_to_dossier": "._add",
    "auroc_interval": "._add",
    "list_dossiers": "._add",
    "load_dossier": "._add",
    "GRADES": "._grade",
    "Grade": "._grade",
    "Suggestion": "._grade",
    "grade": "._grade",
    "next_experiments": "._grade",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
