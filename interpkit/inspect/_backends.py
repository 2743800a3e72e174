"""The six backends of ``inspect``: each builds the FeatureTable to rank, and says where it came from.

A backend is a function of ``inspect``'s arguments (one namespace, ``req``: each backend reads the
few it needs) returning a `BuiltTable`. `BUILDERS` maps the backend names to them; `choose_backend`
picks one from the inputs given when the caller names none; `build_table` runs it and reads the
intervention records every backend but ``toy`` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import numpy as np

from interpkit._io import sha256_file

Backend = Literal["model", "toy", "records", "features", "saelens", "neuronpedia"]
BACKENDS: tuple[str, ...] = ("model", "toy", "records", "features", "saelens", "neuronpedia")
TOY_MODEL_NAMES = frozenset({"toy", "synthetic", "toy-model"})


class InspectError(ValueError):
    """inspect was called with inputs that cannot work together; the message says what to change."""


@dataclass
class BuiltTable:
    """A backend's table and what the report says about where it came from."""

    table: Any
    model: Any
    """The model name the report shows."""
    wrapper: Any = None
    """The loaded model, when the backend ran one (explanations read its logits)."""
    synthetic: bool = False
    criterion: str | None = None
    """The criterion intervention records are matched to; None: the inspected one."""
    interventions: list[Any] = field(default_factory=list)
    precomputed: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Explanations the source already holds (Neuronpedia's), by feature id."""
    imported_causal: dict[str, dict[str, float]] = field(default_factory=dict)
    """Causal effects copied from feature dumps, by feature id (reported, never ranked)."""
    inputs: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    """Backend settings the report records (``criterion_scores``, ``model_table``, ``neuronpedia``)."""


def _input(role: str, path: str | Path, rows: int | None) -> Any:
    from interpkit.report import InputFile

    return InputFile(role=role, path=str(path), sha256=sha256_file(path), rows=rows)


def _check_file(path: str | Path | None, flag: str) -> Path:
    if path is None:
        raise InspectError(f"this backend needs {flag} FILE")
    p = Path(path)
    if not p.is_file():
        raise InspectError(f"{flag}: no such file: {p}")
    return p


def _wrapper(model: Any, model_backend: str | None) -> Any:
    """``model`` loaded when it is a name; a wrapper as it is."""
    if not isinstance(model, str):
        return model
    from interpkit.models import load_model

    return load_model(model, model_backend)


def choose_backend(req: SimpleNamespace) -> str:
    """``req.backend``, or the backend the given inputs call for (the synthetic one only when named)."""
    backend = req.backend
    if backend is None:
        if req.records is not None and req.features is None:
            backend = "records"
        elif req.features is not None:
            backend = "features"
        elif req.saelens_release is not None:
            backend = "saelens"
        elif req.neuronpedia or req.neuronpedia_files:
            backend = "neuronpedia"
        elif req.model in TOY_MODEL_NAMES:
            backend = "toy"
        elif req.model is not None:
            backend = "model"
        else:
            raise InspectError(
                "no backend chosen: pass --model NAME (backend 'model'), --records FILE (backend 'records'), "
                "--features FILE (backend 'features'), --neuronpedia REF, or use the synthetic backend "
                "explicitly with --backend toy"
            )
    if backend not in BACKENDS:
        raise InspectError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def toy_table(req: SimpleNamespace) -> BuiltTable:
    """``toy``: the synthetic table with planted ground truth and its own intervention records."""
    from interpkit.sources import make_toy_table

    toy = make_toy_table(seed=req.seed)
    return BuiltTable(
        table=toy.table, model=req.model or "toy", synthetic=True, interventions=list(toy.interventions),
        criterion=toy.interventions[0].criterion if toy.interventions else None,
        warnings=["synthetic data: the toy backend generates a table with planted ground truth"])


def model_backend_table(req: SimpleNamespace) -> BuiltTable:
    """``model``: score prompts for the criterion, run the model, table its neurons (+ DiffMean)."""
    from interpkit.inspect._model import CriterionRowsError, criterion_rows, model_table

    built = BuiltTable(table=None, model=req.model)
    if req.dataset is not None:
        dpath = _check_file(req.dataset, "--dataset")
    try:
        rows, prov = criterion_rows(
            req.criterion, dataset=req.dataset, compiler=req.compiler, compiler_options=req.compiler_options,
            max_per_class=req.max_per_class, seed=req.seed)
    except CriterionRowsError as exc:
        raise InspectError(str(exc)) from None
    if req.dataset is not None:
        built.inputs.append(_input("dataset", dpath, len(rows)))
    built.settings["criterion_scores"] = prov
    # loaded only once the prompts are scored: a criterion that cannot work fails before the model loads
    built.wrapper = _wrapper(req.model, req.model_backend)
    built.table, built.settings["model_table"] = model_table(
        built.wrapper, rows, site=req.site, pooling=req.pooling, directions=req.directions,
        batch_size=req.batch_size, max_length=req.max_length)
    built.model = str(getattr(built.wrapper, "name", req.model))
    return built


def neuronpedia_backend_table(req: SimpleNamespace) -> BuiltTable:
    """``neuronpedia``: Neuronpedia features over their listed examples, scored for the criterion."""
    from interpkit.inspect._model import CriterionRowsError, neuronpedia_table

    for f in req.neuronpedia_files:
        _check_file(f, "--neuronpedia-file")
    try:
        table, precomputed, warnings, np_model = neuronpedia_table(
            req.neuronpedia, req.neuronpedia_files, req.criterion, compiler=req.compiler,
            compiler_options=req.compiler_options, offline=req.neuronpedia_offline)
    except CriterionRowsError as exc:
        raise InspectError(str(exc)) from None
    return BuiltTable(
        table=table, model=req.model or np_model, precomputed=precomputed, warnings=list(warnings),
        inputs=[_input("neuronpedia", f, None) for f in req.neuronpedia_files],
        settings={"neuronpedia": list(req.neuronpedia)})


def saelens_table(req: SimpleNamespace) -> BuiltTable:
    """``saelens``: load the SAE (local folder or hub), run the model, encode, pool."""
    from interpkit.sae import load_sae, resolve_saelens, sae_site, sae_table
    from interpkit.sources import read_prompt_dataset

    if req.saelens_release is None:
        raise InspectError("the saelens backend needs --saelens-release (a release, hub repo id or local folder)")
    if req.model is None:
        raise InspectError("the saelens backend needs --model: the model the SAE reads")
    dpath = _check_file(req.dataset, "--dataset")
    folder = resolve_saelens(req.saelens_release, req.saelens_sae_id)
    sae = load_sae(folder)
    rows = read_prompt_dataset(dpath)
    if not rows:
        raise InspectError(f"--dataset: {dpath} holds no prompts")
    built = BuiltTable(table=None, model=req.model, inputs=[_input("dataset", dpath, len(rows))])
    weights = next((p for p in sorted(Path(folder).glob("*.safetensors"))), None)
    if weights is not None:
        built.inputs.append(_input("sae", weights, None))
    indexes = req.saelens_feature_indexes
    if indexes is not None:
        bad = [i for i in indexes if not 0 <= int(i) < sae.d_sae]
        if bad:
            raise InspectError(f"--saelens-feature-indexes: {bad} out of range for an SAE with {sae.d_sae} latents")
    wrapper = _wrapper(req.model, req.model_backend)
    table = sae_table(sae, wrapper, rows, site=sae_site(sae, wrapper), pooling=req.pooling,
                      batch_size=req.batch_size, max_length=req.max_length)
    if indexes is not None:
        table = table.select_features(np.asarray(sorted({int(i) for i in indexes}), dtype=np.int64))
    built.table, built.model = table, str(getattr(wrapper, "name", req.model))
    return built


def records_table(req: SimpleNamespace) -> BuiltTable:
    """``records``: a table from activation records JSONL."""
    from interpkit.records import iter_activation_records
    from interpkit.table import FeatureTable

    path = _check_file(req.records, "--records")
    rows = list(iter_activation_records(path))
    if not rows:
        raise InspectError(f"--records: {path} holds no records")
    table = FeatureTable.from_records(rows)
    built = BuiltTable(table=table, model=req.model, inputs=[_input("records", path, len(rows))],
                       synthetic=bool(getattr(table, "synthetic", False)))
    models = sorted({r.model for r in rows})
    if req.model is None:
        built.model = models[0] if len(models) == 1 else ",".join(models)
    elif req.model not in models:
        built.warnings.append(f"records were produced by {models}, inspected as model {req.model!r}")
    return built


def features_table(req: SimpleNamespace) -> BuiltTable:
    """``features``: a table from feature dumps JSONL, criterion scores from ``records`` when given.

    interp-lab's dumps (texts without activations; `sources.dumps.is_interp_lab_dumps`) are translated:
    with ``records``, the activations come from those records (interp-lab writes both for the same
    features); without, each feature's listed texts count as where it fires and the texts are scored
    for the criterion by ``req.compiler``. The report's warnings say what was translated.
    """
    from interpkit.records import iter_activation_records, read_feature_dumps
    from interpkit.sources.dumps import is_interp_lab_dumps, table_from_feature_dumps

    fpath = _check_file(req.features, "--features")
    dumps = read_feature_dumps(fpath)
    inputs = [_input("features", fpath, len(dumps))]
    rrows: list[Any] = []
    score_map: dict[str, float] = {}
    if req.records is not None:
        rpath = _check_file(req.records, "--records")
        rrows = list(iter_activation_records(rpath))
        inputs.append(_input("records", rpath, len(rrows)))
        for r in rrows:
            if r.criterion_score is not None:
                score_map[str(r.prompt_id)] = float(r.criterion_score)
                score_map[r.text] = float(r.criterion_score)
    model = req.model
    if model is None:
        model = ",".join(sorted({d.model for d in dumps if d.model})) or "unknown"
    if is_interp_lab_dumps(dumps):
        table, warnings, imported_causal = _interp_lab_features(req, fpath, dumps, rrows)
    else:
        table, warnings, imported_causal = table_from_feature_dumps(dumps, scores=score_map)
    return BuiltTable(table=table, model=model, imported_causal=imported_causal, inputs=inputs,
                      warnings=list(warnings))


def _interp_lab_features(req: SimpleNamespace, fpath: Path, dumps: list[Any],
                         rrows: list[Any]) -> tuple[Any, list[str], dict[str, dict[str, float]]]:
    """The table of interp-lab feature dumps (see `features_table`), its warnings and imported effects."""
    from interpkit.sources.dumps import interp_lab_dump_notes, listed_text_dumps, table_from_feature_dumps

    imported = {str(d.feature_id): dict(d.causal_effects) for d in dumps if d.causal_effects}
    if rrows:
        from interpkit.table import FeatureTable

        notes = interp_lab_dump_notes(fpath.name, dumps, activations_from=Path(req.records).name)
        table = FeatureTable.from_records(rrows)
        have = set(table.feature_ids)
        wanted = [str(d.feature_id) for d in dumps]
        missing = [f for f in wanted if f not in have]
        kept = [f for f in wanted if f in have]
        if not kept:
            raise InspectError(f"--features: none of the {len(wanted)} features of {fpath.name} appears in "
                               f"--records {req.records}; nothing to rank")
        if missing:
            notes.append(f"{fpath.name}: {len(missing)} feature(s) not in --records, left out: "
                         f"{', '.join(missing[:5])}")
        table = table.select_features(np.asarray([table.feature_index(f) for f in kept], dtype=np.int64))
        return table, notes, imported
    from interpkit.inspect._model import score_texts

    notes = interp_lab_dump_notes(fpath.name, dumps, activations_from=None)
    texts = list(dict.fromkeys(t for d in dumps for t in d.examples))
    if not texts:
        raise InspectError(f"--features: {fpath.name} (interp-lab layout) lists no example texts and no "
                           "--records were given; nothing to rank")
    scores, compiler_name = score_texts(req.criterion, texts, compiler=req.compiler,
                                        compiler_options=req.compiler_options)
    try:
        table, warnings, _ = table_from_feature_dumps(listed_text_dumps(dumps), scores=scores)
    except ValueError as exc:
        raise InspectError(f"--features: {fpath.name}: {exc}") from None
    notes.append(f"{fpath.name}: criterion scores of its {len(texts)} example texts come from the "
                 f"{compiler_name} compiler")
    return table, [*notes, *warnings], imported


BUILDERS: dict[str, Callable[[SimpleNamespace], BuiltTable]] = {
    "model": model_backend_table,
    "toy": toy_table,
    "records": records_table,
    "features": features_table,
    "saelens": saelens_table,
    "neuronpedia": neuronpedia_backend_table,
}


def build_table(backend: str, req: SimpleNamespace) -> BuiltTable:
    """Run ``backend``'s builder, then read ``req.interventions`` (the toy backend brings its own)."""
    from interpkit.records import read_intervention_records

    built = BUILDERS[backend](req)
    if backend != "toy" and req.interventions is not None:
        ipath = _check_file(req.interventions, "--interventions")
        built.interventions = read_intervention_records(ipath)
        built.inputs.append(_input("interventions", ipath, len(built.interventions)))
    return built
