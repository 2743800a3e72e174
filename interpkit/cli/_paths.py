"""``interpkit paths``: SAE-to-SAE causal paths from one upstream latent to every latent of a downstream layer.

Maps its flags onto `interpkit.circuits.latent_paths` and writes the result folder (``paths.json`` +
``paths.md``, docs/circuits.md#paths). Dictionaries are given per site: ``--sae layer6.resid_post=PATH``
(residual SAEs) and ``--transcoder layer6=PATH`` (transcoders reading ``layer6.mlp_in``); a bare
``PATH`` takes the site from the SAE's own config.
"""

from __future__ import annotations

import argparse
from typing import Any

from interpkit.cli._export_records import BACKEND_CHOICES, load_model_for_cli, parse_ints

HELP = ("SAE-to-SAE causal paths: ablate or steer one latent, measure every downstream latent's total, "
        "direct and indirect change, with random controls and bootstrap intervals")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="zoo name (smollm2-135m), hub id or local folder (Llama family)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="nnsight",
                   help="activation backend (default nnsight: the HF module is used as is)")
    p.add_argument("--from", dest="upstream", required=True,
                   help="upstream latent: L<layer>:sae:<latent> (residual SAE) or L<layer>:tc:<latent> (transcoder)")
    p.add_argument("--to", dest="downstream", required=True,
                   help="downstream layer: layer12 (its one dictionary), layer12.resid_post or layer12.mlp_in")
    p.add_argument("--prompts", required=True, help="prompt JSONL: prompt_id, text (scores optional)")
    p.add_argument("--sae", action="append", default=[], metavar="[SITE=]PATH",
                   help="a residual SAE, layerN.resid_post=PATH (repeatable)")
    p.add_argument("--transcoder", action="append", default=[], metavar="[LAYER=]PATH",
                   help="a transcoder, layerN=PATH or layerN.mlp_in=PATH (repeatable)")
    p.add_argument("--out", required=True, help="folder to write paths.json and paths.md into")
    p.add_argument("--mode", choices=("ablate", "steer"), default="ablate",
                   help="ablate: remove the latent's contribution where active (default); steer: add strength x its "
                        "decoder row")
    p.add_argument("--strength", type=float, default=None, help="--mode steer: multiple of the decoder row added")
    p.add_argument("--positions", default=None,
                   help="comma-separated token positions the edit is restricted to (negative from the end; "
                        "default all)")
    p.add_argument("--read", default="after",
                   help="positions the effect is averaged over: after (at or after the first edit, default), "
                        "last, or one position")
    p.add_argument("--n-random", type=int, default=8, help="same-norm random controls per prompt (default 8)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples over prompts (default 1000)")
    p.add_argument("--ci", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-length", type=int, default=None, help="truncate prompts to this many tokens")
    p.add_argument("--top", type=int, default=20, help="latents shown and written to paths.md (default 20)")
    p.add_argument("--max-latents", type=int, default=500,
                   help="latents kept in paths.json, by rank (default 500; 0 keeps all)")


def _split(text: str, flag: str) -> tuple[str | None, str]:
    """``"SITE=PATH"`` -> ``(SITE, PATH)``; ``"PATH"`` -> ``(None, PATH)``."""
    key, sep, path = text.partition("=")
    if not sep:
        return None, text
    if not key or not path:
        raise ValueError(f"{flag} {text!r}: expected SITE=PATH or PATH")
    return key, path


def _load(text: str, flag: str) -> tuple[Any, Any]:
    from interpkit.sae import load_sae

    key, path = _split(text, flag)
    try:
        return key, load_sae(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{flag} {text!r}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"{flag} {text!r}: {exc}") from None


def _transcoder_key(key: str | None, text: str) -> str | None:
    """``layer6`` / ``L6`` / ``6`` / ``layer6.mlp_in`` -> the site ``layer6.mlp_in``."""
    import re

    if key is None:
        return None
    m = re.fullmatch(r"(?:layer|L)?(\d+)(\.mlp_in)?", key)
    if m is None:
        raise ValueError(f"--transcoder {text!r}: {key!r} is not a layer (layer6 or layer6.mlp_in)")
    return f"layer{m.group(1)}.mlp_in"


def _dictionaries(args: argparse.Namespace) -> dict[str, dict[Any, Any]]:
    from interpkit.circuits import CircuitError, PathDictionaries

    if not args.sae and not args.transcoder:
        raise ValueError("--sae / --transcoder: give the dictionaries of the upstream and downstream layers")
    out: dict[str, list[tuple[Any, Any]]] = {"sae": [], "tc": []}
    for text in args.sae:
        out["sae"].append(_load(text, "--sae"))
    for text in args.transcoder:
        key, sae = _load(text, "--transcoder")
        out["tc"].append((_transcoder_key(key, text), sae))
    groups: dict[str, dict[Any, Any]] = {"sae": {}, "tc": {}}
    flags = {"sae": "--sae", "tc": "--transcoder"}
    for kind, items in out.items():
        for key, sae in items:
            one = {kind: {key: sae} if key is not None else [sae]}
            try:
                parsed = PathDictionaries.coerce(one)
            except CircuitError as exc:
                raise ValueError(f"{flags[kind]}: {exc}") from None
            for layer, s in getattr(parsed, kind).items():
                if layer in groups[kind]:
                    raise ValueError(f"{flags[kind]}: two dictionaries for layer {layer}")
                groups[kind][layer] = s
    return groups


def _read(text: str) -> str | int:
    if text in ("after", "last"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--read {text!r}: expected after, last or a token position") from None


def run(args: argparse.Namespace) -> int:
    from interpkit.circuits import CircuitError, latent_paths, parse_downstream, parse_latent

    try:
        upstream = parse_latent(args.upstream)
    except CircuitError as exc:
        raise ValueError(f"--from: {exc}") from None
    try:
        downstream = parse_downstream(args.downstream)
    except CircuitError as exc:
        raise ValueError(f"--to: {exc}") from None
    if args.mode == "steer" and args.strength is None:
        raise ValueError("--strength: --mode steer needs one")
    if args.mode == "ablate" and args.strength is not None:
        raise ValueError("--strength: only with --mode steer")
    read = _read(args.read)
    positions = parse_ints(args.positions, "--positions") if args.positions else "all"
    for flag, value, low in (("--n-random", args.n_random, 0), ("--n-boot", args.n_boot, 1), ("--top", args.top, 0),
                             ("--max-latents", args.max_latents, 0)):
        if value < low:
            raise ValueError(f"{flag}: expected an integer >= {low}, got {value}")
    dictionaries = _dictionaries(args)
    from interpkit.sources import read_prompt_dataset

    rows = read_prompt_dataset(args.prompts, scores_optional=True)
    if not rows:
        raise ValueError(f"--prompts {args.prompts}: the file has no prompts")
    model = load_model_for_cli(args.model, args.backend)
    result = latent_paths(model, upstream, downstream, rows, dictionaries=dictionaries, mode=args.mode,
                          strength=args.strength, positions=positions, read=read, n_random=args.n_random,
                          n_boot=args.n_boot, ci=args.ci, seed=args.seed, max_length=args.max_length)
    result.save(args.out, max_latents=args.max_latents or None, top=args.top)
    s = result.settings
    print(f"{upstream.spec} -> {result.downstream_site}: {s['n_used']} of {s['n_prompts']} prompts used")
    for r in result.top(min(args.top, 10)).itertuples(index=False):
        print(f"  #{r.rank} latent {r.latent}: total {r.total:+.4g} (direct {r.direct:+.4g}, indirect "
              f"{r.indirect:+.4g}), z {r.z:.3g}")
    print(f"wrote {args.out}/paths.json and paths.md")
    return 0
