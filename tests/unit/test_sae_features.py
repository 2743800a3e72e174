"""SAE latents as features: encoding, sparse tables, records, steering and clamping edits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import interpkit
from interpkit._testing import tiny_model
from interpkit.causal import LogitTargetMetric, run_interventions
from interpkit.models import apply_edit
from interpkit.records import read_activation_records, write_jsonl
from interpkit.sae import SAEConfig, make_sae
from interpkit.sae._edits import clamp_latent, latent_feature, sae_interventions, splice
from interpkit.sae._features import encode_texts, sae_feature_ids, sae_records, sae_table
from interpkit.sources import PromptRow

SITE = "layer1.resid_post"
D = 16
WORDS = ["hello there", "the cat sat", "zebra zoo", "good night moon", "a dog ran far", "fizz buzz",
         "quiet river", "lazy fox", "jazz time", "open the door", "blue sky", "warm tea"]


@pytest.fixture(scope="module")
def models():
    return {"nnsight": tiny_model("nnsight"), "transformer_lens": tiny_model("transformer_lens")}


@pytest.fixture(scope="module")
def sae():
    return make_sae(SAEConfig(architecture="topk", d_in=D, d_sae=24, k=3, site=SITE, layer=1), seed=0)


@pytest.fixture(scope="module")
def metric():
    return LogitTargetMetric("the next character is a vowel", ["a", "e"])


def rows_with_scores():
    return [PromptRow(prompt_id=f"p{i}", text=t, criterion_score=float(i % 2),
                      split="train" if i < 8 else "test") for i, t in enumerate(WORDS)]


def test_feature_ids(sae):
    assert sae_feature_ids(sae)[:2] == [f"{SITE}:sae0", f"{SITE}:sae1"]
    assert sae_feature_ids(sae, "x/")[-1] == "x/23"
    bare = make_sae(SAEConfig(architecture="relu", d_in=4, d_sae=2))
    assert sae_feature_ids(bare) == ["sae:sae0", "sae:sae1"]
    hooked = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=2, hook_name="blocks.1.hook_resid_post"))
    assert sae_feature_ids(hooked) == [f"{SITE}:sae0", f"{SITE}:sae1"]
    assert latent_feature(hooked, 1).feature_id == f"{SITE}:sae1" and latent_feature(hooked, 1).site == SITE


@pytest.mark.parametrize("pooling", ["max", "mean", "last"])
def test_encode_texts_pools_after_encoding(models, sae, pooling):
    model = models["nnsight"]
    texts = WORDS[:5]
    got = encode_texts(sae, model, texts, pooling=pooling, batch_size=2)
    batch = model.tokenize(texts)
    acts = model.capture(batch, SITE)[SITE]
    with torch.no_grad():
        codes = sae.encode(acts)
    for i, n in enumerate(batch.lengths.tolist()):
        c = codes[i, 1:n]  # BOS excluded
        want = {"max": c.max(0).values, "mean": c.mean(0), "last": c[-1]}[pooling]
        np.testing.assert_allclose(got[i], want.numpy(), rtol=1e-5, atol=1e-6)


def test_sae_table_is_sparse_with_ids_and_decoders(models, sae):
    model = models["transformer_lens"]
    rows = rows_with_scores()
    table = sae_table(sae, model, rows, batch_size=4, top_tokens=2)
    assert table.is_sparse and table.shape == (len(rows), 24)
    assert np.all(table.values.data != 0)  # only non-zeros are stored
    lengths = [len(r.text) for r in rows]  # one token per character
    assert all(table.values[[i]].nnz <= 3 * n for i, n in enumerate(lengths))  # k=3 per token
    assert table.feature_ids == sae_feature_ids(sae)
    assert set(table.features["source"]) == {"sae"} and set(table.features["site"]) == {SITE}
    assert list(table.features["layer"].unique()) == [1]
    assert table.features["latent"].tolist() == list(range(24))
    for i in (0, 7, 23):
        np.testing.assert_array_equal(table.decoder_vectors[f"{SITE}:sae{i}"], sae.W_dec[i].detach().numpy())
    np.testing.assert_allclose(table.dense(), encode_texts(sae, model, rows, batch_size=4), rtol=1e-6)
    assert table.example_ids == [r.prompt_id for r in rows]
    assert table.examples["criterion_score"].tolist() == [r.criterion_score for r in rows]
    assert table.meta["source"] == "sae" and table.meta["sae"]["d_sae"] == 24
    tok = table.tokens
    assert len(tok) and (tok.groupby("example_idx").size() <= 2).all()
    for r in tok.itertuples():
        assert table.dense()[r.example_idx, r.feature_idx] == pytest.approx(r.activation)
        assert rows[r.example_idx].text[r.token_index - 1] == r.token  # one character per token after BOS


def test_sae_table_ranks(models, sae):
    texts = [f"{a} {b}" for a in WORDS[:8] for b in WORDS[8:]][:30]
    table = sae_table(sae, models["nnsight"], texts, batch_size=8, top_tokens=0)
    assert table.tokens is None
    counts = np.count_nonzero(table.dense(), axis=0)
    j = int(np.argmax(np.minimum(counts, len(texts) - counts)))  # a latent that splits the examples
    col = table.column(j)
    scores = (col > np.median(col)).astype(float)  # planted: the criterion is "latent j is high"
    result = interpkit.rank(table, scores, n_permutations=200, n_bootstrap=10)
    assert {r.feature_id for r in result.rows} == set(table.feature_ids)
    best = result.row(table.feature_ids[j])
    assert best.association.auroc_test == 1.0
    assert best.combined == pytest.approx(result.top(1)[0].combined)


def test_sae_records_round_trip_and_inspect(tmp_path, models, sae):
    rows = rows_with_scores()
    codes = encode_texts(sae, models["nnsight"], rows)
    records = sae_records(sae, codes, rows, model_name="tiny-gpt2", top_k_features=2)
    assert len(records) == len(rows)
    for rec, row, c in zip(records, rows, codes, strict=True):
        assert (rec.prompt_id, rec.text, rec.criterion_score, rec.split) == (row.prompt_id, row.text,
                                                                             row.criterion_score, row.split)
        nz = np.flatnonzero(c)
        assert len(rec.features) == min(2, len(nz))
        acts = [f.activation for f in rec.features]
        assert acts == sorted(acts, reverse=True) and all(a != 0 for a in acts)
        assert acts[0] == pytest.approx(float(c.max()))
        assert all(f.layer == 1 for f in rec.features)
    path = tmp_path / "sae_records.jsonl"
    write_jsonl(path, records)
    assert read_activation_records(path) == records
    # sparse and torch codes give the same records; decoders are optional
    import scipy.sparse as sp

    assert sae_records(sae, sp.csr_array(codes), rows, model_name="tiny-gpt2", top_k_features=2) == records
    with_dec = sae_records(sae, torch.from_numpy(codes[:1]), rows[:1], model_name="m", include_decoder=True)
    first = with_dec[0].features[0]
    j = int(first.feature_id.removeprefix(f"{SITE}:sae"))
    np.testing.assert_allclose(first.decoder_signature, sae.W_dec[j].detach().numpy(), rtol=1e-6)
    # records (e.g. a RecordsSource's sample) are valid rows too
    again = sae_records(sae, codes, records, model_name="tiny-gpt2", top_k_features=2)
    assert again == records

    report = interpkit.inspect(None, "the text is odd", backend="records", records=path,
                               n_permutations=50, n_bootstrap=5, top_k=3)
    assert report.backend == "records" and report.model == "tiny-gpt2"
    assert report.features and all(f.feature_id.startswith(f"{SITE}:sae") for f in report.features)


def test_sae_records_errors(sae):
    with pytest.raises(ValueError, match=r"\[n, 24\]"):
        sae_records(sae, np.zeros((2, 5)), ["a", "b"], model_name="m")
    with pytest.raises(ValueError, match="3 rows"):
        sae_records(sae, np.zeros((3, 24)), ["a", "b"], model_name="m")
    recs = sae_records(sae, np.zeros((2, 24)), ["a", "b"], model_name="m")
    assert [r.features for r in recs] == [(), ()] and [r.prompt_id for r in recs] == [0, 1]


def test_latent_feature_steers_the_metric(models, metric):
    model = models["nnsight"]
    ids = list(metric.token_ids(model))
    target = model.W_U.detach().float()[:, ids].sum(dim=1)
    sae = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=8, site=SITE), seed=0)
    with torch.no_grad():
        sae.W_dec[0] = target / target.norm()
    feat = latent_feature(sae, 0)
    assert feat.feature_id == f"{SITE}:sae0" and feat.site == SITE
    np.testing.assert_array_equal(feat.direction, sae.W_dec[0].detach().numpy())
    records = run_interventions(model, [feat], WORDS[:4], WORDS[4:6], metric, strength=8.0, n_controls=0)
    effect = np.mean([r.intervention_score - r.baseline_score for r in records])
    assert effect > 0.05


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_clamp_latent_keeps_or_changes_logits(models, backend):
    model = models[backend]
    sae = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=8, site=SITE), seed=0)
    with torch.no_grad():
        sae.b_enc[5] = -1e6  # latent 5 never fires
    batch = model.tokenize(WORDS[:3])
    clean = model.forward(batch)
    for edit in (clamp_latent(sae, 2, lambda f: f), clamp_latent(sae, 5, 0.0)):
        with model.edits(edit):
            assert torch.equal(model.forward(batch), clean)
    with model.edits(clamp_latent(sae, 2, 50.0)):
        assert not torch.allclose(model.forward(batch), clean, atol=1e-3)


def test_clamp_latent_maths_and_positions():
    sae = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=8, site=SITE), seed=1)
    x = torch.randn(2, 5, D)
    with torch.no_grad():
        f = sae.encode(x)[..., 3]
        out = apply_edit(clamp_latent(sae, 3, 4.0), x)
        want = x + (4.0 - f).unsqueeze(-1) * sae.W_dec[3]
        torch.testing.assert_close(out, want)
        # the SAE's view: latent 3 is now 4 wherever the rest of the code is unchanged
        recon_err = x - sae.reconstruct(x)
        torch.testing.assert_close(out - recon_err, sae.decode(sae.encode(x).index_fill(-1, torch.tensor([3]), 4.0)))
        only = apply_edit(clamp_latent(sae, 3, 4.0, positions=[0]), x)
    assert torch.equal(only[:, 1:], x[:, 1:]) and not torch.equal(only[:, 0], x[:, 0])
    with pytest.raises(ValueError, match="out of range"):
        clamp_latent(sae, 8, 1.0)


@pytest.mark.parametrize("backend", ["nnsight", "transformer_lens"])
def test_perfect_splice_leaves_logits(models, backend):
    model = models[backend]
    sae = make_sae(SAEConfig(architecture="relu", d_in=D, d_sae=2 * D, site=SITE), seed=None)
    eye = torch.eye(D)
    with torch.no_grad():
        sae.W_enc.copy_(torch.cat([eye, -eye], dim=1))
        sae.W_dec.copy_(torch.cat([eye, -eye], dim=0))
    batch = model.tokenize(WORDS[:3])
    clean = model.forward(batch)
    edit = splice(sae)
    assert edit.name == "sae-splice" and edit.site == SITE
    with model.edits(edit):
        torch.testing.assert_close(model.forward(batch), clean)
    with torch.no_grad():
        sae.W_dec.mul_(0.0)
    with model.edits(splice(sae)):
        assert not torch.allclose(model.forward(batch), clean)


def test_sae_interventions_kinds_and_controls(models, metric, sae):
    model = models["transformer_lens"]
    pos = [PromptRow(prompt_id=f"q{i}", text=t, split="test") for i, t in enumerate(WORDS[:3])]
    recs = sae_interventions(sae, model, [0, 4], pos, WORDS[6:8], metric,
                             kinds=("steer", "clamp", "ablate"), strength=6.0, clamp_value=9.0, n_controls=1)
    assert len(recs) == 2 * 3 * 2 * len(pos)
    kinds = [r.intervention for r in recs]
    assert kinds[: 2 * 2 * 3] == ["steer"] * 12  # the runner's steer records come first
    assert set(kinds) == {"steer", "clamp", "ablate"}
    ids = {r.feature_id for r in recs}
    assert ids == {f"{SITE}:sae0", f"{SITE}:sae4", f"{SITE}:sae0::control0", f"{SITE}:sae4::control0"}
    clamp = [r for r in recs if r.intervention == "clamp"]
    assert all(r.extra["clamp_value"] == 9.0 and r.extra["split"] == "test" for r in clamp)
    ablate = [r for r in recs if r.intervention == "ablate"]
    assert all(r.extra["ablate_mode"] == "sae_latent" for r in ablate)
    assert all(r.side_effect_score is not None for r in recs)
    assert any(r.intervention_score != r.baseline_score for r in clamp)
    with pytest.raises(ValueError, match="supports"):
        sae_interventions(sae, model, [0], pos, [], metric, kinds=("patch",))
