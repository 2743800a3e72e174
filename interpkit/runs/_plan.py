"""The plan of a run: every step's paths resolved, references to earlier steps filled in, escapes refused.

Inputs (``records``, ``dataset``, ``left`` ...) resolve against the config file's folder; outputs
(``out``, ``records_out`` ...) against the run folder. A path may not leave those folders (inputs:
the config folder or the run folder; outputs: the run folder) unless the config sets
``allow_outside: true`` or the command line passes ``--allow-outside``. A value may refer to an
earlier step's argument as ``${steps.NAME.FIELD}``: ``"${steps.inspect_a.out}/report.json"``.
Commands receive every path relative to the run folder, their working folder while they run, so
what they record (``report.json``'s input paths) does not depend on where the project lies.

Example:
    >>> import json, tempfile, pathlib
    >>> from interpkit.runs import load_config, make_plan
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "run.json").write_text(json.dumps({"steps": [
    ...     {"name": "a", "kind": "inspect", "args": {"model": "toy", "criterion": "x"}},
    ...     {"name": "b", "kind": "inspect", "args": {"criterion": "x",
    ...                                              "records": "${steps.a.out}/records.jsonl"}}]}))
    >>> plan = make_plan(load_config(folder / "run.json"))
    >>> plan.steps[1].args["records"], plan.steps[1].inputs[0].from_step
    ('a/records.jsonl', 'a')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpkit.runs._config import ConfigError, RunConfig, StepConfig
from interpkit.runs._steps import get_kind

_REF = re.compile(r"\$\{steps\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_]+)\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedPath:
    """A path argument of a step, resolved."""

    field: str
    path: Path
    """Absolute."""
    from_step: str | None = None
    """The earlier step whose argument this path refers to, if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PlannedStep:
    """A step ready to run."""

    step: StepConfig
    args: dict[str, Any]
    """The step's arguments as the command receives them (paths relative to the run folder)."""
    inputs: tuple[PlannedPath, ...]
    outputs: tuple[PlannedPath, ...]
    paths: dict[str, Path]
    """Absolute path of each path argument (what ``${steps.NAME.FIELD}`` refers to)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Every step of a config with its paths resolved."""

    config: RunConfig
    run_dir: Path
    config_dir: Path
    allow_outside: bool
    steps: tuple[PlannedStep, ...]

    def relative(self, path: Path) -> str:
        """``path`` relative to the run folder, with ``/`` separators (the manifest's spelling)."""
        return Path(os.path.relpath(path, self.run_dir)).as_posix()

    def external_inputs(self) -> list[tuple[PlannedStep, PlannedPath]]:
        """Inputs that no earlier step produces: they must exist before the run starts."""
        return [(s, p) for s in self.steps for p in s.inputs if p.from_step is None]

    def describe(self) -> str:
        """The plan as text (``interpkit run --dry-run``)."""
        lines = [f"run {self.config.name!r} from {self.config.path}",
                 f"run folder: {self.run_dir}", f"seed: {self.config.seed}",
                 f"allow outside: {'yes' if self.allow_outside else 'no'}", ""]
        for s in self.steps:
            lines.append(f"[{s.step.index}] {s.step.name}: interpkit {s.step.kind}")
            for key, value in s.args.items():
                lines.append(f"      {key} = {value!r}")
            for p in s.inputs:
                state = (f"from step {p.from_step}" if p.from_step
                         else "exists" if p.path.exists() else "MISSING")
                lines.append(f"    reads  {self.relative(p.path)}  ({state})")
            for p in s.outputs:
                lines.append(f"    writes {self.relative(p.path)}")
        lines.append("")
        lines.append("dry run: nothing was run or written")
        return "\n".join(lines)


def _inside(path: Path, *roots: Path) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def _resolve_step(step: StepConfig, cfg: RunConfig, done: dict[str, PlannedStep], run_dir: Path,
                  config_dir: Path, allow: bool) -> PlannedStep:
    kind = get_kind(step.kind)
    where = step.where(cfg.path)
    resolved: dict[str, Path] = {}  # absolute paths of this step's path arguments

    def substitute(text: str, field: str) -> tuple[str, str | None]:
        source: list[str] = []

        def one(m: re.Match[str]) -> str:
            name, ref = m.group(1), m.group(2)
            if name not in done:
                earlier = ", ".join(done) or "none"
                raise ConfigError(f"{where}: field 'args.{field}': {m.group(0)} refers to no earlier step named "
                                  f"{name!r} (earlier steps: {earlier})")
            other = done[name]
            if ref in other.paths:
                source.append(name)
                return str(other.paths[ref])
            if ref in other.step.args and other.step.args[ref] is not None:
                return str(other.step.args[ref])
            raise ConfigError(f"{where}: field 'args.{field}': step {name!r} has no argument {ref!r}")

        out = _REF.sub(one, text)
        if "${" in out:
            raise ConfigError(f"{where}: field 'args.{field}': cannot read the reference in {text!r}; "
                              "write ${steps.NAME.FIELD}")
        return out, (source[0] if source else None)

    def path(field: str, value: str, role: str) -> tuple[Path | None, str | None]:
        text, from_step = substitute(value, field)
        base = run_dir if role == "out" else config_dir
        p = (base / text).resolve()
        if role == "maybe" and from_step is None and not p.exists():
            return None, None  # a zoo name or hub id, not a path
        roots = (run_dir,) if role == "out" else (config_dir, run_dir)
        if not allow and not _inside(p, *roots):
            folders = "the run folder" if role == "out" else "the config folder or the run folder"
            raise ConfigError(f"{where}: field 'args.{field}': {value!r} resolves to {p}, outside {folders}; "
                              "set allow_outside: true in the config (or pass --allow-outside) to allow it")
        return p, from_step

    args: dict[str, Any] = {}
    inputs: list[PlannedPath] = []
    outputs: list[PlannedPath] = []
    for field, value in step.args.items():
        role = ("out" if field in kind.outputs else "in" if field in kind.inputs
                else "maybe" if field in kind.maybe_inputs else None)
        if value is None or role is None:
            args[field] = substitute(value, field)[0] if isinstance(value, str) else value
            continue
        items = value if isinstance(value, list) else [value]
        passed = []
        for item in items:
            p, from_step = path(field, item, role)
            if p is None:
                passed.append(item)
                continue
            resolved[field] = p
            (outputs if role == "out" else inputs).append(PlannedPath(field=field, path=p, from_step=from_step))
            passed.append(Path(os.path.relpath(p, run_dir)).as_posix())
        args[field] = passed if isinstance(value, list) else passed[0]
    return PlannedStep(step=step, args=args, inputs=tuple(inputs), outputs=tuple(outputs), paths=resolved)


def make_plan(config: RunConfig, *, out: str | Path | None = None, allow_outside: bool | None = None) -> Plan:
    """Resolve every step's paths and references.

    Args:
        config: a loaded config.
        out: the run folder, overriding the config's ``out`` (relative to the working folder: the
            person running the command chose it, so it may lie anywhere).
        allow_outside: overrides the config's ``allow_outside`` when given.

    Raises:
        ConfigError: a reference to no earlier step, or a path leaving its folder.
    """
    config_dir = config.path.parent.resolve()
    allow = config.allow_outside if allow_outside is None else allow_outside
    if out is not None:
        run_dir = Path(out).resolve()
    else:
        run_dir = (config_dir / config.out).resolve()
        if not allow and not _inside(run_dir, config_dir):
            raise ConfigError(f"{config.path.name}: field 'out': {config.out!r} resolves to {run_dir}, outside the "
                              "config folder; set allow_outside: true (or pass --out / --allow-outside)")
    done: dict[str, PlannedStep] = {}
    for step in config.steps:
        done[step.name] = _resolve_step(step, config, done, run_dir, config_dir, allow)
    return Plan(config=config, run_dir=run_dir, config_dir=config_dir, allow_outside=allow,
                steps=tuple(done.values()))
