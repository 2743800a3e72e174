"""SmolLM2-135M-Instruct from the zoo through both backends: agreement, chat, steering."""

from __future__ import annotations

import pytest
import torch

from interpkit.models import AddVector

pytestmark = pytest.mark.slow

PROMPTS = ["The capital of France is", "I like to eat apples and", "Water boils at"]
QUESTION = "What is the capital of France?"


def test_zoo_status_reports_the_cached_conversion(smollm2_tl):
    from interpkit.models import zoo_status

    row = next(r for r in zoo_status() if r["name"] == "smollm2-135m")
    assert row["installed"] and row["cached"]
    assert (smollm2_tl.n_layers, smollm2_tl.d_model) == (30, 576)


def test_backends_agree_on_smollm2(smollm2_tl, smollm2_nnsight):
    batch = smollm2_tl.tokenize(PROMPTS)
    a = smollm2_tl.capture(batch, "layer5.resid_post")["layer5.resid_post"]
    b = smollm2_nnsight.capture(batch, "layer5.resid_post")["layer5.resid_post"]
    assert a.shape == (3, batch.input_ids.shape[1], 576)
    assert (a - b).abs().max().item() < 1e-4


def test_chat_answer_and_steering(smollm2_tl, smollm2_nnsight):
    direction = torch.randn(576, generator=torch.Generator().manual_seed(0))
    answers = {}
    for model in (smollm2_tl, smollm2_nnsight):
        baseline = model.generate(QUESTION, chat=True, max_new_tokens=10)
        assert "Paris" in baseline[0]
        with model.edits(AddVector("layer10.resid_post", direction, strength=8.0)):
            steered = model.generate(QUESTION, chat=True, max_new_tokens=10)
        assert steered != baseline
        assert model.generate(QUESTION, chat=True, max_new_tokens=10) == baseline
        answers[model.backend] = (baseline, steered)
    assert answers["transformer_lens"] == answers["nnsight"]
