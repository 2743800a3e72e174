"""Evidence dossiers on the two saved SmolLM2 runs (same config): add both, grade, list, plan."""

import pytest

from interpkit._io import sha256_file
from interpkit.cli import main
from interpkit.dossier import add_to_dossier, grade, list_dossiers, next_experiments

pytestmark = pytest.mark.slow


def test_dossiers_of_two_smollm2_runs(smollm2_runs, tmp_path, capsys):
    project = tmp_path / "project"
    first = add_to_dossier(project, smollm2_runs["a"])
    second = add_to_dossier(project, smollm2_runs["b"])
    assert len(first) == len(second) == 4  # top_k = 4
    dossiers = list_dossiers(project)
    # same config, same seed: the same features (a DiffMean direction has the same vector), so one
    # dossier each; the two reports are byte-identical or not, and so one entry with a copy or two
    # entries; neither run measured interventions, so nothing is causal
    same_bytes = sha256_file(smollm2_runs["a"] / "report.json") == sha256_file(smollm2_runs["b"] / "report.json")
    assert len(dossiers) == 4
    for d in dossiers:
        if same_bytes:
            assert len(d.entries) == 1 and d.entries[0]["copies"] == [str((smollm2_runs["b"] / "report.json").resolve())]
        else:
            assert len(d.entries) == 2 and {e["settings"]["seed"] for e in d.entries} == {0}
    for d in dossiers:
        assert d.feature["model"] and d.feature["site"]
        if d.feature["source"] == "direction":
            assert len(d.feature["direction_sha256"]) == 64 and "|sha256:" in d.key
        g = grade(d)
        assert g.level <= 1 and not g.synthetic
        assert all(e["causal"] is None for e in d.entries)
        assert (g.level == 1) == any(e["association"]["significant"] for e in d.entries)
        [plan, *_] = next_experiments(d)
        assert plan.raises_to == 2 and plan.command.startswith("interpkit export-hf-interventions --model ")
        assert "--n-controls 4" in plan.command and "--interventions " in plan.command
    assert main(["dossier", "list", "--project", str(project)]) == 0
    assert capsys.readouterr().out.count(f"{1 if same_bytes else 2} run(s)") == 4
    assert main(["dossier", "show", "--project", str(project), dossiers[0].slug]) == 0
    out = capsys.readouterr().out
    assert f"runs ({1 if same_bytes else 2}):" in out and "$ interpkit export-hf-interventions" in out
