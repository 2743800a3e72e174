"""The MCP tools on real SmolLM2 reports (the shared ``smollm2_runs``): explain, rank, match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mcp", reason="the MCP tests need the `agent` extra: pip install 'mcp>=1.20,<2'")

import anyio  # noqa: E402
from mcp.shared.memory import create_connected_server_and_client_session  # noqa: E402

import interpkit  # noqa: E402
from interpkit.cli._mcp import build_server  # noqa: E402

pytestmark = pytest.mark.slow


def _payload(result) -> dict:
    assert not result.isError, result.content[0].text
    return result.structuredContent


def test_mcp_tools_on_smollm2_reports(smollm2_runs, tmp_path: Path):
    a, b = smollm2_runs["a"], smollm2_runs["b"]
    report = interpkit.load_report(a)
    top = report.features[0]

    async def calls(s):
        stored = _payload(await s.call_tool("explain", {"report": str(a), "feature_id": top.feature_id}))
        fresh = _payload(await s.call_tool("explain", {"report": str(a), "feature_id": top.feature_id,
                                                       "table": str(a / "table")}))
        ranked = _payload(await s.call_tool("rank", {
            "table": str(a / "table"), "criterion": report.criterion, "out": str(tmp_path / "ranking.json"),
            "top_k": 4, "n_permutations": 200, "n_bootstrap": 10, "seed": 0}))
        matched = _payload(await s.call_tool("match", {
            "left": str(a), "right": str(b), "out": str(tmp_path / "m"), "null_samples": 200}))
        return stored, fresh, ranked, matched

    async def go():
        async with create_connected_server_and_client_session(build_server()) as session:
            return await calls(session)

    stored, fresh, ranked, matched = anyio.run(go)
    assert stored["explanation"] == top.explanation and stored["label"] == top.label
    assert fresh["source"] == "table" and fresh["rank"] == 1
    assert fresh["explanation"]["top_examples"], "a table-only explanation still lists top examples"
    # the table holds the run's own scores and splits: ranking it again with the run's settings
    # gives the report's order
    assert [r["feature_id"] for r in ranked["top"]] == [f.feature_id for f in report.features]
    on_disk = json.loads(Path(matched["matches"]).read_text())
    assert on_disk["kind"] == "interpkit_matches"
    # two runs of one config: every reported feature matches itself
    assert {(m["left_id"], m["right_id"]) for m in matched["top"]} >= {(f.feature_id, f.feature_id)
                                                                       for f in report.features[:1]}
