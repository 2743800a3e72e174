"""Criterion core: records, calibration, splits, labelled/keyword/logit/embedding compilers, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from interpkit.cli import main
from interpkit.criterion import (
    Criterion,
    CriterionCompiler,
    KeywordCompiler,
    LabelledCompiler,
    ScoredExample,
    balance_classes,
    calibrate,
    compile_criterion,
    derive_keywords,
    get_compiler,
    list_compilers,
    score_prompts,
    stratified_splits,
    text_pool,
)
from interpkit.records import RecordError
from interpkit.sources import PromptRow, read_prompt_dataset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class FakeEncoder:
    """Bag-of-letters unit embeddings: texts sharing letters with the criterion are close."""

    name = "fake"

    def encode(self, texts):
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = np.zeros((len(texts), 26))
        for i, t in enumerate(texts):
            for ch in t.lower():
                if "a" <= ch <= "z":
                    out[i, ord(ch) - 97] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


# records


def test_criterion_validates_and_derives_contrast():
    c = Criterion(text="dates", keywords="date")
    assert c.keywords == ("date",)
    assert c.contrast_text == "text unrelated to dates"
    assert c.to_dict() == {"text": "dates", "keywords": ["date"]}
    with pytest.raises(ValueError, match="non-empty"):
        Criterion(text="  ")
    with pytest.raises(ValueError, match="target_tokens"):
        Criterion(text="x", target_tokens=["a", ""])


def test_scored_example_to_prompt_row_and_range():
    s = ScoredExample(text="t", score=0.7, label="positive", split="test", prompt_id="p", provenance={"compiler": "k"})
    row = s.to_prompt_row()
    assert (row.prompt_id, row.criterion_score, row.split) == ("p", 0.7, "test")
    assert row.extra["criterion_label"] == "positive"
    assert row.extra["criterion_provenance"] == {"compiler": "k"}
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ScoredExample(text="t", score=1.5)
    with pytest.raises(ValueError, match="prompt_id"):
        ScoredExample(text="t", score=0.1).to_prompt_row()


def test_registry_names_and_errors():
    assert {"labelled", "keyword", "embedding", "logit", "judge", "generative"} <= set(list_compilers())
    assert isinstance(get_compiler("keyword"), KeywordCompiler)
    with pytest.raises(ValueError, match="unknown criterion compiler 'nope'"):
        get_compiler("nope")
    comp = KeywordCompiler()
    assert get_compiler(comp) is comp
    assert issubclass(type(get_compiler("embedding", encoder=FakeEncoder())), CriterionCompiler)


# calibration


def test_calibrate_gmm_separates_a_tail_and_keeps_order():
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0.0, 0.03, 300), rng.normal(0.3, 0.04, 15)]
    cal = calibrate(x)
    assert cal.method == "gmm"
    assert cal.labels[-15:].count("positive") >= 14
    assert cal.labels[:300].count("positive") <= 2
    order = np.argsort(x)
    assert np.all(np.diff(cal.posteriors[order]) > 0)  # strictly increasing: ranking unchanged
    assert cal.describe()["band"] == [0.2, 0.8]


def test_calibrate_small_inputs_use_fixed_map_and_nan_stays_unscored():
    cal = calibrate([0.0, np.nan, 0.5], center=0.1, scale=0.05)
    assert cal.method == "logistic"
    assert cal.labels == ("negative", None, "positive")
    assert np.isnan(cal.posteriors[1])
    thr = calibrate([0.1, 0.2, 0.3, 0.4], method="threshold")
    assert thr.labels == ("negative", "negative", "positive", "positive")
    with pytest.raises(ValueError, match="band"):
        calibrate([0.1], lo=0.9, hi=0.1)


def test_stratified_splits_stratified_and_seeded():
    labels = ["positive"] * 8 + ["negative"] * 12
    a = stratified_splits(labels, test_fraction=0.25, seed=3)
    assert a == stratified_splits(labels, test_fraction=0.25, seed=3)
    assert a != stratified_splits(labels, test_fraction=0.25, seed=4)
    assert sum(s == "test" for s, lab in zip(a, labels, strict=True) if lab == "positive") == 2
    assert sum(s == "test" for s, lab in zip(a, labels, strict=True) if lab == "negative") == 3
    assert stratified_splits(["positive", "positive"], test_fraction=0.1).count("test") == 1


def test_balance_classes():
    labels = ["positive"] * 3 + ["negative"] * 7 + ["uncertain"] * 2
    keep = balance_classes(labels, seed=0)
    kept = [labels[i] for i in keep]
    assert kept.count("positive") == kept.count("negative") == 3
    assert kept.count("uncertain") == 2
    assert keep == sorted(keep)
    assert [labels[i] for i in balance_classes(labels, max_per_class=1)].count("negative") == 1


# keyword


def test_derive_keywords_drops_stop_and_generic_words():
    assert derive_keywords("references to rental services and associated equipment") == (
        "rental", "service", "equipment")
    assert derive_keywords("the of and") == ()


def test_keyword_compiler_scores_matches_regex_and_provenance():
    comp = KeywordCompiler(min_matches=2)
    crit = Criterion(text="rental equipment")
    out = comp.score_texts(crit, ["Equipment rentals here", "our equipment", "a cat"])
    assert [s.label for s in out] == ["positive", "uncertain", "negative"]
    assert out[0].score == 1.0 and out[1].score == 0.5
    assert out[0].provenance["matched"] == {"rental": ["rentals"], "equipment": ["Equipment"]}
    assert out[0].provenance["keywords_from"] == "derived"
    rx = KeywordCompiler([r"\d{4}"]).score_texts("years", ["in 1999", "in May"])
    assert [s.label for s in rx] == ["positive", "negative"]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        KeywordCompiler(["(unclosed"]).score_texts("x", ["y"])
    with pytest.raises(ValueError, match="no keywords"):
        KeywordCompiler().score_texts("the of", ["y"])


# compile / score_prompts


def _pool():
    return [f"the number {i} and {i + 1}" for i in range(10)] + [f"a plain word {w}" for w in "abcdefghij"]


def test_compile_balances_splits_and_keeps_ids():
    rows = [PromptRow(prompt_id=f"r{i}", text=t) for i, t in enumerate(_pool())]
    rows.append(PromptRow(prompt_id="extra-pos", text="number 99"))
    out = compile_criterion("numbers", "keyword", rows, keywords=[r"\d"], seed=1)
    labels = [r.extra["criterion_label"] for r in out]
    assert labels.count("positive") == labels.count("negative") == 10
    assert {r.split for r in out} == {"train", "test"}
    assert all(r.prompt_id.startswith(("r", "extra")) for r in out)
    test_pos = [r for r in out if r.split == "test" and r.extra["criterion_label"] == "positive"]
    assert len(test_pos) in (2, 3)
    capped = compile_criterion("numbers", "keyword", rows, keywords=[r"\d"], max_per_class=4)
    assert len(capped) == 8


def test_compile_without_both_classes_says_why():
    with pytest.raises(ValueError, match="0 negative.*needs both classes"):
        compile_criterion("numbers", "keyword", ["1", "2", "3"], keywords=[r"\d"])


def test_score_prompts_keeps_every_row_id_and_extra():
    rows = [PromptRow(prompt_id=i, text=t, split="train" if i % 2 else None, extra={"k": i})
            for i, t in enumerate(["a 1", "b", "c 3"])]
    out = score_prompts(rows, Criterion(text="digits", keywords=[r"\d"]), "keyword")
    assert [r.prompt_id for r in out] == [0, 1, 2]
    assert [r.criterion_score for r in out] == [1.0, 0.0, 1.0]
    assert [r.split for r in out] == [None, "train", None]
    assert [r.extra["k"] for r in out] == [0, 1, 2]
    assert out[1].extra["criterion_label"] == "negative"


def test_embedding_compiler_with_fake_encoder():
    comp = get_compiler("embedding", encoder=FakeEncoder())
    texts = ["zzz zzz", "xxyyzz", "aaaa bbbb", "abab"]
    out = comp.score_texts("aaa bbb", texts)
    assert out[2].score > out[0].score and out[3].score > out[1].score
    assert out[2].label == "positive" and out[0].label == "negative"
    prov = out[0].provenance
    assert prov["calibration_fit"]["method"] == "logistic" and prov["band"] == [0.2, 0.8]
    assert prov["contrast"] is None and prov["contrast_similarity"] == 0.0
    with_contrast = comp.score_texts(Criterion(text="aaa", contrast="zzz"), texts)
    assert with_contrast[0].provenance["contrast_similarity"] > 0.9


def test_text_pool_is_balanced_with_provenance():
    rows = text_pool()
    assert len(rows) == 880 and len({r.prompt_id for r in rows}) == 880
    tasks = {r.extra["axbench_task"] for r in rows}
    assert tasks == {"prod_2b_l10_v1", "prod_2b_l20_v1"}
    per_concept: dict = {}
    for r in rows:
        per_concept[(r.extra["axbench_task"], r.extra["concept_id"])] = per_concept.get(
            (r.extra["axbench_task"], r.extra["concept_id"]), 0) + 1
    positives = {k: v for k, v in per_concept.items() if k[1] >= 0}
    assert len(positives) == 20 and set(positives.values()) == {32}
    assert sum(r.extra["category"] == "negative" for r in rows) == 240
    assert all(r.criterion_score is None and "axbench" in r.extra["source"] for r in rows)


# labelled


def test_labelled_from_rows_and_compile(tmp_path):
    data = [{"text": f"t{i}", "label": "yes" if i < 4 else "no"} for i in range(10)]
    comp = LabelledCompiler(rows=data, label_column="label", positive_labels=["yes"])
    out = comp.compile("crit", seed=0)
    assert [s.label for s in out].count("positive") == 4 and len(out) == 8
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"text": f"t{i}", "score": i / 10}) + "\n" for i in range(5)))
    scored = get_compiler("labelled", path=path, score_column="score").score_texts("c", ["t4", "t1", "zzz"])
    assert [(s.score, s.label) for s in scored] == [(0.4, "negative"), (0.1, "negative"), (None, None)]


@pytest.mark.parametrize(("name", "content", "kw", "match"), [
    ("l.csv", "text,label\nhi,yes\nho,maybe\n", {"label_column": "label", "negative_labels": ["no"]},
     r"l\.csv:3: field 'label': expected one of the positive labels .* got \"maybe\""),
    ("l.csv", "text,score\nhi,0.5\nho,high\n", {"score_column": "score"},
     r"l\.csv:3: field 'score': expected a number in \[0, 1\], got \"high\""),
    ("l.jsonl", '{"text": "a", "score": 0.2}\n\n{"body": "b", "score": 1}\n', {"score_column": "score"},
     r"l\.jsonl:3: field 'text': expected a text column 'text'"),
    ("l.jsonl", '{"text": "a", "score": 2}\n', {"score_column": "score"}, r"l\.jsonl:1: field 'score'"),
    ("l.jsonl", '{"text": "a"\n', {"score_column": "score"}, r"l\.jsonl:1: expected a JSON object"),
])
def test_labelled_errors_name_file_line_column(tmp_path, name, content, kw, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(RecordError, match=match):
        LabelledCompiler(path, **kw)


def test_labelled_parquet_row_numbers(tmp_path):
    import pandas as pd

    path = tmp_path / "l.parquet"
    pd.DataFrame({"text": ["a", "b"], "score": [0.1, -1.0]}).to_parquet(path)
    with pytest.raises(RecordError, match=r"l\.parquet:2: field 'score'"):
        LabelledCompiler(path, score_column="score")


# logit (tiny model)


def test_logit_compiler_on_tiny_model_matches_metric():
    from interpkit._testing import tiny_model
    from interpkit.causal._metric import LogitTargetMetric as Reexported
    from interpkit.criterion import LogitTargetMetric, MissingTargetTokensError

    assert Reexported is LogitTargetMetric
    model = tiny_model()
    texts = ["hello", "hi there", "abc", "zzz"]
    comp = get_compiler("logit", model=model)
    out = comp.score_texts(Criterion(text="vowel next", target_tokens=["a", "e"]), texts)
    mass = LogitTargetMetric("vowel next", ["a", "e"]).score(model, texts)
    np.testing.assert_allclose([s.score for s in out], mass, rtol=1e-6)
    assert [s.label for s in out].count("positive") == 2  # median threshold
    assert out[0].provenance["threshold_from"] == "median"
    fixed = get_compiler("logit", model=model, threshold=0.0, target_tokens=["a"]).score_texts("v", texts)
    assert {s.label for s in fixed} == {"positive"}
    with pytest.raises(MissingTargetTokensError, match="target tokens"):
        comp.score_texts("no targets", texts)


# CLI


def test_cli_compile_and_score_round_trip(tmp_path, capsys):
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt_id": f"p{i}", "text": t, "criterion_score": None}) + "\n"
                            for i, t in enumerate(_pool())))
    out = tmp_path / "compiled.jsonl"
    assert main(["compile-criterion", "--criterion", "numbers", "--compiler", "keyword", "--keywords", r"\d",
                 "--pool", str(pool), "--n", "5", "--out", str(out)]) == 0
    rows = read_prompt_dataset(out)
    assert len(rows) == 10 and {r.split for r in rows} == {"train", "test"}
    assert all(r.extra["criterion_provenance"]["compiler"] == "keyword" for r in rows)
    assert "wrote 10 prompts" in capsys.readouterr().out
    scored = tmp_path / "scored.jsonl"
    assert main(["score-prompts", "--dataset", str(pool), "--criterion", "plain words", "--compiler", "keyword",
                 "--out", str(scored)]) == 0
    back = read_prompt_dataset(scored)
    assert [r.prompt_id for r in back] == [f"p{i}" for i in range(20)]
    assert [r.criterion_score for r in back] == [0.0] * 10 + [1.0] * 10


def test_cli_score_prompts_accepts_rows_without_a_score(tmp_path, capsys):
    # score-prompts exists to add criterion_score, so rows with only prompt_id and text are its input
    pool = tmp_path / "pool.jsonl"
    pool.write_text("".join(json.dumps({"prompt_id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(_pool())))
    scored = tmp_path / "scored.jsonl"
    assert main(["score-prompts", "--dataset", str(pool), "--criterion", "plain words", "--compiler", "keyword",
                 "--out", str(scored)]) == 0
    assert [r.criterion_score for r in read_prompt_dataset(scored)] == [0.0] * 10 + [1.0] * 10
    # every other reader keeps the field required, with the file:line:field error
    with pytest.raises(RecordError, match=r"pool.jsonl:1: field 'criterion_score'"):
        read_prompt_dataset(pool)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": 1, "text": "a"}\n{"prompt_id": 2, "text": "b", "criterion_score": "high"}\n')
    assert main(["score-prompts", "--dataset", str(bad), "--criterion", "x", "--compiler", "keyword",
                 "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "bad.jsonl:2: field 'criterion_score'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_cli_errors_exit_2_with_location(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt_id": 1, "text": "a", "criterion_score": null}\n{"prompt_id": 2, "text": 5, "criterion_score": null}\n')
    assert main(["score-prompts", "--dataset", str(bad), "--criterion", "x", "--compiler", "keyword",
                 "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "bad.jsonl:2: field 'text'" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()
    labels = tmp_path / "l.csv"
    labels.write_text("text,label\nhi,yes\nho,maybe\n")
    assert main(["compile-criterion", "--criterion", "x", "--compiler", "labelled", "--labels", str(labels),
                 "--label-column", "label", "--negative-labels", "no", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "l.csv:3: field 'label'" in capsys.readouterr().err
    assert main(["compile-criterion", "--criterion", "x", "--compiler", "nope", "--out", str(tmp_path / "o.jsonl")]) == 2
    assert "unknown criterion compiler" in capsys.readouterr().err
