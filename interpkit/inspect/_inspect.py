"""``inspect()``: one criterion through the whole data path, from a backend's table to a report."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from interpkit.inspect._backends import Backend, InspectError, build_table, choose_backend


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

    # every argument by name, read by the backend builders (each takes the few it needs); first
    # statement, so locals() holds the parameters and nothing else
    req = SimpleNamespace(**locals())

    from interpkit.inspect._criterion import rank_criterion
    from interpkit.records import filter_interventions
    from interpkit.report import FeatureEntry, Report

    if top_k < 1:
        raise InspectError(f"top_k must be at least 1, got {top_k}")
    backend = choose_backend(req)
    built = build_table(backend, req)
    table = built.table
    warnings = built.warnings
    criterion_for_records = criterion if built.criterion is None else built.criterion

    scores = np.asarray(table.examples["criterion_score"], dtype=np.float64)
    if np.isnan(scores).all():
        raise InspectError(
            "no example has a criterion_score: score the prompts first (records need a numeric "
            "`criterion_score` per row)"
        )
    if null not in ("auto", "permutation", "asymptotic"):
        raise InspectError(f"null must be 'auto', 'permutation' or 'asymptotic', got {null!r}")
    # the table's own scores (no compiler): the backend already scored its examples
    result = rank_criterion(
        table, criterion_for_records, interventions=built.interventions, null=null, seed=seed,
        n_permutations=n_permutations, n_bootstrap=n_bootstrap,
        allow_intervention_criterion_mismatch=allow_intervention_criterion_mismatch,
    ).result
    if null == "auto" and result.settings.null == "asymptotic":
        warnings.append(
            f"{table.features.shape[0]} features: {n_permutations} permutations cannot give a p-value small "
            "enough to survive the FDR correction, so the association uses the asymptotic Spearman null")
    warnings += list(getattr(result, "warnings", ()))

    kept, _ = filter_interventions(
        built.interventions, criterion_for_records, allow_mismatch=allow_intervention_criterion_mismatch
    )
    entries = [
        FeatureEntry.from_table(table, row.feature_id, ranking=result, interventions=kept,
                                imported_causal_effects=built.imported_causal.get(str(row.feature_id), {}),
                                n_top_examples=n_top_examples)
        for row in result.top(top_k)
    ]

    if explain and entries:
        from interpkit.inspect._explain import explain_entries, labeler_chat

        if labeler == "auto":
            labeler = "local" if backend == "model" else None
        chat = labeler_chat(labeler, built.wrapper)
        entries, explain_warnings = explain_entries(
            table, entries, wrapper=built.wrapper, chat=chat, self_explain=self_explain, seed=seed,
            precomputed=built.precomputed)
        warnings += explain_warnings
        built.settings["labeler"] = None if chat is None else str(getattr(chat, "name", labeler))

    report = Report(
        model=str(built.model),
        criterion=criterion,
        backend=backend,
        synthetic=built.synthetic,
        ranking=result,
        features=tuple(entries),
        inputs=tuple(built.inputs),
        settings={
            "top_k": top_k,
            "seed": seed,
            "n_permutations": n_permutations,
            "n_bootstrap": n_bootstrap,
            "null": result.settings.null,
            "allow_intervention_criterion_mismatch": allow_intervention_criterion_mismatch,
            "n_examples": int(table.examples.shape[0]),
            "n_features": int(table.features.shape[0]),
            **built.settings,
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
