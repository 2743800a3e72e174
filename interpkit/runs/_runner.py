"""Run a config: each step in-process through its command's ``run(args)``, a manifest after each.

Example:
    >>> import json, tempfile, pathlib
    >>> from interpkit.runs import run_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "run.json").write_text(json.dumps({"steps": [{"name": "toy", "kind": "inspect",
    ...     "args": {"model": "toy", "criterion": "sentiment", "n_permutations": 50, "n_bootstrap": 5}}]}))
    >>> manifest = run_config(folder / "run.json", echo=lambda *a: None)  # doctest: +ELLIPSIS
    wrote ...
    >>> manifest["status"], [o["path"] for o in manifest["steps"][0]["outputs"]]
    ('complete', ['toy/report.json', 'toy/report.md'])
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from interpkit.runs._config import ConfigError, RunConfig, load_config
from interpkit.runs._manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    describe_input,
    describe_output,
    environment,
    now,
    snapshot,
    tool,
    write_manifest,
)
from interpkit.runs._plan import Plan, PlannedStep, make_plan
from interpkit.runs._steps import get_kind


class StepFailed(RuntimeError):
    """A step raised or returned a non-zero status; the manifest records it as failed."""


def _seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(seed)


@contextlib.contextmanager
def _chdir(path: Path) -> Iterator[None]:
    """The working folder set to ``path`` for the block (``contextlib.chdir`` is 3.11+)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def _namespace(ps: PlannedStep) -> argparse.Namespace:
    schema = get_kind(ps.step.kind).schema()
    values = {d: copy.copy(o.default) for d, o in schema.items()}
    values.update(ps.args)
    # what a command records as its provenance (`interpkit.cli.main` sets the command line)
    values["_command"] = f"interpkit run (step {ps.step.kind!r})"
    return argparse.Namespace(**values)


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _check_inputs(plan: Plan) -> None:
    for ps, p in plan.external_inputs():
        if not p.path.exists():
            raise ConfigError(f"{ps.step.where(plan.config.path)}: field 'args.{p.field}': no such file or folder: "
                              f"{p.path}")


def _outputs(plan: Plan, ps: PlannedStep, before: dict[Path, tuple[int, int, int]],
             roots: list[Path]) -> list[dict[str, Any]]:
    manifest_path = plan.run_dir / MANIFEST_NAME
    after = snapshot(roots, manifest_path)
    declared = snapshot([p.path for p in ps.outputs], manifest_path)
    files = {f for f, st in after.items() if before.get(f) != st} | set(declared)
    return [describe_output(f, plan.relative(f)) for f in sorted(files)]


def _run_step(plan: Plan, ps: PlannedStep, entry: dict[str, Any], save: Callable[[str], None]) -> None:
    seed = ps.args.get("seed", plan.config.seed)
    ns = _namespace(ps)
    entry.update({
        "arguments": {k: _jsonable(v) for k, v in sorted(vars(ns).items())},
        "inputs": [{"field": p.field, **describe_input(p.path, plan.relative(p.path)),
                    **({"from_step": p.from_step} if p.from_step else {})} for p in ps.inputs],
        "global_seed": seed, "status": "running", "started_at": now(),
    })
    roots = [plan.run_dir] + [p.path for p in ps.outputs if not p.path.is_relative_to(plan.run_dir)]
    before = snapshot(roots, plan.run_dir / MANIFEST_NAME)
    save("incomplete")  # a crash from here on leaves this step marked "running"
    _seed_everything(seed)
    t0 = time.perf_counter()
    error: BaseException | None = None
    try:
        with _chdir(plan.run_dir):
            rc = int(get_kind(ps.step.kind).runner()(ns) or 0)
        if rc != 0:
            error = StepFailed(f"interpkit {ps.step.kind} returned exit status {rc}")
    except BaseException as exc:  # recorded, then raised again by run_plan
        error = exc
    entry["finished_at"] = now()
    entry["duration_s"] = round(time.perf_counter() - t0, 3)
    entry["outputs"] = _outputs(plan, ps, before, roots)
    if error is not None:
        entry["status"] = "failed"
        entry["error"] = f"{type(error).__name__}: {error}"
        raise error
    entry["status"] = "ok"


def run_plan(plan: Plan, *, echo: Callable[[str], Any] = print) -> dict[str, Any]:
    """Run a resolved plan; returns the final manifest (also written to ``run_dir/manifest.json``).

    Raises:
        ConfigError: an input that no step produces is missing (checked before anything runs).
        StepFailed: a step failed; the manifest says which, with the error, and keeps the
            outputs of the steps before it. The step's own exception is the ``__cause__``.
    """
    _check_inputs(plan)
    cfg: RunConfig = plan.config
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    manifest: dict[str, Any] = {
        "kind": "interpkit_run_manifest", "schema_version": SCHEMA_VERSION, "status": "incomplete",
        "name": cfg.name, "tool": tool(), "seed": cfg.seed,
        "config": {**describe_input(cfg.path, plan.relative(cfg.path)), "content": cfg.raw},
        "allow_outside": plan.allow_outside,
        "warnings": list(cfg.notes),
        "inputs": _external(plan),
        "started_at": now(), "finished_at": None, "duration_s": None,
        "environment": environment(),
        "steps": [{"index": s.step.index, "name": s.step.name, "kind": s.step.kind, "status": "pending"}
                  for s in plan.steps],
    }

    def save(status: str) -> None:
        manifest["status"] = status
        if status != "incomplete":
            manifest["finished_at"] = now()
            manifest["duration_s"] = round(time.perf_counter() - t0, 3)
        write_manifest(plan.run_dir, manifest)

    save("incomplete")
    for note in cfg.notes:
        echo(f"note: {note}")
    for ps, entry in zip(plan.steps, manifest["steps"], strict=True):
        echo(f"[{ps.step.index}] {ps.step.name}: interpkit {ps.step.kind}")
        try:
            _run_step(plan, ps, entry, save)
        except BaseException as exc:
            save("failed")
            if isinstance(exc, Exception):
                raise StepFailed(f"{cfg.path.name}: steps[{ps.step.index}] ({ps.step.name}) failed: "
                                 f"{type(exc).__name__}: {exc}; see {plan.run_dir / MANIFEST_NAME}") from exc
            raise
        echo(f"    ok in {entry['duration_s']:.2f}s, {len(entry['outputs'])} output file(s)")
    save("complete")
    echo(f"wrote {plan.run_dir / MANIFEST_NAME}")
    return manifest


def _external(plan: Plan) -> list[dict[str, Any]]:
    seen: dict[Path, dict[str, Any]] = {}
    for ps, p in plan.external_inputs():
        if p.path not in seen:
            seen[p.path] = {**describe_input(p.path, plan.relative(p.path)), "used_by": []}
        if ps.step.name not in seen[p.path]["used_by"]:
            seen[p.path]["used_by"].append(ps.step.name)
    return list(seen.values())


def run_config(config: str | Path | RunConfig, *, out: str | Path | None = None, allow_outside: bool | None = None,
               dry_run: bool = False, echo: Callable[[str], Any] = print) -> dict[str, Any] | None:
    """Load, plan and run a config file (``interpkit run``).

    Args:
        config: the config file (``.json``, ``.toml``, ``.yaml``) or a loaded :class:`RunConfig`.
        out: the run folder, overriding the config's ``out``.
        allow_outside: let paths leave the config and run folders (overrides the config).
        dry_run: print the plan and return None; nothing is run or written.
        echo: where progress lines go.

    Returns:
        The manifest (None for a dry run).
    """
    cfg = config if isinstance(config, RunConfig) else load_config(config)
    plan = make_plan(cfg, out=out, allow_outside=allow_outside)
    if dry_run:
        for note in cfg.notes:
            echo(f"note: {note}")
        echo(plan.describe())
        return None
    return run_plan(plan, echo=echo)
