"""``interpkit.run_bench``: `interpkit.bench.bench` with the benchmark charts written by default.

bench sits below viz, so it builds no chart itself: it takes a chart writer. This wrapper, at the
layer that may import both, gives Python users what ``interpkit bench`` writes (``charts/`` from
`interpkit.viz.write_bench_charts`) unless they say otherwise.
"""

from __future__ import annotations

from typing import Any


def run_bench(mode: str, task: Any, *, charts: Any = True, **kwargs: Any) -> dict[str, Any]:
    """Run a benchmark (all arguments as `interpkit.bench.bench`) and write its charts.

    Args:
        mode: ``"detect"`` or ``"steer"``.
        task: an `~interpkit.bench.AxBenchTask` or its folder.
        charts: True (default): `interpkit.viz.write_bench_charts`; False or None: no charts;
            or any ``writer(results, folder)``.
        **kwargs: the keyword arguments of `interpkit.bench.bench`.
    """
    from interpkit.bench import bench

    if charts is True:
        from interpkit.viz import write_bench_charts

        charts = write_bench_charts
    return bench(mode, task, charts=charts or None, **kwargs)
