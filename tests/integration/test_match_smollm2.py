"""SmolLM2: a concept's DiffMean direction at layer 10 matches its layer-20 direction and validates.

One AxBench concept ("terms related to communist ideology and notable figures") and one control
concept, each with a DiffMean direction at layers 10 and 20 from a few train texts; fingerprints
are their projections over held-out probe texts; the one-to-one match pairs each concept with
itself, and steering both layers with the communism direction on the same neutral prompts raises
the next-token mass of the concept's contrast tokens in both, beyond orthogonal same-norm controls.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.slow

TASK = Path("/work/shared/data/axbench-concept10/prod_2b_l10_v1")
SITES = ("layer10.resid_post", "layer20.resid_post")
CONCEPTS = (8, 1)  # communist ideology; audio product specifications (both "text" genre)
PROMPTS = ["The history of the region shows that", "In the early twentieth century, many people",
           "The book describes how the leaders", "After the war, the government decided to",
           "Workers in the factories began to", "The newspaper article argued that the"]


@pytest.fixture(scope="module")
def data():
    if not TASK.is_dir():
        pytest.skip(f"AxBench data not found at {TASK}")
    train = pd.read_parquet(TASK / "train_data.parquet")
    probe = pd.read_parquet(TASK / "latent_eval_data.parquet")
    meta = {json.loads(x)["concept_id"]: json.loads(x)["concept"] for x in (TASK / "metadata.jsonl").open()}
    return train, probe, meta


def test_layer10_layer20_concept_match_validates(smollm2_tl, data):
    from interpkit.causal import CausalFeature, LogitTargetMetric
    from interpkit.match import FeatureFingerprint, match_fingerprints
    from interpkit.match._validate import target_tokens_from_contrast, validate_matches
    from interpkit.sources import DirectionSet, contrast_direction, stream_activations

    model = smollm2_tl
    train, probe, meta = data
    neg = train[(train.concept_id == -1) & (train.concept_genre == "text")].output.tolist()[:12]
    pos = {c: train[train.concept_id == c].output.tolist()[:12] for c in CONCEPTS}
    probes = [t for c in CONCEPTS for t in probe[(probe.concept_id == c) & (probe.category == "positive")].output[:6]]
    probes += probe[(probe.category == "negative") & (probe.concept_genre == "text")].output.tolist()[:6]
    texts = [t for c in CONCEPTS for t in pos[c]] + neg + probes
    res = stream_activations(model, texts, list(SITES), pooling="mean", max_length=32,
                             exclude_positions=("bos", "massive"), progress=False)
    n_train = len(texts) - len(probes)
    sets, fps = {}, {}
    for site in SITES:
        acts = res[site, "mean"].to_numpy()
        names, vectors = [], []
        for c in CONCEPTS:
            rows = [texts.index(t) for t in pos[c]] + list(range(2 * 12, n_train))
            vectors.append(contrast_direction(acts[rows], [1] * 12 + [0] * len(neg)))
            names.append(f"c{c}")
        sets[site] = DirectionSet(names=tuple(names), vectors=np.stack(vectors), site=site, kind="contrast")
        fps[site] = [FeatureFingerprint(feature_id=n, label=meta[int(n[1:])], activation_signature=acts[n_train:] @ v)
                     for n, v in zip(names, vectors, strict=True)]
    result = match_fingerprints(fps[SITES[0]], fps[SITES[1]], weights={"activation": 1.0})
    assert {(m.left_id, m.right_id) for m in result.matches} == {("c8", "c8"), ("c1", "c1")}

    tokens = target_tokens_from_contrast(model, pos[8], neg, k=20)
    metric = LogitTargetMetric(meta[8], tokens)
    only = {site: {"c8": CausalFeature(feature_id="c8", site=site, direction=sets[site].vectors[0])}
            for site in SITES}  # the other match is left untested (not_run), which halves the cost
    out = validate_matches(result, model, model, only[SITES[0]], only[SITES[1]], PROMPTS, metric,
                           top_n=2, strength=1.0, n_controls=3)
    communism = next(m for m in out.matches if m.left_id == "c8")
    steer = communism.validation["kinds"]["steer"]
    assert communism.validated is True, communism.validation
    assert steer["left"]["effect"] > 0 and steer["right"]["effect"] > 0
    assert 1 / 3 <= steer["ratio"] <= 3
    other = next(m for m in out.matches if m.left_id == "c1")
    assert other.validated is None and other.validation["reasons"] == ["not_run"]
