"""AxBench-style benchmarks of concept detection and steering methods, on any model.

The protocol is AxBench's (Wu et al. 2025; docs/benchmarks.md says where interpkit departs from
it): tasks in AxBench's files (`load_task`, or `generate_task` with a chat model), per-token
activations at one residual site computed once and cached (`build_context`), methods that learn or
pick one direction per concept (DiffMean, PCA, LAT, Probe, SSV, ReFT-r1, SAE, SAE-A, BoW, Prompt,
Random, and interpkit's criterion-only pick), detection AUROC per concept (`run_detect`) and
steering judged on concept, instruction relevance and fluency (`run_steer`). `bench` runs a mode
end to end and writes results.json, results.md and the directions as a FeatureTable, plus the
charts when given a chart writer (``charts=interpkit.viz.write_bench_charts``, as ``interpkit bench``
does: the chart builders live in ``interpkit.viz``, a layer above this one).

Example:
    >>> from interpkit.bench import bench  # doctest: +SKIP
    >>> res = bench("detect", "prod_2b_l10_v1", model="smollm2-135m", methods=["diffmean"], out="out")  # doctest: +SKIP
"""

from __future__ import annotations

from interpkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "Concept": "._task",
    "AxBenchTask": "._task",
    "TaskFormatError": "._task",
    "load_task": "._task",
    "save_task": "._task",
    "format_pair": "._prompts",
    "chat_prompt": "._prompts",
    "seed_instructions": "._prompts",
    "steering_instructions": "._prompts",
    "generate_task": "._generate",
    "read_concept_list": "._generate",
    "TokenActs": "._acts",
    "token_activations": "._acts",
    "BenchContext": "._context",
    "build_context": "._context",
    "default_layer": "._context",
    "Fitted": ".methods",
    "Method": ".methods",
    "METHODS": ".methods",
    "get_method": ".methods",
    "fitted_table": ".methods",
    "concept_detection": "._metrics",
    "imbalanced_f1": "._metrics",
    "select_factor": "._metrics",
    "write_results": "._report",
    "read_results": "._report",
    "merge_results": "._report",
    "LMJudge": "._judge",
    "LocalJudge": "._judge",
    "evaluate_steering": "._steer",
    "FACTORS": "._steer",
    "bench": "._run",
    "run_detect": "._run",
    "run_steer": "._run",
    "fit_method": "._run",
    "DETECT_METHODS": "._run",
    "STEER_METHODS": "._run",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
