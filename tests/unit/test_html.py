"""HTML feature cards: structure, token highlights, escaping, no network references, robustness."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest

import interpkit
from interpkit.report import InputFile, load_report

VOID = {"meta", "link", "br", "img", "input", "hr", "col", "area", "base", "wbr", "source", "track", "embed"}
SVG_LEAVES = {"rect", "line", "path", "circle"}  # self-closed with "/>" in the page's inline SVG
HOSTILE = '<script>alert("x")</script>'


class Page(HTMLParser):
    """Collects tags with attributes and checks that every non-void element is closed in order."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.data: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1] if self.stack else 'nothing'}")
            return
        self.stack.pop()

    def handle_data(self, data):
        (self.script_bodies if self._in_script else self.data).append(data)

    def find(self, tag: str, cls: str | None = None) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag and (cls is None or cls in (a.get("class") or "").split())]

    @property
    def text(self) -> str:
        return "".join(self.data)


def parse(text: str) -> Page:
    page = Page(text)
    assert page.errors == [] and page.stack == [], (page.errors, page.stack)
    return page


def example(text_tokens, values, example_id="e1"):
    return {"example_id": example_id, "text": "".join(text_tokens), "activation": max(values),
            "tokens": list(text_tokens), "token_activations": list(values)}


def explanation(fid: str) -> dict:
    return {
        "feature_id": fid,
        "label": "cats & <dogs>",
        "label_source": "smollm2-135m",
        "label_score": 0.81,
        "label_scoring": {"method": "embedding-detection", "metric": "auroc", "n_positive": 10, "n_negative": 10},
        "top_examples": [
            example(["<s>", "The", " cat", " sat", "\n", HOSTILE], [0.0, 1.0, 4.0, 2.0, -1.0, 0.5], "t1"),
            example(["A", " ", "kitten", "\t", "purrs"], [0.5, 0.0, 3.0, 0.0, 1.0], "t2"),
        ],
        "quantile_examples": [
            {"name": "q1", "lo": 0.1, "hi": 1.0, "examples": [example(["a", " dog"], [0.2, 0.8], "q1a")]},
        ],
        "histogram": {"edges": [0.0, 1.0, 2.0, 3.0, 4.0], "counts": [50, 20, 5, 1]},
        "density": 0.37,
        "logit_effects": {"method": "W_U", "promoted": [{"token": " cat", "value": 1.9}, {"token": HOSTILE, "value": 0.5}],
                          "suppressed": [{"token": " car", "value": -1.2}]},
        "self_explanation": {"method": "patchscope", "prompt": "x -> x", "layer": 3, "scale": 8.0,
                             "text": "Cats and kittens"},
        "errors": {"autolabel": "chat model said <nothing>"},
    }


@pytest.fixture(scope="module")
def pipeline():
    """The toy report as ``inspect`` builds it (with whatever explanations the pipeline attaches)."""
    return interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=3, n_permutations=100, n_bootstrap=10)


@pytest.fixture(scope="module")
def toy(pipeline):
    """The toy report with every explanation removed: cards fall back to the entries' own fields."""
    return dataclasses.replace(pipeline, features=tuple(dataclasses.replace(f, explanation=None)
                                                        for f in pipeline.features))


@pytest.fixture(scope="module")
def rich(toy):
    feats = list(toy.features)
    feats[0] = dataclasses.replace(feats[0], explanation=explanation(feats[0].feature_id),
                                   imported_causal_effects={"ablate": -0.4, "weird<key>": 0.1})
    feats[1] = dataclasses.replace(feats[1], explanation={"label": None, "histogram": None, "top_examples": None,
                                                          "quantile_examples": [{"examples": None}],
                                                          "logit_effects": {"promoted": None}, "errors": None})
    inputs = (InputFile(role="dataset", path="data/<p>.jsonl", sha256="ab" * 32, rows=7),)
    return dataclasses.replace(toy, features=tuple(feats), inputs=inputs,
                               warnings=(*toy.warnings, f"hostile warning {HOSTILE}"))


def test_one_card_per_feature_and_summary_links(toy):
    page = parse(toy.to_html())
    cards = page.find("article", "card")
    assert len(cards) == len(toy.features) == 3
    ids = [c["id"] for c in cards]
    assert len(set(ids)) == 3
    links = [a["href"] for a in page.find("a") if (a.get("href") or "").startswith("#")]
    assert links == [f"#{i}" for i in ids]
    for f in toy.features:
        assert f.feature_id in page.text and f.label in page.text
        assert f.components["tier"] in page.text


def test_pipeline_explanations_render(pipeline):
    explained = [f for f in pipeline.features if f.explanation]
    assert explained, "inspect attaches explanations to the top features"
    page = parse(pipeline.to_html())
    assert len(page.find("svg", "histsvg")) == sum(1 for f in explained if (f.explanation.get("histogram") or {}))
    n_bars = sum(len(f.explanation["histogram"]["counts"]) for f in explained if f.explanation.get("histogram"))
    assert len(page.find("rect", "bar")) == n_bars
    n_scored = 0
    for f in explained:
        scores = {e["example_id"]: e["criterion_score"] for e in f.top_examples}
        for ex in f.explanation.get("top_examples") or ():
            assert ex["text"] in page.text
            n_scored += scores.get(ex["example_id"]) is not None
        for group in f.explanation.get("quantile_examples") or ():
            assert f"Quantile {group['name']}" in page.text
    # criterion scores come from the entry's own examples when the explanation lacks them
    assert n_scored > 0 and len(page.find("span", "crit")) >= n_scored


def test_histogram_clips_a_dominant_bin(toy):
    entry = dataclasses.replace(toy.features[0], explanation={"histogram": {"edges": [0, 1, 2, 3],
                                                                             "counts": [1000, 10, 5]}})
    page = parse(dataclasses.replace(toy, features=(entry,)).to_html())
    heights = [float(b["height"]) for b in page.find("rect", "bar")]
    assert heights[0] == pytest.approx(86.0) and heights[1] == pytest.approx(86.0 * 10 / 12.5)
    assert "1000 (clipped)" in page.text


def test_toy_report_falls_back_to_entry_top_examples(toy):
    page = parse(toy.to_html())
    assert "(ranking table)" in page.text
    texts = [ex["text"] for f in toy.features for ex in f.top_examples]
    assert all(t in page.text for t in texts)
    assert page.find("span", "tok") == []  # no token activations, so nothing highlighted
    assert "no histogram" in page.text


def test_synthetic_banner_and_header(toy, rich):
    page = parse(toy.to_html())
    banners = page.find("div", "synthetic")
    assert banners and "SYNTHETIC DATA." in page.text
    for key in ("model", "backend", "criterion", "top_k", "n_permutations"):
        assert key in page.text
    assert toy.warnings[0] in page.text
    real = dataclasses.replace(toy, synthetic=False)
    assert parse(real.to_html()).find("div", "synthetic") == []
    page = parse(rich.to_html())
    assert "data/<p>.jsonl" in page.text and "abababababab…" in page.text
    assert [c for c in page.find("code") if c.get("title") == "ab" * 32]


def test_token_highlights_have_expected_intensity(rich):
    page = parse(rich.to_html())
    toks = page.find("span", "tok")
    # 6 + 5 top tokens and 2 quantile tokens, all scaled by the feature max |activation| = 4.0
    assert len(toks) == 13
    by_value = {}
    for t in toks:
        m = re.fullmatch(r"background:rgba\((\d+),(\d+),(\d+),([0-9.]+)\)", t["style"])
        assert m, t["style"]
        by_value.setdefault(t["title"], set()).add((m.group(1), float(m.group(4))))
    assert by_value["4.000"] == {("255", 1.0)}
    assert by_value["2.000"] == {("255", 0.5)}
    assert by_value["0.800"] == {("255", 0.2)}
    assert by_value["-1.000"] == {("40", 0.25)}  # negative values use the blue scale
    assert by_value["0.000"] == {("255", 0.0)}
    assert "highlight = activation / 4.000" in page.text


def test_whitespace_tokens_visible(rich):
    html = rich.to_html()
    page = parse(html)
    ws = page.find("span", "ws")
    assert len(ws) == 3  # "\n", " ", "\t"
    assert "\u21b5<br>" in html and "\u21e5" in html


def test_hostile_text_is_escaped(rich):
    html = rich.to_html()
    page = parse(html)
    assert len(page.find("script")) == 1  # only the page's own sorting script
    assert "alert" not in "".join(page.script_bodies)
    assert HOSTILE in page.text  # shown as text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "cats & <dogs>" in page.text and "weird<key>" in page.text
    assert "chat model said <nothing>" in page.text
    assert f"hostile warning {HOSTILE}" in page.text


def test_control_characters_and_surrogates_are_safe(toy):
    entry = dataclasses.replace(toy.features[0], label="nul\x00bell\x07 \ud800",
                                explanation={"top_examples": [example(["a\x00", "\x1b[31m"], [1.0, 2.0])]})
    html = dataclasses.replace(toy, features=(entry,)).to_html()
    assert "\x00" not in html and "\x07" not in html and "\x1b" not in html
    html.encode("utf-8")  # no lone surrogate left
    parse(html)
    assert "\u2400" in html and "\u241b" in html


def test_no_external_references(rich):
    html = rich.to_html()
    page = parse(html)
    for tag, attrs in page.tags:
        for name in ("src", "href", "action", "xlink:href", "data"):
            value = attrs.get(name)
            if value is None:
                continue
            assert not re.match(r"\s*(https?:|//|ftp:)", value, re.I), (tag, name, value)
            assert value.startswith(("#", "data:")), (tag, name, value)
    assert "http://" not in html and "https://" not in html
    assert "@import" not in html and "url(" not in html
    csp = [a for a in page.find("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_rich_card_sections(rich):
    page = parse(rich.to_html())
    text = page.text
    assert "label score" in text and "0.810" in text and "embedding-detection" in text and "10+/10−" in text
    assert "by smollm2-135m" in text and "table label: planted carrier" in text
    svg = page.find("svg", "histsvg")
    assert len(svg) == 1
    bars = page.find("rect", "bar")
    assert len(bars) == 4
    heights = [float(b["height"]) for b in bars]
    assert heights[0] == max(heights) and heights == sorted(heights, reverse=True)
    assert "activation" in text and "count" in text and "37.00%" in text
    assert len(page.find("span", "promoted")) == 2 and len(page.find("span", "suppressed")) == 1
    widths = [a["style"] for a in page.find("span", "promoted")]
    assert widths[0] == "width:100.0%"  # 1.9 is the largest |value| of the feature's logit effects
    assert "Cats and kittens" in text and "patchscope" in text
    assert page.find("section", "errors") and "autolabel" in text
    assert "imported from the feature dump" in text and "-0.400" in text
    assert "ablate" in text and "steer" in text  # the toy backend's causal records
    assert page.find("details", "quant") and "Quantile q1" in text


def test_missing_and_null_fields(rich, toy):
    page = parse(rich.to_html())
    cards = page.find("article", "card")
    assert len(cards) == 3
    bare = dataclasses.replace(toy.features[0], label=None, components={}, top_examples=(), causal_records=(),
                               imported_causal_effects={}, explanation={})
    odd = dataclasses.replace(toy.features[1], components={"tier": None, "association": None, "causal": "x",
                                                           "specificity": {"value": 0.5}, "combined": "n/a"},
                              explanation={"histogram": {"edges": [0, 1], "counts": [1, 2]}, "density": "x",
                                           "top_examples": [{"text": None}, "junk", {"tokens": ["a"],
                                                            "token_activations": [None]}],
                                           "logit_effects": {"promoted": [{"token": "t"}], "suppressed": "x"},
                                           "label_scoring": {"method": "m"}, "self_explanation": {}})
    html = dataclasses.replace(toy, features=(bare, odd), settings={"nested": {"b": 1, "a": [1, 2]}}).to_html()
    page = parse(html)
    assert len(page.find("article", "card")) == 2
    assert "unlabelled" in page.text and "no examples recorded" in page.text
    assert "histogram malformed" in page.text
    assert '{"a": [1, 2], "b": 1}' in page.text
    empty = dataclasses.replace(toy, features=())
    assert "no features in this report" in parse(empty.to_html()).text


def test_long_context_is_windowed_around_the_maximum(toy):
    tokens = [f" w{i}" for i in range(200)]
    values = [0.0] * 200
    values[150] = 5.0
    entry = dataclasses.replace(toy.features[0], explanation={"top_examples": [example(tokens, values)]})
    page = parse(dataclasses.replace(toy, features=(entry,)).to_html())
    assert " w150" in page.text and "full context (200 tokens)" in page.text
    shown = page.text.split("full context")[0]
    assert " w0 " not in shown and " w120" in shown
    assert re.search(r"…\d+ tokens", shown)


def test_deterministic_and_round_trip(rich, tmp_path):
    first = rich.to_html()
    assert first == rich.to_html()
    saved = rich.save(tmp_path)
    assert load_report(saved.path).to_html() == first


def test_save_html_is_atomic(rich, tmp_path, monkeypatch):
    path = tmp_path / "sub" / "report.html"
    out = rich.save_html(path)
    before = path.read_text(encoding="utf-8")
    assert out == path and before == rich.to_html()
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]

    import interpkit.report._html as module

    def boom(report):
        raise RuntimeError("render failed")

    monkeypatch.setattr(module, "render_html", boom)
    with pytest.raises(RuntimeError, match="render failed"):
        rich.save_html(path)
    assert path.read_text(encoding="utf-8") == before  # the old page is untouched, no temp file left
    assert [p.name for p in path.parent.iterdir()] == ["report.html"]


def test_any_json_in_the_explanation_renders(toy):
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies
    scalar = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=True) | st.text(max_size=8)
    json_value = st.recursive(scalar, lambda inner: st.lists(inner, max_size=3)
                              | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
    keys = ["label", "label_source", "label_score", "label_scoring", "top_examples", "quantile_examples",
            "histogram", "density", "logit_effects", "self_explanation", "errors"]
    example_like = st.fixed_dictionaries({}, optional={"text": json_value, "activation": json_value,
                                                       "tokens": json_value, "token_activations": json_value,
                                                       "example_id": json_value})
    explanation_like = st.dictionaries(st.sampled_from(keys), json_value | st.lists(example_like, max_size=2))

    @hypothesis.settings(max_examples=60, deadline=None, database=None)
    @hypothesis.given(explanation_like)
    def check(expl):
        entry = dataclasses.replace(toy.features[0], explanation=expl)
        html = dataclasses.replace(toy, features=(entry,)).to_html()
        html.encode("utf-8")
        assert len(parse(html).find("article", "card")) == 1

    check()
