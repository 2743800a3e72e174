"""Neuronpedia source: refs, the client against a loopback server, exports, and the conversions.

The server serves the recorded-format fixtures in tests/data/neuronpedia at
/api/feature/<model>/<source>/<index>; a test can queue scripted answers (429, 5xx, garbage) for a
path before the fixture is served. Waits go to a recorder instead of sleeping.
"""

from __future__ import annotations

import copy
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from interpkit.records import RecordError
from interpkit.sources.dumps import table_from_feature_dumps
from interpkit.sources.neuronpedia import (
    NeuronpediaClient,
    NeuronpediaError,
    NeuronpediaRef,
    explanation_from_neuronpedia,
    feature_dump_from_json,
    fingerprint_from_neuronpedia,
    load_neuronpedia_features,
    parse_ref,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "neuronpedia"
GEMMA_FILE = DATA / "gemma-2-2b__20-gemmascope-res-16k__1234.json"
GPT2_FILE = DATA / "gpt2-small__8-res-jb__5000.json"
EXPL_FILE = DATA / "explanations-export.jsonl"
GEMMA = json.loads(GEMMA_FILE.read_text())
GPT2 = json.loads(GPT2_FILE.read_text())
GEMMA_REF = NeuronpediaRef("gemma-2-2b", "20-gemmascope-res-16k", 1234)
GPT2_REF = NeuronpediaRef("gpt2-small", "8-res-jb", 5000)


def _path(ref: NeuronpediaRef) -> str:
    return f"/api/feature/{ref.model_id}/{ref.source}/{ref.index}"


class _State:
    def __init__(self) -> None:
        self.features = {_path(GEMMA_REF): GEMMA, _path(GPT2_REF): GPT2}
        self.script: dict[str, list[tuple[int, dict[str, str], bytes]]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []

    def queue(self, ref: NeuronpediaRef, *answers: tuple[int, dict[str, str], bytes]) -> None:
        self.script.setdefault(_path(ref), []).extend(answers)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        state: _State = self.server.state  # type: ignore[attr-defined]
        state.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        queued = state.script.get(self.path)
        if queued:
            status, headers, body = queued.pop(0)
        elif self.path in state.features:
            status, headers, body = 200, {}, json.dumps(state.features[self.path]).encode()
        else:
            status, headers, body = 404, {}, b'{"error":"Feature Not Found"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def _httpd():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def server(_httpd, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("http_proxy", "HTTP_PROXY", "NEURONPEDIA_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    _httpd.state = _State()
    _httpd.url = f"http://127.0.0.1:{_httpd.server_address[1]}"
    return _httpd


@pytest.fixture
def waits():
    return []


@pytest.fixture
def make_client(server, tmp_path, waits):
    def make(**kw):
        kw.setdefault("cache_dir", tmp_path / "cache")
        kw.setdefault("backoff", 0.25)
        return NeuronpediaClient(server.url, sleep=waits.append, **kw)

    return make


# ---------------------------------------------------------------- refs


@pytest.mark.parametrize("text", [
    "gemma-2-2b@20-gemmascope-res-16k:1234",
    "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234",
    "https://www.neuronpedia.org/api/feature/gemma-2-2b/20-gemmascope-res-16k/1234",
    "  https://neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234?embed=true  ",
])
def test_parse_ref_accepts_the_three_forms(text):
    ref = parse_ref(text)
    assert ref == GEMMA_REF
    assert ref.id == "gemma-2-2b@20-gemmascope-res-16k:1234"
    assert parse_ref(ref.page_url) == ref and parse_ref(ref.api_url()) == ref
    assert ref.api_url("http://host:1/") == "http://host:1/api/feature/gemma-2-2b/20-gemmascope-res-16k/1234"


@pytest.mark.parametrize("text", [
    "gemma-2-2b/20-gemmascope-res-16k/1234", "gemma-2-2b@20-gemmascope-res-16k:abc", "gemma-2-2b:1234",
    "https://www.neuronpedia.org/gemma-2-2b/1234", "https://www.neuronpedia.org/api/feature/a/b/c/1", "",
])
def test_parse_ref_error_names_the_accepted_forms(text):
    with pytest.raises(ValueError) as info:
        parse_ref(text)
    msg = str(info.value)
    assert repr(text) in msg and "model@source:index" in msg and "page URL" in msg and "API URL" in msg


# ---------------------------------------------------------------- client: success, key, cache


def test_fetch_returns_the_feature_and_sends_no_key_by_default(server, make_client):
    raw = make_client().feature("gemma-2-2b@20-gemmascope-res-16k:1234")
    assert raw == GEMMA
    assert [p for p, _ in server.state.requests] == [_path(GEMMA_REF)]
    assert "x-api-key" not in server.state.requests[0][1]


def test_api_key_header_sent_when_configured(server, make_client, monkeypatch):
    make_client(api_key="secret-1", use_cache=False).feature(GEMMA_REF)
    monkeypatch.setenv("NEURONPEDIA_API_KEY", "from-env")
    make_client(use_cache=False).feature(GEMMA_REF)
    make_client(api_key="", use_cache=False).feature(GEMMA_REF)
    keys = [h.get("x-api-key") for _, h in server.state.requests]
    assert keys == ["secret-1", "from-env", None]


def test_cache_avoids_a_second_request(server, make_client):
    client = make_client()
    first = client.feature(GEMMA_REF)
    assert client.feature(GEMMA_REF) == first
    assert make_client().feature(GEMMA_REF) == first  # a new client, same cache folder
    assert len(server.state.requests) == 1 and client.requests_made == 1


def test_default_cache_lives_under_interpkit_cache(server, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERPKIT_CACHE", str(tmp_path / "ik"))
    client = NeuronpediaClient(server.url)
    assert client.cache is not None and client.cache.folder == tmp_path / "ik" / "neuronpedia"
    client.feature(GPT2_REF)
    assert any((tmp_path / "ik" / "neuronpedia").rglob("*.json"))


# ---------------------------------------------------------------- client: errors and retries


def test_unknown_feature_404_names_the_ref(server, make_client):
    ref = NeuronpediaRef("gemma-2-2b", "20-gemmascope-res-16k", 999999)
    with pytest.raises(NeuronpediaError) as info:
        make_client().feature(ref)
    assert info.value.status == 404 and ref.id in str(info.value) and "no such feature" in str(info.value)
    assert ref.page_url in str(info.value)
    assert len(server.state.requests) == 1  # a 404 is not retried


def test_null_answer_is_an_unknown_feature(server, make_client):
    # the webapp's route answers 200 with `null` when getNeuronOptimized finds nothing
    server.state.queue(GEMMA_REF, (200, {}, b"null"))
    client = make_client()
    with pytest.raises(NeuronpediaError, match=r"gemma-2-2b@20-gemmascope-res-16k:1234: no such feature"):
        client.feature(GEMMA_REF)
    assert client.cache.get(client.url(GEMMA_REF)) is None


def test_429_waits_as_retry_after_says_then_succeeds(server, make_client, waits):
    server.state.queue(GEMMA_REF, (429, {"Retry-After": "7"}, b'{"error":"rate limited"}'))
    assert make_client().feature(GEMMA_REF) == GEMMA
    assert waits == [7.0] and len(server.state.requests) == 2


def test_500_then_success_backs_off(server, make_client, waits):
    server.state.queue(GEMMA_REF, (500, {}, b"oops"), (502, {}, b"bad gateway"))
    assert make_client().feature(GEMMA_REF) == GEMMA
    assert waits == [0.25, 0.5] and len(server.state.requests) == 3


def test_persistent_503_gives_up_and_says_attempts(server, make_client, waits):
    server.state.queue(GEMMA_REF, *[(503, {}, b"down for maintenance")] * 10)
    client = make_client(retries=2)
    with pytest.raises(NeuronpediaError) as info:
        client.feature(GEMMA_REF)
    msg = str(info.value)
    assert "gave up after 3 attempt(s)" in msg and "503" in msg and GEMMA_REF.id in msg
    assert len(server.state.requests) == 3 and waits == [0.25, 0.5]
    assert client.cache.get(client.url(GEMMA_REF)) is None


def test_malformed_json_is_refused_and_not_cached(server, make_client):
    server.state.queue(GEMMA_REF, (200, {}, b"<html>Neuronpedia is updating</html>"))
    client = make_client()
    with pytest.raises(NeuronpediaError, match=r"not JSON.*Neuronpedia is updating"):
        client.feature(GEMMA_REF)
    assert client.cache.get(client.url(GEMMA_REF)) is None
    assert client.feature(GEMMA_REF) == GEMMA  # the next answer is fine and gets used


def _drop(key):
    return lambda d: d.pop(key)


def _set(path, value):
    def edit(d):
        *head, last = path
        for k in head:
            d = d[k]
        d[last] = value
    return edit


@pytest.mark.parametrize(("edit", "field"), [
    (_drop("modelId"), "'modelId'"),
    (_set(["index"], "twelve"), "'index'"),
    (_set(["activations", 0, "values"], "0 0 3.1"), "'activations[0].values'"),
    (_set(["activations", 2, "values"], [1.0, 2.0]), "'activations[2].values'"),
    (lambda d: d["activations"][1].pop("tokens"), "'activations[1].tokens'"),
    (_set(["activations", 0, "maxValue"], "41.7"), "'activations[0].maxValue'"),
    (_set(["explanations"], {"description": "x"}), "'explanations'"),
    (_set(["explanations", 0, "description"], None), "'explanations[0].description'"),
    (_set(["pos_values"], [0.9]), "'pos_values'"),
    (_set(["frac_nonzero"], "0.2%"), "'frac_nonzero'"),
    (_drop("activations"), "'activations'"),
])
def test_wrong_shape_names_the_field_and_the_url(server, make_client, edit, field):
    bad = copy.deepcopy(GEMMA)
    edit(bad)
    server.state.queue(GEMMA_REF, (200, {}, json.dumps(bad).encode()))
    client = make_client()
    with pytest.raises(RecordError) as info:
        client.feature(GEMMA_REF)
    assert f"field {field}" in str(info.value) and client.url(GEMMA_REF) in str(info.value)
    assert client.cache.get(client.url(GEMMA_REF)) is None


def test_answer_for_another_feature_is_refused(server, make_client):
    server.state.queue(GEMMA_REF, (200, {}, json.dumps(GPT2).encode()))
    with pytest.raises(NeuronpediaError, match="different feature, gpt2-small@8-res-jb:5000"):
        make_client().feature(GEMMA_REF)


# ---------------------------------------------------------------- offline and exports


def test_offline_refuses_the_network_and_says_where_it_looked(server, make_client):
    client = make_client(offline=True, exports=[GPT2_FILE])
    with pytest.raises(NeuronpediaError) as info:
        client.feature(GEMMA_REF)
    msg = str(info.value)
    assert "offline" in msg and GEMMA_REF.id in msg and str(client.cache.path(client.url(GEMMA_REF))) in msg
    assert "1 export file(s)" in msg and str(GPT2_FILE) in msg
    assert server.state.requests == []


def test_offline_serves_from_cache_and_exports(server, make_client):
    make_client().feature(GEMMA_REF)  # online once, fills the cache
    offline = make_client(offline=True, exports=[GPT2_FILE])
    assert offline.feature(GEMMA_REF) == GEMMA
    assert offline.feature("https://www.neuronpedia.org/gpt2-small/8-res-jb/5000") == GPT2
    assert len(server.state.requests) == 1 and offline.requests_made == 0


def test_export_file_forms(tmp_path):
    listed = tmp_path / "features.json"
    listed.write_text(json.dumps([GPT2, GEMMA], indent=2))
    jsonl = tmp_path / "features.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as fh:
        fh.write(json.dumps(GEMMA) + "\n\n" + json.dumps(GPT2) + "\n")
    for files, order in (([listed], ["gpt2", "gemma"]), ([jsonl], ["gemma", "gpt2"]),
                         ([GEMMA_FILE, GPT2_FILE], ["gemma", "gpt2"])):
        client = NeuronpediaClient(offline=True, use_cache=False)
        got = load_neuronpedia_features(files=files, client=client)
        assert [d.model.split("-")[0] for d, _ in got] == order
        by_model = {d.model: d for d, _ in got}
        assert by_model["gemma-2-2b"].examples == feature_dump_from_json(GEMMA).examples


def _bad_file_cases(tmp_path):
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps(GPT2) + "\n" + '{"modelId": "gpt2-small", "layer":\n')
    missing = tmp_path / "missing.jsonl"
    row = {k: v for k, v in GPT2.items() if k != "modelId"}
    missing.write_text("\n".join([json.dumps(GEMMA), "", json.dumps(row)]) + "\n")
    listed = tmp_path / "list.json"
    bad = copy.deepcopy(GPT2)
    bad["activations"][3]["values"] = None
    listed.write_text("[\n" + json.dumps(GEMMA) + ",\n\n  " + json.dumps(bad) + "\n]\n")
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "modelId": "gpt2-small",\n  "layer": 8-res-jb\n}\n')
    return [(jsonl, f"{jsonl}:2:", "JSON"), (missing, f"{missing}:3:", "field 'modelId'"),
            (listed, f"{listed}:4:", "field 'activations[3].values'"), (empty, f"{empty}:", "empty file"),
            (broken, f"{broken}:3:", "valid JSON")]


def test_export_errors_name_file_and_line(tmp_path):
    for path, where, what in _bad_file_cases(tmp_path):
        with pytest.raises(RecordError) as info:
            load_neuronpedia_features(files=[path], client=NeuronpediaClient(offline=True, use_cache=False))
        assert str(info.value).startswith(where) and what in str(info.value), str(info.value)


def test_explanations_only_export_gives_labels_and_says_there_are_no_examples():
    got = load_neuronpedia_features(files=[EXPL_FILE], client=NeuronpediaClient(offline=True, use_cache=False))
    assert [d.feature_id for d, _ in got] == [f"gemma-2-2b@20-gemmascope-res-16k:{i}" for i in (1234, 77, 78)]
    dump, expl = got[1]
    assert dump.label == "legal terms about contracts" and dump.examples == ()
    assert "explanations-only" in dump.extra["neuronpedia_notes"][0]
    assert expl["label"] == dump.label and expl["label_source"] == "neuronpedia"
    assert expl["top_examples"] == [] and "no activation examples" in expl["errors"]["neuronpedia"]


def test_export_rows_of_one_feature_are_merged(tmp_path):
    acts = tmp_path / "activations.jsonl"
    acts.write_text("".join(json.dumps(a) + "\n" for a in reversed(GEMMA["activations"])))
    got = load_neuronpedia_features(files=[EXPL_FILE, acts],
                                    client=NeuronpediaClient(offline=True, use_cache=False))
    dump = {d.feature_id: d for d, _ in got}[GEMMA_REF.id]
    assert dump.label == GEMMA["explanations"][0]["description"]
    assert [e["activation"] for e in dump.examples] == sorted((a["maxValue"] for a in GEMMA["activations"]),
                                                             reverse=True)
    assert dump.extra["neuronpedia_notes"] == []


def test_load_refs_then_the_files_other_features(server, make_client):
    client = make_client()
    got = load_neuronpedia_features([GPT2_REF.page_url, GEMMA_REF.id], client=client, files=[GEMMA_FILE])
    assert [d.feature_id for d, _ in got] == [GPT2_REF.id, GEMMA_REF.id]
    assert [p for p, _ in server.state.requests] == [_path(GPT2_REF)]  # gemma came from the file


# ---------------------------------------------------------------- conversions


def test_feature_dump_from_json():
    dump = feature_dump_from_json(GEMMA, where="x.json")
    assert (dump.feature_id, dump.model, dump.layer, dump.source) == (
        GEMMA_REF.id, "gemma-2-2b", "20-gemmascope-res-16k", "neuronpedia")
    assert dump.label == "four-digit years, especially in historical dates"
    assert len(dump.examples) == len(GEMMA["activations"])
    for ex, act in zip(dump.examples, GEMMA["activations"], strict=True):
        assert ex["tokens"] == act["tokens"] and ex["token_activations"] == act["values"]
        assert ex["text"] == "".join(act["tokens"][1:]) and ex["activation"] == max(act["values"]) == act["maxValue"]
        assert ex["max_token_index"] == act["maxValueTokenIndex"]
    assert dump.extra["density"] == GEMMA["frac_nonzero"]
    assert [p["token"] for p in dump.extra["pos_logits"]] == GEMMA["pos_str"]
    assert dump.extra["neuronpedia_url"] == "https://www.neuronpedia.org/gemma-2-2b/20-gemmascope-res-16k/1234"
    assert json.loads(json.dumps(dump.to_dict()))["label"] == dump.label


def test_explanation_schema_from_gemma():
    expl = explanation_from_neuronpedia(GEMMA)
    json.dumps(expl)
    assert expl["feature_id"] == GEMMA_REF.id and expl["label_source"] == "neuronpedia"
    top = expl["top_examples"]
    assert [e["activation"] for e in top] == [41.7, 39.8, 37.3, 36.9, 35.2]
    for e in top + [e for q in expl["quantile_examples"] for e in q["examples"]]:
        assert len(e["tokens"]) == len(e["token_activations"])
        assert max(e["token_activations"]) == e["activation"]
        assert e["text"] == "".join(e["tokens"]).removeprefix("<bos>")
    assert top[0]["tokens"][7] == "1" and top[0]["token_activations"][7] == 41.7
    assert [(q["name"], q["lo"], q["hi"], len(q["examples"])) for q in expl["quantile_examples"]] == [
        ("q1", 0.0, 8.34, 1), ("q2", 8.34, 16.68, 2)]
    hist = expl["histogram"]
    assert len(hist["edges"]) == len(hist["counts"]) + 1 == 17 and hist["counts"][0] == 1420
    centres = [(a + b) / 2 for a, b in zip(hist["edges"], hist["edges"][1:], strict=False)]
    assert centres == pytest.approx(GEMMA["freq_hist_data_bar_values"])
    assert expl["density"] == 0.00213
    assert [p["token"] for p in expl["logit_effects"]["promoted"]] == GEMMA["pos_str"]
    assert [p["value"] for p in expl["logit_effects"]["suppressed"]] == GEMMA["neg_values"]
    assert expl["neuronpedia"]["other_labels"] == ["numbers and digits in dates"]
    assert "errors" not in expl


def test_explanation_without_bins_puts_everything_in_top_examples():
    expl = explanation_from_neuronpedia(GPT2, n_top=3)
    assert [e["activation"] for e in expl["top_examples"]] == [6.83, 5.97, 5.44]
    assert expl["quantile_examples"] == []


def test_fingerprint_is_stable_and_weighted():
    fp = fingerprint_from_neuronpedia(GPT2)
    assert fp == fingerprint_from_neuronpedia(copy.deepcopy(GPT2))
    assert json.loads(json.dumps(fp)) == fp
    toks = {t["token"]: t["weight"] for t in fp["top_activating_tokens"]}
    assert set(toks) == {"cups", "table", "cup", "teaspoon"}
    assert sum(toks.values()) == pytest.approx(1.0)
    assert toks["cups"] == pytest.approx(6.83 / (6.83 + 5.97 + 5.44 + 5.21), abs=1e-6)
    assert [t["token"] for t in fp["top_logit_tokens"]] == GPT2["pos_str"]
    assert (fp["label"], fp["density"], fp["index"]) == ("units of measurement in recipes", 0.000481, 5000)


def test_feature_table_round_trip():
    pairs = load_neuronpedia_features(files=[GEMMA_FILE, GPT2_FILE],
                                      client=NeuronpediaClient(offline=True, use_cache=False))
    dumps = [d for d, _ in pairs]
    texts = [e["text"] for d in dumps for e in d.examples]
    scores = {t: float("1815" in t or "cups" in t) for t in texts}
    table, warnings, causal = table_from_feature_dumps(dumps, scores=scores)
    assert table.feature_ids == [GEMMA_REF.id, GPT2_REF.id] and causal == {}
    assert table.values.shape == (len(texts), 2)
    assert list(table.examples["text"]) == texts
    j = table.examples.index[table.examples["text"] == "The treaty was signed in 1815, ending the war."][0]
    assert table.values[j, 0] == pytest.approx(41.7) and table.values[j, 1] == 0.0
    assert list(table.features["label"]) == [d.label for d in dumps]
    assert list(table.features["source"]) == ["neuronpedia", "neuronpedia"]
    assert any("not listed" in w for w in warnings)
