"""Reproducible config runs: a workflow of ``interpkit`` commands from one file, with a manifest.

``interpkit run workflow.toml`` (or :func:`run_config`) validates the config, resolves its paths,
runs each step in-process through the same function as the command of the same name, and writes
``manifest.json`` in the run folder: tool and package versions, platform, seed, sha256 of every
input, and each step's arguments, timing, outputs (with sha256) and status. See ``docs/runs.md``.

Example:
    >>> from interpkit.runs import list_kinds
    >>> {"bench", "inspect", "match", "export-steering", "dossier"} <= set(list_kinds())
    True
"""

from interpkit.runs._config import ConfigError, RunConfig, StepConfig, load_config, parse_config
from interpkit.runs._manifest import (
    MANIFEST_NAME,
    RUN_SPECIFIC_FIELDS,
    RUN_SPECIFIC_KEYS,
    comparable,
    load_manifest,
    output_hashes,
)
from interpkit.runs._plan import Plan, PlannedPath, PlannedStep, make_plan
from interpkit.runs._runner import StepFailed, run_config, run_plan
from interpkit.runs._steps import StepKind, get_kind, list_kinds, register_kind

__all__ = [
    "MANIFEST_NAME",
    "RUN_SPECIFIC_FIELDS",
    "RUN_SPECIFIC_KEYS",
    "ConfigError",
    "Plan",
    "PlannedPath",
    "PlannedStep",
    "RunConfig",
    "StepConfig",
    "StepFailed",
    "StepKind",
    "comparable",
    "get_kind",
    "list_kinds",
    "load_config",
    "load_manifest",
    "make_plan",
    "output_hashes",
    "parse_config",
    "register_kind",
    "run_config",
    "run_plan",
]
