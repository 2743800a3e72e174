"""TransformerLens backend: a ``TransformerBridge`` or any HookedRootModule-like object.

Sites map to hook names (``layer3.resid_post`` -> ``blocks.3.hook_resid_post``); capture and edits
are TL forward hooks added with ``model.hooks(...)`` for the duration of one call, so nothing
outlives the call. Early stop raises :class:`StopForward` from the hook of the last site to be
captured, which unwinds the forward before any later block runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ._base import EditApplier, RunResult, StopForward, group_edits
from ._edits import Edit
from ._sites import SITE_KINDS, natsort_key

if TYPE_CHECKING:
    import torch


class TLBackend:
    """Adapter over a TransformerBridge (or HookedTransformer-like ``hooks()``/``hook_dict`` model)."""

    name = "transformer_lens"

    def __init__(self, model: Any) -> None:
        """Wrap ``model``; it must have ``cfg``, ``hook_dict`` and a ``hooks(fwd_hooks=...)`` context."""
        for attr in ("hook_dict", "hooks", "cfg"):
            if not hasattr(model, attr):
                raise TypeError(f"{type(model).__name__} is not a TransformerLens model (no {attr!r})")
        self.model = model
        _read_kv_cache_as_cache_kwarg(model)
        self.n_layers = int(model.cfg.n_layers)
        self.d_model = int(model.cfg.d_model)
        hooks = set(model.hook_dict)
        self._site_map = {
            f"layer{layer}.{kind}": _tl_hook(layer, kind)
            for layer in range(self.n_layers)
            for kind in SITE_KINDS
            if _tl_hook(layer, kind) in hooks
        }

    def hook_names(self) -> list[str]:
        """All TransformerLens hook names, natural-sorted."""
        return sorted(self.model.hook_dict, key=natsort_key)

    def canonical_sites(self) -> list[str]:
        """Canonical sites with a matching hook."""
        return list(self._site_map)

    def _hook(self, site: str) -> str:
        return self._site_map.get(site, site)

    def _edit_hooks(self, edits: Sequence[Edit]) -> list[tuple[str, Callable]]:
        hooks = []
        for site, site_edits in group_edits(edits).items():
            applier = EditApplier(site_edits)
            hooks.append((self._hook(site), lambda x, hook, _a=applier: _a(x)))
        return hooks

    def run(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        capture: Sequence[str],
        edits: Sequence[Edit],
        stop_early: bool,
        grad: bool = False,
    ) -> RunResult:
        """Forward with TL hooks; see :class:`~interpkit.models._base.ActivationBackend`."""
        import torch

        acts: dict[str, torch.Tensor] = {}
        pending = set(capture)

        def make_capture(site: str) -> Callable:
            def capture_hook(x: torch.Tensor, hook: Any) -> None:
                acts[site] = x.detach()
                pending.discard(site)
                if stop_early and not pending:
                    raise StopForward

            return capture_hook

        hooks = self._edit_hooks(edits) + [(self._hook(site), make_capture(site)) for site in capture]
        logits = None
        with torch.set_grad_enabled(grad), self.model.hooks(fwd_hooks=hooks):
            try:
                logits = self.model(input_ids, attention_mask=attention_mask)
            except StopForward:
                logits = None
        return RunResult(logits=logits, acts=acts)

    def generate(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        *,
        edits: Sequence[Edit],
        max_new_tokens: int,
        do_sample: bool,
        eos_token_id: int | None,
        pad_token_id: int | None,
    ) -> torch.Tensor:
        """``model.generate`` (KV-cached) under edit hooks; returns new token ids ``[n]``."""
        import torch

        del pad_token_id  # one prompt at a time: nothing to pad
        if not hasattr(self.model, "generate"):
            raise NotImplementedError(f"{type(self.model).__name__} has no generate()")
        with torch.no_grad(), self.model.hooks(fwd_hooks=self._edit_hooks(edits)):
            out = self.model.generate(
                input_ids,
                max_new_tokens=max_new_tokens,
                do_sample=do_sample,
                stop_at_eos=eos_token_id is not None,
                eos_token_id=eos_token_id,
                attention_mask=attention_mask,
                return_type="tokens",
                verbose=False,
            )
        return out[0, input_ids.shape[1] :]

    @contextmanager
    def add_hooks(self, mapping: Mapping[str, Callable[[torch.Tensor], torch.Tensor | None]]) -> Iterator[None]:
        """Call ``fn(activation)`` at each site while the context is open."""
        hooks = [(self._hook(site), lambda x, hook, _f=fn: _f(x)) for site, fn in mapping.items()]
        with self.model.hooks(fwd_hooks=hooks):
            yield

    def unembed(self) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """``(model.W_U, model.ln_final)``."""
        return self.model.W_U, self.model.ln_final


def _tl_hook(layer: int, kind: str) -> str:
    """The TransformerLens hook of a canonical site kind.

    ``mlp_in`` is the MLP's own ``mlp.hook_in`` (the normalised input it reads, norm weight
    included), not ``hook_mlp_in``: that one is ln2's input, the residual before the norm.
    """
    return f"blocks.{layer}.mlp.hook_in" if kind == "mlp_in" else f"blocks.{layer}.hook_{kind}"


def _read_kv_cache_as_cache_kwarg(model: Any) -> None:
    """Let a bridge's attention find the KV cache under transformers' new keyword.

    transformers 5.24 renamed the cache keyword that decoder layers pass to attention from
    ``past_key_values`` to ``cache``. TransformerLens 4.3's attention bridges that recompute
    attention themselves read only ``past_key_values``/``layer_past``, so under a KV-cached
    ``generate`` they silently drop the cache and every step attends to its own token alone.
    Each such bridge's ``_update_kv_cache`` is wrapped to look at ``cache`` too (a no-op on
    transformers versions that still pass ``past_key_values``, and on TL versions that read it).
    """
    for module in getattr(model, "modules", lambda: ())():
        update = getattr(module, "_update_kv_cache", None)
        if update is None or getattr(update, "_interpkit_cache_kwarg", False):
            continue

        def cache_aware(k: Any, v: Any, _update: Callable = update, **kwargs: Any) -> Any:
            no_cache = kwargs.get("past_key_values") is None and kwargs.get("layer_past") is None
            if no_cache and kwargs.get("cache") is not None:
                kwargs["past_key_values"] = kwargs["cache"]
            return _update(k, v, **kwargs)

        cache_aware._interpkit_cache_kwarg = True  # type: ignore[attr-defined]
        module._update_kv_cache = cache_aware
