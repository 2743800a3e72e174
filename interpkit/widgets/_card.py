"""`FeatureCard`: the report's HTML feature card as a live widget.

The markup is exactly what ``report.html`` shows for one feature (``interpkit.report.feature_card_html``):
label, ranking components, activation histogram, top and quantile examples with per-token
highlights, logit effects and causal evidence. The card is rendered into a shadow root, so the
report's stylesheet neither leaks into the notebook nor is overridden by it.

Example:
    >>> from interpkit.explain import FeatureExplanation
    >>> card = FeatureCard(FeatureExplanation(feature_id="f1", label="cats",
    ...                    top_examples=[{"example_id": "0", "text": "a cat", "activation": 1.5}]))
    >>> card.feature_id, 'class="card"' in card.html, "a cat" in card.html
    ('f1', True, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import traitlets

from interpkit.report import card_css, feature_card_html

from ._static import asset

__all__ = ["FeatureCard", "card_css", "card_html", "feature_entry"]


def feature_entry(
    table: Any,
    feature_id: str,
    *,
    ranking: Any = None,
    model: Any = None,
    interventions: Sequence[Any] = (),
    explanation: Any = None,
    n_top_examples: int = 10,
    seed: int = 0,
) -> Any:
    """The report's `~interpkit.report.FeatureEntry` for one feature of ``table``.

    Args:
        table: the `~interpkit.table.FeatureTable`.
        feature_id: the feature.
        ranking: a `~interpkit.rank.RankingResult` holding the feature (rank and components).
        model: the ``ModelWrapper`` the table came from (token highlights and logit effects).
        interventions: intervention records (the card's causal table).
        explanation: a precomputed `~interpkit.explain.FeatureExplanation` (or its dict); None
            runs `~interpkit.explain.explain_feature` (top examples, plus logit effects with a model).
        n_top_examples: ranking-table examples kept on the entry.
        seed: explanation seed.
    """
    from interpkit.explain import LogitEffects, TopExamples, explain_feature
    from interpkit.report import FeatureEntry

    fid = str(feature_id)
    table.feature_index(fid)  # an unknown feature fails here, before anything is explained
    if explanation is None:
        verbalizers = [TopExamples(), LogitEffects()] if model is not None else [TopExamples()]
        explanation = explain_feature(table, fid, model=model, verbalizers=verbalizers, seed=seed)
    return FeatureEntry.from_table(table, fid, ranking=ranking, interventions=interventions,
                                   explanation=explanation, n_top_examples=n_top_examples)


def _as_entry(source: Any) -> Any:
    from interpkit.explain import FeatureExplanation
    from interpkit.report import FeatureEntry

    if isinstance(source, FeatureEntry):
        return source
    if isinstance(source, FeatureExplanation):
        return FeatureEntry(rank=0, feature_id=source.feature_id, label=source.label, explanation=source.to_dict())
    if isinstance(source, Mapping):
        if "rank" in source and "components" in source:  # a report entry's dict
            return FeatureEntry.from_dict(source)
        expl = FeatureExplanation.from_dict(source, lenient=True).to_dict()
        return FeatureEntry(rank=0, feature_id=expl["feature_id"], label=expl.get("label"), explanation=expl)
    raise TypeError(f"FeatureCard needs a FeatureEntry, a FeatureExplanation or their dict, got {type(source).__name__}")


def card_html(source: Any) -> str:
    """The report card's markup for a `FeatureEntry`, a `FeatureExplanation` or either's dict."""
    return feature_card_html(_as_entry(source))


class FeatureCard(anywidget.AnyWidget):
    """One feature's card (see the module docstring).

    Args:
        source: a `~interpkit.report.FeatureEntry` (a report's ``features[i]``), a
            `~interpkit.explain.FeatureExplanation`, or either's dict.
    """

    _esm = asset("feature_card.js")
    _css = asset("feature_card.css")

    feature_id = traitlets.Unicode("").tag(sync=True)
    """The feature shown."""
    html = traitlets.Unicode("").tag(sync=True)
    """The card's markup (from ``interpkit.report.feature_card_html``)."""
    card_css = traitlets.Unicode("").tag(sync=True)
    """The report stylesheet, applied inside the card's shadow root."""

    def __init__(self, source: Any = None, **kwargs: Any) -> None:
        super().__init__(card_css=card_css(), **kwargs)
        if source is not None:
            self.show(source)

    def show(self, source: Any) -> None:
        """Replace the card's content with another feature's."""
        entry = _as_entry(source)
        self.html = card_html(entry)
        self.feature_id = str(entry.feature_id)

    @classmethod
    def from_table(cls, table: Any, feature_id: str, **kwargs: Any) -> FeatureCard:
        """Explain ``feature_id`` of ``table`` and show it (keywords as for `feature_entry`)."""
        return cls(feature_entry(table, feature_id, **kwargs))

    @classmethod
    def from_report(cls, report: Any, feature_id: str) -> FeatureCard:
        """The card of one of a `~interpkit.report.Report`'s features.

        Raises:
            KeyError: the report does not show that feature.
        """
        for entry in report.features:
            if str(entry.feature_id) == str(feature_id):
                return cls(entry)
        raise KeyError(f"feature {feature_id!r} is not among the report's features")
