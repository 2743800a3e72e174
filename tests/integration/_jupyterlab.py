"""A throwaway JupyterLab on loopback and a few helpers to drive its notebooks from Playwright.

The server runs from the repository's venv with a random free port and token, autosave switched
off (the notebooks in the repository are never rewritten) and every Jupyter folder it writes to
(runtime, data, config, workspaces, user settings, checkpoints, IPython) under a temporary directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: user settings written before the server starts (plugin id -> settings)
SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin": {"autosave": False},
    # every cell stays in the DOM, so widgets below the fold render and can be found
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
    # no news or update checks
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}


@dataclass(frozen=True)
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    log: Path

    def tree(self, path: str) -> str:
        # `reset`: start from an empty workspace. Without it a new page restores every notebook an
        # earlier page had open (and starts their kernels), and the restored tabs race the one asked
        # for to become the current widget: "run all" could then run the wrong notebook.
        return f"{self.url}/lab/tree/{path}?reset&token={self.token}"


def jupyter_lab_available() -> str | None:
    """None when `jupyter lab` and the widget front ends can run, else why not."""
    exe = Path(sys.executable).with_name("jupyter")
    if not exe.exists():
        return f"{exe} is missing (pip install -e '.[dev]' installs jupyterlab)"
    for mod in ("jupyterlab", "anywidget", "jupyterlab_widgets"):
        try:
            __import__(mod)
        except ImportError:
            return f"{mod} is not installed (pip install -e '.[dev]')"
    prefix = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
    for ext in ("anywidget", "@jupyter-widgets/jupyterlab-manager"):
        if not (prefix / ext / "package.json").is_file():
            return f"the {ext} labextension is missing from {prefix}"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def jupyter_lab(root: Path, tmp: Path, *, timeout: float = 120.0, env: dict[str, str] | None = None) -> Iterator[Lab]:
    """Start JupyterLab serving ``root``; stop it (and its kernels) on exit."""
    tmp.mkdir(parents=True, exist_ok=True)
    settings = tmp / "user-settings"
    for plugin, values in SETTINGS.items():
        package, name = plugin.rsplit("/", 1)
        path = settings / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    dirs = {k: tmp / k.lower() for k in ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR")}
    for d in dirs.values():
        d.mkdir(exist_ok=True)
    port, token = _free_port(), secrets.token_hex(16)
    full_env = {**os.environ, **{k: str(v) for k, v in dirs.items()},
                "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1", **(env or {})}
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
           "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           # JupyterLab checkpoints a file when it first opens it: keep those copies out of the repository
           f"--FileCheckpoints.checkpoint_dir={tmp / 'checkpoints'}",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly", "--ServerApp.terminals_enabled=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI images often run as root
        cmd.append("--allow-root")
    log = tmp / "jupyterlab.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=full_env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, log)
    try:
        end = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{lab.url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError(f"jupyter lab did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()
        shutil.rmtree(dirs["JUPYTER_RUNTIME_DIR"], ignore_errors=True)


# --- JavaScript run in the page (window.jupyterapp is exposed by expose_app_in_browser) -------------

# the notebook at `path` is open, current (run-all acts on the current one) and its kernel idle;
# it is kept as window.__ikNb, which the scripts below read instead of whatever is current later
JS_NOTEBOOK_READY = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  const ok = !!(w && w.content && w.context && w.context.isReady && w.context.path === path
                && w.sessionContext.session && w.sessionContext.session.kernel
                && w.sessionContext.session.kernel.status === 'idle');
  if (ok) window.__ikNb = w;
  return ok;
}"""

# the documents open in the main area and the current one (a launcher tab, if any, is not a document)
JS_OPEN_TABS = """() => {
  const app = window.jupyterapp;
  const paths = [];
  for (const w of app.shell.widgets('main')) if (w.context) paths.push(w.context.path);
  const c = app.shell.currentWidget;
  return { open: paths, current: c && c.context ? c.context.path : null };
}"""

JS_RUN_ALL = """() => {
  window.__ikRun = undefined;
  if (window.jupyterapp.shell.currentWidget !== window.__ikNb) throw new Error('the notebook is not current');
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then((ok) => { window.__ikRun = { ok: ok }; }, (e) => { window.__ikRun = { err: String(e) }; });
}"""

# after run-all: every code cell has run (or one failed) and the kernel is idle
JS_RUN_DONE = """() => {
  if (!window.__ikRun) return false;
  const w = window.__ikNb;
  return w.sessionContext.session.kernel.status === 'idle';
}"""

JS_ERRORS = """() => {
  const w = window.__ikNb;
  const out = [];
  let i = 0;
  for (const cell of w.content.model.cells) {
    if (cell.type === 'code') {
      for (const o of cell.outputs.toJSON()) {
        if (o.output_type === 'error') out.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
      }
      if (cell.executionCount === null && cell.sharedModel.getSource().trim()) out.push(`cell ${i}: not run`);
    }
    i++;
  }
  if (window.__ikRun && window.__ikRun.err) out.push(window.__ikRun.err);
  return out;
}"""

# append a code cell with `code`, run it, resolve to its text output
JS_RUN_CODE = """async (code) => {
  const app = window.jupyterapp;
  app.shell.activateById(window.__ikNb.id);
  const nb = window.__ikNb.content;
  nb.activeCellIndex = nb.widgets.length - 1;
  await app.commands.execute('notebook:insert-cell-below');
  const cell = nb.activeCell;
  cell.model.sharedModel.setSource(code);
  await app.commands.execute('notebook:run-cell');
  const parts = [];
  for (const o of cell.model.outputs.toJSON()) {
    if (o.output_type === 'stream') parts.push(Array.isArray(o.text) ? o.text.join('') : o.text);
    else if (o.output_type === 'error') parts.push(`${o.ename}: ${o.evalue}`);
    else if (o.data && o.data['text/plain']) parts.push([].concat(o.data['text/plain']).join(''));
  }
  return parts.join('');
}"""

JS_SHUTDOWN = """async () => {
  const w = window.__ikNb;
  if (w && w.sessionContext) await w.sessionContext.shutdown();
}"""
