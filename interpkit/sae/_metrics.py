"""How good an SAE is: reconstruction and sparsity on activation rows, and LM loss recovered.

`evaluate_sae` reads held-out rows ``[n, d_in]``: fraction of variance unexplained (FVU), MSE,
cosine, L0, and the dead and dense latent fractions. `lm_loss_recovered` splices the SAE's
reconstruction into the model at its site and compares the next-token cross-entropy with the
clean model and with zero (and mean) ablation of the site:
``recovered = (ce_zero - ce_sae) / (ce_zero - ce_clean)`` (1 = as good as the clean model, 0 = as
bad as deleting the site). `format_metrics` prints either dict as a short table.

A transcoder is measured against its target: `evaluate_sae` takes ``targets`` (the output
site's rows), and `lm_loss_recovered` replaces the output site (``cfg.site_out``, e.g. the MLP's
output) by the transcoder's prediction from the input site read in the same forward pass, and
ablates the output site for the baselines.

Example:
    >>> import torch
    >>> from interpkit.sae import SAEConfig, make_sae
    >>> sae = make_sae(SAEConfig(architecture="topk", d_in=8, d_sae=32, k=4), seed=0)
    >>> m = evaluate_sae(sae, torch.randn(64, 8))
    >>> 0.0 < m["fvu"] and m["l0"] <= 4
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from ._base import SAE

__all__ = ["evaluate_sae", "format_metrics", "lm_loss_recovered"]


def _as_rows(rows: Any, d_in: int, what: str = "rows", width: str = "d_in") -> torch.Tensor:
    import torch

    t = torch.as_tensor(np.asarray(rows) if not isinstance(rows, torch.Tensor) else rows)
    if t.dim() != 2 or t.shape[1] != d_in:
        raise ValueError(f"evaluate_sae needs {what} of shape [n, {d_in}] (the SAE's {width}), got {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError("evaluate_sae needs at least one row")
    return t


def evaluate_sae(
    sae: SAE,
    rows: Any,
    *,
    dense_threshold: float = 0.1,
    batch_size: int = 4096,
    train_mean: Any = None,
    targets: Any = None,
) -> dict[str, float]:
    """Reconstruction and sparsity metrics of ``sae`` on activation rows (e.g. a held-out split).

    All sums run in float64 over batches, so ``rows`` may be large. The SAE runs in eval mode
    (its training flag is restored after).

    Args:
        sae: the SAE.
        rows: ``[n, d_in]`` activations (torch tensor or numpy array), in the model's units.
        dense_threshold: a latent is dense when it fires on more than this fraction of rows.
        batch_size: rows encoded at once.
        train_mean: ``[d_out]`` mean of the training targets (an SAE: rows), for
            ``fvu_mean_baseline`` (None: the mean of the evaluated targets, which gives 1 up to rounding).
        targets: a transcoder's ``[n, d_out]`` rows of its output site (row ``i`` the output for
            row ``i``); the errors (``fvu``, ``mse``, ``cosine``) are against them. An SAE's target is
            ``rows`` itself.

    Returns:
        ``fvu`` (``sum ||x - x̂||² / sum ||x - mean(x)||²``, i.e. 1 - explained variance), ``mse``
        (mean squared error per element), ``cosine`` (mean cosine of x and x̂ per row; a zero
        vector counts as cosine 0), ``l0`` (mean number of non-zero codes per row),
        ``dead_fraction`` (latents never non-zero on ``rows``), ``dense_fraction`` (latents
        non-zero on more than ``dense_threshold`` of rows), ``baseline_fvu_mean`` (1.0: the FVU of
        predicting the rows' mean, by definition), ``fvu_mean_baseline`` (the FVU of predicting
        ``train_mean``, computed), ``n_rows``, ``d_in``, ``d_sae`` (and ``d_out`` for a transcoder).

    Raises:
        ValueError: ``rows`` is not ``[n, d_in]`` or is empty; a transcoder without ``targets``,
            ``targets`` given to an SAE, or targets not ``[n, d_out]``.
    """
    import torch

    from ._features import inference

    x_all = _as_rows(rows, sae.d_in)
    n = int(x_all.shape[0])
    if sae.is_transcoder and targets is None:
        raise ValueError(f"{sae!r} is a transcoder: evaluate_sae needs targets= (rows of its output site)")
    if targets is not None and not sae.is_transcoder:
        raise ValueError(f"targets= is for a transcoder; {sae!r} reconstructs its own input")
    d_out = sae.d_out
    y_all = x_all if targets is None else _as_rows(targets, d_out, "targets", "d_out")
    if y_all.shape[0] != n:
        raise ValueError(f"evaluate_sae: {n} rows but {y_all.shape[0]} targets; they must be row-aligned")
    param = sae.W_enc
    mean = torch.zeros(d_out, dtype=torch.float64)
    for start in range(0, n, batch_size):
        mean += y_all[start : start + batch_size].to(torch.float64).sum(0)
    mean /= n
    ref = mean if train_mean is None else torch.as_tensor(np.asarray(train_mean), dtype=torch.float64).reshape(-1)
    if ref.shape != (d_out,):
        raise ValueError(f"train_mean must have shape [{d_out}], got {tuple(ref.shape)}")
    sse = sst = s_ref = cos_sum = l0_sum = 0.0
    fired = torch.zeros(sae.d_sae, dtype=torch.float64)
    with torch.no_grad(), inference(sae):
        for start in range(0, n, batch_size):
            x = x_all[start : start + batch_size].to(device=param.device)
            recon, codes = sae(x)
            x64, r64 = y_all[start : start + batch_size].to("cpu", torch.float64), recon.to("cpu", torch.float64)
            sse += float((x64 - r64).pow(2).sum())
            sst += float((x64 - mean).pow(2).sum())
            s_ref += float((x64 - ref).pow(2).sum())
            denom = (x64.norm(dim=-1) * r64.norm(dim=-1)).clamp_min(1e-30)
            cos = torch.where(denom > 1e-30, (x64 * r64).sum(-1) / denom, torch.zeros_like(denom))
            cos_sum += float(cos.sum())
            active = (codes != 0).to("cpu")
            l0_sum += float(active.sum())
            fired += active.sum(0).to(torch.float64)
    freq = fired / n
    out = {
        "fvu": sse / sst if sst > 0 else math.nan,
        "mse": sse / (n * d_out),
        "cosine": cos_sum / n,
        "l0": l0_sum / n,
        "dead_fraction": float((fired == 0).to(torch.float64).mean()),
        "dense_fraction": float((freq > dense_threshold).to(torch.float64).mean()),
        "baseline_fvu_mean": 1.0,
        "fvu_mean_baseline": s_ref / sst if sst > 0 else math.nan,
        "n_rows": n,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
    }
    if sae.is_transcoder:
        out["d_out"] = d_out
    return out


def _texts(texts: Iterable[Any]) -> list[str]:
    return [t if isinstance(t, str) else t.text for t in texts]


def _ce_sums(logits: torch.Tensor, input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[float, int]:
    """Summed next-token cross-entropy over positions whose own and next token are real."""
    import torch

    keep = (mask[:, :-1] & mask[:, 1:]).to(logits.device)
    lp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -lp.gather(-1, input_ids[:, 1:].to(logits.device).unsqueeze(-1)).squeeze(-1)
    return float(nll[keep].sum()), int(keep.sum())


def _kl_sum(clean: torch.Tensor, other: torch.Tensor, mask: torch.Tensor) -> float:
    """Summed KL(clean || other) of the next-token distributions over real positions."""
    import torch

    p = torch.log_softmax(clean.float(), dim=-1)
    q = torch.log_softmax(other.float(), dim=-1)
    kl = (p.exp() * (p - q)).sum(-1)
    return float(kl[mask.to(kl.device)].sum())


def lm_loss_recovered(
    sae: SAE,
    model: Any,
    texts: Sequence[Any],
    site: str | None = None,
    *,
    batch_size: int = 8,
    max_length: int | None = 128,
    splice_bos: bool = False,
    mean_ablation: bool = True,
) -> dict[str, float]:
    """Next-token loss of ``model`` with the SAE's reconstruction spliced in at ``site``.

    Four runs over the same tokens: clean, SAE reconstruction in place of the site activation
    (`~interpkit.models.Apply`), zero ablation of the site (``Ablate(mode="zero")``) and, with
    ``mean_ablation``, the site's mean activation over the texts' spliced positions.

    Positions: every text starts with BOS (``model.tokenize``). Like SAELens (``evals.py``
    ``get_recons_loss``, which keeps the clean activation at ignored special tokens), the BOS
    position keeps its clean activation unless ``splice_bos``: its activation is usually an
    outlier (an attention sink) that SAEs are trained without (`stream_activations` drops BOS by
    default), and replacing it would measure that rather than the SAE. Zero and mean ablation edit
    exactly the positions the splice edits, so the three runs compare like with like (SAELens
    zero-ablates BOS too; here that would inflate ``recovered``). Every other real position is
    spliced; padding sits after the real tokens of its row and cannot reach them (causal
    attention), and is masked out of the loss. The loss averages, over all texts' tokens, the
    cross-entropy of predicting each real token from the positions before it (the BOS position's
    prediction included: it is the same in every run, so it moves the losses but not
    ``recovered``). The SAE runs in eval mode.

    A transcoder is spliced at its output site: the output site's activation is replaced by the
    transcoder's prediction from the input site of the same forward pass (`transcoder_splice`), and
    the zero and mean ablations are of the output site.

    Args:
        sae: the SAE (its ``d_in`` must equal the site's width).
        model: an interpkit ``ModelWrapper``.
        texts: strings or rows with a ``text`` attribute.
        site: the site the SAE reads (default: from the SAE's config, see ``sae_site``); a
            transcoder's output site comes from ``cfg.site_out``.
        batch_size: texts per forward pass.
        max_length: truncation length in tokens (BOS included).
        splice_bos: also splice (and ablate) the BOS position.
        mean_ablation: also run mean ablation.

    Returns:
        ``ce_clean``, ``ce_sae``, ``ce_zero`` (and ``ce_mean``), ``recovered`` (and
        ``recovered_mean`` against mean ablation; NaN when the ablation does not change the
        loss), ``kl_sae`` and ``kl_zero`` (mean KL divergence of the next-token distribution from
        the clean one, over the same positions) and ``n_tokens`` (predictions averaged).

    Raises:
        ValueError: no texts, no predictable token, or a width mismatch between SAE and site.
    """
    import torch

    from interpkit.models import Ablate

    from ._edits import splice, transcoder_splice
    from ._features import _site
    from ._site import sae_site_out

    texts = _texts(texts)
    if not texts:
        raise ValueError("lm_loss_recovered needs at least one text")
    site = _site(sae, site, model)
    edited = sae_site_out(sae, model) if sae.is_transcoder else site  # where the splice and ablations act
    bos_id = getattr(model.tokenizer, "bos_token_id", None)

    def batches():
        for start in range(0, len(texts), batch_size):
            batch = model.tokenize(texts[start : start + batch_size], max_length=max_length)
            ids = batch.input_ids
            has_bos = bos_id is not None and bool((ids[:, 0] == bos_id).all())
            first = 0 if splice_bos or not has_bos else 1
            yield batch, tuple(range(first, ids.shape[1]))

    mean = None
    if mean_ablation:
        total, count = torch.zeros(sae.d_out, dtype=torch.float64), 0
        with torch.no_grad():
            for batch, positions in batches():
                acts = model.capture(batch, edited)[edited]
                mask = batch.attention_mask.bool().to(acts.device).clone()
                mask[:, : positions[0] if positions else mask.shape[1]] = False
                total += acts[mask].to("cpu", torch.float64).sum(0)
                count += int(mask.sum())
        mean = (total / max(count, 1)).to(torch.float32)

    sums = {"clean": 0.0, "sae": 0.0, "zero": 0.0, "mean": 0.0}
    kls = {"sae": 0.0, "zero": 0.0}
    n_tokens = n_kl = 0
    with torch.no_grad():
        for batch, positions in batches():
            ids, mask = batch.input_ids, batch.attention_mask.bool()
            clean = model.forward(batch)
            ce, n = _ce_sums(clean, ids, mask)
            sums["clean"] += ce
            n_tokens += n
            spliced = (transcoder_splice(sae, site, edited, positions=positions) if sae.is_transcoder
                       else (splice(sae, site, positions=positions),))
            runs = {"sae": spliced, "zero": (Ablate(edited, mode="zero", positions=positions),)}
            if mean is not None:
                runs["mean"] = (Ablate(edited, mode="mean", mean=mean, positions=positions),)
            for name, edits in runs.items():
                with model.edits(*edits):
                    logits = model.forward(batch)
                sums[name] += _ce_sums(logits, ids, mask)[0]
                if name in kls:
                    kls[name] += _kl_sum(clean, logits, mask)
            n_kl += int(mask.sum())
    if n_tokens == 0:
        raise ValueError("lm_loss_recovered: no text has a token to predict (each needs >= 1 token after BOS)")
    ce = {k: v / n_tokens for k, v in sums.items()}

    def ratio(base: float) -> float:
        gap = base - ce["clean"]
        return (base - ce["sae"]) / gap if gap != 0 else math.nan

    out = {"ce_clean": ce["clean"], "ce_sae": ce["sae"], "ce_zero": ce["zero"], "recovered": ratio(ce["zero"])}
    if mean is not None:
        out["ce_mean"] = ce["mean"]
        out["recovered_mean"] = ratio(ce["mean"])
    out["kl_sae"] = kls["sae"] / n_kl
    out["kl_zero"] = kls["zero"] / n_kl
    out["n_tokens"] = n_tokens
    return out


_ORDER = ("fvu", "fvu_mean_baseline", "mse", "cosine", "l0", "dead_fraction", "dense_fraction",
          "ce_clean", "ce_sae", "ce_zero", "ce_mean", "recovered", "recovered_mean", "kl_sae", "kl_zero")


def format_metrics(metrics: Mapping[str, Any], *, title: str | None = "SAE metrics") -> str:
    """A short two-column table of ``metrics`` for the terminal (known keys first, then the rest).

    Floats print with 4 significant digits (fractions ending in ``_fraction`` as percentages);
    nested values and ``None`` are skipped.

    Example:
        >>> print(format_metrics({"fvu": 0.123456, "dead_fraction": 0.25, "n_rows": 10}))
        SAE metrics
          fvu             0.1235
          dead_fraction   25.0%
          n_rows          10
    """
    keys = [k for k in _ORDER if k in metrics] + [k for k in metrics if k not in _ORDER]
    lines = [] if title is None else [title]
    shown = [(k, metrics[k]) for k in keys if isinstance(metrics[k], int | float | str | np.number)
             and not isinstance(metrics[k], bool)]
    width = max((len(k) for k, _ in shown), default=0)
    for key, value in shown:
        if isinstance(value, str):
            text = value
        elif isinstance(value, int | np.integer):
            text = str(int(value))
        elif key.endswith("_fraction") and math.isfinite(value):
            text = f"{100 * float(value):.1f}%"
        else:
            text = f"{float(value):.4g}"
        lines.append(f"  {key:<{width}}   {text}")
    return "\n".join(lines)
