"""nnsight backend: a ``TransformersModel``/``LanguageModel``/``NNsight`` envoy, local or on NDIF.

Sites map to module paths of the wrapped HF model (``layer3.resid_post`` -> the output of
``model.layers.3``). Capture and edits are written as one nnsight trace body: each location is
read in forward order, edited by assignment (``envoy.output = new``; in-place edits on a read
value do not reach the model) and saved; ``tracer.stop()`` ends the pass after the deepest site.
Generation uses two invokes: the first edits every step through ``tracer.iter[:n]``, the second
saves ``tracer.result``, so an early EOS cannot strand the result. The same trace ships to NDIF
with ``remote=True`` (which needs an NDIF API key and a model loaded by hub name).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._base import (
    EditApplier,
    InterpkitRemoteError,
    RunResult,
    first_tensor,
    group_edits,
    replace_first,
)
from ._edits import Edit
from ._hf import hf_dims, hf_site_map, hf_unembed

if TYPE_CHECKING:
    import torch


@dataclass(slots=True)
class _Op:
    """One location touched by a trace body, in forward order."""

    key: float
    envoy: Any
    where: str
    applier: EditApplier | None = None
    names: list[str] = field(default_factory=list)


class NNsightBackend:
    """Adapter over an nnsight envoy whose module is (or wraps) a HuggingFace model."""

    name = "nnsight"

    def __init__(self, lm: Any, *, remote: bool | str = False) -> None:
        """Wrap ``lm``; ``remote`` is passed to every trace (``True``: NDIF, ``"local"``: simulate)."""
        module = getattr(lm, "_module", None)
        if module is None or not hasattr(lm, "trace"):
            raise TypeError(f"{type(lm).__name__} is not an nnsight model")
        self.lm = lm
        self.module = module
        self.remote = remote
        self.n_layers, self.d_model = hf_dims(module)
        self._site_map = hf_site_map(module)
        self._paths = [path for path, _ in module.named_modules() if path]
        self._orders: dict[bool, dict[tuple[str, str], float]] = {}

    def hook_names(self) -> list[str]:
        """Module paths of the wrapped model (a raw site means that module's output)."""
        return list(self._paths)

    def canonical_sites(self) -> list[str]:
        """Canonical sites found in the HF module tree."""
        return list(self._site_map)

    def _location(self, site: str) -> tuple[str, str]:
        return self._site_map.get(site, (site, "output"))

    def _envoy(self, path: str) -> Any:
        envoy = self.lm
        for part in path.split("."):
            envoy = envoy[int(part)] if part.isdigit() else getattr(envoy, part)
        return envoy

    def _event_order(self, probe: bool) -> dict[tuple[str, str], float]:
        """Forward order of every module input/output event.

        The module-tree order (a module's input before its children, its output after them) is
        right for the canonical sites of standard HF blocks. Raw sites may sit in modules declared
        out of call order (Llama declares its norms after the MLP), so with ``probe`` a local model
        records the real order once with a two-token forward.
        """
        probe = probe and not self.remote and not _on_meta(self.module)
        if probe in self._orders:
            return self._orders[probe]
        order: dict[tuple[str, str], float] = {}
        if probe:
            order = _probe_order(self.module, dict(self.module.named_modules()))
        if not order:
            for index, path in enumerate(self._paths):
                order[(path, "input")] = float(index)
            for path in reversed(self._paths):
                last_child = max(
                    (order[(p, "input")] for p in self._paths if p.startswith(path + ".")),
                    default=order[(path, "input")],
                )
                # Nested modules share their last descendant: the inner one finishes first.
                order[(path, "output")] = last_child + 0.5 - path.count(".") * 1e-4
        self._orders[probe] = order
        return order

    def _ops(self, capture: Sequence[str], edits: Sequence[Edit]) -> list[_Op]:
        raw = any(site not in self._site_map for site in [*capture, *(e.site for e in edits)])
        order = self._event_order(probe=raw)
        ops: dict[tuple[str, str], _Op] = {}

        def op_for(site: str) -> _Op:
            path, where = self._location(site)
            if (path, where) not in ops:
                ops[(path, where)] = _Op(order.get((path, where), float("inf")), self._envoy(path), where)
            return ops[(path, where)]

        for site, site_edits in group_edits(edits).items():
            op_for(site).applier = EditApplier(site_edits)
        for site in capture:
            op_for(site).names.append(site)
        return sorted(ops.values(), key=lambda op: op.key)

    def _trace_kwargs(self) -> dict[str, Any]:
        if not self.remote:
            return {}
        if self.remote is True:
            check_remote_ready(self.lm)
        return {"remote": self.remote}

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
        """One nnsight trace; see :class:`~interpkit.models._base.ActivationBackend`."""
        import nnsight
        import torch

        ops = self._ops(capture, edits)
        stop = bool(stop_early and capture)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        with torch.set_grad_enabled(grad), _remote_errors(), self.lm.trace(inputs, **self._trace_kwargs()) as tracer:
            acts = nnsight.save({})
            for op in ops:
                value = op.envoy.output if op.where == "output" else op.envoy.input
                hidden = first_tensor(value)
                if op.applier is not None:
                    hidden = op.applier(hidden)
                    if op.where == "output":
                        op.envoy.output = replace_first(value, hidden)
                    else:
                        op.envoy.input = hidden
                for name in op.names:
                    acts[name] = hidden
            if stop:
                tracer.stop()
            logits = nnsight.save(getattr(self.lm.output, "logits", None))
        if stop:
            logits = None
        return RunResult(logits=logits, acts={k: v.detach() for k, v in acts.items()})

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
        """``lm.generate`` trace editing every step; returns new token ids ``[n]``."""
        import nnsight
        import torch

        if not hasattr(self.lm, "generate") or not hasattr(self.lm, "generator"):
            raise NotImplementedError(
                f"{type(self.lm).__name__} cannot generate; wrap the model in nnsight.TransformersModel"
            )
        ops = self._ops((), edits)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
        if pad_token_id is not None:
            kwargs["pad_token_id"] = pad_token_id
        if eos_token_id is not None:
            kwargs["eos_token_id"] = eos_token_id
        with warnings.catch_warnings():
            # An EOS before max_new_tokens leaves the edit loop's next step unserved, which
            # nnsight reports as a warning; the saved result is complete either way.
            warnings.filterwarnings("ignore", message=".*(dangling|never reached|did not run).*")
            with (
                torch.no_grad(),
                _remote_errors(),
                self.lm.generate(**kwargs, **self._trace_kwargs()) as tracer,
            ):
                with tracer.invoke(inputs):
                    for _step in tracer.iter[:max_new_tokens]:
                        for op in ops:
                            value = op.envoy.output if op.where == "output" else op.envoy.input
                            hidden = op.applier(first_tensor(value))
                            if op.where == "output":
                                op.envoy.output = replace_first(value, hidden)
                            else:
                                op.envoy.input = hidden
                with tracer.invoke():
                    ids = nnsight.save(tracer.result)
        return ids[0, input_ids.shape[1] :]

    @contextmanager
    def add_hooks(self, mapping: Mapping[str, Callable[[torch.Tensor], torch.Tensor | None]]) -> Iterator[None]:
        """Plain torch forward hooks on the wrapped modules (local models only)."""
        modules = dict(self.module.named_modules())
        handles = []
        try:
            for site, fn in mapping.items():
                path, where = self._location(site)
                handles.append(_torch_hook(modules[path], where, fn))
            yield
        finally:
            for handle in handles:
                handle.remove()

    def unembed(self) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
        """The HF model's output embedding (transposed) and final norm."""
        return hf_unembed(self.module)


def _torch_hook(module: Any, where: str, fn: Callable) -> Any:
    if where == "input":

        def pre_hook(mod: Any, args: tuple, kwargs: dict) -> Any:
            out = fn(args[0]) if args else fn(kwargs["hidden_states"])
            if out is None:
                return None
            if args:
                return (out, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": out}

        return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    def hook(mod: Any, args: tuple, output: Any) -> Any:
        out = fn(first_tensor(output))
        return None if out is None else replace_first(output, out)

    return module.register_forward_hook(hook)


def _on_meta(module: Any) -> bool:
    try:
        return next(module.parameters()).is_meta
    except StopIteration:
        return False


def _probe_order(module: Any, modules: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Record module input/output events of a two-token forward (empty dict if it fails)."""
    import torch

    events: list[tuple[str, str]] = []
    handles = []
    for path, mod in modules.items():
        if not path:
            continue
        handles.append(mod.register_forward_pre_hook(lambda m, a, _p=path: events.append((_p, "input"))))
        handles.append(mod.register_forward_hook(lambda m, a, o, _p=path: events.append((_p, "output"))))
    try:
        device = next(module.parameters()).device
        with torch.no_grad():
            module(input_ids=torch.zeros(1, 2, dtype=torch.long, device=device))
    except Exception:  # noqa: BLE001 - any failure just means "use tree order"
        events = []
    finally:
        for handle in handles:
            handle.remove()
    order: dict[tuple[str, str], float] = {}
    for index, event in enumerate(events):
        order.setdefault(event, float(index))
    return order


def check_remote_ready(lm: Any) -> None:
    """Fail early, with the fix, when a remote (NDIF) run cannot work.

    Raises:
        InterpkitRemoteError: no NDIF API key, the model was not loaded by hub name, or the hub
            could not be reached to resolve its id.
    """
    from nnsight import CONFIG

    if not (CONFIG.API.APIKEY or os.environ.get("NDIF_API_KEY")):
        raise InterpkitRemoteError(
            "remote=True runs the trace on NDIF and needs an API key: get one at https://login.ndif.us, "
            "then set NDIF_API_KEY=<key> in the environment or call "
            "nnsight.CONFIG.set_default_api_key('<key>'). Use remote=False to run locally."
        )
    with _remote_errors():
        try:
            lm.to_model_key()
        except (ValueError, TypeError, NotImplementedError, AttributeError) as error:
            raise InterpkitRemoteError(
                "remote=True needs a model NDIF can name: load it by hub id, e.g. "
                "load_model('meta-llama/Llama-3.1-8B', backend='nnsight', remote=True); "
                f"this one is a local module ({error})."
            ) from error


@contextmanager
def _remote_errors() -> Iterator[None]:
    """Turn network failures of a remote trace into :class:`InterpkitRemoteError`."""
    try:
        yield
    except InterpkitRemoteError:
        raise
    except Exception as error:
        names = {cls.__name__ for cls in type(error).__mro__}
        if names & {"RemoteError", "ConnectError", "HTTPError", "WebSocketException", "OSError", "ConnectionError"}:
            raise InterpkitRemoteError(
                f"remote execution on NDIF failed: {error}. Check the network connection to "
                "https://api.ndif.us (or NDIF_HOST), the API key (NDIF_API_KEY), and that the model is "
                "hosted (https://nnsight.net/status); or pass remote=False to run locally."
            ) from error
        raise
