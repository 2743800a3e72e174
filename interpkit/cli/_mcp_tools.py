"""The tools of ``interpkit mcp``: one small function per public interpkit call, in the `TOOLS` registry.

Each tool takes typed arguments (the MCP SDK turns the signature into the tool's JSON schema and
validates calls against it), calls one public function, and returns a JSON-ready dict: the paths
of the files it wrote and a short structured summary (the files hold the full results). Errors in
the input are the same exceptions, with the same messages, as the command line's ``error:`` lines;
the server returns them as MCP tool errors.

Registered: ``capabilities`` (:func:`interpkit.cli._capabilities.capabilities`), ``inspect``
(:func:`interpkit.inspect`), ``rank`` (:func:`interpkit.inspect.rank_criterion` /
:func:`interpkit.rank` on a saved table), ``explain`` (a report entry's explanation, or
:func:`interpkit.explain_feature` on a saved table), ``match`` (:func:`interpkit.match.compare`),
``compare_runs`` (:func:`interpkit.report.compare_runs`), ``search_features``
(:func:`interpkit.report.search_features`) and ``dossier`` (:func:`interpkit.dossier.add_to_dossier`,
``grade``, ``next_experiments``).

``export_steering`` / ``apply_steering`` (:func:`interpkit.causal.export_steering` /
``apply_steering``) load the model (default: the one the report or artifact names) on each call.

This module imports nothing heavy at the top (no mcp, no torch): the functions import what they use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal


@dataclass(frozen=True)
class ToolSpec:
    """One MCP tool: its name, the function that implements it, and a one-line title."""

    name: str
    fn: Callable[..., dict[str, Any]]
    title: str
    read_only: bool = False
    """True when the tool writes no files (an MCP ``readOnlyHint``)."""


def _feature_summary(f: Any) -> dict[str, Any]:
    """A report entry in a few fields: rank, id, label, tier, combined score."""
    c = f.components
    return {"rank": f.rank, "feature_id": f.feature_id, "label": f.label, "tier": c.get("tier"),
            "score": c.get("score"), "site": f.site}


def _ranking_summary(result: Any, k: int) -> list[dict[str, Any]]:
    out = []
    for i, row in enumerate(result.top(k), start=1):
        c = result.component(row.feature_id)
        out.append({"rank": i, "feature_id": row.feature_id, "label": c.get("label"), "tier": c.get("tier"),
                    "score": c.get("score")})
    return out


def capabilities_tool() -> dict[str, Any]:
    """Every interpkit command with its arguments, outputs and file formats (kind interpkit_capabilities)."""
    from interpkit.cli._capabilities import capabilities

    return capabilities()


def inspect_tool(
    criterion: str,
    out: str,
    model: str | None = None,
    backend: Literal["model", "toy", "records", "features", "saelens", "neuronpedia"] | None = None,
    records: str | None = None,
    features: str | None = None,
    interventions: str | None = None,
    dataset: str | None = None,
    compiler: str | None = None,
    site: str | None = None,
    top_k: int = 10,
    seed: int = 0,
    n_permutations: int = 1000,
    n_bootstrap: int = 50,
    null: Literal["auto", "permutation", "asymptotic"] = "auto",
    explain: bool = True,
    labeler: str | None = "auto",
    html_out: str | None = None,
) -> dict[str, Any]:
    """Rank and explain the features that carry a criterion (interpkit inspect); write report.json + report.md.

    Paths are files or folders on the server's machine. ``out`` is the output folder. The defaults
    are the command line's (see the capabilities tool for every option of `interpkit inspect`).
    Returns the report's path, its top features and the files written.
    """
    from interpkit.inspect import inspect

    report = inspect(
        model, criterion, backend=backend, records=records, features=features, interventions=interventions,
        dataset=dataset, compiler=compiler, site=site, top_k=top_k, out=out, seed=seed,
        n_permutations=n_permutations, n_bootstrap=n_bootstrap, null=null, explain=explain,
        labeler=None if labeler in (None, "none") else labeler, html_out=html_out,
    )
    assert report.path is not None  # saved: out is required here
    table = report.path.parent / "table"
    return {
        "kind": "interpkit_report",
        "report": str(report.path),
        "report_md": str(report.path.with_suffix(".md")),
        "table": str(table) if table.is_dir() else None,
        "html": html_out,
        "model": report.model, "criterion": report.criterion, "backend": report.backend,
        "synthetic": report.synthetic,
        "warnings": list(report.warnings),
        "features": [_feature_summary(f) for f in report.features],
    }


def _scores_from_file(path: str, table: Any) -> Any:
    """One criterion score per table example, read from a prompt dataset JSONL by prompt_id == example_id."""
    import numpy as np

    from interpkit.sources import read_prompt_dataset

    by_id = {str(r.prompt_id): r.criterion_score for r in read_prompt_dataset(path)}
    missing = [eid for eid in table.example_ids if str(eid) not in by_id]
    if missing:
        raise ValueError(f"{path}: no row with prompt_id {missing[0]!r} (example of the table; "
                         f"{len(missing)} of {table.n_examples} examples have no score)")
    return np.array([np.nan if by_id[str(e)] is None else by_id[str(e)] for e in table.example_ids], dtype=float)


def rank_tool(
    table: str,
    criterion: str,
    out: str,
    scores: str | None = None,
    compiler: str | None = None,
    interventions: str | None = None,
    top_k: int = 10,
    seed: int = 0,
    n_permutations: int = 1000,
    n_bootstrap: int = 50,
    null: Literal["auto", "permutation", "asymptotic"] = "auto",
) -> dict[str, Any]:
    """Rank the features of a saved FeatureTable folder for a criterion; write the ranking JSON to ``out``.

    Scores come from ``scores`` (a prompt dataset JSONL whose prompt_id values are the table's
    example ids, with criterion_score), else from ``compiler`` (a criterion compiler scoring the
    table's example texts, e.g. keyword or embedding), else from the table's own criterion_score
    column. ``out`` is the ranking file (kind ranking_result, docs/formats.md) written atomically.
    """
    import json

    from interpkit._io import atomic_write_text
    from interpkit.inspect import rank_criterion
    from interpkit.rank import rank
    from interpkit.records import read_intervention_records
    from interpkit.table import FeatureTable

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if scores is not None and compiler is not None:
        raise ValueError("give scores or compiler, not both")
    loaded = FeatureTable.load(table)
    records = read_intervention_records(interventions) if interventions is not None else None
    options = {"n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "null": null, "seed": seed}
    if scores is not None:
        result = rank(loaded, _scores_from_file(scores, loaded), records, criterion=criterion, **options)
    else:
        result = rank_criterion(loaded, criterion, compiler=compiler, interventions=records, **options).result
    text = json.dumps(result.to_dict(), indent=1, allow_nan=False) + "\n"
    path = atomic_write_text(out, text)
    return {"kind": "ranking_result", "ranking": str(path), "criterion": criterion, "null": result.settings.null,
            "n_features": len(result.rows), "synthetic": bool(result.synthetic),
            "top": _ranking_summary(result, top_k)}


def explain_tool(report: str, feature_id: str, table: str | None = None, seed: int = 0) -> dict[str, Any]:
    """Explain one feature of a saved report: its report entry, or a fresh table-only explanation.

    Without ``table`` the explanation stored in report.json is returned (the feature must be one of
    the report's top features). With ``table`` (a saved FeatureTable folder, e.g. the report's
    ``table/``) the feature is explained again from the table alone: top and quantile examples,
    activation histogram (no model, no labeler).
    """
    from interpkit.report import load_report

    rep = load_report(report)
    entry = next((f for f in rep.features if f.feature_id == feature_id), None)
    base: dict[str, Any] = {"report": str(rep.path), "feature_id": feature_id, "criterion": rep.criterion,
                            "synthetic": rep.synthetic}
    if table is None:
        if entry is None:
            ids = ", ".join(f.feature_id for f in rep.features) or "none"
            raise ValueError(f"{rep.path}: field 'feature_id': {feature_id!r} is not among the report's top "
                             f"features ({ids}); pass table= to explain any feature of its table")
        return {**base, "source": "report", "rank": entry.rank, "label": entry.label,
                "components": dict(entry.components), "explanation": entry.explanation,
                "top_examples": list(entry.top_examples)}
    from interpkit.explain import explain_feature
    from interpkit.table import FeatureTable

    loaded = FeatureTable.load(table)
    if feature_id not in set(loaded.feature_ids):
        raise ValueError(f"{table}: field 'feature_id': no feature {feature_id!r} in this table of "
                         f"{loaded.n_features} features")
    explanation = explain_feature(loaded, feature_id, seed=seed)
    return {**base, "source": "table", "table": str(Path(table)), "rank": entry.rank if entry else None,
            "explanation": explanation.to_dict()}


def match_tool(
    left: str,
    right: str,
    out: str,
    top_k: int = 10,
    min_score: float | None = None,
    weights: str | None = None,
    left_table: str | None = None,
    right_table: str | None = None,
    null_samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Match two reports' features one-to-one (interpkit match); write matches.json + matches.md.

    ``left`` / ``right``: report.json paths or their folders; ``out``: a .json path or a folder;
    ``weights``: e.g. "activation=1,explanation=0.5" (see `interpkit match --help`).
    """
    from interpkit.match import compare

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    result = compare(left, right, out, left_table=left_table, right_table=right_table, weights=weights,
                     top_k=top_k, min_score=min_score, null_samples=null_samples, seed=seed)
    path = Path(out) if Path(out).suffix.lower() == ".json" else Path(out) / "matches.json"
    return {
        "kind": "interpkit_matches", "matches": str(path), "matches_md": str(path.with_suffix(".md")),
        "n_matches": len(result.matches), "n_confident": len(result.confident()),
        "null": {k: result.null.get(k) for k in ("mean", "std")},
        "components_used": list(result.settings.get("components_used", ())),
        "top": [{"left_id": m.left_id, "right_id": m.right_id, "score": m.score, "confidence": m.confidence,
                 "null_z": m.null_z, "left_label": m.left_label, "right_label": m.right_label}
                for m in result.matches[:top_k]],
    }


def compare_runs_tool(a: str, b: str, out: str | None = None, rel_tol: float = 1e-6,
                      abs_tol: float = 1e-9) -> dict[str, Any]:
    """Compare two saved runs (interpkit compare-runs); with ``out``, write comparison.json/.md and the chart.

    ``a`` / ``b``: report.json paths or their folders.
    """
    from interpkit.report import compare_runs

    comparison = compare_runs(a, b, rel_tol=rel_tol, abs_tol=abs_tol)
    written: list[str] = []
    if out is not None:
        from interpkit.viz import save_run_comparison

        written = [str(p) for p in save_run_comparison(comparison, out)]
    data = comparison.to_dict()
    return {"kind": data["kind"], "no_change": comparison.no_change, "files": written,
            "gained": data["gained"], "lost": data["lost"], "settings_changed": data["settings_changed"],
            "features": data["features"]}


def search_features_tool(query: str, reports: list[str], top_k: int = 20, embed: bool = True) -> dict[str, Any]:
    """Find features across saved reports and tables by text (interpkit search-features)."""
    from interpkit.report import search_features

    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    hits = search_features(query, reports, top_k=top_k, embed=embed)
    return {"kind": "interpkit_feature_search", "query": query, "embed": embed, "hits": [h.to_dict() for h in hits]}


def dossier_tool(project: str, report: str | None = None, feature_id: str | None = None,
                 matches: str | None = None, artifact: str | None = None) -> dict[str, Any]:
    """Evidence dossiers (interpkit dossier): with ``report``, add its evidence (one feature, or every top
    feature) to the project's dossiers; then each touched dossier's grade and the next experiments.
    Without ``report``: every dossier of the project with its grade."""
    from interpkit.dossier import add_to_dossier, grade, list_dossiers, next_experiments

    if report is None:
        if feature_id is not None or matches is not None or artifact is not None:
            raise ValueError("feature_id, matches and artifact need report (the evidence to add)")
        dossiers = list_dossiers(project)
    else:
        dossiers = add_to_dossier(project, report, feature_id, matches=matches, artifact=artifact)
    return {"kind": "interpkit_dossier", "project": project, "dossiers": [
        {"key": d.key, "path": str(d.path) if d.path else None, "n_runs": len(d.entries),
         "grade": grade(d).to_dict(),
         "next": [x.to_dict() for x in next_experiments(d, project_dir=project)] if report is not None else []}
        for d in dossiers]}


def export_steering_tool(report: str, feature_id: str, out: str, model: str | None = None,
                         directions: str | None = None, interventions: str | None = None,
                         strength: float | None = None, force: bool = False) -> dict[str, Any]:
    """Write a steering artifact for one report feature (interpkit export-steering); refused (nothing
    written) without held-out causal evidence unless ``force`` (then ``validated: false``).
    ``model``: default the model the report names, as the command."""
    from interpkit.causal import export_steering
    from interpkit.cli._export_records import load_model_for_cli
    from interpkit.records import read_report

    loaded = read_report(report)
    art = export_steering(loaded, feature_id, out, model=load_model_for_cli(model or loaded.model, None),
                          directions=directions,
                          interventions=interventions, strength=strength, force=force,
                          command=f"interpkit mcp (tool export_steering, feature {feature_id})")
    return {"kind": "steering_artifact", "artifact": str(out), "feature_id": feature_id,
            "validated": art.validated, "strength": art.strength, "evidence": art.evidence}


def apply_steering_tool(artifact: str, prompts: str, out: str, model: str | None = None,
                        strength: float | None = None, allow_other_model: bool = False,
                        max_new_tokens: int | None = None, criterion: str | None = None,
                        compiler: str = "embedding") -> dict[str, Any]:
    """Baseline and steered generations of a steering artifact on a prompt file (interpkit apply-steering);
    ``criterion`` (default: the artifact's) is scored by ``compiler`` on both continuations; ``model``:
    default the artifact's, as the command."""
    from interpkit.causal import apply_steering
    from interpkit.cli._export_records import load_model_for_cli
    from interpkit.records import read_steering_artifact

    art = read_steering_artifact(artifact)
    rows = apply_steering(art, load_model_for_cli(model or art.model_name, None), prompts, out, strength=strength,
                          allow_other_model=allow_other_model, max_new_tokens=max_new_tokens,
                          criterion=criterion, compiler=compiler)
    return {"kind": "steering_generation", "out": str(out), "n": len(rows), "rows": rows[:5]}


#: The tools ``interpkit mcp`` serves, in the order a client lists them.
TOOLS: tuple[ToolSpec, ...] = (
    ToolSpec("capabilities", capabilities_tool, "interpkit commands, arguments and formats", read_only=True),
    ToolSpec("inspect", inspect_tool, "rank and explain a criterion's features"),
    ToolSpec("rank", rank_tool, "rank a saved feature table for a criterion"),
    ToolSpec("explain", explain_tool, "explain one feature of a saved report", read_only=True),
    ToolSpec("match", match_tool, "match two reports' features one-to-one"),
    ToolSpec("compare_runs", compare_runs_tool, "what changed between two saved runs"),
    ToolSpec("search_features", search_features_tool, "find features in saved reports by text", read_only=True),
    ToolSpec("export_steering", export_steering_tool, "write a steering artifact for a report feature"),
    ToolSpec("apply_steering", apply_steering_tool, "steer generations with a steering artifact"),
    ToolSpec("dossier", dossier_tool, "add a report's evidence to feature dossiers; grades and next experiments"),
)
