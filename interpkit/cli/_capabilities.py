"""``interpkit capabilities --json``: every command, its arguments and the files it writes, as JSON.

The payload is for agents and tools that drive interpkit without reading ``--help``. Arguments are
read from the parser itself (:func:`interpkit.cli.build_parser`: flags, type, default, required,
choices, nargs, help), so they cannot drift from what the command line accepts; what each command
writes comes from the explicit `OUTPUTS` table (the files, their ``kind`` and where
docs/formats.md or another page describes them), which ``tests/unit/test_capabilities.py`` checks
against the parser. The MCP server (``interpkit mcp``) returns the same dict from its
``capabilities`` tool.

The format (``kind: "interpkit_capabilities"``) is described in docs/formats.md.

Example:
    >>> from interpkit.cli._capabilities import capabilities
    >>> caps = capabilities()
    >>> caps["kind"], "inspect" in {c["name"] for c in caps["commands"]}
    ('interpkit_capabilities', True)
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Mapping
from typing import Any

HELP = "describe every command, its arguments, outputs and formats (machine-readable, for agents)"

CAPABILITIES_KIND = "interpkit_capabilities"
CAPABILITIES_SCHEMA_VERSION = 1


def _out(argument: str | None, path: str, kind: str | None, docs: str, when: str | None = None) -> dict[str, Any]:
    """One file or folder a command writes: the argument naming it, the path, its ``kind`` and its docs."""
    return {"argument": argument, "path": path, "kind": kind, "docs": docs, "when": when}


_REPORT = "docs/formats.md#reportjson-schema-version-2"
_RECORDS = "docs/formats.md#activation-records-one-prompt-or-one-token-position-per-row"
_INTERVENTIONS = "docs/formats.md#intervention-records-one-run-per-row"
_CAPS = "docs/formats.md#capabilities-interpkit-capabilities---json"

#: What each command writes, by command name (a sub-mode as ``"bench detect"``). ``argument`` is the
#: destination of the option naming the path (None: a fixed place or standard output); ``kind`` is
#: the ``kind`` field inside the file (None for files without one: markdown, HTML, JSONL rows).
OUTPUTS: dict[str, tuple[dict[str, Any], ...]] = {
    "inspect": (
        _out("out", "<out>/report.json", "interpkit_report", _REPORT),
        _out("out", "<out>/report.md", None, _REPORT),
        _out("out", "<out>/table/", "feature_table", "docs/ARCHITECTURE.md#packages-in-data-flow-order",
             when="backend model, saelens or neuronpedia"),
        _out("html_out", "<html_out>", None, _REPORT, when="--html-out given"),
    ),
    "demo": (
        _out("out", "<out>/", None, "README.md", when="report.json, report.md and HTML cards of the demo"),
    ),
    "train-sae": (
        _out("out", "<out>/", None, "docs/sae_formats.md#native", when="cfg.json + safetensors, metrics.json"),
        _out("records_out", "<records_out>", None, _RECORDS, when="--records-out given"),
        _out("causal_out", "<causal_out>", None, _INTERVENTIONS, when="--causal-out given"),
    ),
    "doctor": (_out(None, "<stdout>", None, "README.md", when="JSON with --json"),),
    "export-hf-records": (_out("out", "<out>", None, _RECORDS),),
    "export-hf-contrast": (
        _out("records_out", "<records_out>", None, _RECORDS),
        _out("records_out", "<records_out>.directions/", "direction_set", _RECORDS),
        _out("interventions_out", "<interventions_out>", None, _INTERVENTIONS),
        _out("interventions_out", "<interventions_out>.sweep.json", None, _INTERVENTIONS),
    ),
    "export-hf-interventions": (_out("out", "<out>", None, _INTERVENTIONS),),
    "compile-criterion": (_out("out", "<out>", None, "docs/criteria_and_explanations.md"),),
    "score-prompts": (_out("out", "<out>", None, "docs/criteria_and_explanations.md"),),
    "match": (
        _out("out", "<out>/matches.json or <out>", "interpkit_matches", "docs/matching.md#2-matching"),
        _out("out", "matches.md beside it", None, "docs/matching.md#2-matching"),
    ),
    "run": (_out("out", "<out>/manifest.json", "interpkit_run_manifest", "docs/runs.md#the-manifest"),),
    "bench detect": (_out("out", "<out>/", "interpkit.bench", "docs/benchmarks.md#1-what-runs"),),
    "bench steer": (_out("out", "<out>/", "interpkit.bench", "docs/benchmarks.md#1-what-runs"),),
    "bench generate": (_out("out", "<out>/", "interpkit.bench.generate", "docs/benchmarks.md#data"),),
    "compare-runs": (
        _out("out", "<out>/comparison.json", "interpkit_run_comparison", "docs/formats.md#comparisonjson-schema-version-1"),
        _out("out", "<out>/comparison.md, comparison.vl.json, comparison.html", None,
             "docs/formats.md#comparisonjson-schema-version-1"),
        _out(None, "<stdout>", None, "docs/formats.md#comparisonjson-schema-version-1", when="no --out: the markdown"),
    ),
    "search-features": (
        _out(None, "<stdout>", None, "docs/formats.md#feature-search-hits-interpkit_feature_search-schema-version-1"),
        _out("out", "<out>", "interpkit_feature_search",
             "docs/formats.md#feature-search-hits-interpkit_feature_search-schema-version-1", when="--out given"),
    ),
    "validate-matches": (
        _out("out", "<out> (default <matches>.validated.json)", "interpkit_matches",
             "docs/formats.md#validated-matches-interpkit-validate-matches"),
        _out("out", "the .md beside it", None, "docs/formats.md#validated-matches-interpkit-validate-matches"),
    ),
    "export-steering": (
        _out("out", "<out>/steering.json + vector.safetensors", "steering_artifact",
             "docs/formats.md#steering-artifacts-a-folder-steeringjson--vectorsafetensors-schema-version-1"),
    ),
    "apply-steering": (
        _out("out", "<out> (JSONL)", "steering_generation",
             "docs/formats.md#steering-generations-apply-steering---out-jsonl-one-prompt-per-row"),
    ),
    "dossier add": (_out("project", "<project>/dossiers/<slug>/dossier.json", "interpkit_dossier", "docs/formats.md#dossierjson-evidence-dossier-of-one-feature-schema-version-1"),),
    "dossier show": (_out(None, "<stdout>", None, "docs/dossiers.md", when="the grade and next experiments"),),
    "dossier list": (_out(None, "<stdout>", None, "docs/dossiers.md"),),
    "attribute": (
        _out("out", "<out>/graph.json", "interpkit.graph", "docs/formats.md#attribution-graphs-graphjson-format-interpkitgraph-schema-version-1"),
        _out("out", "<out>/neuronpedia.json", None, "docs/formats.md#attribution-graphs-graphjson-format-interpkitgraph-schema-version-1"),
        _out("out", "<out>/graph.md", None, "docs/circuits.md"),
        _out("out", "<out>/validation.json", None, "docs/circuits.md#validation-validate_graph---validate-prompts",
             when="with --validate"),
    ),
    "paths": (
        _out("out", "<out>/paths.json", "interpkit.paths", "docs/circuits.md#files-pathsjson-and-pathsmd"),
        _out("out", "<out>/paths.md", None, "docs/circuits.md#files-pathsjson-and-pathsmd"),
    ),
    "capabilities": (_out(None, "<stdout>", CAPABILITIES_KIND, _CAPS),),
    "mcp": (_out(None, "<stdio>", None, _CAPS, when="an MCP server; its tools write where their 'out' says"),),
}


def _json_value(value: Any) -> Any:
    """A default or choice as JSON: numbers, text, booleans, lists; anything else as its repr."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return repr(value)


def _type_name(action: argparse.Action) -> str:
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        return "bool"
    if action.type is None:
        return "str"
    return getattr(action.type, "__name__", repr(action.type))


def _action_name(action: argparse.Action) -> str:
    names = {argparse._StoreTrueAction: "store_true", argparse._StoreFalseAction: "store_false",
             argparse._AppendAction: "append", argparse._StoreAction: "store",
             argparse._CountAction: "count", argparse._StoreConstAction: "store_const"}
    return names.get(type(action), type(action).__name__)


def describe_arguments(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """Every option and positional of ``parser`` (help and sub-command actions left out)."""
    out = []
    for a in parser._actions:
        if isinstance(a, argparse._HelpAction | argparse._SubParsersAction | argparse._VersionAction):
            continue
        out.append({
            "dest": a.dest,
            "flags": list(a.option_strings),
            "action": _action_name(a),
            "type": _type_name(a),
            "required": bool(a.required),
            "default": None if a.default is argparse.SUPPRESS else _json_value(a.default),
            "choices": None if a.choices is None else [_json_value(c) for c in a.choices],
            "nargs": _json_value(a.nargs),
            "metavar": _json_value(a.metavar),
            "help": a.help,
        })
    return out


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _describe(name: str, parser: argparse.ArgumentParser, help_text: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "help": help_text or parser.description,
                             "arguments": describe_arguments(parser)}
    sub = _subparsers(parser)
    if sub is None:
        entry["outputs"] = [dict(o) for o in OUTPUTS.get(name, ())]
        return entry
    helps = {c.dest: c.help for c in sub._choices_actions}
    entry["subcommand_dest"] = sub.dest
    entry["subcommands"] = [_describe(f"{name} {mode}", p, helps.get(mode)) for mode, p in sub.choices.items()]
    return entry


def command_parsers(parser: argparse.ArgumentParser | None = None) -> dict[str, argparse.ArgumentParser]:
    """The parser of each top-level command of ``interpkit`` (default: :func:`build_parser`'s)."""
    if parser is None:
        from interpkit.cli import build_parser

        parser = build_parser()
    sub = _subparsers(parser)
    assert sub is not None  # build_parser always adds the command sub-parsers
    return dict(sub.choices)


def capabilities() -> dict[str, Any]:
    """The ``interpkit_capabilities`` payload: every command with its arguments and outputs.

    Returns:
        A JSON-ready dict: ``kind``, ``schema_version``, ``interpkit_version``, ``program`` and
        ``commands`` (one entry per command in the order of ``interpkit --help``; commands with
        modes, such as ``bench``, list them under ``subcommands``).
    """
    from interpkit._version import __version__
    from interpkit.cli import build_parser

    parser = build_parser()
    sub = _subparsers(parser)
    assert sub is not None
    helps = {c.dest: c.help for c in sub._choices_actions}
    return {
        "kind": CAPABILITIES_KIND,
        "schema_version": CAPABILITIES_SCHEMA_VERSION,
        "interpkit_version": __version__,
        "program": parser.prog,
        "description": parser.description,
        "exit_status": {"0": "ok", "1": "a check or an online service failed", "2": "bad input (one error: line)",
                        "130": "interrupted"},
        "commands": [_describe(name, p, helps.get(name)) for name, p in sub.choices.items()],
    }


def read_capabilities(data: Mapping[str, Any], source: str = "<capabilities>") -> dict[str, Any]:
    """Check a capabilities payload's ``kind`` and ``schema_version``; return it as a dict.

    Raises:
        ValueError: another kind, or a schema version newer than this reader knows.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
    if data.get("kind") != CAPABILITIES_KIND:
        raise ValueError(f"{source}: field 'kind': expected {CAPABILITIES_KIND!r}, got {data.get('kind')!r}")
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= CAPABILITIES_SCHEMA_VERSION:
        raise ValueError(f"{source}: field 'schema_version': expected an integer from 1 to "
                         f"{CAPABILITIES_SCHEMA_VERSION}, got {version!r}")
    if not isinstance(data.get("commands"), list):
        raise ValueError(f"{source}: field 'commands': expected a list, got {type(data.get('commands')).__name__}")
    return dict(data)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print the payload as JSON (the default is a one-line-per-command summary)")


def run(args: argparse.Namespace) -> int:
    caps = capabilities()
    if args.json:
        print(json.dumps(caps, indent=2))
        return 0
    for c in caps["commands"]:
        print(f"{c['name']:<24} {c['help']}")
    return 0
