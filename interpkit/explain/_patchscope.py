"""`Patchscope`: the model verbalises a feature's direction itself (Patchscopes, Ghandeharioun et al. 2024).

An identity prompt (``"cat -> cat; 1135 -> 1135; hello -> hello; ? ->"``) primes the model to
repeat whatever the placeholder ``?`` stands for. The feature's unit direction, scaled to the
median residual norm measured at the injection site (kept tokens of up to 8 of the table's
texts, BOS excluded: its norm is an outlier), replaces the hidden state at the placeholder token
(``mode="replace"``, a `~interpkit.models.Patch`) or is added to it (``mode="add"``,
`~interpkit.models.AddVector`) at an early-ish layer, and the continuation is generated greedily.
This is also the adapter shape for natural-language-autoencoder explanations: one vector in,
text out. ``text`` is the whole greedy continuation; ``baseline_text`` is the same prompt without
the edit (cached per prompt), so a reader sees whether and where the edit mattered. Small models
(SmolLM2-135M) often just echo the prompt's last pair first and differ only after it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

import numpy as np

from ._base import FeatureContext, Verbalizer
from ._logits import feature_direction

__all__ = ["DEFAULT_PROMPT", "Patchscope", "placeholder_position"]

DEFAULT_PROMPT = "cat -> cat; 1135 -> 1135; hello -> hello; ? ->"
PatchMode = Literal["replace", "add"]


def placeholder_position(model: Any, prompt: str, placeholder: str) -> int:
    """Token position (BOS counted) of the last occurrence of ``placeholder`` in ``prompt``.

    Raises:
        ValueError: the placeholder is absent, or the tokenizer merges it with what follows.
    """
    at = prompt.rfind(placeholder)
    if at < 0:
        raise ValueError(f"placeholder {placeholder!r} not found in the prompt {prompt!r}")
    full = model.tokenize(prompt).input_ids[0].tolist()
    head = model.tokenize(prompt[: at + len(placeholder)]).input_ids[0].tolist()
    if full[: len(head)] != head:
        raise ValueError(f"the tokenizer merges the placeholder {placeholder!r} with the text after it "
                         f"in {prompt!r}; put a space after it")
    return len(head) - 1


def residual_norm(model: Any, site: str, texts: list[str]) -> float:
    """Median L2 norm of the activation at ``site`` over the texts' real tokens (BOS excluded)."""
    import torch

    batch = model.tokenize(texts, max_length=64)
    with torch.no_grad():
        acts = model.capture(batch, site)[site].float()
    keep = batch.attention_mask.bool().clone()
    keep[:, 0] = keep[:, 0] & (batch.input_ids[:, 0] != model.tokenizer.bos_token_id)
    norms = acts.norm(dim=-1)[keep.to(acts.device)]
    if norms.numel() == 0:
        raise ValueError(f"no token to measure the residual norm at {site}")
    return float(norms.median())


class Patchscope(Verbalizer):
    """Inject the feature's direction at the placeholder of an identity prompt and generate.

    Args:
        layer: block whose ``resid_post`` is edited (default: ``n_layers // 6``, at most the
            feature's own layer).
        scale: norm of the injected vector (default: the measured median residual norm).
        prompt: the identity prompt.
        placeholder: the placeholder string in ``prompt`` (its last occurrence is used).
        mode: ``"replace"`` the hidden state, or ``"add"`` the vector to it.
        max_new_tokens: tokens generated.
    """

    name: ClassVar[str] = "patchscope"

    def __init__(self, layer: int | None = None, scale: float | None = None, prompt: str = DEFAULT_PROMPT, *,
                 placeholder: str = "?", mode: PatchMode = "replace", max_new_tokens: int = 8) -> None:
        if mode not in get_args(PatchMode):
            raise ValueError(f"mode must be one of {get_args(PatchMode)}, got {mode!r}")
        self.layer, self.scale, self.prompt, self.placeholder = layer, scale, prompt, placeholder
        self.mode, self.max_new_tokens = mode, max_new_tokens

    def __repr__(self) -> str:
        return f"Patchscope(layer={self.layer}, scale={self.scale}, mode={self.mode!r})"

    def _layer(self, ctx: FeatureContext) -> int:
        if self.layer is not None:
            return int(self.layer)
        layer = int(ctx.model.n_layers) // 6
        j = ctx.table.feature_index(ctx.feature_id)
        own = ctx.table.features["layer"].iloc[j]
        if own is not None and own == own:
            layer = min(layer, int(own))
        return layer

    def edit(self, site: str, direction: np.ndarray, scale: float, position: int) -> Any:
        """The `~interpkit.models.Patch` or `~interpkit.models.AddVector` that injects ``direction``."""
        import torch

        from interpkit.models import AddVector, Patch

        unit = torch.from_numpy(direction / np.linalg.norm(direction)).float()
        if self.mode == "add":
            return AddVector(site, unit, strength=scale, positions=(position,))
        source = torch.zeros(1, position + 1, unit.shape[0])
        source[0, position] = scale * unit
        return Patch(site, source, positions=(position,))

    def explain(self, ctx: FeatureContext) -> dict[str, Any]:
        """``{"self_explanation": {"method", "prompt", "layer", "site", "scale", "mode", "text", ...}}``."""
        model = ctx.model
        if model is None:
            raise ValueError("Patchscope needs a model")
        direction = feature_direction(ctx.table, ctx.feature_id, model)
        if not np.linalg.norm(direction) > 0:
            raise ValueError(f"feature {ctx.feature_id!r} has a zero direction")
        layer = self._layer(ctx)
        site = model.resolve_site(f"layer{layer}.resid_post")
        scale = self.scale
        if scale is None:
            key = ("patchscope-norm", site)
            if key not in ctx.cache:
                texts = [str(t) for t in ctx.table.examples["text"].iloc[:8]] or [self.prompt]
                ctx.cache[key] = residual_norm(model, site, texts)
            scale = ctx.cache[key]
        position = placeholder_position(model, self.prompt, self.placeholder)
        gen = {"max_new_tokens": self.max_new_tokens, "do_sample": False}
        base_key = ("patchscope-baseline", self.prompt, self.max_new_tokens)
        if base_key not in ctx.cache:
            ctx.cache[base_key] = model.generate(self.prompt, **gen)[0]
        with model.edits(self.edit(site, direction, float(scale), position)):
            text = model.generate(self.prompt, **gen)[0]
        return {"self_explanation": {
            "method": "patchscope", "prompt": self.prompt, "layer": layer, "site": site,
            "scale": float(scale), "mode": self.mode, "position": position,
            "text": text.strip(), "baseline_text": ctx.cache[base_key].strip(),
        }}
