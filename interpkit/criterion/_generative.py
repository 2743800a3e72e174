"""The generative compiler: a chat model writes positive and negative examples (AxBench §6).

For a criterion the generator answers seed instructions twice over, as AxBench builds its
data: *positives* answer an instruction while weaving in the concept, *negatives* answer another
instruction while avoiding it (or, when the criterion has an explicit contrast, while weaving in
the contrast instead: role ``"contrast"``). Every generated text is then scored by a checker
compiler (the embedding compiler by default) and kept only when the checker agrees with its
role; AxBench does not filter, but its guidance for weak generators (§6.3) is to validate, and a
135M-parameter generator needs it. Generations are cached on disk, keyed by model and prompt.

`GenerativeCompiler.compile` returns the kept texts (split and balanced) with provenance:
generator, instruction, role, checker score and label. `GenerativeCompiler.score_texts` scores
any texts by prototype similarity: mean MiniLM cosine to the kept positives minus mean cosine to
the kept negatives, calibrated like the embedding compiler; this is what benchmarks measure.

The seed instructions (`SEED_INSTRUCTIONS`) were written for interpkit: short, genre-neutral
everyday requests in the style of the Alpaca-derived instruction pools AxBench samples from
(AxBench's own pools are not shipped).

Example:
    >>> from interpkit.criterion import get_compiler
    >>> gen = get_compiler("generative", chat="local", n_positive=2, n_negative=2)  # doctest: +SKIP
    >>> [(s.label, s.provenance["instruction"]) for s in gen.compile("the ocean")][:1]  # doctest: +SKIP
    [('positive', 'Describe your ideal weekend.')]
    >>> generation_messages("the ocean", "Describe a city park.", "positive")[0]["content"][:41]
    'Answer the instruction below. Your answer'
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, get_compiler, register_compiler
from ._calibrate import balance_classes, calibrate, stratified_splits

__all__ = ["SEED_INSTRUCTIONS", "GenerativeCompiler", "generation_messages"]

SEED_INSTRUCTIONS: tuple[str, ...] = (
    "Describe your ideal weekend.",
    "Write a short note to a friend you have not seen in a while.",
    "Explain how to plan a small trip.",
    "Give three tips for staying focused at work.",
    "Describe a city park in the morning.",
    "Write a short story opening about a journey.",
    "Explain why people enjoy hobbies.",
    "Summarise what makes a good teacher.",
    "Describe the view from a window.",
    "Write a product description for a backpack.",
    "Explain how to organise a busy schedule.",
    "Write a short speech for a school event.",
    "Describe an old building you remember.",
    "Give advice to someone starting a new job.",
    "Write a brief diary entry about a rainy day.",
    "Explain what makes a conversation interesting.",
)
"""Genre-neutral seed instructions (written for interpkit; see the module docstring)."""

_POSITIVE = (
    "Answer the instruction below. Your answer must be clearly about {concept}: mention it and things "
    "closely related to it in every sentence, even if the answer becomes less natural. "
    "Write plain text, at most four sentences.\n\nInstruction: {instruction}"
)
_NEGATIVE = (
    "Answer the instruction below naturally. Do not mention {concept} or anything related to it. "
    "Write plain text, at most four sentences.\n\nInstruction: {instruction}"
)
TEMPLATE_ID = "axbench-style-v1"


def generation_messages(concept: str, instruction: str, role: str) -> list[dict[str, str]]:
    """The chat messages asking for one ``role`` example (``"positive"``/``"contrast"`` weave the
    concept in, ``"negative"`` avoids it)."""
    template = _NEGATIVE if role == "negative" else _POSITIVE
    return [{"role": "user", "content": template.format(concept=concept.strip(), instruction=instruction)}]


def _clean(text: str) -> str:
    return text.strip().strip('"').strip()


@register_compiler
class GenerativeCompiler(CriterionCompiler):
    """Writes examples for a criterion with a chat model, keeps those a checker agrees with.

    Args:
        chat: chat model or spec for `interpkit.models.chat_model` (``"local"``: SmolLM2).
        checker: compiler (or its name) that validates generated texts; None keeps everything.
        n_positive: positive examples to generate.
        n_negative: negative (or contrast) examples to generate.
        instructions: seed instructions (default `SEED_INSTRUCTIONS`), used in turn.
        max_new_tokens: generation length.
        encoder: sentence encoder (or packaged name) for prototype scoring.
        cache: folder for cached generations; True = ``<interpkit cache>/generations``; None = off.
        lo: calibrated posterior at or below which `score_texts` labels negative.
        hi: calibrated posterior at or above which `score_texts` labels positive.
        seed: which instructions come first, and the split of `compile`.
    """

    name = "generative"

    def __init__(self, chat: Any = "local", checker: str | CriterionCompiler | None = "embedding", *,
                 n_positive: int = 8, n_negative: int = 8, instructions: Sequence[str] | None = None,
                 max_new_tokens: int = 96, encoder: Any = "minilm-l6", cache: str | Path | bool | None = True,
                 lo: float = 0.2, hi: float = 0.8, seed: int = 0) -> None:
        from interpkit.models._chat import chat_model

        if n_positive < 1 or n_negative < 1:
            raise ValueError(f"n_positive and n_negative must be >= 1, got {n_positive}, {n_negative}")
        self.chat = chat_model(chat)
        self.checker = get_compiler(checker) if isinstance(checker, str) else checker
        self.n_positive, self.n_negative = n_positive, n_negative
        self.instructions = tuple(instructions or SEED_INSTRUCTIONS)
        if not self.instructions:
            raise ValueError("instructions: need at least one seed instruction")
        self.max_new_tokens = max_new_tokens
        self._encoder = encoder
        self.cache = self._make_cache(cache)
        self.lo, self.hi, self.seed = lo, hi, seed
        self._examples: dict[str, list[ScoredExample]] = {}

    @staticmethod
    def _make_cache(cache: str | Path | bool | None) -> Any:
        from interpkit._http import JsonCache

        if cache is None or cache is False:
            return None
        if cache is True:
            from interpkit.models.zoo import cache_dir

            return JsonCache(cache_dir() / "generations")
        return JsonCache(cache)

    @property
    def encoder(self) -> Any:
        """The prototype encoder (loaded on first use when given by name)."""
        from interpkit.models._encoder import as_encoder

        self._encoder = as_encoder(self._encoder)
        return self._encoder

    def describe(self) -> dict[str, Any]:
        """Generator, checker, counts and template."""
        checker = None if self.checker is None else self.checker.describe()
        return {"compiler": self.name, "generator": self.chat.name, "checker": checker, "template": TEMPLATE_ID,
                "n_positive": self.n_positive, "n_negative": self.n_negative,
                "max_new_tokens": self.max_new_tokens}

    def _generate(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        key = json.dumps({"model": self.chat.name, "messages": messages, "max_tokens": self.max_new_tokens},
                         sort_keys=True)
        # a local model under edits (steering, ablation) writes other text than the cache holds
        edited = bool(getattr(getattr(self.chat, "_model", None), "active_edits", ()))
        if self.cache is not None and not edited:
            hit = self.cache.get(key)
            if isinstance(hit, str):
                return hit, True
        text = _clean(self.chat.complete(messages, max_tokens=self.max_new_tokens, temperature=0.0))
        if self.cache is not None and not edited:
            self.cache.put(key, text)
        return text, False

    def examples(self, criterion: Criterion | str) -> list[ScoredExample]:
        """Every generated text, kept or rejected, scored by the checker (memoised per criterion).

        Labels are the intended class (``"positive"``/``"negative"``); ``provenance["kept"]`` says
        whether the checker agreed and ``score`` is the checker's score.
        """
        crit = as_criterion(criterion)
        memo = json.dumps(crit.to_dict(), sort_keys=True)
        if memo in self._examples:
            return self._examples[memo]
        n = len(self.instructions)
        neg_role = "contrast" if crit.contrast is not None else "negative"
        plan = [("positive", self.instructions[(self.seed + i) % n]) for i in range(self.n_positive)]
        plan += [(neg_role, self.instructions[(self.seed + self.n_positive + i) % n])
                 for i in range(self.n_negative)]
        generated = []
        for role, instruction in plan:
            concept = crit.contrast if role == "contrast" else crit.text
            text, cached = self._generate(generation_messages(str(concept), instruction, role))
            generated.append((role, instruction, text, cached))
        texts = [g[2] for g in generated]
        checked = self.checker.score_texts(crit, texts) if self.checker is not None else [None] * len(texts)
        out = []
        for (role, instruction, text, cached), check in zip(generated, checked, strict=True):
            label = "positive" if role == "positive" else "negative"
            kept = bool(text) and (check is None or check.label == label)
            prov = {"compiler": self.name, "criterion": crit.text, "generator": self.chat.name,
                    "template": TEMPLATE_ID, "instruction": instruction, "role": role, "cached": cached,
                    "checker": None if self.checker is None else self.checker.name,
                    "checker_score": None if check is None else check.score,
                    "checker_label": None if check is None else check.label, "kept": kept}
            out.append(ScoredExample(text=text, score=None if check is None else check.score, label=label,
                                     provenance=prov))
        self._examples[memo] = out
        return out

    def prototypes(self, criterion: Criterion | str) -> tuple[list[str], list[str]]:
        """The kept positive and kept negative texts for ``criterion``."""
        kept = [s for s in self.examples(criterion) if s.provenance["kept"]]
        return [s.text for s in kept if s.label == "positive"], [s.text for s in kept if s.label == "negative"]

    def compile(self, criterion: Criterion | str, pool: Any = None, *, include_uncertain: bool = False,
                max_per_class: int | None = None, seed: int = 0, test_fraction: float = 0.25) -> list[ScoredExample]:
        """The kept generated texts, balanced and split (``prompt_id`` ``g0``, ``g1``... by generation order).

        ``pool`` is not used (this compiler writes its own texts; a warning says so);
        ``include_uncertain`` also returns the texts the checker rejected (label ``"uncertain"``).

        Raises:
            ValueError: no positive or no negative text survived the checker.
        """
        if pool is not None:
            warnings.warn("the generative compiler writes its own texts; the pool is ignored", stacklevel=2)
        crit = as_criterion(criterion)
        every = [dataclasses.replace(s, prompt_id=f"g{i}") for i, s in enumerate(self.examples(crit))]
        kept = [s for s in every if s.provenance["kept"]]
        n_pos = sum(s.label == "positive" for s in kept)
        if n_pos == 0 or n_pos == len(kept):
            raise ValueError(
                f"generative compiler: for {crit.text!r} the checker kept {n_pos} of {self.n_positive} positive "
                f"and {len(kept) - n_pos} of {self.n_negative} negative texts; a dataset needs both (generate "
                "more, use a stronger generator or another checker)")
        keep = balance_classes([s.label for s in kept], max_per_class=max_per_class, seed=seed)
        chosen = [kept[i] for i in keep]
        if include_uncertain:
            chosen += [dataclasses.replace(s, label="uncertain") for s in every if not s.provenance["kept"]]
            chosen.sort(key=lambda s: int(str(s.prompt_id)[1:]))
        splits = stratified_splits([s.label for s in chosen], test_fraction=test_fraction, seed=seed)
        return [dataclasses.replace(s, split=sp) for s, sp in zip(chosen, splits, strict=True)]

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Prototype scores: mean cosine to kept positives minus to kept negatives, calibrated.

        Texts score None (provenance says why) when the checker kept no positive or no negative.
        """
        crit = as_criterion(criterion)
        texts = [str(t) for t in texts]
        pos, neg = self.prototypes(crit)
        base = {"compiler": self.name, "criterion": crit.text, "generator": self.chat.name,
                "n_prototypes": {"positive": len(pos), "negative": len(neg)}}
        if not pos or not neg:
            why = f"no kept {'positive' if not pos else 'negative'} generated examples to compare with"
            return [ScoredExample(text=t, score=None, provenance={**base, "error": why}) for t in texts]
        if not texts:
            return []
        emb = np.asarray(self.encoder.encode(texts), dtype=np.float64)
        protos = np.asarray(self.encoder.encode(pos + neg), dtype=np.float64)
        sims = emb @ protos.T
        s_pos, s_neg = sims[:, : len(pos)].mean(axis=1), sims[:, len(pos):].mean(axis=1)
        raw = s_pos - s_neg
        cal = calibrate(raw, method="auto", lo=self.lo, hi=self.hi, center=0.0, scale=0.05)
        base["calibration_fit"] = {"method": cal.method, "params": cal.params, "n": len(texts)}
        base["band"] = list(cal.band)
        return [
            ScoredExample(text=t, score=float(p), label=lab, provenance={
                **base, "similarity_positive": round(float(a), 6), "similarity_negative": round(float(b), 6),
                "raw": round(float(r), 6)})
            for t, p, lab, a, b, r in zip(texts, cal.posteriors, cal.labels, s_pos, s_neg, raw, strict=True)
        ]
