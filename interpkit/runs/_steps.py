"""Step kinds of a run config: which CLI command each dispatches to, and its argument schema.

A step's arguments are the options of the ``interpkit`` command of the same name, spelled as
their ``argparse`` destinations (``top_k`` for ``--top-k``). The schema is read from the command's
own ``add_arguments``, so a config accepts exactly what the command line accepts, and the step runs
the command's ``run(args)`` in-process: the same Python functions, no subprocess.

Example:
    >>> from interpkit.runs._steps import get_kind, list_kinds
    >>> "inspect" in list_kinds()
    True
    >>> kind = get_kind("inspect")
    >>> kind.outputs, "records" in kind.inputs
    (('out', 'html_out'), True)
    >>> kind.schema()["top_k"].type is int
    True
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Option:
    """One argument a step accepts, read from the command's parser."""

    dest: str
    """Name in the config and in the ``argparse.Namespace``."""
    flag: str
    """The command-line spelling (``--top-k``), for messages."""
    type: Callable[[str], Any] | None
    """Element type: int, float, or None/str for text."""
    kind: str
    """``store``, ``flag`` (store_true/store_false) or ``append`` (a list)."""
    choices: tuple[Any, ...] | None
    required: bool
    default: Any


@dataclass(frozen=True, slots=True)
class StepKind:
    """A step kind: the CLI module it runs, and which of its arguments are paths."""

    name: str
    module: str
    """Module holding ``add_arguments`` / ``run`` (e.g. ``interpkit.cli._inspect``)."""
    add_arguments: str = "add_arguments"
    run: str = "run"
    inputs: tuple[str, ...] = ()
    """Arguments naming files or folders read (resolved against the config file's folder)."""
    outputs: tuple[str, ...] = ()
    """Arguments naming files or folders written (resolved against the run folder)."""
    maybe_inputs: tuple[str, ...] = ()
    """Arguments that are a path only when such a path exists (``model``: zoo name or local folder)."""
    default_out: str | None = None
    """Default for ``out`` when the config leaves it out; ``{name}`` is the step's name."""
    fallback: str | None = None
    """Module used when ``module`` is missing; it must define ``available() -> bool``."""

    def _module(self) -> Any:
        try:
            return importlib.import_module(self.module)
        except ModuleNotFoundError:
            if self.fallback is None:
                raise
            mod = importlib.import_module(self.fallback)
            if not mod.available():
                raise
            return mod

    def available(self) -> bool:
        """Whether the command's module (or its fallback) can be imported in this install."""
        try:
            self._module()
        except ImportError:
            return False
        return True

    def schema(self) -> dict[str, Option]:
        """The command's options by destination, read from its ``add_arguments``."""
        parser = argparse.ArgumentParser(prog=self.name, add_help=False)
        getattr(self._module(), self.add_arguments)(parser)
        out: dict[str, Option] = {}
        for a in parser._actions:
            if isinstance(a, argparse._StoreTrueAction | argparse._StoreFalseAction):
                kind = "flag"
            elif isinstance(a, argparse._AppendAction):
                kind = "append"
            elif type(a) is argparse._StoreAction:
                kind = "store"
            else:
                continue
            out[a.dest] = Option(a.dest, a.option_strings[0] if a.option_strings else a.dest, a.type, kind,
                                 tuple(a.choices) if a.choices is not None else None, bool(a.required), a.default)
        return out

    def exclusive_groups(self) -> list[tuple[str, ...]]:
        """Destinations that may not be given together (argparse mutually exclusive groups)."""
        parser = argparse.ArgumentParser(prog=self.name, add_help=False)
        getattr(self._module(), self.add_arguments)(parser)
        return [tuple(a.dest for a in g._group_actions) for g in parser._mutually_exclusive_groups]

    def runner(self) -> Callable[[argparse.Namespace], int]:
        """The command's ``run(args)``."""
        return getattr(self._module(), self.run)


_KINDS: dict[str, StepKind] = {}


def register_kind(kind: StepKind) -> StepKind:
    """Add a step kind; a second kind of the same name raises."""
    if kind.name in _KINDS:
        raise ValueError(f"step kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> StepKind:
    """The registered step kind ``name``; KeyError for an unknown one."""
    return _KINDS[name]


def list_kinds() -> tuple[str, ...]:
    """Names of the registered step kinds, sorted."""
    return tuple(sorted(_KINDS))


register_kind(StepKind(
    "inspect", "interpkit.cli._inspect",
    inputs=("records", "features", "interventions", "dataset", "neuronpedia_file"),
    outputs=("out", "html_out"), maybe_inputs=("model", "saelens_release"), default_out="{name}"))
register_kind(StepKind(
    "train-sae", "interpkit.cli._train_sae", inputs=("records", "dataset", "causal_dataset"),
    outputs=("out", "records_out", "causal_out"), maybe_inputs=("model",), default_out="{name}"))
register_kind(StepKind(
    "export-hf-records", "interpkit.cli._export_records", inputs=("dataset",), outputs=("out",),
    maybe_inputs=("model",), default_out="{name}.jsonl"))
register_kind(StepKind(
    "export-hf-contrast", "interpkit.cli._export_contrast", inputs=("dataset",),
    outputs=("records_out", "interventions_out"), maybe_inputs=("model", "target_tokens")))
register_kind(StepKind(
    "export-hf-interventions", "interpkit.cli._export_interventions", inputs=("dataset", "report", "directions"),
    outputs=("out",), maybe_inputs=("model", "target_tokens"), default_out="{name}.jsonl"))
register_kind(StepKind(
    "compile-criterion", "interpkit.cli._criterion", inputs=("pool", "labels"), outputs=("out",),
    maybe_inputs=("model", "target_tokens"), default_out="{name}.jsonl"))
register_kind(StepKind(
    "score-prompts", "interpkit.cli._criterion", add_arguments="add_score_arguments", run="run_score",
    inputs=("dataset", "labels"), outputs=("out",), maybe_inputs=("model", "target_tokens"),
    default_out="{name}.jsonl"))
# ``interpkit match``
register_kind(StepKind(
    "match", "interpkit.cli._match", inputs=("left", "right", "left_table", "right_table"), outputs=("out",),
    default_out="{name}/matches.json"))
# ``interpkit bench detect|steer`` (the mode is the step's ``mode`` argument)
register_kind(StepKind(
    "bench", "interpkit.cli._bench", add_arguments="add_step_arguments", run="run_step",
    inputs=("task", "sae", "instructions_file"), outputs=("out",), maybe_inputs=("model",), default_out="{name}"))
# ``interpkit export-steering`` / ``apply-steering``: steering artifacts (folders)
register_kind(StepKind(
    "export-steering", "interpkit.cli._export_steering", inputs=("report", "directions", "interventions"),
    outputs=("out",), maybe_inputs=("model",), default_out="{name}"))
register_kind(StepKind(
    "apply-steering", "interpkit.cli._apply_steering", inputs=("artifact", "prompts"), outputs=("out",),
    maybe_inputs=("model",), default_out="{name}.jsonl"))
# ``interpkit dossier add`` (the project folder is written: dossiers accumulate there across runs)
register_kind(StepKind(
    "dossier", "interpkit.cli._dossier", add_arguments="add_step_arguments", run="run_step",
    inputs=("report", "matches", "artifact"), outputs=("project",)))
