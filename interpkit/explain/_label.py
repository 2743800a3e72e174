"""`AutoLabel`: a chat model names the feature from highlighted top examples; detection scores it.

The labeler sees the ``n_examples`` most activating examples with each example's strongest
tokens marked ``<<like this>>`` (tokens at >= ``mark_fraction`` of the largest token activation
among the shown examples) and answers with a short label, cleaned to one line of at most
``max_words`` words. A second, extractive candidate is always made: the words that most separate
the shown examples from the least active ones (document frequency among the top minus among the
bottom, stop-words dropped). The candidate whose embedding similarity best separates those same
selection examples wins (small local models often write labels that say nothing; the selection keeps
them from being reported when plain keywords do better), and every candidate is recorded with its
selection AUROC. The chosen label is then scored by detection on examples neither step saw:
the ``k`` most and ``k`` least active held-out examples (``k = min(n_heldout, n_held // 3)``,
positives must exceed negatives), and the AUROC of the sentence-encoder similarity
``sim(label, text)`` for telling them apart (0.5 = the label says nothing, 1 = it separates them).

Example:
    >>> clean_label('Label: "Dates and years."\\nBecause...')
    'Dates and years'
    >>> clean_label("that the text is about a dessert, specifically a bread, and that the dessert")
    'a dessert, specifically a bread'
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

import numpy as np

from ._base import FeatureContext, Verbalizer

__all__ = ["AutoLabel", "clean_label", "mark_tokens"]

SYSTEM_PROMPT = (
    "You label features of a language model. You see texts where one feature is active; the tokens "
    "where it is most active are marked <<like this>>. Reply with only a short label (at most 8 words) "
    "for what the feature detects. No explanation."
)
_PREFIXES = [re.compile(p, re.IGNORECASE) for p in (
    r"^(?:the\s+)?(?:feature\s+)?(?:label|answer|description)\s*[:\-]\s*",
    r"^(?:the|this)\s+feature\s+(?:that\s+)?(?:detects|fires\s+on|responds\s+to|is\s+about|is)\s*(?:that\s+)?",
    r"^(?:detects|that)\s+",
    r"^(?:the|these)\s+(?:texts?|sentences?)\s+(?:is|are)\s+(?:all\s+)?(?:about|related\s+to)\s+",
    r"^(?:they|it)\s+(?:is|are)\s+(?:all\s+)?(?:about\s+)?",
)]
_QUOTES = "\"'`“”‘’«»*"
_WORD = re.compile(r"[A-Za-z][A-Za-z'\-]{2,}")
_STOP_WORDS = """
the and for are but not you all any can had her was one our out day get has him his how man new now old
see two way who boy did its let put say she too use that with have this will your from they know want been
good much some time very when come here just like long make many more only over such take than them well
were what into also each other which their there then these those would about could should after first
being where while most both does doing done because through during before under again further once
upon within without around between among across toward towards onto shall may might must using used
"""
_STOP = frozenset(_STOP_WORDS.split())
_CUT = re.compile(r"(?:\.\s|\.$|;|\s+and\s+that\s+)")


def clean_label(raw: str, max_words: int = 8) -> str:
    """One short line from a chat answer: first non-empty line, boilerplate openings dropped
    (``Label:``, ``The feature detects that the text is about``), cut at the first sentence end,
    no quotes or trailing punctuation, at most ``max_words`` words ("" when nothing is left)."""
    line = next((ln.strip() for ln in str(raw).splitlines() if ln.strip()), "")
    for _ in range(10):  # openings come stacked ("Label: The feature detects that ...")
        before = line
        for pattern in _PREFIXES:
            line = pattern.sub("", line).strip().strip(_QUOTES).strip()
        if line == before:
            break
    line = _CUT.split(line, maxsplit=1)[0]
    words = re.sub(r"\s+", " ", line).split(" ")[:max_words]
    return " ".join(words).rstrip(".,;:!").strip().strip(_QUOTES).strip()


def keyword_label(top_texts: list[str], low_texts: list[str], k: int = 3) -> str:
    """The ``k`` words most over-represented in ``top_texts`` relative to ``low_texts`` (document
    frequency difference; stop-words and words shorter than 3 letters left out), joined by ", "."""
    def docs(texts: list[str]) -> list[set[str]]:
        return [{w.lower().strip("'-") for w in _WORD.findall(t)} - _STOP for t in texts]

    top, low = docs(top_texts), docs(low_texts)
    vocab = sorted(set().union(*top)) if top else []
    n_top, n_low = max(len(top), 1), max(len(low), 1)
    # Difference of document frequencies (share of texts containing w): bounded in [-1, 1] and not fooled by one
    # text repeating a word; ties go alphabetically so the label is deterministic.
    scored = sorted(((sum(w in d for d in top) / n_top - sum(w in d for d in low) / n_low, w) for w in vocab
                     if len(w) >= 3), key=lambda x: (-x[0], x[1]))
    return ", ".join(w for s, w in scored[:k] if s > 0)


def mark_tokens(tokens: list[str], acts: list[float], threshold: float) -> str:
    """The text of ``tokens`` with runs of tokens at or above ``threshold`` wrapped in ``<<...>>``."""
    out, run = [], []
    for tok, a in zip(tokens, acts, strict=True):
        if a >= threshold:
            run.append(tok)
            continue
        if run:
            out.append(_wrap("".join(run)))
            run = []
        out.append(tok)
    if run:
        out.append(_wrap("".join(run)))
    return "".join(out)


def _degenerate(label: str) -> bool:
    """A label that says nothing: it repeats itself ("the feature detects that the feature detects
    that") or holds no content word ("that")."""
    words = label.lower().split()
    content = {w.strip(".,;:!?'\"") for w in words} - _STOP - {"a", "an", "of", "in", "on", "to", "is", "it"}
    return not any(len(w) >= 3 for w in content) or (len(words) >= 4 and len(set(words)) <= len(words) // 2)


def _wrap(text: str) -> str:
    lead = text[: len(text) - len(text.lstrip())]  # keep the token's leading space outside the mark
    return f"{lead}<<{text.lstrip()}>>"


def _resolve_chat(chat: Any) -> Any:
    """``chat`` itself when it has ``complete``; else ``interpkit.models._chat.chat_model(chat)``
    (``"local"``, ``"api"``, a model name or a ModelWrapper; None means ``"local"``)."""
    if chat is not None and hasattr(chat, "complete"):
        return chat
    try:
        from interpkit.models._chat import chat_model
    except ImportError as error:
        raise ValueError("AutoLabel needs a chat model (interpkit.models._chat is not available)") from error
    return chat_model("local" if chat is None else chat)


class AutoLabel(Verbalizer):
    """Label from highlighted top examples, scored by embedding detection on held-out examples.

    Args:
        chat: a chat model, a spec for ``interpkit.models._chat.chat_model`` (``"local"``), or None
            to use the context's chat model.
        n_examples: top examples shown to the labeler.
        n_heldout: at most this many held-out examples per class for scoring.
        mark_fraction: tokens at or above this fraction of the shown maximum are marked.
        prefill: start of the answer given to local chat models (small models stay on task when
            the answer starts "The feature detects"); API models get no prefill.
        max_words: words kept in the label.
        max_chars: each shown example is cut to this many characters.
    """

    name: ClassVar[str] = "autolabel"

    def __init__(self, chat: Any = None, *, n_examples: int = 8, n_heldout: int = 10,
                 mark_fraction: float = 0.5, max_words: int = 8, max_chars: int = 400,
                 prefill: str | None = "The feature detects") -> None:
        if n_examples < 1 or n_heldout < 1:
            raise ValueError("n_examples and n_heldout must be >= 1")
        self.chat, self.n_examples, self.n_heldout = chat, n_examples, n_heldout
        self.mark_fraction, self.max_words, self.max_chars = mark_fraction, max_words, max_chars
        self.prefill = prefill

    def __repr__(self) -> str:
        return f"AutoLabel(n_examples={self.n_examples}, n_heldout={self.n_heldout})"

    def prompt(self, ctx: FeatureContext, shown: list[int], *, prefill: bool = False) -> list[dict[str, str]]:
        """The chat messages for the examples at table rows ``shown`` (with ``prefill``: ending in
        an assistant message that starts the answer)."""
        texts = [str(ctx.table.examples["text"].iloc[i]) for i in shown]
        if ctx.reader is not None:
            acts = ctx.reader(texts)
            tokens = ctx.reader.tokens(texts)
            peak = max((float(a.max()) for a in acts if a.size), default=0.0)
            if peak > 0:
                texts = [mark_tokens(t, a.tolist(), self.mark_fraction * peak)
                         for t, a in zip(tokens, acts, strict=True)]
        body = "\n".join(f"{n + 1}. {t[: self.max_chars].strip()}" for n, t in enumerate(texts))
        messages = [{"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": f"Texts:\n{body}\n\nLabel:"}]
        if prefill and self.prefill:
            messages.append({"role": "assistant", "content": self.prefill})
        return messages

    def selection_low(self, column: np.ndarray, shown: list[int], seed: int) -> list[int]:
        """The least active examples (as many as shown, at most a sixth of the table) used with the
        shown ones to choose between label candidates; never used for the held-out score."""
        k = min(len(shown), len(column) // 6)
        rng = np.random.default_rng(seed + 1)
        rest = np.setdiff1d(np.arange(len(column)), np.asarray(shown, dtype=np.int64))
        # Random tie-breaks matter for sparse features: the least active rows are many exact zeros, and taking
        # them in table order would always pick the same (possibly unrepresentative) first rows.
        order = rest[np.lexsort((rng.random(len(rest)), column[rest]))]  # ascending, random ties
        return order[:k].tolist()

    def heldout(self, column: np.ndarray, shown: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Held-out positive and negative rows (most vs least active; ties among the least active,
        such as the zeros of a sparse feature, drawn at random). ``shown`` lists every row already
        used (shown to the labeler or used to select the label)."""
        held = np.setdiff1d(np.arange(len(column)), np.asarray(shown, dtype=np.int64))
        # At most a third per class, so the top and bottom sets are disjoint with a middle third between them;
        # the rows used to write or select the label are excluded, so the score is not inflated by selection.
        k = min(self.n_heldout, len(held) // 3)
        if k < 1:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        rng = np.random.default_rng(seed)
        order = held[np.lexsort((rng.random(len(held)), -column[held]))]  # descending, random ties
        pos, neg = order[:k], order[::-1][:k]
        # Without a strict activation gap the two "classes" are not distinct (e.g. a feature constant on the
        # held-out rows), and an AUROC would score noise.
        if column[pos].min() <= column[neg].max():
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return pos, neg

    def explain(self, ctx: FeatureContext) -> dict[str, Any]:
        """``label``, ``label_source``, ``label_score``, ``label_scoring``."""
        from interpkit.rank._stats import auroc

        chat = _resolve_chat(self.chat if self.chat is not None else ctx.chat)
        column = np.asarray(ctx.column, dtype=np.float32)
        shown = np.argsort(-column, kind="stable")[: self.n_examples].tolist()
        low = self.selection_low(column, shown, ctx.seed)
        text_of = ctx.table.examples["text"]
        local = hasattr(chat, "prompt_ids")  # LocalChat continues an assistant prefill; APIs do not
        raw = chat.complete(self.prompt(ctx, shown, prefill=local), max_tokens=24, temperature=0.0)
        chat_name = getattr(chat, "name", type(chat).__name__)
        candidates = [{"label": clean_label(raw, self.max_words), "source": chat_name, "raw": str(raw)[:200]},
                      {"label": keyword_label([str(text_of.iloc[i]) for i in shown],
                                              [str(text_of.iloc[i]) for i in low]), "source": "keywords"}]
        candidates = [c for c in candidates if c["label"] and not _degenerate(c["label"])]
        if not candidates:
            raise ValueError(f"the chat model {chat_name!r} gave no usable label ({raw!r}) and no word separates "
                             "the top examples from the bottom ones")
        from interpkit.models._encoder import as_encoder

        encoder = as_encoder(ctx.encoder)
        if len(candidates) > 1 and low:
            sel_rows = [*shown, *low]
            sel_texts = [str(text_of.iloc[i]) for i in sel_rows]
            y_sel = np.r_[np.ones(len(shown)), np.zeros(len(low))]
            for c in candidates:
                sims = np.asarray(encoder.similarity(c["label"], sel_texts), dtype=np.float64).reshape(-1)
                # AUROC of sim(label, text) top vs bottom: a label that describes the feature sits closer to its active
                # texts; AUROC needs no threshold and is insensitive to the encoder's similarity scale.
                c["selection_auroc"] = float(auroc(sims, y_sel)[0])
            best = max(candidates, key=lambda c: c["selection_auroc"])  # first (the chat's) wins ties
        else:
            best = candidates[0]
        label = best["label"]
        out: dict[str, Any] = {"label": label, "label_source": best["source"], "label_score": None}
        pos, neg = self.heldout(column, [*shown, *low], ctx.seed)
        scoring: dict[str, Any] = {"method": "embedding-detection", "metric": "auroc",
                                   "n_positive": len(pos), "n_negative": len(neg), "n_shown": len(shown),
                                   "n_selection_low": len(low), "candidates": candidates}
        if len(pos) and len(neg):
            rows = np.concatenate([pos, neg])
            texts = [str(ctx.table.examples["text"].iloc[i]) for i in rows]
            sims = np.asarray(encoder.similarity(label, texts), dtype=np.float64).reshape(-1)
            y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            out["label_score"] = float(auroc(sims, y)[0])
            scoring.update(encoder=getattr(encoder, "name", type(encoder).__name__),
                           positive_min=float(column[pos].min()), negative_max=float(column[neg].max()))
        else:
            scoring["note"] = "too few held-out examples, or no gap between active and inactive ones"
        out["label_scoring"] = scoring
        return out
