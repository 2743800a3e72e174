"""Intervention specs: the JSON layout, the atomic writer and the strict reader's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interpkit.records import (
    INTERVENTION_SPEC_KIND,
    InterventionSpec,
    RecordError,
    SpecEdit,
    read_intervention_spec,
    vector_sha256,
    write_intervention_spec,
)


def _spec() -> InterventionSpec:
    vec = np.random.default_rng(0).normal(size=8).astype(np.float32)
    return InterventionSpec(edits=(SpecEdit(feature="v", site="layer1.resid_post", strength=2.5, vector=vec),),
                            model="tiny", criterion="cats",
                            generation={"prompt": "the cat", "max_new_tokens": 6, "seed": 0, "do_sample": False,
                                        "chat": False})


def test_layout_and_round_trip(tmp_path):
    spec = _spec()
    data = spec.to_dict()
    assert list(data) == ["kind", "schema_version", "model", "criterion", "edits", "generation"]
    assert data["kind"] == INTERVENTION_SPEC_KIND == "intervention_spec" and data["schema_version"] == 1
    edit = data["edits"][0]
    assert list(edit) == ["type", "feature", "site", "strength", "d_model", "norm", "vector", "vector_sha256"]
    assert edit["d_model"] == 8 and edit["vector_sha256"] == vector_sha256(np.asarray(edit["vector"]))
    path = write_intervention_spec(tmp_path / "sub" / "spec.json", spec)
    assert path.read_text().endswith("}\n") and json.loads(path.read_text()) == data
    assert read_intervention_spec(path) == spec == read_intervention_spec(data)
    assert not list(path.parent.glob(".*.tmp"))  # the temporary file was renamed away


def test_a_bad_spec_writes_nothing(tmp_path):
    bad = _spec().to_dict()
    bad["edits"][0]["strength"] = "high"
    with pytest.raises(RecordError, match=r"field 'edits\[0\].strength'"):
        write_intervention_spec(tmp_path / "spec.json", bad)
    assert not (tmp_path / "spec.json").exists()


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d.update(kind="report"), "kind"),
    (lambda d: d.pop("schema_version"), "schema_version"),
    (lambda d: d.update(schema_version=99), "schema_version"),
    (lambda d: d.update(edits={}), "edits"),
    (lambda d: d.update(extra_field=1), "extra_field"),
    (lambda d: d.update(model=3), "model"),
    (lambda d: d["edits"][0].pop("site"), "edits[0].site"),
    (lambda d: d["edits"][0].update(type="clamp"), "edits[0].type"),
    (lambda d: d["edits"][0].update(d_model=3), "edits[0].d_model"),
    (lambda d: d["edits"][0]["vector"].__setitem__(2, "x"), "edits[0].vector[2]"),
    (lambda d: d["edits"][0]["vector"].__setitem__(0, 1.5), "edits[0].vector_sha256"),
    (lambda d: d["edits"][0].update(strenght=1.0), "edits[0].strenght"),
])
def test_reader_errors_name_the_file_and_the_field(tmp_path, change, field):
    data = _spec().to_dict()
    change(data)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(data))
    with pytest.raises(RecordError) as info:
        read_intervention_spec(path)
    assert info.value.path == str(path) and info.value.field == field
    assert str(info.value).startswith(f"{path}: field '{field}'")


def test_reader_refuses_invalid_json(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text('{"kind": ')
    with pytest.raises(RecordError, match=r"spec\.json: expected valid JSON"):
        read_intervention_spec(path)
