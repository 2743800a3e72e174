"""``interpkit mcp``: the server driven in-process by the MCP SDK's own client (memory streams)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

mcp = pytest.importorskip("mcp", reason="the MCP tests need the `agent` extra: pip install 'mcp>=1.20,<2'")

import anyio  # noqa: E402  (after the skip: anyio comes with mcp's dependencies here)
from mcp.shared.memory import create_connected_server_and_client_session  # noqa: E402

import interpkit  # noqa: E402
from interpkit.cli import main  # noqa: E402
from interpkit.cli._mcp import build_server  # noqa: E402
from interpkit.cli._mcp_tools import TOOLS  # noqa: E402

FAST = {"n_permutations": 50, "n_bootstrap": 5}


def _session(calls):
    """Run ``calls(session)`` against a fresh server in one event loop; return its result."""
    async def go():
        async with create_connected_server_and_client_session(build_server()) as session:
            return await calls(session)

    return anyio.run(go)


def _payload(result) -> dict:
    assert not result.isError, result.content[0].text
    # a dict return is the structured content as it is; the text content is the same JSON
    assert json.loads(result.content[0].text) == result.structuredContent
    return result.structuredContent


def test_lists_every_registered_tool_with_a_schema_and_description():
    tools = _session(lambda s: s.list_tools()).tools
    assert [t.name for t in tools] == [spec.name for spec in TOOLS]
    by_name = {t.name: t for t in tools}
    inspect = by_name["inspect"].inputSchema
    assert set(inspect["required"]) == {"criterion", "out"}
    assert inspect["properties"]["top_k"]["default"] == 10
    assert "toy" in json.dumps(inspect["properties"]["backend"])
    assert all(t.description for t in tools)
    assert by_name["capabilities"].annotations.readOnlyHint is True


def test_capabilities_tool_returns_the_cli_payload():
    caps = _payload(_session(lambda s: s.call_tool("capabilities", {})))
    assert caps["kind"] == "interpkit_capabilities"
    assert {"inspect", "match", "capabilities", "mcp"} <= {c["name"] for c in caps["commands"]}


def test_inspect_on_the_toy_backend_writes_the_report_it_returns(tmp_path: Path):
    out = tmp_path / "toy"
    args = {"criterion": "mentions a cat", "out": str(out), "model": "toy", "backend": "toy", "top_k": 3, **FAST}
    got = _payload(_session(lambda s: s.call_tool("inspect", args)))
    report = interpkit.load_report(got["report"])
    assert Path(got["report"]) == out / "report.json" and Path(got["report_md"]).is_file()
    assert got["synthetic"] is True and report.synthetic
    assert [f["feature_id"] for f in got["features"]] == [f.feature_id for f in report.features]
    assert [f["tier"] for f in got["features"]] == [f.components["tier"] for f in report.features]
    assert got["criterion"] == report.criterion == "mentions a cat"


def test_explain_and_match_read_saved_reports(tmp_path: Path):
    async def calls(s):
        paths = []
        for seed in (0, 1):
            args = {"criterion": "mentions a cat", "out": str(tmp_path / f"r{seed}"), "model": "toy",
                    "backend": "toy", "top_k": 3, "seed": seed, **FAST}
            paths.append(_payload(await s.call_tool("inspect", args))["report"])
        report = interpkit.load_report(paths[0])
        fid = report.features[0].feature_id
        explained = _payload(await s.call_tool("explain", {"report": paths[0], "feature_id": fid}))
        assert explained["source"] == "report" and explained["explanation"] == report.features[0].explanation
        missing = await s.call_tool("explain", {"report": paths[0], "feature_id": "no-such-feature"})
        assert missing.isError and "feature_id" in missing.content[0].text
        matched = _payload(await s.call_tool("match", {"left": paths[0], "right": paths[1],
                                                       "out": str(tmp_path / "m"), "null_samples": 50}))
        on_disk = json.loads(Path(matched["matches"]).read_text())
        assert on_disk["kind"] == "interpkit_matches" and on_disk["n_matches"] == matched["n_matches"] > 0
        assert Path(matched["matches_md"]).is_file()

    _session(calls)


def test_rank_ranks_a_saved_table_with_a_scores_file(tmp_path: Path):
    from interpkit.rank import RankingResult
    from interpkit.records import write_jsonl
    from interpkit.sources import PromptRow, make_toy_table

    data = make_toy_table(n_examples=80, n_features=6, seed=0)
    data.table.save(tmp_path / "table")
    ex = data.table.examples
    rows = [PromptRow(prompt_id=str(e), text=str(t), criterion_score=float(s))
            for e, t, s in zip(ex["example_id"], ex["text"], ex["criterion_score"], strict=True)]
    write_jsonl(tmp_path / "scores.jsonl", rows)
    args = {"table": str(tmp_path / "table"), "criterion": "toy", "out": str(tmp_path / "ranking.json"),
            "scores": str(tmp_path / "scores.jsonl"), "top_k": 2, **FAST}

    async def calls(s):
        got = _payload(await s.call_tool("rank", args))
        result = RankingResult.from_dict(json.loads(Path(got["ranking"]).read_text()))
        assert [r["feature_id"] for r in got["top"]] == [r.feature_id for r in result.top(2)]
        assert got["top"][0]["feature_id"] == data.truth.carrier  # the planted feature ranks first
        write_jsonl(tmp_path / "short.jsonl", rows[:-1])
        short = await s.call_tool("rank", {**args, "scores": str(tmp_path / "short.jsonl")})
        assert short.isError and "short.jsonl" in short.content[0].text and "prompt_id" in short.content[0].text

    _session(calls)


def test_bad_arguments_return_errors_naming_the_field(tmp_path: Path):
    async def calls(s):
        wrong_type = await s.call_tool("inspect", {"criterion": "x", "out": str(tmp_path), "top_k": "many"})
        missing = await s.call_tool("inspect", {"criterion": "x"})
        bad_choice = await s.call_tool("inspect", {"criterion": "x", "out": str(tmp_path), "backend": "nope"})
        no_report = await s.call_tool("explain", {"report": str(tmp_path / "none"), "feature_id": "f"})
        return wrong_type, missing, bad_choice, no_report

    wrong_type, missing, bad_choice, no_report = _session(calls)
    for result, field in ((wrong_type, "top_k"), (missing, "out"), (bad_choice, "backend")):
        assert result.isError and field in result.content[0].text, result.content[0].text
    assert no_report.isError and str(tmp_path / "none") in no_report.content[0].text
    assert not (tmp_path / "report.json").exists()  # refused before anything was written


def test_the_command_serves_over_stdio_to_the_sdk_client():
    """`interpkit mcp` as a subprocess, driven by the SDK's stdio client: initialize, list, call."""
    import os
    import sys

    from mcp import StdioServerParameters
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    params = StdioServerParameters(command=sys.executable, args=["-m", "interpkit.cli", "mcp"], env=env, cwd=root)

    async def go():
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            tools = await session.list_tools()
            caps = await session.call_tool("capabilities", {})
            return init, tools, caps

    init, tools, caps = anyio.run(go)
    assert init.serverInfo.name == "interpkit" and init.serverInfo.version == interpkit.__version__
    assert [t.name for t in tools.tools] == [t.name for t in TOOLS]
    assert _payload(caps)["kind"] == "interpkit_capabilities"


NOISY = """
import os
from interpkit.cli._mcp import build_server, serve_stdio
from interpkit.cli._mcp_tools import ToolSpec

def noisy() -> dict[str, bool]:
    \"\"\"Writes to stdout from Python and from the file descriptor.\"\"\"
    print("stray print")
    os.write(1, b"raw write to fd 1\\n")
    return {"ok": True}

serve_stdio(build_server([ToolSpec("noisy", noisy, "noisy")]))
"""


def test_stray_stdout_inside_a_tool_does_not_corrupt_the_protocol(tmp_path: Path):
    import os
    import sys

    from mcp import StdioServerParameters
    from mcp.client.session import ClientSession
    from mcp.client.stdio import stdio_client

    script = tmp_path / "noisy.py"
    script.write_text(NOISY)
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=env)

    garbage: list[Exception] = []

    async def on_message(message):  # the client hands lines it cannot parse here, as exceptions
        if isinstance(message, Exception):
            garbage.append(message)

    async def go():
        async with stdio_client(params) as (read, write), \
                ClientSession(read, write, message_handler=on_message) as session:
            await session.initialize()
            first = await session.call_tool("noisy", {})
            second = await session.call_tool("noisy", {})
            return first, second

    for result in anyio.run(go):
        assert _payload(result) == {"ok": True}
    assert garbage == [], f"non-protocol lines reached the client: {garbage}"


def test_the_command_lists_its_tools(capsys):
    assert main(["mcp", "--list-tools"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [t.name for t in TOOLS]


def test_compare_runs_and_search_features_tools_read_saved_reports(tmp_path: Path):
    async def calls(s):
        paths = []
        for name, seed in (("a", 0), ("b", 0), ("c", 1)):
            args = {"criterion": "mentions a cat", "out": str(tmp_path / name), "model": "toy",
                    "backend": "toy", "top_k": 3, "seed": seed, **FAST}
            paths.append(_payload(await s.call_tool("inspect", args))["report"])
        same = _payload(await s.call_tool("compare_runs", {"a": paths[0], "b": paths[1]}))
        assert same["no_change"] is True and same["files"] == []
        other = _payload(await s.call_tool("compare_runs", {"a": paths[0], "b": paths[2], "out": str(tmp_path / "d")}))
        assert other["no_change"] is False
        assert any(c["name"].endswith("seed") for c in other["settings_changed"])
        assert Path(tmp_path / "d" / "comparison.json").is_file() and str(tmp_path / "d" / "comparison.json") in other["files"]
        label = interpkit.load_report(paths[0]).features[0].label
        found = _payload(await s.call_tool("search_features", {"query": label, "reports": [paths[0]], "embed": False}))
        assert found["hits"] and found["hits"][0]["match"] == "exact" and found["hits"][0]["label"] == label
        bad = await s.call_tool("search_features", {"query": "x", "reports": [paths[0]], "top_k": 0})
        assert bad.isError and "top_k" in bad.content[0].text

    _session(calls)


def test_dossier_tool_adds_a_report_and_lists_the_grades(tmp_path: Path):
    async def calls(s):
        args = {"criterion": "mentions a cat", "out": str(tmp_path / "r"), "model": "toy", "backend": "toy",
                "top_k": 2, **FAST}
        report = _payload(await s.call_tool("inspect", args))["report"]
        added = _payload(await s.call_tool("dossier", {"project": str(tmp_path / "proj"), "report": report}))
        assert len(added["dossiers"]) == 2 and all(Path(d["path"]).is_file() for d in added["dossiers"])
        assert all("level" in d["grade"] for d in added["dossiers"])
        listed = _payload(await s.call_tool("dossier", {"project": str(tmp_path / "proj")}))
        assert sorted(d["key"] for d in listed["dossiers"]) == sorted(d["key"] for d in added["dossiers"])
        bad = await s.call_tool("dossier", {"project": str(tmp_path / "proj"), "feature_id": "x"})
        assert bad.isError and "report" in bad.content[0].text

    _session(calls)
