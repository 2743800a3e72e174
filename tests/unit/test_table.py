"""Tests for interpkit.table: building from records, token maxima, selection, save/load."""

from __future__ import annotations

import json
import os
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interpkit.records import ActivationRecord, RecordError, read_activation_records, write_jsonl
from interpkit.table import FeatureTable, TableError


def _row(pid, feats, *, score=0.5, text=None, model="m", **extra):
    return {
        "model": model,
        "prompt_id": pid,
        "text": text if text is not None else f"text {pid}",
        "criterion_score": score,
        "features": [
            {"feature_id": f, "activation": a} if not isinstance(a, dict) else {"feature_id": f, **a}
            for f, a in feats
        ],
        **extra,
    }


@pytest.fixture
def rich_table() -> FeatureTable:
    """A small table with every optional part: tokens, ragged decoders, extras, NaN scores."""
    values = np.array(
        [[0.0, 1.5, -2.0], [3.25, 0.0, 0.0], [0.0, 0.0, 7.0], [-0.0, 1e-30, 0.0]], dtype=np.float32
    )
    examples = pd.DataFrame(
        {
            "example_id": ["a", "b", "c", "d"],
            "text": ["alpha", "beta", "", "délta ✓"],
            "criterion_score": [1.0, np.nan, 0.0, 0.25],
            "split": ["train", None, "test", "train"],
            "source_file": ["x.jsonl", "x.jsonl", "y.jsonl", None],
        }
    )
    features = pd.DataFrame(
        {
            "feature_id": ["f0", "f1", "f2"],
            "model": ["gpt2", "gpt2", None],
            "site": ["layer3.resid_post", None, "blocks.1.hook_mlp_out"],
            "layer": [3, None, 1],
            "label": ["eval talk", None, "units"],
            "source": ["sae", "neuron", None],
            "density": [0.1, 0.2, 0.3],
        }
    )
    tokens = pd.DataFrame(
        {
            "example_idx": [0, 1, 2],
            "feature_idx": [1, 0, 2],
            "token_index": [4, 0, 2],
            "token": [" exam", "The", None],
            "activation": np.array([1.5, 3.25, 7.0], dtype=np.float32),
        }
    )
    decoders = {"f0": np.array([0.1, -0.2, 0.3], dtype=np.float32), "f2": np.arange(5, dtype=np.float32)}
    meta = {"model": "gpt2", "criterion": "the model is aware", "provenance": {"seed": 3, "tags": ["x"]}}
    return FeatureTable(
        values, examples, features, decoder_vectors=decoders, tokens=tokens, meta=meta, synthetic=True
    )


# --- construction ----------------------------------------------------------------------------


def test_constructor_canonicalises(rich_table):
    t = rich_table
    assert t.shape == (4, 3) and not t.is_sparse and t.values.dtype == np.float32
    assert list(t.examples.columns[:4]) == ["example_id", "text", "criterion_score", "split"]
    assert t.examples["split"].tolist() == ["train", None, "test", "train"]
    assert t.features["layer"].dtype == "Int64" and t.features["layer"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert t.features["source"].tolist() == ["sae", "neuron", "unknown"]
    assert t.features["has_decoder"].tolist() == [True, False, True]
    assert t.synthetic and t.nnz == 5 and t.density == pytest.approx(5 / 12)
    assert t.feature_index("f2") == 2 and t.example_index("c") == 2
    np.testing.assert_array_equal(t.column("f0"), [0, 3.25, 0, 0])


def test_constructor_defaults_and_int_ids():
    t = FeatureTable(sp.coo_array(np.eye(3, dtype=np.float64)), pd.DataFrame({"example_id": [10, 11, 12]}))
    assert t.is_sparse and isinstance(t.values, sp.csr_array) and t.values.dtype == np.float32
    assert t.example_ids == ["10", "11", "12"] and t.feature_ids == ["0", "1", "2"]
    assert np.isnan(t.examples["criterion_score"]).all() and t.examples["text"].tolist() == ["", "", ""]
    assert t.feature_index(1) == 1 and t.tokens is None and t.meta == {} and not t.synthetic


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"values": np.zeros((2, 2)), "examples": pd.DataFrame({"example_id": ["a"]})},
            "examples has 1 rows",
        ),
        (
            {"values": np.zeros((2, 2)), "features": pd.DataFrame({"feature_id": ["x", "x"]})},
            "'x' appears more",
        ),
        ({"values": np.array([[np.nan, 0.0]])}, "finite"),
        ({"values": sp.csr_array(np.array([[np.inf]]))}, "finite"),
        ({"values": np.zeros(3)}, "2-D"),
        ({"values": np.zeros((1, 1)), "decoder_vectors": {"zz": [1.0]}}, "'zz'"),
        ({"values": np.zeros((1, 1)), "decoder_vectors": {"0": [np.nan]}}, "finite 1-D"),
        ({"values": np.zeros((1, 1)), "meta": {"bad": object()}}, "JSON"),
        (
            {"values": np.zeros((1, 1)), "features": pd.DataFrame({"feature_id": ["a"], "layer": [1.5]})},
            "layer",
        ),
        ({"values": np.zeros((1, 1)), "examples": pd.DataFrame({"example_id": [None]})}, "example_id"),
        (
            {
                "values": np.zeros((1, 1)),
                "tokens": pd.DataFrame(
                    {
                        "example_idx": [0],
                        "feature_idx": [5],
                        "token_index": [0],
                        "token": ["a"],
                        "activation": [1.0],
                    }
                ),
            },
            "feature_idx",
        ),
        ({"values": np.zeros((1, 1)), "tokens": pd.DataFrame({"example_idx": [0]})}, "missing column"),
    ],
)
def test_constructor_rejects(kwargs, match):
    values = kwargs.pop("values")
    with pytest.raises(TableError, match=match):
        FeatureTable(values, kwargs.pop("examples", None), kwargs.pop("features", None), **kwargs)


# --- from_records ----------------------------------------------------------------------------


def test_from_records_dense_with_metadata():
    rows = [
        _row(
            "p1",
            [
                (7, {"activation": 2.0, "label": "cats", "layer": 4, "decoder_signature": [1.0, 0.5]}),
                ("x", 1.0),
            ],
            split="train",
        ),
        _row(
            "p2",
            [("x", 3.0), (9, {"activation": 1.0, "layer": "blocks.2.hook_resid_post"})],
            score=None,
            note="hi",
        ),
        _row(3, [], split="test"),
    ]
    t = FeatureTable.from_records(rows)
    assert not t.is_sparse  # 4 of 9 non-zero is above the 0.3 threshold
    np.testing.assert_array_equal(t.dense(), [[2, 1, 0], [0, 3, 1], [0, 0, 0]])
    assert t.feature_ids == ["7", "x", "9"] and t.example_ids == ["p1", "p2", "3"]
    assert t.examples["split"].tolist() == ["train", None, "test"]
    assert np.isnan(t.examples["criterion_score"][1]) and t.examples["criterion_score"][0] == 0.5
    f = t.features
    assert f["label"].tolist() == ["cats", None, None] and f["layer"].tolist()[0] == 4
    assert f["site"].tolist() == [None, None, "blocks.2.hook_resid_post"] and set(f["source"]) == {"records"}
    np.testing.assert_array_equal(t.decoder_vectors["7"], np.array([1.0, 0.5], dtype=np.float32))
    assert json.loads(t.examples["extra"][1]) == {"note": "hi"}
    assert t.meta["model"] == "m" and t.meta["n_rows"] == 3 and not t.synthetic


def test_from_records_sparse_choice():
    rows = [_row(i, [(i, 1.0)]) for i in range(10)]
    assert FeatureTable.from_records(rows).is_sparse  # density 0.1
    assert not FeatureTable.from_records(rows, sparse=False).is_sparse
    dense_rows = [_row(i, [(j, 1.0) for j in range(3)]) for i in range(3)]
    assert not FeatureTable.from_records(dense_rows).is_sparse
    forced = FeatureTable.from_records(dense_rows, sparse=True)
    assert forced.is_sparse and forced.nnz == 9
    assert FeatureTable.from_records(rows, density_threshold=0.05).is_sparse is False


def test_from_records_token_level_maxima():
    rows = [
        _row("p", [(1, 0.5), (2, -1.0)], token_index=0, token="The"),
        _row("p", [(1, 2.5), (2, -3.0), (3, -0.5)], token_index=1, token=" exam"),
        _row("q", [(1, 1.0)], token_index=0, token="A"),
        _row(
            "p", [(1, 0.1), (2, -0.5), (3, -0.25)], token_index=2, token="."
        ),  # scattered: merged at the end
        _row("r", [(3, -2.0)], token_index=0, token="Z"),
        _row("r", [(3, -4.0)], token_index=1, token="z"),
    ]
    for sparse in (True, False):
        t = FeatureTable.from_records(rows, sparse=sparse)
        assert t.example_ids == ["p", "q", "r"] and t.feature_ids == ["1", "2", "3"]
        # feature 2 is negative on every row of p: its max is -0.5; feature 3 is absent from
        # p's first row, so its max there is 0 (absent counts as 0)
        np.testing.assert_array_equal(
            t.dense(), np.array([[2.5, -0.5, 0.0], [1.0, 0, 0], [0, 0, -2.0]], dtype=np.float32)
        )
        tok = t.tokens
        assert tok is not None
        got = {
            (r.example_idx, r.feature_idx): (r.token_index, r.token, r.activation) for r in tok.itertuples()
        }
        assert got == {
            (0, 0): (1, " exam", 2.5),
            (0, 1): (2, ".", -0.5),
            (1, 0): (0, "A", 1.0),
            (2, 2): (0, "Z", -2.0),
        }


def test_from_records_token_level_examples(tmp_path):
    rows = [_row("p", [(1, 0.5)], token_index=0), _row("p", [(1, 2.5)], token_index=1), _row("q", [(1, 1.0)])]
    rows[1]["token"] = " cat"
    t = FeatureTable.from_records(rows, level="token")
    assert t.example_ids == ["p@0", "p@1", "q"] and t.tokens is None
    np.testing.assert_array_equal(t.column(0), [0.5, 2.5, 1.0])
    assert t.examples["prompt_id"].tolist() == ["p", "p", "q"]
    assert t.examples["token_index"].tolist()[:2] == [0, 1] and t.examples["token"].tolist() == [
        None,
        " cat",
        None,
    ]
    back = list(t.to_records())
    assert [(r.prompt_id, r.token_index, r.token) for r in back] == [
        ("p", 0, None),
        ("p", 1, " cat"),
        ("q", None, None),
    ]
    again = FeatureTable.from_records(back, level="token")
    assert again.examples.equals(t.examples) and np.array_equal(again.dense(), t.dense())
    assert FeatureTable.load(t.save(tmp_path / "tok")).equals(t)


def test_feature_entry_token_positions_become_tokens():
    t = FeatureTable.from_records(
        [_row("p", [(1, {"activation": 2.0, "token_index": 5, "token": "kg"}), (2, 1.0)])]
    )
    assert t.tokens.to_dict("list") == {
        "example_idx": [0],
        "feature_idx": [0],
        "token_index": [5],
        "token": ["kg"],
        "activation": [2.0],
    }


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([_row("p", [(1, 1.0)]), _row("p", [(1, 2.0)])], "more than one row"),
        ([_row("p", [(1, 1.0)], token_index=0), _row("p", [(1, 2.0)])], "more than one row"),
        (
            [_row("p", [(1, 1.0)], token_index=0), _row("p", [(1, 2.0)], token_index=0)],
            "two rows for token_index 0",
        ),
        (
            [_row("p", [], token_index=0, split="train"), _row("p", [], token_index=1, split="test")],
            "different splits",
        ),
        ([_row("p", [(1, 1e39)])], "float32"),
    ],
)
def test_from_records_contradictions(rows, match):
    with pytest.raises(TableError, match=match):
        FeatureTable.from_records(rows)


def test_from_records_bad_rows_are_located(tmp_path):
    with pytest.raises(RecordError, match=r"^<records>:2: field 'features\[0\].activation'"):
        FeatureTable.from_records([_row("a", []), _row("b", [(1, "high")])])
    path = tmp_path / "acts.jsonl"
    path.write_text(json.dumps(_row("a", [(1, 1.0)])) + "\n" + json.dumps(_row("b", [], model=1)) + "\n")
    with pytest.raises(RecordError, match=rf"^{path}:2: field 'model'"):
        FeatureTable.from_records(path)
    with pytest.raises(TypeError, match="row 1"):
        FeatureTable.from_records([3])


def test_synthetic_flag_travels_everywhere(tmp_path):
    t = FeatureTable.from_records([_row("a", [(1, 1.0)], synthetic=True), _row("b", [(1, 2.0)])])
    assert t.synthetic and t.meta["synthetic"] is True
    assert all(r.synthetic for r in t.to_records())
    t.save(tmp_path / "t")
    assert json.loads((tmp_path / "t" / "cfg.json").read_text())["synthetic"] is True
    assert FeatureTable.load(tmp_path / "t").synthetic
    assert t.select_features([0]).synthetic and t.select_examples([1]).synthetic


def test_from_records_streams_with_memory_proportional_to_nnz():
    n, m, k = 2000, 50_000, 20
    rng = np.random.default_rng(0)

    def rows():
        for i in range(n):
            cols = rng.choice(m, k, replace=False)
            yield ActivationRecord.from_dict(
                _row(i, [(int(c), float(v) + 0.1) for c, v in zip(cols, rng.random(k), strict=True)])
            )

    tracemalloc.start()
    try:
        t = FeatureTable.from_records(rows())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert t.is_sparse and t.nnz == n * k
    dense_bytes = n * t.n_features * 4
    assert peak < dense_bytes / 10, (peak, dense_bytes)
    # what remains is per-entry and per-id bookkeeping, never examples x features
    assert peak < 600 * (t.nnz + t.n_features + t.n_examples), peak


# --- access and selection ----------------------------------------------------------------------


def test_select_features_and_examples(rich_table):
    t = rich_table
    sub = t.select_features(["f2", "f0"])
    assert sub.feature_ids == ["f2", "f0"] and set(sub.decoder_vectors) == {"f2", "f0"}
    np.testing.assert_array_equal(sub.dense(), t.dense()[:, [2, 0]])
    assert sub.tokens["feature_idx"].tolist() == [1, 0] and sub.tokens["example_idx"].tolist() == [1, 2]
    ex = t.select_examples(np.array([False, True, True, False]))
    assert ex.example_ids == ["b", "c"] and ex.tokens["example_idx"].tolist() == [0, 1]
    assert ex.meta == t.meta and ex.features.equals(t.features)
    assert t.select_examples(slice(None, None, -1)).example_ids == ["d", "c", "b", "a"]
    sp_t = t.to_sparse()
    assert sp_t.select_features([1]).is_sparse and sp_t.select_features([1]).nnz == 2
    with pytest.raises(IndexError, match="repeats"):
        t.select_features([0, 0])
    with pytest.raises(KeyError, match="nope"):
        t.select_features(["nope"])
    with pytest.raises(KeyError, match="no feature 'zz'"):
        t.feature_index("zz")


def test_dense_sparse_conversion_and_columns(rich_table):
    s = rich_table.to_sparse()
    assert s.is_sparse and rich_table.to_dense() is rich_table
    np.testing.assert_array_equal(s.to_dense().values, rich_table.values)  # -0.0 is not stored sparse
    assert s.to_dense().examples.equals(rich_table.examples) and s.to_dense().tokens.equals(rich_table.tokens)
    for j in range(3):
        np.testing.assert_array_equal(s.column(j), rich_table.column(j))
        assert s.column(j).dtype == np.float32


def test_repr_and_summary_are_short(rich_table):
    assert (
        repr(rich_table)
        == "FeatureTable(4 examples x 3 features, dense, 3 token maxima, 2 decoder vectors, synthetic)"
    )
    text = rich_table.summary()
    assert len(text.splitlines()) <= 6 and "3/4 scored" in text and "eval talk" not in text


# --- to_records ----------------------------------------------------------------------------------


def test_table_round_trips_through_jsonl(tmp_path):
    rows = [
        _row(
            "p",
            [(1, {"activation": 0.5, "label": "one", "layer": 2}), (2, 1.0)],
            token_index=0,
            token="A",
            split="train",
        ),
        _row("p", [(1, 2.5), (3, 4.0)], token_index=1, token="B", split="train"),
        _row(
            "q",
            [(3, {"activation": 1.0, "layer": "site.x", "decoder_signature": [0.5, 0.25]})],
            extra_info=[1, 2],
        ),
    ]
    t = FeatureTable.from_records(rows)
    path = tmp_path / "back.jsonl"
    write_jsonl(path, t.to_records(include_decoder=True))
    back = FeatureTable.from_records(read_activation_records(path))
    assert back.feature_ids == t.feature_ids
    np.testing.assert_array_equal(back.dense(), t.dense())
    assert back.tokens.equals(t.tokens) and back.examples.equals(t.examples)
    assert back.features.equals(t.features)
    np.testing.assert_array_equal(back.decoder_vectors["3"], t.decoder_vectors["3"])


def test_to_records_top_k(rich_table):
    recs = list(rich_table.to_records(top_k=1))
    assert [[(f.feature_id, f.activation) for f in r.features] for r in recs] == [
        [("f1", 1.5)],
        [("f0", 3.25)],
        [("f2", 7.0)],
        [("f1", pytest.approx(1e-30))],
    ]
    first = recs[0]
    assert first.features[0].extra == {"token_index": 4, "token": " exam"} and first.split == "train"
    assert first.model == "gpt2" and recs[1].criterion_score is None and first.synthetic
    assert recs[0].features[0].layer is None and list(rich_table.to_records())[0].features[1].layer == 1
    with pytest.raises(ValueError, match="top_k"):
        next(rich_table.to_records(top_k=0))


# --- save / load -------------------------------------------------------------------------------


@pytest.mark.parametrize("sparse", [False, True])
def test_save_load_bit_exact(tmp_path, rich_table, sparse):
    t = rich_table.to_sparse() if sparse else rich_table
    out = t.save(tmp_path / "tbl")
    assert sorted(os.listdir(out)) == [
        "cfg.json",
        "examples.parquet",
        "features.parquet",
        "tokens.parquet",
        "values.safetensors",
    ]
    back = FeatureTable.load(out)
    assert back.equals(t)
    assert back.is_sparse == sparse and back.values.dtype == np.float32
    np.testing.assert_array_equal(
        back.dense().view(np.uint32), t.dense().view(np.uint32)
    )  # keeps -0.0 and 1e-30
    assert back.examples["split"].tolist() == ["train", None, "test", "train"]
    assert back.features["density"].tolist() == [0.1, 0.2, 0.3]
    assert back.tokens["token"].tolist() == [" exam", "The", None]
    assert back.meta == t.meta and back.synthetic
    cfg = json.loads((tmp_path / "tbl" / "cfg.json").read_text())
    assert cfg["kind"] == "feature_table" and cfg["schema_version"] == 1 and cfg["shape"] == [4, 3]
    assert cfg["sparse"] is sparse and cfg["n_decoder_vectors"] == 2


def test_save_load_empty_and_from_records(tmp_path):
    empty = FeatureTable(sp.csr_array((0, 0), dtype=np.float32))
    assert FeatureTable.load(empty.save(tmp_path / "e")).equals(empty)
    t = FeatureTable.from_records([_row("p", [(1, 1.0)], token_index=0, token="x"), _row("q", [])])
    assert FeatureTable.load(t.save(tmp_path / "r")).equals(t)


def test_save_overwrite_rules(tmp_path, rich_table):
    target = tmp_path / "t"
    rich_table.save(target)
    smaller = rich_table.select_features([0])
    smaller.save(target)
    assert FeatureTable.load(target).equals(smaller)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        rich_table.save(target, overwrite=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a FeatureTable"):
        rich_table.save(other)
    assert (other / "mine.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "t"]  # no temp folders left


def test_big_sparse_table_stores_only_nnz(tmp_path):
    values = sp.random_array((10_000, 50_000), density=0.01, format="csr", dtype=np.float32, rng=0)
    t = FeatureTable(values)
    nnz = values.nnz
    held = t.values.data.nbytes + t.values.indices.nbytes + t.values.indptr.nbytes
    assert t.is_sparse and held <= nnz * 8 + (10_001) * 8
    t.save(tmp_path / "big")
    assert os.path.getsize(tmp_path / "big" / "values.safetensors") < nnz * 8 + 200_000
    back = FeatureTable.load(tmp_path / "big")
    assert back.is_sparse and back.nnz == nnz and back.equals(t)


@st.composite
def tables(draw):
    n = draw(st.integers(0, 6))
    m = draw(st.integers(0, 5))
    vals = draw(
        st.lists(
            st.floats(width=32, allow_nan=False, allow_infinity=False) | st.just(0.0),
            min_size=n * m,
            max_size=n * m,
        )
    )
    values = np.array(vals, dtype=np.float32).reshape(n, m)
    if draw(st.booleans()):
        values = sp.csr_array(values)
    examples = pd.DataFrame(
        {
            "example_id": [f"e{i}" for i in range(n)],
            "text": draw(st.lists(st.text(max_size=5), min_size=n, max_size=n)),
            "criterion_score": draw(st.lists(st.floats(allow_infinity=False), min_size=n, max_size=n)),
            "split": draw(st.lists(st.sampled_from(["train", "test", None]), min_size=n, max_size=n)),
        }
    )
    features = pd.DataFrame(
        {
            "feature_id": [str(j) for j in range(m)],
            "label": draw(st.lists(st.none() | st.text(max_size=5), min_size=m, max_size=m)),
            "layer": draw(st.lists(st.none() | st.integers(0, 50), min_size=m, max_size=m)),
        }
    )
    decoders = {
        str(j): np.ones(draw(st.integers(1, 3)), dtype=np.float32) * j
        for j in range(m)
        if draw(st.booleans())
    }
    return FeatureTable(values, examples, features, decoder_vectors=decoders, synthetic=draw(st.booleans()))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=tables())
def test_property_save_load_round_trip(tmp_path, table):
    path = tmp_path / "prop"
    table.save(path)
    assert FeatureTable.load(path).equals(table)


# --- corrupt or missing files -------------------------------------------------------------------


def _break(path, how):
    if how == "missing_cfg":
        (path / "cfg.json").unlink()
    elif how == "bad_cfg_json":
        (path / "cfg.json").write_text("{not json")
    elif how == "wrong_kind":
        cfg = json.loads((path / "cfg.json").read_text())
        (path / "cfg.json").write_text(json.dumps({**cfg, "kind": "report"}))
    elif how == "future_schema":
        cfg = json.loads((path / "cfg.json").read_text())
        (path / "cfg.json").write_text(json.dumps({**cfg, "schema_version": 99}))
    elif how == "missing_values":
        (path / "values.safetensors").unlink()
    elif how == "missing_tokens":
        (path / "tokens.parquet").unlink()
    elif how == "flipped_byte":
        data = bytearray((path / "examples.parquet").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (path / "examples.parquet").write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("how", "match"),
    [
        ("missing_cfg", r"cfg\.json: missing"),
        ("bad_cfg_json", r"cfg\.json: not valid JSON"),
        ("wrong_kind", r"cfg\.json: kind is 'report'"),
        ("future_schema", r"cfg\.json: schema_version 99"),
        ("missing_values", r"values\.safetensors: missing"),
        ("missing_tokens", r"tokens\.parquet: missing"),
        ("flipped_byte", r"examples\.parquet: corrupt"),
    ],
)
def test_load_corrupt_folder_names_the_file(tmp_path, rich_table, how, match):
    path = tmp_path / "t"
    rich_table.save(path)
    _break(path, how)
    with pytest.raises(TableError, match=match):
        FeatureTable.load(path)


def test_load_unverified_corruption_still_names_the_file(tmp_path, rich_table):
    path = tmp_path / "t"
    rich_table.save(path)
    (path / "values.safetensors").write_bytes(b"garbage")
    with pytest.raises(TableError, match=r"values\.safetensors: cannot be read"):
        FeatureTable.load(path, verify=False)
    rich_table.save(path)
    (path / "features.parquet").write_bytes(b"PAR1 nonsense")
    with pytest.raises(TableError, match=r"features\.parquet: cannot be read as parquet"):
        FeatureTable.load(path, verify=False)
    rich_table.save(path)
    cfg = json.loads((path / "cfg.json").read_text())
    (path / "cfg.json").write_text(json.dumps({**cfg, "shape": [5, 3]}))
    with pytest.raises(TableError, match=r"values\.safetensors: inconsistent values"):
        FeatureTable.load(path)


def test_load_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such FeatureTable folder"):
        FeatureTable.load(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(TableError, match="not a folder"):
        FeatureTable.load(tmp_path / "file")


def test_hstack_joins_features_over_the_same_examples():
    from interpkit.sources import make_toy_table

    t = make_toy_table(seed=0).table
    a, b = t.select_features([0, 1]), t.select_features([2, 3, 4])
    joined = FeatureTable.hstack([a, b])
    assert joined.feature_ids == t.feature_ids[:5]
    np.testing.assert_array_equal(joined.dense(), t.select_features([0, 1, 2, 3, 4]).dense())
    if t.tokens is not None:
        sub = t.select_features([0, 1, 2, 3, 4]).tokens
        assert sorted(map(tuple, joined.tokens[["example_idx", "feature_idx"]].to_numpy().tolist())) == sorted(
            map(tuple, sub[["example_idx", "feature_idx"]].to_numpy().tolist()))
    with pytest.raises(TableError, match="more than one table"):
        FeatureTable.hstack([a, a])
    with pytest.raises(TableError, match="different examples"):
        FeatureTable.hstack([a, b.select_examples(list(range(b.n_examples))[::-1])])
