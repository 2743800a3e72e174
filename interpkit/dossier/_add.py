"""`add_to_dossier`: turn a report's features (and optional matches and artifacts) into dossier entries.

One entry per (feature, report), keyed by the sha256 of the report file, so adding a report twice
changes nothing. What an entry holds comes from the report as written: the ranking row (held-out
association, tier, stability, causal interval), the feature's label and its detection score, and
the feature's controls (``<feature>::control<k>``, ``::matched_frequency<k>``, ``::placebo<k>``: the
ids `interpkit.records.control_id` gives), read from the ranking's rows or, when
the controls are not features of the ranked table (neuron tables), from the report's intervention
records file if it is still there with the same sha256.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit._constants import REPORT_JSON_NAME
from interpkit._io import sha256_file
from interpkit.rank import auroc_interval

from ._format import Dossier, DossierError, dossier_dir, feature_key, load_json, read_dossier, write_dossier

__all__ = ["add_to_dossier", "auroc_interval", "list_dossiers", "load_dossier"]

CAUSAL_WITH_SIGN = ("promotes", "suppresses")


def _report_file(path: str | Path) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / REPORT_JSON_NAME
    if not p.exists():
        raise FileNotFoundError(f"no report at {p} (expected a report.json written by `interpkit inspect`)")
    return p


def _direction_vectors(report_file: Path) -> dict[str, Any]:
    """The decoder vectors of ``<report>/table`` (feature id -> vector), empty when no table was saved."""
    folder = report_file.parent / "table"
    if not folder.is_dir():
        return {}
    from interpkit.table import FeatureTable

    return dict(FeatureTable.load(folder).decoder_vectors)


def _own_controls(ids: Any, feature_id: str) -> list[tuple[str, str]]:
    """``(control id, kind)`` of ``feature_id``'s controls among ``ids``, in the order they were run (kind, then id)."""
    from interpkit.records import CONTROL_KINDS, control_owner

    owned = {str(i): control_owner(str(i)) for i in ids}
    return sorted(((cid, o[1]) for cid, o in owned.items() if o is not None and o[0] == feature_id),
                  key=lambda x: (CONTROL_KINDS.index(x[1]), x[0]))


def _file_controls(report: Any, feature_id: str, level: float) -> list[dict[str, Any]]:
    """The feature's controls measured in the report's interventions file (unchanged since the run)."""
    from interpkit.rank._stats import t_interval
    from interpkit.records import filter_interventions, read_intervention_records

    files = [i for i in report.inputs if i.role == "interventions"]
    if not files or not Path(files[0].path).exists() or sha256_file(files[0].path) != files[0].sha256:
        return []
    allow = bool(report.settings.get("allow_intervention_criterion_mismatch", False))
    kept, _ = filter_interventions(read_intervention_records(files[0].path), report.criterion, allow_mismatch=allow)
    groups: dict[str, list[float]] = {}
    for r in kept:
        groups.setdefault(str(r.feature_id), []).append(float(r.signed_effect))
    out = []
    for cid, kind in _own_controls(groups, feature_id):
        values = groups[cid]
        if len(values) < 3:
            out.append({"feature_id": cid, "kind": kind, "status": "insufficient n", "effect": None,
                        "ci_low": None, "ci_high": None, "n": len(values)})
            continue
        mean, lo, hi = t_interval(np.asarray(values), level)
        out.append({"feature_id": cid, "kind": kind, "status": "measured", "effect": mean, "ci_low": lo,
                    "ci_high": hi, "n": len(values)})
    return out


def _controls(report: Any, feature_id: str, level: float) -> list[dict[str, Any]]:
    rows = {r.feature_id: r for r in report.ranking.rows}
    ranked = _own_controls(rows, feature_id)
    if ranked:
        return [{"feature_id": cid, "kind": kind, "status": rows[cid].causal.status, "effect": rows[cid].causal.effect,
                 "ci_low": rows[cid].causal.ci_low, "ci_high": rows[cid].causal.ci_high, "n": rows[cid].causal.n}
                for cid, kind in ranked]
    return _file_controls(report, feature_id, level)


def beats_controls(status: str, ci_low: float | None, ci_high: float | None,
                   controls: Sequence[Mapping[str, Any]]) -> bool | None:
    """Whether a signed causal interval lies beyond every measured control's interval (None: no control
    with an interval). A promoter's lower end must exceed each control's upper end; a suppressor's
    upper end must be below each control's lower end."""
    usable = [c for c in controls if c["ci_low"] is not None and c["ci_high"] is not None]
    if not usable or status not in CAUSAL_WITH_SIGN or ci_low is None or ci_high is None:
        return None
    if status == "promotes":
        return bool(ci_low > max(c["ci_high"] for c in usable))
    return bool(ci_high < min(c["ci_low"] for c in usable))


def _entry(report: Any, report_file: Path, sha: str, feature: Any) -> dict[str, Any]:
    row = report.ranking.row(feature.feature_id)
    s = report.ranking.settings
    a = row.association
    lo, hi = auroc_interval(a.auroc_test, a.n_pos_test, a.n_neg_test, s.ci_level)
    causal = None
    if row.causal.status != "no causal evidence":
        controls = _controls(report, row.feature_id, s.ci_level)
        c = row.causal
        causal = {
            "status": c.status, "effect": c.effect, "value": c.value, "ci_low": c.ci_low, "ci_high": c.ci_high,
            "ci_level": s.ci_level, "side_effect": c.side_effect, "n": c.n,
            "per_kind": [dict(k) for k in feature.causal_records], "controls": controls,
            "beats_controls": beats_controls(c.status, c.ci_low, c.ci_high, controls),
        }
    expl = feature.explanation or {}
    scoring = expl.get("label_scoring") or {}
    scored = report.settings.get("criterion_scores") or {}
    settings = {
        "seed": report.settings.get("seed", s.seed), "top_k": report.settings.get("top_k"),
        "n_permutations": report.settings.get("n_permutations", s.n_permutations),
        "n_bootstrap": s.n_bootstrap, "null": s.null,
        "fdr_alpha": s.fdr_alpha, "ci_level": s.ci_level, "causal_margin": s.causal_margin,
        "split_source": s.split_source, "n_train": s.n_train, "n_test": s.n_test,
        "site": (report.settings.get("model_table") or {}).get("site", feature.site),
        # inspect records the rows it scored, not the cap: the larger class is the cap it ran with
        # whenever the pool had enough prompts (it does for the packaged pool at the defaults)
        "max_per_class": report.settings.get("max_per_class") or (
            max(scored.get("n_positive") or 0, scored.get("n_negative") or 0) or None),
        "compiler": scored.get("compiler"),
        "inputs": [{"role": i.role, "path": i.path, "sha256": i.sha256} for i in report.inputs],
    }
    return {
        "report_path": str(report_file.resolve()), "report_sha256": sha, "copies": [], "model": report.model,
        "criterion": report.criterion, "backend": report.backend, "synthetic": bool(report.synthetic),
        "settings": settings, "rank": row.rank, "n_features": len(report.ranking.rows), "tier": row.tier,
        "tier_rank": row.tier_rank,
        "association": {
            "status": a.status, "auroc_test": a.auroc_test, "auroc_ci_low": lo, "auroc_ci_high": hi,
            "ci_level": s.ci_level, "spearman_test": a.spearman_test, "effect_size": a.effect_size,
            "sign_agrees": a.sign_agrees, "p_value": a.p_value, "q_value": a.q_value,
            "significant": bool(a.significant), "n_test": a.n_test, "n_pos_test": a.n_pos_test,
            "n_neg_test": a.n_neg_test,
        },
        "causal": causal,
        "specificity": row.specificity,
        "stability": {"stability": row.stability, "auroc_sd": row.stability_auroc_sd, "n_bootstrap": s.n_bootstrap},
        "label": {"text": feature.label or expl.get("label"), "source": expl.get("label_source"),
                  "score": expl.get("label_score"), "method": scoring.get("method")},
    }


def _match_rows(path: Path, dossier: Dossier) -> list[dict[str, Any]]:
    """The matches of the dossier's feature in a matches.json from `interpkit match`."""
    from interpkit.match import MatchError, MatchResult

    data = load_json(path)
    try:
        result = MatchResult.from_dict(data)
    except (MatchError, KeyError, TypeError, AttributeError) as exc:
        raise DossierError(f"{path}: not a matches file from `interpkit match`: {exc}") from exc
    sha = sha256_file(path)
    fid, model = dossier.feature["feature_id"], dossier.feature["model"]
    models = {side: list((result.settings.get(side) or {}).get("models") or []) for side in ("left", "right")}
    out = []
    for m in result.matches:
        for side, mine, other, other_label in (("left", m.left_id, m.right_id, m.right_label),
                                               ("right", m.right_id, m.left_id, m.left_label)):
            # a side is the feature's when the ids agree and the side's models (if recorded) include its model
            if mine != fid or (models[side] and model not in models[side]):
                continue
            others = models["right" if side == "left" else "left"]
            out.append({
                "matches_path": str(path.resolve()), "matches_sha256": sha, "side": side,
                "other_model": others[0] if len(others) == 1 else None, "other_feature_id": other,
                "other_label": other_label, "score": m.score, "confidence": m.confidence, "null_z": m.null_z,
                "mutual": bool(m.mutual), "validated": m.validated,
                "validation_reasons": list((m.validation or {}).get("reasons", [])),
            })
    return out


def _artifact(path: Path) -> dict[str, Any]:
    """What a dossier keeps of an exported file: path, sha256, kind, size; for a steering artifact (its
    folder or its ``steering.json``, read strictly) also the feature it was made from and ``validated``."""
    from interpkit.records import (
        STEERING_ARTIFACT_KIND,
        STEERING_JSON_NAME,
        read_steering_artifact,
        vector_sha256,
    )

    if path.is_dir() and (path / STEERING_JSON_NAME).is_file():
        path = path / STEERING_JSON_NAME
    if not path.is_file():
        raise FileNotFoundError(f"artifact: no file at {path}")
    kind = None
    if path.suffix.lower() == ".json":
        data = load_json(path)
        kind = data.get("kind") if isinstance(data, dict) and isinstance(data.get("kind"), str) else None
    out = {"path": str(path.resolve()), "sha256": sha256_file(path), "kind": kind, "bytes": path.stat().st_size}
    if kind == STEERING_ARTIFACT_KIND:
        art = read_steering_artifact(path.parent)
        out.update(feature=art.feature, validated=art.validated, vector_sha256=vector_sha256(art.vector))
    return out


def _artifact_fits(art: dict[str, Any], feature_id: str, direction: str | None) -> bool:
    """A steering artifact belongs to the feature it was exported from (and, for a direction, its vector)."""
    if art.get("feature") is None:
        return True
    return art["feature"] == feature_id and (direction is None or art["vector_sha256"] == direction)


def _upsert(items: list[dict[str, Any]], new: dict[str, Any], key: Sequence[str]) -> None:
    """Replace the item with the same key fields, or append: adding the same thing twice changes nothing."""
    for i, old in enumerate(items):
        if all(old[k] == new[k] for k in key):
            items[i] = new
            return
    items.append(new)


def _add_entry(entries: list[dict[str, Any]], new: dict[str, Any]) -> None:
    """Add a report's entry, keyed by the report's sha256. The same bytes at another path (a rerun of
    one config and seed writes an identical report) are one result: the path joins ``copies``."""
    for old in entries:
        if old["report_sha256"] == new["report_sha256"]:
            if new["report_path"] != old["report_path"] and new["report_path"] not in old["copies"]:
                old["copies"] = sorted([*old["copies"], new["report_path"]])
            return
    entries.append(new)


def add_to_dossier(
    project_dir: str | Path,
    report_dir_or_json: str | Path,
    feature_id: str | None = None,
    *,
    matches: str | Path | None = None,
    artifact: str | Path | None = None,
) -> list[Dossier]:
    """Add one report's evidence on a feature (default: every top feature) to its dossier.

    Args:
        project_dir: the project folder; dossiers live in ``<project>/dossiers/<slug>/dossier.json``.
        report_dir_or_json: a ``report.json`` from ``interpkit inspect`` or the folder holding it.
        feature_id: one of the report's top features (``features[]``); None adds all of them.
        matches: a ``matches.json`` from ``interpkit match``: the feature's matches are recorded.
        artifact: a file exported from the feature: path, sha256, ``kind``. A steering artifact (its folder
            or ``steering.json``) is added to the feature it was exported from (with ``feature_id``
            None, to that feature alone) and must carry that feature's vector.

    Returns:
        The dossiers written, one per feature.

    Raises:
        FileNotFoundError: no report (or matches, artifact) at the path.
        DossierError: the feature is not a top feature of the report, a bad matches or artifact file,
            or an existing dossier that does not read.
        interpkit.records.ReportSchemaError: the report does not read.
    """
    from interpkit.report import load_report

    report_file = _report_file(report_dir_or_json)
    report = load_report(report_file)
    sha = sha256_file(report_file)
    features = list(report.features)
    if feature_id is not None:
        features = [f for f in features if f.feature_id == str(feature_id)]
        if not features:
            top = [f.feature_id for f in report.features]
            raise DossierError(f"{report_file}: feature {feature_id!r} is not among the report's top features "
                               f"{top[:10]}; rerun inspect with a larger --top-k")
    if not features:
        raise DossierError(f"{report_file}: field 'features': the report has no top features to add")
    match_path = None if matches is None else Path(matches)
    if match_path is not None and not match_path.is_file():
        raise FileNotFoundError(f"matches: no file at {match_path}")
    art = None if artifact is None else _artifact(Path(artifact))
    if art is not None and art.get("feature") is not None:
        if feature_id is None:  # a steering artifact goes to the one feature it was exported from
            features = [f for f in features if f.feature_id == art["feature"]]
        if [f.feature_id for f in features] != [art["feature"]]:
            raise DossierError(f"{art['path']}: field 'feature': the steering artifact was exported from "
                               f"{art['feature']!r}, not from "
                               f"{feature_id if feature_id is not None else 'a top feature of ' + str(report_file)!r}")
    from interpkit.records import vector_sha256

    written = []
    vectors: dict[str, Any] | None = None  # the saved table, read once and only for direction features
    for feature in features:
        model = feature.model or report.model
        direction = None
        if feature.source == "direction":
            vectors = _direction_vectors(report_file) if vectors is None else vectors
            vector = vectors.get(feature.feature_id)
            direction = vector_sha256(vector) if vector is not None else None
        key = feature_key(model, feature.site, feature.feature_id, direction)
        folder = dossier_dir(project_dir, key)
        dossier = read_dossier(folder) if (folder / "dossier.json").exists() else Dossier(
            key=key, feature={"model": model, "site": feature.site, "feature_id": feature.feature_id,
                              "layer": feature.layer, "source": feature.source, "direction_sha256": direction})
        _add_entry(dossier.entries, _entry(report, report_file, sha, feature))
        if match_path is not None:
            for row in _match_rows(match_path, dossier):
                _upsert(dossier.matches, row, ("matches_sha256", "side", "other_feature_id"))
        if art is not None:
            if not _artifact_fits(art, feature.feature_id, direction):
                raise DossierError(f"{art['path']}: field 'vector.sha256': the artifact's vector is not the "
                                   f"direction {feature.feature_id!r} has in {report_file} (sha256 {direction})")
            _upsert(dossier.artifacts, dict(art), ("sha256",))
        write_dossier(project_dir, dossier)
        written.append(dossier)
    return written


def load_dossier(project_dir: str | Path, feature_key_or_slug: str) -> Dossier:
    """The dossier of a feature, by its key (``model|site|feature_id[|sha256:...]``) or its folder name.

    Raises:
        FileNotFoundError: no such dossier (the message lists the project's dossiers).
        DossierError: the dossier file does not read.
    """
    root = Path(project_dir) / "dossiers"
    for folder in (root / feature_key_or_slug, dossier_dir(project_dir, feature_key_or_slug)):
        if "|" not in folder.name and (folder / "dossier.json").exists():
            return read_dossier(folder)
    known = [d.key for d in list_dossiers(project_dir)]
    raise FileNotFoundError(f"no dossier {feature_key_or_slug!r} in {root}; dossiers there: {known[:20]}")


def list_dossiers(project_dir: str | Path) -> list[Dossier]:
    """Every dossier of the project, by key (an unreadable one raises `DossierError` naming its file)."""
    root = Path(project_dir) / "dossiers"
    if not root.is_dir():
        return []
    found = [read_dossier(d) for d in sorted(root.iterdir()) if (d / "dossier.json").exists()]
    return sorted(found, key=lambda d: d.key)
