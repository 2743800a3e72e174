"""Per-token activations of one feature, recomputed by running the model on chosen texts.

A `FeatureReader` reproduces how the feature's table was built (site, ``max_length``, chat
template and excluded positions, read from ``table.meta``) but keeps every token instead of
pooling, so pooling its output with the table's pooling gives back the table's value for that
text. Only kept tokens are returned: BOS (and chat-template tokens when the table excluded them)
are left out here exactly as they were left out of pooling. Site activations are cached per
text, so several features read at one site (``explain_features``) share one forward pass.

Example:
    >>> from interpkit._testing import tiny_model
    >>> from interpkit.sources import neuron_table
    >>> model = tiny_model()
    >>> table = neuron_table(model, ["a cat", "the dog"], "layer1.resid_post", neurons=[3], progress=False)
    >>> reader = feature_reader(table, "layer1.resid_post:n3", model)
    >>> acts = reader(["a cat"])
    >>> reader.tokens(["a cat"])[0], bool(abs(acts[0].max() - table.column(0)[0]) < 1e-4)
    (['a', ' ', 'c', 'a', 't'], True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from interpkit.sources import StreamOptions

__all__ = ["FeatureReader", "feature_reader"]

_NEURON_ID = re.compile(r"^(?P<site>.+):n(?P<i>\d+)$")


class _SiteTokens:
    """Kept-token activations ``[n_kept, d]`` and token strings of texts at one site, cached."""

    def __init__(self, model: Any, site: str, settings: StreamOptions) -> None:
        self.model = model
        self.site = site
        self.settings = settings
        self.memo: dict[str, tuple[list[str], np.ndarray]] = {}

    def get(self, texts: Sequence[str]) -> list[tuple[list[str], np.ndarray]]:
        from interpkit.sources import stream_activations

        missing = list(dict.fromkeys(t for t in texts if t not in self.memo))
        if missing:
            result = stream_activations(self.model, missing, self.site, pooling="tokens", stream=self.settings)
            d = int(self.model.d_model)
            per_text: dict[int, tuple[list[str], list[np.ndarray]]] = {i: ([], []) for i in range(len(missing))}
            if (self.site, "tokens") in result.sets:
                chunk = result[self.site, "tokens"].to_chunk()
                d = chunk.values.shape[1]
                for row, (ex, tok) in enumerate(zip(chunk.example_idx.tolist(), chunk.tokens, strict=True)):
                    per_text[ex][0].append(tok)
                    per_text[ex][1].append(chunk.values[row])
            for i, text in enumerate(missing):
                toks, rows = per_text[i]
                values = np.stack(rows) if rows else np.zeros((0, d), np.float32)
                self.memo[text] = (toks, values.astype(np.float32, copy=False))
        return [self.memo[t] for t in texts]


class FeatureReader:
    """Per-token activations of one feature: ``reader(texts)`` -> one ``[n_kept_tokens]`` array each.

    Args:
        site_tokens: the cached site reader (built by `feature_reader`).
        transform: maps kept-token site activations ``[n, d]`` to the feature's ``[n]`` values.
        pooling: the table's pooling (``"max"``, ``"mean"`` or ``"last"``), used by `pool`.
        kind: ``"neuron"``, ``"direction"`` or ``"sae"`` (for provenance).
    """

    def __init__(self, site_tokens: _SiteTokens, transform: Any, *, pooling: str, kind: str) -> None:
        self._site_tokens = site_tokens
        self._transform = transform
        self.pooling = pooling
        self.kind = kind

    @property
    def site(self) -> str:
        """The site the feature reads."""
        return self._site_tokens.site

    def __call__(self, texts: Sequence[str]) -> list[np.ndarray]:
        """The feature's activation at each kept token of each text (float32)."""
        return [np.asarray(self._transform(a), dtype=np.float32).reshape(-1)
                for _, a in self._site_tokens.get(list(texts))]

    def tokens(self, texts: Sequence[str]) -> list[list[str]]:
        """The kept tokens of each text, aligned with `__call__`'s arrays."""
        return [list(toks) for toks, _ in self._site_tokens.get(list(texts))]

    def pool(self, acts: np.ndarray) -> float:
        """Pool one text's token activations as the table did (0.0 for a text with no kept token)."""
        if acts.size == 0:
            return 0.0
        if self.pooling == "max":
            return float(acts.max())
        if self.pooling == "mean":
            return float(acts.mean())
        return float(acts[-1])


def _settings(meta: dict[str, Any]) -> StreamOptions:
    """The streaming options a table's ``meta`` records (without a progress bar)."""
    from interpkit.sources import StreamOptions

    return StreamOptions(
        max_length=meta.get("max_length", 128),
        chat_template=bool(meta.get("chat_template", False)),
        prepend_bos=bool(meta.get("prepend_bos", True)),
        exclude_positions=meta.get("exclude_positions", ["bos"]),
        progress=False,
    )


def _feature_row(table: Any, fid: str) -> dict[str, Any]:
    j = table.feature_index(fid)
    return {k: table.features[k].iloc[j] for k in table.features.columns}


def feature_reader(
    table: Any, fid: str, model: Any, sae: Any = None, *, cache: dict[Any, Any] | None = None
) -> FeatureReader | None:
    """Build the reader of feature ``fid`` of ``table`` on ``model``, or None when impossible.

    Neurons (``"{site}:n{i}"``, ``source="neuron"``) read ``site[..., i]``; directions (a
    ``decoder_vectors`` entry and ``source="direction"``) read the projection ``a_t @ v`` as
    `~interpkit.sources.direction_table` does; SAE latents (``source="sae"``, with ``sae``
    given) encode each kept token with the SAE. Other sources (records, dumps, Neuronpedia) give
    None: their numbers did not come from this model.

    Args:
        table: the feature's `~interpkit.table.FeatureTable`.
        fid: the feature id.
        model: the interpkit ``ModelWrapper`` the table was built from.
        sae: the SAE of an SAE table.
        cache: a dict shared between readers so that features at one site share forward passes.

    Returns:
        The reader, or None.
    """
    if model is None:
        return None
    row = _feature_row(table, fid)
    meta = dict(table.meta or {})
    source = row.get("source")
    site = row.get("site") or meta.get("site")
    pooling = meta.get("pooling", "max")
    if not isinstance(site, str) or pooling not in ("max", "mean", "last"):
        return None
    transform = None
    kind = str(source)
    if source == "neuron":
        match = _NEURON_ID.match(fid)
        neuron = row.get("neuron")
        i = int(neuron) if neuron is not None and not _isnan(neuron) else int(match["i"]) if match else None
        if i is None:
            return None
        transform = _Column(i)
    elif source == "sae":
        if sae is None:
            return None
        latent = row.get("latent")
        if latent is None or _isnan(latent):
            return None
        transform = _SaeLatent(sae, int(latent))
    elif source == "direction" and fid in table.decoder_vectors:
        transform = _Projection(table.decoder_vectors[fid])
    if transform is None:
        return None
    settings = _settings(meta)
    key = (id(model), site, settings)
    shared = cache if cache is not None else {}
    if key not in shared:
        shared[key] = _SiteTokens(model, site, settings)
    return FeatureReader(shared[key], transform, pooling=pooling, kind=kind)


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and x != x


class _Column:
    def __init__(self, i: int) -> None:
        self.i = i

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a[:, self.i]


class _Projection:
    def __init__(self, v: np.ndarray) -> None:
        self.v = np.asarray(v, dtype=np.float32)

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return a @ self.v


class _SaeLatent:
    def __init__(self, sae: Any, i: int) -> None:
        self.sae, self.i = sae, i

    def __call__(self, a: np.ndarray) -> np.ndarray:
        import torch

        from interpkit.sae._features import inference

        if a.shape[0] == 0:
            return np.zeros(0, np.float32)
        with torch.no_grad(), inference(self.sae):
            codes = self.sae.encode(torch.from_numpy(np.ascontiguousarray(a)).to(self.sae.W_enc.device))
        return codes[:, self.i].float().cpu().numpy()
