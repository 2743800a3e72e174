"""The ``interpkit`` command line: one subcommand per module in this package.

Every subcommand calls the same Python functions a notebook would (``interpkit.inspect``,
``interpkit.doctor`` ...); the CLI only parses arguments and prints. Errors in the user's input
print one ``error:`` line naming the file, line and field, and exit with status 2.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence

from interpkit._version import __version__
from interpkit.cli import (
    _apply_steering,
    _attribute,
    _bench,
    _capabilities,
    _compare_runs,
    _criterion,
    _demo,
    _doctor,
    _dossier,
    _export_contrast,
    _export_interventions,
    _export_records,
    _export_steering,
    _inspect,
    _match,
    _mcp,
    _paths,
    _run,
    _search_features,
    _train_sae,
    _validate_matches,
)

# (name, help, add_arguments, run)
_COMMANDS: tuple[tuple[str, str, Callable, Callable], ...] = (
    ("inspect", _inspect.HELP, _inspect.add_arguments, _inspect.run),
    ("demo", _demo.HELP, _demo.add_arguments, _demo.run),
    ("train-sae", _train_sae.HELP, _train_sae.add_arguments, _train_sae.run),
    ("doctor", _doctor.HELP, _doctor.add_arguments, _doctor.run),
    ("export-hf-records", _export_records.HELP, _export_records.add_arguments, _export_records.run),
    ("export-hf-contrast", _export_contrast.HELP, _export_contrast.add_arguments, _export_contrast.run),
    ("export-hf-interventions", _export_interventions.HELP, _export_interventions.add_arguments,
     _export_interventions.run),
    ("compile-criterion", _criterion.HELP, _criterion.add_arguments, _criterion.run),
    ("score-prompts", _criterion.SCORE_HELP, _criterion.add_score_arguments, _criterion.run_score),
    ("match", _match.HELP, _match.add_arguments, _match.run),
    ("run", _run.HELP, _run.add_arguments, _run.run),
    ("bench", _bench.HELP, _bench.add_arguments, _bench.run),
    ("compare-runs", _compare_runs.HELP, _compare_runs.add_arguments, _compare_runs.run),
    ("search-features", _search_features.HELP, _search_features.add_arguments, _search_features.run),
    ("validate-matches", _validate_matches.HELP, _validate_matches.add_arguments, _validate_matches.run),
    ("capabilities", _capabilities.HELP, _capabilities.add_arguments, _capabilities.run),
    ("mcp", _mcp.HELP, _mcp.add_arguments, _mcp.run),
    ("export-steering", _export_steering.HELP, _export_steering.add_arguments, _export_steering.run),
    ("apply-steering", _apply_steering.HELP, _apply_steering.add_arguments, _apply_steering.run),
    ("dossier", _dossier.HELP, _dossier.add_arguments, _dossier.run),
    ("attribute", _attribute.HELP, _attribute.add_arguments, _attribute.run),
    ("paths", _paths.HELP, _paths.add_arguments, _paths.run),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="interpkit", description="Criterion-driven mechanistic interpretability."
    )
    parser.add_argument("--version", action="version", version=f"interpkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, help_text, add_arguments, run in _COMMANDS:
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 1 a check or an online service failed, 2 bad input)."""
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # the command line as run, for the provenance a command records (not sys.argv: main() is also
    # called in-process, by tests, config runs and the MCP server)
    args._command = shlex.join(["interpkit", *argv])
    from interpkit._http import ServiceError
    from interpkit.records import RecordError
    from interpkit.report import ReportSchemaError

    try:
        return int(args._run(args) or 0)
    except (RecordError, ReportSchemaError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ServiceError as exc:  # an online service failed (network, unknown feature, offline mode)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; files already written are complete (all writes are atomic)", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
