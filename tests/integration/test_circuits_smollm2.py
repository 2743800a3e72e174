"""Circuits on SmolLM2: the replica is the model, graphs are exact and scored, paths run on real transcoders.

Transcoders are tiny (a few thousand tokens of the packaged text pool, two layers), trained once for
the module through `ensure_transcoders` into a temporary cache.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from interpkit.circuits import ReplacementModel, ablate_nodes, attribute, ensure_transcoders, latent_paths

pytestmark = pytest.mark.slow

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def tcs(smollm2_nnsight, tmp_path_factory):
    return ensure_transcoders(smollm2_nnsight, [3, 15], max_tokens=3000, max_length=64, latent_dim=1152, k=16,
                              epochs=2, cache_dir=tmp_path_factory.mktemp("tc"))


@pytest.mark.parametrize("fixture", ["smollm2_nnsight", "smollm2_tl"])
def test_the_replica_is_the_model(fixture, request):
    model = request.getfixturevalue(fixture)
    assert ReplacementModel(model).check(PROMPT) < 1e-3


def test_graph_on_smollm2_is_exact_scored_and_ablatable(smollm2_nnsight, tcs):
    g = attribute(smollm2_nnsight, PROMPT, (" Paris", " London"), transcoders=tcs, max_feature_nodes=64)
    value = float(g.activations[-1])
    assert value > 1.0  # the model prefers Paris to London
    assert g.settings["max_row_gap"] < 1e-3 * abs(value)
    assert int(g.mask("feature").sum()) == 64 < g.settings["active_features"]
    p = g.prune()
    s = p.scores()
    assert 0.0 < s["replacement_score"] <= 1.0 and 0.0 < s["completeness_score"] <= 1.0
    # error nodes only at the transcoder layers; with every other MLP an error node instead, the errors
    # take far more of the influence
    assert set(p.layers[p.mask("error")].tolist()) == {3, 15}
    e = attribute(smollm2_nnsight, PROMPT, (" Paris", " London"), transcoders=tcs, max_feature_nodes=64,
                  mlp="error").prune()
    assert e.scores()["error_influence"] > s["error_influence"]
    feat = np.flatnonzero(p.mask("feature"))
    top = feat[np.argsort(-p.influence()[feat])][:1]
    assert math.isfinite(ablate_nodes(smollm2_nnsight, p, top, tcs))


def test_paths_on_smollm2(smollm2_nnsight, tcs):
    rm = ReplacementModel(smollm2_nnsight)
    cp = rm.clean(PROMPT)
    _, codes = tcs[3](cp.mlp_in[3].detach())
    latent = int(codes.detach()[-1].argmax())
    res = latent_paths(smollm2_nnsight, f"L3:tc:{latent}", "layer15", [PROMPT, "The capital of Japan is"],
                       dictionaries={"tc": tcs}, n_random=2, n_boot=50)
    frame = res.frame
    assert len(frame) > 0
    assert np.isfinite(frame["total"].to_numpy(float)).all()
