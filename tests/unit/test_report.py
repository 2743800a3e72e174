"""Reports: save/load round trip, strict schema, atomic writes, synthetic labelling."""

import json

import pytest

import interpkit
from interpkit.report import Report, ReportSchemaError, load_report


@pytest.fixture(scope="module")
def toy_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("toy")
    return interpkit.inspect("toy", "mentions an animal", backend="toy", out=out, top_k=5,
                             n_permutations=200, n_bootstrap=20)


def test_round_trip_is_exact(toy_report):
    loaded = load_report(toy_report.path)
    assert loaded.to_dict() == toy_report.to_dict()
    assert json.loads(toy_report.path.read_text()) == loaded.to_dict()
    # a second save of the loaded report is byte-identical
    assert loaded.to_json() == toy_report.path.read_text()


def test_synthetic_is_everywhere(toy_report):
    data = json.loads(toy_report.path.read_text())
    assert data["synthetic"] is True
    assert data["ranking"]["synthetic"] is True
    md = toy_report.path.with_suffix(".md").read_text()
    assert "SYNTHETIC DATA" in md


def test_report_has_components_and_examples(toy_report):
    data = json.loads(toy_report.path.read_text())
    assert len(data["features"]) == 5
    first = data["features"][0]
    assert {"association", "specificity", "causal", "stability", "combined", "tier"} <= set(first["components"])
    assert first["top_examples"] and "text" in first["top_examples"][0]
    assert data["inputs"] == []  # the toy backend reads no files


def test_load_directory_or_file(toy_report):
    assert load_report(toy_report.path.parent).criterion == "mentions an animal"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(kind="something_else"), "field 'kind'"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d.update(surprise=1), "unknown field"),
        (lambda d: d.pop("model"), "missing field"),
        (lambda d: d["features"][0].update(extra_thing=1), r"features\[0\]"),
    ],
)
def test_strict_schema(toy_report, tmp_path, mutate, message):
    data = json.loads(toy_report.path.read_text())
    mutate(data)
    p = tmp_path / "report.json"
    p.write_text(json.dumps(data))
    with pytest.raises(ReportSchemaError, match=message):
        load_report(p)


def test_invalid_json_names_file_and_line(tmp_path):
    p = tmp_path / "report.json"
    p.write_text('{\n  "kind": "interpkit_report",\n  oops\n}')
    with pytest.raises(ReportSchemaError, match=r"report.json:3"):
        load_report(p)


def test_missing_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="no report"):
        load_report(tmp_path)


def test_failed_save_keeps_previous_report(toy_report, tmp_path, monkeypatch):
    saved = toy_report.save(tmp_path)
    before = saved.path.read_bytes()

    def boom(self):
        raise RuntimeError("disk full while rendering")

    monkeypatch.setattr(Report, "to_markdown", boom)
    with pytest.raises(RuntimeError):
        toy_report.save(tmp_path)
    assert saved.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_feature_entry_from_table_reads_metadata_ranking_examples_and_records():
    from interpkit.rank import rank
    from interpkit.report import FeatureEntry, card_css, feature_card_html

    toy = interpkit.make_toy_table(n_examples=80, n_features=6, seed=3)
    result = rank(toy.table, interventions=toy.interventions, n_permutations=50, n_bootstrap=5)
    fid = toy.truth.carrier
    entry = FeatureEntry.from_table(toy.table, fid, ranking=result, interventions=toy.interventions,
                                    n_top_examples=3)
    assert entry.rank == result.row(fid).rank and entry.components == result.component(fid)
    assert len(entry.top_examples) == 3
    acts = [e["activation"] for e in entry.top_examples]
    assert acts == sorted(acts, reverse=True)
    mine = [r for r in toy.interventions if r.feature_id == fid]
    assert sum(c["n"] for c in entry.causal_records) == len(mine) > 0
    card = feature_card_html(entry)
    assert card.startswith('<article class="card"') and f'id="card-{fid}' in card
    assert ":host" in card_css() and ":root" not in card_css()
    expl = {"feature_id": fid, "label": "from expl"}
    bare = FeatureEntry.from_table(toy.table, fid, explanation=expl)
    assert bare.rank == 0 and bare.components == {} and bare.causal_records == ()
    assert bare.label == entry.label != "from expl"  # the table's label comes first
    assert bare.explanation["label"] == "from expl"
    toy.table.features["label"] = None
    assert FeatureEntry.from_table(toy.table, fid, explanation=expl).label == "from expl"
    assert FeatureEntry.from_table(toy.table, fid).label is None
    with pytest.raises(KeyError):
        FeatureEntry.from_table(toy.table, "no-such-feature")


def test_the_format_lives_in_records(toy_report):
    from interpkit.records import ReportRecord, read_report

    record = read_report(toy_report.path.parent)
    assert type(record) is ReportRecord and isinstance(toy_report, ReportRecord)
    assert isinstance(record.ranking, dict) and record.to_dict() == toy_report.to_dict()
    assert record.to_json() == toy_report.path.read_text()
    assert [f.feature_id for f in record.features] == [f.feature_id for f in toy_report.features]
    from interpkit.report import FeatureEntry, load_report

    # the report layer reads the same file into its own classes (the entries with from_table)
    assert all(type(f) is FeatureEntry for f in load_report(toy_report.path).features)


def test_readers_below_the_report_layer_do_not_import_it(toy_report):
    import subprocess
    import sys

    code = (
        "import sys; from interpkit.match import fingerprints_from_report;"
        f"fps = fingerprints_from_report({str(toy_report.path)!r});"
        "import interpkit.causal._export;"
        "print(len(fps), 'interpkit.report' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["5", "False"]
