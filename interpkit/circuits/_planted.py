"""A planted circuit: a tiny Llama whose MLPs *are* ReLU transcoders, with one known path to its target.

`planted_circuit` is what the circuits tests (and anyone checking a circuit method) recover exactly:
the model is built from a config with hand-set weights, no download.
"""

from __future__ import annotations

from typing import Any

from interpkit._testing import D_MODEL, VOCAB_SIZE, _ids, tiny_tokenizer

__all__ = ["PlantedCircuit", "planted_circuit"]



class PlantedCircuit:
    """A 3-layer Llama whose MLPs *are* ReLU transcoders, with one known path to the target logit.

    Built by `planted_circuit`. The residual stream has an orthonormal basis ``e0 .. e15``; the
    norms are linear to ~1e-6 (``eps`` 1e6, weight 1e3), so the frozen-norm linearisation is exact.

    - the token ``"c"`` embeds as ``2·e0`` (plus noise in ``e8 .. e15``, like every token);
    - layer 0, latent 0 reads ``e0`` and writes ``e1`` (so it fires at every ``"c"``);
    - layer 1's attention attends uniformly (zero queries and keys) and moves ``e1`` to ``e2``;
    - layer 1, latent 0 reads ``e2`` and writes ``e3``; layer 2, latent 0 reads ``e3`` and writes ``e4``;
    - the unembedding row of ``"t"`` is ``e4``: the target logit is layer 2 latent 0's activation;
    - latent 1 of each layer is a distractor chain ``e8 → e9 → e10 → e11`` that never reaches ``e4``.

    For ``prompt`` ``"dog cat"`` (``"c"`` at position 4 of 7), ``expected_edges`` holds the graph's
    direct effects: ``emb@4 → L0 f0@4`` 2, ``L0 f0@4 → L1 f0@6`` 2/7, ``L1 f0@6 → L2 f0@6`` 2/7,
    ``L2 f0@6 → logit "t"`` 2/7.

    Attributes:
        model: the `~interpkit.models.ModelWrapper` (nnsight backend).
        transcoders: ``{layer: SAE}``, ReLU transcoders equal to each layer's MLP (zero error).
        residual_saes: ``{layer: SAE}`` reading ``layer{L}.resid_post``: ``±e_i`` latents (``2i`` is
            ``+e_i``, ``2i+1`` is ``-e_i``), an exact dictionary of the residual stream.
        prompt, target: the prompt and the target token (``"t"``).
        circuit: the node keys on the path, ``("emb", pos)`` or ``(layer, pos, latent)``.
        expected_edges: ``{(source key, target key): weight}``; the logit is the key ``"logit"``.
    """

    def __init__(self, model: Any, transcoders: dict[int, Any], residual_saes: dict[int, Any]) -> None:
        self.model = model
        self.transcoders = transcoders
        self.residual_saes = residual_saes
        self.prompt = "dog cat"
        self.target = "t"
        n, pos = len(self.prompt), self.prompt.index("c")
        last = n - 1
        self.circuit = [("emb", pos), (0, pos, 0), (1, last, 0), (2, last, 0)]
        self.expected_edges = {
            (("emb", pos), (0, pos, 0)): 2.0,
            ((0, pos, 0), (1, last, 0)): 2.0 / n,
            ((1, last, 0), (2, last, 0)): 2.0 / n,
            ((2, last, 0), "logit"): 2.0 / n,
        }


def _relu_dictionary(w_enc: Any, b_enc: Any, w_dec: Any, *, site: str, layer: int, transcoder: bool) -> Any:
    import torch

    from interpkit.sae import SAEConfig, make_sae

    d_in, d_sae = w_enc.shape
    extra = {"site_out": f"layer{layer}.mlp_out"} if transcoder else {}
    cfg = SAEConfig(architecture="relu", d_in=d_in, d_sae=d_sae, apply_b_dec_to_input=False, site=site,
                    layer=layer, model="planted-circuit", **extra)
    sae = make_sae(cfg, seed=0)
    with torch.no_grad():
        sae.W_enc.copy_(w_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(w_dec)
        sae.b_dec.zero_()
    return sae.eval()


def planted_circuit(seed: int = 0, backend: str = "nnsight") -> PlantedCircuit:
    """The `PlantedCircuit` model and its exact transcoders (seeded noise outside the circuit)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from interpkit.models import load_model

    d, n_lat, n_layers = D_MODEL, 8, 3
    config = LlamaConfig(num_hidden_layers=n_layers, hidden_size=d, intermediate_size=n_lat, num_attention_heads=2,
                         num_key_value_heads=2, head_dim=8, vocab_size=VOCAB_SIZE, max_position_embeddings=64,
                         hidden_act="relu", mlp_bias=True, rms_norm_eps=1e6, tie_word_embeddings=False,
                         **_ids())
    model = LlamaForCausalLM(config).eval()
    g = torch.Generator().manual_seed(seed)
    eye = torch.eye(d)
    tok = tiny_tokenizer()
    a_id, t_id = tok.convert_tokens_to_ids("c"), tok.convert_tokens_to_ids("t")
    transcoders: dict[int, Any] = {}
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        emb = torch.zeros(VOCAB_SIZE, d)
        emb[:, 8:] = 0.3 * torch.randn(VOCAB_SIZE, 8, generator=g)
        emb[a_id, 0] = 2.0
        model.model.embed_tokens.weight.copy_(emb)
        head = torch.zeros(VOCAB_SIZE, d)
        head[:, 12:] = torch.randn(VOCAB_SIZE, 4, generator=g)
        head[t_id] = eye[4]
        model.lm_head.weight.copy_(head)
        for norm in [model.model.norm, *(m for layer in model.model.layers
                                         for m in (layer.input_layernorm, layer.post_attention_layernorm))]:
            norm.weight.fill_(1e3)
        # layer 1, head 0: value coordinate 0 reads e1, the output writes it to e2 (queries and keys stay zero)
        attn = model.model.layers[1].self_attn
        attn.v_proj.weight[0] = eye[1]
        attn.o_proj.weight[:, 0] = eye[2]
        reads = [(0, 8), (2, 9), (3, 10)]  # (circuit input, distractor input) per layer
        writes = [(1, 9), (3, 10), (4, 11)]
        for layer in range(n_layers):
            w_enc, w_dec, b_enc = torch.zeros(d, n_lat), torch.zeros(n_lat, d), torch.zeros(n_lat)
            for latent, (r, w) in enumerate(zip(reads[layer], writes[layer], strict=True)):
                w_enc[r, latent], w_dec[latent, w] = 1.0, 1.0
            b_enc[2:] = -1.0  # latents 2.. read nothing and never fire
            mlp = model.model.layers[layer].mlp
            mlp.gate_proj.weight.copy_(w_enc.T)
            mlp.gate_proj.bias.copy_(b_enc)
            mlp.up_proj.bias.fill_(1.0)  # relu(gate x) * 1: the MLP is exactly the ReLU transcoder
            mlp.down_proj.weight.copy_(w_dec.T)
            transcoders[layer] = _relu_dictionary(w_enc, b_enc, w_dec, site=f"layer{layer}.mlp_in", layer=layer,
                                                  transcoder=True)
    pm = torch.cat([eye, -eye], 0)  # [2d, d]: latent 2i = +e_i, 2i+1 = -e_i
    order = torch.stack([torch.arange(d), torch.arange(d) + d], 1).reshape(-1)
    basis = pm[order]
    residual = {layer: _relu_dictionary(basis.T.clone(), torch.zeros(2 * d), basis.clone(),
                                        site=f"layer{layer}.resid_post", layer=layer, transcoder=False)
                for layer in range(n_layers)}
    wrapper = load_model(model, backend, tokenizer=tok, name="planted-circuit")
    return PlantedCircuit(wrapper, transcoders, residual)
