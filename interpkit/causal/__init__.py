"""Causal evidence: criterion metrics, edits on features, random controls and strength sweeps.

- `LogitTargetMetric` scores a prompt by the next-token probability mass of the user's target
  tokens (`metric_for_criterion` builds it from explicit tokens or the dataset's
  ``target_tokens``; no default list ever stands in).
- `run_interventions` edits features (`CausalFeature`: a direction or a neuron at a site) on
  positive prompts (criterion effect) and negative prompts (side effect) and writes
  `~interpkit.records.InterventionRecord` rows, each feature with random same-norm controls.
- `sweep_strengths` picks a steering strength on the train split and reports it on the test split.
- `steer_compare` generates from one prompt with and without steering edits and scores both
  continuations (criterion score, metric, perplexity, next-token TV distance); `steer_sweep` does
  it for one vector at several strengths, and `spec_edits` rebuilds the edits of a saved
  intervention spec. The steering panel shows these.
- `export_records`, `export_contrast`, `export_interventions` back the ``interpkit export-hf-*``
  commands.
- `export_steering` writes a report feature as a steering artifact (vector, site, model
  fingerprint, strength chosen on train, held-out effect and the controls it beat: `steering_evidence`),
  refusing one without held-out causal evidence; `apply_steering` steers prompts with an artifact
  (``interpkit export-steering`` / ``apply-steering``).
"""

from __future__ import annotations

from interpkit._lazy import lazy_exports

_LAZY: dict[str, str] = {
    "CriterionMetric": "._metric",
    "LogitTargetMetric": "._metric",
    "MissingTargetTokensError": "._metric",
    "metric_for_criterion": "._metric",
    "next_token_probs": "._metric",
    "read_target_tokens": "._metric",
    "CausalFeature": "._runner",
    "control_features": "._runner",
    "CONTROL_KINDS": "._controls",
    "check_controls": "._controls",
    "make_controls": "._controls",
    "neuron_feature": "._runner",
    "run_interventions": "._runner",
    "EditSession": "._runner",
    "site_mean": "._runner",
    "SweepResult": "._sweep",
    "assign_prompt_splits": "._sweep",
    "parse_strengths": "._sweep",
    "split_by_score": "._sweep",
    "sweep_strengths": "._sweep",
    "GenerationScores": "._steer",
    "SteerComparison": "._steer",
    "score_generation": "._steer",
    "spec_edits": "._steer",
    "steer_compare": "._steer",
    "steer_sweep": "._steer",
    "ContrastExport": "._export",
    "export_contrast": "._export",
    "export_interventions": "._export",
    "export_records": "._export",
    "STEERING_GENERATION_KIND": "._artifact",
    "SteeringRefused": "._artifact",
    "apply_steering": "._artifact",
    "artifact_edits": "._artifact",
    "check_artifact_model": "._artifact",
    "export_steering": "._artifact",
    "steering_evidence": "._artifact",
    "unvalidated_artifact": "._artifact",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
