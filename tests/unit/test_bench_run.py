"""The benchmark runner: `bench` end to end on the tiny model, fit cache, shard merging, CLI and run steps."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from interpkit.bench import bench, build_context, load_task, run_detect
from interpkit.bench._report import merge_results

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TASK = Path(__file__).resolve().parents[1] / "data" / "axbench_quick_l10"
CHEAP = ["diffmean", "pca", "lat", "probe", "random", "bow"]
# the tiny model's position table has 64 rows: every text is cut to 60 tokens


@pytest.fixture(scope="module")
def tiny():
    from interpkit._testing import tiny_model

    return tiny_model("nnsight")


def test_bench_detect_writes_results_markdown_charts_and_features(tiny, tmp_path):
    out = tmp_path / "out"
    from interpkit.viz import write_bench_charts

    res = bench("detect", TASK, model=tiny, layer=1, methods=CHEAP, out=out, max_length=60, cache_dir=tmp_path / "cache",
                options={"probe": {"epochs": 2}}, progress=False, charts=write_bench_charts)
    assert set(res["methods"]) == {"DiffMean", "PCA", "LAT", "Probe", "Random", "BoW"}
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["kind"] == "interpkit.bench" and on_disk["mode"] == "detect" and on_disk["site"] == "layer1.resid_post"
    for r in on_disk["methods"].values():
        assert set(r["per_concept"]) == {"0", "1"}
        assert 0 <= r["mean_auroc"] <= 1
        assert "f1_imbalanced" in r["per_concept"]["0"]
    # BoW reads the words: two distinct concepts are separable from 8+8 examples
    assert on_disk["methods"]["BoW"]["mean_auroc"] > 0.7
    assert "| DiffMean |" in (out / "results.md").read_text()
    assert {p.name for p in (out / "charts").iterdir()} >= {"auroc_by_method.vl.json", "roc_curves.html"}
    from interpkit.table import FeatureTable

    table = FeatureTable.load(out / "features")
    assert {"DiffMean/c0", "Probe/c1"} <= set(table.feature_ids)
    assert "BoW/c0" not in table.feature_ids  # a text classifier has no direction


def test_a_second_run_reads_fitted_directions_from_the_cache(tiny, tmp_path):
    kw = {"model": tiny, "layer": 1, "max_length": 60, "methods": ["probe"], "cache_dir": tmp_path / "cache", "progress": False,
          "options": {"probe": {"epochs": 2}}}
    first = bench("detect", TASK, **kw)
    second = bench("detect", TASK, **kw)
    a, b = first["methods"]["Probe"]["per_concept"]["0"], second["methods"]["Probe"]["per_concept"]["0"]
    assert not a["info"].get("cached") and b["info"]["cached"] is True
    assert a["auroc"] == pytest.approx(b["auroc"])


def test_concept_shards_merge_to_the_unsharded_result(tiny, tmp_path):
    ctx = build_context(load_task(TASK), tiny, layer=1, max_length=60, cache_dir=None, progress=False)
    whole = merge_results([run_detect(ctx, CHEAP[:2], progress=False)])
    parts = [run_detect(ctx, CHEAP[:2], concepts=[c], progress=False) for c in (0, 1)]
    merged = merge_results(parts)
    for label in whole["methods"]:
        assert merged["methods"][label]["mean_auroc"] == pytest.approx(whole["methods"][label]["mean_auroc"])
        assert list(merged["methods"][label]["per_concept"]) == ["0", "1"]


def test_fitted_directions_are_unit_vectors_scored_by_max_pooling(tiny):
    from interpkit.bench import fit_method, get_method

    ctx = build_context(load_task(TASK), tiny, layer=1, max_length=60, cache_dir=None, progress=False)
    method = get_method("diffmean")
    fitted = fit_method(ctx, method, 0)
    assert np.linalg.norm(fitted.vector) == pytest.approx(1.0, abs=1e-5)
    idx = ctx.eval_split(0)
    scores = method.scores(ctx, fitted, "eval", idx)
    by_hand = [float((ctx.eval_acts.rows(i) @ fitted.vector).max()) for i in idx]
    np.testing.assert_allclose(scores, by_hand, rtol=1e-4, atol=1e-4)


def _cli(argv):
    from interpkit.cli import main

    return main(argv)


def test_cli_reports_bad_options_and_unknown_methods(tmp_path, capsys):
    rc = _cli(["bench", "detect", "--task", str(TASK), "--out", str(tmp_path / "o"), "--options", "{not json"])
    assert rc == 2 and "--options: not valid JSON" in capsys.readouterr().err
    rc = _cli(["bench", "detect", "--task", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "missing" in capsys.readouterr().err
    assert not (tmp_path / "o" / "results.json").exists()


def test_read_concept_list_formats(tmp_path):
    from interpkit.bench import read_concept_list

    (tmp_path / "c.txt").write_text("# concepts\nreferences to dates\n\nterms about music\nreferences to dates\n")
    assert read_concept_list(tmp_path / "c.txt") == ["references to dates", "terms about music"]
    (tmp_path / "c.json").write_text(json.dumps([
        {"modelId": "m", "layer": "1", "index": "5", "description": "first"},
        {"modelId": "m", "layer": "1", "index": "5", "description": "second label of the same feature"},
        {"modelId": "m", "layer": "1", "index": "6", "description": "other"}]))
    assert read_concept_list(tmp_path / "c.json") == ["first", "other"]
    (tmp_path / "c.csv").write_text("description,url\nsome concept,https://x\n")
    assert read_concept_list(tmp_path / "c.csv") == ["some concept"]
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json item 0"):
        read_concept_list(tmp_path / "bad.json")


def test_a_run_config_can_hold_a_bench_step(tmp_path, capsys):
    import shutil

    from interpkit.cli import _run

    shutil.copytree(TASK, tmp_path / "task")
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"name": "b", "steps": [
        {"name": "detect", "kind": "bench", "args": {"mode": "detect", "task": "task", "model": "smollm2-135m",
                                                      "methods": "diffmean", "quick": True}}]}))
    parser = argparse.ArgumentParser()
    _run.add_arguments(parser)
    assert _run.run(parser.parse_args([str(cfg), "--dry-run"])) == 0
    printed = capsys.readouterr().out
    assert "interpkit bench" in printed and "nothing was run or written" in printed


def _shard_worker(rank: int, world: int, port: int, out: str, cache: str) -> None:
    import os

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch

    torch.set_num_threads(1)
    from interpkit._testing import tiny_model

    bench("detect", TASK, model=tiny_model("nnsight"), layer=1, methods=["diffmean"], out=out if rank == 0 else None,
          max_length=60, cache_dir=cache, progress=False, charts=False)
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def test_torch_distributed_shards_concepts_and_rank0_writes_the_merge(tmp_path):
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dist"
    mp.spawn(_shard_worker, args=(2, port, str(out), str(tmp_path / "cache")), nprocs=2, join=True)
    res = json.loads((out / "results.json").read_text())
    assert res["settings"]["world_size"] == 2
    assert list(res["methods"]["DiffMean"]["per_concept"]) == ["0", "1"]
    from interpkit._testing import tiny_model

    single = bench("detect", TASK, model=tiny_model("nnsight"), layer=1, methods=["diffmean"], max_length=60, cache_dir=tmp_path / "cache2", progress=False)
    assert res["methods"]["DiffMean"]["mean_auroc"] == pytest.approx(single["methods"]["DiffMean"]["mean_auroc"], abs=1e-6)


def test_response_scope_scores_only_tokens_after_the_assistant_header(tiny):
    from interpkit._testing import tiny_tokenizer
    from interpkit.bench._context import response_mask

    task = load_task(TASK)
    all_ctx = build_context(task, tiny, layer=1, max_length=60, cache_dir=None, progress=False)
    resp_ctx = build_context(task, tiny, layer=1, max_length=60, cache_dir=None, progress=False, tokens="response")
    assert resp_ctx.tokens == "response" and resp_ctx.describe()["tokens"] == "response"
    assert 0 < resp_ctx.eval_acts.n_tokens < all_ctx.eval_acts.n_tokens
    assert len(resp_ctx.eval_acts) == len(all_ctx.eval_acts)
    # with a chat template: the rows after the last "<bos>"-free assistant header are kept
    tok = tiny_tokenizer()
    tok.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}.{% endfor %}"
                         "{% if add_generation_prompt %}assistant: {% endif %}")
    from interpkit.bench._acts import TokenActs

    ids = tok("user: hi.assistant: yes", add_special_tokens=False)["input_ids"]
    acts = TokenActs(values=np.zeros((len(ids), 2), np.float16), offsets=np.array([0, len(ids)]),
                     token_ids=np.array(ids, np.int32), site="s")
    keep = response_mask(tok, acts)
    assert tok.decode([i for i, k in zip(ids, keep, strict=True) if k]).replace(" ", "") == "yes"
    with pytest.raises(ValueError, match="tokens must be one of"):
        build_context(task, tiny, layer=1, cache_dir=None, progress=False, tokens="instruction")


def test_a_concept_a_method_cannot_score_is_recorded_and_left_out_of_the_mean(tiny, tmp_path, monkeypatch):
    from interpkit.bench import methods

    original = methods.DiffMean.fit

    def flaky(self, ctx, cid):
        if cid == 1:
            raise ValueError("need examples with scores in both splits")
        return original(self, ctx, cid)

    monkeypatch.setattr(methods.DiffMean, "fit", flaky)
    out = tmp_path / "o"
    res = bench("detect", TASK, model=tiny, layer=1, methods=["diffmean"], out=out, max_length=60, cache_dir=None,
                progress=False)
    m = res["methods"]["DiffMean"]
    assert m["n_failed"] == 1 and m["failed"] == ["1"]
    assert m["mean_auroc"] == pytest.approx(m["per_concept"]["0"]["auroc"])
    assert "concept 1: ValueError: need examples" in (out / "results.md").read_text()


def test_concepts_option_runs_a_subset_on_the_whole_task_context(tiny, tmp_path):
    res = bench("detect", TASK, model=tiny, layer=1, methods=["diffmean"], concepts=[1], max_length=60,
                cache_dir=None, progress=False)
    assert list(res["methods"]["DiffMean"]["per_concept"]) == ["1"] and res["settings"]["concepts"] == [1]
    assert res["settings"]["n_eval_texts"] == len(load_task(TASK).eval)  # the context holds the whole task
    with pytest.raises(ValueError, match="has no concept"):
        bench("detect", TASK, model=tiny, layer=1, methods=["diffmean"], concepts=[7], max_length=60,
              cache_dir=None, progress=False)


def test_cli_gives_bench_the_viz_chart_writer(tmp_path, monkeypatch):
    """bench builds no charts (viz is above it): the CLI, and so run configs, pass viz's writer."""
    import interpkit.bench
    from interpkit.viz import write_bench_charts

    seen = []

    def fake_bench(mode, task, **kw):
        seen.append(kw["charts"])
        return {"task": {"name": "t"}, "site": "s", "model": "m"}

    monkeypatch.setattr(interpkit.bench, "bench", fake_bench)
    base = ["bench", "detect", "--task", str(TASK), "--out", str(tmp_path / "o"), "--quiet"]
    assert _cli(base) == 0 and _cli([*base, "--no-charts"]) == 0
    assert seen == [write_bench_charts, None]


def test_interpkit_run_bench_writes_the_charts_unless_told_not_to(tiny, tmp_path):
    """`interpkit.run_bench` (the runs-layer entry point) gives Python users the command's charts/."""
    import interpkit

    kw = dict(model=tiny, layer=1, methods=["diffmean"], max_length=60, cache_dir=tmp_path / "cache", progress=False)
    interpkit.run_bench("detect", TASK, out=tmp_path / "with", **kw)
    interpkit.run_bench("detect", TASK, out=tmp_path / "without", charts=False, **kw)
    assert (tmp_path / "with" / "charts" / "auroc_by_method.vl.json").is_file()
    assert not (tmp_path / "without" / "charts").exists()
    assert (tmp_path / "without" / "results.json").is_file()
