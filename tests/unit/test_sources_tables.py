"""neuron_table and direction_table: shapes, metadata, token maxima, projections, caching."""

from __future__ import annotations

import numpy as np
import pytest
from test_stream import SITE, manual, tiny_wrapper  # noqa: E402

from interpkit.sources._cache import ActivationCache  # noqa: E402
from interpkit.sources._datasets import PromptRow  # noqa: E402
from interpkit.sources._stream import stream_activations  # noqa: E402
from interpkit.sources.directions import DirectionSet, contrast_direction, direction_table  # noqa: E402
from interpkit.sources.neurons import neuron_table  # noqa: E402

ROWS = [
    PromptRow(prompt_id="p0", text="the cat sat on the mat", criterion_score=1.0, split="train"),
    PromptRow(prompt_id="p1", text="a dog", criterion_score=0.0, split="test"),
    PromptRow(prompt_id="p2", text="red blue big", criterion_score=None),
    PromptRow(prompt_id="p3", text="cat or dog", criterion_score=0.5, target_tokens=("cat",)),
]


@pytest.fixture(scope="module")
def model():
    return tiny_wrapper()


def test_neuron_table_shape_metadata_and_values(model):
    table = neuron_table(model, ROWS, SITE, progress=False, top_tokens=3)
    assert table.shape == (4, 16)
    assert table.feature_ids == [f"{SITE}:n{i}" for i in range(16)]
    feats = table.features
    assert set(feats["source"]) == {"neuron"} and set(feats["site"]) == {SITE}
    assert set(feats["model"]) == {"tiny-gpt2"} and set(feats["layer"]) == {1}
    assert feats["neuron"].tolist() == list(range(16))
    ex = table.examples
    assert ex["example_id"].tolist() == ["p0", "p1", "p2", "p3"]
    assert np.isnan(ex["criterion_score"][2]) and ex["split"].tolist()[:2] == ["train", "test"]
    assert ex["target_tokens"][3] == ["cat"]
    for i, row in enumerate(ROWS):
        np.testing.assert_allclose(table.dense()[i], manual(model, row.text).max(0), atol=1e-5)
    assert table.meta["pooling"] == "max" and table.meta["site"] == SITE and not table.synthetic


def test_neuron_table_token_maxima_are_bounded_and_right(model):
    table = neuron_table(model, ROWS, SITE, progress=False, top_tokens=3)
    tokens = table.tokens
    assert len(tokens) == 3 * len(ROWS)
    words = [[None, *r.text.split()] for r in ROWS]  # position 0 is BOS
    for rec in tokens.itertuples():
        ref = manual(model, ROWS[rec.example_idx].text, exclude_bos=False)
        assert rec.token == words[rec.example_idx][rec.token_index]
        assert rec.activation == pytest.approx(ref[rec.token_index, rec.feature_idx], abs=1e-5)
        assert rec.activation == pytest.approx(table.dense()[rec.example_idx, rec.feature_idx])
    top = tokens[tokens.example_idx == 0].feature_idx.tolist()
    assert top == np.argsort(-table.dense()[0], kind="stable")[:3].tolist()
    assert neuron_table(model, ROWS, SITE, pooling="mean", progress=False).tokens is None


def test_neuron_subset_and_errors(model):
    table = neuron_table(model, ROWS, SITE, neurons=[5, 0], pooling="mean", progress=False)
    full = neuron_table(model, ROWS, SITE, pooling="mean", progress=False)
    assert table.feature_ids == [f"{SITE}:n5", f"{SITE}:n0"]
    np.testing.assert_allclose(table.dense(), full.dense()[:, [5, 0]], atol=1e-6)
    with pytest.raises(ValueError, match="neurons"):
        neuron_table(model, ROWS, SITE, neurons=[16], progress=False)
    with pytest.raises(ValueError, match="one site"):
        neuron_table(model, ROWS, "layer*.resid_post", progress=False)
    with pytest.raises(ValueError, match="one value per example"):
        neuron_table(model, ROWS, SITE, pooling="tokens", progress=False)


def test_neuron_table_from_jsonl_path_and_bare_texts(model, tmp_path):
    import json

    path = tmp_path / "prompts.jsonl"
    path.write_text("\n".join(json.dumps(r.to_dict()) for r in ROWS) + "\n")
    table = neuron_table(model, path, SITE, neurons=[1], progress=False)
    assert table.example_ids == ["p0", "p1", "p2", "p3"]
    bare = neuron_table(model, ["a cat", "the dog"], SITE, neurons=[1], progress=False)
    assert bare.example_ids == ["0", "1"] and bare.examples["criterion_score"].isna().all()


def test_neuron_table_uses_cache(model, tmp_path):
    cache = ActivationCache(tmp_path)
    first = neuron_table(model, ROWS, SITE, cache=cache, progress=False)
    real, calls = model.capture, []
    model.capture = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        second = neuron_table(model, ROWS, SITE, cache=cache, progress=False)
    finally:
        del model.capture
    assert calls == []
    np.testing.assert_array_equal(first.dense(), second.dense())
    assert second.tokens is not None and len(second.tokens) == len(first.tokens)


def test_direction_table_projects_per_token(model):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(3, 16)).astype(np.float32)
    dirs = DirectionSet(names=("d0", "d1", "d2"), vectors=vecs, site=SITE, kind="probe", model="tiny-gpt2")
    table = direction_table(model, ROWS, dirs, progress=False)
    assert table.shape == (4, 3) and table.feature_ids == ["d0", "d1", "d2"]
    assert set(table.features["source"]) == {"direction"}
    assert set(table.features["direction_kind"]) == {"probe"}
    assert table.features["has_decoder"].all()
    np.testing.assert_array_equal(table.decoder_vectors["d1"], vecs[1])
    for i, row in enumerate(ROWS):
        np.testing.assert_allclose(table.dense()[i], (manual(model, row.text) @ vecs.T).max(0), atol=1e-4)
    with pytest.raises(ValueError, match="width"):
        direction_table(
            model, ROWS, DirectionSet(names=("x",), vectors=np.ones((1, 8)), site=SITE), progress=False
        )


def test_contrast_direction_diffmean_separates(model):
    texts = ["the cat sat", "a cat is red", "cat cat", "the dog sat", "a dog is red", "dog dog"]
    labels = [1, 1, 1, 0, 0, 0]
    acts = stream_activations(model, texts, SITE, pooling="mean", progress=False)[SITE, "mean"]
    v = contrast_direction(acts, labels)
    assert v.shape == (16,) and v.dtype == np.float32 and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    x = acts.to_numpy()
    raw = contrast_direction(x, labels, normalize=False)
    np.testing.assert_allclose(raw, x[:3].mean(0) - x[3:].mean(0), atol=1e-6)
    proj = x @ v
    assert proj[:3].mean() > proj[3:].mean()
    with pytest.raises(ValueError, match="positive and one negative"):
        contrast_direction(x, [1] * 6)
    with pytest.raises(ValueError, match="labels"):
        contrast_direction(x, [1, 0])


def test_direction_set_validation_and_round_trip(tmp_path):
    dirs = DirectionSet(names=("a", "b"), vectors=np.eye(2, 4), site=SITE, kind="contrast", metadata={"n": 3})
    assert len(dirs) == 2 and dirs.d_model == 4 and dirs.vectors.dtype == np.float32
    again = DirectionSet.from_dict(dirs.to_dict())
    np.testing.assert_array_equal(again.vectors, dirs.vectors)
    assert again.names == dirs.names and again.kind == "contrast" and again.metadata == {"n": 3}
    loaded = DirectionSet.load(dirs.save(tmp_path / "dirs"))
    np.testing.assert_array_equal(loaded.vectors, dirs.vectors)
    assert loaded.site == SITE
    with pytest.raises(ValueError, match="unknown keys"):
        DirectionSet.from_dict({**dirs.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="unique"):
        DirectionSet(names=("a", "a"), vectors=np.eye(2, 4), site=SITE)
    with pytest.raises(ValueError, match="shape"):
        DirectionSet(names=("a",), vectors=np.eye(2, 4), site=SITE)
    with pytest.raises(ValueError, match="kind"):
        DirectionSet(names=("a",), vectors=np.ones(4), site=SITE, kind="magic")
    with pytest.raises(FileNotFoundError, match="cfg.json is missing"):
        DirectionSet.load(tmp_path)


def test_backends_agree_and_table_round_trips(tmp_path):
    from interpkit._testing import tiny_model
    from interpkit.table import FeatureTable

    texts = ["hello there", "good night, moon!", "a"]
    sites = ["layer0.mlp_out", "layer1.resid_post"]
    nns = stream_activations(tiny_model("nnsight"), texts, sites, progress=False)
    tl = stream_activations(tiny_model("transformer_lens"), texts, sites, progress=False)
    for key in nns:
        np.testing.assert_allclose(nns[key].to_numpy(), tl[key].to_numpy(), atol=1e-4)
    table = neuron_table(tiny_model("nnsight"), ROWS, SITE, progress=False, top_tokens=2)
    loaded = FeatureTable.load(table.save(tmp_path / "t"))
    np.testing.assert_array_equal(loaded.dense(), table.dense())
    assert loaded.tokens["token"].tolist() == table.tokens["token"].tolist()
    assert loaded.features["neuron"].tolist() == list(range(16))
