"""inspect and the CLI end to end on the three file-free/file backends."""

import json

import pytest

import interpkit
from interpkit.cli import main
from interpkit.inspect import InspectError
from interpkit.records import write_jsonl

CRIT = "the text mentions an animal"


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    toy = interpkit.make_toy_table(seed=1, criterion=CRIT)
    write_jsonl(d / "records.jsonl", toy.table.to_records())
    write_jsonl(d / "interventions.jsonl", toy.interventions)
    return toy, d / "records.jsonl", d / "interventions.jsonl"


def _ids(report):
    return [f.feature_id for f in report.features]


def test_records_backend_recovers_planted_truth(toy_files, tmp_path):
    toy, records, interventions = toy_files
    report = interpkit.inspect(None, CRIT, records=records, interventions=interventions,
                               out=tmp_path, top_k=4, n_permutations=300, n_bootstrap=20)
    assert report.backend == "records"
    assert report.synthetic  # the toy rows say synthetic: true and that survives the file round trip
    ids = _ids(report)
    assert ids[0] == toy.truth.carrier
    assert ids.index(toy.truth.causal_only) < ids.index(toy.truth.decoy) if toy.truth.decoy in ids else True
    roles = [i.role for i in report.inputs]
    assert roles == ["records", "interventions"]
    assert all(len(i.sha256) == 64 for i in report.inputs)
    assert interpkit.load_report(tmp_path).to_dict() == report.to_dict()


def test_criterion_mismatch_drops_interventions(toy_files):
    _, records, interventions = toy_files
    other = interpkit.inspect(None, "a different criterion", records=records, interventions=interventions,
                              top_k=3, n_permutations=100, n_bootstrap=10)
    assert all(f.components["causal"]["status"] == "no causal evidence" for f in other.features)
    allowed = interpkit.inspect(None, "a different criterion", records=records, interventions=interventions,
                                allow_intervention_criterion_mismatch=True, top_k=3,
                                n_permutations=100, n_bootstrap=10)
    assert any(f.components["causal"]["status"] != "no causal evidence" for f in allowed.features)


def test_criterion_normalisation_matches(toy_files):
    toy, records, interventions = toy_files
    report = interpkit.inspect(None, "  The text MENTIONS an animal. ", records=records,
                               interventions=interventions, top_k=2, n_permutations=100, n_bootstrap=10)
    assert report.features[0].components["causal"]["status"] != "no causal evidence"


def test_toy_never_default_for_real_model(tmp_path):
    # a real model name selects the model backend (it fails on the missing dataset, never falls back to toy)
    with pytest.raises(InspectError, match="--dataset: no such file"):
        interpkit.inspect("gpt2", CRIT, dataset=tmp_path / "missing.jsonl")
    with pytest.raises(InspectError, match="--backend toy"):
        interpkit.inspect(None, CRIT)


def _scored_dataset(path, n=16):
    rows = [{"prompt_id": f"p{i}", "text": f"the cat sat on mat number {i}", "criterion_score": 1.0} for i in range(n)]
    rows += [{"prompt_id": f"q{i}", "text": f"tax forms are due in month {i}", "criterion_score": 0.0} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_model_backend_ranks_neurons_and_the_train_split_direction(tmp_path, monkeypatch):
    from interpkit._testing import tiny_model

    monkeypatch.setenv("INTERPKIT_CACHE", str(tmp_path / "cache"))
    data = _scored_dataset(tmp_path / "d.jsonl")
    report = interpkit.inspect(tiny_model(), CRIT, dataset=data, site="layer1.resid_post", top_k=3,
                               n_permutations=50, n_bootstrap=5, labeler=None, out=tmp_path / "out",
                               html_out=tmp_path / "cards.html")
    assert report.backend == "model"
    assert report.settings["criterion_scores"]["scores"] == "dataset"
    assert report.settings["model_table"]["direction"]["feature_id"] == "layer1.resid_post:diffmean"
    ids = report.ranking.to_frame()["feature_id"].tolist()
    assert "layer1.resid_post:diffmean" in ids and "layer1.resid_post:n0" in ids
    assert len(ids) == 17  # 16 neurons of the tiny model + the direction
    for f in report.features:
        assert f.explanation is not None and f.explanation["top_examples"]
        assert "logit_effects" in f.explanation
    assert (tmp_path / "cards.html").read_text().count("</html>") == 1


def test_features_backend(tmp_path):
    dumps = []
    texts = [(f"cat story {i}", 1.0) for i in range(12)] + [(f"tax form {i}", 0.0) for i in range(12)]
    for fid, fires_on in (("f_cat", 1.0), ("f_tax", 0.0), ("f_all", None)):
        examples = [
            {"text": t, "activation": (2.0 if (fires_on is None or s == fires_on) else 0.1) + 0.01 * k,
             "criterion_score": s}
            for k, (t, s) in enumerate(texts)
        ]
        dumps.append({"feature_id": fid, "model": "m", "layer": 3, "label": fid, "examples": examples,
                      "activation_signature": None, "decoder_signature": [0.1, 0.2],
                      "causal_effects": {CRIT: 0.5}, "source": "test"})
    path = tmp_path / "dumps.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in dumps))
    report = interpkit.inspect(None, CRIT, features=path, top_k=3, n_permutations=200, n_bootstrap=10)
    assert report.backend == "features"
    assert report.features[0].feature_id == "f_cat"
    assert report.features[0].imported_causal_effects == {CRIT: 0.5}
    # imported effects are reported, not used as causal evidence
    assert report.features[0].components["causal"]["status"] == "no causal evidence"


def test_cli_inspect_and_errors(toy_files, tmp_path, capsys):
    _, records, interventions = toy_files
    rc = main(["inspect", "--criterion", CRIT, "--records", str(records), "--interventions",
               str(interventions), "--out", str(tmp_path / "o"), "--top-k", "3", "--n-permutations", "100",
               "--n-bootstrap", "10"])
    assert rc == 0
    assert (tmp_path / "o" / "report.json").exists() and (tmp_path / "o" / "report.md").exists()

    bad = tmp_path / "bad.jsonl"
    lines = records.read_text().splitlines()
    row = json.loads(lines[1])
    row["features"][0]["activation"] = "high"
    bad.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    rc = main(["inspect", "--criterion", CRIT, "--records", str(bad), "--out", str(tmp_path / "o2")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "bad.jsonl:2" in err and "activation" in err
    assert not (tmp_path / "o2" / "report.json").exists()

    bad_kind = tmp_path / "bad_int.jsonl"
    rows = [json.loads(x) for x in interventions.read_text().splitlines()]
    rows[3]["intervention"] = "tickle"
    bad_kind.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = main(["inspect", "--criterion", CRIT, "--records", str(records), "--interventions", str(bad_kind),
               "--out", str(tmp_path / "o3")])
    err = capsys.readouterr().err
    assert rc == 2 and "bad_int.jsonl:4" in err and "tickle" in err


def test_cli_inspect_writes_to_a_default_folder(toy_files, tmp_path, monkeypatch, capsys):
    _, records, _ = toy_files
    monkeypatch.chdir(tmp_path)
    rc = main(["inspect", "--criterion", "The text mentions an animal!", "--records", str(records), "--top-k", "2",
               "--n-permutations", "100", "--n-bootstrap", "5", "--no-explain"])
    assert rc == 0
    out = tmp_path / "interpkit-out" / "the-text-mentions-an-animal"
    assert (out / "report.json").is_file() and (out / "report.md").is_file()
    assert "interpkit-out/the-text-mentions-an-animal" in capsys.readouterr().out


def test_cli_missing_file(tmp_path, capsys):
    rc = main(["inspect", "--criterion", CRIT, "--records", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path)])
    assert rc == 2
    assert "no such file" in capsys.readouterr().err


def test_shuffled_criterion_nothing_significant(toy_files, tmp_path):
    import numpy as np

    toy, _, _ = toy_files
    rows = list(toy.table.to_records())
    scores = np.array([r.criterion_score for r in rows])
    perm = np.random.default_rng(0).permutation(len(rows))
    from dataclasses import replace

    shuffled = [replace(r, criterion_score=float(scores[perm[i]])) for i, r in enumerate(rows)]
    assert write_jsonl(tmp_path / "shuffled.jsonl", shuffled) == len(shuffled)
    report = interpkit.inspect(None, CRIT, records=tmp_path / "shuffled.jsonl", top_k=5,
                               n_permutations=500, n_bootstrap=10)
    assert not any(r.association.significant for r in report.ranking)


def test_neuronpedia_backend_offline_from_exported_features(tmp_path):
    from pathlib import Path

    files = sorted(str(p) for p in (Path(__file__).parents[1] / "data" / "neuronpedia").glob("*.json"))
    report = interpkit.inspect(
        None, "four-digit years in historical dates", neuronpedia_files=files, neuronpedia_offline=True,
        compiler="keyword", compiler_options={"keywords": [r"\b1[89]\d\d\b|\b20\d\d\b"], "regex": True},
        top_k=2, n_permutations=50, n_bootstrap=5, out=tmp_path / "np", html_out=tmp_path / "np" / "cards.html")
    assert report.backend == "neuronpedia"
    assert {f.feature_id for f in report.features} == {"gemma-2-2b@20-gemmascope-res-16k:1234",
                                                       "gpt2-small@8-res-jb:5000"}
    years = next(f for f in report.features if f.feature_id.startswith("gemma"))
    assert years.explanation["label_source"] == "neuronpedia"
    assert years.label == "four-digit years, especially in historical dates"
    assert years.explanation["top_examples"][0]["token_activations"]
    assert any("keyword compiler" in w for w in report.warnings)
    html = (tmp_path / "np" / "cards.html").read_text()
    assert "four-digit years" in html and "treaty" in html
    loaded = interpkit.load_report(tmp_path / "np")
    assert loaded.features[0].explanation == report.features[0].explanation


def test_inspect_cli_neuronpedia_offline_refuses_unknown_ref(tmp_path, capsys):
    code = main(["inspect", "--criterion", CRIT, "--neuronpedia", "gpt2-small@8-res-jb:99999999", "--offline",
                 "--compiler", "keyword", "--out", str(tmp_path / "o")])
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert "gpt2-small@8-res-jb:99999999" in err and "offline" in err.lower()
    assert not (tmp_path / "o").exists()


def test_model_reports_keep_their_table_and_match_across_sites(tmp_path, monkeypatch):
    """inspect -> match: two model-backend reports (two sites of one model) are compared by activation
    signature over their shared prompts; the table saved beside each report supplies the signatures."""
    from interpkit._testing import tiny_model

    monkeypatch.setenv("INTERPKIT_CACHE", str(tmp_path / "cache"))
    data = _scored_dataset(tmp_path / "d.jsonl")
    model = tiny_model()
    kw = {"dataset": data, "top_k": 5, "n_permutations": 50, "n_bootstrap": 5, "labeler": None}
    a = interpkit.inspect(model, CRIT, site="layer1.resid_post", out=tmp_path / "a", **kw)
    b = interpkit.inspect(model, CRIT, site="layer1.resid_post", out=tmp_path / "b", directions=False, **kw)
    assert (tmp_path / "a" / "table").is_dir() and (tmp_path / "b" / "table").is_dir()
    result = interpkit.compare(tmp_path / "a" / "report.json", tmp_path / "b" / "report.json",
                               out=tmp_path / "matches.json")
    assert (tmp_path / "matches.json").is_file() and (tmp_path / "matches.md").is_file()
    # the same neurons read over the same prompts: every shared neuron finds itself
    shared = {f.feature_id for f in a.features} & {f.feature_id for f in b.features}
    assert shared
    pairs = {m.left_id: m.right_id for m in result.matches}
    assert all(pairs.get(fid) == fid for fid in shared)
    assert all(m.components.get("activation") is not None for m in result.matches)


@pytest.mark.parametrize("first", [
    "import interpkit.inspect",
    "from interpkit.inspect import rank_criterion",
    "interpkit.inspect",
    "from interpkit import inspect",
])
def test_interpkit_inspect_is_callable_whatever_is_imported_first(first):
    """``interpkit.inspect`` names a subpackage and its function: the module is callable, so both the
    call and the submodule's names work in any import order (fresh interpreters, no shared state)."""
    import subprocess
    import sys

    code = (
        f"import interpkit\n{first}\n"
        "import interpkit.inspect as mod\n"
        "from interpkit.inspect import inspect as fn, rank_criterion, InspectError\n"
        "assert interpkit.inspect is mod and callable(mod) and fn.__name__ == 'inspect'\n"
        "r = interpkit.inspect('toy', 'cats', backend='toy', top_k=1, n_permutations=20, n_bootstrap=2)\n"
        "assert r.to_dict() == fn('toy', 'cats', backend='toy', top_k=1, n_permutations=20, n_bootstrap=2).to_dict()\n"
        "assert interpkit.inspect.rank_criterion is rank_criterion\n"
        "import inspect\n"
        "assert inspect.signature(fn).parameters['criterion']  # the stdlib module is untouched\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_rank_criterion_on_a_table_keeps_its_scores_or_rescores_with_pins():
    from interpkit.inspect import rank_criterion
    from interpkit.rank import rank

    toy = interpkit.make_toy_table(n_examples=80, n_features=6, seed=2)
    table = toy.table
    kept = rank_criterion(table, "c", n_permutations=50, n_bootstrap=5)  # no compiler: the table's scores
    assert kept.result.to_dict() == rank(table, criterion="c", n_permutations=50, n_bootstrap=5,
                                         null="auto").to_dict()
    assert kept.info["compiler"] is None and kept.info["n_examples"] == 80
    text = table.examples["text"].iloc[0]
    before = float(table.examples["criterion_score"].iloc[0])
    pinned = rank_criterion(table, "c", pinned={text: 1.0 - before}, n_permutations=50, n_bootstrap=5)
    assert pinned.info["n_pinned_in_table"] == 1
    scores = table.examples["criterion_score"].to_numpy(dtype=float).copy()
    scores[0] = 1.0 - before
    assert pinned.result.to_dict() == rank(table, scores, criterion="c", n_permutations=50, n_bootstrap=5,
                                           null="auto").to_dict()
    assert float(table.examples["criterion_score"].iloc[0]) == before  # the table is left as it was
