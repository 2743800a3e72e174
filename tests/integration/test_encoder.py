"""The packaged sentence encoder: cosine geometry and the on-disk cache of long text lists."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def encoder_cls():
    from interpkit.models import PackagedModelMissing, SentenceEncoder
    from interpkit.models.zoo import packaged_path

    try:
        packaged_path("minilm-l6")
    except PackagedModelMissing as error:
        pytest.skip(str(error))
    return SentenceEncoder


def test_similarity_is_cosine_and_ranks_related_text_first(encoder_cls):
    enc = encoder_cls()
    emb = enc.encode(["a small cat", "a kitten", "quarterly tax law"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    sims = enc.similarity("a small cat", ["a kitten", "quarterly tax law"])[0]
    assert sims[0] > sims[1] + 0.3


def test_long_lists_are_cached_on_disk_and_read_back(encoder_cls, tmp_path, monkeypatch):
    texts = [f"sentence number {i} about topic {i % 7}" for i in range(70)]
    enc = encoder_cls(cache=tmp_path, cache_min=64)
    first = enc.encode(texts)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    enc.encode(texts[:10])  # short lists are not cached
    assert len(list(tmp_path.glob("*.npy"))) == 1

    def boom(_texts):
        raise AssertionError("a cached list must not be encoded again")

    again = encoder_cls(cache=tmp_path, cache_min=64)
    monkeypatch.setattr(again, "_encode", boom)
    np.testing.assert_array_equal(again.encode(texts), first)
    with pytest.raises(AssertionError, match="must not be encoded"):
        again.encode([*texts[:-1], "a different last text"])  # another list is another key
