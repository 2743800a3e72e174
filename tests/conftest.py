"""How `make test` spreads the suite over its pytest-xdist workers (``-n 2 --dist loadgroup``).

Two rules, both about the real-model tier, whose tests are few and long:

- **A module runs on one worker.** Its module- and session-scoped fixtures (a trained SAE, a
  JupyterLab server, a loaded SmolLM2, a bench activation cache) are then built once, not once per
  worker. The notebooks are the exception: each runs in its own kernel and shares nothing, so each
  is its own unit of work.
- **Long work first.** The slow tier is queued before the unit tier, heaviest first, so the two
  workers start on the long tests together and the many short unit tests fill the gaps at the end
  (longest-processing-time-first scheduling). Without workers (plain ``pytest``) only the order
  changes, which no test depends on.

``--no-loadscope-reorder`` keeps xdist from re-sorting the queue by test count.
"""

from __future__ import annotations

import pytest

#: Slow modules (and notebooks) from the heaviest down, as measured by `make test --durations`;
#: slow modules not listed follow them in collection order, then the unit tier.
HEAVY_FIRST = (
    "test_notebook_passes_nbval[06_axbench.ipynb]",
    "test_bench_smollm2.py",
    "test_sae_smollm2.py",
    "test_widgets_browser.py",
    "test_inspect_criterion_smollm2.py",
    "test_notebook_passes_nbval[01_quickstart.ipynb]",
    "test_notebook_passes_nbval[02_records_and_interventions.ipynb]",
    "test_notebook_passes_nbval[03_train_an_sae.ipynb]",
    "test_demo.py",
    "test_notebook_passes_nbval[05_cross_model_matching.ipynb]",
    "test_notebook_passes_nbval[04_steering_lab.ipynb]",
)
#: Modules whose tests share nothing costly, so each test may go to either worker.
SPLIT_MODULES = ("test_notebooks.py",)


def _rank(item: pytest.Item) -> int:
    for i, key in enumerate(HEAVY_FIRST):
        if key in (item.name, item.path.name):
            return i
    return len(HEAVY_FIRST) if item.get_closest_marker("slow") else len(HEAVY_FIRST) + 1


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which reads the groups into the node ids
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name not in SPLIT_MODULES and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    items.sort(key=_rank)  # stable: collection order within a rank
