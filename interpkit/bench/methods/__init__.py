"""The benchmark's concept detection and steering methods (AxBench §5), one class per method.

Every method learns (or picks) one thing per concept from a `BenchContext` and returns a `Fitted`:
a direction ``vector`` scored per token by ``psi`` (``"linear"`` ``h·w + b``, ``"relu"``,
``"jumprelu"``) and max-pooled over a text's scored positions (§3.2), a ``steer_vector`` added when
steering (§4.3), or, for text classifiers (BoW, Prompt), a score per text. Each class registers
itself with `register_method`; `METHODS` maps the lower-case registry names to the classes and
`get_method` builds one with option overrides; ``defaults`` hold AxBench's hyper-parameters
(Appendix A) with the changes a 135M model on a CPU needs, each said in the class docstring.
`fitted_table` turns fitted directions into a `FeatureTable` so ``rank``, ``explain`` and
``match`` read them like any other feature.

Modules: ``_base`` (`Fitted`, `Method`, the shared helpers, the registry, `fitted_table`),
``_directions`` (DiffMean, PCA, LAT, Random), ``_probe`` (Probe), ``_lmloss`` (SSV and ReFT-r1
and their LM-loss training), ``_engine`` (the cached-prefix training engine they share),
``_loreft`` (LoReFT, steering only), ``_reps`` (RePS, a steering vector trained with a preference
objective through the same engine), ``_finetune`` (the steer-only LoRA and SFT), whose `Fitted`
carries a `SteerContext` instead of a vector), ``_sae`` (SAE, SAE-A, Criterion-only and `criterion_pick`) and
``_text`` (BoW, Prompt and `rate`).

Example:
    >>> method = get_method("diffmean")
    >>> method.label, method.detects, method.steers
    ('DiffMean', True, True)
    >>> get_method("probe", epochs=4).params()["epochs"]
    4
"""

from __future__ import annotations

from ._base import (
    ELEMENTWISE,
    METHODS,
    PSI,
    Fitted,
    Method,
    SteerContext,
    first_pc,
    fitted_table,
    get_method,
    group_max,
    iter_token_chunks,
    pooled_scores,
    register_method,
    rng_for,
    sae_pooled,
    split_tokens,
    unit,
)
from ._directions import LAT, PCA, DiffMean, RandomDirection
from ._finetune import SFT, LoRA, LoRAAdapters, proportional_layers, response_loss, swapped
from ._lmloss import ReFTr1, SteeringVector
from ._loreft import LoReFT, loreft_layers
from ._probe import LinearProbe
from ._reps import RePS
from ._sae import (
    CriterionOnly,
    SAEAuc,
    SAECriterion,
    criterion_examples,
    criterion_pick,
    neuron_maxpool,
    sae_fitted,
)
from ._text import JUDGE_PROMPT, BagOfWords, PromptDetection, rate

__all__ = [
    "ELEMENTWISE",
    "JUDGE_PROMPT",
    "LAT",
    "METHODS",
    "PCA",
    "PSI",
    "BagOfWords",
    "CriterionOnly",
    "DiffMean",
    "Fitted",
    "SFT",
    "LinearProbe",
    "LoReFT",
    "LoRA",
    "LoRAAdapters",
    "Method",
    "PromptDetection",
    "RandomDirection",
    "ReFTr1",
    "RePS",
    "SAEAuc",
    "SAECriterion",
    "SteerContext",
    "SteeringVector",
    "criterion_examples",
    "criterion_pick",
    "first_pc",
    "fitted_table",
    "get_method",
    "group_max",
    "iter_token_chunks",
    "loreft_layers",
    "neuron_maxpool",
    "pooled_scores",
    "proportional_layers",
    "rate",
    "register_method",
    "response_loss",
    "rng_for",
    "sae_fitted",
    "sae_pooled",
    "split_tokens",
    "swapped",
    "unit",
]
