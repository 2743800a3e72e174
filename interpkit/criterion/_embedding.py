"""The embedding compiler: MiniLM similarity to the criterion minus similarity to its contrast.

Raw score ``cos(text, criterion) - cos(text, contrast)`` with the packaged MiniLM sentence
encoder (unit embeddings). The contrast is `Criterion.contrast` when given, else the compiler's
``default_contrast``; by default there is none and the raw score is ``cos(text, criterion)``:
sentence encoders read "text unrelated to X" as being about X, and on the AxBench benchmark
(benchmarks/criterion_auroc.py) subtracting a derived or generic contrast lowered the mean AUROC
from 0.91/0.92 to 0.69/0.72 (derived) and 0.84/0.80 (generic). Raw scores are calibrated to [0, 1]
(`interpkit.criterion._calibrate.calibrate`): a two-component shared-variance Gaussian mixture
fitted on the scored texts when there are at least 20 of them, a fixed logistic map otherwise.
Posteriors ``>= hi`` are positive, ``<= lo`` negative, in between uncertain; a compiled dataset
leaves the uncertain band out, and provenance records the band, the similarities and the fit.

Example:
    >>> comp = EmbeddingCompiler()  # doctest: +SKIP
    >>> comp.score_texts("dates and years", ["It was 12 May 1999.", "Cats purr."])[0].label  # doctest: +SKIP
    'positive'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._base import Criterion, CriterionCompiler, ScoredExample, as_criterion, register_compiler
from ._calibrate import calibrate

__all__ = ["GENERIC_CONTRAST", "EmbeddingCompiler"]

GENERIC_CONTRAST = "an ordinary everyday text about an unrelated topic"
"""A generic contrast one can pass as ``default_contrast`` (not the default; see above)."""


@register_compiler
class EmbeddingCompiler(CriterionCompiler):
    """Scores texts by sentence-embedding similarity to the criterion against its contrast.

    Args:
        encoder: a `SentenceEncoder` (anything with ``encode(texts) -> [n, d]`` unit rows and a
            ``name``) or a packaged encoder name, loaded on first use.
        default_contrast: contrast when the criterion has none: None = no contrast term,
            ``"derived"`` = `Criterion.contrast_text` (``"text unrelated to <criterion>"``), any
            other string = that text.
        calibration: ``"auto"``, ``"gmm"`` or ``"logistic"`` (see `calibrate`).
        lo: posterior at or below which a text is negative.
        hi: posterior at or above which a text is positive.
        center: logistic midpoint on the raw scale (small inputs).
        scale: logistic width on the raw scale (small inputs).
    """

    name = "embedding"

    def __init__(self, encoder: Any = "minilm-l6", *, default_contrast: str | None = None,
                 calibration: str = "auto", lo: float = 0.2, hi: float = 0.8, center: float = 0.08,
                 scale: float = 0.025) -> None:
        if calibration not in ("auto", "gmm", "logistic"):
            raise ValueError(f"embedding calibration must be 'auto', 'gmm' or 'logistic', got {calibration!r}")
        self._encoder = encoder
        self.default_contrast = default_contrast
        self.calibration = calibration
        self.lo, self.hi, self.center, self.scale = lo, hi, center, scale

    @property
    def encoder(self) -> Any:
        """The sentence encoder (loaded on first use when given by name)."""
        from interpkit.models._encoder import as_encoder

        self._encoder = as_encoder(self._encoder)
        return self._encoder

    def describe(self) -> dict[str, Any]:
        """Compiler name, encoder and calibration settings."""
        enc = self._encoder if isinstance(self._encoder, str) else getattr(self._encoder, "name", None)
        return {"compiler": self.name, "encoder": enc, "calibration": self.calibration,
                "band": [self.lo, self.hi], "center": self.center, "scale": self.scale}

    def contrast_for(self, criterion: Criterion) -> str | None:
        """The contrast text used for ``criterion`` (None: no contrast term)."""
        if criterion.contrast is not None or self.default_contrast == "derived":
            return criterion.contrast_text
        return self.default_contrast

    def raw_scores(self, criterion: Criterion | str, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Similarities ``[n]`` to the criterion and ``[n]`` to its contrast (zeros without one)."""
        crit = as_criterion(criterion)
        texts = list(texts)
        if not texts:
            return np.zeros(0), np.zeros(0)
        contrast = self.contrast_for(crit)
        emb = np.asarray(self.encoder.encode(texts), dtype=np.float64)
        anchors = [crit.text] if contrast is None else [crit.text, contrast]
        # The encoder returns unit rows, so the dot product is the cosine; [n, d] @ [d, 1 or 2].
        sims = emb @ np.asarray(self.encoder.encode(anchors), dtype=np.float64).T
        return sims[:, 0], (sims[:, 1] if contrast is not None else np.zeros(len(texts)))

    def score_texts(self, criterion: Criterion | str, texts: Sequence[str]) -> list[ScoredExample]:
        """Calibrated posteriors of ``cos(text, criterion) - cos(text, contrast)``, labelled by band."""
        crit = as_criterion(criterion)
        texts = list(texts)
        s_pos, s_neg = self.raw_scores(crit, texts)
        raw = s_pos - s_neg
        # Raw cosines sit in a narrow, encoder- and criterion-specific band, so a fixed cut would not transfer
        # across criteria; a mixture fitted on the scored texts themselves (>= 20 of them) adapts it.
        cal = calibrate(raw, method=self.calibration, lo=self.lo, hi=self.hi, center=self.center,  # type: ignore[arg-type]
                        scale=self.scale)
        base = {**self.describe(), "criterion": crit.text, "contrast": self.contrast_for(crit),
                "calibration_fit": {"method": cal.method, "params": cal.params, "n": len(texts)},
                "band": list(cal.band)}
        return [
            ScoredExample(text=t, score=float(p), label=lab, provenance={
                **base, "similarity": round(float(a), 6), "contrast_similarity": round(float(b), 6),
                "raw": round(float(r), 6)})
            for t, p, lab, a, b, r in zip(texts, cal.posteriors, cal.labels, s_pos, s_neg, raw, strict=True)
        ]
