"""Tests for interpkit.records: parsing, round trips, error locations, intervention semantics."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import pickle
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interpkit.records import (
    DECREASING_INTERVENTIONS,
    INCREASING_INTERVENTIONS,
    INTERVENTION_KINDS,
    ActivationRecord,
    FeatureActivation,
    FeatureDump,
    InterventionRecord,
    RecordError,
    canonical_intervention,
    detect_record_kind,
    filter_interventions,
    iter_activation_records,
    iter_intervention_records,
    iter_records,
    normalize_criterion,
    read_activation_records,
    read_feature_dumps,
    read_intervention_records,
    write_jsonl,
)

ACT_ROW = {
    "model": "gpt2",
    "prompt_id": "p1",
    "text": "Is this a test?",
    "criterion_score": 0.8,
    "features": [
        {
            "feature_id": 17,
            "activation": 3.5,
            "label": "eval talk",
            "layer": 6,
            "decoder_signature": [0.1, -0.2],
        },
        {"feature_id": "L6/42", "activation": 1, "rank": 2},
    ],
    "split": "train",
    "annotator": {"name": "ada", "confidence": 0.9},
}
DUMP_ROW = {
    "feature_id": 1234,
    "model": "gemma-2-2b",
    "layer": 12,
    "label": "test-taking",
    "examples": ["this is an exam", {"text": "quiz time", "activation": 4.1}],
    "activation_signature": [0.1, 0.0, 2.0],
    "decoder_signature": [0.02, -0.3],
    "causal_effects": {"eval_awareness": -0.4, "refusal": 0.1},
    "source": "neuronpedia",
    "density": 0.001,
}
INT_ROW = {
    "model": "gpt2",
    "feature_id": 17,
    "criterion": "The model is aware it is being evaluated.",
    "intervention": "ablate",
    "prompt_id": "p1",
    "baseline_score": 0.8,
    "intervention_score": 0.3,
    "side_effect_score": 0.05,
    "strength": 0.0,
}


def _write_rows(path: Path, rows: list) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


# --- parsing the three shapes ---------------------------------------------------------------


def test_activation_row_parses_with_extras():
    rec = ActivationRecord.from_dict(ACT_ROW)
    assert rec.model == "gpt2" and rec.prompt_id == "p1" and rec.criterion_score == 0.8
    assert [f.feature_id for f in rec.features] == [17, "L6/42"]
    f0, f1 = rec.features
    assert f0.label == "eval talk" and f0.layer == 6 and f0.decoder_signature == (0.1, -0.2)
    assert f1.activation == 1.0 and isinstance(f1.activation, float)
    assert f1.extra == {"rank": 2}
    assert rec.split == "train" and rec.token_index is None and rec.synthetic is False
    assert rec.extra["annotator"] == {"name": "ada", "confidence": 0.9}
    assert rec.to_dict() == {
        **ACT_ROW,
        "features": [ACT_ROW["features"][0], {**ACT_ROW["features"][1], "activation": 1.0}],
    }


def test_activation_row_null_criterion_and_empty_features():
    rec = ActivationRecord.from_dict(
        {"model": "m", "prompt_id": 3, "text": "", "criterion_score": None, "features": []}
    )
    assert rec.criterion_score is None and rec.features == ()
    missing = ActivationRecord.from_dict({"model": "m", "prompt_id": 3, "text": "", "features": []})
    assert missing.criterion_score is None


def test_token_level_row_extras():
    rec = ActivationRecord.from_dict({**ACT_ROW, "token_index": 4, "token": " test", "synthetic": True})
    assert rec.token_index == 4 and rec.token == " test" and rec.synthetic is True


def test_feature_dump_parses_with_extras():
    dump = FeatureDump.from_dict(DUMP_ROW)
    assert dump.feature_id == 1234 and dump.layer == 12 and dump.source == "neuronpedia"
    assert dump.examples[0] == "this is an exam" and dump.examples[1] == {
        "text": "quiz time",
        "activation": 4.1,
    }
    assert dump.causal_effects == {"eval_awareness": -0.4, "refusal": 0.1}
    assert dump.extra == {"density": 0.001}
    assert dump.to_dict() == DUMP_ROW


def test_feature_dump_minimal_row_defaults():
    dump = FeatureDump.from_dict({"feature_id": "f", "model": "m", "examples": None, "causal_effects": None})
    assert dump.examples == () and dump.causal_effects == {} and dump.label is None
    assert dump.to_dict()["activation_signature"] is None


def test_intervention_row_parses_with_extras():
    rec = InterventionRecord.from_dict(INT_ROW)
    assert rec.kind == "ablate" and rec.expected_sign == -1
    assert rec.signed_effect == pytest.approx(0.5) and rec.effect == pytest.approx(-0.5)
    assert rec.extra == {"strength": 0.0}
    assert rec.to_dict() == INT_ROW


def test_intervention_optional_fields():
    rec = InterventionRecord.from_dict(
        {"model": "m", "feature_id": 1, "intervention": "steer", "baseline_score": 0, "intervention_score": 1}
    )
    assert rec.criterion is None and rec.prompt_id is None and rec.side_effect_score is None
    assert rec.signed_effect == 1.0


# --- round trips --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_round_trip_all_three_formats(tmp_path, suffix):
    acts = [ActivationRecord.from_dict(ACT_ROW), ActivationRecord.from_dict({**ACT_ROW, "prompt_id": 2})]
    dumps = [FeatureDump.from_dict(DUMP_ROW)]
    ints = [
        InterventionRecord.from_dict(INT_ROW),
        InterventionRecord.from_dict({**INT_ROW, "intervention": "Clamp-Up"}),
    ]
    for name, recs, reader in [
        ("a", acts, read_activation_records),
        ("d", dumps, read_feature_dumps),
        ("i", ints, read_intervention_records),
    ]:
        path = tmp_path / f"{name}{suffix}"
        assert write_jsonl(path, recs) == len(recs)
        back = reader(path)
        assert back == recs
        assert [r.to_dict() for r in back] == [r.to_dict() for r in recs]
    if suffix.endswith(".gz"):
        with gzip.open(tmp_path / f"a{suffix}", "rt") as fh:
            assert json.loads(fh.readline())["annotator"]["name"] == "ada"


def test_write_accepts_dicts_and_streams(tmp_path):
    path = tmp_path / "x.jsonl"
    write_jsonl(path, iter([INT_ROW, InterventionRecord.from_dict(INT_ROW)]))
    lines = path.read_text().splitlines()
    assert len(lines) == 2 and json.loads(lines[0]) == json.loads(lines[1]) == INT_ROW
    buf = io.StringIO()
    assert write_jsonl(buf, [ACT_ROW]) == 1
    assert json.loads(buf.getvalue()) == ACT_ROW
    with pytest.raises(TypeError, match="item 0"):
        write_jsonl(tmp_path / "bad.jsonl", [42])
    assert not (tmp_path / "bad.jsonl").exists()


def test_write_is_atomic_on_failure(tmp_path):
    path = tmp_path / "keep.jsonl"
    write_jsonl(path, [INT_ROW])
    before = path.read_text()

    def rows():
        yield INT_ROW
        raise RuntimeError("producer died")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.jsonl"]


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
ids = st.one_of(st.integers(-(10**12), 10**12), st.text(min_size=1).filter(str.strip))
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(10**6), 10**6), finite, st.text(max_size=8))
extra_keys = st.text(min_size=1, max_size=8).filter(lambda k: k.startswith("x_"))


@st.composite
def activation_rows(draw):
    fids = draw(st.lists(ids, max_size=5, unique_by=str))
    feats = [
        {
            "feature_id": fid,
            "activation": draw(finite),
            **({"label": draw(st.text(max_size=10))} if draw(st.booleans()) else {}),
            **({"layer": draw(st.integers(0, 80))} if draw(st.booleans()) else {}),
            **(
                {"decoder_signature": draw(st.lists(finite, min_size=1, max_size=4))}
                if draw(st.booleans())
                else {}
            ),
        }
        for fid in fids
    ]
    extra = draw(st.dictionaries(st.from_regex(r"x_[a-z]{1,5}", fullmatch=True), json_scalars, max_size=3))
    return {
        "model": draw(st.text(min_size=1, max_size=10).filter(str.strip)),
        "prompt_id": draw(ids),
        "text": draw(st.text(max_size=30)),
        "criterion_score": draw(st.one_of(st.none(), finite)),
        "features": feats,
        **extra,
    }


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(activation_rows(), max_size=4))
def test_property_activation_round_trip(rows):
    recs = [ActivationRecord.from_dict(r) for r in rows]
    buf = io.StringIO()
    write_jsonl(buf, recs)
    back = list(
        iter_activation_records(buf.getvalue().splitlines(), source_name="<mem>")
    )  # splitlines also splits on U+2028: the writer must escape it
    assert back == recs
    assert [r.to_dict() for r in back] == rows


# --- malformed input: file, line and field in every message ---------------------------------

_good_feat = {"feature_id": 1, "activation": 1.0}
MALFORMED = [
    ("act", {**ACT_ROW, "model": 3}, "model", "a non-empty string"),
    ("act", {k: v for k, v in ACT_ROW.items() if k != "model"}, "model", "the field is missing"),
    ("act", {k: v for k, v in ACT_ROW.items() if k != "features"}, "features", "the field is missing"),
    ("act", {**ACT_ROW, "features": {"1": 2.0}}, "features", "a list of"),
    ("act", {**ACT_ROW, "criterion_score": True}, "criterion_score", "got true"),
    ("act", {**ACT_ROW, "criterion_score": "high"}, "criterion_score", 'got "high"'),
    ("act", {**ACT_ROW, "prompt_id": 1.5}, "prompt_id", "integer id"),
    (
        "act",
        {**ACT_ROW, "features": [_good_feat, {"feature_id": 2, "activation": "abc"}]},
        "features[1].activation",
        'got "abc"',
    ),
    (
        "act",
        {**ACT_ROW, "features": [{"feature_id": 2, "activation": float("nan")}]},
        "features[0].activation",
        "got NaN",
    ),
    (
        "act",
        {**ACT_ROW, "features": [{"feature_id": 2, "activation": float("inf")}]},
        "features[0].activation",
        "Infinity",
    ),
    (
        "act",
        {**ACT_ROW, "features": [{"feature_id": 2, "activation": False}]},
        "features[0].activation",
        "got false",
    ),
    ("act", {**ACT_ROW, "features": [{"activation": 1.0}]}, "features[0].feature_id", "missing"),
    (
        "act",
        {**ACT_ROW, "features": [_good_feat, {"feature_id": "1", "activation": 2.0}]},
        "features[1].feature_id",
        "unique",
    ),
    (
        "act",
        {**ACT_ROW, "features": [{"feature_id": 2, "activation": 1, "decoder_signature": [1, "x"]}]},
        "features[0].decoder_signature[1]",
        "finite number",
    ),
    ("act", {**ACT_ROW, "features": [3]}, "features[0]", "a JSON object"),
    ("act", {**ACT_ROW, "token_index": -1}, "token_index", ">= 0"),
    ("act", {**ACT_ROW, "synthetic": "yes"}, "synthetic", "true or false"),
    ("dump", {**DUMP_ROW, "causal_effects": {"x": "big"}}, "causal_effects.x", "finite number"),
    ("dump", {**DUMP_ROW, "examples": "one"}, "examples", "a list"),
    ("dump", {**DUMP_ROW, "layer": True}, "layer", "integer layer index"),
    ("dump", {**DUMP_ROW, "activation_signature": []}, "activation_signature", "non-empty"),
    ("int", {**INT_ROW, "intervention": "nuke"}, "intervention", 'got "nuke"'),
    ("int", {**INT_ROW, "baseline_score": None}, "baseline_score", "got null"),
    ("int", {k: v for k, v in INT_ROW.items() if k != "intervention_score"}, "intervention_score", "missing"),
    ("int", {**INT_ROW, "side_effect_score": "n/a"}, "side_effect_score", "or null"),
    ("int", {**INT_ROW, "criterion": 5}, "criterion", "a string or null"),
    ("int", {**INT_ROW, "feature_id": None}, "feature_id", "got null"),
]
_READERS = {"act": read_activation_records, "dump": read_feature_dumps, "int": read_intervention_records}
_GOOD = {"act": ACT_ROW, "dump": DUMP_ROW, "int": INT_ROW}


@pytest.mark.parametrize(
    ("kind", "row", "field", "fragment"),
    MALFORMED,
    ids=[f"{m[0]}-{m[2]}-{i}" for i, m in enumerate(MALFORMED)],
)
def test_malformed_row_names_file_line_field(tmp_path, kind, row, field, fragment):
    path = _write_rows(tmp_path / "bad.jsonl", [_GOOD[kind], "", row])
    with pytest.raises(RecordError) as info:
        _READERS[kind](path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    msg = str(err)
    assert msg.startswith(f"{path}:3: field '{field}': expected ")
    assert fragment in msg


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"model": "m", ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object, got [1, 2]"),
        ('"just a string"', "expected a JSON object"),
    ],
)
def test_bad_json_lines_name_file_and_line(tmp_path, text, fragment):
    path = _write_rows(tmp_path / "bad.jsonl", [ACT_ROW, text])
    with pytest.raises(RecordError, match=f"bad.jsonl:2: .*{re.escape(fragment)}") as info:
        read_activation_records(path)
    assert info.value.line == 2 and info.value.field is None


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "bin.jsonl"
    path.write_bytes(json.dumps(ACT_ROW).encode() + b"\n\xff\xfe\n")
    with pytest.raises(RecordError, match="UTF-8"):
        read_activation_records(path)


def test_reader_streams_lazily(tmp_path):
    path = _write_rows(tmp_path / "a.jsonl", [ACT_ROW, "not json"])
    it = iter_activation_records(path)
    assert next(it).prompt_id == "p1"
    with pytest.raises(RecordError, match=":2:"):
        next(it)


def test_missing_file_errors_eagerly(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        iter_activation_records(tmp_path / "nope.jsonl")


def test_in_memory_sources_use_source_name():
    rows = [INT_ROW, {**INT_ROW, "intervention": "obliterate"}]
    with pytest.raises(RecordError, match=r"^<stdin>:2: field 'intervention'"):
        list(iter_intervention_records(rows, source_name="<stdin>"))
    lines = [json.dumps(INT_ROW), "   ", json.dumps(INT_ROW).encode()]
    assert len(list(iter_intervention_records(lines))) == 2


def test_typo_is_refused_strict_and_kept_lenient():
    row = {"model": "m", "prompt_id": 1, "text": "t", "criterion_scor": 0.5, "features": []}
    with pytest.raises(RecordError, match="criterion_score.*lenient=True") as info:
        ActivationRecord.from_dict(row)
    assert info.value.field == "criterion_scor"
    rec = ActivationRecord.from_dict(row, lenient=True)
    assert rec.extra == {"criterion_scor": 0.5} and rec.to_dict()["criterion_scor"] == 0.5
    with pytest.raises(RecordError, match="'label'"):
        FeatureActivation.from_dict({"feature_id": 1, "activation": 1.0, "Label": "x"})
    # a near name is fine when the real field is present too
    ok = FeatureActivation.from_dict({"feature_id": 1, "activation": 1.0, "label": "x", "labels": ["y"]})
    assert ok.extra == {"labels": ["y"]}


def test_direct_construction_validates():
    with pytest.raises(RecordError, match="field 'activation': expected a finite number, got NaN"):
        FeatureActivation(feature_id=1, activation=math.nan)
    with pytest.raises(RecordError, match="field 'extra.model'"):
        ActivationRecord(model="m", prompt_id=1, text="", features=(), extra={"model": "x"})
    rec = ActivationRecord(model="m", prompt_id=1, text="", features=[{"feature_id": 1, "activation": 2}])
    assert rec.features[0] == FeatureActivation(feature_id=1, activation=2.0)
    with pytest.raises(AttributeError):
        rec.model = "other"  # type: ignore[misc]


def test_record_error_pickles_and_relocates():
    err = RecordError("a finite number", "abc", field="activation").nested("features[3]")
    assert str(err) == "field 'features[3].activation': expected a finite number, got \"abc\""
    placed = err.located(path="records.jsonl", line=12)
    assert (
        str(placed)
        == "records.jsonl:12: field 'features[3].activation': expected a finite number, got \"abc\""
    )
    again = pickle.loads(pickle.dumps(placed))
    assert str(again) == str(placed) and again.line == 12 and isinstance(again, ValueError)


# --- intervention semantics ----------------------------------------------------------------


def test_kind_tables():
    assert set(INTERVENTION_KINDS) == DECREASING_INTERVENTIONS | INCREASING_INTERVENTIONS
    assert {"ablate", "zero", "remove", "knockout", "suppress", "clamp_down"} == DECREASING_INTERVENTIONS
    assert {"amplify", "steer", "patch", "patch_in", "clamp", "clamp_up"} == INCREASING_INTERVENTIONS


@pytest.mark.parametrize("kind", sorted(INTERVENTION_KINDS))
def test_signed_effect_every_kind(kind):
    drop = InterventionRecord(
        model="m", feature_id=1, intervention=kind, baseline_score=0.9, intervention_score=0.2
    )
    rise = InterventionRecord(
        model="m", feature_id=1, intervention=kind, baseline_score=0.2, intervention_score=0.9
    )
    if kind in DECREASING_INTERVENTIONS:
        assert drop.expected_sign == -1
        assert drop.signed_effect == pytest.approx(0.7) and rise.signed_effect == pytest.approx(-0.7)
    else:
        assert drop.expected_sign == 1
        assert drop.signed_effect == pytest.approx(-0.7) and rise.signed_effect == pytest.approx(0.7)


@pytest.mark.parametrize(
    ("raw", "canon"), [("ABLATE", "ablate"), ("clamp-down", "clamp_down"), (" Patch In ", "patch_in")]
)
def test_canonical_intervention_spellings(raw, canon):
    assert canonical_intervention(raw) == canon
    rec = InterventionRecord.from_dict({**INT_ROW, "intervention": raw})
    assert rec.kind == canon and rec.intervention == raw


def test_unknown_intervention_kind_is_an_error_not_a_skip(tmp_path):
    path = _write_rows(tmp_path / "i.jsonl", [INT_ROW, {**INT_ROW, "intervention": "lobotomize"}, INT_ROW])
    with pytest.raises(RecordError) as info:
        read_intervention_records(path)
    assert info.value.line == 2 and info.value.field == "intervention"
    assert "ablate" in str(info.value) and '"lobotomize"' in str(info.value)


def test_normalize_criterion():
    assert normalize_criterion("The model is aware.") == normalize_criterion("the model is  aware")
    assert normalize_criterion("  Eval\tAWARENESS!? ") == "eval awareness"
    assert normalize_criterion("aware") != normalize_criterion("unaware")


def test_filter_interventions():
    base = InterventionRecord.from_dict(INT_ROW)
    same = InterventionRecord.from_dict({**INT_ROW, "criterion": "the model is aware it is  being evaluated"})
    other = InterventionRecord.from_dict({**INT_ROW, "criterion": "refusal"})
    none = InterventionRecord.from_dict({**INT_ROW, "criterion": None})
    recs = [base, same, other, none]
    kept, dropped = filter_interventions(recs, "The model is aware it is being evaluated")
    assert kept == [base, same, none] and dropped == 1
    res = filter_interventions(recs, "The model is aware it is being evaluated", allow_mismatch=True)
    assert res.kept == recs and res.dropped == 0
    assert filter_interventions(recs, None) == (recs, 0)
    assert other.applies_to("Refusal.") and not other.applies_to("aware")


# --- kind detection -------------------------------------------------------------------------


def test_detect_record_kind(tmp_path):
    for row, kind in [(ACT_ROW, "activation"), (DUMP_ROW, "feature_dump"), (INT_ROW, "intervention")]:
        path = _write_rows(tmp_path / f"{kind}.jsonl", ["", row])
        assert detect_record_kind(path) == kind
        assert next(iter(iter_records(path))).to_dict() == row
    assert (
        detect_record_kind(_write_rows(tmp_path / "fd.jsonl", [{"feature_id": 1, "model": "m"}]))
        == "feature_dump"
    )
    with pytest.raises(RecordError, match="empty file"):
        detect_record_kind(_write_rows(tmp_path / "empty.jsonl", [""]))
    with pytest.raises(RecordError, match="odd.jsonl:1: expected an activation record"):
        detect_record_kind(_write_rows(tmp_path / "odd.jsonl", [{"hello": 1}]))


def test_atomic_writes_get_the_umask_mode_not_mkstemps_0600(tmp_path):
    import stat

    from interpkit._io import atomic_write_text

    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
