"""StreamOptions: validation, keyword merging, the functions that take it, and the cache keys it feeds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_stream import SITE, TEXTS, tiny_wrapper  # noqa: E402

from interpkit.sources import StreamOptions  # noqa: E402
from interpkit.sources._cache import ActivationCache  # noqa: E402
from interpkit.sources._stream import stream_activations  # noqa: E402
from interpkit.sources.directions import DirectionSet, direction_table  # noqa: E402
from interpkit.sources.neurons import neuron_table  # noqa: E402

ROWS = ["the cat sat on the mat", "a dog", "red blue big", "cat or dog"]


@pytest.fixture(scope="module")
def model():
    return tiny_wrapper()


@pytest.fixture(scope="module")
def sae():
    from interpkit.sae import SAEConfig, make_sae

    return make_sae(SAEConfig(architecture="topk", d_in=16, d_sae=32, k=4, site=SITE), seed=0)


def test_defaults_are_stream_activations_defaults():
    opts = StreamOptions()
    assert (opts.batch_size, opts.max_length, opts.exclude_positions, opts.chat_template, opts.prepend_bos,
            opts.progress, opts.memory_budget_mb, opts.spill_dir, opts.sort_by_length) == (
        8, 128, ("bos",), False, True, True, 512.0, None, True)
    assert StreamOptions.fields() == ("batch_size", "max_length", "exclude_positions", "chat_template",
                                      "prepend_bos", "progress", "memory_budget_mb", "spill_dir",
                                      "sort_by_length")
    assert StreamOptions(exclude_positions="massive").exclude_positions == ("massive",)
    assert StreamOptions(exclude_positions=["bos", "massive"]).exclude_positions == ("bos", "massive")
    assert StreamOptions(max_length=None).max_length is None
    assert type(StreamOptions(batch_size=np.int64(3)).batch_size) is int
    with pytest.raises(AttributeError):
        opts.batch_size = 4  # type: ignore[misc]
    assert hash(opts) == hash(StreamOptions())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be >= 1"),
        ({"batch_size": True}, "batch_size must be >= 1"),
        ({"max_length": 0}, "max_length must be None or an integer >= 1"),
        ({"max_length": 12.0}, "max_length must be None or an integer >= 1"),
        ({"memory_budget_mb": 0}, "memory_budget_mb must be a positive finite number"),
        ({"memory_budget_mb": -1.0}, "memory_budget_mb must be a positive finite number"),
        ({"memory_budget_mb": float("nan")}, "memory_budget_mb must be a positive finite number"),
        ({"memory_budget_mb": "512"}, "memory_budget_mb must be a positive finite number"),
        ({"exclude_positions": ("eos",)}, r"exclude_positions must be among \('bos', 'chat_template', 'massive'\)"),
        ({"exclude_positions": "eos"}, "exclude_positions must be among"),
    ],
)
def test_validation_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StreamOptions(**kwargs)
    with pytest.raises(ValueError, match=message):  # an override is validated the same way
        StreamOptions.merge(StreamOptions(), caller="f", **kwargs)


def test_merge_base_default_and_overrides():
    base = StreamOptions(batch_size=2, max_length=9)
    assert StreamOptions.merge(None, caller="f") == StreamOptions()
    assert StreamOptions.merge(base, caller="f") is base
    assert StreamOptions.merge(base, caller="f", max_length=5) == StreamOptions(batch_size=2, max_length=5)
    quiet = StreamOptions(progress=False)
    assert StreamOptions.merge(None, caller="f", default=quiet, batch_size=3) == StreamOptions(batch_size=3,
                                                                                             progress=False)
    assert StreamOptions.merge(base, caller="f", default=quiet).progress is True  # a given stream wins whole
    with pytest.raises(TypeError, match=r"f\(\) takes stream=StreamOptions\(\.\.\.\), got dict"):
        StreamOptions.merge({"batch_size": 2}, caller="f")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"f\(\) got an unexpected keyword arguments 'a', 'b'; .*batch_size"):
        StreamOptions.merge(None, caller="f", a=1, b=2)


def _calls(model, sae):
    dirs = DirectionSet(names=("d",), vectors=np.ones((1, 16), np.float32), site=SITE, kind="other")
    from interpkit.sae import encode_texts, sae_table

    return {
        "stream_activations": lambda **kw: stream_activations(model, ROWS, SITE, **kw),
        "ActivationCache.get_or_compute": lambda **kw: ActivationCache("unused").get_or_compute(
            model, ROWS, SITE, **kw),
        "neuron_table": lambda **kw: neuron_table(model, ROWS, SITE, **kw),
        "direction_table": lambda **kw: direction_table(model, ROWS, dirs, **kw),
        "encode_texts": lambda **kw: encode_texts(sae, model, ROWS, **kw),
        "sae_table": lambda **kw: sae_table(sae, model, ROWS, **kw),
    }


def test_unknown_keyword_names_the_function_and_the_fields(model, sae):
    for name, call in _calls(model, sae).items():
        with pytest.raises(TypeError) as err:
            call(max_lenght=32, progress=False)
        msg = str(err.value)
        assert msg.startswith(f"{name}() got an unexpected keyword argument 'max_lenght' "
                              "(did you mean 'max_length'?)"), msg
        assert "StreamOptions fields: batch_size, max_length, exclude_positions" in msg
        with pytest.raises(TypeError, match=rf"{name.split('.')[-1]}\(\) takes stream=StreamOptions"):
            call(stream={"batch_size": 2})


def test_stream_plus_override_equals_loose_keywords(model, sae):
    from interpkit.sae import encode_texts, sae_table

    loose = {"batch_size": 2, "max_length": 5, "exclude_positions": ("bos", "massive"), "progress": False}
    base = StreamOptions(batch_size=2, max_length=64, exclude_positions=("bos", "massive"), progress=False)
    a = neuron_table(model, ROWS, SITE, neurons=[1, 4], top_tokens=2, **loose)
    b = neuron_table(model, ROWS, SITE, neurons=[1, 4], top_tokens=2, stream=base, max_length=5)
    np.testing.assert_array_equal(a.dense(), b.dense())
    assert a.meta == b.meta and a.meta["max_length"] == 5
    assert a.tokens.equals(b.tokens)
    assert not np.array_equal(a.dense(), neuron_table(model, ROWS, SITE, neurons=[1, 4], stream=base).dense())
    s1 = stream_activations(model, ROWS, SITE, pooling="mean", **loose)
    s2 = stream_activations(model, ROWS, SITE, pooling="mean", stream=base, max_length=5)
    np.testing.assert_array_equal(s1[SITE, "mean"].to_numpy(), s2[SITE, "mean"].to_numpy())
    t1 = sae_table(sae, model, ROWS, **loose)
    t2 = sae_table(sae, model, ROWS, stream=base, max_length=5)
    np.testing.assert_array_equal(t1.dense(), t2.dense())
    assert t1.meta == t2.meta
    np.testing.assert_array_equal(encode_texts(sae, model, ROWS, **loose),
                                  encode_texts(sae, model, ROWS, stream=base, max_length=5))


def test_sae_functions_default_to_no_progress_bar(model, sae, capsys):
    from interpkit.sae import encode_texts, sae_table

    encode_texts(sae, model, ROWS[:2])
    sae_table(sae, model, ROWS[:2])
    assert "activations @" not in capsys.readouterr().err
    encode_texts(sae, model, ROWS[:2], progress=True)
    assert "activations @" in capsys.readouterr().err
    neuron_table(model, ROWS[:2], SITE, neurons=[0])  # neuron and direction tables show one by default
    assert "activations @" in capsys.readouterr().err


def test_prepend_bos_off_reaches_token_maxima_meta_and_reader(model):
    from interpkit.explain import feature_reader

    table = neuron_table(model, ROWS, SITE, neurons=[2, 7], top_tokens=2, prepend_bos=False, progress=False)
    assert table.meta["prepend_bos"] is False
    assert "prepend_bos" not in neuron_table(model, ROWS, SITE, neurons=[2], progress=False).meta
    words = [r.split() for r in ROWS]  # no BOS: position 0 is the first word
    for rec in table.tokens.itertuples():
        assert rec.token == words[rec.example_idx][rec.token_index]
    reader = feature_reader(table, f"{SITE}:n7", model)
    for i, text in enumerate(ROWS):
        assert reader([text])[0].max() == pytest.approx(table.dense()[i, 1], abs=1e-5)


PINNED_KEYS = {  # computed before StreamOptions existed: a change here orphans every cache on disk
    "max": "c4203b210145321f99d258978abf5ba10907628b3a54fd11db418e189f66f2c3",
    "mean": "f55c7f22c9ba7c22bddfc06349e14e9580cdffbfca9f8749982439b1a9d7dd06",
}


def test_cache_keys_are_pinned_and_ignore_pass_only_options(model, tmp_path, monkeypatch):
    import interpkit.sources._cache as cache_mod

    monkeypatch.setattr(cache_mod, "model_fingerprint", lambda m: "0" * 64)
    cache = ActivationCache(tmp_path)
    texts = ["the cat sat", "a dog"]
    res = cache.get_or_compute(model, texts, SITE, pooling=("max", "mean"), max_length=16,
                               exclude_positions=("massive", "bos"), progress=False)
    assert set(res.computed) == {(SITE, "max"), (SITE, "mean")}
    cfgs = {json.loads(p.read_text())["pooling"]: json.loads(p.read_text()) for p in tmp_path.glob("*/*/cfg.json")}
    assert {p: c["key"] for p, c in cfgs.items()} == PINNED_KEYS
    assert cfgs["mean"]["spec"] == {"model": "tiny-gpt2", "site": SITE, "pooling": "mean", "max_length": 16,
                                    "exclude_positions": ["bos", "massive"], "chat_template": False,
                                    "prepend_bos": True, "projection": None}
    assert cache_mod.content_key({"model": "tiny-gpt2", "weights": "0" * 64, "site": SITE,
                                  "dataset": cache_mod.dataset_hash(texts), "pooling": "mean",
                                  **{k: v for k, v in cfgs["mean"]["spec"].items()
                                     if k not in ("model", "site", "pooling")}}) == PINNED_KEYS["mean"]
    # options that only change how the pass runs are not in the key: the same entries serve them
    again = cache.get_or_compute(model, texts, SITE, pooling=("max", "mean"),
                                 stream=StreamOptions(max_length=16, exclude_positions=("bos", "massive"),
                                                      batch_size=1, memory_budget_mb=1.0,
                                                      sort_by_length=False, progress=False),
                                 spill_dir=tmp_path / "spill")
    assert again.computed == ()
    assert cache.get_or_compute(model, texts, SITE, pooling="mean", max_length=16, progress=False,
                                exclude_positions=("massive", "bos"), prepend_bos=False).computed == ((SITE, "mean"),)


def test_inputs_still_validated_where_they_were(model):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        stream_activations(model, TEXTS, SITE, batch_size=0, progress=False)
    with pytest.raises(ValueError, match="exclude_positions"):
        neuron_table(model, ROWS, SITE, exclude_positions="eos", progress=False)
