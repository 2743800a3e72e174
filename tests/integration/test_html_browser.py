"""The HTML report in a real headless Chromium: no network, no errors, visible cards, a non-blank screenshot.

Needs the ``playwright`` Python package and Debian's ``/usr/bin/chromium`` (``make install`` sets both up;
playwright's own browser download is never used).
"""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import pytest

import interpkit
from interpkit.report import InputFile

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def _example(tokens, values, example_id):
    return {"example_id": example_id, "text": "".join(tokens), "activation": max(values),
            "tokens": tokens, "token_activations": values}


def _report():
    base = interpkit.inspect("toy", "mentions a cat", backend="toy", top_k=3, n_permutations=100, n_bootstrap=10)
    explanation = {
        "label": "cats and kittens", "label_source": "smollm2-135m", "label_score": 0.81,
        "label_scoring": {"method": "embedding-detection", "metric": "auroc", "n_positive": 10, "n_negative": 10},
        "top_examples": [
            _example(["<s>", "The", " cat", " sat", " on", " the", " mat", "\n", "<script>alert(1)</script>"],
                     [0.0, 0.3, 4.0, 1.5, 0.2, 0.1, 0.6, -0.8, 0.4], "t1"),
            _example(["A", " small", " kitten", "\t", "purrs", "."], [0.1, 0.6, 3.2, 0.0, 1.1, 0.0], "t2"),
        ],
        "quantile_examples": [{"name": "q2", "lo": 0.5, "hi": 1.5,
                               "examples": [_example(["my", " dog", " barks"], [0.2, 0.9, 0.1], "q2a")]}],
        "histogram": {"edges": [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0],
                      "counts": [120, 60, 30, 14, 8, 4, 2, 1]},
        "density": 0.12,
        "logit_effects": {"method": "W_U", "promoted": [{"token": " cat", "value": 1.9}, {"token": " cats", "value": 1.4}],
                          "suppressed": [{"token": " car", "value": -1.2}]},
        "self_explanation": {"method": "patchscope", "prompt": "cat -> cat; x ->", "layer": 3, "scale": 8.0,
                             "text": " a small furry animal"},
        "errors": {"autolabel": "example failure <b>shown as text</b>"},
    }
    feats = [dataclasses.replace(f, explanation=None) for f in base.features]
    feats[0] = dataclasses.replace(feats[0], explanation=explanation, imported_causal_effects={"ablate": -0.4})
    inputs = (InputFile(role="dataset", path="data/prompts.jsonl", sha256="0123456789abcdef" * 4, rows=12),)
    return dataclasses.replace(base, features=tuple(feats), inputs=inputs)


def _png_colours(data: bytes) -> tuple[int, int, int]:
    """(width, height, distinct colours) of an 8-bit RGB/RGBA, non-interlaced PNG, decoded with zlib."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev, colours = bytearray(stride), set()
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a, b, c = line[i - bpp] if i >= bpp else 0, prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        if y % 4 == 0:  # sampling every 4th row is plenty to count colours
            colours.update(bytes(line[x:x + 3]) for x in range(0, stride, bpp * 2))
        prev = line
    return width, height, len(colours)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install chromium`, see make install)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing: `pip install playwright` "
                                   "(the Python package only; the browser is /usr/bin/chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield b
        b.close()


def test_report_renders_offline_in_chromium(browser, tmp_path):
    report = _report()
    page_path = report.save_html(tmp_path / "report.html")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests, console, errors = [], [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(page_path.resolve().as_uri(), wait_until="load")

    assert requests and all(u.startswith(("file:", "data:", "about:")) for u in requests), requests
    assert console == [] and errors == []
    assert page.title() == "interpkit report: mentions a cat"
    assert page.locator(".synthetic").first.is_visible()

    cards = page.locator("article.card")
    assert cards.count() == 3
    for i in range(3):
        box = cards.nth(i).bounding_box()
        assert box and box["width"] > 300 and box["height"] > 50
    toks = page.locator("article.card >> nth=0 >> .cright > .examples > .ex .tok")
    assert toks.count() == 15
    for i in range(toks.count()):
        box = toks.nth(i).bounding_box()
        assert box and box["width"] > 0 and box["height"] > 0
    peak = page.locator(".tok[title='4.000']").first
    assert peak.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 112, 0)"
    assert page.get_by_text("<script>alert(1)</script>").count() == 1  # rendered as text
    assert page.evaluate("document.scripts.length") == 1

    bars = page.locator("svg.histsvg rect.bar")
    assert bars.count() == 8
    assert all((bars.nth(i).bounding_box() or {}).get("height", 0) > 0 for i in range(bars.count()))

    # the summary table's sorting script works: sort by rank descending puts rank 3 first
    page.locator("table.summary th[data-col='0']").click()
    page.locator("table.summary th[data-col='0']").click()
    assert page.locator("table.summary tbody tr").first.locator("td").first.inner_text() == "3"
    page.locator("table.summary a").first.click()  # in-page link, no navigation request
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests)

    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    width, height, colours = _png_colours(data)
    assert width == 1280 and height > 900
    assert colours > 30, f"screenshot looks blank ({colours} colours)"
    page.close()
