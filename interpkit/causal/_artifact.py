"""Steering artifacts from reports, and steering with them: ``export-steering`` and ``apply-steering``.

`export_steering` turns one feature of an inspect report into a `~interpkit.records.SteeringArtifact`:

- the **vector**: a DirectionSet's row (``directions=``, as ``export-hf-contrast`` saves it), the
  decoder vector of the report's saved table (``<report>/table``), or a neuron's basis vector;
- the **held-out evidence** (`steering_evidence`): the report's intervention records for the
  feature on the ``test`` split, aggregated as the ranking aggregates them
  (`interpkit.rank.aggregate_causal`: mean signed effect, Student-t interval, side effect), and the
  feature's controls on the same split (every kind: random same-norm directions, matched-frequency,
  placebo). A feature is *validated* when the
  interval lies above 0 (``status == "promotes"``) and its lower end is above every control's mean
  effect (the controls it beat). Anything less is refused unless ``force=True``, which writes
  ``validated: false``;
- the **strength**: the one the records were run at when they say ``strength_chosen_on: "train"``
  (`sweep_strengths` / ``export-hf-contrast`` chose it on the train split and ran it on test), or
  the caller's ``strength=`` (``chosen_on: "user"``).

`apply_steering` generates from each prompt with and without the artifact's edit
(`steer_compare`: criterion score, perplexity under the unsteered model, next-token TV distance)
and writes one JSONL row per prompt. It refuses a model whose `~interpkit.sources.model_fingerprint`
differs from the artifact's unless ``allow_other_model=True``, which every row records.
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from interpkit.records import InterventionRecord, filter_interventions

from ._export import _feature_for

__all__ = ["STEERING_GENERATION_KIND", "SteeringRefused", "apply_steering", "artifact_edits", "check_artifact_model",
           "export_steering", "steering_evidence", "unvalidated_artifact"]

STEERING_GENERATION_KIND = "steering_generation"
"""``kind`` of each row `apply_steering` writes."""
_ROW_SCHEMA = 1
_MIN_N = 3  # below this the ranking reports "insufficient n" and no interval


class SteeringRefused(ValueError):
    """The feature has no held-out causal evidence good enough for a validated artifact."""


def steering_evidence(
    records: Sequence[InterventionRecord],
    feature_id: str,
    *,
    criterion: str | None,
    split: str = "test",
    side_effect_weight: float = 1.0,
    margin: float = 0.0,
    level: float = 0.95,
) -> dict[str, Any] | None:
    """The feature's held-out intervention evidence and its controls, or None with fewer than 3 records.

    Steering kinds (``steer``, ``amplify``) are preferred; otherwise the kind with most records
    (e.g. ``ablate``). Only records whose ``split`` extra equals ``split`` and whose criterion
    matches count.

    Returns:
        ``{"intervention", "split", "n", "effect", "ci_low", "ci_high", "ci_level", "status",
        "side_effect", "strength", "strength_chosen_on", "controls": [{"feature_id", "kind", "n", "effect",
        "beaten"}]}`` (``strength_chosen_on`` is dropped before it goes into an artifact).
    """
    from interpkit.rank import aggregate_causal

    kept, _ = filter_interventions(records, criterion)
    held = [r for r in kept if r.extra.get("split") == split]
    own = [r for r in held if str(r.feature_id) == str(feature_id) and not r.extra.get("control")]
    by_kind: dict[str, list[InterventionRecord]] = {}
    for r in own:
        by_kind.setdefault(r.kind, []).append(r)
    if not by_kind:
        return None
    steering = [k for k in ("steer", "amplify") if len(by_kind.get(k, ())) >= _MIN_N]
    kind = steering[0] if steering else max(by_kind, key=lambda k: len(by_kind[k]))
    recs = by_kind[kind]
    if len(recs) < _MIN_N:
        return None
    causal = aggregate_causal(recs, [str(feature_id)], criterion=None, allow_mismatch=True,
                              side_effect_weight=side_effect_weight, margin=margin, level=level)[0][str(feature_id)]
    strengths = {r.extra.get("strength") for r in recs}
    chosen = {r.extra.get("strength_chosen_on") for r in recs}
    controls: dict[str, list[float]] = {}
    control_kinds: dict[str, str] = {}
    for r in held:
        if r.extra.get("control_of") == str(feature_id) and r.kind == kind:
            controls.setdefault(str(r.feature_id), []).append(r.signed_effect)
            control_kinds[str(r.feature_id)] = str(r.extra.get("control_kind") or "random")
    return {
        "intervention": kind, "split": split, "n": causal.n, "effect": causal.effect, "ci_low": causal.ci_low,
        "ci_high": causal.ci_high, "ci_level": float(level), "status": causal.status,
        "side_effect": causal.side_effect,
        "strength": float(next(iter(strengths))) if len(strengths) == 1 and None not in strengths else None,
        "strength_chosen_on": next(iter(chosen)) if len(chosen) == 1 else None,
        "controls": [{"feature_id": cid, "kind": control_kinds[cid], "n": len(v), "effect": float(np.mean(v)),
                      # the ranking's rule (the feature's interval clears its controls' mean effect),
                      # held here against each control: a validated artifact beats every one of them
                      "beaten": causal.ci_low is not None and causal.ci_low > float(np.mean(v))}
                     for cid, v in controls.items()],
    }


def _refusal(evidence: dict[str, Any] | None) -> str | None:
    """Why ``evidence`` does not validate a steering artifact (None: it does)."""
    if evidence is None:
        return f"no held-out causal evidence (at least {_MIN_N} intervention records on the test split)"
    if evidence["status"] != "promotes":
        lo, hi = evidence["ci_low"], evidence["ci_high"]
        interval = "no interval" if lo is None or hi is None else f"interval [{lo:.4g}, {hi:.4g}]"
        where = " inside the equivalence margin +/- causal_margin" if evidence["status"] == "inert" else ""
        return (f"its held-out {evidence['intervention']} effect is {evidence['status']!r}: {interval}{where}, "
                "not an interval above 0")
    if not evidence["controls"]:
        return "its held-out records have no controls to compare with"
    lost = [c["feature_id"] for c in evidence["controls"] if not c["beaten"]]
    if lost:
        return f"it does not beat its controls {lost} on the held-out split"
    return None


def _interventions_file(report: Any, override: str | os.PathLike[str] | None) -> tuple[Path | None, str | None]:
    """The report's intervention-records input (path, sha256), checked against the recorded hash."""
    from interpkit._io import sha256_file

    inputs = [i for i in report.inputs if i.role == "interventions"]
    recorded = inputs[0] if inputs else None
    if override is not None:
        path = Path(override)
        if not path.is_file():
            raise FileNotFoundError(f"interventions: no such file: {path}")
    elif recorded is None:
        return None, None
    else:
        # the path as the user gave it to inspect: relative to where inspect ran, or to the report
        path = Path(recorded.path)
        if not path.is_file() and report.path is not None:
            path = Path(report.path).parent / recorded.path
        if not path.is_file():
            raise FileNotFoundError(f"{report.path}: field 'inputs[].path': the report's intervention records "
                                    f"{recorded.path!r} are not there any more; pass interventions=FILE")
    digest = sha256_file(path)
    if recorded is not None and digest != recorded.sha256:
        raise ValueError(f"{path}: its sha256 differs from the one the report recorded for its intervention "
                         f"records ({recorded.sha256[:12]}...): not the evidence the report was built from")
    return path, digest


def _feature_vector(model: Any, report: Any, feature_id: str, directions: Any) -> tuple[str, np.ndarray]:
    """(site, vector) of a report feature: a DirectionSet row, the saved table's decoder, or a neuron."""
    from interpkit.sources.directions import DirectionSet

    if directions is not None and not isinstance(directions, DirectionSet):
        directions = DirectionSet.load(directions)
    table_dir = None if report.path is None else Path(report.path).parent / "table"
    if (directions is None or feature_id not in directions.names) and table_dir is not None and table_dir.is_dir():
        from interpkit.table import FeatureTable

        table = FeatureTable.load(table_dir)
        if feature_id in table.decoder_vectors:
            row = table.features.set_index("feature_id").loc[feature_id]
            site = row.get("site")
            if not isinstance(site, str) or not site:
                raise ValueError(f"{table_dir}: feature {feature_id!r} has a decoder vector but no site")
            return model.resolve_site(site), np.asarray(table.decoder_vectors[feature_id], dtype=np.float32)
    feat = _feature_for(model, feature_id, directions)
    return model.resolve_site(feat.site), feat.vector(int(model.d_model))


def export_steering(
    report: Any,
    feature_id: str,
    out: str | os.PathLike[str],
    *,
    model: Any,
    directions: Any = None,
    interventions: str | os.PathLike[str] | None = None,
    strength: float | None = None,
    force: bool = False,
    command: str | None = None,
    generation: Mapping[str, Any] | None = None,
) -> Any:
    """Write a steering artifact for one report feature (see the module docstring); return it.

    Args:
        report: a report folder, its ``report.json``, or a loaded report (any `~interpkit.records.ReportRecord`).
        feature_id: the feature, as the report's ranking names it.
        out: the artifact folder to write (replaced atomically).
        model: the ``ModelWrapper`` the report was made on (fingerprinted; its width checks the vector).
        directions: a DirectionSet (or folder) holding direction features' vectors.
        interventions: the report's intervention records, when they moved since inspect read them
            (their sha256 must match the report's).
        strength: steering strength; None takes the one the held-out records were run at, when
            it was chosen on the train split.
        force: write an unvalidated artifact (``validated: false``) instead of refusing.
        command: the command line that made it (provenance).
        generation: generation settings to store (``max_new_tokens``, ``seed``, ``do_sample``, ``chat``).

    Raises:
        SteeringRefused: (a ValueError) no validating held-out evidence and not ``force``; nothing is written.
        ValueError: an unknown feature, a vector of the wrong width, or no strength to use.
    """
    from interpkit._io import sha256_file
    from interpkit.records import ReportRecord, SteeringArtifact, read_intervention_records, read_report
    from interpkit.sources import model_fingerprint

    if not isinstance(report, ReportRecord):
        report = read_report(report)
    feature_id = str(feature_id)
    known = [str(r.get("feature_id")) for r in dict(report.ranking).get("rows", ())] \
        if isinstance(report.ranking, Mapping) else [r.feature_id for r in report.ranking.rows]
    if feature_id not in known:
        raise ValueError(f"{report.path}: field 'ranking.rows[].feature_id': no feature {feature_id!r} in the report")
    settings = dict(report.ranking.get("settings", {})) if isinstance(report.ranking, Mapping) \
        else report.ranking.settings.to_dict()
    ipath, isha = _interventions_file(report, interventions)
    records = read_intervention_records(ipath) if ipath is not None else []
    evidence = steering_evidence(records, feature_id, criterion=report.criterion,
                                 side_effect_weight=float(settings.get("side_effect_weight", 1.0)),
                                 margin=float(settings.get("causal_margin", 0.0)),
                                 level=float(settings.get("ci_level", 0.95)))
    why = _refusal(evidence)
    if why is not None and not force:
        raise SteeringRefused(f"feature {feature_id!r} of {report.path}: {why}; nothing written "
                              "(force=True / --force writes an artifact marked validated: false)")
    if strength is not None:
        value, chosen_on, detail = float(strength), "user", "given by the user"
    elif evidence is not None and evidence["strength"] is not None and evidence["strength_chosen_on"] == "train":
        value, chosen_on = float(evidence["strength"]), "train"
        detail = (f"chosen on the train split by a strength sweep; the {evidence['n']} held-out "
                  f"{evidence['intervention']} records in {ipath} were run at it")
    else:
        raise ValueError(f"feature {feature_id!r}: its intervention records carry no strength chosen on the train "
                         "split (export-hf-contrast / sweep_strengths write one); pass strength= / --strength")
    site, vector = _feature_vector(model, report, feature_id, directions)
    if vector.size != int(model.d_model):
        raise ValueError(f"feature {feature_id!r}: vector has {vector.size} values, the model's d_model is "
                         f"{model.d_model}")
    if evidence is not None:
        evidence = {k: v for k, v in evidence.items() if k != "strength_chosen_on"}
    report_json = Path(report.path) if report.path is not None else None
    artifact = SteeringArtifact(
        feature=feature_id, site=site, vector=vector, model_name=str(getattr(model, "name", report.model)),
        model_fingerprint=model_fingerprint(model), criterion=report.criterion, strength=value,
        strength_chosen_on=chosen_on, strength_detail=detail, validated=why is None, evidence=evidence,
        generation=dict(generation or {}),
        provenance={"report": None if report_json is None else str(report_json),
                    "report_sha256": None if report_json is None else sha256_file(report_json),
                    "interventions": None if ipath is None else str(ipath), "interventions_sha256": isha,
                    "command": command, "created_at": _now(), "forced": bool(force and why is not None)},
    )
    from interpkit.records import write_steering_artifact

    write_steering_artifact(out, artifact)
    return _with_path(artifact, out)


def unvalidated_artifact(
    model: Any,
    feature: str,
    site: str,
    vector: Any,
    strength: float,
    *,
    chosen_on: str = "panel",
    criterion: str | None = None,
    generation: Mapping[str, Any] | None = None,
    command: str | None = None,
) -> Any:
    """A `~interpkit.records.SteeringArtifact` of a vector with no held-out evidence (``validated: false``).

    What the SteeringPanel exports: its slider strength (``chosen_on="panel"``) and generation
    settings, the model's fingerprint; ``export_steering`` is the way to a validated artifact.
    """
    from interpkit.records import SteeringArtifact
    from interpkit.sources import model_fingerprint

    return SteeringArtifact(
        feature=str(feature), site=model.resolve_site(site), vector=np.asarray(vector, dtype=np.float32),
        model_name=str(getattr(model, "name", "")), model_fingerprint=model_fingerprint(model),
        criterion=criterion, strength=float(strength), strength_chosen_on=chosen_on,
        strength_detail="set on a SteeringPanel slider" if chosen_on == "panel" else None, validated=False,
        generation=dict(generation or {}),
        provenance={"command": command, "created_at": _now(), "forced": False},
    )


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _with_path(artifact: Any, path: str | os.PathLike[str]) -> Any:
    from dataclasses import replace

    return replace(artifact, path=Path(path))


def check_artifact_model(artifact: Any, model: Any, *, allow_other_model: bool = False) -> dict[str, Any]:
    """``{"name", "fingerprint", "artifact_fingerprint", "matches_artifact", "allow_other_model"}``.

    Raises:
        ValueError: the model's fingerprint differs from the artifact's and not ``allow_other_model``.
    """
    from interpkit.sources import model_fingerprint

    fp = model_fingerprint(model)
    same = fp == artifact.model_fingerprint
    if not same and not allow_other_model:
        raise ValueError(
            f"{artifact.path or 'the artifact'}: field 'model.fingerprint': made for {artifact.model_name!r} "
            f"(fingerprint {artifact.model_fingerprint[:12]}...), but this model's fingerprint is {fp[:12]}...; "
            "pass allow_other_model=True / --allow-other-model to steer it anyway (recorded in every row)")
    return {"name": str(getattr(model, "name", "")), "fingerprint": fp,
            "artifact_fingerprint": artifact.model_fingerprint, "matches_artifact": same,
            "allow_other_model": bool(allow_other_model)}


def artifact_edits(artifact: Any, model: Any, *, strength: float | None = None) -> list[Any]:
    """The one ``AddVector`` edit of ``artifact`` (at its strength unless ``strength`` is given)."""
    import torch

    from interpkit.models import AddVector

    site = model.resolve_site(artifact.site)
    if artifact.d_model != int(model.d_model):
        raise ValueError(f"{artifact.path}: field 'vector.d_model': {artifact.d_model}, but the model's d_model "
                         f"is {model.d_model}")
    s = artifact.strength if strength is None else float(strength)
    return [AddVector(site, torch.from_numpy(artifact.vector.copy()), strength=float(s))]


def apply_steering(
    artifact: Any,
    model: Any,
    prompts: Any,
    out: str | os.PathLike[str] | None = None,
    *,
    strength: float | None = None,
    allow_other_model: bool = False,
    criterion: Any = None,
    compiler: Any = "embedding",
    compiler_options: Mapping[str, Any] | None = None,
    max_new_tokens: int | None = None,
    do_sample: bool | None = None,
    chat: bool | None = None,
    seed: int | None = None,
) -> list[dict[str, Any]]:
    """Baseline and steered generations of each prompt with their scores; written as JSONL to ``out``.

    Args:
        artifact: an artifact folder or a `~interpkit.records.SteeringArtifact`.
        model: a ``ModelWrapper``; its fingerprint must match the artifact's.
        prompts: a prompt-dataset JSONL path (``prompt_id``, ``text``; scores optional), rows or texts.
        out: the JSONL file to write (atomically); None writes nothing.
        strength: overrides the artifact's strength.
        allow_other_model: steer a model with another fingerprint (recorded in every row).
        criterion: what the continuations are scored for (default: the artifact's criterion; None
            there skips the score).
        compiler, compiler_options: the criterion compiler (``"keyword"`` needs no model).
        max_new_tokens, do_sample, chat, seed: generation settings (default: the artifact's, else 32
            greedy tokens, no chat template, seed 0).

    Returns:
        One row per prompt (the layout in ``docs/formats.md``, ``steering_generation``).
    """
    from interpkit.records import SteeringArtifact, read_steering_artifact, write_jsonl
    from interpkit.sources import as_prompt_rows, read_prompt_dataset

    from ._steer import steer_compare

    if not isinstance(artifact, SteeringArtifact):
        artifact = read_steering_artifact(artifact)
    model_check = check_artifact_model(artifact, model, allow_other_model=allow_other_model)
    edits = artifact_edits(artifact, model, strength=strength)
    rows = (read_prompt_dataset(prompts, scores_optional=True) if isinstance(prompts, (str, os.PathLike))
            else as_prompt_rows(prompts))
    if not rows:
        raise ValueError(f"{prompts}: no prompts to steer")
    gen = dict(artifact.generation)
    options = {"max_new_tokens": int(max_new_tokens if max_new_tokens is not None else gen.get("max_new_tokens", 32)),
               "do_sample": bool(do_sample if do_sample is not None else gen.get("do_sample", False)),
               "chat": bool(chat if chat is not None else gen.get("chat", False)),
               "seed": int(seed if seed is not None else gen.get("seed", 0))}
    crit = artifact.criterion if criterion is None else criterion
    used = artifact.strength if strength is None else float(strength)
    out_rows = []
    for row in rows:
        cmp = steer_compare(model, row.text, edits, criterion=crit, compiler=compiler,
                            compiler_options=compiler_options, **options)
        out_rows.append({
            "kind": STEERING_GENERATION_KIND, "schema_version": _ROW_SCHEMA, "prompt_id": row.prompt_id,
            "prompt": row.text, "feature": artifact.feature, "site": artifact.site, "strength": float(used),
            "strength_source": "artifact" if strength is None else "override",
            "criterion": getattr(crit, "text", crit), **cmp.to_dict(), "generation": options,
            "artifact": {"path": None if artifact.path is None else str(artifact.path),
                         "validated": artifact.validated, "strength": artifact.strength},
            "model": model_check,
        })
    if out is not None:
        write_jsonl(out, out_rows)
    return out_rows

