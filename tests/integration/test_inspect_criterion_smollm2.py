"""`interpkit inspect --model smollm2-135m --criterion TEXT`: nothing but a criterion, end to end."""

from __future__ import annotations

import pytest

import interpkit

pytestmark = pytest.mark.slow

CRITERION = "references to specific dates and publication information"  # AxBench 2B-L10 concept 0


def test_inspect_with_only_a_criterion_ranks_explains_and_writes_cards(smollm2_tl, tmp_path):
    # the same call as `interpkit inspect --model smollm2-135m --criterion ...` (the CLI only parses),
    # on the session's model so the test does not load SmolLM2 again
    out = tmp_path / "out"
    interpkit.inspect(smollm2_tl, CRITERION, max_per_class=16, top_k=3, n_bootstrap=10, out=out,
                      html_out=out / "cards.html")
    report = interpkit.load_report(out).to_dict()
    assert report["backend"] == "model" and not report["synthetic"]
    scores = report["settings"]["criterion_scores"]
    assert scores["compiler"] == "embedding" and scores["n_positive"] == scores["n_negative"] == 16
    table = report["settings"]["model_table"]
    assert table["site"] == "layer15.resid_post" and table["exclude_positions"] == ["bos", "massive"]
    assert table["direction"]["feature_id"] == "layer15.resid_post:diffmean"
    assert len(report["features"]) == 3
    for f in report["features"]:
        e = f["explanation"]
        assert f["label"] and e["label"] == f["label"] and e["label_scoring"]["candidates"]
        assert e["top_examples"] and e["top_examples"][0]["tokens"]  # token highlights from a real forward
        assert e["logit_effects"]["promoted"] and e["histogram"]["counts"]
    html = (out / "cards.html").read_text()
    assert html.count('<article class="card"') == 3
    assert "http://" not in html and "https://" not in html
