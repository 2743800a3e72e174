"""Per-layer transcoders: one dictionary per layer from the MLP's input to its output.

`train_transcoders` trains, for each requested layer ``L``, a transcoder reading
``layer{L}.mlp_in`` (the post-norm residual the MLP sees) and reconstructing ``layer{L}.mlp_out``,
through `~interpkit.sae.train_sae`. Every layer's two sites are read in the same forward passes:
one `~interpkit.sae.ModelSource` reads them all into one activation cache and each transcoder
trains on a view of its two columns (`ModelSource.with_sites`), so the model runs over the texts
once, not once per layer. With ``out`` each transcoder is written to ``out/layer{L}/`` (native
format, ``metrics.json``, checkpoints) and ``out/transcoders.json`` indexes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._base import SAE
from ._data import ModelSource, as_texts
from ._train import TrainResult, _jsonable, train_sae

__all__ = ["INDEX_NAME", "read_transcoder_index", "train_transcoders"]

INDEX_NAME = "transcoders.json"
INDEX_FORMAT = "interpkit.transcoders"
INDEX_VERSION = 1


def _layers(model: Any, layers: Sequence[int] | None) -> list[int]:
    n = int(model.n_layers)
    chosen = list(range(n)) if layers is None else [int(layer) for layer in layers]
    if not chosen:
        raise ValueError("train_transcoders needs at least one layer")
    bad = [layer for layer in chosen if not 0 <= layer < n]
    if bad:
        raise ValueError(f"layers {bad} out of range: the model has {n} layers (0..{n - 1})")
    if len(set(chosen)) != len(chosen):
        raise ValueError(f"layers {chosen} repeat a layer")
    return chosen


def train_transcoders(
    model: Any,
    texts: Any,
    *,
    layers: Sequence[int] | None = None,
    out: str | os.PathLike[str] | None = None,
    pooling: str = "tokens",
    max_length: int | None = 128,
    max_tokens: int | None = None,
    model_batch_size: int = 8,
    eval_fraction: float = 0.1,
    seed: int = 0,
    log: Any = None,
    **train_kwargs: Any,
) -> dict[int, TrainResult]:
    """Train one transcoder per layer, ``layer{L}.mlp_in`` -> ``layer{L}.mlp_out``.

    Args:
        model: an interpkit ``ModelWrapper`` (or a name `~interpkit.models.load_model` understands).
        texts: texts, `PromptRow` s, or a prompt-dataset ``.jsonl`` path.
        layers: the layers (default: every layer).
        out: folder; each transcoder goes to ``out/layer{L}/`` and ``out/transcoders.json``
            indexes them (layers, paths, sites, metrics), written atomically after each layer.
        pooling: rows: ``"tokens"`` (one per token, the usual for transcoders) or a pooling.
        max_length: tokens per text.
        max_tokens: training rows per epoch at most.
        model_batch_size: texts per forward pass.
        eval_fraction: share of texts held out (the same texts for every layer).
        seed: seeds every transcoder (and the held-out split).
        log: called with one-line progress messages.
        **train_kwargs: anything else `~interpkit.sae.train_sae` takes (``architecture``,
            ``latent_dim``, ``k``, ``epochs``, ``batch_size``, ``lr``, ``preset``, ...).

    Returns:
        ``{layer: TrainResult}`` in the order of ``layers``.

    Raises:
        ValueError: no layer, a layer out of range or repeated, a model without an MLP input or
            output site, or a `train_sae` argument that does not apply (``site``,
            ``target_site``, ``texts``).
    """
    for name in ("site", "target_site", "layer", "texts", "source"):
        if name in train_kwargs:
            raise ValueError(f"train_transcoders sets {name!r} itself (layer{{L}}.mlp_in -> layer{{L}}.mlp_out); "
                             "use train_sae for other sites")
    if isinstance(model, str):
        from interpkit.models import load_model

        model = load_model(model)
    chosen = _layers(model, layers)
    pairs = {layer: (f"layer{layer}.mlp_in", f"layer{layer}.mlp_out") for layer in chosen}
    read = [site for pair in pairs.values() for site in pair]
    first_in, first_out = pairs[chosen[0]]
    shared = ModelSource(model, as_texts(texts), first_in, target_site=first_out, read_sites=read, pooling=pooling,
                         batch_size=model_batch_size, max_length=max_length, eval_fraction=eval_fraction, seed=seed,
                         max_tokens=max_tokens)
    say = log or (lambda _msg: None)
    root = None if out is None else Path(out)
    results: dict[int, TrainResult] = {}
    for layer in chosen:
        site, target = pairs[layer]
        say(f"transcoder {site} -> {target}")
        view = shared.with_sites(site, target)
        results[layer] = train_sae(view, seed=seed, out=None if root is None else root / f"layer{layer}", log=log,
                                   model_batch_size=model_batch_size, max_length=max_length,
                                   eval_fraction=eval_fraction, **train_kwargs)
        if root is not None and results[layer].out is not None:
            _write_index(root, results, pairs, getattr(model, "name", None))
    return results


def _write_index(root: Path, results: dict[int, TrainResult], pairs: dict[int, tuple[str, str]],
                 model_name: Any) -> None:
    from interpkit._io import atomic_write_text

    entries = []
    for layer, res in results.items():
        metrics = {k: v for k, v in res.metrics.items() if isinstance(v, int | float | str | type(None))}
        entries.append({"layer": layer, "path": f"layer{layer}", "site": pairs[layer][0], "site_out": pairs[layer][1],
                        "architecture": res.sae.cfg.architecture, "d_sae": res.sae.d_sae, "metrics": metrics})
    payload = {"format": INDEX_FORMAT, "version": INDEX_VERSION,
               "model": model_name if isinstance(model_name, str) else None,
               "layers": list(results), "transcoders": entries}
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / INDEX_NAME, json.dumps(_jsonable(payload), indent=1) + "\n")


def read_transcoder_index(path: str | os.PathLike[str]) -> dict[int, Path]:
    """``{layer: folder}`` of a `train_transcoders` output (its folder or its ``transcoders.json``).

    Raises:
        FileNotFoundError: no index at ``path``.
        ValueError: an index that is not ``interpkit.transcoders`` version 1, or an entry without
            ``layer`` / ``path`` (the message names the file and the entry).
    """
    p = Path(path)
    index = p / INDEX_NAME if p.is_dir() else p
    if not index.is_file():
        raise FileNotFoundError(f"no {INDEX_NAME} at {p}")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{index}: cannot read JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT or data.get("version") != INDEX_VERSION:
        raise ValueError(f"{index}: not a {INDEX_FORMAT} index of version {INDEX_VERSION}")
    found: dict[int, Path] = {}
    for i, entry in enumerate(data.get("transcoders") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("layer"), int) \
                or not isinstance(entry.get("path"), str):
            raise ValueError(f"{index}: transcoders[{i}] needs an integer 'layer' and a string 'path'")
        found[entry["layer"]] = index.parent / entry["path"]
    return found


def load_transcoders(path: str | os.PathLike[str], *, device: Any = "cpu") -> dict[int, SAE]:
    """``{layer: transcoder}`` from a `train_transcoders` folder (or its ``transcoders.json``) or a
    circuit-tracer set's YAML config (`~interpkit.sae.load_transcoder_set`).

    Raises:
        FileNotFoundError: nothing at ``path``.
        ValueError: a bad index or transcoder file (the message names it).
    """
    from ._formats import load_sae
    from ._formats_foreign import load_transcoder_set

    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        return load_transcoder_set(p, device=device)
    if not p.exists():
        raise FileNotFoundError(f"no transcoders at {p} (a train_transcoders folder or a circuit-tracer YAML)")
    return {layer: load_sae(folder, device=device) for layer, folder in sorted(read_transcoder_index(p).items())}
