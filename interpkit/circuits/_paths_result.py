"""`PathResult`: the per-latent table of an SAE-to-SAE path measurement, its statistics and its files.

The statistics (`summarize`), per downstream latent, over the prompts the edit touched:

- ``total``, ``direct``, ``indirect`` (= total − direct): the mean change of the latent's activation,
  each with a percentile bootstrap interval over prompts (``_lo``, ``_hi``; the same resamples for every
  column, so the intervals are paired); ``*_pre``: the same for its pre-activation;
- the controls: each random draw's effect averaged over the prompts, like the real edit, gives one
  value of the null; ``control_mean`` / ``control_sd`` over the draws, ``z`` = (total − mean) / sd,
  ``frac_controls``: the fraction of draws with ``|effect| ≥ |total|`` (``control_pre_*``, ``z_pre``:
  the same for the pre-activation);
- ``clean``: the latent's mean clean activation over the read positions;
- ``rank``: by ``|total|`` (ties by ``|total_pre|``, then latent index), 1 first.

Files: `PathResult.save` writes one folder atomically: ``paths.json`` (``"format": "interpkit.paths"``,
``schema_version`` 1; see docs/circuits.md) and ``paths.md`` (the top latents). `read_paths` reads
``paths.json`` back, strictly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._paths import KINDS, Downstream, LatentRef
from ._replacement import CircuitError

__all__ = ["PATHS_FORMAT", "PATHS_JSON_NAME", "PATHS_MD_NAME", "PathResult", "read_paths", "summarize"]

PATHS_FORMAT = "interpkit.paths"
PATHS_JSON_NAME = "paths.json"
PATHS_MD_NAME = "paths.md"
_QUANTITIES = ("total", "direct", "indirect", "total_pre", "direct_pre", "indirect_pre")
_PER_PROMPT = ("total", "direct", "total_pre", "direct_pre", "clean")
COLUMNS = ("latent", "rank", *(f"{q}{s}" for q in _QUANTITIES for s in ("", "_lo", "_hi")),
           "control_mean", "control_sd", "z", "frac_controls", "control_pre_mean", "control_pre_sd", "z_pre",
           "clean")


def _bootstrap(values: Mapping[str, np.ndarray], n_boot: int, ci: float, seed: int,
               chunk: int = 4096) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: (lo, hi)}``: percentile intervals of the mean over rows (prompts), the same resamples for all."""
    p = next(iter(values.values())).shape[0]
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, p, size=(n_boot, p))
    weights = np.zeros((n_boot, p))
    np.add.at(weights, (np.repeat(np.arange(n_boot), p), draws.ravel()), 1.0 / p)
    q = [(1.0 - ci) / 2.0, 1.0 - (1.0 - ci) / 2.0]
    out = {}
    for name, x in values.items():
        lo, hi = np.empty(x.shape[1]), np.empty(x.shape[1])
        for start in range(0, x.shape[1], chunk):
            means = weights @ x[:, start:start + chunk].astype(np.float64)
            lo[start:start + chunk], hi[start:start + chunk] = np.quantile(means, q, axis=0)
        out[name] = (lo, hi)
    return out


def _control_stats(total: np.ndarray, draws: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(mean, sd, z, frac)`` of the real effect against the control draws ``[n_random, k]``."""
    k = total.shape[0]
    if draws.shape[0] == 0:
        nan = np.full(k, np.nan)
        return nan, nan.copy(), nan.copy(), nan.copy()
    mean = draws.mean(0)
    sd = draws.std(0, ddof=1) if draws.shape[0] > 1 else np.full(k, np.nan)
    diff = total - mean
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(sd > 0, diff / np.where(sd > 0, sd, 1.0), np.where(diff == 0, 0.0, np.sign(diff) * np.inf))
    z = np.where(np.isnan(sd), np.nan, z)
    frac = (np.abs(draws) >= np.abs(total)[None, :]).mean(0)
    return mean, sd, z, frac


def summarize(effects: Mapping[str, np.ndarray], controls: Mapping[str, np.ndarray], *, n_boot: int,
              ci: float, seed: int) -> Any:
    """The per-latent frame (`COLUMNS`, sorted by rank) from per-prompt effects and control draws.

    Args:
        effects: ``total``, ``direct``, ``total_pre``, ``direct_pre``, ``clean``: ``[prompts, latents]``.
        controls: ``total``, ``total_pre``: ``[n_random, latents]``, each draw averaged over prompts.
        n_boot: bootstrap resamples.
        ci: interval level.
        seed: the bootstrap's seed.

    Returns:
        A pandas DataFrame, one row per latent.
    """
    import pandas as pd

    per = {k: np.asarray(effects[k], dtype=np.float64) for k in ("total", "direct", "total_pre", "direct_pre")}
    per["indirect"] = per["total"] - per["direct"]
    per["indirect_pre"] = per["total_pre"] - per["direct_pre"]
    intervals = _bootstrap({q: per[q] for q in _QUANTITIES}, n_boot, ci, seed)
    cols: dict[str, Any] = {"latent": np.arange(per["total"].shape[1])}
    for q in _QUANTITIES:
        cols[q] = per[q].mean(0)
        cols[f"{q}_lo"], cols[f"{q}_hi"] = intervals[q]
    for prefix, key in (("control", "total"), ("control_pre", "total_pre")):
        mean, sd, z, frac = _control_stats(cols[key], np.asarray(controls[key], dtype=np.float64))
        cols[f"{prefix}_mean"], cols[f"{prefix}_sd"] = mean, sd
        cols["z" if prefix == "control" else "z_pre"] = z
        if prefix == "control":
            cols["frac_controls"] = frac
    cols["clean"] = np.asarray(effects["clean"], dtype=np.float64).mean(0)
    order = np.lexsort((cols["latent"], -np.abs(cols["total_pre"]), -np.abs(cols["total"])))
    rank = np.empty_like(order)
    rank[order] = np.arange(1, order.size + 1)
    cols["rank"] = rank
    return pd.DataFrame({c: cols[c] for c in COLUMNS}).iloc[order].reset_index(drop=True)


def _finite(v: Any) -> Any:
    """A JSON number (None for NaN and ±inf)."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v)
    f = float(v)
    return f if math.isfinite(f) else None


def _matrix(a: np.ndarray) -> list[list[Any]]:
    return [[_finite(v) for v in row] for row in np.asarray(a)]


@dataclass
class PathResult:
    """What `~interpkit.circuits.latent_paths` measured.

    Attributes:
        upstream: the edited latent.
        downstream: the read point (its kind resolved).
        frame: one row per downstream latent (`COLUMNS`), sorted by rank.
        settings: the settings and counts (``mode``, ``strength``, ``positions``, ``read``, ``n_random``,
            ``n_boot``, ``ci``, ``seed``, ``direct_frozen_mlp_layers``, ``model``, ``n_prompts``, ``n_used``).
        prompts: per prompt: ``prompt_id``, ``n_tokens``, ``edited_positions``, ``read_positions``,
            ``edit_norm`` and ``status`` (``"ok"``, or why it was left out: ``"inactive"`` ...).
        effects: per used prompt, ``[prompts, columns]``: ``total``, ``direct``, ``total_pre``,
            ``direct_pre``, ``clean``.
        controls: ``total``, ``total_pre``: ``[n_random, columns]``, each draw averaged over prompts.
        effect_latents: the latent index of each column of ``effects`` and ``controls``.
        d_sae: the downstream dictionary's width.
    """

    upstream: LatentRef
    downstream: Downstream
    frame: Any
    settings: dict[str, Any]
    prompts: list[dict[str, Any]]
    effects: dict[str, np.ndarray]
    controls: dict[str, np.ndarray]
    effect_latents: np.ndarray
    d_sae: int

    @property
    def downstream_site(self) -> str:
        """``"layer12.resid_post"`` or ``"layer12.mlp_in"``."""
        return f"layer{self.downstream.layer}.{KINDS[self.downstream.kind or 'sae']}"

    def top(self, n: int = 20) -> Any:
        """The ``n`` top-ranked rows of `frame`."""
        return self.frame.head(n)

    def row(self, latent: int) -> dict[str, Any]:
        """One latent's row of `frame` as a dict.

        Raises:
            KeyError: the latent is not in the frame.
        """
        hit = self.frame[self.frame["latent"] == latent]
        if hit.empty:
            raise KeyError(f"latent {latent} is not in this result's frame")
        return hit.iloc[0].to_dict()

    def to_json(self, max_latents: int | None = 500) -> dict[str, Any]:
        """The ``paths.json`` payload: the top ``max_latents`` rows (None: all) and their per-prompt effects."""
        from interpkit._constants import SCHEMA_VERSION
        from interpkit._version import __version__

        rows = self.frame if max_latents is None else self.frame.head(max_latents)
        latents = [int(v) for v in rows["latent"]]
        col = {int(v): i for i, v in enumerate(self.effect_latents)}
        missing = [v for v in latents if v not in col]
        if missing:
            raise CircuitError(f"latents {missing[:5]} have rows but no per-prompt effects")
        cols = [col[v] for v in latents]
        return {
            "format": PATHS_FORMAT, "kind": PATHS_FORMAT, "schema_version": SCHEMA_VERSION,
            "interpkit_version": __version__,
            "upstream": {"spec": self.upstream.spec, "layer": self.upstream.layer, "kind": self.upstream.kind,
                         "latent": self.upstream.latent, "site": self.upstream.site,
                         "write_site": f"layer{self.upstream.layer}.mlp_out"},
            "downstream": {"layer": self.downstream.layer, "kind": self.downstream.kind,
                           "site": self.downstream_site, "d_sae": int(self.d_sae)},
            "settings": dict(self.settings),
            "n_latents": int(self.d_sae), "truncated": len(latents) < len(self.frame),
            "columns": list(COLUMNS),
            "latents": [[_finite(v) for v in r] for r in rows[list(COLUMNS)].itertuples(index=False)],
            "prompts": [dict(p) for p in self.prompts],
            "per_prompt": {"latents": latents, **{k: _matrix(self.effects[k][:, cols]) for k in _PER_PROMPT}},
            "controls": {"latents": latents, **{k: _matrix(self.controls[k][:, cols]) for k in ("total", "total_pre")}},
        }

    def to_markdown(self, top: int = 20) -> str:
        """``paths.md``: the settings in words and the ``top`` latents' table."""
        s = self.settings
        pct = f"{100 * s['ci']:g}%"
        frozen = s["direct_frozen_mlp_layers"]
        lines = [
            f"# Paths: {self.upstream.spec} → {self.downstream_site}", "",
            f"- edit: {s['mode']}" + (f" (strength {s['strength']:g})" if s["strength"] is not None else "")
            + f" of {self.upstream.spec} at layer{self.upstream.layer}.mlp_out, positions {s['positions']}",
            f"- prompts: {s['n_used']} of {s['n_prompts']} used; effects averaged over read positions "
            f"{s['read']!r}",
            "- direct: " + (f"MLP outputs of layers {', '.join(map(str, frozen))} frozen at their clean values"
                            if frozen else "no MLP between the edit and the read (direct = total)"),
            f"- controls: {s['n_random']} same-norm random directions per prompt; intervals: {pct} bootstrap "
            f"over prompts ({s['n_boot']} resamples, seed {s['seed']})", "",
            f"| rank | latent | total [{pct}] | direct | indirect | pre-act total | control mean ± sd | z "
            "| frac ≥ |",
            "|---:|---:|---|---:|---:|---:|---|---:|---:|",
        ]

        def g(v: Any) -> str:
            return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"

        for r in self.frame.head(top).itertuples(index=False):
            lines.append(f"| {r.rank} | {r.latent} | {g(r.total)} [{g(r.total_lo)}, {g(r.total_hi)}] | {g(r.direct)} "
                         f"| {g(r.indirect)} | {g(r.total_pre)} | {g(r.control_mean)} ± {g(r.control_sd)} "
                         f"| {g(r.z)} | {g(r.frac_controls)} |")
        return "\n".join(lines) + "\n"

    def save(self, out_dir: str | os.PathLike[str], *, max_latents: int | None = 500, top: int = 20) -> Path:
        """Write ``paths.json`` and ``paths.md`` into ``out_dir`` as one folder, atomically.

        Args:
            out_dir: the folder (replaced as a whole when it exists).
            max_latents: rows kept in ``paths.json`` (None: every latent).
            top: rows in ``paths.md``.

        Returns:
            The folder.
        """
        from interpkit._io import atomic_dir, atomic_write_text, dir_mode

        payload = json.dumps(self.to_json(max_latents), indent=1, allow_nan=False) + "\n"
        with atomic_dir(out_dir) as tmp:
            os.chmod(tmp, dir_mode())
            atomic_write_text(tmp / PATHS_JSON_NAME, payload)
            atomic_write_text(tmp / PATHS_MD_NAME, self.to_markdown(top))
        return Path(out_dir)


def _field(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise CircuitError(f"{where}: field {key!r} is missing")
    value = data[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise CircuitError(f"{where}: field {key!r} has the wrong type ({type(value).__name__})")
    return value


def _array(m: list[list[Any]], width: int) -> np.ndarray:
    """A saved ``[rows, width]`` matrix (null read as NaN)."""
    if any(len(r) != width for r in m):
        raise ValueError(f"a row of a per-prompt matrix does not have {width} values")
    out = np.asarray([[np.nan if v is None else float(v) for v in r] for r in m], dtype=np.float32)
    return out.reshape(len(m), width)


def read_paths(path: str | os.PathLike[str]) -> PathResult:
    """Read a ``paths.json`` (or the folder holding one) back into a `PathResult` with the saved rows.

    Raises:
        FileNotFoundError: no such file.
        CircuitError: not JSON, another format, a newer schema version, or a missing or mistyped field
            (the message names the file and the field).
    """
    import pandas as pd

    from interpkit._constants import SCHEMA_VERSION
    from interpkit._io import read_json_file

    file, data = read_json_file(
        path, name=PATHS_JSON_NAME, missing="no paths.json at {path}",
        invalid=lambda f, e: CircuitError(f"{f}:{e.lineno}: not JSON ({e.msg})"))
    where = str(file)
    if not isinstance(data, dict):
        raise CircuitError(f"{where}: expected a JSON object")
    if data.get("format") != PATHS_FORMAT:
        raise CircuitError(f"{where}: field 'format' is {data.get('format')!r}, expected {PATHS_FORMAT!r}")
    version = _field(data, "schema_version", int, where)
    if version > SCHEMA_VERSION:
        raise CircuitError(f"{where}: field 'schema_version' {version} is newer than this interpkit reads "
                           f"({SCHEMA_VERSION})")
    up = _field(data, "upstream", dict, where)
    down = _field(data, "downstream", dict, where)
    columns = _field(data, "columns", list, where)
    if columns != list(COLUMNS):
        raise CircuitError(f"{where}: field 'columns' is not this schema's ({', '.join(COLUMNS)})")
    rows = _field(data, "latents", list, where)
    for i, r in enumerate(rows):
        if not isinstance(r, list) or len(r) != len(COLUMNS):
            raise CircuitError(f"{where}: field 'latents[{i}]' must be a list of {len(COLUMNS)} values")
    per = _field(data, "per_prompt", dict, where)
    ctrl = _field(data, "controls", dict, where)
    try:
        upstream = LatentRef(up["layer"], up["kind"], up["latent"])
        downstream = Downstream(down["layer"], down["kind"])
        frame = pd.DataFrame([[np.nan if v is None else v for v in r] for r in rows], columns=list(COLUMNS))
        frame = frame.astype({"latent": int, "rank": int}) if len(frame) else frame
        effects = {k: _array(per[k], len(rows)) for k in _PER_PROMPT}
        controls = {k: _array(ctrl[k], len(rows)) for k in ("total", "total_pre")}
        return PathResult(upstream=upstream, downstream=downstream, frame=frame,
                          settings=_field(data, "settings", dict, where),
                          prompts=_field(data, "prompts", list, where), effects=effects, controls=controls,
                          effect_latents=np.asarray(per["latents"], dtype=np.int64), d_sae=int(down["d_sae"]))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CircuitError):
            raise
        raise CircuitError(f"{where}: a malformed upstream, downstream, per_prompt or controls field ({exc})") from None
