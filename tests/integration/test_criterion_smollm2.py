"""Criterion compilers on real models: MiniLM on packaged AxBench texts, SmolLM2 logit mass on units."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from interpkit.criterion import Criterion, compile_criterion, get_compiler, score_prompts, text_pool
from interpkit.sources import read_prompt_dataset

pytestmark = [pytest.mark.slow]

AUDIO = "technical specifications related to audio products and their performance"


def _auroc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


@pytest.fixture(scope="module")
def encoder():
    from interpkit.models import PackagedModelMissing, sentence_encoder

    enc = sentence_encoder("minilm-l6")
    try:
        enc.encode(["warm up"])
    except PackagedModelMissing as error:
        pytest.skip(str(error))
    return enc


@pytest.fixture(scope="module")
def audio_rows():
    pool = text_pool()
    pos = [r for r in pool if r.extra["concept"] == AUDIO]
    neg = [r for r in pool if r.extra["category"] == "negative"][::10]
    return pos, neg


def test_embedding_separates_axbench_positives(encoder, audio_rows):
    pos, neg = audio_rows
    comp = get_compiler("embedding", encoder=encoder)
    out = comp.score_texts(AUDIO, [r.text for r in pos + neg])
    labels = [1] * len(pos) + [0] * len(neg)
    assert _auroc(labels, [s.score for s in out]) > 0.9
    assert sum(s.label == "positive" for s in out[: len(pos)]) >= len(pos) // 2
    assert sum(s.label == "positive" for s in out[len(pos):]) <= 1
    assert out[0].provenance["encoder"] == "minilm-l6"


def test_embedding_compile_from_packaged_pool_finds_the_concept(encoder):
    pool = text_pool()
    pool = [r for r in pool if r.prompt_id.startswith(("prod_2b_l10_v1-c1-", "prod_2b_l10_v1-c0-"))] + [
        r for r in pool if r.extra["category"] == "negative"][::3]
    rows = compile_criterion(AUDIO, get_compiler("embedding", encoder=encoder), pool, max_per_class=10)
    positives = [r for r in rows if r.extra["criterion_label"] == "positive"]
    assert len(positives) == len(rows) - len(positives) >= 8
    own = sum(r.prompt_id.startswith("prod_2b_l10_v1-c1-") for r in positives)
    assert own >= 0.8 * len(positives)


def test_logit_compiler_on_smollm2_measurement_units(smollm2_tl):
    data = resources.files("interpkit") / "data"
    spec = json.loads((data / "measurement_units.json").read_text())
    with resources.as_file(data / "measurement_units.jsonl") as path:
        rows = read_prompt_dataset(path)
    rows = rows[:12] + rows[-12:]
    crit = Criterion(text=spec["criterion"], target_tokens=spec["target_tokens"])
    scored = score_prompts(rows, crit, get_compiler("logit", model=smollm2_tl))
    assert [r.prompt_id for r in scored] == [r.prompt_id for r in rows]
    truth = [r.criterion_score for r in rows]
    mass = np.array([r.criterion_score for r in scored])
    assert _auroc(truth, mass) > 0.85
    assert scored[0].extra["criterion_provenance"]["target_tokens"][0] == spec["target_tokens"][0]
