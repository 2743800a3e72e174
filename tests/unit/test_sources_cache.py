"""Activation cache: a second run reuses the first's activations without running the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_stream import SITE, TEXTS, tiny_wrapper  # noqa: E402

from interpkit.sources._cache import ActivationCache, default_cache_root, model_fingerprint  # noqa: E402
from interpkit.sources._stream import stream_activations  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return tiny_wrapper()


class CaptureCounter:
    """Counts ``capture`` calls on a wrapper for the duration of a ``with`` block."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __enter__(self):
        real = self.model.capture

        def counting(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        self.model.capture = counting
        return self

    def __exit__(self, *exc):
        del self.model.capture


def test_second_call_does_not_run_the_model(model, tmp_path):
    cache = ActivationCache(tmp_path)
    texts = [t for t in TEXTS if t][:6]
    with CaptureCounter(model) as first:
        res1 = cache.get_or_compute(model, texts, SITE, pooling=("max", "mean"), progress=False)
    assert first.calls > 0 and set(res1.computed) == {(SITE, "max"), (SITE, "mean")}
    with CaptureCounter(model) as second:
        res2 = cache.get_or_compute(model, texts, SITE, pooling=("max", "mean"), progress=False)
    assert second.calls == 0 and res2.computed == ()
    for p in ("max", "mean"):
        np.testing.assert_array_equal(res1[SITE, p].to_numpy(), res2[SITE, p].to_numpy())
        assert all(path.suffix == ".safetensors" for path in res2[SITE, p].shards)
    assert res2[SITE, "max"].to_chunk().argmax is not None
    direct = stream_activations(model, texts, SITE, pooling="mean", progress=False)
    np.testing.assert_allclose(res2[SITE, "mean"].to_numpy(), direct[SITE, "mean"].to_numpy(), atol=1e-6)


def test_only_missing_poolings_are_computed(model, tmp_path):
    cache = ActivationCache(tmp_path)
    cache.get_or_compute(model, TEXTS[:3], SITE, pooling="max", progress=False)
    res = cache.get_or_compute(model, TEXTS[:3], SITE, pooling=("max", "last"), progress=False)
    assert res.computed == ((SITE, "last"),)


def test_key_changes_with_data_settings_and_weights(model, tmp_path):
    cache = ActivationCache(tmp_path)
    cache.get_or_compute(model, TEXTS[:3], SITE, pooling="mean", progress=False)
    for kwargs in ({"max_length": 4}, {"exclude_positions": ()}, {"texts": TEXTS[1:4]}):
        texts = kwargs.pop("texts", TEXTS[:3])
        res = cache.get_or_compute(model, texts, SITE, pooling="mean", progress=False, **kwargs)
        assert res.computed == ((SITE, "mean"),), kwargs
    other = tiny_wrapper(seed=1)
    assert model_fingerprint(other) != model_fingerprint(model)
    assert model_fingerprint(model) == model_fingerprint(model)
    res = cache.get_or_compute(other, TEXTS[:3], SITE, pooling="mean", progress=False)
    assert res.computed == ((SITE, "mean"),)


def test_entry_layout_and_corrupt_entry_is_a_miss(model, tmp_path):
    cache = ActivationCache(tmp_path)
    cache.get_or_compute(model, TEXTS[:3], SITE, pooling="last", progress=False)
    (cfg_path,) = list(tmp_path.glob("*/*/cfg.json"))
    cfg = json.loads(cfg_path.read_text())
    assert cfg["kind"] == "activation_cache_entry" and cfg["site"] == SITE and cfg["n_examples"] == 3
    assert cfg["spec"]["pooling"] == "last" and not list(tmp_path.glob("*/.*"))  # no temp folders left
    cfg_path.write_text("{not json")
    res = cache.get_or_compute(model, TEXTS[:3], SITE, pooling="last", progress=False)
    assert res.computed == ((SITE, "last"),)


def test_edits_bypass_the_cache(model, tmp_path):
    from interpkit.models import Ablate

    cache = ActivationCache(tmp_path)
    clean = cache.get_or_compute(model, TEXTS[:3], SITE, pooling="mean", progress=False)
    with model.edits(Ablate(site="layer0.resid_post")):
        edited = cache.get_or_compute(model, TEXTS[:3], SITE, pooling="mean", progress=False)
    assert not np.allclose(clean[SITE, "mean"].to_numpy(), edited[SITE, "mean"].to_numpy())
    again = cache.get_or_compute(model, TEXTS[:3], SITE, pooling="mean", progress=False)
    assert again.computed == ()
    np.testing.assert_array_equal(clean[SITE, "mean"].to_numpy(), again[SITE, "mean"].to_numpy())


def test_tokens_refused_and_default_root(model, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="pooled"):
        ActivationCache(tmp_path).get_or_compute(model, TEXTS[:2], SITE, pooling="tokens", progress=False)
    monkeypatch.setenv("INTERPKIT_CACHE", str(tmp_path / "c"))
    assert default_cache_root() == tmp_path / "c" / "activations"
    assert ActivationCache().root == tmp_path / "c" / "activations"
