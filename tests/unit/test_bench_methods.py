"""interpkit.bench methods on a fake context with planted concept directions (and the tiny model for LM-loss methods)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from interpkit.bench._acts import TokenActs
from interpkit.bench._context import BenchContext
from interpkit.bench._task import AxBenchTask, Concept
from interpkit.bench.methods import METHODS, Fitted, fitted_table, get_method, pooled_scores
from interpkit.rank import auroc

D = 16
KEYWORDS = {0: "apple", 1: "ocean"}


def _dirs() -> dict[int, np.ndarray]:
    rng = np.random.default_rng(123)
    q, _ = np.linalg.qr(rng.standard_normal((D, D)))
    return {0: q[:, 0].astype(np.float32), 1: q[:, 1].astype(np.float32)}


def _acts(owner_concepts: list[int | None], rng: np.random.Generator) -> TokenActs:
    """Noise tokens; a text about concept c adds a random multiple of c's direction to most of its tokens."""
    dirs = _dirs()
    blocks = []
    for c in owner_concepts:
        n = int(rng.integers(4, 10))
        x = rng.standard_normal((n, D)).astype(np.float32)
        if c is not None:
            on = rng.random(n) < 0.8
            on[0] = True
            x[on] += rng.uniform(2.0, 8.0, size=(int(on.sum()), 1)).astype(np.float32) * dirs[c]
        blocks.append(x)
    lengths = np.array([len(b) for b in blocks])
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    values = np.concatenate(blocks).astype(np.float16)
    return TokenActs(values=values, offsets=offsets, token_ids=np.zeros(len(values), np.int32), site="layer1.resid_post")


class KeywordEncoder:
    """Unit embeddings from keyword presence (a stand-in for MiniLM)."""

    name = "keyword-fake"

    def encode(self, texts):
        rng = np.random.default_rng(len(texts))
        rows = np.array([[("apple" in t) * 1.0, ("ocean" in t) * 1.0, 1.0, 0.0] for t in texts])
        rows[:, 3] = 0.05 * rng.standard_normal(len(texts))
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def _sae():
    import torch

    from interpkit.sae import SAEConfig, make_sae

    sae = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=8), seed=0)
    dirs = _dirs()
    with torch.no_grad():
        sae.W_enc[:, 5] = torch.from_numpy(dirs[0])
        sae.W_dec[5] = torch.from_numpy(dirs[0])
        sae.W_enc[:, 2] = torch.from_numpy(dirs[1])
        sae.W_dec[2] = torch.from_numpy(dirs[1])
        sae.b_enc.fill_(-1.0)
    return sae


def fake_context(n_pos: int = 60, n_neg: int = 60, n_eval: int = 12, data_seed: int = 0, model=None,
                 site: str = "layer1.resid_post", **kw) -> BenchContext:
    rng = np.random.default_rng(data_seed)
    concepts = (Concept(0, "apples and fruit", "text"), Concept(1, "the ocean and waves", "text"))
    train_rows = []
    for c in (0, 1):
        train_rows += [{"input": f"tell me a story number {i}", "output": f"the {KEYWORDS[c]} is here, item {i}",
                        "concept_id": c} for i in range(n_pos)]
    train_rows += [{"input": f"say something plain {i}", "output": f"a plain sentence about chairs {i}",
                    "concept_id": -1} for i in range(n_neg)]
    train = pd.DataFrame(train_rows).assign(concept_genre="text", output_concept="x", dataset_category="instruction")
    train["category"] = np.where(train["concept_id"] >= 0, "positive", "negative")
    eval_rows = []
    for c in (0, 1):
        for cat, n in (("positive", n_eval), ("negative", n_eval), ("hard negative", n_eval // 2)):
            for i in range(n):
                text = f"the {KEYWORDS[c]} again {i}" if cat == "positive" else f"tables and lamps {i}"
                eval_rows.append({"input": f"question {i}", "output": text, "concept_id": c, "category": cat})
    evals = pd.DataFrame(eval_rows).assign(concept_genre="text")
    task = AxBenchTask(name="fake", path=None, concepts=concepts, train=train, eval=evals)
    train_owner = [c if c >= 0 else None for c in train["concept_id"]]
    eval_owner = [c if cat == "positive" else None for c, cat in zip(evals["concept_id"], evals["category"], strict=True)]
    return BenchContext(
        task=task, model=model, site=site, layer=1,
        train_texts=[f"{a}\n\n{b}" for a, b in zip(train["input"], train["output"], strict=True)],
        eval_texts=[f"{a}\n\n{b}" for a, b in zip(evals["input"], evals["output"], strict=True)],
        train_acts=_acts(train_owner, rng), eval_acts=_acts(eval_owner, rng), prefix_length=1,
        **{"encoder_spec": KeywordEncoder(), "sae_spec": _sae(), "progress": False, **kw})


@pytest.fixture(scope="module")
def ctx() -> BenchContext:
    return fake_context()


def _eval_auroc(ctx, method, fitted, cid) -> float:
    idx = ctx.eval_split(cid)
    cats = np.array(ctx.eval_categories(cid))
    keep = cats != "hard negative"
    scores = method.scores(ctx, fitted, "eval", idx)
    return float(auroc(np.asarray(scores)[keep], cats[keep] == "positive")[0])


def _cos(a, b) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_registry_names_and_labels():
    assert list(METHODS) == ["diffmean", "pca", "lat", "probe", "ssv", "reft-r1", "sae", "sae-a", "bow", "prompt",
                             "loreft", "random", "reps", "lora", "sft", "criterion"]
    assert get_method("ReFT-r1").name == "reft-r1"
    assert not get_method("lora").detects and get_method("sft").steers
    assert get_method("Criterion-only").label == "Criterion-only"
    assert not get_method("bow").steers and get_method("ssv").needs_model_grad
    with pytest.raises(ValueError, match="known: diffmean"):
        get_method("nope")


def test_option_validation():
    with pytest.raises(ValueError, match=r"'probe'.*unknown option 'foo'"):
        get_method("probe", foo=1)
    with pytest.raises(ValueError, match="'epochs'.*> 0"):
        get_method("probe", epochs=0)
    with pytest.raises(ValueError, match="integer"):
        get_method("reft-r1", topk=2.5)
    with pytest.raises(ValueError, match="one of"):
        get_method("bow", penalty="elastic")
    with pytest.raises(ValueError, match="true or false"):
        get_method("pca", align_sign="yes")
    assert get_method("probe", epochs=3).params()["epochs"] == 3
    assert get_method("ssv", max_examples=3.0).params()["max_examples"] == 3
    assert get_method("ssv").params()["epochs"] is None
    with pytest.raises(ValueError, match="integer"):
        get_method("ssv", epochs=1.5)
    bad = fake_context(options={"probe": {"epochz": 2}})
    with pytest.raises(ValueError, match=r"unknown option 'epochz' in context options"):
        get_method("probe").params(bad)
    good = fake_context(options={"probe": {"epochs": 2}})
    assert get_method("probe").params(good)["epochs"] == 2
    assert get_method("probe", epochs=5).params(good)["epochs"] == 5


@pytest.mark.parametrize("name, options", [
    ("diffmean", {}), ("probe", {"solver": "axbench", "bias": True, "lr": 0.05}), ("pca", {"align_sign": True}), ("lat", {"align_sign": True}),
])
def test_direction_methods_recover_planted_direction(ctx, name, options):
    method = get_method(name, **options)
    for cid in (0, 1):
        fitted = method.fit(ctx, cid)
        assert abs(np.linalg.norm(fitted.vector) - 1) < 1e-4
        assert _cos(fitted.vector, _dirs()[cid]) > 0.9, (name, cid)
        assert _eval_auroc(ctx, method, fitted, cid) > 0.95
        assert fitted.steer_vector is not None and fitted.score == "linear"


def test_probe_axbench_solver_has_no_bias(ctx):
    m = get_method("probe", solver="axbench")
    fitted = m.fit(ctx, 0)
    assert fitted.bias == 0.0 and len(fitted.info["loss_per_epoch"]) == 24
    assert fitted.info["loss_per_epoch"][-1] < fitted.info["loss_per_epoch"][0]
    assert _eval_auroc(ctx, m, fitted, 0) > 0.95


def test_probe_default_chooses_its_l2_strength_on_train_only(ctx):
    m = get_method("probe")
    fitted = m.fit(ctx, 0)
    info = fitted.info
    grid = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
    assert info["solver"] == "lbfgs" and set(info["cv_auroc"]) == {f"{c:g}" for c in grid}
    top = max(info["cv_auroc"], key=info["cv_auroc"].get)
    # the one-standard-error rule: the smallest C within one fold SE of the best cross-validated AUROC
    bar = info["cv_auroc"][top] - info["cv_se"][top]
    assert info["C"] == min(c for c in grid if info["cv_auroc"][f"{c:g}"] >= bar)
    assert abs(np.linalg.norm(fitted.vector) - 1) < 1e-5 and _eval_auroc(ctx, m, fitted, 0) > 0.95
    # a fixed C skips the cross-validation; the eval texts are never read while fitting
    fixed = get_method("probe", C=1e-3).fit(ctx, 0)
    assert fixed.info["C"] == 1e-3 and fixed.info["cv_auroc"] == {}
    with pytest.raises(ValueError, match="C_grid"):
        get_method("probe", C_grid=[0.1, -1])


def test_pca_records_sign_without_fixing_it(ctx):
    fitted = get_method("pca").fit(ctx, 0)
    assert fitted.info["flipped"] is False
    assert abs(_cos(fitted.vector, _dirs()[0])) > 0.9
    assert fitted.info["sign_agrees"] == (_cos(fitted.vector, _dirs()[0]) > 0)


def test_random_is_deterministic_per_seed(ctx):
    m = get_method("random")
    a, b = m.fit(ctx, 0), m.fit(ctx, 0)
    np.testing.assert_array_equal(a.vector, b.vector)
    assert not np.allclose(a.vector, m.fit(ctx, 1).vector)
    other = fake_context(seed=7)
    assert not np.allclose(a.vector, m.fit(other, 0).vector)
    assert abs(np.linalg.norm(a.vector) - 1) < 1e-5


def test_pooled_scores_match_token_scores(ctx):
    m = get_method("diffmean")
    fitted = m.fit(ctx, 0)
    full = pooled_scores(ctx, fitted, "eval")
    assert full.shape == (len(ctx.eval_texts),)
    for i in (0, 5, len(ctx.eval_texts) - 1):
        assert np.isclose(full[i], m.token_scores(ctx, fitted, i).max(), atol=1e-4)
    np.testing.assert_allclose(m.scores(ctx, fitted, "eval", [3, 1]), full[[3, 1]], atol=1e-6)


def test_sae_a_picks_planted_latent(ctx):
    m = get_method("sae-a")
    f0, f1 = m.fit(ctx, 0), m.fit(ctx, 1)
    assert f0.info["latent"] == 5 and f1.info["latent"] == 2
    assert f0.score == "relu" and f0.bias == pytest.approx(-1.0)
    assert _eval_auroc(ctx, m, f0, 0) > 0.95


def test_sae_latent_from_description_without_labels(ctx):
    m = get_method("sae")
    fitted = m.fit(ctx, 0)
    assert fitted.info["feature"] == "sae:5"
    assert fitted.info["criterion"]["n_positive"] > 0
    assert _eval_auroc(ctx, m, fitted, 0) > 0.95
    assert get_method("sae").fit(ctx, 1).info["latent"] == 2


def test_criterion_only_picks_an_associated_feature(ctx):
    m = get_method("criterion")
    fitted = m.fit(ctx, 1)
    assert fitted.info["kind"] in ("sae", "neuron", "direction")
    assert fitted.info["association"]["auroc_test"] > 0.9
    assert set(fitted.info["n_candidates"]) == {"neuron", "sae", "direction"}
    assert _eval_auroc(ctx, m, fitted, 1) > 0.95
    only_dir = get_method("criterion", neurons=False, use_sae=False).fit(ctx, 1)
    assert only_dir.info["feature"] == "direction:diffmean"
    assert _cos(only_dir.vector, _dirs()[1]) > 0.8  # DiffMean of the pseudo train half only


def test_bow_separates_keyword_texts(ctx):
    m = get_method("bow")
    fitted = m.fit(ctx, 0)
    assert fitted.vector is None and fitted.score == "text"
    assert _eval_auroc(ctx, m, fitted, 0) > 0.95
    assert m.token_scores(ctx, fitted, 0).shape == ctx.eval_acts.rows(0).shape[:1]


class FakeChat:
    name = "fake-chat"

    def choice_probs_batch(self, conversations, choices):
        assert choices == ["0", "1", "2"]
        return [np.array([0.1, 0.2, 0.7]) if "apple" in c[0]["content"].split("Text:")[1] else np.array([0.8, 0.1, 0.1])
                for c in conversations]


def test_prompt_detection_expected_rating(ctx):
    c = fake_context(chat_spec=None)
    c._chat = FakeChat()
    m = get_method("prompt")
    fitted = m.fit(c, 0)
    scores = m.scores(c, fitted, "eval", c.eval_split(0))
    assert set(np.round(scores, 6)) == {1.6, 0.3}
    assert _eval_auroc(c, m, fitted, 0) == 1.0


def test_fitted_table_exports_directions(ctx):
    fits = {("DiffMean", 0): get_method("diffmean").fit(ctx, 0), ("Random", 1): get_method("random").fit(ctx, 1),
            ("BoW", 0): get_method("bow").fit(ctx, 0)}
    table = fitted_table(ctx, fits)
    assert table.feature_ids == ["DiffMean/c0", "Random/c1"]
    assert table.shape == (len(ctx.eval_texts), 2)
    np.testing.assert_allclose(table.decoder_vectors["DiffMean/c0"], fits[("DiffMean", 0)].vector)
    assert "concept_id" in table.examples.columns and table.features["label"][0].startswith("DiffMean: apples")
    np.testing.assert_allclose(table.dense()[:, 0], pooled_scores(ctx, fits[("DiffMean", 0)]), atol=1e-6)


def test_fitted_validates():
    with pytest.raises(ValueError, match="psi"):
        Fitted(method="x", concept_id=0, vector=None, steer_vector=None, score="linear")
    with pytest.raises(ValueError, match="one of"):
        Fitted(method="x", concept_id=0, vector=np.ones(3), steer_vector=None, score="tanh")
    f = Fitted(method="x", concept_id=0, vector=np.ones(2), steer_vector=None, score="jumprelu", threshold=1.5)
    np.testing.assert_array_equal(f.psi(np.array([1.0, 2.0, -3.0])), [0.0, 2.0, 0.0])


# ---- LM-loss methods on the tiny model -------------------------------------------------------------

@pytest.fixture(scope="module")
def lm_ctx() -> BenchContext:
    from interpkit._testing import tiny_model

    return fake_context(n_pos=6, n_neg=6, model=tiny_model("nnsight"), site="layer0.resid_post")


def test_lm_schedule_follows_the_device():
    from types import SimpleNamespace

    from interpkit.bench.methods._lmloss import resolve_schedule

    p = get_method("reft-r1").params()
    assert resolve_schedule(SimpleNamespace(device="cuda:0"), p)["epochs"] == 3
    cpu = resolve_schedule(SimpleNamespace(device="cpu"), p)
    assert (cpu["epochs"], cpu["max_train_tokens"]) == (1, 64)
    assert resolve_schedule(SimpleNamespace(device="cpu"), {**p, "epochs": 5})["epochs"] == 5


def test_reft_r1_trains_end_to_end(lm_ctx):
    model = lm_ctx.model
    params = list(model.hf_model.parameters())
    m = get_method("reft-r1", batch_size=4, epochs=2, max_train_tokens=12, topk=2)
    fitted = m.fit(lm_ctx, 0)
    assert abs(np.linalg.norm(fitted.vector) - 1) < 1e-5
    info = fitted.info
    assert info["steps"] == 6 and info["n_examples"] == 12 and len(info["l1"]) == 6
    assert (info["epochs"], info["max_train_tokens"]) == (2, 12)
    assert np.isfinite(info["loss"]).all() and info["seconds"] > 0
    assert fitted.score == "relu"
    assert all(p.requires_grad for p in params)  # restored after training
    assert all(p.grad is None for p in params)


def test_ssv_trains_on_positives_and_lowers_the_loss(lm_ctx):
    m = get_method("ssv", batch_size=6, epochs=8, max_train_tokens=12, lr=5e-2)
    fitted = m.fit(lm_ctx, 1)
    loss = fitted.info["loss"]
    assert fitted.info["n_examples"] == 6 and len(loss) == 8
    assert np.isfinite(loss).all() and loss[-1] < loss[0]
    assert fitted.info["final_norm"] != pytest.approx(0.01 * np.sqrt(D))  # w moved from its init


def test_info_is_json_ready(ctx):
    import json

    for name, opts in (("diffmean", {}), ("pca", {}), ("lat", {}), ("probe", {"epochs": 2}), ("random", {}),
                       ("sae", {}), ("sae-a", {}), ("criterion", {}), ("bow", {})):
        fitted = get_method(name, **opts).fit(ctx, 0)
        json.dumps(fitted.info, allow_nan=False)
        assert fitted.method == name and fitted.concept_id == 0


def test_jumprelu_sae_latent_keeps_its_threshold():
    import torch

    from interpkit.sae import SAEConfig, make_sae

    sae = make_sae(SAEConfig(architecture="jumprelu", d_in=D, d_sae=8), seed=0)
    with torch.no_grad():
        sae.W_enc[:, 5] = torch.from_numpy(_dirs()[0])
        sae.threshold.fill_(2.0)
    c = fake_context(sae_spec=sae)
    m = get_method("sae-a")
    fitted = m.fit(c, 0)
    assert fitted.info["latent"] == 5 and fitted.score == "jumprelu" and fitted.threshold == pytest.approx(2.0)
    x = c.eval_acts.rows(0)
    with torch.no_grad():
        expected = sae.encode(torch.from_numpy(x))[:, 5].numpy()
    np.testing.assert_allclose(m.token_scores(c, fitted, 0), expected, atol=1e-4)


def test_topk_sae_latent_reads_the_full_encoder():
    import torch

    from interpkit.sae import SAEConfig, make_sae

    sae = make_sae(SAEConfig(architecture="topk", d_in=D, d_sae=8, k=2), seed=0)
    with torch.no_grad():
        sae.W_enc[:, 5] = torch.from_numpy(_dirs()[0]) * 3
    c = fake_context(sae_spec=sae)
    enc = get_method("sae-a").fit(c, 0)
    assert enc.info["latent"] == 5 and enc.score == "sae"
    x = c.eval_acts.rows(3)
    with torch.no_grad():
        expected = sae.encode(torch.from_numpy(x))[:, 5].numpy()
    m = get_method("sae-a")
    np.testing.assert_allclose(m.token_scores(c, enc, 3), expected, atol=1e-5)
    assert np.isclose(m.scores(c, enc, "eval", [3])[0], expected.max(), atol=1e-5)
    alone = get_method("sae-a", latent_psi="standalone").fit(c, 0)
    assert alone.score == "relu" and alone.info["latent"] == 5
    table = fitted_table(c, {("SAE-A", 0): enc})
    np.testing.assert_allclose(table.dense()[3, 0], expected.max(), atol=1e-5)


def test_token_acts_select_keeps_texts_with_no_rows_in_place():
    # texts 1 and 3 (the last) own no rows: their offsets equal the next start, the last equals n_tokens
    values = np.arange(10, dtype=np.float32).reshape(5, 2)
    acts = TokenActs(values=values, offsets=np.array([0, 2, 2, 5, 5]), token_ids=np.arange(5, dtype=np.int32),
                     site="layer1.resid_post")
    kept = acts.select(np.array([True, False, True, True, False]))
    assert kept.offsets.tolist() == [0, 1, 1, 3, 3]
    assert kept.token_ids.tolist() == [0, 2, 3] and len(kept) == 4
    assert acts.select(np.zeros(5, bool)).offsets.tolist() == [0, 0, 0, 0, 0]
    empty = TokenActs(values=np.zeros((0, 2), np.float32), offsets=np.zeros(3, np.int64),
                      token_ids=np.zeros(0, np.int32), site="layer1.resid_post")
    assert empty.select(np.zeros(0, bool)).offsets.tolist() == [0, 0, 0]


def test_fit_cache_key_follows_every_hyper_parameter_in_force(monkeypatch):
    from interpkit.bench._run import _fit_key
    from interpkit.bench.methods import LinearProbe

    ctx = fake_context()
    base = _fit_key(ctx, get_method("probe"), 0)
    assert _fit_key(ctx, get_method("probe"), 0) == base
    assert _fit_key(ctx, get_method("probe", C=1e-3), 0) != base
    # a changed default (not an override) must not read a fit made under the old one
    monkeypatch.setattr(LinearProbe, "defaults", {**LinearProbe.defaults, "cv_folds": 5})
    assert _fit_key(ctx, get_method("probe"), 0) != base
    monkeypatch.undo()
    monkeypatch.setattr(LinearProbe, "fit_version", 99)
    assert _fit_key(ctx, get_method("probe"), 0) != base
