"""The local replacement model: an HF Llama-family decoder with its nonlinearities frozen at one prompt.

`ReplacementModel` runs the decoder layer by layer in plain torch (the model's own weights, rotary
module and norms) and, for one prompt, records everything attribution needs:

- the clean values: the residual stream, each MLP's input and output, the attention patterns and the
  norm scales (``rsqrt(mean x² + eps)``) at every position;
- a **linear graph** in which the attention patterns and the norm scales are constants, the MLP output
  of each layer with a transcoder is a leaf (its latents plus an error term), and every other layer's
  gated MLP ``down(act(gate x) * up x)`` keeps its gate activations ``act(gate x)`` frozen, so it is
  linear in its input and exact at the clean point (as the attention patterns are). The target is
  then a linear function of the leaves: the token embeddings and the transcoder layers' MLP outputs.
  Gradients of a target's read with respect to the leaves are its direct effects through the residual
  stream, the attention OV circuits and the frozen-gate MLPs. With a transcoder at every layer this is
  circuit-tracer's graph.

`ReplacementModel.run` also replays the exact nonlinear model with additive edits at MLP outputs
(for the ablations that validate a graph); `ReplacementModel.check` compares its logits with the
HF model's own.

Only Llama-family decoders (Llama, SmolLM2, Qwen2, Mistral: ``model.layers[i]`` with
``input_layernorm``, ``self_attn.{q,k,v,o}_proj``, ``post_attention_layernorm``, ``mlp``, a final
``norm`` and a rotary module) are supported; others get a `CircuitError` naming what is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CircuitError", "CleanPass", "ReplacementModel"]


class CircuitError(ValueError):
    """A model, dictionary, target or file the circuits tools cannot use (the message says which and why)."""


@dataclass
class CleanPass:
    """One prompt through the replacement model.

    Attributes:
        ids: token ids ``[n]``.
        embed: token embeddings ``[n, d]`` (a leaf of ``graph``).
        mlp_out: per layer, the MLP output ``[n, d]`` in the graph (a leaf at ``leaf_layers``).
        mlp_in: per layer, the MLP input (after the pre-MLP norm), ``[n, d]``, in the graph.
        resid_mid: per layer, the residual stream between attention and the pre-MLP norm, in the graph.
        resid_post: per layer, the residual stream after the block, ``[n, d]``, in the graph.
        final: the final-normed residual stream ``[n, d]``, in the graph.
        logits: ``[n, vocab]`` (no grad).
        patterns: per layer, attention patterns ``[heads, n, n]`` (no grad).
        scales: the norm scales ``[n, 1]`` in call order (two per layer, then the final norm; no grad).
        skips: the skip transcoders' linear terms kept in the graph, ``{layer: (read, W)}``.
        leaf_layers: the layers whose MLP output is a leaf of the graph.
        gates: per layer, the gated MLP's gate activations (frozen at the other layers; no grad).
        leaves: ``{layer: leaf}`` for ``leaf_layers``: the MLP output less a skip transcoder's linear term.
    """

    ids: torch.Tensor
    embed: torch.Tensor
    mlp_out: list[torch.Tensor]
    mlp_in: list[torch.Tensor]
    resid_mid: list[torch.Tensor]
    resid_post: list[torch.Tensor]
    final: torch.Tensor
    logits: torch.Tensor
    patterns: list[torch.Tensor]
    scales: list[torch.Tensor]
    skips: dict[int, tuple[str, torch.Tensor]]
    leaf_layers: list[int]
    gates: list[torch.Tensor]
    leaves: dict[int, torch.Tensor]


def _orig(module: Any) -> Any:
    """The HF module under a TransformerLens bridge component (the module itself otherwise)."""
    return getattr(module, "original_component", module)


class _Block:
    """One decoder layer's original HF modules (bridge components unwrapped)."""

    def __init__(self, block: Any) -> None:
        block = _orig(block)
        attn = _orig(block.self_attn)
        self.ln1, self.ln2 = _orig(block.input_layernorm), _orig(block.post_attention_layernorm)
        self.q, self.k, self.v, self.o = (_orig(getattr(attn, n)) for n in ("q_proj", "k_proj", "v_proj", "o_proj"))
        self.mlp = _orig(block.mlp)
        parts = [getattr(self.mlp, n, None) for n in ("gate_proj", "up_proj", "down_proj", "act_fn")]
        self.gated = all(x is not None for x in parts)
        self.gate, self.up, self.down, self.act = (_orig(x) if x is not None else None for x in parts)
        cfg = getattr(attn, "config", None)
        self.head_dim = int(getattr(attn, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.scaling = float(getattr(attn, "scaling", None) or self.head_dim ** -0.5)

    def mlp_parts(self, m_in: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(gate activations, MLP output)``; the output is the MLP module's own (a gated MLP's
        ``down(act(gate x) * up x)``, computed from its parts so the gate can be frozen)."""
        if not self.gated:
            return m_in.new_zeros(0), self.mlp(m_in)
        g = self.act(self.gate(m_in))
        return g, self.down(g * self.up(m_in))


def _hf_module(model: Any) -> Any:
    hf = getattr(model, "hf_model", None)
    if hf is None:
        impl = getattr(model, "impl", None)
        hf = getattr(impl, "module", None)
    if hf is None and isinstance(model, torch.nn.Module):
        hf = model
    if hf is None:
        raise CircuitError(f"{type(model).__name__} wraps no HF model: attribution graphs need a local HF "
                           "decoder (load_model(..., backend='nnsight'))")
    return hf


class ReplacementModel:
    """See the module docstring.

    Args:
        model: a `~interpkit.models.ModelWrapper` over a local HF Llama-family decoder (or the HF module).

    Raises:
        CircuitError: the model is not a supported decoder.
    """

    def __init__(self, model: Any) -> None:
        """See the class docstring."""
        self.wrapper = model
        self.hf = _hf_module(model)
        self.inner = getattr(self.hf, getattr(self.hf, "base_model_prefix", "model"), None)
        need = ("layers", "embed_tokens", "norm", "rotary_emb")
        missing = [n for n in need if not hasattr(self.inner, n)]
        if self.inner is None or missing:
            raise CircuitError(f"{type(self.hf).__name__}: attribution graphs support Llama-family decoders; "
                               f"this model lacks {', '.join(missing) or 'a base model'}")
        block = _orig(self.inner.layers[0])
        for name in ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp"):
            if not hasattr(block, name):
                raise CircuitError(f"{type(self.hf).__name__}: decoder layers lack {name!r} "
                                   "(attribution graphs support Llama-family decoders)")
        extra = [n for n in ("pre_feedforward_layernorm", "post_feedforward_layernorm") if hasattr(block, n)]
        if extra:
            raise CircuitError(f"{type(self.hf).__name__}: decoder layers have {', '.join(extra)} "
                               "(Gemma-style sandwich norms are not supported yet)")
        self.head = _orig(self.hf.get_output_embeddings())
        self.blocks = [_Block(b) for b in self.inner.layers]
        self.embed_tokens, self.final_norm = _orig(self.inner.embed_tokens), _orig(self.inner.norm)
        self.rotary = _orig(self.inner.rotary_emb)
        self.n_layers = len(self.blocks)
        self.d_model = int(self.embed_tokens.weight.shape[1])
        self.param = next(self.hf.parameters())

    # ---- pieces ------------------------------------------------------------------------------

    @property
    def W_U(self) -> torch.Tensor:  # noqa: N802
        """Unembedding ``[vocab, d]``."""
        return self.head.weight

    def tokenize(self, prompt: str | Sequence[int]) -> torch.Tensor:
        """Token ids ``[n]`` of a prompt (text through the model's tokenizer; ids kept as given)."""
        if isinstance(prompt, str):
            tok = getattr(self.wrapper, "tokenizer", None)
            if tok is None:
                raise CircuitError("the model has no tokenizer: pass token ids")
            ids = tok(prompt, return_tensors="pt", add_special_tokens=True).input_ids[0]
        else:
            ids = torch.as_tensor(list(prompt), dtype=torch.long)
        if ids.numel() == 0:
            raise CircuitError("the prompt has no tokens")
        return ids.to(self.param.device)

    @staticmethod
    def _norm_scale(norm: Any, x: torch.Tensor) -> torch.Tensor:
        eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6))
        return torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype)

    def _norm(self, norm: Any, x: torch.Tensor, frozen: bool, scales: list[torch.Tensor],
              given: Sequence[torch.Tensor] | None) -> torch.Tensor:
        # ``given``: the clean pass's scales, in call order (the frozen model holds them whatever x is)
        scale = given[len(scales)] if given is not None else self._norm_scale(norm, x)
        if frozen:
            scale = scale.detach()
        scales.append(scale.detach())
        return norm.weight * (x * scale)

    def _attention(self, block: _Block, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], frozen: bool,
                   pattern: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

        n, hd = x.shape[0], block.head_dim
        v = block.v(x).view(n, -1, hd).transpose(0, 1)  # [kv, n, hd]
        if pattern is None:
            q = block.q(x).view(n, -1, hd).transpose(0, 1).unsqueeze(0)
            k = block.k(x).view(n, -1, hd).transpose(0, 1).unsqueeze(0)
            cos, sin = rope
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            q, k = q[0], k[0]
            rep = q.shape[0] // k.shape[0]
            k = k.repeat_interleave(rep, dim=0)
            scores = (q @ k.transpose(-1, -2)) * block.scaling
            causal = torch.ones(n, n, dtype=torch.bool, device=x.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
            pattern = torch.softmax(scores.float(), dim=-1).to(x.dtype)
        if frozen:
            pattern = pattern.detach()
        rep = pattern.shape[0] // v.shape[0]
        v = v.repeat_interleave(rep, dim=0)
        z = (pattern @ v).transpose(0, 1).reshape(n, -1)  # [n, heads*hd]
        return block.o(z), pattern

    # ---- passes ------------------------------------------------------------------------------

    def clean(self, prompt: str | Sequence[int], skips: Mapping[int, tuple[str, torch.Tensor]] | None = None, *,
              leaf_layers: Sequence[int] | None = None) -> CleanPass:
        """The prompt's clean pass and its linear graph (see the module docstring).

        Args:
            prompt: text or token ids.
            skips: ``{layer: (read, W [d, d])}``: a skip transcoder's linear term ``x_read @ W`` stays in the
                graph (``read`` ``"mlp_in"`` or ``"resid_mid"``); that layer's leaf holds the rest of its MLP
                output.
            leaf_layers: the layers whose MLP output is a leaf (those with a transcoder); every other
                layer's gated MLP is linear with its gate activations frozen (exact at the clean point).
                None: every layer is a leaf.

        Raises:
            CircuitError: a layer outside ``leaf_layers`` whose MLP is not gated (it cannot be frozen).
        """
        ids = self.tokenize(prompt)
        skips = dict(skips or {})
        leafs = list(range(self.n_layers)) if leaf_layers is None else sorted(int(x) for x in leaf_layers)
        bad = [layer for layer in range(self.n_layers) if layer not in leafs and not self.blocks[layer].gated]
        if bad:
            raise CircuitError(f"layer {bad[0]}'s MLP is not gated, so it cannot be linearised with frozen gates; "
                               "give it a transcoder or use mlp='error'")
        with torch.no_grad():
            values = self._forward(ids, frozen=False, leaves=None)
        embed = values["embed"].detach().clone().requires_grad_(True)
        leaves: dict[int, torch.Tensor] = {}
        for layer in leafs:
            leaf = values["mlp_out"][layer].detach().clone()
            if layer in skips:
                kind, w = skips[layer]
                leaf = leaf - values[kind][layer].detach() @ w.to(leaf.dtype)
            leaves[layer] = leaf.requires_grad_(True)
        with torch.enable_grad():
            graph = self._forward(ids, frozen=True, leaves=(embed, leaves), patterns=values["patterns"],
                                  scales=values["scales"], skips=skips, gates=values["gates"])
        return CleanPass(ids=ids, embed=embed, mlp_out=graph["mlp_out"], mlp_in=graph["mlp_in"],
                         resid_mid=graph["resid_mid"], resid_post=graph["resid_post"], final=graph["final"],
                         logits=values["logits"], patterns=values["patterns"], scales=values["scales"],
                         skips=skips, leaf_layers=leafs, gates=values["gates"], leaves=leaves)

    def frozen(self, cp: CleanPass, embed: torch.Tensor, leaves: Mapping[int, torch.Tensor]) -> dict[str, Any]:
        """The frozen linear model (``cp``'s patterns, norm scales, gates and skips) on other leaf values
        (``{layer: value}`` for ``cp.leaf_layers``; no grad)."""
        with torch.no_grad():
            return self._forward(cp.ids, frozen=True, leaves=(embed, dict(leaves)), patterns=cp.patterns,
                                 scales=cp.scales, skips=cp.skips, gates=cp.gates)

    def run(self, ids: torch.Tensor, deltas: Mapping[int, torch.Tensor] | None = None, *,
            mlp_edits: Mapping[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
            ) -> dict[str, Any]:
        """The exact (nonlinear) model with edits at MLP outputs.

        Args:
            ids: token ids ``[n]``.
            deltas: ``{layer: [n, d]}`` added to that layer's MLP output.
            mlp_edits: ``{layer: fn(mlp_in, mlp_out) -> mlp_out}``, applied after ``deltas`` (e.g. removing
                a transcoder latent's contribution as it is *in this run*).

        Returns the dict of values (``logits``, ``mlp_in``, ``mlp_out``, ``resid_post``, ``final``).
        """
        with torch.no_grad():
            return self._forward(ids, frozen=False, leaves=None, deltas=deltas or {}, mlp_edits=mlp_edits or {})

    def _forward(self, ids: torch.Tensor, *, frozen: bool, leaves: Any, patterns: Sequence[Any] | None = None,
                 scales: Sequence[torch.Tensor] | None = None,
                 skips: Mapping[int, tuple[str, torch.Tensor]] | None = None,
                 gates: Sequence[torch.Tensor] | None = None,
                 deltas: Mapping[int, torch.Tensor] | None = None,
                 mlp_edits: Mapping[int, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None = None,
                 ) -> dict[str, Any]:
        n = ids.shape[0]
        pos = torch.arange(n, device=ids.device).unsqueeze(0)
        h0 = self.embed_tokens(ids.unsqueeze(0))
        rope = self.rotary(h0, position_ids=pos)
        h = leaves[0] if leaves is not None else h0[0]
        out: dict[str, Any] = {"embed": h, "resid_mid": [], "mlp_in": [], "mlp_out": [], "resid_post": [],
                               "patterns": [], "scales": [], "gates": []}
        sc = out["scales"]
        for layer, block in enumerate(self.blocks):
            a, pattern = self._attention(block, self._norm(block.ln1, h, frozen, sc, scales), rope, frozen,
                                         None if patterns is None else patterns[layer])
            h = h + a
            out["resid_mid"].append(h)
            m_in = self._norm(block.ln2, h, frozen, sc, scales)
            if leaves is None:
                gate, m_out = block.mlp_parts(m_in)
                out["gates"].append(gate.detach())
            elif layer in leaves[1]:
                m_out = leaves[1][layer]
                if skips and layer in skips:
                    kind, w = skips[layer]
                    m_out = m_out + (h if kind == "resid_mid" else m_in) @ w.to(h.dtype)
            else:  # a gated MLP with its gate activations frozen: linear in m_in, exact at the clean point
                m_out = block.down(gates[layer].detach() * block.up(m_in))
            if deltas and layer in deltas:
                m_out = m_out + deltas[layer]
            if mlp_edits and layer in mlp_edits:
                m_out = mlp_edits[layer](m_in, m_out)
            h = h + m_out
            out["mlp_in"].append(m_in)
            out["mlp_out"].append(m_out)
            out["resid_post"].append(h)
            out["patterns"].append(pattern.detach())
        out["final"] = self._norm(self.final_norm, h, frozen, sc, scales)
        with torch.no_grad():
            out["logits"] = self.head(out["final"].detach())
        return out

    def check(self, prompt: str | Sequence[int], atol: float = 1e-3) -> float:
        """Largest absolute logit difference between this replica and the HF model on ``prompt``.

        Raises:
            CircuitError: the difference exceeds ``atol`` (the replica is not this model's computation).
        """
        ids = self.tokenize(prompt)
        with torch.no_grad():
            ours = self._forward(ids, frozen=False, leaves=None)["logits"]
            theirs = self.hf(ids.unsqueeze(0), use_cache=False).logits[0]
        gap = float((ours.float() - theirs.float()).abs().max())
        scale = float(theirs.float().abs().max()) or 1.0
        if gap > atol * max(1.0, scale):
            raise CircuitError(f"{type(self.hf).__name__}: the layer-by-layer replica differs from the model's "
                               f"own logits by {gap:.3g}; this architecture is not supported")
        return gap
