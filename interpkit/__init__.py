"""interpkit: criterion-driven mechanistic interpretability, from Python, the CLI and notebooks.

The data takes one path: a criterion becomes scored examples, a model's activations stream into a
:class:`FeatureTable`, :func:`rank` orders features by association, specificity, causal evidence and
stability, and a :class:`Report` writes the result. Heavy dependencies (torch, transformer_lens,
nnsight, altair, anywidget) load only when a name that needs them is first used, so
``import interpkit`` is fast and never touches the network.

Example:
    >>> import interpkit
    >>> data = interpkit.make_toy_table(n_examples=120, n_features=8, seed=0)
    >>> result = interpkit.rank(data.table, interventions=data.interventions)
    >>> result.top(1)[0].feature_id == data.truth.carrier
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from interpkit._lazy import lazy_exports
from interpkit._version import __version__

# public name -> module that defines it; resolved on first attribute access (PEP 562).
_LAZY: dict[str, str] = {
    # records
    "ActivationRecord": "interpkit.records",
    "FeatureActivation": "interpkit.records",
    "FeatureDump": "interpkit.records",
    "InterventionRecord": "interpkit.records",
    "RecordError": "interpkit.records",
    # table
    "FeatureTable": "interpkit.table",
    # rank
    "RankingResult": "interpkit.rank",
    # sources
    "make_toy_table": "interpkit.sources",
    # models
    "load_model": "interpkit.models",
    # report / inspect
    "Report": "interpkit.report",
    "load_report": "interpkit.report",
    "compare_runs": "interpkit.report",
    "search_features": "interpkit.report",
    "inspect": "interpkit.inspect",
    "rank": "interpkit.rank",
    "doctor": "interpkit._doctor",
    # criterion / explain
    "Criterion": "interpkit.criterion",
    "compile_criterion": "interpkit.criterion",
    "score_prompts": "interpkit.criterion",
    "get_compiler": "interpkit.criterion",
    "FeatureExplanation": "interpkit.explain",
    "explain_feature": "interpkit.explain",
    "explain_features": "interpkit.explain",
    # match
    "compare": "interpkit.match",
    "FeatureFingerprint": "interpkit.match",
    "match_fingerprints": "interpkit.match",
    # bench
    "run_bench": "interpkit.runs._bench",
    "load_task": "interpkit.bench",
    # sae
    "train_sae": "interpkit.sae",
    "load_sae": "interpkit.sae",
    "save_sae": "interpkit.sae",
}

__all__ = [
    "ActivationRecord",
    "Criterion",
    "FeatureActivation",
    "FeatureDump",
    "FeatureExplanation",
    "FeatureFingerprint",
    "FeatureTable",
    "InterventionRecord",
    "RankingResult",
    "RecordError",
    "Report",
    "__version__",
    "compare",
    "compare_runs",
    "compile_criterion",
    "doctor",
    "explain_feature",
    "explain_features",
    "get_compiler",
    "inspect",
    "load_model",
    "load_report",
    "load_sae",
    "load_task",
    "make_toy_table",
    "match_fingerprints",
    "rank",
    "run_bench",
    "save_sae",
    "score_prompts",
    "search_features",
    "train_sae",
]

# `rank` and `inspect` are subpackages named after their main function; both modules are callable
# (interpkit._lazy.callable_package), and this package hands out the module itself: the object the
# import system binds here on any `import interpkit.rank...`, so the name is one object, callable
# and holding the subpackage's names, whichever import ran first.
__getattr__, __dir__ = lazy_exports(__name__, _LAZY, modules=frozenset({"inspect", "rank"}))


if TYPE_CHECKING:  # pragma: no cover
    from interpkit._doctor import doctor
    from interpkit.criterion import Criterion, compile_criterion, get_compiler, score_prompts
    from interpkit.explain import FeatureExplanation, explain_feature, explain_features
    from interpkit.inspect import inspect
    from interpkit.match import FeatureFingerprint, compare, match_fingerprints
    from interpkit.models import load_model
    from interpkit.rank import RankingResult
    from interpkit.records import (
        ActivationRecord,
        FeatureActivation,
        FeatureDump,
        InterventionRecord,
        RecordError,
    )
    from interpkit.report import Report, compare_runs, load_report, search_features
    from interpkit.sources import make_toy_table
    from interpkit.table import FeatureTable
