"""How `make test` spreads the suite over its pytest-xdist workers (``-n 2 --dist loadfile``).

Two rules, both about the real-model tier, whose tests are few and long:

- **A module runs on one worker** (``--dist loadfile``). Its module- and session-scoped fixtures
  (a trained SAE, a JupyterLab server, a loaded SmolLM2, a bench activation cache) are then built
  once, not once per worker. (``--dist loadgroup`` with per-module groups would also let the
  independent notebooks split, but xdist 3.8 writes its group suffix to ``item._nodeid``, which
  pytest 9.2's ``Node.nodeid`` no longer reads, so groups are silently ignored there.)
- **Long work first.** The slow tier is queued before the unit tier, heaviest first, so the two
  workers start on the long tests together and the many short unit tests fill the gaps at the end
  (longest-processing-time-first scheduling). Without workers (plain ``pytest``) only the order
  changes, which no test depends on.

``--no-loadscope-reorder`` keeps xdist from re-sorting the modules by test count.
"""

from __future__ import annotations

import pytest

#: Slow modules from the heaviest down (whole-module time in `make test --durations`); slow
#: modules not listed follow them in collection order, then the unit tier.
HEAVY_FIRST = (
    "test_notebooks.py",
    "test_sae_smollm2.py",
    "test_bench_smollm2.py",
    "test_widgets_browser.py",
    "test_inspect_criterion_smollm2.py",
    "test_demo.py",
)


def _rank(item: pytest.Item) -> int:
    if item.path.name in HEAVY_FIRST:
        return HEAVY_FIRST.index(item.path.name)
    return len(HEAVY_FIRST) if item.get_closest_marker("slow") else len(HEAVY_FIRST) + 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=_rank)  # stable: collection order within a rank
