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

The package holds the pipeline's parts, each in one place:

- `inspect` (``_inspect``): the call itself;
- the six backends that build the table (``_backends``: `BACKENDS`, `InspectError`);
- `rank_criterion` (``_criterion``): criterion -> scores -> ranking, for a table or a model, the
  one path that ``inspect`` and the notebook's ``CriterionEditor`` share;
- `criterion_rows`, `model_table`, `neuronpedia_table` (``_model``): scored prompts and the tables
  built from them;
- `explain_entries`, `labeler_chat` (``_explain``): the report entries' explanations.

The module itself is callable and calls `inspect`: ``interpkit.inspect(...)`` works whether
``interpkit.inspect`` is this module or the function (see the end of this file).

Example:
    >>> import interpkit
    >>> report = interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=2)
    >>> report.synthetic, len(report.features)
    (True, 2)
"""

from __future__ import annotations

from interpkit._lazy import callable_package
from interpkit.inspect._backends import BACKENDS, TOY_MODEL_NAMES, Backend, InspectError
from interpkit.inspect._criterion import CriterionRanking, rank_criterion
from interpkit.inspect._explain import explain_entries, labeler_chat
from interpkit.inspect._inspect import inspect
from interpkit.inspect._model import (
    DEFAULT_COMPILER,
    CriterionRowsError,
    criterion_rows,
    default_site,
    model_table,
    neuronpedia_table,
)

__all__ = [
    "BACKENDS",
    "DEFAULT_COMPILER",
    "TOY_MODEL_NAMES",
    "Backend",
    "CriterionRanking",
    "CriterionRowsError",
    "InspectError",
    "criterion_rows",
    "default_site",
    "explain_entries",
    "inspect",
    "labeler_chat",
    "model_table",
    "neuronpedia_table",
    "rank_criterion",
]


# `interpkit.inspect(...)` calls `inspect` whether `interpkit.inspect` is reached as this module or not
callable_package(__name__, inspect)
