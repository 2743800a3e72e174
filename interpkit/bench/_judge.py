"""Steering judges: the three 0-2 ratings (concept, instruction relevance, fluency) of AxBench §4.6.

Two judges implement the small :class:`Judge` protocol:

* :class:`LMJudge` asks a chat model (an OpenAI-compatible endpoint, or a local one) three separate
  rubric questions per generation, each answered with a short justification and ``Rating: [[k]]``
  (our own wording of AxBench's templates), parsed by :func:`parse_rating`. Answers are cached
  by exact prompt text, in memory and optionally on disk.
* :class:`LocalJudge` needs no network: concept = embedding cosine between the generation and the
  concept description, relevance = cosine between the instruction and the generation, fluency =
  perplexity of the generation (after a neutral chat prompt, or its instruction) under the
  *unsteered* model with a repetition guard. Each raw score is mapped to 0/1/2 by thresholds that :meth:`LocalJudge.calibrate` fits
  on the task's own data and reports with their AUROCs (the concept AUROC says whether the
  judge can be trusted: ``trusted`` is ``concept AUROC >= 0.8``).

Example:
    >>> parse_rating("The concept is woven in well.\\nRating: [[2]].")
    2.0
    >>> parse_rating("no verdict")
    0.0
    >>> round(repetition("a b c d a b c d a b c d"), 3)
    0.556
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from interpkit.models import perplexity

if TYPE_CHECKING:
    from interpkit.models import ModelWrapper

__all__ = ["AXES", "Judge", "LMJudge", "LocalJudge", "judge_prompts", "parse_rating", "perplexity", "repetition"]

AXES = ("concept", "instruction", "fluency")
TRUST_AUROC = 0.8
NEUTRAL_INSTRUCTION = "Write a short text."

_FORMAT = ('Finish your answer with the rating on its own line, in exactly this form: "Rating: [[k]]" '
           "where k is 0, 1 or 2 (for example: Rating: [[1]]).")

CONCEPT_TEMPLATE = """You are a careful, impartial judge. Decide whether the concept below is present in the text fragment.
Judge only the presence of the concept: do not reward or punish grammar, coherence or style.

First write one or two sentences of justification: quote where the fragment refers to the concept, and say whether the \
reference is clear and natural, or only minimal, forced or awkward. Then rate:
0 - the concept does not appear in the fragment;
1 - the concept appears, but only minimally, indirectly or awkwardly;
2 - the concept is clearly present and naturally part of the fragment.
{format}

[Concept]
{concept}
[End of concept]

[Text fragment]
{generation}
[End of text fragment]"""

INSTRUCTION_TEMPLATE = """You are a careful, impartial judge. Decide how related the text fragment is to the instruction below.
Judge only topical relatedness: do not judge correctness, completeness, coherence or how informative it is.

First write one or two sentences of justification saying what the fragment is about and how that connects to the \
instruction. Then rate:
0 - the fragment is unrelated to the instruction;
1 - the fragment is loosely or indirectly related to the instruction;
2 - the fragment clearly and directly addresses the instruction's topic.
{format}

[Instruction]
{instruction}
[End of instruction]

[Text fragment]
{generation}
[End of text fragment]"""

FLUENCY_TEMPLATE = """You are a careful, impartial judge. Rate the fluency of the text fragment below.
Judge fluency only: ignore whether it is complete, relevant or informative (it may be cut off mid-sentence).

First write one or two sentences of justification noting any unnatural phrasing, grammar mistakes, gibberish or \
repetition. Then rate:
0 - not fluent: hard to understand, broken, or highly repetitive;
1 - somewhat fluent, with noticeable errors or awkward passages;
2 - fluent: natural and nearly free of errors.
{format}

[Text fragment]
{generation}
[End of text fragment]"""


@runtime_checkable
class Judge(Protocol):
    """What steering evaluation needs from a judge."""

    def rate(self, concept: str, instruction: str, generations: Sequence[str]) -> np.ndarray:
        """Ratings ``[len(generations), 3]`` in 0-2: concept, instruction relevance, fluency."""
        ...

    def describe(self) -> dict:
        """JSON-able settings and calibration evidence (goes into results.json)."""
        ...


_RATING = re.compile(r"rating\s*:", re.IGNORECASE)


def parse_rating(text: str) -> float:
    """The 0-2 rating in a judge answer, per AxBench §4.6; 0 when there is none.

    Reads the text after the *last* ``Rating:`` (case-insensitive), keeps its first line, strips
    brackets, asterisks, quotes and a trailing period, and parses a float. No ``Rating:``, a
    parse error, or a value outside [0, 2] gives 0.
    """
    found = list(_RATING.finditer(text or ""))
    if not found:
        return 0.0
    tail = text[found[-1].end():].strip()
    line = tail.splitlines()[0] if tail else ""
    line = line.replace("[", "").replace("]", "").replace("*", "").strip().strip("\"'`").strip()
    line = line.rstrip(".").strip().strip("\"'`")
    try:
        value = float(line)
    except ValueError:
        return 0.0
    return value if math.isfinite(value) and 0.0 <= value <= 2.0 else 0.0


def judge_prompts(concept: str, instruction: str, generation: str) -> tuple[str, str, str]:
    """The three rubric prompts (concept, instruction relevance, fluency) for one generation."""
    return (CONCEPT_TEMPLATE.format(format=_FORMAT, concept=concept, generation=generation),
            INSTRUCTION_TEMPLATE.format(format=_FORMAT, instruction=instruction, generation=generation),
            FLUENCY_TEMPLATE.format(format=_FORMAT, generation=generation))


class LMJudge:
    """AxBench's LM judge: three rubric prompts per generation to a chat model, ``Rating: [[k]]`` parsed.

    Args:
        chat: an :class:`~interpkit.models.ChatModel` (``OpenAIChat`` for an endpoint, ``LocalChat``).
        temperature: sampling temperature of the judge (AxBench used 0.7; 0 makes reruns stable).
        max_tokens: answer budget (justification + rating).
        cache: a folder (or an object with ``get``/``put``, e.g. ``interpkit._http.JsonCache``) where
            answers are kept across runs; answers are always memoised in memory. Keys are the exact
            prompt text plus the judge model's name and temperature.
        workers: concurrent requests (threads); keep 1 for a local chat model.
    """

    kind = "lm"

    def __init__(self, chat: Any, *, temperature: float = 0.0, max_tokens: int = 256, cache: Any = None,
                 workers: int = 1) -> None:
        from interpkit._http import JsonCache

        self.chat = chat
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.cache = cache if cache is None or hasattr(cache, "get") else JsonCache(Path(cache))
        self.workers = max(1, int(workers))
        self._memo: dict[str, str] = {}
        self.n_calls = 0

    def __repr__(self) -> str:
        return f"LMJudge({getattr(self.chat, 'name', self.chat)!r})"

    def _key(self, prompt: str) -> str:
        return json.dumps({"judge": getattr(self.chat, "name", "?"), "temperature": self.temperature,
                           "prompt": prompt}, sort_keys=True)

    def _answer(self, prompt: str) -> str:
        key = self._key(prompt)
        if key in self._memo:
            return self._memo[key]
        hit = self.cache.get(key) if self.cache is not None else None
        if not isinstance(hit, str):
            self.n_calls += 1
            hit = self.chat.complete([{"role": "user", "content": prompt}], max_tokens=self.max_tokens,
                                     temperature=self.temperature)
            if self.cache is not None:
                self.cache.put(key, hit)
        self._memo[key] = hit
        return hit

    def rate_details(self, concept: str, instruction: str,
                     generations: Sequence[str]) -> tuple[np.ndarray, list[dict]]:
        """:meth:`rate` plus, per generation, the judge's raw answers ``{"concept": ..., ...}``."""
        prompts = [p for g in generations for p in judge_prompts(concept, instruction, g)]
        if self.workers > 1 and len(prompts) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers) as pool:
                answers = list(pool.map(self._answer, prompts))
        else:
            answers = [self._answer(p) for p in prompts]
        scores = np.array([parse_rating(a) for a in answers], dtype=np.float64).reshape(len(generations), 3)
        details = [dict(zip(AXES, answers[3 * i: 3 * i + 3], strict=True)) for i in range(len(generations))]
        return scores, details

    def rate(self, concept: str, instruction: str, generations: Sequence[str]) -> np.ndarray:
        """Ratings ``[n, 3]`` (concept, instruction relevance, fluency), each 0-2."""
        return self.rate_details(concept, instruction, generations)[0]

    def describe(self) -> dict:
        return {"kind": self.kind, "model": getattr(self.chat, "name", repr(self.chat)),
                "endpoint": getattr(self.chat, "base_url", None), "temperature": self.temperature,
                "max_tokens": self.max_tokens, "templates": "interpkit-axbench-v1", "n_calls": self.n_calls}


# ---- local judge ---------------------------------------------------------------------------------


def repetition(text: str, n: int = 4) -> float:
    """Fraction of the word ``n``-grams of ``text`` that repeat an earlier one (0 for short texts)."""
    words = text.lower().split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return 0.0 if not grams else 1.0 - len(set(grams)) / len(grams)


def _youden(pos: np.ndarray, neg: np.ndarray) -> tuple[float, float]:
    """(AUROC, Youden threshold) for "higher is positive" scores."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
    s = np.r_[pos, neg]
    fpr, tpr, thr = roc_curve(y, s)
    j = int(np.argmax(tpr - fpr))
    return float(roc_auc_score(y, s)), float(min(thr[j], s.max()))


def _band(values: np.ndarray, t1: float, t2: float) -> np.ndarray:
    """0/1/2 for higher-is-better values: ``>= t2`` -> 2, ``>= t1`` -> 1."""
    return np.where(values >= t2, 2.0, np.where(values >= t1, 1.0, 0.0))


class LocalJudge:
    """A judge without network: embedding similarity and perplexity, mapped to 0-2 by calibrated thresholds.

    Args:
        encoder: a sentence encoder (``encode``/``similarity`` over unit vectors), a name for
            :func:`~interpkit.models.sentence_encoder`, or None for the packaged MiniLM.
        model: the (unsteered) model under study; fluency is its perplexity of each generation
            (:func:`perplexity` ignores active edits).
        fluency_context: what the perplexity is conditioned on: ``"neutral"`` (default) a fixed
            chat-formatted instruction (``"Write a short text."``), so fluency does not also punish
            text that leaves the instruction's topic (relevance has its own axis, and AxBench's
            fluency judge sees the fragment only); ``"instruction"`` the generation's own
            instruction (AxBench §4.5's prompt + generation perplexity).
        thresholds: ``{"concept": (t1, t2), "instruction": (t1, t2), "fluency": (p1, p2)}``; cosine
            ``>= t1`` rates 1 and ``>= t2`` rates 2; perplexity ``<= p1`` rates 1 and ``<= p2`` rates 2.
            Normally set by :meth:`calibrate`.
        repeat_cap1: generations whose fraction of repeated word 4-grams is at least this rate at
            most 1 for fluency; ``repeat_cap0``: at least this rate 0.
        batch_size: texts per forward pass for perplexity.
        max_length: token budget of prompt + generation for perplexity.
    """

    kind = "local"

    def __init__(self, encoder: Any = None, model: ModelWrapper | None = None, *,
                 thresholds: dict[str, Sequence[float]] | None = None, repeat_cap1: float = 0.25,
                 repeat_cap0: float = 0.6, batch_size: int = 8, max_length: int = 512,
                 fluency_context: str = "neutral") -> None:
        if fluency_context not in ("neutral", "instruction"):
            raise ValueError(f"LocalJudge: fluency_context must be 'neutral' or 'instruction', got {fluency_context!r}")
        self.fluency_context = fluency_context
        self._encoder_spec = encoder
        self._encoder: Any = None
        self.model = model
        self.thresholds = {k: tuple(map(float, v)) for k, v in (thresholds or {}).items()}
        self.repeat_cap1 = repeat_cap1
        self.repeat_cap0 = repeat_cap0
        self.batch_size = batch_size
        self.max_length = max_length
        self.calibration: dict | None = None

    def __repr__(self) -> str:
        return f"LocalJudge(calibrated={self.calibration is not None})"

    @property
    def encoder(self) -> Any:
        if self._encoder is None:
            from interpkit.models._encoder import as_encoder

            self._encoder = as_encoder(self._encoder_spec)
        return self._encoder

    @property
    def trusted(self) -> bool | None:
        """Whether the calibrated concept AUROC reaches 0.8 (None before :meth:`calibrate`)."""
        if self.calibration is None:
            return None
        return bool(self.calibration["concept"]["auroc"] >= TRUST_AUROC)

    def _model(self) -> ModelWrapper:
        if self.model is None:
            raise ValueError("LocalJudge: fluency needs the unsteered model; pass model=<ModelWrapper>")
        return self.model

    def _prompt(self, instruction: str) -> str:
        from interpkit.bench._prompts import chat_prompt

        text = instruction if self.fluency_context == "instruction" else NEUTRAL_INSTRUCTION
        return chat_prompt(self._model().tokenizer, text)

    def perplexity(self, instructions: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Perplexity of each text as the model's answer (to its instruction or the neutral one)."""
        prompts = [self._prompt(i) for i in instructions]
        return perplexity(self._model(), prompts, texts, batch_size=self.batch_size, max_length=self.max_length)

    def raw_scores(self, concept: str, instruction: str, generations: Sequence[str]) -> list[dict]:
        """Per generation: ``concept_cos``, ``instruction_cos``, ``perplexity``, ``repetition``."""
        gens = [str(g) for g in generations]
        if not gens:
            return []
        enc = self.encoder.encode([concept, instruction, *gens])
        c_cos = enc[2:] @ enc[0]
        i_cos = enc[2:] @ enc[1]
        ppl = self.perplexity([instruction] * len(gens), gens)
        return [{"concept_cos": float(c), "instruction_cos": float(i), "perplexity": float(p),
                 "repetition": repetition(g)} for c, i, p, g in zip(c_cos, i_cos, ppl, gens, strict=True)]

    def _map(self, raw: list[dict], generations: Sequence[str]) -> np.ndarray:
        missing = [a for a in AXES if a not in self.thresholds]
        if missing:
            raise ValueError(f"LocalJudge: no thresholds for {missing}; call calibrate(task) or pass thresholds=")
        c = np.array([r["concept_cos"] for r in raw])
        i = np.array([r["instruction_cos"] for r in raw])
        ppl = np.array([r["perplexity"] for r in raw])
        rep = np.array([r["repetition"] for r in raw])
        p1, p2 = self.thresholds["fluency"]
        with np.errstate(invalid="ignore"):
            flu = np.where(ppl <= p2, 2.0, np.where(ppl <= p1, 1.0, 0.0))
        flu = np.where(rep >= self.repeat_cap1, np.minimum(flu, 1.0), flu)
        flu = np.where(rep >= self.repeat_cap0, 0.0, flu)
        scores = np.stack([_band(c, *self.thresholds["concept"]), _band(i, *self.thresholds["instruction"]),
                           flu], axis=1)
        empty = np.array([not str(g).strip() for g in generations])
        scores[empty] = 0.0
        return scores

    def rate_details(self, concept: str, instruction: str,
                     generations: Sequence[str]) -> tuple[np.ndarray, list[dict]]:
        """:meth:`rate` plus the raw scores behind each rating (see :meth:`raw_scores`)."""
        raw = self.raw_scores(concept, instruction, generations)
        if not raw:
            return np.zeros((0, 3)), []
        return self._map(raw, generations), raw

    def rate(self, concept: str, instruction: str, generations: Sequence[str]) -> np.ndarray:
        """Ratings ``[n, 3]`` (concept, instruction relevance, fluency), each 0, 1 or 2."""
        return self.rate_details(concept, instruction, generations)[0]

    def calibrate(self, task: Any, *, max_rows: int = 400, seed: int = 42,
                  progress: Callable[[str], None] | None = None) -> dict:
        """Fit the thresholds on ``task`` and return (and keep) the evidence.

        * concept: cosine(output, its row's concept description) on eval ``positive`` vs ``negative``
          rows of all concepts; 1 from the Youden point, 2 from the positives' median (at least the
          Youden point). Hard negatives are scored as a second AUROC (reported, not fitted).
        * instruction: cosine(input, output) of matched eval pairs vs the same outputs paired with
          another row's input (a seeded derangement); 1 = Youden point, 2 = matched median.
        * fluency: perplexity of the real outputs (in the judge's ``fluency_context``) vs word-shuffled copies;
          2 = at most the real outputs' 90th percentile, 1 = at most the Youden point (no lower
          than the 2-threshold).

        Args:
            task: an AxBenchTask (uses ``eval`` with ``input``/``output``/``category``/``concept_id``
                and ``concepts`` with ``id``/``description``).
            max_rows: rows sampled per class (seeded) for each fit; perplexity dominates the cost.
            seed: sampling and shuffling seed.
            progress: called with a short message before each step.

        Returns:
            ``{"concept": {...}, "instruction": {...}, "fluency": {...}, "trusted": bool, ...}``.
        """
        say = progress or (lambda message: None)
        rng = np.random.default_rng(seed)
        df = task.eval
        names = {int(c.id): str(c.description) for c in task.concepts}

        def sample(frame):
            if len(frame) <= max_rows:
                return frame
            return frame.iloc[np.sort(rng.choice(len(frame), max_rows, replace=False))]

        say("calibrating the concept score (embedding cosine)")
        groups = {cat: sample(df[df["category"] == cat]) for cat in ("positive", "negative", "hard negative")}
        for cat in ("positive", "negative"):
            if groups[cat].empty:
                raise ValueError(f"LocalJudge.calibrate: task {getattr(task, 'name', '?')!r} has no eval rows "
                                 f"with category {cat!r}")
        cos = {}
        for cat, frame in groups.items():
            if frame.empty:
                continue
            unknown = sorted({int(c) for c in frame["concept_id"]} - set(names))
            if unknown:
                raise ValueError(f"LocalJudge.calibrate: eval rows name concept ids {unknown} absent from task.concepts")
            descs = [names[int(c)] for c in frame["concept_id"]]
            uniq = sorted(set(descs))
            enc_c = self.encoder.encode(uniq)
            enc_o = self.encoder.encode([str(o) for o in frame["output"]])
            pos_of = {d: k for k, d in enumerate(uniq)}
            cos[cat] = np.einsum("nd,nd->n", enc_o, enc_c[[pos_of[d] for d in descs]])
        auroc, t1 = _youden(cos["positive"], cos["negative"])
        t2 = max(t1, float(np.median(cos["positive"])))
        concept = {"auroc": auroc, "thresholds": [t1, t2], "n_positive": len(cos["positive"]),
                   "n_negative": len(cos["negative"]),
                   "positive_median": float(np.median(cos["positive"])),
                   "negative_median": float(np.median(cos["negative"]))}
        if "hard negative" in cos:
            concept["auroc_hard_negative"] = _youden(cos["positive"], cos["hard negative"])[0]
            concept["n_hard_negative"] = len(cos["hard negative"])

        say("calibrating the instruction-relevance score (embedding cosine)")
        pairs = sample(df)
        inputs = [str(x) for x in pairs["input"]]
        outputs = [str(x) for x in pairs["output"]]
        n = len(pairs)
        if n < 2:
            raise ValueError("LocalJudge.calibrate: need at least 2 eval rows for the relevance calibration")
        perm = (np.arange(n) + rng.integers(1, n)) % n  # a derangement: every output meets another input
        enc_i = self.encoder.encode(inputs)
        enc_o = self.encoder.encode(outputs)
        matched = np.einsum("nd,nd->n", enc_i, enc_o)
        shuffled = np.einsum("nd,nd->n", enc_i, enc_o[perm])
        auroc_i, u1 = _youden(matched, shuffled)
        instruction = {"auroc": auroc_i, "thresholds": [u1, max(u1, float(np.median(matched)))], "n": n,
                       "matched_median": float(np.median(matched)),
                       "shuffled_median": float(np.median(shuffled))}

        say("calibrating the fluency score (perplexity under the model)")
        flu_rows = df[df["output"].astype(str).str.split().str.len() >= 4]
        if len(flu_rows) > max(2, max_rows // 2):  # two perplexities per row: half the rows
            flu_rows = flu_rows.iloc[np.sort(rng.choice(len(flu_rows), max(2, max_rows // 2), replace=False))]
        f_in = [str(x) for x in flu_rows["input"]]
        real_txt = [str(x) for x in flu_rows["output"]]
        fake_txt = []
        for text in real_txt:
            words = text.split()
            rng.shuffle(words)
            fake_txt.append(" ".join(words))
        real = self.perplexity(f_in, real_txt)
        fake = self.perplexity(f_in, fake_txt)
        ok_r, ok_f = np.isfinite(real), np.isfinite(fake)
        if ok_r.sum() < 2 or ok_f.sum() < 2:
            raise ValueError("LocalJudge.calibrate: too few eval outputs with tokens for the fluency calibration")
        auroc_f, y = _youden(-np.log(real[ok_r]), -np.log(fake[ok_f]))
        p2 = float(np.percentile(real[ok_r], 90))
        p1 = max(p2, float(math.exp(-y)))
        fluency = {"auroc": auroc_f, "thresholds": [p1, p2], "n": int(ok_r.sum()),
                   "real_median": float(np.median(real[ok_r])), "shuffled_median": float(np.median(fake[ok_f])),
                   "real_repetition_max": float(max(repetition(t) for t in real_txt))}

        self.thresholds = {"concept": (t1, t2), "instruction": tuple(instruction["thresholds"]),
                           "fluency": (p1, p2)}
        self.calibration = {"task": getattr(task, "name", None), "max_rows": max_rows, "seed": seed,
                            "concept": concept, "instruction": instruction, "fluency": fluency}
        self.calibration["trusted"] = self.trusted
        if not self.trusted:
            import warnings

            warnings.warn(f"LocalJudge: the concept score's AUROC on this task is {auroc:.3f} < {TRUST_AUROC}; "
                          "its concept ratings are weak evidence", stacklevel=2)
        return self.calibration

    def describe(self) -> dict:
        return {"kind": self.kind, "encoder": getattr(self.encoder, "name", type(self.encoder).__name__),
                "model": getattr(self.model, "name", None),
                "thresholds": {k: list(v) for k, v in self.thresholds.items()},
                "fluency_context": self.fluency_context,
                "repetition_guard": {"ngram": 4, "cap1": self.repeat_cap1, "cap0": self.repeat_cap0},
                "calibration": self.calibration, "trusted": self.trusted}
