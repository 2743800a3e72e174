"""SAE-to-SAE causal paths: what an edit of one upstream latent does to every latent of a downstream dictionary.

`latent_paths` runs each prompt three ways through the `ReplacementModel` (the exact, nonlinear model):

- **clean**: unedited;
- **total**: the upstream latent edited, everything downstream recomputed;
- **direct**: the same edit with every MLP output strictly between the upstream write point and the
  downstream read point frozen at its clean value, so only the residual stream and the attention
  layers (recomputed: their patterns and the norm scales do move) carry the edit. For a downstream
  residual SAE at ``layer{M}.resid_post`` that freezes the MLPs of layers ``L+1 .. M`` (layer M's
  MLP output is part of resid_post M); for a downstream transcoder at ``layer{M}.mlp_in``, layers
  ``L+1 .. M-1``. **indirect** = total − direct: what travels through those MLPs.

The upstream latent's edit is a delta at layer L's MLP output (a residual SAE at ``layer{L}.resid_post``
and a transcoder writing ``layer{L}.mlp_out`` both write there): **ablate** removes its contribution
``a_j · d_j`` at every position where it is active, **steer** adds ``strength · d_j`` at every position
(or the positions given); ``d_j`` is the decoder row in the model's units (``W_dec[j] / s``).

The measured quantity per downstream latent and prompt is the change of its activation (the downstream
dictionary's codes) and of its pre-activation (linear in the read: what an attribution-graph edge
predicts), averaged over the read positions: by default every position at or after the first edited
one (earlier positions cannot change in a causal model, and averaging them in would only dilute).
Same-norm random directions give each latent a null distribution; the mean effect over prompts gets a
bootstrap interval (`~interpkit.circuits._paths_result`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._replacement import CircuitError

__all__ = ["KINDS", "Downstream", "LatentRef", "PathDictionaries", "latent_paths", "parse_downstream",
           "parse_latent"]

#: dictionary kinds: the site each one reads
KINDS = {"sae": "resid_post", "tc": "mlp_in"}
_KIND_NAMES = {"sae": "residual SAE", "tc": "transcoder"}
_SPEC = "'L<layer>:<sae|tc>:<latent>' (e.g. 'L6:sae:123')"
_LAYER_RE = re.compile(r"(?:L|layer)(\d+)")


def _check_kind(kind: Any, where: str) -> str:
    if kind not in KINDS:
        raise CircuitError(f"{where}: kind {kind!r} must be 'sae' (residual SAE at resid_post) or 'tc' "
                           "(transcoder at mlp_in)")
    return kind


def _check_index(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CircuitError(f"{where}: {what} must be a non-negative integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class LatentRef:
    """One latent of one dictionary: ``LatentRef(6, "sae", 123)`` is ``"L6:sae:123"``.

    Attributes:
        layer: the layer of the dictionary.
        kind: ``"sae"`` (residual SAE reading ``layer{L}.resid_post``) or ``"tc"`` (transcoder reading
            ``layer{L}.mlp_in`` and writing ``layer{L}.mlp_out``).
        latent: the latent's index.

    Raises:
        CircuitError: a negative or non-integer layer or latent, or an unknown kind.
    """

    layer: int
    kind: str
    latent: int

    def __post_init__(self) -> None:
        """Validate the fields (see the class docstring)."""
        where = f"LatentRef({self.layer!r}, {self.kind!r}, {self.latent!r})"
        _check_index(self.layer, "layer", where)
        _check_kind(self.kind, where)
        _check_index(self.latent, "latent", where)

    @property
    def spec(self) -> str:
        """The spec string, ``"L6:sae:123"``."""
        return f"L{self.layer}:{self.kind}:{self.latent}"

    @property
    def site(self) -> str:
        """The site the dictionary reads (``"layer6.resid_post"`` or ``"layer6.mlp_in"``)."""
        return f"layer{self.layer}.{KINDS[self.kind]}"


def parse_latent(spec: str | LatentRef) -> LatentRef:
    """``"L6:sae:123"`` (or ``"layer6:tc:7"``) -> `LatentRef`; a `LatentRef` is returned as is.

    Args:
        spec: the spec string or a `LatentRef`.

    Returns:
        The reference.

    Raises:
        CircuitError: the spec is not three ``:``-separated parts, or a part is malformed (the message
            names the part).
    """
    if isinstance(spec, LatentRef):
        return spec
    if not isinstance(spec, str):
        raise CircuitError(f"latent spec: expected a string {_SPEC} or a LatentRef, got {type(spec).__name__}")
    parts = spec.strip().split(":")
    if len(parts) != 3:
        raise CircuitError(f"latent spec {spec!r}: expected {_SPEC}, got {len(parts)} part(s)")
    layer_s, kind, latent_s = (p.strip() for p in parts)
    m = _LAYER_RE.fullmatch(layer_s)
    if m is None:
        raise CircuitError(f"latent spec {spec!r}: layer part {layer_s!r} must be L<integer> (e.g. L6)")
    if kind not in KINDS:
        raise CircuitError(f"latent spec {spec!r}: kind part {kind!r} must be 'sae' (residual SAE at "
                           "resid_post) or 'tc' (transcoder at mlp_in)")
    if not latent_s.isdigit():
        raise CircuitError(f"latent spec {spec!r}: latent part {latent_s!r} must be a non-negative integer")
    return LatentRef(int(m.group(1)), kind, int(latent_s))


@dataclass(frozen=True)
class Downstream:
    """The downstream read point: a layer and (optionally) which of its dictionaries is encoded.

    Attributes:
        layer: the layer.
        kind: ``"sae"``, ``"tc"`` or None (the layer's only dictionary).
    """

    layer: int
    kind: str | None = None

    def __post_init__(self) -> None:
        """Validate the fields."""
        _check_index(self.layer, "layer", f"Downstream({self.layer!r}, {self.kind!r})")
        if self.kind is not None:
            _check_kind(self.kind, f"Downstream({self.layer!r}, {self.kind!r})")


def parse_downstream(spec: int | str | Downstream) -> Downstream:
    """``12``, ``"12"``, ``"layer12"``, ``"L12"``, ``"layer12.resid_post"``, ``"layer12.mlp_in"``,
    ``"L12:sae"`` or ``"L12:tc"`` -> `Downstream`.

    Raises:
        CircuitError: anything else (the message shows the accepted forms).
    """
    if isinstance(spec, Downstream):
        return spec
    if isinstance(spec, int) and not isinstance(spec, bool):
        return Downstream(spec)
    forms = "12, 'layer12', 'L12', 'layer12.resid_post', 'layer12.mlp_in', 'L12:sae' or 'L12:tc'"
    if not isinstance(spec, str):
        raise CircuitError(f"downstream {spec!r}: expected a layer ({forms})")
    text = spec.strip()
    if text.isdigit():
        return Downstream(int(text))
    sites = {v: k for k, v in KINDS.items()}
    m = re.fullmatch(r"(?:L|layer)(\d+)(?:([.:])(\w+))?", text)
    if m is None:
        raise CircuitError(f"downstream {spec!r}: expected a layer ({forms})")
    layer, sep, tail = int(m.group(1)), m.group(2), m.group(3)
    if tail is None:
        return Downstream(layer)
    kind = sites.get(tail) if sep == "." else tail if tail in KINDS else None
    if kind is None:
        raise CircuitError(f"downstream {spec!r}: {tail!r} is not a dictionary site; expected {forms}")
    return Downstream(layer, kind)


# ---- dictionaries --------------------------------------------------------------------------------


def _parse_site(text: str) -> tuple[int, str] | None:
    """``"layer6.resid_post"`` -> ``(6, "resid_post")`` (any kind, ``mlp_in`` included); None otherwise."""
    m = re.fullmatch(r"layer(\d+)\.(\w+)", text.strip())
    return (int(m.group(1)), m.group(2)) if m else None


def _site_of(sae: Any) -> tuple[int, str] | None:
    site = getattr(sae.cfg, "site", None)
    return _parse_site(site) if isinstance(site, str) and site else None


def _kind_of_site(site_kind: str, where: str) -> str:
    for kind, read in KINDS.items():
        if read == site_kind:
            return kind
    raise CircuitError(f"{where} reads {site_kind}: paths take residual SAEs at resid_post or transcoders "
                       "at mlp_in")


@dataclass
class PathDictionaries:
    """The dictionaries `latent_paths` can edit and read, by kind and layer.

    Attributes:
        sae: ``{layer: SAE}``, residual SAEs reading ``layer{L}.resid_post``.
        tc: ``{layer: SAE}``, transcoders reading ``layer{L}.mlp_in`` and writing ``layer{L}.mlp_out``.
    """

    sae: dict[int, Any]
    tc: dict[int, Any]

    def get(self, kind: str, layer: int) -> Any:
        """The dictionary of ``kind`` at ``layer``.

        Raises:
            CircuitError: there is none (the message says how to pass one).
        """
        found = getattr(self, kind).get(layer)
        if found is None:
            have = ", ".join(f"L{k}" for k in sorted(getattr(self, kind))) or "none"
            raise CircuitError(f"no {_KIND_NAMES[kind]} for layer {layer} (have: {have}); pass "
                               f"dictionaries={{'{kind}': {{{layer}: ...}}}}")
        return found

    @classmethod
    def coerce(cls, dictionaries: Any) -> PathDictionaries:
        """Read the accepted forms into one `PathDictionaries`.

        Accepted: a `PathDictionaries`; ``{"sae": {...}, "tc": {...}}`` (either key optional) whose
        values map a layer (``6``) or a site (``"layer6.resid_post"`` / ``"layer6.mlp_in"``) to an SAE,
        or are sequences of SAEs naming their site; a flat ``{layer or site: SAE}`` or sequence of SAEs,
        each sorted by its site (``cfg.site``).

        Raises:
            CircuitError: an SAE whose site contradicts its key or its kind, one that names no site where
                the kind or layer must come from it, two for one place, or a site other than resid_post
                and mlp_in.
        """
        if isinstance(dictionaries, PathDictionaries):
            return dictionaries
        out = cls(sae={}, tc={})
        if isinstance(dictionaries, Mapping) and dictionaries and set(dictionaries) <= set(KINDS):
            for kind, group in dictionaries.items():
                for key, sae in _items(group, f"dictionaries[{kind!r}]"):
                    out._add(key, sae, kind)
        else:
            for key, sae in _items(dictionaries, "dictionaries"):
                out._add(key, sae, None)
        return out

    def _add(self, key: Any, sae: Any, kind: str | None) -> None:
        where = f"dictionary {key!r}" if key is not None else f"dictionary {getattr(sae.cfg, 'site', None)!r}"
        layer = key_kind = None
        if isinstance(key, int) and not isinstance(key, bool):
            layer = key
        elif isinstance(key, str):
            parsed = _parse_site(key)
            if parsed is None and not key.isdigit():
                raise CircuitError(f"{where}: the key must be a layer or a site like 'layer6.resid_post'")
            layer, key_kind = (int(key), None) if parsed is None else (parsed[0], _kind_of_site(parsed[1], where))
        site = _site_of(sae)
        site_kind = _kind_of_site(site[1], f"{where} (cfg.site {sae.cfg.site!r})") if site else None
        kinds = {k for k in (kind, key_kind, site_kind) if k is not None}
        if len(kinds) > 1:
            raise CircuitError(f"{where}: given as a {', '.join(_KIND_NAMES[k] for k in sorted(kinds))} at once "
                               f"(cfg.site {sae.cfg.site!r})")
        if not kinds:
            raise CircuitError(f"{where}: cfg.site names no site; pass it under 'sae' or 'tc' "
                               "(dictionaries={'sae': {layer: ...}, 'tc': {layer: ...}})")
        if site is not None and layer is not None and site[0] != layer:
            raise CircuitError(f"{where}: given for layer {layer} but its cfg.site is {sae.cfg.site!r}")
        if layer is None:
            layer = site[0] if site is not None else getattr(sae.cfg, "layer", None)
        if layer is None:
            raise CircuitError(f"{where}: names no layer; pass {{layer: sae}}")
        (k,) = kinds
        group = getattr(self, k)
        if layer in group:
            raise CircuitError(f"two {_KIND_NAMES[k]}s for layer {layer}")
        group[int(layer)] = sae


def _items(group: Any, where: str) -> list[tuple[Any, Any]]:
    if isinstance(group, Mapping):
        return list(group.items())
    if isinstance(group, Iterable) and not isinstance(group, (str, bytes)):
        return [(None, sae) for sae in group]
    raise CircuitError(f"{where}: expected a mapping {{layer: SAE}} or a sequence of SAEs, got "
                       f"{type(group).__name__}")


# ---- prompts ----------------------------------------------------------------------------------------


def _prompt_rows(prompts: Any) -> list[Any]:
    """Prompt rows from a prompt-dataset JSONL path, or texts / rows / dicts (scores optional)."""
    from interpkit.sources import PromptRow, read_prompt_dataset

    if isinstance(prompts, (str, os.PathLike)):
        rows = read_prompt_dataset(prompts, scores_optional=True)
        if not rows:
            raise CircuitError(f"prompts {os.fspath(prompts)}: the file has no prompts")
        return rows
    rows = []
    for i, p in enumerate(prompts):
        if isinstance(p, PromptRow):
            rows.append(p)
        elif isinstance(p, str):
            rows.append(PromptRow(prompt_id=i, text=p))
        elif isinstance(p, Mapping):
            rows.append(PromptRow.from_dict(p, scores_optional=True))
        else:
            raise CircuitError(f"prompts[{i}]: expected a text, a PromptRow or a dict, got {type(p).__name__}")
    if not rows:
        raise CircuitError("prompts: none given")
    ids = [r.prompt_id for r in rows]
    if len(set(ids)) != len(ids):
        raise CircuitError("prompts: duplicate prompt_id values")
    return rows


# ---- the computation --------------------------------------------------------------------------------


def _encode(sae: Any, x: Any) -> tuple[Any, Any]:
    """``(pre, codes)`` float ``[n, d_sae]`` of model activations ``x [n, d]``."""
    import torch

    with torch.no_grad():
        xs = x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
        pre, codes = sae.pre_activations(xs), sae.encode(xs)
    return pre.float(), codes.float()


def _decoder_rows(sae: Any, kind: str, latent: int, x: Any) -> Any:
    """The latent's decoder row in the model's units at each position, ``[n, d]`` (``W_dec[j] / s``)."""
    import torch

    with torch.no_grad():
        xs = x.to(device=sae.W_enc.device, dtype=sae.W_enc.dtype)
        out_scale = getattr(sae, "_out_scale", None)  # an SAE's input scale; a transcoder's output scale
        if out_scale is not None:
            s = out_scale(xs)
        else:
            s = getattr(sae.cfg, "norm_scaling_factor_out", None) if kind == "tc" else None
            s = sae._scale(xs) if s is None else float(s)
        row = sae.W_dec[latent].unsqueeze(0) / s  # s: a float, or [n, 1] for a per-row normalisation
        return row.expand(x.shape[0], -1).to(device=x.device, dtype=x.dtype)


def _position_mask(positions: Any, n: int) -> Any:
    import torch

    mask = torch.zeros(n, dtype=torch.bool)
    if positions == "all":
        mask[:] = True
        return mask
    for p in positions:
        q = p + n if p < 0 else p
        if 0 <= q < n:
            mask[q] = True
    return mask


def _read_index(read: Any, first: int, n: int) -> list[int]:
    if read == "after":
        return list(range(first, n))
    if read == "last":
        return [n - 1]
    q = read + n if read < 0 else read
    return [q] if 0 <= q < n else []


def _check_settings(mode: str, strength: Any, positions: Any, read: Any, n_random: int, n_boot: int,
                    ci: float) -> None:
    if mode not in ("ablate", "steer"):
        raise CircuitError(f"mode {mode!r} must be 'ablate' or 'steer'")
    if mode == "steer" and strength is None:
        raise CircuitError("mode 'steer' needs a strength (the multiple of the decoder row added)")
    if mode == "ablate" and strength is not None:
        raise CircuitError("strength is for mode 'steer'; 'ablate' removes the latent's own contribution")
    if positions != "all" and (isinstance(positions, (str, bytes)) or not all(
            isinstance(p, int) and not isinstance(p, bool) for p in positions)):
        raise CircuitError(f"positions {positions!r} must be 'all' or a list of token positions (ints)")
    if read not in ("after", "last") and (isinstance(read, bool) or not isinstance(read, int)):
        raise CircuitError(f"read {read!r} must be 'after', 'last' or a token position (int)")
    if isinstance(n_random, bool) or not isinstance(n_random, int) or n_random < 0:
        raise CircuitError(f"n_random {n_random!r} must be a non-negative integer")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise CircuitError(f"n_boot {n_boot!r} must be a positive integer")
    if not 0.0 < float(ci) < 1.0:
        raise CircuitError(f"ci {ci!r} must be between 0 and 1")


def latent_paths(model: Any, upstream: str | LatentRef, downstream: int | str | Downstream, prompts: Any, *,
                 dictionaries: Any, mode: str = "ablate", strength: float | None = None,
                 positions: str | Sequence[int] = "all", read: str | int = "after", n_random: int = 8,
                 n_boot: int = 1000, ci: float = 0.95, seed: int = 0, max_length: int | None = None,
                 check: bool = True) -> Any:
    """The causal effect of one upstream latent on every latent of a downstream dictionary.

    Per prompt: a clean run, a **total** run (the edit; everything after it recomputed) and a **direct**
    run: the edit with the MLP outputs of layers ``L+1 .. M`` (downstream residual SAE at resid_post M)
    or ``L+1 .. M-1`` (downstream transcoder at mlp_in M) held at their clean values, while the
    residual stream, the attention layers (patterns included) and the norms are recomputed. indirect =
    total − direct. See the module docstring for the edit and the measured quantity.

    Args:
        model: a `~interpkit.models.ModelWrapper` over a local HF Llama-family decoder (or a
            `ReplacementModel`).
        upstream: the edited latent, ``"L6:sae:123"`` / ``"L6:tc:123"`` or a `LatentRef`.
        downstream: the read point, a layer (``12``, ``"layer12"``) or a `Downstream`; its dictionary
            (residual SAE at resid_post M, or transcoder at mlp_in M) is encoded. When the layer has
            both, name one (``"layer12.resid_post"``, ``"layer12.mlp_in"``).
        prompts: the evaluation prompts: a prompt-dataset JSONL path, or texts / `PromptRow` / dicts.
        dictionaries: the SAEs (see `PathDictionaries.coerce`): ``{"sae": {layer: SAE}, "tc": {layer: SAE}}``.
        mode: ``"ablate"`` (remove ``a_j · d_j`` where the latent is active) or ``"steer"``.
        strength: ``"steer"`` only: the multiple of the decoder row added.
        positions: ``"all"`` or token positions (negative from the end) the edit is restricted to.
        read: which positions the effect is averaged over: ``"after"`` (every position at or after the
            first edited one), ``"last"``, or one position.
        n_random: same-norm random-direction controls per prompt.
        n_boot: bootstrap resamples of the prompts.
        ci: the interval's level.
        seed: seeds the random directions and the bootstrap.
        max_length: truncate prompts to this many tokens.
        check: first compare the replica's logits with the model's (`ReplacementModel.check`).

    Returns:
        A `~interpkit.circuits._paths_result.PathResult`.

    Raises:
        CircuitError: a malformed spec or setting, a missing or mis-sized dictionary, a downstream read
            point before the upstream write point, or no prompt on which the edit touches anything.
        RecordError: a malformed prompt file (the message names the file and line).
    """
    import numpy as np
    import torch

    from ._paths_result import PathResult, summarize
    from ._replacement import ReplacementModel

    up, down = parse_latent(upstream), parse_downstream(downstream)
    _check_settings(mode, strength, positions, read, n_random, n_boot, ci)
    dicts = PathDictionaries.coerce(dictionaries)
    rm = model if isinstance(model, ReplacementModel) else ReplacementModel(model)
    for what, layer in (f"upstream {up.spec}", up.layer), (f"downstream layer {down.layer}", down.layer):
        if layer >= rm.n_layers:
            raise CircuitError(f"{what}: the model has layers 0..{rm.n_layers - 1}")
    up_sae = dicts.get(up.kind, up.layer)
    if down.kind is None:
        have = [k for k in KINDS if down.layer in getattr(dicts, k)]
        if len(have) != 1:
            raise CircuitError(f"downstream layer {down.layer}: " + (
                f"has both a residual SAE and a transcoder; name one (layer{down.layer}.resid_post or "
                f"layer{down.layer}.mlp_in)" if have else "no dictionary; pass dictionaries={'sae': "
                f"{{{down.layer}: ...}}}} or {{'tc': {{{down.layer}: ...}}}}"))
        down = Downstream(down.layer, have[0])
    down_sae = dicts.get(down.kind, down.layer)
    for ref, sae in ((f"upstream {up.spec}", up_sae), (f"downstream layer{down.layer}.{KINDS[down.kind]}", down_sae)):
        d_out = getattr(sae.cfg, "d_out", None) or sae.cfg.d_in
        if sae.cfg.d_in != rm.d_model or d_out != rm.d_model:
            raise CircuitError(f"{ref}: the dictionary's widths are {sae.cfg.d_in} → {d_out}, the model's "
                               f"residual stream is {rm.d_model}")
    if up.latent >= up_sae.cfg.d_sae:
        raise CircuitError(f"upstream {up.spec}: the dictionary has latents 0..{up_sae.cfg.d_sae - 1}")
    last_frozen = down.layer if down.kind == "sae" else down.layer - 1
    if (down.kind == "sae" and down.layer < up.layer) or (down.kind == "tc" and down.layer <= up.layer):
        raise CircuitError(f"downstream layer{down.layer}.{KINDS[down.kind]} is read before upstream {up.spec} "
                           f"writes (layer{up.layer}.mlp_out)")
    frozen = list(range(up.layer + 1, last_frozen + 1))
    rows = _prompt_rows(prompts)
    if check:
        rm.check(rows[0].text if max_length is None else rm.tokenize(rows[0].text)[:max_length].tolist())
    gen = torch.Generator().manual_seed(int(seed))
    up_site, down_site = KINDS[up.kind], KINDS[down.kind]
    d_sae = down_sae.cfg.d_sae
    effects: dict[str, list[Any]] = {k: [] for k in ("total", "direct", "total_pre", "direct_pre", "clean")}
    ctrl = {"total": np.zeros((n_random, d_sae)), "total_pre": np.zeros((n_random, d_sae))}
    info: list[dict[str, Any]] = []
    for row in rows:
        ids = rm.tokenize(row.text)
        if max_length is not None:
            ids = ids[:max_length]
        n = int(ids.shape[0])
        clean = rm.run(ids)
        x_up = clean[up_site][up.layer]
        d_rows = _decoder_rows(up_sae, up.kind, up.latent, x_up)
        mask = _position_mask(positions, n).to(x_up.device)
        if mode == "ablate":
            act = _encode(up_sae, x_up)[1][:, up.latent].to(device=x_up.device, dtype=x_up.dtype)
            mask &= act != 0
            delta = -act.unsqueeze(1) * d_rows
        else:
            delta = float(strength) * d_rows
        delta = delta * mask.unsqueeze(1).to(delta.dtype)
        edited = torch.nonzero(mask).flatten().tolist()
        entry = {"prompt_id": row.prompt_id, "n_tokens": n, "edited_positions": edited, "read_positions": [],
                 "edit_norm": float(delta.norm()), "status": "ok"}
        info.append(entry)
        if not edited:
            entry["status"] = "inactive" if mode == "ablate" else "no edited position"
            continue
        idx = _read_index(read, edited[0], n)
        if not idx:
            entry["status"] = "read position out of range"
            continue
        entry["read_positions"] = idx
        pre_c, codes_c = _encode(down_sae, clean[down_site][down.layer][idx])

        def _change(out: Any, pre_c: Any = pre_c, codes_c: Any = codes_c, idx: list[int] = idx) -> tuple[Any, Any]:
            pre, codes = _encode(down_sae, out[down_site][down.layer][idx])
            return (codes - codes_c).mean(0).cpu().numpy(), (pre - pre_c).mean(0).cpu().numpy()

        total, total_pre = _change(rm.run(ids, {up.layer: delta}))
        if frozen:
            # each frozen MLP output replaced by its clean value, whatever the edited run feeds that MLP
            hold = {k: (lambda m_in, m_out, v=clean["mlp_out"][k]: v) for k in frozen}
            direct, direct_pre = _change(rm.run(ids, {up.layer: delta}, mlp_edits=hold))
        else:
            direct, direct_pre = total, total_pre
        for key, value in (("total", total), ("direct", direct), ("total_pre", total_pre),
                           ("direct_pre", direct_pre), ("clean", codes_c.mean(0).cpu().numpy())):
            effects[key].append(value)
        norms = delta.norm(dim=-1, keepdim=True)
        for r in range(n_random):
            u = torch.randn(rm.d_model, generator=gen).to(device=delta.device, dtype=delta.dtype)
            c_codes, c_pre = _change(rm.run(ids, {up.layer: norms * (u / u.norm())}))
            ctrl["total"][r] += c_codes
            ctrl["total_pre"][r] += c_pre
    used = len(effects["total"])
    if used == 0:
        reasons = sorted({e["status"] for e in info})
        raise CircuitError(f"upstream {up.spec}: no prompt of {len(rows)} was edited and read "
                           f"({', '.join(reasons)}); nothing to measure")
    arrays = {k: np.stack(v).astype(np.float32) for k, v in effects.items()}
    controls = {k: (v / used).astype(np.float32) for k, v in ctrl.items()}
    settings = {
        "mode": mode, "strength": strength, "positions": positions if positions == "all" else list(positions),
        "read": read, "n_random": n_random, "n_boot": n_boot, "ci": float(ci), "seed": int(seed),
        "max_length": max_length, "direct_frozen_mlp_layers": frozen,
        "model": getattr(rm.wrapper, "name", None) or type(rm.hf).__name__,
        "n_prompts": len(rows), "n_used": used,
    }
    frame = summarize(arrays, controls, n_boot=n_boot, ci=float(ci), seed=int(seed))
    return PathResult(
        upstream=up, downstream=down, frame=frame, settings=settings, prompts=info, effects=arrays,
        controls=controls, effect_latents=np.arange(d_sae), d_sae=d_sae,
    )
