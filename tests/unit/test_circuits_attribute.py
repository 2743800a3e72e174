"""Attribution graphs: exact on a planted circuit, exact linear rows on random models, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from interpkit._testing import tiny_model
from interpkit.circuits import (
    AttributionGraph,
    CircuitError,
    Direction,
    ReplacementModel,
    attribute,
    planted_circuit,
)
from interpkit.circuits._validate import ablate_nodes, predict_ablation, top_path, validate_graph
from interpkit.sae import SAEConfig, make_sae


@pytest.fixture(scope="module")
def pc():
    return planted_circuit()


def _key(g: AttributionGraph, key) -> int:
    if key == "logit":
        return int(np.flatnonzero(g.mask("target"))[0])
    if key[0] == "emb":
        return g.index(f"emb.p{key[1]}")
    return g.index(f"L{key[0]}.p{key[1]}.f{key[2]}")


def test_planted_circuit_edges_are_recovered_exactly(pc):
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False)
    for (src, dst), weight in pc.expected_edges.items():
        assert g.adjacency[_key(g, dst), _key(g, src)] == pytest.approx(weight, abs=1e-5)
    assert g.settings["max_row_gap"] < 1e-5
    assert all(v == 0 for v in g.settings["reconstruction_error"].values())
    # the target's value is the logit itself (not demeaned) and equals the chain's product
    assert g.activations[-1] == pytest.approx(2 / 7, abs=1e-5)


def test_planted_circuit_pruning_keeps_exactly_the_circuit(pc):
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()
    kept = {g.node_id(i) for i in np.flatnonzero(g.kept & g.mask("feature"))}
    assert kept == {"L0.p4.f0", "L1.p6.f0", "L2.p6.f0"}
    assert g.mask("feature").sum() > 10  # distractors were active, and pruned
    scores = g.scores()
    assert scores["replacement_score"] == pytest.approx(1.0)
    assert scores["completeness_score"] == pytest.approx(1.0)
    assert scores["kept_influence"] == pytest.approx(1.0)
    path = [g.node_id(i) for i in top_path(g)]
    assert path == ["emb.p4", "L0.p4.f0", "L1.p6.f0", "L2.p6.f0", "target0"]


def test_planted_ablations_match_the_graph(pc):
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()
    for nid in ("L0.p4.f0", "L1.p6.f0", "L2.p6.f0"):
        i = g.index(nid)
        assert predict_ablation(g, [i]) == pytest.approx(-2 / 7, abs=1e-5)
        assert ablate_nodes(pc.model, g, [i], pc.transcoders) == pytest.approx(-2 / 7, abs=1e-5)
    chain = [g.index(n) for n in ("L0.p4.f0", "L1.p6.f0")]
    # zero-ablation removes a latent as it is in the edited run: the chain is removed once, not twice
    assert ablate_nodes(pc.model, g, chain, pc.transcoders) == pytest.approx(-2 / 7, abs=1e-5)
    assert predict_ablation(g, chain) == pytest.approx(-2 / 7, abs=1e-5)
    off = g.index("L1.p4.f0")  # active, but at a position the target never reads
    assert ablate_nodes(pc.model, g, [off], pc.transcoders) == pytest.approx(0.0, abs=1e-7)


def test_validate_graph_on_the_planted_circuit(pc):
    res = validate_graph(pc.model, [pc.prompt, "a cat cut"], pc.target, transcoders=pc.transcoders, demean=False,
                         ks=(1, 2, 3), n_random=2)
    top = res.summary["top"]
    assert top["pearson_r"] == pytest.approx(1.0, abs=1e-4)
    assert top["slope"] == pytest.approx(1.0, abs=1e-3)
    assert res.summary["top"]["removed_share_by_k"][1] == pytest.approx(1.0, abs=1e-4)
    assert res.summary["top_path"]["mean_removed_share"] == pytest.approx(1.0, abs=1e-4)
    assert set(res.rows.selection) == {"top", "random"}
    assert len(res.graphs) == 2


def _random_transcoders(model, layers, k=4, seed=0):
    rm = ReplacementModel(model)
    out = {}
    for layer in layers:
        cfg = SAEConfig(architecture="topk", d_in=rm.d_model, d_sae=32, k=k, apply_b_dec_to_input=False,
                        site=f"layer{layer}.mlp_in", layer=layer)
        sae = make_sae(cfg, seed=seed + layer)
        with torch.no_grad():
            sae.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(layer))
            sae.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(layer + 7))
        out[layer] = sae.eval()
    return out


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_replica_matches_the_model(backend):
    model = tiny_model(backend=backend, arch="llama")
    assert ReplacementModel(model).check("hello there cat") < 1e-4


@pytest.mark.parametrize(("layers", "mlp"), [([0, 1], "frozen-gate"), ([1], "frozen-gate"), ([1], "error")])
def test_rows_are_exact_linear_direct_effects(layers, mlp):
    """Each edge equals the change of the read when that source is removed from the frozen linear model."""
    model = tiny_model(arch="llama")
    tcs = _random_transcoders(model, layers)
    prompt = "the cat sat on"
    g = attribute(model, prompt, " ", transcoders=tcs, max_feature_nodes=None, mlp=mlp)
    assert g.settings["max_row_gap"] < 1e-4
    assert set(g.layers[g.mask("error")].tolist()) == (set(layers) if mlp == "frozen-gate" else {0, 1})
    rm = ReplacementModel(model)
    cp = rm.clean(prompt, leaf_layers=layers if mlp == "frozen-gate" else None)
    target = int(np.flatnonzero(g.mask("target"))[0])
    w_u = rm.W_U.detach()
    vec = w_u[model.tokenizer.convert_tokens_to_ids(" ")] - w_u.mean(0)
    feats = np.flatnonzero(g.mask("feature"))
    rng = np.random.default_rng(0)
    for i in rng.choice(feats, size=min(5, feats.size), replace=False):
        layer, pos, lat = int(g.layers[i]), int(g.positions[i]), int(g.latents[i])
        sae = tcs[layer]
        contrib = float(g.activations[i]) * sae.W_dec[lat].detach()
        leaves = {j: cp.leaves[j].detach().clone() for j in cp.leaf_layers}
        leaves[layer][pos] -= contrib
        out = rm.frozen(cp, cp.embed.detach(), leaves)
        change = float((cp.final[-1].detach() - out["final"][-1]) @ vec)
        assert g.adjacency[target, i] == pytest.approx(change, rel=1e-3, abs=1e-5)
    # a feature's row sums, with the transcoders' b_dec reads, to its pre-activation minus its encoder bias
    i = int(feats[-1])
    layer, pos, lat = int(g.layers[i]), int(g.positions[i]), int(g.latents[i])
    with torch.no_grad():
        x = cp.mlp_in[layer][pos].detach()
        pre = float(tcs[layer].pre_activations(x)[lat] - tcs[layer].encoder_bias()[lat])
        zeros = torch.zeros_like(cp.embed)
        only_bias = {j: tcs[j].b_dec.detach().expand_as(zeros).clone() if j in tcs else torch.zeros_like(zeros)
                     for j in cp.leaf_layers}
        bias = float(rm.frozen(cp, zeros, only_bias)["mlp_in"][layer][pos] @ tcs[layer].W_enc[:, lat])
    assert float(g.adjacency[i].astype(np.float64).sum()) + bias == pytest.approx(pre, abs=1e-4)


def test_batched_and_unbatched_rows_agree(monkeypatch):
    from interpkit.circuits import _attribute

    model = tiny_model(arch="llama")
    tcs = _random_transcoders(model, [1])
    a = attribute(model, "a cat", None, transcoders=tcs)
    real = _attribute._backward

    def unbatched(cp, reads, state):
        state["batched"] = False
        return real(cp, reads, state)

    monkeypatch.setattr(_attribute, "_backward", unbatched)
    b = attribute(model, "a cat", None, transcoders=tcs)
    assert not b.settings["batched_backward"]
    np.testing.assert_allclose(a.adjacency, b.adjacency, atol=1e-6)


def test_max_feature_nodes_picks_by_influence():
    model = tiny_model(arch="llama")
    tcs = _random_transcoders(model, [0, 1], k=8)
    full = attribute(model, "the cat sat on the mat", None, transcoders=tcs, max_feature_nodes=None, batch_size=4)
    capped = attribute(model, "the cat sat on the mat", None, transcoders=tcs, max_feature_nodes=12, batch_size=4)
    assert int(capped.mask("feature").sum()) == 12
    infl = full.influence()
    feat = np.flatnonzero(full.mask("feature"))
    top = {full.node_id(i) for i in feat[np.argsort(-infl[feat])][:4]}
    chosen = {capped.node_id(i) for i in np.flatnonzero(capped.mask("feature"))}
    assert top <= chosen
    np.testing.assert_allclose(capped.adjacency[-1, capped.mask("embedding")],
                               full.adjacency[-1, full.mask("embedding")], atol=1e-6)


def test_targets_logit_difference_direction_and_top():
    model = tiny_model(arch="llama")
    tcs = _random_transcoders(model, [1])
    diff = attribute(model, "a cat", (" ", "t"), transcoders=tcs)
    assert diff.settings["target"][0].startswith("logit")
    rm = ReplacementModel(model)
    logits = rm.clean("a cat").logits[-1]
    tok = model.tokenizer
    assert diff.activations[-1] == pytest.approx(float(logits[tok.convert_tokens_to_ids(" ")] -
                                                       logits[tok.convert_tokens_to_ids("t")]), abs=1e-4)
    v = torch.randn(rm.d_model, generator=torch.Generator().manual_seed(0))
    d = attribute(model, "a cat", Direction(v, layer=0, label="crit"), transcoders=tcs)
    assert d.target_labels == ["crit"] and d.settings["max_row_gap"] < 1e-4
    top = attribute(model, "a cat", None, transcoders=tcs, top_k=3)
    assert len(top.target_labels) == 3 and top.target_weights.sum() == pytest.approx(1.0)


def test_bad_input_is_refused_clearly(pc):
    with pytest.raises(CircuitError, match="Llama-family"):
        attribute(tiny_model(arch="gpt2"), "a cat", None, transcoders={})
    with pytest.raises(CircuitError, match="resid_post"):
        attribute(pc.model, pc.prompt, pc.target, transcoders={0: pc.residual_saes[0]})
    with pytest.raises(CircuitError, match="2 tokens"):
        attribute(pc.model, pc.prompt, "tt", transcoders=pc.transcoders)
    with pytest.raises(CircuitError, match="outside the prompt"):
        attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, position=40)
    with pytest.raises(CircuitError, match="width"):
        attribute(pc.model, pc.prompt, Direction(torch.zeros(3)), transcoders=pc.transcoders)
    with pytest.raises(CircuitError, match="layers 0..2"):
        attribute(pc.model, pc.prompt, pc.target, transcoders={7: pc.transcoders[0]})
    with pytest.raises(CircuitError, match="no transcoders"):
        attribute(pc.model, pc.prompt, pc.target, transcoders={})
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders)
    with pytest.raises(ValueError, match="node_threshold"):
        g.prune(node_threshold=0)
    with pytest.raises(CircuitError, match="only feature nodes"):
        predict_ablation(g, [g.index("emb.p0")])


@pytest.mark.parametrize("reads", ["mlp_in", "resid_mid"])
def test_skip_transcoders_and_resid_mid_reads_stay_exact(reads):
    """A skip transcoder's linear term stays in the graph; a circuit-tracer-style resid_mid reader works too."""
    model = tiny_model(arch="llama")
    rm = ReplacementModel(model)
    d = rm.d_model
    where = ({"site": "layer1.mlp_in"} if reads == "mlp_in" else {"hook_name": "blocks.1.hook_resid_mid"})
    cfg = SAEConfig(architecture="relu", d_in=d, d_sae=24, d_out=d, apply_b_dec_to_input=False,
                    skip_connection=True, site_out="layer1.mlp_out", layer=1, **where)
    sae = make_sae(cfg, seed=3)
    with torch.no_grad():
        sae.W_skip.normal_(0, 0.2, generator=torch.Generator().manual_seed(0))
        sae.b_enc.fill_(0.05)
    g = attribute(model, "the cat sat", None, transcoders={1: sae.eval()}, max_feature_nodes=None)
    assert g.settings["max_row_gap"] < 1e-4
    assert g.mask("feature").sum() > 0
    # the skip path carries layer-0 and embedding effects into layer 1's output: the embeddings' direct
    # effects differ from a graph without the skip
    plain = make_sae(cfg.replace(skip_connection=False), seed=3)
    with torch.no_grad():
        for name in ("W_enc", "b_enc", "W_dec", "b_dec"):
            getattr(plain, name).copy_(getattr(sae, name))
    h = attribute(model, "the cat sat", None, transcoders={1: plain.eval()}, max_feature_nodes=None)
    emb = g.mask("embedding")
    assert not np.allclose(g.adjacency[-1, emb], h.adjacency[-1, emb], atol=1e-6)


def test_unknown_dictionary_input_is_refused():
    model = tiny_model(arch="llama")
    cfg = SAEConfig(architecture="relu", d_in=16, d_sae=8, d_out=16, apply_b_dec_to_input=False,
                    hook_name="blocks.1.ln2.hook_normalized", site_out="layer1.mlp_out", layer=1)
    with pytest.raises(CircuitError, match="does not say it reads the MLP input"):
        attribute(model, "a cat", None, transcoders={1: make_sae(cfg)})


def test_zero_first_moves_the_first_positions_latents_to_its_error_node(pc):
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False, zero_first=True)
    assert g.settings["max_row_gap"] < 1e-5 and g.settings["zero_first"]
    feats = g.mask("feature")
    assert feats.sum() > 0 and not (g.positions[feats] == 0).any()
    full = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False)
    assert (full.positions[full.mask("feature")] == 0).any()  # the distractor fires at position 0
    err0 = [g.index(f"L{layer}.p0.err") for layer in range(3)]
    assert max(float(g.activations[i]) for i in err0) > 0  # what it wrote is now error
    for layer in range(3):  # the other positions' error nodes are unchanged (zero: exact transcoders)
        assert all(float(g.activations[g.index(f"L{layer}.p{q}.err")]) < 1e-6 for q in range(1, 7))
    kept = g.prune()
    assert {kept.node_id(i) for i in np.flatnonzero(kept.kept & kept.mask("feature"))} == {
        "L0.p4.f0", "L1.p6.f0", "L2.p6.f0"}
