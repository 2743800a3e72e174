"""Widgets, headless: construction, synced state (JSON and binary), front-end messages and packaging.

Front-end messages are delivered the way ipywidgets delivers them (``widget._handle_custom_msg``);
re-ranking runs on toy tables and the tiny model, generation on the tiny model.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import interpkit
from interpkit.widgets import (
    STATIC,
    CriterionEditor,
    FeatureCard,
    FingerprintHeatmap,
    GraphView,
    SteeringPanel,
    asset,
    vector_sha256,
)

ROOT = Path(__file__).resolve().parents[2]
WIDGETS = ("criterion_editor", "steering_panel", "fingerprint_heatmap", "feature_card", "graph")


# ---------------------------------------------------------------------------------- front-end files


@pytest.mark.parametrize("name", WIDGETS)
def test_front_end_files_ship_and_load_nothing_from_outside(name):
    js, css = asset(f"{name}.js"), asset(f"{name}.css")
    assert js.read_text() == (ROOT / "widgets" / f"{name}.js").read_text()
    assert css.read_text() == (ROOT / "widgets" / f"{name}.css").read_text()
    text = js.read_text() + css.read_text()
    assert not re.search(r"https?://", text), "front-end files must not reference the network"
    assert not re.search(r"^\s*import\s", js.read_text(), re.M), "front-end modules import nothing"
    assert "fetch(" not in text and "@import" not in text
    assert "export default" in js.read_text()


def test_widget_classes_read_the_packaged_files():
    for cls, name in ((CriterionEditor, "criterion_editor"), (SteeringPanel, "steering_panel"),
                      (FingerprintHeatmap, "fingerprint_heatmap"), (FeatureCard, "feature_card"),
                      (GraphView, "graph")):
        assert str(cls._esm) == (STATIC / f"{name}.js").read_text()
        assert str(cls._css) == (STATIC / f"{name}.css").read_text()


def test_package_data_globs_cover_every_front_end_file():
    """The wheel's package data (pyproject) matches every widgets/*.js|css through the static link."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        tomllib = pytest.importorskip("tomli")
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = cfg["tool"]["setuptools"]["package-data"]["interpkit"]
    pkg = ROOT / "interpkit"
    shipped = {p.name for g in globs for p in pkg.glob(g) if p.is_file() and p.parent.name == "static"}
    wanted = {p.name for p in (ROOT / "widgets").iterdir() if p.suffix in (".js", ".css")}
    assert wanted and wanted <= shipped
    assert (pkg / "widgets" / "static").resolve() == (ROOT / "widgets").resolve()


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", WIDGETS)
def test_front_end_modules_parse_as_es_modules(name, tmp_path):
    copy = tmp_path / f"{name}.mjs"
    copy.write_text(asset(f"{name}.js").read_text())
    proc = subprocess.run(["node", "--check", str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------------------------- CriterionEditor


@pytest.fixture(scope="module")
def cat_table():
    """A toy table whose texts say "cat" on criterion-positive examples and "dog" on the others."""
    data = interpkit.make_toy_table(n_examples=160, n_features=10, seed=0)
    ex = data.table.examples.copy()
    ex["text"] = [f"{'a cat' if s >= 0.5 else 'a dog'} number {i} {'odd' if i % 2 else 'even'}"
                  for i, s in enumerate(ex["criterion_score"])]
    table = interpkit.FeatureTable(data.table.values, ex, data.table.features, meta=dict(data.table.meta),
                                   synthetic=True)
    return table, data.truth


def _editor(table, **kw):
    kw = {"compiler": "keyword", "n_permutations": 100, "n_bootstrap": 10, "debounce": 0, **kw}
    return CriterionEditor(table, **kw)


def test_editor_ranks_on_construction_and_publishes_json_rows(cat_table):
    table, truth = cat_table
    ed = _editor(table, criterion="cats")
    assert ed.version == 1 and not ed.busy and ed.error == ""
    assert ed.rows[0]["feature_id"] == truth.carrier
    assert {"rank", "feature_id", "label", "tier", "auroc", "q_value", "specificity", "stability",
            "causal_status"} <= set(ed.rows[0])
    json.dumps(ed.get_state(), allow_nan=False)
    assert ed.ranked_criterion == "cats" and ed.info["n_positive"] > 0


def test_editor_re_ranks_when_the_criterion_changes(cat_table):
    table, truth = cat_table
    ed = _editor(table, criterion="cats")
    before = [r["feature_id"] for r in ed.rows]
    ed.criterion = "odd"  # parity of the index: unrelated to every planted feature
    assert ed.version == 2 and ed.ranked_criterion == "odd"
    assert [r["feature_id"] for r in ed.rows] != before
    assert not any(r["significant"] for r in ed.rows)
    ed.compiler = "embedding-does-not-exist"
    assert ed.error and not ed.busy and ed.ranked_criterion == "odd"


def test_editor_apply_and_select_messages(cat_table):
    table, truth = cat_table
    ed = _editor(table, criterion="cats", auto_apply=False)
    ed.criterion = "odd"
    assert ed.version == 1  # auto_apply off: no re-rank on edit
    ed._handle_custom_msg({"type": "apply"}, [])
    assert ed.version == 2 and ed.ranked_criterion == "odd"
    ed._handle_custom_msg({"type": "select", "feature_id": truth.carrier}, [])
    assert ed.selected == truth.carrier
    assert 'class="card"' in ed.card_html and truth.carrier in ed.card_html
    assert ed.card.feature_id == truth.carrier and ":host" in ed.card_css


def test_editor_pinned_examples_override_scores(cat_table):
    table, _ = cat_table
    ed = _editor(table, criterion="cats")
    dogs = [t for t in table.examples["text"] if "dog" in t][:5]
    ed.positive_examples = dogs
    assert ed.info["n_pinned_in_table"] == 5
    assert ed.info["n_positive"] == _editor(table, criterion="cats").info["n_positive"] + 5


def test_editor_debounces_bursts_of_edits(cat_table):
    table, _ = cat_table
    ed = _editor(table, criterion="cats", debounce=0.2)
    for text in ("c", "ca", "odd"):
        ed.criterion = text
    assert ed.version == 1
    ed.wait(30)
    assert ed.version == 2 and ed.ranked_criterion == "odd"


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def test_editor_model_mode_streams_the_tiny_model(tiny):
    texts = [f"the cat {w} here" for w in ("sat", "ran", "is", "was", "hid", "ate", "slept", "sang")]
    texts += [f"a dog {w} there" for w in ("sat", "ran", "is", "was", "hid", "ate", "slept", "sang")]
    ed = CriterionEditor(tiny, "cats", compiler="keyword", dataset=texts, site="layer1.resid_post",
                         n_permutations=50, n_bootstrap=5, max_per_class=None, debounce=0, max_length=32)
    assert ed.error == "", ed.error
    assert len(ed.rows) == min(ed.top_k, 17)  # 16 neurons + the DiffMean direction
    assert all(r["feature_id"].startswith("layer1.resid_post") for r in ed.rows)
    fid = ed.rows[0]["feature_id"]
    ed._handle_custom_msg({"type": "select", "feature_id": fid}, [])
    assert ed.selected == fid and 'class="tok' in ed.card_html  # token highlights from the model


# ---------------------------------------------------------------------------------- SteeringPanel


def _panel(model, **kw):
    vec = np.random.default_rng(0).normal(size=model.d_model).astype(np.float32)
    kw = {"criterion": "cat", "compiler": "keyword", "prompt": "the cat", "max_new_tokens": 6, "debounce": 0, **kw}
    return SteeringPanel(model, {"v": ("layer1.resid_post", vec), "w": ("layer0.resid_post", -vec)}, **kw)


def test_steering_panel_generates_baseline_and_steered(tiny):
    panel = _panel(tiny)
    assert panel.version == 0 and [f["name"] for f in panel.features] == ["v", "w"]
    panel.strengths = {"v": 8.0, "w": 0.0}  # what a slider release sends
    assert panel.version == 1 and panel.error == ""
    assert panel.baseline == tiny.generate("the cat", max_new_tokens=6, seed=0)[0]
    assert panel.steered != panel.baseline
    sc = panel.scores
    assert set(sc) == {"baseline", "steered", "next_token_tv", "strengths"} and sc["next_token_tv"] > 0
    assert sc["steered"]["criterion_score"] is not None and sc["steered"]["perplexity"] > 0
    json.dumps(panel.get_state(), allow_nan=False)
    panel.strengths = {"v": 0.0, "w": 0.0}
    assert panel.steered == panel.baseline and panel.scores["next_token_tv"] == 0.0


def test_steering_panel_generate_message_and_negative_strengths(tiny):
    panel = _panel(tiny, live=False, strengths={"v": -6.0})
    panel.prompt = "hello"
    assert panel.version == 0  # not live
    panel._handle_custom_msg({"type": "generate"}, [])
    assert panel.version == 1 and panel.scores["strengths"]["v"] == -6.0
    with tiny.edits(*panel.edits()):
        assert panel.steered == tiny.generate("hello", max_new_tokens=6, seed=0)[0]


def test_steering_spec_round_trip(tiny, tmp_path):
    panel = _panel(tiny, live=False, strengths={"v": 2.5})
    spec = panel.export_spec()
    assert spec["kind"] == "intervention_spec" and [e["feature"] for e in spec["edits"]] == ["v"]
    edit = spec["edits"][0]
    assert edit["site"] == "layer1.resid_post" and edit["strength"] == 2.5 and len(edit["vector"]) == tiny.d_model
    assert edit["vector_sha256"] == vector_sha256(panel.vectors["v"][1].numpy())
    path = panel.save_spec(tmp_path / "spec.json")
    (back,) = SteeringPanel.edits_from_spec(path)
    assert back.site == "layer1.resid_post" and back.strength == 2.5
    assert np.array_equal(back.vector.numpy(), panel.vectors["v"][1].numpy())
    bad = json.loads(path.read_text())
    bad["edits"][0]["vector"][0] += 1.0
    with pytest.raises(ValueError, match="sha256"):
        SteeringPanel.edits_from_spec(bad)


def test_steering_sweep_rows_feed_the_chart(tiny):
    from interpkit.viz import steering_curve

    rows = _panel(tiny, live=False).sweep("v", [-4.0, 0.0, 4.0])
    assert [r["strength"] for r in rows] == [-4.0, 0.0, 4.0] and rows[1]["next_token_tv"] == 0.0
    assert steering_curve(rows).to_dict()["resolve"]["scale"]["y"] == "independent"


def test_steering_panel_rejects_a_wrong_width(tiny):
    with pytest.raises(ValueError, match="d_model"):
        SteeringPanel(tiny, {"v": ("layer1.resid_post", np.ones(3))})


# ---------------------------------------------------------------------------------- FingerprintHeatmap


@pytest.fixture(scope="module")
def fingerprints():
    from interpkit.match import FeatureFingerprint, match_fingerprints

    rng = np.random.default_rng(0)
    sigs = rng.normal(size=(6, 32))
    emb = rng.normal(size=(6, 8))
    left = [FeatureFingerprint(feature_id=f"a{i}", label=f"left {i}", activation_signature=s,
                               explanation_embedding=e) for i, (s, e) in enumerate(zip(sigs, emb, strict=True))]
    right = [FeatureFingerprint(feature_id=f"b{i}", label=f"right {i}",
                                activation_signature=sigs[5 - i] + 0.2 * rng.normal(size=32),
                                explanation_embedding=emb[5 - i]) for i in range(6)]
    result = match_fingerprints(left, right, null_samples=200)
    result.matches[0] = dataclasses.replace(result.matches[0], validated=True)
    return left, right, result


def _decode(hm):
    return np.frombuffer(hm.matrix, dtype="<f4").reshape(hm.shape)


def test_heatmap_matrix_travels_as_float32_bytes():
    mat = np.arange(12, dtype=np.float64).reshape(3, 4) / 12
    comp = -mat
    hm = FingerprintHeatmap(mat, list("abc"), list("wxyz"), components={"activation": comp})
    state = hm.get_state()
    assert isinstance(state["matrix"], bytes | memoryview)
    assert hm.shape == [2, 3, 4] and hm.layers == ["combined", "activation"]
    np.testing.assert_array_equal(_decode(hm)[0], mat.astype(np.float32))
    np.testing.assert_array_equal(_decode(hm)[1], comp.astype(np.float32))
    with pytest.raises(ValueError, match="ids"):
        FingerprintHeatmap(mat, list("ab"), list("wxyz"))


def test_heatmap_from_fingerprints_marks_matches_and_selects_pairs(fingerprints):
    left, right, result = fingerprints
    hm = FingerprintHeatmap.from_fingerprints(left, right, match_result=result)
    assert hm.layers == ["combined", "activation", "explanation"] and hm.shape == [3, 6, 6]
    pairs = np.frombuffer(hm.matched, dtype="<i4").reshape(-1, 2)
    got = {(hm.left_ids[i], hm.right_ids[j]) for i, j in pairs}
    assert got == {(m.left_id, m.right_id) for m in result.matches}
    flags = np.frombuffer(hm.validated, dtype=np.int8)
    assert sorted(flags.tolist()) == [-1] * 5 + [1]
    m0 = result.matches[0]
    i, j = hm.left_ids.index(m0.left_id), hm.right_ids.index(m0.right_id)
    assert abs(_decode(hm)[0, i, j] - m0.score) < 1e-5  # the same combined score as the matcher's
    hm._handle_custom_msg({"type": "select", "i": i, "j": j}, [])
    pair = hm.selected_pair
    assert pair["left_id"] == m0.left_id and pair["matched"] and pair["validated"] is True
    assert pair["left_label"] == "left " + m0.left_id[1:] and set(pair["components"]) == {"activation", "explanation"}
    other = hm.select(i, (j + 1) % 6)
    assert other["matched"] is False and other["validated"] is None
    json.dumps(hm.selected_pair, allow_nan=False)


def test_heatmap_from_a_match_result_alone(fingerprints):
    _, _, result = fingerprints
    hm = FingerprintHeatmap(result)
    mat = _decode(hm)[0]
    assert np.isfinite(mat).sum() == len(result.matches)
    assert hm.select(0, 0)["matched"]


# ---------------------------------------------------------------------------------- FeatureCard


def test_feature_card_from_explanation_report_entry_and_table(cat_table):
    from interpkit.explain import FeatureExplanation

    expl = FeatureExplanation(feature_id="f9", label="cats", top_examples=[
        {"example_id": "0", "text": "a cat", "activation": 2.0, "tokens": ["a", " cat"],
         "token_activations": [0.1, 2.0]}], histogram={"edges": [0, 1, 2], "counts": [3, 1]})
    card = FeatureCard(expl)
    assert card.feature_id == "f9" and 'class="tok"' in card.html and "<svg" in card.html
    assert ":host" in card.card_css and ":root" not in card.card_css
    report = interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=2, n_permutations=50)
    entry = report.features[0]
    assert FeatureCard(entry.to_dict()).feature_id == entry.feature_id
    assert FeatureCard.from_report(report, entry.feature_id).html == FeatureCard(entry).html
    table, truth = cat_table
    card = FeatureCard.from_table(table, truth.carrier)
    assert truth.carrier in card.html and "Top activations" in card.html
    json.dumps(card.get_state())


# ---------------------------------------------------------------------------------- GraphView


@pytest.fixture(scope="module")
def planted_graph():
    from interpkit.circuits import attribute, planted_circuit

    pc = planted_circuit()
    return attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()


def test_graph_view_mirrors_the_kept_nodes_and_edges_as_json(planted_graph):
    g = planted_graph
    explanation = {"label": "the letter c", "top_examples": [{"text": "a cat", "activation": np.float32(2.0)}],
                   "density": float("nan")}
    view = GraphView(g, explanations={"L0.p4.f0": explanation})
    assert {n["id"] for n in view.nodes} == {g.node_id(i) for i in range(len(g)) if g.kept[i]}
    assert {(e["source"], e["target"]) for e in view.links} == {
        (r.source, r.target) for r in g.edges_frame().itertuples()}
    assert view.columns == ["emb", "L0", "L1", "L2", "target"] and view.tokens == g.tokens
    assert view.targets == [{"label": "logit 't'", "weight": 1.0}]
    by_id = {n["id"]: n for n in view.nodes}
    assert by_id["L0.p4.f0"]["label"] == "the letter c"  # the explanation's label labels the node
    json.dumps([view.nodes, view.links, view.explanations], allow_nan=False)  # JSON-ready, NaN gone
    assert view.explanations["L0.p4.f0"]["density"] is None
    assert view.selected is None
    with pytest.raises(KeyError):
        view.card()
    view.selected = "L1.p6.f0"
    card = view.card()
    assert card["incoming"] == [{"source": "L0.p4.f0", "target": "L1.p6.f0", "weight": pytest.approx(2 / 7)}]
    assert [e["target"] for e in card["outgoing"]] == ["L2.p6.f0"] and card["explanation"] is None
    assert view.card("L0.p4.f0")["explanation"]["top_examples"][0]["activation"] == 2.0


def test_graph_view_refuses_explanations_for_nodes_it_does_not_draw(planted_graph):
    with pytest.raises(ValueError, match="does not draw"):
        GraphView(planted_graph, explanations={"L0.p0.f1": {"label": "pruned away"}})


def test_graph_view_of_a_saved_graph(planted_graph, tmp_path):
    from interpkit.circuits import save_graph
    from interpkit.records import read_graph_record

    rec = read_graph_record(save_graph(planted_graph, tmp_path / "g"))
    view = GraphView(rec, max_nodes=1)
    assert sum(n["kind"] == "feature" for n in view.nodes) == 1
