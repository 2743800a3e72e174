"""`graph_chart`: the attribution graph's kept nodes and edges, in layer columns, as a vega-lite spec."""

from __future__ import annotations

import json

import pytest

from interpkit.viz import graph_chart, graph_chart_data


@pytest.fixture(scope="module")
def graphs():
    from interpkit.circuits import attribute, planted_circuit

    pc = planted_circuit()
    full = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False)
    return full, full.prune()


def _layers(spec):
    return {json.dumps(layer["encoding"]["x"]["field"]): layer for layer in spec["layer"]}


def test_chart_draws_the_kept_nodes_and_edges(graphs):
    _, g = graphs
    spec = graph_chart(g, labels={"L0.p4.f0": "letter c"}).to_dict()
    edges_layer, nodes_layer = spec["layer"]
    nodes, edges = nodes_layer["data"]["values"], edges_layer["data"]["values"]
    kept = {g.node_id(i) for i in range(len(g)) if g.kept[i]}
    assert {n["id"] for n in nodes} == kept
    want = {(r.source, r.target) for r in g.edges_frame().itertuples()}
    assert {(e["source"], e["target"]) for e in edges} == want
    by_id = {n["id"]: n for n in nodes}
    assert by_id["emb.p4"]["column"] == 0 and by_id["L0.p4.f0"]["column"] == 1
    assert by_id["target0"]["column"] == g.n_layers + 1 and by_id["L0.p4.f0"]["label"] == "letter c"
    assert by_id["L0.p4.f0"]["token"] == "c" and by_id["L0.p4.f0"]["latent"] == 0
    assert all(e["sign"] == "positive" and e["abs_weight"] > 0 for e in edges)
    assert nodes_layer["mark"]["type"] == "circle" and edges_layer["mark"]["type"] == "rule"
    assert {"id", "token", "latent", "activation", "influence", "label"} <= {
        t["field"] for t in nodes_layer["encoding"]["tooltip"]}
    assert nodes_layer["encoding"]["size"]["field"] == "influence"
    assert nodes_layer["encoding"]["color"]["field"] == "kind"
    assert edges_layer["encoding"]["strokeWidth"]["field"] == "abs_weight"
    json.dumps(spec)  # serialisable


def test_unpruned_graph_draws_the_most_influential_nodes(graphs):
    full, _ = graphs
    nodes, edges = graph_chart_data(full, max_nodes=5)
    middle = [n for n in nodes if n["kind"] in ("feature", "error")]
    assert len(middle) == 5
    assert sum(n["kind"] == "embedding" for n in nodes) == len(full.tokens)
    ids = {n["id"] for n in nodes}
    assert edges and all(e["source"] in ids and e["target"] in ids for e in edges)
    # nodes sharing a layer and a position are spread around the position
    ys = [n["y"] for n in nodes if n["column"] == 1 and n["position"] == 6]
    assert len(set(ys)) == len(ys)
    assert graph_chart(full, max_nodes=5).to_dict()["layer"][1]["data"]["values"] == nodes
    with pytest.raises(ValueError, match="max_nodes"):
        graph_chart(full, max_nodes=0)


def test_chart_of_a_record(graphs):
    from interpkit.circuits import graph_record

    _, g = graphs
    nodes, _ = graph_chart_data(graph_record(g))
    assert len(nodes) == int(g.kept.sum())
