"""Fixtures for the integration tier: the packaged real models, loaded once per session."""

from __future__ import annotations

import pytest


def _packaged(name: str, backend: str):
    from interpkit.models import PackagedModelMissing, load_model

    try:
        return load_model(name, backend)
    except PackagedModelMissing as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2_tl():
    """SmolLM2-135M-Instruct behind TransformerLens (converted from the GGUF on first use)."""
    return _packaged("smollm2-135m", "transformer_lens")


@pytest.fixture(scope="session")
def smollm2_nnsight():
    """SmolLM2-135M-Instruct behind nnsight."""
    return _packaged("smollm2-135m", "nnsight")
