"""Steering artifacts on SmolLM2-135M: a report with held-out causal evidence, exported, then applied.

The evidence is the cheapest real one: ``export-hf-contrast`` on the packaged measurement-unit
prompts (a contrast direction learnt on train prompts, its strength chosen on train, then run with
random same-norm controls on the test prompts), ranked by ``inspect --backend records``.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

pytestmark = pytest.mark.slow

LAYER = 15
FEATURE = f"contrast:layer{LAYER}"


@pytest.fixture(scope="module")
def steering_report(smollm2_nnsight, tmp_path_factory):
    from interpkit.causal import export_contrast
    from interpkit.cli import main
    from interpkit.records import write_jsonl
    from interpkit.sources import read_prompt_dataset

    data = resources.files("interpkit.data")
    crit = json.loads(data.joinpath("measurement_units.json").read_text(encoding="utf-8"))
    rows = read_prompt_dataset(str(data.joinpath("measurement_units.jsonl")))
    pos = [r for r in rows if r.criterion_score == 1.0]
    neg = [r for r in rows if r.criterion_score == 0.0]
    rows = [replace(r, split="train" if i % 2 == 0 else "test") for group in (pos, neg) for i, r in enumerate(group)]
    out = export_contrast(smollm2_nnsight, rows, crit["criterion"], layer=LAYER, strengths=(10, 30),
                          target_tokens=crit["target_tokens"], n_controls=2)
    root = tmp_path_factory.mktemp("steer")
    write_jsonl(root / "recs.jsonl", out.records)
    write_jsonl(root / "ints.jsonl", out.interventions)
    out.directions.save(root / "recs.jsonl.directions")
    assert main(["inspect", "--backend", "records", "--records", str(root / "recs.jsonl"), "--interventions",
                 str(root / "ints.jsonl"), "--criterion", crit["criterion"], "--out", str(root / "rep"),
                 "--n-permutations", "200", "--n-bootstrap", "10", "--no-explain"]) == 0
    return root, crit, out, [r for r in rows if r.split == "test" and r.criterion_score == 1.0]


def test_export_and_apply_on_smollm2(smollm2_nnsight, steering_report, monkeypatch, capsys):
    import interpkit.models
    from interpkit.cli import main
    from interpkit.records import read_steering_artifact

    root, crit, contrast, test_pos = steering_report
    monkeypatch.setattr(interpkit.models, "load_model", lambda name, backend=None, **kw: smollm2_nnsight)
    art_dir = root / "art"
    rc = main(["export-steering", "--report", str(root / "rep"), "--feature", FEATURE, "--out", str(art_dir),
               "--directions", str(root / "recs.jsonl.directions")])
    printed = capsys.readouterr()
    art = read_steering_artifact(art_dir) if rc == 0 else None
    if rc != 0:  # a real refusal must say why and write nothing; the forced export then says so
        assert "held-out" in printed.err or "controls" in printed.err, printed.err
        assert not art_dir.exists()
        assert main(["export-steering", "--report", str(root / "rep"), "--feature", FEATURE, "--out", str(art_dir),
                     "--directions", str(root / "recs.jsonl.directions"), "--force"]) == 0
        art = read_steering_artifact(art_dir)
        assert not art.validated and art.provenance["forced"]
    ev = art.evidence
    assert ev is not None and ev["split"] == "test" and ev["n"] == len(test_pos)
    assert ev["ci_low"] <= ev["effect"] <= ev["ci_high"] and ev["side_effect"] is not None
    assert {c["feature_id"] for c in ev["controls"]} == {f"{FEATURE}::control0", f"{FEATURE}::control1"}
    assert art.strength == contrast.sweep.strength and art.strength_chosen_on == "train"
    assert np.allclose(art.vector, contrast.directions.vectors[0]) and art.site == f"layer{LAYER}.resid_post"
    assert art.validated == (ev["status"] == "promotes" and all(c["beaten"] for c in ev["controls"]))

    prompts = root / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt_id": r.prompt_id, "text": r.text}) + "\n" for r in test_pos[:3]))
    gen = root / "gen.jsonl"
    assert main(["apply-steering", "--artifact", str(art_dir), "--prompts", str(prompts), "--out", str(gen),
                 "--max-new-tokens", "12", "--strength", "30", "--compiler", "keyword"]) == 0
    rows = [json.loads(x) for x in gen.read_text().splitlines()]
    assert len(rows) == 3 and all(r["model"]["matches_artifact"] for r in rows)
    assert any(r["baseline"]["text"] != r["steered"]["text"] for r in rows)
    for r in rows:
        assert r["criterion"] == crit["criterion"] and r["strength"] == 30.0
        for side in ("baseline", "steered"):
            assert r[side]["criterion_score"] is not None
            assert r[side]["perplexity"] is None or r[side]["perplexity"] > 1
        assert 0 < r["next_token_tv"] <= 1
