"""The keyword compiler: a text shows the criterion when it mentions the criterion's keywords.

Keywords come from `Criterion.keywords`, the ``keywords`` option, or, when neither is given, from
the criterion text itself (`derive_keywords`: content words, stop-words and generic criterion
words such as "references" or "related" dropped, plural/-ing/-ed endings stripped, each matched as
a word prefix, case-insensitive). A keyword holding regex syntax (``\\d{4}``, ``colou?r``) is used
as a regex. Score = share of keywords found (in [0, 1]); label positive with at least
``min_matches`` keywords found, negative with none, uncertain in between. Provenance lists the
keywords and the ones matched. A cheap, transparent baseline.

Example:
    >>> derive_keywords("references to specific dates and publication information")
    ('date', 'publication', 'information')
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, register_compiler

__all__ = ["KeywordCompiler", "derive_keywords"]

_STOP_WORDS = """
a about above after again against all also an and any are as at be because been before being between both
but by can could did do does doing during each either etc few for from further had has have having how if in
into is it its itself just may might more most must no nor not of off on once only or other others over own
same should so some such than that the their them then there these they this those through to too under until
up very via was we were what when where which while who whom why will with within without would you your
references reference referring related relating relation relations terms term mentions mention mentioning
specific various different associated involving involve concept concepts text texts content contents
elements element things thing aspects aspect patterns pattern phrases phrase statements statement words word
context contexts type types kind kinds use used using usage something someone like
"""
_STOP = frozenset(_STOP_WORDS.split())
_REGEX_CHARS = set("\\[](){}|*+?^$")
_TOKEN = re.compile(r"[a-z0-9][a-z0-9+#'-]*")


def _stem(word: str) -> str:
    for suffix, keep in (("ies", 3), ("sses", 2), ("ings", 4), ("ing", 4), ("ed", 4), ("s", 3)):
        if word.endswith(suffix) and len(word) - len(suffix) >= keep and not word.endswith("ss"):
            return word[: -len(suffix)]
    return word


def derive_keywords(text: str, *, min_length: int = 3) -> tuple[str, ...]:
    """Keyword stems from a criterion's text: content words, deduplicated, in order.

    Args:
        text: the criterion text.
        min_length: shortest word kept.

    Returns:
        Stems (plain words, matched as case-insensitive word prefixes by `KeywordCompiler`).
    """
    out: list[str] = []
    for tok in _TOKEN.findall(text.casefold()):
        tok = tok.strip("'-")
        if len(tok) < min_length or tok in _STOP or tok.isdigit():
            continue
        stem = _stem(tok)
        if stem not in out:
            out.append(stem)
    return tuple(out)


def _pattern(keyword: str, regex: bool | None) -> re.Pattern[str]:
    is_regex = regex if regex is not None else any(c in _REGEX_CHARS for c in keyword)
    try:
        if is_regex:
            return re.compile(keyword, re.IGNORECASE)
        return re.compile(r"\b" + re.escape(keyword) + r"\w*", re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"keyword {keyword!r} is not a valid regular expression: {exc}") from None


@register_compiler
class KeywordCompiler(CriterionCompiler):
    """Scores texts by the share of keywords (or regexes) they contain.

    Args:
        keywords: keywords used when the criterion has none (None: derive from its text).
        regex: True treats every keyword as a regex, False as a plain word prefix, None decides
            per keyword (regex syntax present -> regex).
        min_matches: distinct keywords needed for a positive label (texts with some but fewer
            matches are uncertain).
    """

    name = "keyword"

    def __init__(self, keywords: Iterable[str] | str | None = None, *, regex: bool | None = None,
                 min_matches: int = 1) -> None:
        if isinstance(keywords, str):
            keywords = [k.strip() for k in keywords.split(",") if k.strip()]
        self.keywords = tuple(keywords) if keywords else None
        if min_matches < 1:
            raise ValueError(f"min_matches must be >= 1, got {min_matches}")
        self.regex = regex
        self.min_matches = min_matches

    def describe(self) -> dict[str, Any]:
        """Compiler name and options."""
        return {"compiler": self.name, "keywords": list(self.keywords or []), "regex": self.regex,
                "min_matches": self.min_matches}

    def keywords_for(self, criterion: Criterion | str) -> tuple[tuple[str, ...], str]:
        """The keywords used for ``criterion`` and where they came from (criterion/option/derived).

        Raises:
            ValueError: no keyword can be derived from the criterion text.
        """
        crit = as_criterion(criterion)
        if crit.keywords:
            return crit.keywords, "criterion"
        if self.keywords:
            return self.keywords, "option"
        derived = derive_keywords(crit.text)
        if not derived:
            raise ValueError(f"no keywords in criterion {crit.text!r}: pass keywords (--keywords a,b)")
        return derived, "derived"

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Share of keywords found in each text, with the matches in provenance."""
        crit = as_criterion(criterion)
        keywords, origin = self.keywords_for(crit)
        patterns = [_pattern(k, False if origin == "derived" else self.regex) for k in keywords]
        need = min(self.min_matches, len(keywords))
        base = {**self.describe(), "criterion": crit.text, "keywords": list(keywords), "keywords_from": origin}
        out = []
        for text in texts:
            matched = {k: [m.group(0) for m in p.finditer(text)][:5] for k, p in zip(keywords, patterns, strict=True)}
            matched = {k: v for k, v in matched.items() if v}
            n = len(matched)
            label = "positive" if n >= need else "negative" if n == 0 else "uncertain"
            out.append(ScoredExample(text=text, score=n / len(keywords), label=label,
                                     provenance={**base, "matched": matched}))
        return out
