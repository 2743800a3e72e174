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


#: the criterion of the shared SmolLM2 runs (AxBench 2B-L10 concept 0)
RUN_CRITERION = "references to specific dates and publication information"
#: the settings of the shared SmolLM2 runs: small enough for CI, real model, real explanations
RUN_SETTINGS = {"max_per_class": 16, "top_k": 4, "n_bootstrap": 10, "n_permutations": 200, "seed": 0}


@pytest.fixture(scope="session")
def smollm2_runs(smollm2_nnsight, tmp_path_factory):
    """Two saved `interpkit.inspect` runs of one config on SmolLM2 (``a`` and ``b``: same settings,
    so comparing them must show no change), for the tests of what a researcher does with reports
    (compare-runs, search-features, dossiers, steering artifacts). Report folders, read-only by
    convention: copy one before changing it."""
    import interpkit

    root = tmp_path_factory.mktemp("smollm2-runs")
    runs = {}
    for name in ("a", "b"):
        out = root / name
        interpkit.inspect(smollm2_nnsight, RUN_CRITERION, out=out, **RUN_SETTINGS)
        runs[name] = out
    return runs
