"""`CriterionEditor`: edit a criterion and watch the ranked feature table follow.

Every edit of the criterion text, its compiler or its pinned positive / negative examples
re-scores the examples and re-ranks the features through `interpkit.inspect.rank_criterion` (the
path ``interpkit inspect`` ranks by), after a short pause (``debounce`` seconds; ``busy`` is true
while it runs; an ``apply`` message from the front end, or `CriterionEditor.apply`, runs at once).
Two sources of features:

- a precomputed `~interpkit.table.FeatureTable`: its example texts are scored by the compiler
  (``score_texts``) and `~interpkit.rank.rank` runs on the table (fast: no model);
- a ``ModelWrapper``: the criterion is compiled into prompt rows from ``dataset`` (a JSONL path,
  a list of texts or rows, or the packaged text pool), and `interpkit.inspect.model_table`
  streams them through the model (neurons at ``site`` plus the train-split DiffMean direction), as
  ``interpkit inspect`` does.

Pinned examples override the compiler: a table example whose text is pinned positive scores 1, a
pinned negative 0; with a model, pinned texts are added to the prompts with those scores. Clicking
a ranked feature sets ``selected`` and shows its `FeatureCard` (``editor.card``).

Example:
    >>> from interpkit.sources import make_toy_table
    >>> data = make_toy_table(n_examples=60, n_features=6, seed=0)
    >>> editor = CriterionEditor(data.table, criterion="example 1", compiler="keyword",
    ...                          n_permutations=50, debounce=0)
    >>> editor.rows[0]["rank"], editor.busy
    (1, False)
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import numpy as np
import traitlets

from ._card import FeatureCard, card_css, feature_entry
from ._debounce import Debouncer
from ._static import asset

__all__ = ["CriterionEditor", "ranking_rows"]

_EDIT_TRAITS = ["criterion", "compiler", "positive_examples", "negative_examples"]


def ranking_rows(result: Any, k: int | None = None) -> list[dict[str, Any]]:
    """The ranked table the editor shows: one flat JSON-ready dict per feature, best first."""
    out = []
    for r in result.rows if k is None else result.top(k):
        d = r.to_dict()
        assoc, causal = d["association"], d["causal"]
        out.append({
            "rank": d["rank"], "feature_id": d["feature_id"], "label": d["label"], "tier": d["tier"],
            "tier_rank": d["tier_rank"], "score": d["score"], "combined": d["combined"],
            "auroc": assoc["auroc_test"], "effect_sign": assoc["effect_sign"], "q_value": assoc["q_value"],
            "significant": assoc["significant"], "specificity": d["specificity"], "stability": d["stability"],
            "causal_status": causal["status"], "causal_value": causal["value"],
        })
    return out


class CriterionEditor(anywidget.AnyWidget):
    """Criterion text, compiler and pinned examples in; a live ranked feature table out.

    Args:
        source: a `~interpkit.table.FeatureTable` or a ``ModelWrapper``.
        criterion: the initial criterion text (ranked at once when non-empty).
        compiler: criterion compiler name (`~interpkit.criterion.list_compilers`).
        compiler_options: options for ``get_compiler`` (e.g. ``{"keywords": [...]}``).
        dataset: model mode only: a prompt-dataset JSONL path, a list of texts or prompt rows, or
            None for the packaged text pool.
        interventions: intervention records for the causal component (table mode).
        site, pooling, directions, batch_size, max_length, max_per_class: model mode, as for
            ``interpkit inspect``.
        top_k: rows published to the front end.
        n_permutations: permutations of the held-out null (``null="auto"`` switches to the
            asymptotic null when there are too many features for them, as ``inspect`` does).
        n_bootstrap: bootstrap resamples for stability.
        seed: seed for splits, sampling and the ranking.
        debounce: seconds of quiet after an edit before re-ranking (0: re-rank inside the edit).
    """

    _esm = asset("criterion_editor.js")
    _css = asset("criterion_editor.css")

    criterion = traitlets.Unicode("").tag(sync=True)
    """The criterion text being edited."""
    compiler = traitlets.Unicode("embedding").tag(sync=True)
    """Compiler name."""
    compilers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Names the compiler menu offers."""
    positive_examples = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Texts pinned as showing the criterion (score 1)."""
    negative_examples = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Texts pinned as not showing it (score 0)."""
    auto_apply = traitlets.Bool(True).tag(sync=True)
    """Re-rank after every edit (else only on ``apply``)."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while scoring and ranking run."""
    error = traitlets.Unicode("").tag(sync=True)
    """The last run's error ("" when it succeeded)."""
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    """The top ``top_k`` ranked features (see `ranking_rows`)."""
    ranked_criterion = traitlets.Unicode("").tag(sync=True)
    """The criterion ``rows`` were ranked for."""
    info = traitlets.Dict().tag(sync=True)
    """Last run: example counts, compiler settings, seconds, warnings."""
    version = traitlets.Int(0).tag(sync=True)
    """Incremented after every finished run."""
    top_k = traitlets.Int(30).tag(sync=True)
    """Rows published."""
    selected = traitlets.Unicode(None, allow_none=True).tag(sync=True)
    """The feature whose card is shown."""
    card_html = traitlets.Unicode("").tag(sync=True)
    """The selected feature's card markup."""
    card_css = traitlets.Unicode("").tag(sync=True)
    """The card stylesheet (applied in a shadow root)."""

    def __init__(
        self,
        source: Any,
        criterion: str = "",
        *,
        compiler: str = "embedding",
        compiler_options: Mapping[str, Any] | None = None,
        positive_examples: Sequence[str] = (),
        negative_examples: Sequence[str] = (),
        dataset: Any = None,
        interventions: Sequence[Any] | None = None,
        site: str | None = None,
        pooling: str = "max",
        directions: bool = True,
        batch_size: int = 8,
        max_length: int | None = 64,
        max_per_class: int | None = 48,
        top_k: int = 30,
        n_permutations: int = 200,
        n_bootstrap: int = 20,
        seed: int = 0,
        debounce: float = 0.6,
        **kwargs: Any,
    ) -> None:
        from interpkit.criterion import list_compilers
        from interpkit.table import FeatureTable

        self.table: Any = source if isinstance(source, FeatureTable) else None
        self.model: Any = None if self.table is not None else source
        if self.model is not None and not hasattr(self.model, "resolve_site"):
            raise TypeError(f"CriterionEditor needs a FeatureTable or a ModelWrapper, got {type(source).__name__}")
        self.compiler_options = dict(compiler_options or {})
        self.dataset = dataset
        self.interventions = list(interventions or [])
        self.settings = {"site": site, "pooling": pooling, "directions": directions, "batch_size": batch_size,
                         "max_length": max_length, "max_per_class": max_per_class,
                         "n_permutations": n_permutations, "n_bootstrap": n_bootstrap, "seed": seed}
        self.result: Any = None
        """The last `~interpkit.rank.RankingResult`."""
        self.card = FeatureCard()
        """The selected feature's card as a widget of its own."""
        self._debouncer = Debouncer(self._run, debounce)
        self._ready = False
        super().__init__(criterion=criterion, compiler=compiler, compilers=list_compilers(),
                         positive_examples=list(positive_examples), negative_examples=list(negative_examples),
                         top_k=top_k, card_css=card_css(), **kwargs)
        self.on_msg(self._on_front_msg)
        self._ready = True
        if criterion.strip():
            self.apply()

    # ---- front-end events ------------------------------------------------------------------

    @traitlets.observe(*_EDIT_TRAITS)
    def _on_edit(self, change: Mapping[str, Any]) -> None:
        if self._ready and self.auto_apply and self.criterion.strip():
            self._debouncer()

    def _on_front_msg(self, _widget: Any, content: Any, _buffers: Sequence[Any] = ()) -> None:
        if not isinstance(content, Mapping):
            return
        kind = content.get("type")
        if kind == "apply":
            self.apply()
        elif kind == "select" and content.get("feature_id") is not None:
            self.select(str(content["feature_id"]))

    # ---- actions -------------------------------------------------------------------------------

    def apply(self) -> None:
        """Re-score and re-rank now (a pending debounced run is dropped)."""
        self._debouncer.run_now()

    def wait(self, timeout: float = 60.0) -> None:
        """Block until a pending debounced run has fired and finished."""
        end = time.monotonic() + timeout
        while (self._debouncer.pending or self.busy) and time.monotonic() < end:
            time.sleep(0.02)

    def select(self, feature_id: str) -> None:
        """Show ``feature_id``'s card (explained from the current table).

        Raises:
            KeyError: the feature is not in the current ranking.
        """
        if self.result is None:
            raise KeyError("nothing is ranked yet")
        self.result.row(feature_id)
        entry = feature_entry(self._table, feature_id, ranking=self.result, model=self.model,
                              interventions=self.interventions, seed=self.settings["seed"])
        self.card.show(entry)
        self.selected = str(feature_id)
        self.card_html = self.card.html

    def chart(self, k: int = 20) -> Any:
        """`interpkit.viz.ranking_bars` of the current ranking."""
        from interpkit.viz import ranking_bars

        return ranking_bars(self.result, k=k)

    # ---- the run -------------------------------------------------------------------------------

    def _pinned(self) -> dict[str, float]:
        pinned = {t: 0.0 for t in self.negative_examples if t.strip()}
        pinned.update({t: 1.0 for t in self.positive_examples if t.strip()})
        return pinned

    def _rank(self, text: str) -> Any:
        from interpkit.inspect import rank_criterion

        # intervention records are the table mode's causal evidence only (their feature ids name the
        # given table's features, not the model table's)
        interventions = self.interventions if self.table is not None else None
        return rank_criterion(self.table if self.table is not None else self.model, text,
                              compiler=self.compiler, compiler_options=self.compiler_options,
                              pinned=self._pinned(), dataset=self.dataset, interventions=interventions,
                              **self.settings)

    def _run(self) -> None:
        text = self.criterion.strip()
        if not text:
            return
        self.busy = True
        start = time.perf_counter()
        try:
            ranked = self._rank(text)
        except Exception as exc:  # shown in the widget; the kernel keeps running
            self.error = f"{type(exc).__name__}: {exc}"
            self.info = {"traceback": traceback.format_exc(limit=4)}
        else:
            self._table, self.result = ranked.table, ranked.result
            self.error = ""
            self.info = _json({**ranked.info, "seconds": round(time.perf_counter() - start, 3),
                               "warnings": list(ranked.result.warnings)})
            self.rows = ranking_rows(ranked.result, self.top_k)
            self.ranked_criterion = text
            if self.selected is not None and self.selected in ranked.result.features:
                self.select(self.selected)
        finally:
            self.version += 1
            self.busy = False


def _json(value: Any) -> Any:
    """A JSON-ready copy (numpy scalars unwrapped, non-finite floats to None, other objects as text)."""
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return str(value)
