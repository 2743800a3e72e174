"""Run configs: JSON, TOML or YAML files parsed into typed, validated records.

A config holds a list of steps; each step names a ``kind`` (an ``interpkit`` command) and its
``args`` (the command's options by their ``argparse`` names). Every error names the config file,
the step index (and name) and the field::

    run.toml: steps[1] (sae): field 'args.epochs': expected an integer, got 'ten'

Example:
    >>> import json, tempfile, pathlib
    >>> from interpkit.runs import load_config
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "run.json").write_text(json.dumps({"steps": [
    ...     {"name": "toy", "kind": "inspect", "args": {"model": "toy", "criterion": "sentiment"}}]}))
    >>> cfg = load_config(folder / "run.json")
    >>> cfg.steps[0].args["out"], cfg.steps[0].args["seed"], cfg.out
    ('toy', 0, 'run')
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interpkit.runs._interp_lab import is_interp_lab_config, translate_interp_lab_config
from interpkit.runs._steps import Option, get_kind, list_kinds

CONFIG_VERSION = 1
_TOP_KEYS = {"version", "name", "seed", "out", "allow_outside", "steps"}
_STEP_KEYS = {"name", "kind", "args"}


class ConfigError(ValueError):
    """A run config that cannot run; the message names the file, the step and the field."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StepConfig:
    """One step: a kind (an ``interpkit`` command) and its validated arguments."""

    index: int
    name: str
    """Unique within the config; other steps refer to it as ``${steps.NAME.FIELD}``."""
    kind: str
    args: Mapping[str, Any]
    """Validated arguments by ``argparse`` destination, as written (paths not yet resolved)."""

    def where(self, path: str | Path) -> str:
        """``run.json: steps[1] (name)``: the prefix of this step's error messages."""
        return f"{Path(path).name}: steps[{self.index}] ({self.name})"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """A parsed run config."""

    path: Path
    """The config file (absolute); relative input paths resolve against its folder."""
    name: str
    seed: int = 0
    """Default ``seed`` of every step that takes one, and the global RNG seed before each step."""
    out: str = "run"
    """The run folder, relative to the config file's folder; outputs resolve against it."""
    allow_outside: bool = False
    """Let paths leave the config and run folders."""
    steps: tuple[StepConfig, ...]
    raw: Mapping[str, Any]
    """The config as parsed, kept in the manifest."""
    notes: tuple[str, ...] = ()
    """What was translated from another tool's config (interp-lab's); the manifest's ``warnings``."""


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a ``.json``, ``.toml`` or ``.yaml``/``.yml`` file into a mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such run config: {path}")
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = _toml().loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise ConfigError(f"{path.name}: unknown config format {suffix!r}; use .json, .toml or .yaml")
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid JSON: {exc}") from None
    except Exception as exc:  # TOMLDecodeError / YAMLError, without importing the parsers up front
        if type(exc).__name__ in ("TOMLDecodeError", "YAMLError") or type(exc).__module__.startswith("yaml"):
            raise ConfigError(f"{path.name}: not valid {suffix[1:].upper()}: {exc}") from None
        raise
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: expected a mapping at the top, got {type(data).__name__}")
    return data


def _toml() -> Any:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigError("TOML run configs need Python 3.11+ or the tomli package; "
                              "use .json or .yaml") from None
    return tomllib


def _unknown(where: str, key: str, known: Any) -> ConfigError:
    near = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; known: {', '.join(sorted(known))}"
    return ConfigError(f"{where}: unknown field {key!r}{hint}")


def _type_name(t: Any) -> str:
    return {int: "an integer", float: "a number"}.get(t, "text")


def _scalar(value: Any, opt: Option, where: str) -> Any:
    t = opt.type
    if t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        # text options: a list or mapping is written the way the command line spells it
        if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
            value = ",".join(str(v) for v in value)
        elif isinstance(value, dict) and all(isinstance(v, int | float) for v in value.values()):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: expected {_type_name(t)}, got {value!r}")
    if opt.choices is not None and value not in opt.choices:
        raise ConfigError(f"{where}: expected one of {', '.join(map(str, opt.choices))}, got {value!r}")
    return value


def _check_args(args: Any, step: StepConfig, cfg_path: Path, seed: int) -> dict[str, Any]:
    where = step.where(cfg_path)
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: field 'args': expected a mapping, got {type(args).__name__}")
    kind = get_kind(step.kind)
    schema = kind.schema()
    flags = {o.flag.lstrip("-").replace("-", "_"): o for o in schema.values()}
    out: dict[str, Any] = {}
    for raw_key, value in args.items():
        key = str(raw_key).replace("-", "_")
        fwhere = f"{where}: field 'args.{raw_key}'"
        if key in schema:
            opt = schema[key]
        elif key in flags and flags[key].kind == "flag":  # "no_explain": true for the dest "explain"
            opt = flags[key]
            if not isinstance(value, bool):
                raise ConfigError(f"{fwhere}: expected true or false, got {value!r}")
            value = (not opt.default) if value else opt.default
        else:
            raise _unknown(f"{where}: field 'args'", str(raw_key), schema)
        if opt.dest in out:
            raise ConfigError(f"{fwhere}: {opt.dest!r} given twice")
        if value is None:
            pass
        elif opt.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigError(f"{fwhere}: expected true or false, got {value!r}")
        elif opt.kind == "append":
            items = value if isinstance(value, list) else [value]
            value = [_scalar(v, opt, f"{fwhere}[{i}]") for i, v in enumerate(items)]
        else:
            value = _scalar(value, opt, fwhere)
        out[opt.dest] = value
    if "seed" in schema and out.get("seed") is None:
        out["seed"] = seed
    if "out" in schema and out.get("out") is None and kind.default_out is not None:
        out["out"] = kind.default_out.format(name=step.name)
    for opt in schema.values():
        if opt.required and out.get(opt.dest) is None:
            raise ConfigError(f"{where}: field 'args.{opt.dest}' is required ({opt.flag} of interpkit {step.kind})")
    for group in kind.exclusive_groups():
        given = [d for d in group if out.get(d) is not None]
        if len(given) > 1:
            raise ConfigError(f"{where}: fields {', '.join(f'args.{d}' for d in given)} exclude each other")
    return out


def _step(raw: Any, i: int, cfg_path: Path, seed: int, seen: set[str]) -> StepConfig:
    where = f"{cfg_path.name}: steps[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with 'kind' and 'args', got {type(raw).__name__}")
    for key in raw:
        if key not in _STEP_KEYS:
            raise _unknown(where, str(key), _STEP_KEYS)
    kind = raw.get("kind")
    if kind is None:
        raise ConfigError(f"{where}: field 'kind' is required (one of {', '.join(list_kinds())})")
    if kind not in list_kinds():
        raise ConfigError(f"{where}: field 'kind': unknown step kind {kind!r}; known: {', '.join(list_kinds())}")
    if not get_kind(kind).available():
        raise ConfigError(f"{where}: field 'kind': step kind {kind!r} is not available in this install "
                          f"(its module {get_kind(kind).module} cannot be imported)")
    name = raw.get("name", f"{kind.replace('-', '_')}_{i}")
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigError(f"{where}: field 'name': expected letters, digits, '_' or '-', got {name!r}")
    if name in seen:
        raise ConfigError(f"{where}: field 'name': {name!r} is already the name of an earlier step")
    seen.add(name)
    step = StepConfig(index=i, name=name, kind=kind, args={})
    args = _check_args(raw.get("args", {}), step, cfg_path, seed)
    return StepConfig(index=i, name=name, kind=kind, args=args)


def parse_config(data: Mapping[str, Any], path: str | Path) -> RunConfig:
    """Validate a parsed config mapping; ``path`` is the file it came from (for paths and messages)."""
    path = Path(path).absolute()
    name = path.name
    notes: list[str] = []
    original = data
    if is_interp_lab_config(data):
        data, notes = translate_interp_lab_config(data, path)
    for key in data:
        if key not in _TOP_KEYS:
            raise _unknown(name, str(key), _TOP_KEYS)
    version = data.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"{name}: field 'version': this interpkit reads run configs of version "
                          f"{CONFIG_VERSION}, got {version!r}")
    seed = data.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"{name}: field 'seed': expected an integer, got {seed!r}")
    out = data.get("out", "run")
    if not isinstance(out, str) or not out:
        raise ConfigError(f"{name}: field 'out': expected a folder name, got {out!r}")
    allow = data.get("allow_outside", False)
    if not isinstance(allow, bool):
        raise ConfigError(f"{name}: field 'allow_outside': expected true or false, got {allow!r}")
    run_name = data.get("name", path.stem)
    if not isinstance(run_name, str):
        raise ConfigError(f"{name}: field 'name': expected text, got {run_name!r}")
    steps = data.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{name}: field 'steps': expected a non-empty list of steps")
    seen: set[str] = set()
    parsed = tuple(_step(s, i, path, seed, seen) for i, s in enumerate(steps))
    return RunConfig(path=path, name=run_name, seed=seed, out=out, allow_outside=allow, steps=parsed,
                     raw=json.loads(json.dumps(original, default=str)), notes=tuple(notes))


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config file (``.json``, ``.toml``, ``.yaml``).

    Raises:
        ConfigError: the config is malformed; the message names the file, step index and field.
        FileNotFoundError: no such file.
    """
    return parse_config(read_config_file(path), path)
