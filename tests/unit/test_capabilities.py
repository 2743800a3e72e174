"""``interpkit capabilities --json``: every command described, every described argument real, links live."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest

from interpkit.cli import _COMMANDS, build_parser, main
from interpkit.cli._capabilities import (
    CAPABILITIES_KIND,
    OUTPUTS,
    capabilities,
    command_parsers,
    read_capabilities,
)

ROOT = Path(__file__).resolve().parents[2]


def _leaves(entry: dict) -> list[dict]:
    """The commands that take arguments themselves: a command, or each mode of one with modes."""
    return [leaf for sub in entry["subcommands"] for leaf in _leaves(sub)] if "subcommands" in entry else [entry]


def _parser_for(name: str) -> argparse.ArgumentParser:
    parsers = command_parsers(build_parser())
    first, *mode = name.split(" ")
    p = parsers[first]
    for m in mode:
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = sub.choices[m]
    return p


def test_every_command_is_described_in_order_with_kind_and_version():
    caps = read_capabilities(json.loads(json.dumps(capabilities())))  # strict JSON round trip
    assert caps["kind"] == CAPABILITIES_KIND and caps["schema_version"] == 1
    assert [c["name"] for c in caps["commands"]] == [name for name, *_ in _COMMANDS]
    for c in caps["commands"]:
        assert c["help"], c["name"]


def test_every_described_argument_exists_in_the_parser_with_its_flags_and_default():
    caps = capabilities()
    for leaf in (leaf for c in caps["commands"] for leaf in _leaves(c)):
        actions = {a.dest: a for a in _parser_for(leaf["name"])._actions
                   if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)}
        described = {a["dest"]: a for a in leaf["arguments"]}
        assert set(described) == set(actions), leaf["name"]
        for dest, a in described.items():
            assert a["flags"] == list(actions[dest].option_strings), (leaf["name"], dest)
            assert a["required"] == bool(actions[dest].required), (leaf["name"], dest)


def test_inspect_arguments_carry_type_default_choices_and_help():
    inspect = next(c for c in capabilities()["commands"] if c["name"] == "inspect")
    args = {a["dest"]: a for a in inspect["arguments"]}
    assert args["top_k"] == {**args["top_k"], "type": "int", "default": 10, "required": False}
    assert args["criterion"]["required"] is True
    assert "toy" in args["backend"]["choices"]
    assert args["explain"]["action"] == "store_false" and args["explain"]["type"] == "bool"
    assert args["neuronpedia"]["action"] == "append"
    kinds = {o["kind"] for o in inspect["outputs"]}
    assert "interpkit_report" in kinds


def test_bench_lists_its_modes_with_their_own_arguments():
    bench = next(c for c in capabilities()["commands"] if c["name"] == "bench")
    modes = {m["name"]: m for m in bench["subcommands"]}
    assert set(modes) == {"bench detect", "bench steer", "bench generate"}
    assert "concepts" in {a["dest"] for a in modes["bench generate"]["arguments"]}
    assert bench["subcommand_dest"] == "bench_mode"


def test_the_outputs_table_covers_every_command_and_names_real_arguments():
    leaves = {leaf["name"] for c in capabilities()["commands"] for leaf in _leaves(c)}
    assert set(OUTPUTS) == leaves, "OUTPUTS must list exactly the commands (and modes) of the parser"
    for name, outputs in OUTPUTS.items():
        dests = {a.dest for a in _parser_for(name)._actions}
        for o in outputs:
            assert o["argument"] is None or o["argument"] in dests, (name, o["argument"])


def _anchors(md: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in md.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return out


def test_every_docs_link_points_at_an_existing_page_and_heading():
    for outputs in OUTPUTS.values():
        for o in outputs:
            page, _, anchor = o["docs"].partition("#")
            assert (ROOT / page).is_file(), o["docs"]
            if anchor:
                assert anchor in _anchors(ROOT / page), o["docs"]


def test_the_command_prints_the_payload(capsys):
    assert main(["capabilities", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == CAPABILITIES_KIND
    assert main(["capabilities"]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith("inspect ")


@pytest.mark.parametrize("bad, field", [
    ({"kind": "interpkit_report", "schema_version": 1, "commands": []}, "kind"),
    ({"kind": CAPABILITIES_KIND, "schema_version": 99, "commands": []}, "schema_version"),
    ({"kind": CAPABILITIES_KIND, "schema_version": 1}, "commands"),
])
def test_the_reader_refuses_another_kind_a_newer_version_or_no_commands(bad, field):
    with pytest.raises(ValueError, match=f"field '{field}'"):
        read_capabilities(bad, "caps.json")
