"""``ModelWrapper``: one model API whatever the backend.

The wrapper owns the tokenizer and the site vocabulary and delegates every forward pass to an
:class:`~interpkit.models._base.ActivationBackend`. Edits are plain data held on a stack by
:meth:`ModelWrapper.edits`; each call (``capture``, ``forward``, ``generate``) hands the active
edits to the backend for that call only, so leaving the context restores the model exactly.

Example:
    >>> from interpkit._testing import tiny_model
    >>> model = tiny_model("nnsight")
    >>> batch = model.tokenize(["hello there", "hi"])
    >>> acts = model.capture(batch, "layer1.resid_post")
    >>> tuple(acts["layer1.resid_post"].shape)
    (2, 12, 16)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._base import ActivationBackend
from ._edits import Edit
from ._sites import parse_site, resolve_sites, site_order_key

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenBatch:
    """Right-padded token ids and their mask.

    Attributes:
        input_ids: ``[batch, pos]`` token ids (padding uses the tokenizer's pad id).
        attention_mask: ``[batch, pos]``; 1 for real tokens, 0 for padding.
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    @property
    def lengths(self) -> torch.Tensor:
        """Real (unpadded) length of each row."""
        return self.attention_mask.sum(dim=1)


class ModelWrapper:
    """A language model behind a backend, with one site vocabulary and edit API.

    Attributes:
        name: the model name given to :func:`~interpkit.models.load_model`.
        backend: ``"transformer_lens"`` or ``"nnsight"``.
        tokenizer: the HF tokenizer.
        n_layers: number of transformer blocks.
        d_model: residual stream width.
        device: where inputs are placed.
        hf_model: the underlying HF module, when there is one.
    """

    def __init__(
        self,
        impl: ActivationBackend,
        *,
        name: str,
        tokenizer: Any,
        device: Any = "cpu",
        hf_model: Any = None,
    ) -> None:
        """Wrap a backend adapter; use :func:`~interpkit.models.load_model` rather than this."""
        if tokenizer is None:
            raise ValueError(f"model {name!r} has no tokenizer; pass tokenizer=... to load_model")
        self.impl = impl
        self.name = name
        self.backend = impl.name
        self.tokenizer = tokenizer
        self.device = device
        self.hf_model = hf_model
        self.n_layers = impl.n_layers
        self.d_model = impl.d_model
        self._edit_stack: list[Edit] = []

    def __repr__(self) -> str:
        return f"ModelWrapper({self.name!r}, backend={self.backend!r}, n_layers={self.n_layers})"

    # ---- sites ---------------------------------------------------------------------------------

    def sites(self, *, raw: bool = False) -> list[str]:
        """Canonical site names in forward order, or the backend's raw names with ``raw=True``."""
        return self.impl.hook_names() if raw else self.impl.canonical_sites()

    def resolve_site(self, site: str) -> str:
        """Validate one site name.

        Raises:
            UnknownSiteError: the name is unknown; the message lists the valid sites.
        """
        return resolve_sites(site, self.impl.canonical_sites(), self.impl.hook_names())[0]

    def resolve_sites(self, sites: str | Iterable[str]) -> list[str]:
        """Expand names and ``fnmatch`` patterns (``"layer*.resid_post"``) into site names."""
        return resolve_sites(sites, self.impl.canonical_sites(), self.impl.hook_names())

    # ---- tokens --------------------------------------------------------------------------------

    @property
    def pad_token_id(self) -> int:
        """Pad id: the tokenizer's, else its EOS, else 0."""
        tok = self.tokenizer
        for value in (tok.pad_token_id, tok.eos_token_id):
            if value is not None:
                return int(value)
        return 0

    def tokenize(
        self, texts: str | Sequence[str], *, max_length: int | None = None, prepend_bos: bool = True
    ) -> TokenBatch:
        """Tokenize with right padding.

        Args:
            texts: one text or several.
            max_length: truncate each text to this many tokens (BOS included).
            prepend_bos: start each row with the BOS token (when the tokenizer has one).

        Returns:
            The padded batch on ``self.device``.
        """
        import torch

        texts = [texts] if isinstance(texts, str) else list(texts)
        bos = self.tokenizer.bos_token_id
        rows = []
        for text in texts:
            ids = list(self.tokenizer(text, add_special_tokens=False)["input_ids"])
            if prepend_bos and bos is not None:
                ids = [int(bos), *ids]
            rows.append(ids[:max_length] if max_length else ids)
        width = max(1, *(len(r) for r in rows))
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        return TokenBatch(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device))

    def _batch(self, batch: TokenBatch | str | Sequence[str]) -> TokenBatch:
        return batch if isinstance(batch, TokenBatch) else self.tokenize(batch)

    # ---- running ---------------------------------------------------------------------------------

    def capture(
        self,
        batch: TokenBatch | str | Sequence[str],
        sites: str | Iterable[str],
        *,
        stop_at_deepest: bool = True,
    ) -> dict[str, torch.Tensor]:
        """Activations at ``sites`` (names or glob patterns), each ``[batch, pos, d]``.

        Padding positions hold whatever the model computed there; mask them with
        ``batch.attention_mask``. Active edits apply; with ``stop_at_deepest`` the pass ends right
        after the last requested site, so later layers never run.
        """
        batch = self._batch(batch)
        names = self.resolve_sites(sites)
        result = self.impl.run(
            batch.input_ids,
            batch.attention_mask,
            capture=names,
            edits=self.active_edits,
            stop_early=stop_at_deepest,
        )
        return {name: result.acts[name] for name in names}

    def forward(self, batch: TokenBatch | str | Sequence[str], *, grad: bool = False) -> torch.Tensor:
        """Logits ``[batch, pos, vocab]`` under the active edits.

        Args:
            batch: a token batch or text(s).
            grad: record the pass for autograd, so a loss on the logits reaches tensors an
                :class:`~interpkit.models.Apply` edit closes over (a learnable steering vector).
                Freeze the model's own parameters first if only the edit should get gradients.
        """
        batch = self._batch(batch)
        result = self.impl.run(
            batch.input_ids, batch.attention_mask, capture=(), edits=self.active_edits, stop_early=False,
            grad=grad,
        )
        if result.logits is None:
            raise ValueError(f"{self.name} has no language-model head")
        return result.logits

    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        chat: bool = False,
        temperature: float = 1.0,
        batch_size: int = 1,
        seed: int | None = None,
    ) -> list[str]:
        """Continue each prompt under the active edits and return only the new text.

        Args:
            prompts: one prompt or several.
            max_new_tokens: maximum tokens to add.
            do_sample: sample instead of greedy decoding (plain sampling: no top-k/top-p).
            chat: wrap each prompt as a user turn with the tokenizer's chat template.
            temperature: sampling temperature (with ``do_sample``).
            batch_size: prompts per ``generate`` call. Above 1 the prompts are left-padded; edits
                with ``positions`` always run one prompt at a time (left padding shifts absolute
                positions).
            seed: seed the sampler (the global torch RNG state is restored afterwards).
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        rows = [self._prompt_ids(p, chat) for p in prompts]
        new = self.generate_ids(rows, max_new_tokens=max_new_tokens, do_sample=do_sample,
                                temperature=temperature, batch_size=batch_size, seed=seed)
        return [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in new]

    def generate_ids(
        self,
        rows: Sequence[Sequence[int]],
        *,
        max_new_tokens: int = 32,
        do_sample: bool = False,
        temperature: float = 1.0,
        batch_size: int = 1,
        seed: int | None = None,
    ) -> list[list[int]]:
        """Continue each row of prompt token ids under the active edits; the new ids of each row.

        A local model with an HF module (both backends) generates through that module's own
        ``generate``, KV cache included, with the edits attached as the backend's hooks
        (:meth:`hooks`); an :class:`~interpkit.models._base.EditApplier` per site counts the
        positions across cached steps, so ``positions`` edits fire at the right generated token.
        One generation loop whatever the backend means the two backends give the same tokens, and
        it follows each transformers release's cache API instead of re-implementing it. Models
        without a local HF module (a TL-native model, an nnsight model run remotely on NDIF) use
        the backend's own ``generate``. Each row stops after the tokenizer's EOS, which is kept.
        """
        import contextlib

        import torch

        rows = [[int(i) for i in r] for r in rows]
        if any(not r for r in rows):
            raise ValueError("generate needs at least one prompt token per row")
        rng = torch.random.fork_rng() if seed is not None else contextlib.nullcontext()
        with rng:
            if seed is not None:
                torch.manual_seed(seed)
            if self._generates_through_hf():
                if any(getattr(e, "positions", None) is not None for e in self.active_edits):
                    batch_size = 1
                out: list[list[int]] = []
                for start in range(0, len(rows), max(1, batch_size)):
                    out.extend(self._generate_hf(rows[start : start + max(1, batch_size)],
                                                 max_new_tokens=max_new_tokens, do_sample=do_sample,
                                                 temperature=temperature))
                return out
            if do_sample and temperature != 1.0:
                raise ValueError(f"temperature != 1 needs a local HF-backed model; {self.name} is not one")
            outputs = []
            for ids in rows:
                input_ids = torch.tensor([ids], dtype=torch.long, device=self.device)
                new_ids = self.impl.generate(
                    input_ids,
                    torch.ones_like(input_ids),
                    edits=self.active_edits,
                    max_new_tokens=max_new_tokens,
                    do_sample=do_sample,
                    eos_token_id=self.tokenizer.eos_token_id,
                    pad_token_id=self.pad_token_id,
                )
                outputs.append(self._until_eos(new_ids.tolist()))
            return outputs

    def _generates_through_hf(self) -> bool:
        """A local HF module that can generate (not a remote nnsight run, not meta weights)."""
        model = self.hf_model
        if model is None or not getattr(model, "can_generate", lambda: hasattr(model, "generate"))():
            return False
        if getattr(self.impl, "remote", False):
            return False
        try:
            return not next(model.parameters()).is_meta
        except StopIteration:
            return False

    def _until_eos(self, ids: list[int]) -> list[int]:
        eos = self.tokenizer.eos_token_id
        if eos is not None and eos in ids:
            return ids[: ids.index(eos) + 1]
        return ids

    def _prompt_ids(self, prompt: str, chat: bool) -> list[int]:
        if not chat:
            batch = self.tokenize(prompt)
            return batch.input_ids[0].tolist()
        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True
        )
        if not isinstance(ids, list):
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def _generate_hf(self, rows: list[list[int]], *, max_new_tokens: int, do_sample: bool,
                     temperature: float) -> list[list[int]]:
        """Left-padded batch through ``hf_model.generate`` with the active edits as hooks."""
        import torch

        from ._base import EditApplier, group_edits

        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            input_ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": do_sample,
                                  "pad_token_id": self.pad_token_id}
        if do_sample:
            kwargs.update(temperature=float(temperature), top_k=0, top_p=1.0)
        else:
            # Greedy: unset the sampling defaults a checkpoint's generation_config may carry, so
            # transformers does not warn that they are ignored.
            kwargs.update(temperature=None, top_k=None, top_p=None)
        if self.tokenizer.eos_token_id is not None:
            kwargs["eos_token_id"] = self.tokenizer.eos_token_id
        appliers = {site: EditApplier(group) for site, group in group_edits(self.active_edits).items()}
        with torch.no_grad(), self.hooks(appliers):
            out = self.hf_model.generate(input_ids=input_ids.to(self.device), attention_mask=mask.to(self.device),
                                         **kwargs)
        return [self._until_eos(row[width:].tolist()) for row in out]

    # ---- edits -----------------------------------------------------------------------------------

    @property
    def active_edits(self) -> tuple[Edit, ...]:
        """Edits applied by every call right now (outermost context first)."""
        return tuple(self._edit_stack)

    @contextmanager
    def edits(self, *edits: Edit) -> Iterator[ModelWrapper]:
        """Apply ``edits`` to every forward, capture and generate inside the block.

        Contexts nest and compose (outer edits run first at a shared site). Nothing is attached to
        the model: on exit the edits are simply no longer passed to the backend.

        Raises:
            UnknownSiteError: an edit names an unknown site.
        """
        resolved = []
        for edit in edits:
            site = self.resolve_site(edit.site)
            if site != edit.site:
                raise ValueError(f"edits need one concrete site, not the pattern {edit.site!r}")
            resolved.append(edit)
        depth = len(self._edit_stack)
        self._edit_stack.extend(resolved)
        try:
            yield self
        finally:
            del self._edit_stack[depth:]

    @contextmanager
    def hooks(self, mapping: dict[str, Callable[[torch.Tensor], torch.Tensor | None]]) -> Iterator[None]:
        """Low-level escape hatch: call ``fn(activation)`` at each site (return a tensor to replace)."""
        for site in mapping:
            self.resolve_site(site)
        with self.impl.add_hooks(mapping):
            yield

    # ---- logit lens --------------------------------------------------------------------------

    @property
    def W_U(self) -> torch.Tensor:  # noqa: N802 - the field's established name
        """Unembedding ``[d_model, vocab]``."""
        return self.impl.unembed()[0]

    @property
    def final_norm(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The final norm applied before the unembedding."""
        return self.impl.unembed()[1]

    def logit_lens(self, resid: torch.Tensor) -> torch.Tensor:
        """Logits read off a residual stream ``[..., d_model]``: ``final_norm(resid) @ W_U``."""
        import torch

        with torch.no_grad():
            return self.final_norm(resid) @ self.W_U

    def layer_of(self, site: str) -> int | None:
        """Block index of a canonical site (``None`` for raw names)."""
        parsed = parse_site(site)
        return None if parsed is None else parsed[0]

    @staticmethod
    def sort_sites(sites: Iterable[str]) -> list[str]:
        """Canonical sites in forward order."""
        return sorted(sites, key=site_order_key)
