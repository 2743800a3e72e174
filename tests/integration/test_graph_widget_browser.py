"""GraphView's front end in headless Chromium, without JupyterLab: a click on a node selects it and shows its card.

The module (``widgets/graph.js``) is imported from a blob URL into a blank page and rendered against a
small stand-in for the anywidget model (``get``/``set``/``on``/``off``/``save_changes``) holding the
traits a real `~interpkit.widgets.GraphView` of the planted circuit synced. Every request the page
makes is recorded: there must be none (no CDN), and uncaught page errors fail the test.

Needs the ``playwright`` Python package and Debian's ``/usr/bin/chromium`` (never playwright's download).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]

MOUNT = """async ([src, css, state]) => {
  const style = document.createElement("style"); style.textContent = css; document.head.append(style);
  const handlers = {}; const saved = [];
  const model = {
    get: (k) => state[k],
    set: (k, v) => { state[k] = v; (handlers["change:" + k] || []).forEach((f) => f()); },
    on: (ev, f) => { (handlers[ev] = handlers[ev] || []).push(f); },
    off: (ev, f) => { handlers[ev] = (handlers[ev] || []).filter((g) => g !== f); },
    save_changes: () => saved.push(state.selected),
  };
  window.__model = model; window.__saved = saved;
  const url = URL.createObjectURL(new Blob([src], { type: "text/javascript" }));
  const mod = await import(url);
  const el = document.createElement("div"); document.body.append(el);
  mod.default.render({ model, el });
  return document.querySelectorAll("[data-testid=graph-node]").length;
}"""


@pytest.fixture(scope="module")
def view_state():
    from interpkit.circuits import attribute, planted_circuit
    from interpkit.widgets import GraphView

    pc = planted_circuit()
    g = attribute(pc.model, pc.prompt, pc.target, transcoders=pc.transcoders, demean=False).prune()
    explanations = {"L0.p4.f0": {"label": "the letter c", "top_examples": [{"text": "a cat sat", "activation": 2.0}]}}
    view = GraphView(g, explanations=explanations)
    state = {k: getattr(view, k) for k in ("nodes", "links", "columns", "tokens", "targets", "explanations", "selected")}
    return view, json.loads(json.dumps(state))


def test_clicking_a_node_selects_it_and_shows_its_card(view_state, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing (the Python package only)")
    from interpkit.widgets import asset

    view, state = view_state
    requests, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_content("<!doctype html><html><head></head><body></body></html>")
            n = page.evaluate(MOUNT, [asset("graph.js").read_text(), asset("graph.css").read_text(), state])
            assert n == len(view.nodes)
            assert page.locator("[data-testid=graph-edge]").count() == len(view.links)
            assert "click a node" in page.locator("[data-testid=graph-card]").inner_text()
            page.locator("[data-testid=graph-node][data-node-id='L0.p4.f0']").click()
            assert page.evaluate("window.__model.get('selected')") == "L0.p4.f0"
            assert page.evaluate("window.__saved") == ["L0.p4.f0"]
            card = page.locator("[data-testid=graph-card]")
            assert card.get_attribute("data-node-id") == "L0.p4.f0"
            assert page.locator("[data-testid=graph-card-title]").inner_text() == "L0.p4.f0 · the letter c"
            text = card.inner_text()
            assert "emb.p4" in text and "L1.p6.f0" in text and "a cat sat" in text
            assert page.locator(".ik-graph-selected").get_attribute("data-node-id") == "L0.p4.f0"
            # an edge in the card selects the node at its other end
            page.locator("[data-testid=graph-card-outgoing] li").first.click()
            assert page.evaluate("window.__model.get('selected')") == "L1.p6.f0"
            page.screenshot(path=str(tmp_path / "graph_view.png"))
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith(("blob:", "about:", "data:"))] == []
