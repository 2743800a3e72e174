"""Control features for interventions: the edits a feature's effect must beat.

Three kinds, chosen by ``run_interventions(controls=...)`` (``--controls`` on the command line):

- ``random`` (the default): random directions at the feature's site with the norm of its vector.
  An effect the feature shares with them comes from the size of the edit, not its direction.
- ``matched_frequency``: controls that are *active as often* as the feature on the prompt set.
  "Active on a prompt" means the maximum over the prompt's real tokens of the projection of the
  site's activation onto the unit feature vector is above 0 (for a neuron: its activation). For a
  neuron, the controls are the other neurons of the site whose frequency is closest to its own; for
  a direction, the random same-norm directions (out of a seeded pool of candidates) whose
  frequency is closest. A feature that fires on most prompts is compared with edits that touch
  as many prompts, so a frequent feature's larger reach is not mistaken for specificity.
- ``placebo``: an on-distribution edit unrelated to the criterion: a direction of the feature's norm
  drawn from the top principal subspace of the site's token activations on the prompt set (at most
  16 components, at most a quarter of the width, weighted by their singular values), made
  orthogonal to the feature vector and to the positives-minus-negatives mean difference (so it
  separates the classes no better than chance on average). Random directions in a wide residual
  stream point mostly where the data does not vary, which the model may simply ignore; a
  placebo moves the activations along directions they really use, as far as the feature does,
  without carrying the feature or the criterion contrast. It is the stricter null.

Each control is a `CausalFeature` with ``control_of`` set; its id is ``"<feature>::control<k>"``
for random controls (the id earlier versions wrote) and ``"<feature>::<kind><k>"`` for the others,
and its records carry ``control_kind``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from interpkit.records import CONTROL_KINDS, control_id

__all__ = ["CONTROL_KINDS", "check_controls", "frequencies", "make_controls", "matched_frequency_controls",
           "placebo_controls", "random_controls", "token_activations"]

_POOL = 64  # candidate random directions per matched-frequency control
_PCS = 16  # principal components a placebo is drawn from


def check_controls(controls: Sequence[str] | str) -> tuple[str, ...]:
    """``controls`` as a tuple of known kinds (a comma-separated string is split); ValueError otherwise."""
    if isinstance(controls, str):
        controls = [c.strip() for c in controls.split(",") if c.strip()]
    out = tuple(dict.fromkeys(controls))
    bad = [c for c in out if c not in CONTROL_KINDS]
    if bad or not out:
        raise ValueError(f"controls must be among {', '.join(CONTROL_KINDS)}, got {list(controls)!r}")
    return out


def _key(feature_id: str) -> int:
    # deterministic in the id (Python's hash() is salted), so controls are stable across runs
    return sum(ord(c) * (i + 1) for i, c in enumerate(feature_id)) % (2**31)


def _make(feature: Any, kind: str, k: int, direction: np.ndarray | None = None, neuron: int | None = None) -> Any:
    from ._runner import CausalFeature

    return CausalFeature(feature_id=control_id(feature.feature_id, kind, k), site=feature.site, direction=direction,
                         neuron=neuron, control_of=feature.feature_id, control_kind=kind)


def make_controls(model: Any, feature: Any, kinds: Sequence[str] | str, n: int, texts: Sequence[str], n_pos: int,
                  *, seed: int = 0, batch_size: int = 16,
                  acts: dict[str, list[np.ndarray]] | None = None) -> list[Any]:
    """``n`` controls of ``feature`` per kind in ``kinds``, kind by kind.

    ``texts`` are the prompts the data-dependent kinds are measured on, the ``n_pos`` positives
    first; their token activations at the feature's site are read once per site (into ``acts``
    when given, so several features of one site share them). Random controls need no data.
    """
    kinds = check_controls(kinds)
    if n <= 0:
        return []
    d_model = int(model.d_model)
    acts = {} if acts is None else acts
    out: list[Any] = []
    for kind in kinds:
        if kind == "random":
            out += random_controls(feature, n, d_model=d_model, seed=seed)
            continue
        if feature.site not in acts:
            acts[feature.site] = token_activations(model, texts, feature.site, batch_size=batch_size)
        if kind == "matched_frequency":
            out += matched_frequency_controls(feature, n, d_model=d_model, acts=acts[feature.site], seed=seed)
        else:
            out += placebo_controls(feature, n, d_model=d_model, acts=acts[feature.site], n_pos=n_pos, seed=seed)
    return out


def random_controls(feature: Any, n: int, *, d_model: int, seed: int = 0) -> list[Any]:
    """``n`` random directions with the norm of ``feature``'s vector, at its site (seeded by id)."""
    norm = float(np.linalg.norm(feature.vector(d_model)))
    rng = np.random.default_rng([seed, _key(feature.feature_id)])
    out = []
    for k in range(n):
        v = rng.standard_normal(d_model)
        out.append(_make(feature, "random", k, direction=(v / np.linalg.norm(v) * norm).astype(np.float32)))
    return out


def token_activations(model: Any, texts: Sequence[str], site: str, *, batch_size: int = 16) -> list[np.ndarray]:
    """Per prompt, the ``[n_tokens, d_model]`` activations at ``site`` over its real tokens."""
    import torch

    out: list[np.ndarray] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenize(list(texts[start : start + batch_size]))
            acts = model.capture(batch, site)[site].float().cpu()
            mask = batch.attention_mask.cpu().bool()
            out.extend(acts[i][mask[i]].numpy() for i in range(acts.shape[0]))
    return out


def frequencies(acts: Sequence[np.ndarray], vectors: np.ndarray) -> np.ndarray:
    """Fraction of prompts on which each of ``vectors`` (``[k, d]``) is active (max token projection > 0)."""
    units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    active = np.stack([(a @ units.T).max(axis=0) > 0 for a in acts])
    return active.mean(axis=0)


def matched_frequency_controls(feature: Any, n: int, *, d_model: int, acts: Sequence[np.ndarray],
                               seed: int = 0) -> list[Any]:
    """``n`` controls active on as many prompts as ``feature`` (see the module docstring)."""
    rng = np.random.default_rng([seed, _key(feature.feature_id), 1])
    target = float(frequencies(acts, feature.vector(d_model)[None, :])[0])
    if feature.neuron is not None:
        pooled = np.stack([a.max(axis=0) for a in acts])
        freq = (pooled > 0).mean(axis=0)
        order = np.lexsort((rng.random(d_model), np.abs(freq - target)))  # ties broken by a seeded shuffle
        picks = [int(i) for i in order if int(i) != int(feature.neuron)][:n]
        return [_make(feature, "matched_frequency", k, neuron=i) for k, i in enumerate(picks)]
    norm = float(np.linalg.norm(feature.direction))
    pool = rng.standard_normal((max(_POOL, 4 * n), d_model))
    pool = pool / np.linalg.norm(pool, axis=1, keepdims=True) * norm
    order = np.argsort(np.abs(frequencies(acts, pool) - target), kind="stable")[:n]
    return [_make(feature, "matched_frequency", k, direction=pool[i].astype(np.float32)) for k, i in enumerate(order)]


def placebo_controls(feature: Any, n: int, *, d_model: int, acts: Sequence[np.ndarray], n_pos: int,
                     seed: int = 0) -> list[Any]:
    """``n`` placebo directions (see the module docstring); ``acts`` lists the positives first."""
    v = feature.vector(d_model).astype(np.float64)
    norm = float(np.linalg.norm(v))
    tokens = np.concatenate(list(acts)).astype(np.float64)
    pos = np.concatenate(list(acts[:n_pos])).mean(axis=0)
    neg = np.concatenate(list(acts[n_pos:])).mean(axis=0) if len(acts) > n_pos else tokens.mean(axis=0)
    # the directions a placebo must not carry: the feature and the criterion contrast, orthonormalised
    avoid = np.linalg.qr(np.stack([v, pos - neg], axis=1))[0].T
    centered = tokens - tokens.mean(axis=0)
    _, sv, vt = np.linalg.svd(centered, full_matrices=False)
    # the top components: at most _PCS, and at most a quarter of the width so that they are a real subspace
    # (at least 4, which removing the two avoided directions cannot empty)
    k_pcs = min(_PCS, max(4, d_model // 4), vt.shape[0])
    basis, scale = vt[:k_pcs], sv[:k_pcs] / sv[0]
    rng = np.random.default_rng([seed, _key(feature.feature_id), 2])
    out = []
    for k in range(n):
        u = (rng.standard_normal(k_pcs) * scale) @ basis  # weighted like the data: high-variance components lead
        u -= avoid.T @ (avoid @ u)
        if not np.linalg.norm(u) > 1e-8 * norm:  # the subspace is spanned by what it must avoid: any orthogonal one
            u = rng.standard_normal(d_model)
            u -= avoid.T @ (avoid @ u)
        out.append(_make(feature, "placebo", k, direction=(u / np.linalg.norm(u) * norm).astype(np.float32)))
    return out
