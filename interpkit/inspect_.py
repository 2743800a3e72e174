"""``inspect``: rank the features that carry a criterion and write a report.

One call runs the data path of the architecture for one criterion: a FeatureSource builds a
:class:`~interpkit.table.FeatureTable` (from a model run over prompts scored for the criterion, an SAE,
activation records, feature dumps, Neuronpedia features, or the synthetic ``toy`` generator),
:func:`~interpkit.rank.rank` orders its features with held-out association, specificity, stability
and, where intervention records are given, causal evidence, ``interpkit.explain`` explains the top
features (top and quantile examples with token highlights, logit effects, a scored label), and a
:class:`~interpkit.report.Report` is built (and saved when ``out`` is given, with HTML cards when
``html_out`` is given).

With a model and a criterion alone (``inspect("smollm2-135m", "references to dates")``) the
``model`` backend scores the packaged text pool with a criterion compiler (``embedding`` by
default), runs the model over the confident positives and negatives, and ranks the neurons of the
middle block plus the DiffMean direction learned on the train split.

Example:
    >>> import interpkit
    >>> report = interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=2)
    >>> report.synthetic, len(report.features)
    (True, 2)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from interpkit._io import sha256_file

Backend = Literal["model", "toy", "records", "features", "saelens", "neuronpedia"]
BACKENDS: tuple[str, ...] = ("model", "toy", "records", "features", "saelens", "neuronpedia")
TOY_MODEL_NAMES = frozenset({"toy", "synthetic", "toy-model"})


class InspectError(ValueError):
    """inspect was called with inputs that cannot work together; the message says what to change."""


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


def _meta_value(row: Any, name: str) -> Any:
    """A feature-metadata cell as a plain Python value; None for a missing column, NaN or pandas NA."""
    import pandas as pd

    v = row.get(name)
    if v is None or (np.ndim(v) == 0 and pd.isna(v)):
        return None
    return v.item() if isinstance(v, np.generic) else v


def _top_examples(table: Any, j: int, n: int) -> tuple[dict[str, Any], ...]:
    col = np.asarray(table.column(j), dtype=np.float64)
    order = np.argsort(-col, kind="stable")[:n]
    ex = table.examples
    out = []
    for i in order:
        if col[i] <= 0 and out:
            break
        row = ex.iloc[int(i)]
        split = row.get("split") if "split" in ex.columns else None
        out.append(
            {
                "example_id": str(row["example_id"]),
                "text": str(row["text"]),
                "activation": float(col[i]),
                "criterion_score": None if np.isnan(row["criterion_score"]) else float(row["criterion_score"]),
                "split": None if split is None or (isinstance(split, float) and np.isnan(split)) else str(split),
            }
        )
    return tuple(out)


def _causal_summary(interventions: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for rec in interventions:
        groups[(str(rec.feature_id), rec.intervention)].append(rec)
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (fid, kind), recs in sorted(groups.items()):
        sides = [r.side_effect_score for r in recs if r.side_effect_score is not None]
        out[fid].append(
            {
                "intervention": kind,
                "n": len(recs),
                "mean_signed_effect": float(np.mean([r.signed_effect for r in recs])),
                "mean_side_effect": float(np.mean(sides)) if sides else None,
            }
        )
    return out


def _saelens_table(
    model: Any,
    release: str | None,
    sae_id: str | None,
    feature_indexes: Sequence[int] | None,
    dataset: str | Path | None,
    inputs: list[Any],
    *,
    model_backend: str | None,
    pooling: str,
    batch_size: int,
    max_length: int | None,
) -> tuple[Any, str]:
    """The ``saelens`` backend: load the SAE (local folder or hub), run the model, encode, pool."""
    from interpkit.sae import load_sae, resolve_saelens, sae_site, sae_table
    from interpkit.sources import read_prompt_dataset

    if release is None:
        raise InspectError("the saelens backend needs --saelens-release (a release, hub repo id or local folder)")
    if model is None:
        raise InspectError("the saelens backend needs --model: the model the SAE reads")
    dpath = _check_file(dataset, "--dataset")
    folder = resolve_saelens(release, sae_id)
    sae = load_sae(folder)
    rows = read_prompt_dataset(dpath)
    if not rows:
        raise InspectError(f"--dataset: {dpath} holds no prompts")
    inputs.append(_input("dataset", dpath, len(rows)))
    weights = next((p for p in sorted(Path(folder).glob("*.safetensors"))), None)
    if weights is not None:
        inputs.append(_input("sae", weights, None))
    if feature_indexes is not None:
        bad = [i for i in feature_indexes if not 0 <= int(i) < sae.d_sae]
        if bad:
            raise InspectError(f"--saelens-feature-indexes: {bad} out of range for an SAE with {sae.d_sae} latents")
    if isinstance(model, str):
        from interpkit.models import load_model

        wrapper = load_model(model, model_backend)
    else:
        wrapper = model
    site = sae_site(sae, wrapper)
    table = sae_table(sae, wrapper, rows, site=site, pooling=pooling, batch_size=batch_size, max_length=max_length)
    if feature_indexes is not None:
        table = table.select_features(np.asarray(sorted({int(i) for i in feature_indexes}), dtype=np.int64))
    return table, str(getattr(wrapper, "name", model))


def _model_table(
    model: Any,
    criterion: str,
    dataset: str | Path | None,
    inputs: list[Any],
    settings: dict[str, Any],
    *,
    model_backend: str | None,
    compiler: str | None,
    compiler_options: dict[str, Any] | None,
    site: str | None,
    pooling: str,
    directions: bool,
    max_per_class: int | None,
    batch_size: int,
    max_length: int | None,
    seed: int,
) -> tuple[Any, str, Any]:
    """The ``model`` backend: score prompts for the criterion, run the model, table its neurons."""
    from interpkit._inspect_model import CriterionRowsError, criterion_rows, model_table

    if dataset is not None:
        dpath = _check_file(dataset, "--dataset")
    try:
        rows, prov = criterion_rows(
            criterion, dataset=dataset, compiler=compiler, compiler_options=compiler_options,
            max_per_class=max_per_class, seed=seed)
    except CriterionRowsError as exc:
        raise InspectError(str(exc)) from None
    if dataset is not None:
        inputs.append(_input("dataset", dpath, len(rows)))
    settings["criterion_scores"] = prov
    if isinstance(model, str):
        from interpkit.models import load_model

        wrapper = load_model(model, model_backend)
    else:
        wrapper = model
    table, info = model_table(wrapper, rows, site=site, pooling=pooling, directions=directions,
                              batch_size=batch_size, max_length=max_length)
    settings["model_table"] = info
    return table, str(getattr(wrapper, "name", model)), wrapper


def inspect(
    model: Any,
    criterion: str,
    *,
    backend: Backend | None = None,
    records: str | Path | None = None,
    features: str | Path | None = None,
    interventions: str | Path | None = None,
    allow_intervention_criterion_mismatch: bool = False,
    top_k: int = 10,
    out: str | Path | None = None,
    seed: int = 0,
    n_permutations: int = 1000,
    n_bootstrap: int = 50,
    n_top_examples: int = 5,
    null: str = "auto",
    saelens_release: str | None = None,
    saelens_sae_id: str | None = None,
    saelens_feature_indexes: Sequence[int] | None = None,
    dataset: str | Path | None = None,
    model_backend: str | None = None,
    pooling: str = "max",
    batch_size: int = 8,
    max_length: int | None = 128,
    compiler: str | None = None,
    compiler_options: dict[str, Any] | None = None,
    site: str | None = None,
    directions: bool = True,
    max_per_class: int | None = 60,
    explain: bool = True,
    labeler: Any = "auto",
    self_explain: bool = False,
    neuronpedia: Sequence[str] = (),
    neuronpedia_files: Sequence[str | Path] = (),
    neuronpedia_offline: bool = False,
    html_out: str | Path | None = None,
) -> Any:
    """Rank features for ``criterion`` and build (and optionally save) a report.

    Args:
        model: the model the features belong to. With ``backend="records"`` it may be None (taken
            from the records). A real model name never gets the synthetic backend by default.
        criterion: the criterion text; intervention records are matched to it as normalised text.
        backend: ``"model"`` (run ``model`` over prompts scored for the criterion and rank its
            neurons at ``site`` plus a DiffMean direction), ``"records"`` (activation records JSONL),
            ``"features"`` (feature dumps JSONL, optionally with ``records`` for criterion scores),
            ``"saelens"`` (an SAE in SAELens layout, run on ``model`` over ``dataset``),
            ``"neuronpedia"`` (Neuronpedia features, their examples scored for the criterion) or
            ``"toy"`` (synthetic, planted ground truth). Default: ``records`` / ``features`` /
            ``saelens`` / ``neuronpedia`` when their input is given, ``toy`` only for the model name
            ``"toy"``, else ``model``.
        records: activation records JSONL.
        features: feature dumps JSONL.
        interventions: intervention records JSONL (causal evidence).
        allow_intervention_criterion_mismatch: use intervention rows whose criterion differs.
        top_k: features detailed in the report (the full ranking is always kept).
        out: folder for ``report.json`` and ``report.md``; nothing is written when None.
        seed: seed for splits, permutations and bootstrap.
        n_permutations: permutations for the association null.
        n_bootstrap: bootstrap resamples for stability.
        n_top_examples: examples listed per reported feature.
        null: the association null: ``"permutation"``, ``"asymptotic"`` (Spearman t), or
            ``"auto"``: permutation unless the table has so many features that even the smallest
            permutation p-value could not pass the FDR correction (``n_features / (1 +
            n_permutations) > 0.05``, e.g. an SAE's thousands of latents), then asymptotic (the
            report's warnings say which was used).
        saelens_release: ``saelens`` backend: a SAELens release name or hub repo id (downloaded for
            online users), or a local folder in SAELens layout.
        saelens_sae_id: ``saelens`` backend: the SAE inside the release (its subfolder).
        saelens_feature_indexes: ``saelens`` backend: latents to keep (default: all).
        dataset: ``saelens`` backend: prompt dataset JSONL (texts and criterion scores).
        model_backend: ``saelens`` backend: ``transformer_lens`` or ``nnsight`` for the model.
        pooling: ``saelens`` backend: pooling of each latent over a prompt's tokens.
        batch_size: ``saelens`` backend: prompts per forward pass.
        max_length: ``saelens`` backend: truncation length in tokens.
        compiler: criterion compiler that scores the prompts (``model``: default ``embedding``
            unless ``dataset`` already holds scores; ``neuronpedia``: scores the listed examples).
        compiler_options: keyword options for the compiler.
        site: ``model`` backend: the site whose neurons are ranked (default: the middle block's
            ``resid_post``).
        directions: ``model`` backend: also rank the DiffMean direction learned on the train split.
        max_per_class: ``model`` backend: at most this many positive and negative prompts.
        explain: explain the top features (``interpkit.explain``).
        labeler: chat model that writes labels: ``"local"`` (SmolLM2), ``"api"`` (an
            OpenAI-compatible endpoint from the environment), a ChatModel, or None for no labels;
            ``"auto"``: ``"local"`` for the ``model`` backend, no labels otherwise.
        self_explain: also ask the model to describe each feature's direction (Patchscope).
        neuronpedia: ``neuronpedia`` backend: feature refs (``model@source:index``, page or API URL).
        neuronpedia_files: exported Neuronpedia feature JSON files (offline use).
        neuronpedia_offline: never go online; read the cache and the files only.
        html_out: also write the report as one self-contained HTML page with feature cards.

    Returns:
        The :class:`~interpkit.report.Report` (with ``path`` set when saved).

    Raises:
        InspectError: inputs that do not fit the backend.
        interpkit.records.RecordError: a malformed input row (file, line and field named).
    """

    from interpkit.rank import rank
    from interpkit.records import iter_activation_records, read_feature_dumps, read_intervention_records
    from interpkit.report import FeatureEntry, Report

    if top_k < 1:
        raise InspectError(f"top_k must be at least 1, got {top_k}")
    if backend is None:
        if records is not None and features is None:
            backend = "records"
        elif features is not None:
            backend = "features"
        elif saelens_release is not None:
            backend = "saelens"
        elif neuronpedia or neuronpedia_files:
            backend = "neuronpedia"
        elif model in TOY_MODEL_NAMES:
            backend = "toy"
        elif model is not None:
            backend = "model"
        else:
            raise InspectError(
                "no backend chosen: pass --model NAME (backend 'model'), --records FILE (backend 'records'), "
                "--features FILE (backend 'features'), --neuronpedia REF, or use the synthetic backend "
                "explicitly with --backend toy"
            )
    if backend not in BACKENDS:
        raise InspectError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")

    inputs: list[Any] = []
    warnings: list[str] = []
    imported_causal: dict[str, dict[str, float]] = {}
    intervention_rows: list[Any] = []
    synthetic = False
    wrapper: Any = None
    precomputed: dict[str, dict[str, Any]] = {}
    extra_settings: dict[str, Any] = {}

    if backend == "toy":
        from interpkit.sources import make_toy_table

        toy = make_toy_table(seed=seed)
        table, intervention_rows, synthetic = toy.table, list(toy.interventions), True
        model = model or "toy"
        warnings.append("synthetic data: the toy backend generates a table with planted ground truth")
        criterion_for_records = toy.interventions[0].criterion if toy.interventions else criterion
    else:
        criterion_for_records = criterion
        if backend == "model":
            table, model, wrapper = _model_table(
                model, criterion, dataset, inputs, extra_settings, model_backend=model_backend,
                compiler=compiler, compiler_options=compiler_options, site=site, pooling=pooling,
                directions=directions, max_per_class=max_per_class, batch_size=batch_size,
                max_length=max_length, seed=seed)
        elif backend == "neuronpedia":
            from interpkit._inspect_model import CriterionRowsError, neuronpedia_table

            for f in neuronpedia_files:
                _check_file(f, "--neuronpedia-file")
            try:
                table, precomputed, np_warnings, np_model = neuronpedia_table(
                    neuronpedia, neuronpedia_files, criterion, compiler=compiler,
                    compiler_options=compiler_options, offline=neuronpedia_offline)
            except CriterionRowsError as exc:
                raise InspectError(str(exc)) from None
            warnings += np_warnings
            for f in neuronpedia_files:
                inputs.append(_input("neuronpedia", f, None))
            model = model or np_model
            extra_settings["neuronpedia"] = list(neuronpedia)
        elif backend == "saelens":
            table, model = _saelens_table(
                model, saelens_release, saelens_sae_id, saelens_feature_indexes, dataset, inputs,
                model_backend=model_backend, pooling=pooling, batch_size=batch_size, max_length=max_length)
        elif backend == "records":
            path = _check_file(records, "--records")
            from interpkit.table import FeatureTable

            rows = list(iter_activation_records(path))
            if not rows:
                raise InspectError(f"--records: {path} holds no records")
            table = FeatureTable.from_records(rows)
            inputs.append(_input("records", path, len(rows)))
            models = sorted({r.model for r in rows})
            if model is None:
                model = models[0] if len(models) == 1 else ",".join(models)
            elif model not in models:
                warnings.append(f"records were produced by {models}, inspected as model {model!r}")
            synthetic = bool(getattr(table, "synthetic", False))
        else:
            from interpkit.sources.dumps import table_from_feature_dumps

            fpath = _check_file(features, "--features")
            dumps = read_feature_dumps(fpath)
            inputs.append(_input("features", fpath, len(dumps)))
            score_map: dict[str, float] = {}
            if records is not None:
                rpath = _check_file(records, "--records")
                rrows = list(iter_activation_records(rpath))
                inputs.append(_input("records", rpath, len(rrows)))
                for r in rrows:
                    if r.criterion_score is not None:
                        score_map[str(r.prompt_id)] = float(r.criterion_score)
                        score_map[r.text] = float(r.criterion_score)
            table, dump_warnings, imported_causal = table_from_feature_dumps(dumps, scores=score_map)
            warnings += dump_warnings
            if model is None:
                model = ",".join(sorted({d.model for d in dumps if d.model})) or "unknown"
        if interventions is not None:
            ipath = _check_file(interventions, "--interventions")
            intervention_rows = read_intervention_records(ipath)
            inputs.append(_input("interventions", ipath, len(intervention_rows)))

    scores = np.asarray(table.examples["criterion_score"], dtype=np.float64)
    if np.isnan(scores).all():
        raise InspectError(
            "no example has a criterion_score: score the prompts first (records need a numeric "
            "`criterion_score` per row)"
        )

    if null == "auto":
        null = "permutation"
        if table.features.shape[0] / (1 + n_permutations) > 0.05:
            null = "asymptotic"
            warnings.append(
                f"{table.features.shape[0]} features: {n_permutations} permutations cannot give a p-value small "
                "enough to survive the FDR correction, so the association uses the asymptotic Spearman null")
    elif null not in ("permutation", "asymptotic"):
        raise InspectError(f"null must be 'auto', 'permutation' or 'asymptotic', got {null!r}")
    result = rank(
        table,
        null=null,
        interventions=intervention_rows or None,
        criterion=criterion_for_records,
        seed=seed,
        n_permutations=n_permutations,
        n_bootstrap=n_bootstrap,
        allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch,
    )
    warnings += list(getattr(result, "warnings", ()))

    from interpkit.records import filter_interventions

    kept, _ = filter_interventions(
        intervention_rows, criterion_for_records, allow_mismatch=allow_intervention_criterion_mismatch
    )
    causal_by_feature = _causal_summary(kept)
    feats = table.features
    entries = []
    for pos, row in enumerate(result.top(top_k), start=1):
        fid = str(row.feature_id)
        j = table.feature_index(fid)
        meta = feats.iloc[j]
        entries.append(
            FeatureEntry(
                rank=pos,
                feature_id=fid,
                label=_meta_value(meta, "label"),
                model=_meta_value(meta, "model"),
                site=_meta_value(meta, "site"),
                layer=_meta_value(meta, "layer"),
                source=_meta_value(meta, "source"),
                components=result.component(fid),
                top_examples=_top_examples(table, j, n_top_examples),
                causal_records=tuple(causal_by_feature.get(fid, ())),
                imported_causal_effects=imported_causal.get(fid, {}),
            )
        )

    if explain and entries:
        from interpkit._inspect_model import explain_entries, labeler_chat

        if labeler == "auto":
            labeler = "local" if backend == "model" else None
        chat = labeler_chat(labeler, wrapper)
        entries, explain_warnings = explain_entries(
            table, entries, wrapper=wrapper, chat=chat, self_explain=self_explain, seed=seed,
            precomputed=precomputed)
        warnings += explain_warnings
        extra_settings["labeler"] = None if chat is None else str(getattr(chat, "name", labeler))

    report = Report(
        model=str(model),
        criterion=criterion,
        backend=backend,
        synthetic=synthetic,
        ranking=result,
        features=tuple(entries),
        inputs=tuple(inputs),
        settings={
            "top_k": top_k,
            "seed": seed,
            "n_permutations": n_permutations,
            "n_bootstrap": n_bootstrap,
            "null": null,
            "allow_intervention_criterion_mismatch": allow_intervention_criterion_mismatch,
            "n_examples": int(table.examples.shape[0]),
            "n_features": int(table.features.shape[0]),
            **extra_settings,
        },
        warnings=tuple(warnings),
    )
    if out is not None:
        report = report.save(out)
        if backend in ("model", "saelens", "neuronpedia"):
            # the table behind the report: fingerprints for `interpkit match` read their activation
            # signatures from <out>/table (the examples are the shared probe set)
            table.save(Path(out) / "table")
    if html_out is not None:
        report.save_html(html_out)
    return report
