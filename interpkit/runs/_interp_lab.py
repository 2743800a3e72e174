"""interp-lab 0.1 run configs (the seed tool's ``run_records.json``) translated into interpkit configs.

interp-lab writes two shapes of config (``oracle_sae/runs.py``): a single inspection with its options
at the top (``{"out", "model", "criterion", "backend", "records", "top_k", ...}``) and a ``steps`` list
of ``{"name", "command", "args"}`` whose ``args`` are the command's options as a mapping or an argv
list. Neither has our ``kind`` key, so the layout is detected by its fields (`is_interp_lab_config`)
and translated into our config mapping (`translate_interp_lab_config`) with one note per translated
field; the notes go into the manifest's ``warnings``. A field that has no interpkit equivalent is
refused with ``file: field '...'``, never dropped silently, and the translated config is then
validated by the ordinary strict reader, so a malformed file still fails naming its field.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# interp-lab's ``inspect`` backends -> ours (its ``jsonl`` backend reads feature dumps)
_BACKENDS = {"toy": "toy", "jsonl": "features", "records": "records", "neuronpedia": "neuronpedia",
             "saelens": "saelens"}
# interp-lab ``inspect`` option -> our ``inspect`` option (same meaning)
_INSPECT_ARGS = {"model": "model", "criterion": "criterion", "features": "features", "records": "records",
                 "interventions": "interventions", "top_k": "top_k",
                 "allow_intervention_criterion_mismatch": "allow_intervention_criterion_mismatch",
                 "neuronpedia_feature": "neuronpedia", "saelens_release": "saelens_release",
                 "saelens_sae_id": "saelens_sae_id", "saelens_feature_indexes": "saelens_feature_indexes"}
# options whose interp-lab meaning interpkit cannot reproduce: refused unless left at their default
_NO_EQUIVALENT = {
    "require_interventions": (False, "interpkit never scores an untested feature's causal effect as 0"),
    "neuronpedia_base_url": ("https://www.neuronpedia.org", "interpkit's Neuronpedia client has a fixed host"),
    "saelens_device": ("cpu", "interpkit picks the SAE's device itself"),
    "saelens_force_download": (False, "interpkit's hub downloads are cached by content"),
    "saelens_max_features": (32, "rank every latent, or name them with saelens_feature_indexes"),
    "saelens_feature_metadata": (None, "interpkit labels SAE latents itself"),
}
_TOP_ONLY = {"out", "run_dir", "manifest"}
_PATH_KEYS = ("features", "records", "interventions", "dataset", "report", "left", "right")


class _Refused(ValueError):
    pass


def is_interp_lab_config(data: Mapping[str, Any]) -> bool:
    """Whether a parsed config is interp-lab's: top-level ``model`` + ``criterion``, or steps with ``command``."""
    if "kind" in data or "version" in data:
        return False
    steps = data.get("steps")
    if isinstance(steps, list):
        return bool(steps) and all(isinstance(s, Mapping) and "command" in s and "kind" not in s for s in steps)
    return "model" in data and "criterion" in data


def _argv_to_mapping(argv: list[Any], kind: str, where: str) -> dict[str, Any]:
    """An interp-lab argv list parsed by our command's own parser (options it does not know are refused)."""
    from interpkit.runs._config import ConfigError
    from interpkit.runs._steps import get_kind

    parser = argparse.ArgumentParser(prog=kind, add_help=False, exit_on_error=False)
    getattr(get_kind(kind)._module(), get_kind(kind).add_arguments)(parser)
    err = io.StringIO()
    unset = object()  # argparse leaves a preset attribute alone: what stays unset was not given
    ns = argparse.Namespace(**{a.dest: unset for a in parser._actions if a.dest != "help"})
    try:
        with contextlib.redirect_stderr(err):
            parser.parse_args([str(a) for a in argv], namespace=ns)
    except (argparse.ArgumentError, SystemExit) as exc:
        detail = str(exc) if isinstance(exc, argparse.ArgumentError) else (err.getvalue().strip() or "bad argv")
        raise ConfigError(f"{where}: field 'args': {detail.splitlines()[-1]}") from None
    return {k: v for k, v in vars(ns).items() if v is not unset}


def _inspect_args(src: Mapping[str, Any], where: str, notes: list[str], config_dir: Path) -> dict[str, Any]:
    args: dict[str, Any] = {}
    for key, value in src.items():
        fwhere = f"{where}field '{key}'"
        if key in _TOP_ONLY:
            continue
        if key == "backend":
            if value not in _BACKENDS:
                raise _Refused(f"{fwhere}: expected one of {', '.join(_BACKENDS)} (interp-lab's backends), "
                               f"got {value!r}")
            args["backend"] = _BACKENDS[value]
            if _BACKENDS[value] != value:
                notes.append(f"{fwhere}: interp-lab backend {value!r} read as interpkit backend "
                             f"{_BACKENDS[value]!r}")
        elif key == "neuronpedia_features":
            refs = _read_refs(config_dir, value, fwhere)
            args.setdefault("neuronpedia", []).extend(refs)
            notes.append(f"{fwhere}: the {len(refs)} feature ref(s) listed in {value} read as 'neuronpedia'")
        elif key in _NO_EQUIVALENT:
            default, why = _NO_EQUIVALENT[key]
            if value != default and value is not None:
                raise _Refused(f"{fwhere}: interp-lab option with no interpkit equivalent ({why}); remove it")
        elif key in _INSPECT_ARGS:
            ours = _INSPECT_ARGS[key]
            if key == "neuronpedia_feature" and isinstance(value, str):
                value = [value]
            if ours in ("neuronpedia",) and ours in args:
                args[ours] = [*value, *args[ours]]
            else:
                args[ours] = value
            if ours != key:
                notes.append(f"{fwhere}: read as inspect's {ours!r}")
        else:
            raise _Refused(f"{fwhere}: not an option of interp-lab's inspect")
    args.setdefault("backend", "toy")
    if "backend" not in src:
        notes.append(f"{where}field 'backend' absent: interp-lab's default 'toy' (synthetic) used")
    return args


def _read_refs(config_dir: Path, value: Any, where: str) -> list[str]:
    if not isinstance(value, str):
        raise _Refused(f"{where}: expected a file of Neuronpedia refs, got {value!r}")
    path = _existing(config_dir, value)
    if path is None:
        raise _Refused(f"{where}: no such file: {value}")
    return [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()
            if ln.strip() and not ln.lstrip().startswith("#")]


def _existing(config_dir: Path, value: str) -> Path | None:
    """Where interp-lab finds ``value``: the working folder first (its commands run there), then the config's."""
    p = Path(value)
    for c in ([p] if p.is_absolute() else [Path.cwd() / p, config_dir / p]):
        if c.is_file():
            return c.resolve()
    return None


def _fix_paths(args: dict[str, Any], config_dir: Path, where: str, notes: list[str]) -> None:
    """interp-lab resolves input paths against the working folder; ours resolve against the config's folder."""
    for key in _PATH_KEYS:
        value = args.get(key)
        if not isinstance(value, str) or "://" in value or (config_dir / value).exists():
            continue
        found = _existing(config_dir, value)
        if found is not None:
            args[key] = str(found)
            notes.append(f"{where}field '{key}': {value!r} found in the working folder (interp-lab's rule), read "
                         f"as {found}")


def translate_interp_lab_config(data: Mapping[str, Any], path: str | Path) -> tuple[dict[str, Any], list[str]]:
    """An interp-lab config as an interpkit config mapping, and the notes of what was translated.

    Raises:
        ConfigError: a field with no interpkit equivalent, or a malformed interp-lab config.
    """
    from interpkit.runs._config import ConfigError
    from interpkit.runs._steps import list_kinds

    path = Path(path)
    name, config_dir = path.name, path.absolute().parent
    notes = [f"{name}: interp-lab run config, translated to an interpkit config"]
    out: dict[str, Any] = {}
    for key in ("out", "run_dir"):
        if key in data:
            if not isinstance(data[key], str) or not data[key]:
                raise ConfigError(f"{name}: field '{key}': expected a folder name, got {data[key]!r}")
            out["out"] = data[key]
            notes.append(f"{name}: field '{key}': the run folder, resolved against the config's folder "
                         "(interp-lab: the working folder; pass --out to choose)")
            break
    if "manifest" in data:
        notes.append(f"{name}: field 'manifest' (interp-lab's hashing limits) ignored: interpkit hashes every input")
    try:
        if "steps" not in data:
            args = _inspect_args(data, f"{name}: ", notes, config_dir)
            args["out"] = "inspect"  # interp-lab writes the top-level inspection to <out>/inspect
            steps = [{"name": "inspect", "kind": "inspect", "args": args}]
        else:
            steps = []
            for i, raw in enumerate(data["steps"]):
                where = f"{name}: steps[{i}]"
                extra = set(raw) - {"name", "command", "args"}
                if extra:
                    raise _Refused(f"{where}: field {sorted(extra)[0]!r}: not a field of an interp-lab step")
                command = raw["command"]
                if command not in list_kinds():
                    raise _Refused(f"{where}: field 'command': {command!r} has no interpkit step kind; "
                                   f"known: {', '.join(list_kinds())}")
                args = raw.get("args", {})
                if isinstance(args, list):
                    args = _argv_to_mapping(args, command, where)
                    notes.append(f"{where}: field 'args' (an argv list) parsed by interpkit {command}'s options")
                if not isinstance(args, Mapping):
                    raise _Refused(f"{where}: field 'args': expected a mapping or a list, got {args!r}")
                args = dict(args)
                if command == "inspect":
                    args = {**_inspect_args(args, f"{where}: ", notes, config_dir),
                            **({"out": args["out"]} if "out" in args else {})}
                step = {"kind": command, "args": args}
                if "name" in raw:
                    step["name"] = str(raw["name"]).replace(" ", "_")
                steps.append(step)
            notes.append(f"{name}: field 'command' of each step read as 'kind'")
        for i, step in enumerate(steps):
            _fix_paths(step["args"], config_dir, f"{name}: steps[{i}]: ", notes)
    except _Refused as exc:
        raise ConfigError(str(exc)) from None
    return {**out, "steps": steps}, notes
