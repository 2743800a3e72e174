"""Criteria, scored examples, the compiler interface and the compiler registry.

A `Criterion` is the user's natural-language description of what a feature should respond to
("text about dates and years"), with an optional contrast, target tokens (logit compiler) and
keywords (keyword compiler). A `CriterionCompiler` turns it into numbers: ``score_texts`` gives
each text a `ScoredExample` (score in [0, 1], a calibrated label, provenance saying how), and
``compile`` builds a balanced, split prompt dataset from a pool of texts (the packaged AxBench
pool by default). Compilers are looked up by name with `get_compiler`; `score_prompts` re-scores
an existing prompt dataset row for row, and `compile_criterion` is the one-call path.

Example:
    >>> from interpkit.criterion import get_compiler
    >>> kw = get_compiler("keyword")
    >>> [s.label for s in kw.score_texts("dates and years", ["The date: years ago", "a red apple"])]
    ['positive', 'negative']
"""

from __future__ import annotations

import dataclasses
import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from interpkit._registry import register

from ._calibrate import LABELS, balance_classes, stratified_splits

if TYPE_CHECKING:
    from interpkit.sources import PromptRow

__all__ = [
    "COMPILERS",
    "Criterion",
    "CriterionCompiler",
    "ScoredExample",
    "as_criterion",
    "compile_criterion",
    "get_compiler",
    "list_compilers",
    "register_compiler",
    "score_prompts",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Criterion:
    """What the user wants a feature to respond to, in words."""

    text: str
    """The natural-language criterion (non-empty)."""
    contrast: str | None = None
    """What it is NOT; None derives ``"text unrelated to <text>"`` (see `contrast_text`)."""
    target_tokens: tuple[str, ...] | None = None
    """Tokens the criterion is about (logit compiler)."""
    keywords: tuple[str, ...] | None = None
    """Keywords or regexes (keyword compiler); None derives them from ``text``."""

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError(f"criterion text must be a non-empty string, got {self.text!r}")
        if self.contrast is not None and (not isinstance(self.contrast, str) or not self.contrast.strip()):
            raise ValueError(f"criterion contrast must be a non-empty string or None, got {self.contrast!r}")
        for name in ("target_tokens", "keywords"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, str):
                value = (value,)
            value = tuple(value)
            if not value or any(not isinstance(v, str) or not v for v in value):
                raise ValueError(f"criterion {name} must be a non-empty list of non-empty strings, got {value!r}")
            object.__setattr__(self, name, value)

    @property
    def contrast_text(self) -> str:
        """The contrast, given or derived."""
        return self.contrast if self.contrast is not None else f"text unrelated to {self.text}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (unset optional fields left out)."""
        out: dict[str, Any] = {"text": self.text}
        if self.contrast is not None:
            out["contrast"] = self.contrast
        if self.target_tokens is not None:
            out["target_tokens"] = list(self.target_tokens)
        if self.keywords is not None:
            out["keywords"] = list(self.keywords)
        return out


def as_criterion(criterion: Criterion | str | Mapping[str, Any]) -> Criterion:
    """A `Criterion` from itself, its text, or its `Criterion.to_dict` form."""
    if isinstance(criterion, Criterion):
        return criterion
    if isinstance(criterion, str):
        return Criterion(text=criterion)
    if isinstance(criterion, Mapping):
        return Criterion(**dict(criterion))
    raise TypeError(f"expected a Criterion, a string or a mapping, got {type(criterion).__name__}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ScoredExample:
    """One text scored against a criterion."""

    text: str
    """The text."""
    score: float | None
    """Calibrated score in [0, 1]; None = could not score (provenance says why)."""
    label: str | None = None
    """``"positive"``, ``"negative"`` or ``"uncertain"`` (calibrated band), or the user's own label."""
    split: str | None = None
    """``"train"``, ``"test"`` or None."""
    prompt_id: str | int | None = None
    """The id of the row it came from, when known."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """How the score was made: ``compiler``, ``criterion`` and compiler details (JSON-ready)."""

    def __post_init__(self) -> None:
        if self.score is not None:
            s = float(self.score)
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"score must be in [0, 1] or None, got {self.score!r}")
            object.__setattr__(self, "score", s)
        if self.split not in (None, "train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {self.split!r}")

    def to_prompt_row(self, prompt_id: str | int | None = None) -> PromptRow:
        """A prompt-dataset row: ``criterion_score=score``, label and provenance in extras.

        Args:
            prompt_id: the row id; defaults to ``self.prompt_id``.

        Raises:
            ValueError: no id given and none recorded.
        """
        from interpkit.sources import PromptRow

        pid = self.prompt_id if prompt_id is None else prompt_id
        if pid is None:
            raise ValueError(f"scored example {self.text[:40]!r} has no prompt_id; pass one")
        extra = {"criterion_label": self.label, "criterion_provenance": dict(self.provenance)}
        return PromptRow(prompt_id=pid, text=self.text, criterion_score=self.score, split=self.split, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "text": self.text, "score": self.score, "label": self.label, "split": self.split,
            "prompt_id": self.prompt_id, "provenance": dict(self.provenance),
        }


class CriterionCompiler(ABC):
    """Turns a `Criterion` into scores for texts, and into a balanced, split prompt dataset.

    Subclasses set ``name`` and implement `score_texts`; `compile` has a default (score a pool,
    drop uncertain texts, balance classes, assign a stratified seeded split) that compilers which
    write their own texts override. Shared calibration helpers live in
    ``interpkit.criterion._calibrate`` (`calibrate`, `stratified_splits`, `balance_classes`).
    """

    name: ClassVar[str]

    @abstractmethod
    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """One `ScoredExample` per text, in order (score None where a text could not be scored)."""

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings for provenance and manifests (subclasses add their options)."""
        return {"compiler": self.name}

    def compile(
        self,
        criterion: Criterion | str,
        pool: Sequence[str] | Sequence[PromptRow] | None = None,
        *,
        include_uncertain: bool = False,
        max_per_class: int | None = None,
        seed: int = 0,
        test_fraction: float = 0.25,
    ) -> list[ScoredExample]:
        """A balanced, split dataset for ``criterion`` from ``pool``.

        Args:
            criterion: the criterion.
            pool: texts or prompt rows to choose from; None uses the packaged text pool
                (`interpkit.criterion.text_pool`).
            include_uncertain: keep texts in the uncertain band (capped at ``max_per_class``).
            max_per_class: cap on positives and on negatives.
            seed: subsampling and split seed.
            test_fraction: share of each class put in ``"test"``.

        Returns:
            Scored examples (ids from the pool rows, or their pool index), in pool order.

        Raises:
            ValueError: the pool is empty, or scoring left no positives or no negatives.
        """
        crit = as_criterion(criterion)
        rows = _pool_rows(pool)
        if not rows:
            raise ValueError("the pool to compile from is empty")
        scored = self.score_texts(crit, [r.text for r in rows])
        scored = [dataclasses.replace(s, prompt_id=r.prompt_id) for s, r in zip(scored, rows, strict=True)]
        allowed = ("positive", "negative", "uncertain") if include_uncertain else ("positive", "negative")
        usable = [s for s in scored if s.score is not None and s.label in allowed]
        counts = {lab: sum(s.label == lab for s in scored) for lab in (*LABELS, None)}
        if not any(s.label == "positive" for s in usable) or not any(s.label == "negative" for s in usable):
            raise ValueError(
                f"{self.name} compiler: criterion {crit.text!r} gave {counts['positive']} positive, "
                f"{counts['negative']} negative, {counts['uncertain']} uncertain and {counts[None]} unscored "
                f"texts out of {len(rows)}; a dataset needs both classes (try another pool, compiler or "
                "a clearer criterion)"
            )
        keep = balance_classes([s.label for s in usable], max_per_class=max_per_class, seed=seed)
        kept = [usable[i] for i in keep]
        splits = stratified_splits([s.label for s in kept], test_fraction=test_fraction, seed=seed)
        return [dataclasses.replace(s, split=sp) for s, sp in zip(kept, splits, strict=True)]


def _pool_rows(pool: Sequence[str] | Sequence[PromptRow] | None) -> list[PromptRow]:
    from interpkit.sources import as_prompt_rows

    if pool is None:
        from ._pool import text_pool

        return text_pool()
    return as_prompt_rows(pool)


COMPILERS: dict[str, type[CriterionCompiler]] = {}
"""Registered compiler classes by name (filled as their modules are imported)."""

_BUILTIN: dict[str, tuple[str, str]] = {
    "labelled": ("interpkit.criterion._labelled", "LabelledCompiler"),
    "keyword": ("interpkit.criterion._keyword", "KeywordCompiler"),
    "embedding": ("interpkit.criterion._embedding", "EmbeddingCompiler"),
    "logit": ("interpkit.criterion._logit", "LogitCompiler"),
    "judge": ("interpkit.criterion._judge", "LMJudgeCompiler"),
    "generative": ("interpkit.criterion._generative", "GenerativeCompiler"),
}
_ALIASES = {"labeled": "labelled", "keywords": "keyword", "embed": "embedding", "llm-judge": "judge"}

C = TypeVar("C", bound=type[CriterionCompiler])


def register_compiler(cls: C) -> C:
    """Class decorator: register a compiler under its ``name``.

    Raises:
        ValueError: another class already holds the name.
    """
    return register(COMPILERS, cls.name, cls, "criterion compiler")


def list_compilers() -> list[str]:
    """Every compiler name `get_compiler` accepts (built-in and registered)."""
    return sorted(set(_BUILTIN) | set(COMPILERS))


def get_compiler(name: str | CriterionCompiler, **options: Any) -> CriterionCompiler:
    """A compiler by name, built with ``options`` (a compiler instance passes through unchanged).

    Names: ``labelled``, ``keyword``, ``embedding``, ``logit``, ``judge``, ``generative`` (their
    modules load on first use) and any class registered with `register_compiler`.

    Raises:
        ValueError: unknown name, or the compiler's module is not available.
    """
    if isinstance(name, CriterionCompiler):
        if options:
            raise ValueError("options are only accepted together with a compiler name")
        return name
    key = _ALIASES.get(name, name)
    if key not in COMPILERS and key in _BUILTIN:
        module, attr = _BUILTIN[key]
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"criterion compiler {key!r} is not available ({module}.{attr}: {exc})") from exc
        COMPILERS.setdefault(key, cls)
    if key not in COMPILERS:
        raise ValueError(f"unknown criterion compiler {name!r}; known: {', '.join(list_compilers())}")
    return COMPILERS[key](**options)


def score_prompts(
    rows: Sequence[PromptRow],
    criterion: Criterion | str,
    compiler: str | CriterionCompiler = "embedding",
    *,
    progress: Callable[[int, int], None] | None = None,
) -> list[PromptRow]:
    """Re-score a prompt dataset: every row back, same order and ids, new ``criterion_score``.

    Rows keep their split, target tokens and extras; ``criterion_label`` and
    ``criterion_provenance`` are added to the extras (replacing earlier ones).

    Args:
        rows: the dataset.
        criterion: the criterion.
        compiler: a compiler or its name (default options).
        progress: optional ``callback(done, total)`` called once scoring finishes.

    Raises:
        ValueError: the compiler returned the wrong number of results.
    """
    comp = get_compiler(compiler)
    rows = list(rows)
    scored = comp.score_texts(as_criterion(criterion), [r.text for r in rows])
    if len(scored) != len(rows):
        raise ValueError(f"{comp.name} compiler returned {len(scored)} results for {len(rows)} rows")
    out = []
    for row, s in zip(rows, scored, strict=True):
        extra = dict(row.extra)
        extra["criterion_label"] = s.label
        extra["criterion_provenance"] = dict(s.provenance)
        out.append(dataclasses.replace(row, criterion_score=s.score, extra=extra))
    if progress is not None:
        progress(len(out), len(out))
    return out


def compile_criterion(
    criterion: Criterion | str,
    compiler: str | CriterionCompiler = "embedding",
    pool: Sequence[str] | Sequence[PromptRow] | None = None,
    *,
    include_uncertain: bool = False,
    max_per_class: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
    **options: Any,
) -> list[PromptRow]:
    """Compile a criterion into a prompt dataset (rows with score, split, label and provenance).

    Args:
        criterion: the criterion.
        compiler: a compiler or its name; ``options`` build it (e.g. ``keywords=...``).
        pool: texts or rows to choose from (None: the packaged text pool).
        include_uncertain: see `CriterionCompiler.compile`.
        max_per_class: see `CriterionCompiler.compile`.
        seed: see `CriterionCompiler.compile`.
        test_fraction: see `CriterionCompiler.compile`.
        **options: compiler constructor options.

    Returns:
        Prompt rows; ids come from the pool (or ``c0``, ``c1``... for generated texts).
    """
    comp = get_compiler(compiler, **options)
    scored = comp.compile(
        criterion, pool, include_uncertain=include_uncertain, max_per_class=max_per_class, seed=seed,
        test_fraction=test_fraction,
    )
    out: list[PromptRow] = []
    seen: set[str | int] = set()
    for i, s in enumerate(scored):
        pid = s.prompt_id if s.prompt_id is not None and s.prompt_id not in seen else f"c{i}"
        seen.add(pid)
        out.append(s.to_prompt_row(pid))
    return out
