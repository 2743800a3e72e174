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

# public name -> defining module, grouped by module
_BY_MODULE: dict[str, tuple[str, ...]] = {
    "._format": ("DOSSIER_KIND", "DOSSIER_SCHEMA_VERSION", "Dossier", "DossierError", "feature_key",
                 "read_dossier", "write_dossier"),
    "._add": ("add_to_dossier", "auroc_interval", "list_dossiers", "load_dossier"),
    "._grade": ("GRADES", "Grade", "Suggestion", "grade", "next_experiments"),
    "._show": ("dossier_summary", "dossier_text"),
}
_LAZY: dict[str, str] = {name: module for module, names in _BY_MODULE.items() for name in names}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
