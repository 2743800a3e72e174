"""Attribution graphs on disk: interpkit's graph.json (+ sidecar), the Neuronpedia / circuit-tracer JSON, save/load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from interpkit.circuits import graph_from_record, graph_record, load_graph, save_graph
from interpkit.records import (
    GraphRecord,
    RecordError,
    neuronpedia_graph,
    read_graph_file,
    read_graph_record,
    read_neuronpedia_graph,
    write_graph_record,
)
from interpkit.records._graph import graph_node_id
from interpkit.records._graph_neuronpedia import cantor_pairing, cumulative_influence

FIXTURE = Path(__file__).resolve().parents[1] / "data" / "graphs" / "graph-circuit-tracer.json"
NODE_KEYS = ["node_id", "feature", "layer", "ctx_idx", "feature_type", "token_prob", "is_target_logit", "run_idx",
             "reverse_ctx_idx", "jsNodeId", "clerp", "influence", "activation"]  # circuit-tracer's Node fields


@pytest.fixture(scope="module")
def full():
    from interpkit.circuits import attribute, planted_circuit

    pc = planted_circuit()
    return attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False)


@pytest.fixture(scope="module")
def pruned(full):
    g = full.prune()
    g.labels = {"L0.p4.f0": "the letter c", "L2.p6.f0": "says t"}
    return g


def _same_graph(a, b):
    assert a.kinds == b.kinds and a.tokens == b.tokens and list(a.token_ids) == list(b.token_ids)
    assert np.array_equal(a.adjacency, b.adjacency)
    for name in ("layers", "positions", "latents", "attributed", "target_weights"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.allclose(a.activations, b.activations)
    assert (a.kept is None) == (b.kept is None)
    if a.kept is not None:
        assert np.array_equal(a.kept, b.kept) and np.array_equal(a.edge_mask, b.edge_mask)
    assert a.labels == b.labels and a.target_labels == b.target_labels and a.n_layers == b.n_layers


# ---------------------------------------------------------------------------- interpkit's graph.json


def test_node_ids_match_the_in_memory_graph(full):
    targets = 0
    for i in range(len(full)):
        kind = full.kinds[i]
        latent = int(full.latents[i]) if kind == "feature" else None
        assert graph_node_id(kind, int(full.layers[i]), int(full.positions[i]), latent, targets) == full.node_id(i)
        targets += kind == "target"


@pytest.mark.parametrize("inline_links", [10**6, 0])
def test_graph_json_round_trip_inline_and_sidecar(pruned, tmp_path, inline_links):
    rec = graph_record(pruned)
    out = write_graph_record(rec, tmp_path / "g", inline_links=inline_links)
    names = sorted(p.name for p in out.iterdir())
    assert names == (["graph.json"] if inline_links else ["graph.json", "links.safetensors"])
    data = json.loads((out / "graph.json").read_text())
    assert data["format"] == "interpkit.graph" and data["schema_version"] == 1 and data["pruned"] is True
    back = read_graph_record(out)
    assert back == rec and back.path == out / "graph.json"
    g = graph_from_record(back)
    _same_graph(g, pruned)
    assert g.scores() == pruned.scores()
    # every nonzero edge is kept on disk, so the reloaded graph prunes again like the original
    assert rec.n_links == int((pruned.adjacency != 0).sum()) > int(pruned.edge_mask.sum())
    again, orig = g.prune(0.5, 0.9), pruned.prune(0.5, 0.9)
    assert np.array_equal(again.kept, orig.kept) and np.array_equal(again.edge_mask, orig.edge_mask)


def test_an_unpruned_graph_round_trips_without_kept_flags(full, tmp_path):
    rec = graph_record(full)
    assert not rec.pruned
    data = json.loads((write_graph_record(rec, tmp_path / "g") / "graph.json").read_text())
    assert data["pruned"] is False and all(link["kept"] is None for link in data["links"])
    g = graph_from_record(read_graph_record(tmp_path / "g" / "graph.json"))
    _same_graph(g, full)


def _write(tmp_path, data, name="graph.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.fixture
def good(pruned):
    return graph_record(pruned).to_dict()


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.pop("n_layers"), "n_layers"),
    (lambda d: d.update(format="interpkit.report"), "format"),
    (lambda d: d.update(schema_version=99), "schema_version"),
    (lambda d: d.update(colour="red"), "colour"),
    (lambda d: d["nodes"][0].update(kind="neuron"), "nodes[0].kind"),
    (lambda d: d["nodes"][0].update(id="L0.p4.f7"), "nodes[0].id"),
    (lambda d: d["nodes"][0].update(layer=9), "nodes[0].layer"),
    (lambda d: d["nodes"][0].update(activation="big"), "nodes[0].activation"),
    (lambda d: d["nodes"][0].pop("position"), "nodes[0].position"),
    (lambda d: d["links"][0].update(source="L9.p0.f0"), "links[0].source"),
    (lambda d: d["links"][1].update(weight=None), "links[1].weight"),
    (lambda d: d["links"][1].pop("kept"), "links[1].kept"),
    (lambda d: d["targets"].append(dict(d["targets"][0], node=None)), "targets"),
    (lambda d: d["targets"][0].update(weight=-1.0), "targets[0].weight"),
])
def test_graph_json_reader_names_the_file_and_field(tmp_path, good, edit, field):
    edit(good)
    path = _write(tmp_path, good)
    with pytest.raises(RecordError) as info:
        read_graph_record(path)
    assert info.value.path == str(path) and info.value.field == field, str(info.value)
    assert str(path) in str(info.value)


def test_graph_json_reader_names_the_line_of_a_truncated_file(tmp_path, pruned):
    out = write_graph_record(graph_record(pruned), tmp_path / "g")
    text = (out / "graph.json").read_text()
    (out / "graph.json").write_text(text[: len(text) // 2])
    with pytest.raises(RecordError) as info:
        read_graph_record(out)
    assert info.value.line is not None and info.value.line > 1
    assert f"graph.json:{info.value.line}:" in str(info.value)


def test_sidecar_that_does_not_match_is_refused(tmp_path, pruned):
    out = write_graph_record(graph_record(pruned), tmp_path / "g", inline_links=0)
    blob = bytearray((out / "links.safetensors").read_bytes())
    blob[-1] ^= 1
    (out / "links.safetensors").write_bytes(bytes(blob))
    with pytest.raises(RecordError, match="sha256") as info:
        read_graph_record(out)
    assert info.value.field == "links.sha256"
    (out / "links.safetensors").unlink()
    with pytest.raises(RecordError, match="missing"):
        read_graph_record(out)


def test_record_refuses_duplicate_links(pruned):
    rec = graph_record(pruned)
    with pytest.raises(RecordError, match="one link per"):
        GraphRecord(**{**_fields(rec), "link_source": np.r_[rec.link_source, rec.link_source[:1]],
                       "link_target": np.r_[rec.link_target, rec.link_target[:1]],
                       "link_weight": np.r_[rec.link_weight, rec.link_weight[:1]],
                       "link_kept": np.r_[rec.link_kept, rec.link_kept[:1]]})


def _fields(rec):
    names = ("prompt", "tokens", "token_ids", "model", "n_layers", "targets", "nodes", "link_source",
             "link_target", "link_weight", "link_kept", "dictionaries", "settings", "scores", "extra")
    return {n: getattr(rec, n) for n in names}


# ---------------------------------------------------------------------------- Neuronpedia / circuit-tracer


def test_neuronpedia_export_has_circuit_tracers_layout(pruned):
    data = neuronpedia_graph(graph_record(pruned), slug="planted")
    assert list(data) == ["metadata", "qParams", "nodes", "links"]
    meta = data["metadata"]
    assert meta["slug"] == "planted" and meta["scan"] == "planted-circuit" and meta["schema_version"] == 1
    assert meta["prompt_tokens"] == pruned.tokens and meta["node_threshold"] == 0.8
    assert data["qParams"] == {"pinnedIds": [], "supernodes": [], "linkType": "both", "clickedId": "", "sg_pos": ""}
    assert all(list(n) == NODE_KEYS for n in data["nodes"])
    by_id = {n["node_id"]: n for n in data["nodes"]}
    f = by_id["0_0_4"]
    assert (f["feature"], f["layer"], f["ctx_idx"], f["feature_type"], f["jsNodeId"], f["clerp"]) == (
        cantor_pairing(0, 0), "0", 4, "cross layer transcoder", "0_0-0", "the letter c")
    logit = by_id["4_23_6"]  # n_layers + 1, the token id, the last position
    assert logit["feature_type"] == "logit" and logit["is_target_logit"] and logit["influence"] is None
    assert logit["clerp"] == 'Output "t" (p=1.000)' and logit["jsNodeId"] == "L_23-6"
    embs = [n for n in data["nodes"] if n["feature_type"] == "embedding"]
    assert [n["node_id"] for n in embs] == [f"E_{t}_{p}" for p, t in enumerate(pruned.token_ids)]
    assert all(n["layer"] == "E" for n in embs)
    # only kept edges, as (source, target, weight), ordered by target then source
    kept = int(pruned.edge_mask.sum())
    assert len(data["links"]) == kept and all(list(link) == ["source", "target", "weight"] for link in data["links"])
    assert {k: data["links"][0][k] for k in ("source", "target")} == {"source": "E_6_4", "target": "0_0_4"}


def test_cumulative_influence_is_circuit_tracers():
    x = np.array([0.1, 0.5, 0.0, 0.4])
    assert np.allclose(cumulative_influence(x), [1.0, 0.5, 1.0, 0.9])


def test_neuronpedia_round_trip_keeps_the_kept_graph(pruned, tmp_path):
    out = save_graph(pruned, tmp_path / "saved", slug="planted")
    assert sorted(p.name for p in out.iterdir()) == ["graph.json", "graph.md", "neuronpedia.json"]
    rec = read_neuronpedia_graph(out / "neuronpedia.json")
    g = graph_from_record(rec)
    assert rec.model == "planted-circuit" and rec.n_layers == 3 and rec.token_ids == tuple(pruned.token_ids)
    assert g.edges_frame().to_dict("list") == pruned.edges_frame().to_dict("list") | {
        "weight": g.edges_frame()["weight"].tolist()}
    assert np.allclose(g.edges_frame()["weight"], pruned.edges_frame()["weight"])
    assert g.labels == pruned.labels
    # re-exported, the file is the same (slug, scan and influences kept in extra)
    again = neuronpedia_graph(rec)
    first = json.loads((out / "neuronpedia.json").read_text())
    assert again["nodes"] == first["nodes"] and again["links"] == first["links"]
    assert again["metadata"]["slug"] == "planted"


def test_reads_a_circuit_tracer_file():
    rec = read_neuronpedia_graph(FIXTURE)
    assert rec.model == "gemma-2-2b" and rec.n_layers == 2 and rec.prompt == "<bos>Austin\n is"
    assert rec.tokens == ("<bos>", "Austin", "⏎", " is") and rec.token_ids == (2, 11204, 108, 603)
    assert [n.id for n in rec.nodes] == ["L0.p1.f253", "L1.p3.f7", "L1.p3.err", "emb.p0", "emb.p1", "emb.p2",
                                         "emb.p3", "target0", "target1"]
    assert rec.nodes[0].label == "Texas cities" and rec.nodes[0].activation == 9.45
    assert [t.token for t in rec.targets] == [" the", " a"] and [t.token_ids for t in rec.targets] == [(6037,), (476,)]
    assert [round(t.weight, 3) for t in rec.targets] == [0.75, 0.25]
    assert rec.extra["neuronpedia"]["metadata"]["info"]["creator_name"] == "a tester"
    g = graph_from_record(rec)
    assert g.adjacency[g.index("target0"), g.index("L1.p3.f7")] == 2.25
    assert g.adjacency[g.index("L1.p3.f7"), g.index("emb.p3")] == -0.75
    assert g.influence()[g.index("L0.p1.f253")] > 0
    out = neuronpedia_graph(rec)
    src = json.loads(FIXTURE.read_text())
    assert out["metadata"]["slug"] == "capital-of-texas" and out["metadata"]["info"] == src["metadata"]["info"]
    assert [n["node_id"] for n in out["nodes"]] == [n["node_id"] for n in src["nodes"]]
    def links(d):
        return sorted((link["source"], link["target"], round(link["weight"], 5)) for link in d["links"])

    assert links(out) == links(src)
    for a in out["nodes"]:
        b = next(n for n in src["nodes"] if n["node_id"] == a["node_id"])
        assert {k: a[k] for k in NODE_KEYS if k != "activation"} == {k: b[k] for k in NODE_KEYS if k != "activation"}


def test_reads_older_circuit_tracer_error_ids():
    data = json.loads(FIXTURE.read_text())
    data["nodes"][2]["node_id"] = "0_1_3"
    data["links"][4]["source"] = "0_1_3"
    from interpkit.records._graph_neuronpedia import parse_neuronpedia_graph

    assert parse_neuronpedia_graph(data).nodes[2].id == "L1.p3.err"


@pytest.mark.parametrize(("edit", "field"), [
    (lambda d: d.pop("qParams"), "qParams"),
    (lambda d: d["metadata"].pop("prompt_tokens"), "metadata.prompt_tokens"),
    (lambda d: d["nodes"][1].update(feature_type="attention head"), "nodes[1].feature_type"),
    (lambda d: d["nodes"][1].update(ctx_idx=9), "nodes[1].ctx_idx"),
    (lambda d: d["nodes"][1].update(node_id="1_7_2"), "nodes[1].node_id"),
    (lambda d: d["nodes"][1].pop("jsNodeId"), "nodes[1].jsNodeId"),
    (lambda d: d["nodes"][3].update(layer="0"), "nodes[3].layer"),
    (lambda d: d["nodes"][1].update(layer="5", node_id="5_7_3"), "nodes[1].layer"),
    (lambda d: d["nodes"].append(dict(d["nodes"][1])), "nodes[9].node_id"),
    (lambda d: d["links"][2].update(target="9_9_9"), "links[2].target"),
    (lambda d: d["links"][2].update(weight="heavy"), "links[2].weight"),
    (lambda d: d["links"].append(dict(d["links"][0])), "links[6]"),
])
def test_neuronpedia_reader_names_the_file_and_field(tmp_path, edit, field):
    data = json.loads(FIXTURE.read_text())
    edit(data)
    path = _write(tmp_path, data, "np.json")
    with pytest.raises(RecordError) as info:
        read_neuronpedia_graph(path)
    assert info.value.path == str(path) and info.value.field == field, str(info.value)


def test_neuronpedia_reader_names_the_line_of_a_truncated_file(tmp_path):
    path = tmp_path / "np.json"
    path.write_text(FIXTURE.read_text()[:1500])
    with pytest.raises(RecordError) as info:
        read_neuronpedia_graph(path)
    assert info.value.line and f"np.json:{info.value.line}:" in str(info.value)


# ---------------------------------------------------------------------------- save_graph / load_graph


def test_load_graph_reads_either_format_and_the_folder(pruned, tmp_path):
    out = save_graph(pruned, tmp_path / "saved")
    for path in (out, out / "graph.json"):
        _same_graph(load_graph(path), pruned)
    g = load_graph(out / "neuronpedia.json")
    assert int(g.mask("feature").sum()) == int((pruned.kept & pruned.mask("feature")).sum())
    assert load_graph(FIXTURE).model == "gemma-2-2b"
    (tmp_path / "np").mkdir()
    (tmp_path / "np" / "neuronpedia.json").write_text(FIXTURE.read_text())
    assert read_graph_file(tmp_path / "np").model == "gemma-2-2b"
    with pytest.raises(RecordError, match="Neuronpedia graph"):
        load_graph(_write(tmp_path, {"hello": 1}, "other.json"))
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "missing")


def test_graph_md_summarises_targets_scores_nodes_and_edges(pruned, tmp_path):
    text = (save_graph(pruned, tmp_path / "s") / "graph.md").read_text()
    assert text.startswith("# Attribution graph: dog cat")
    assert "logit 't'" in text and "replacement_score" in text
    assert "`L0.p4.f0` | `'c'`" in text and "the letter c" in text
    assert "| `emb.p4` | `L0.p4.f0` (the letter c) | 2 |" in text


def test_save_graph_replaces_the_folder_as_a_whole(pruned, tmp_path, monkeypatch):
    import interpkit.circuits._export as export

    out = save_graph(pruned, tmp_path / "s")
    (out / "stale.txt").write_text("old")
    before = (out / "graph.json").read_text()

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(export, "graph_markdown", boom)
    with pytest.raises(RuntimeError):
        save_graph(pruned.prune(0.5), out)
    assert (out / "graph.json").read_text() == before and (out / "stale.txt").exists()
    monkeypatch.undo()
    save_graph(pruned, out)
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["s"]
