"""`SteeringPanel`: strength sliders for steering vectors, baseline and steered generations side by side.

Each feature is a steering vector at a site (a contrast direction, an SAE decoder row, a probe).
Moving a slider sets its strength (negative strengths steer away); the panel then generates from
the prompt twice with the same seed, without edits and inside ``model.edits(AddVector(...))`` for
every non-zero strength, and scores both continuations. The evaluation is
`interpkit.causal.steer_compare` (``criterion_score``, ``metric``, ``perplexity`` of each
continuation and the ``next_token_tv`` distance; see there) and the sweep
`interpkit.causal.steer_sweep`: the panel only holds the vectors and settings and mirrors the
results into its synced traits, so a script gets the same numbers without the widget.

`SteeringPanel.save_artifact` exports one feature at its slider strength as a steering artifact
(`interpkit.records.SteeringArtifact`, the format ``interpkit export-steering`` writes; from the
panel it says ``validated: false``: a slider is not held-out evidence), and
`SteeringPanel.from_artifact` / `SteeringPanel.load_artifact` load one back (refusing a model
whose fingerprint differs unless ``allow_other_model=True``). The older intervention-spec export
(`SteeringPanel.export_spec`, `save_spec`, `edits_from_spec`: `interpkit.records.InterventionSpec`)
stays for the files already written.

Example:
    >>> import numpy as np
    >>> from interpkit._testing import tiny_model
    >>> model = tiny_model()
    >>> panel = SteeringPanel(model, {"v": ("layer1.resid_post", np.ones(16))}, prompt="the cat",
    ...                       max_new_tokens=4, debounce=0)
    >>> panel.strengths = {"v": 6.0}  # live, with debounce=0: regenerates at once
    >>> panel.version, panel.scores["strengths"], len(panel.export_spec()["edits"])
    (1, {'v': 6.0}, 1)
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from interpkit.records import INTERVENTION_SPEC_KIND, vector_sha256

from ._debounce import Debouncer
from ._static import asset

__all__ = ["SPEC_KIND", "SteeringPanel", "vector_sha256"]

SPEC_KIND = INTERVENTION_SPEC_KIND
"""``kind`` of the dict `SteeringPanel.export_spec` returns (`interpkit.records.INTERVENTION_SPEC_KIND`)."""


class SteeringPanel(anywidget.AnyWidget):
    """Steering sliders, a prompt box, and baseline vs steered generations with their scores.

    Args:
        model: a ``ModelWrapper``.
        features: ``{name: (site, vector)}``; vectors are ``[d_model]`` arrays or tensors, used as
            given (strength 1 adds the vector once).
        criterion: criterion text (or `~interpkit.criterion.Criterion`) the continuations are
            scored for; None skips the score.
        compiler: compiler name for ``criterion`` (``"keyword"`` needs no model; ``"embedding"``
            loads MiniLM).
        metric: an optional `~interpkit.causal.CriterionMetric` scored on the prompt.
        prompt: the initial prompt.
        strengths: initial strengths by name (default 0).
        strength_range: the sliders' ``(min, max)``.
        max_new_tokens, do_sample, chat, seed: generation settings (the same seed for both runs).
        debounce: seconds of quiet after a slider or prompt edit before regenerating (0: at once).
    """

    _esm = asset("steering_panel.js")
    _css = asset("steering_panel.css")

    features = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One ``{name, site, norm, d_model}`` per steering vector (the vectors stay in the kernel)."""
    strengths = traitlets.Dict().tag(sync=True)
    """Strength per feature name."""
    strength_min = traitlets.Float(-10.0).tag(sync=True)
    """Slider minimum."""
    strength_max = traitlets.Float(10.0).tag(sync=True)
    """Slider maximum."""
    prompt = traitlets.Unicode("").tag(sync=True)
    """The prompt continued."""
    max_new_tokens = traitlets.Int(32).tag(sync=True)
    """Tokens generated per run."""
    seed = traitlets.Int(0).tag(sync=True)
    """Sampling seed shared by both runs."""
    do_sample = traitlets.Bool(False).tag(sync=True)
    """Sample (True) or decode greedily."""
    chat = traitlets.Bool(False).tag(sync=True)
    """Wrap the prompt in the chat template."""
    live = traitlets.Bool(True).tag(sync=True)
    """Regenerate after every slider or prompt edit (else only on ``generate``)."""
    busy = traitlets.Bool(False).tag(sync=True)
    """True while generating."""
    error = traitlets.Unicode("").tag(sync=True)
    """The last run's error ("" when it succeeded)."""
    baseline = traitlets.Unicode("").tag(sync=True)
    """The unsteered continuation."""
    steered = traitlets.Unicode("").tag(sync=True)
    """The steered continuation."""
    scores = traitlets.Dict().tag(sync=True)
    """``{"baseline": {...}, "steered": {...}, "next_token_tv": x, "strengths": {...}}``."""
    version = traitlets.Int(0).tag(sync=True)
    """Incremented after every finished run."""

    def __init__(
        self,
        model: Any,
        features: Mapping[str, tuple[str, Any]],
        criterion: Any = None,
        *,
        compiler: str = "embedding",
        compiler_options: Mapping[str, Any] | None = None,
        metric: Any = None,
        prompt: str = "",
        strengths: Mapping[str, float] | None = None,
        strength_range: tuple[float, float] = (-10.0, 10.0),
        max_new_tokens: int = 32,
        do_sample: bool = False,
        chat: bool = False,
        seed: int = 0,
        debounce: float = 0.4,
        **kwargs: Any,
    ) -> None:
        import torch

        if not features:
            raise ValueError("SteeringPanel needs at least one feature: {name: (site, vector)}")
        self.model = model
        self.vectors: dict[str, tuple[str, torch.Tensor]] = {}
        meta = []
        for name, (site, vector) in features.items():
            site = model.resolve_site(site)
            vec = torch.as_tensor(np.asarray(vector, dtype=np.float32)).reshape(-1)
            if vec.numel() != model.d_model:
                raise ValueError(f"feature {name!r}: vector has {vec.numel()} values, the model's d_model is "
                                 f"{model.d_model}")
            self.vectors[str(name)] = (site, vec)
            meta.append({"name": str(name), "site": site, "norm": float(vec.norm()), "d_model": int(vec.numel())})
        self.criterion = criterion
        self.compiler_name = compiler
        self.compiler_options = dict(compiler_options or {})
        self.metric = metric
        # the unsteered run depends only on the prompt and generation settings: slider moves reuse it
        self._baseline_cache: dict[tuple[Any, ...], Any] = {}
        self._debouncer = Debouncer(self._run, debounce)
        self._ready = False
        init = {n: float((strengths or {}).get(n, 0.0)) for n in self.vectors}
        super().__init__(features=meta, strengths=init, strength_min=float(strength_range[0]),
                         strength_max=float(strength_range[1]), prompt=prompt, max_new_tokens=max_new_tokens,
                         do_sample=do_sample, chat=chat, seed=seed, **kwargs)
        self.on_msg(self._on_front_msg)
        self._ready = True

    # ---- front-end events ----------------------------------------------------------------------

    @traitlets.observe("strengths", "prompt")
    def _on_edit(self, change: Mapping[str, Any]) -> None:
        if self._ready and self.live and self.prompt.strip():
            self._debouncer()

    def _on_front_msg(self, _widget: Any, content: Any, _buffers: Sequence[Any] = ()) -> None:
        if isinstance(content, Mapping) and content.get("type") == "generate":
            self.generate()

    # ---- actions ---------------------------------------------------------------------------------

    def edits(self, strengths: Mapping[str, float] | None = None) -> list[Any]:
        """The ``AddVector`` edits for ``strengths`` (default: the sliders); zero strengths are left out."""
        from interpkit.models import AddVector

        strengths = self.strengths if strengths is None else strengths
        return [AddVector(site, vec, strength=float(strengths.get(name, 0.0)))
                for name, (site, vec) in self.vectors.items() if float(strengths.get(name, 0.0)) != 0.0]

    def generate(self) -> None:
        """Generate and score now (a pending debounced run is dropped)."""
        self._debouncer.run_now()

    def run(self, prompt: str, strengths: Mapping[str, float]) -> dict[str, Any]:
        """Baseline and steered continuations of ``prompt`` with their scores (the widget is not changed).

        Returns:
            `interpkit.causal.SteerComparison.to_dict` (``{"baseline": {"text", "criterion_score",
            "metric", "perplexity"}, "steered": {...}, "next_token_tv": float}``) plus ``"strengths"``.
        """
        from interpkit.causal import steer_compare

        out = steer_compare(self.model, prompt, self.edits(strengths), baseline=self._baseline(prompt),
                            **self._options()).to_dict()
        return {**out, "strengths": {n: float(strengths.get(n, 0.0)) for n in self.vectors}}

    def sweep(self, name: str, strengths: Sequence[float], prompt: str | None = None) -> list[dict[str, Any]]:
        """Run one feature at several strengths (others at 0): rows for `interpkit.viz.steering_curve`.

        Returns:
            One ``{"feature", "strength", "criterion_score", "perplexity", "next_token_tv", "text"}``
            per strength (`interpkit.causal.steer_sweep`).
        """
        from interpkit.causal import steer_sweep

        if name not in self.vectors:
            raise KeyError(f"no feature {name!r}; known: {sorted(self.vectors)}")
        prompt = prompt if prompt is not None else self.prompt
        site, vec = self.vectors[name]
        return steer_sweep(self.model, prompt, site, vec, strengths, feature=name, baseline=self._baseline(prompt),
                           **self._options())

    def spec(self) -> Any:
        """The current settings as an `interpkit.records.InterventionSpec` (non-zero strengths only)."""
        from interpkit.records import InterventionSpec, SpecEdit

        edits = [SpecEdit(feature=name, site=site, strength=float(self.strengths.get(name, 0.0)),
                          vector=vec.detach().cpu().numpy())
                 for name, (site, vec) in self.vectors.items() if float(self.strengths.get(name, 0.0)) != 0.0]
        return InterventionSpec(edits=tuple(edits), model=getattr(self.model, "name", None),
                                criterion=getattr(self.criterion, "text", self.criterion),
                                generation={"prompt": self.prompt, "max_new_tokens": int(self.max_new_tokens),
                                            "seed": int(self.seed), "do_sample": bool(self.do_sample),
                                            "chat": bool(self.chat)})

    def export_spec(self) -> dict[str, Any]:
        """The current settings as an intervention spec (JSON-ready).

        One ``add_vector`` edit per non-zero strength: ``feature``, ``site``, ``strength``,
        ``d_model``, ``norm``, ``vector`` (float32 values) and ``vector_sha256``; plus the model
        name, the prompt and the generation settings (`interpkit.records.InterventionSpec.to_dict`).
        """
        return self.spec().to_dict()

    def save_spec(self, path: str | Path) -> Path:
        """Write `export_spec` as JSON (atomically, `interpkit.records.write_intervention_spec`) and return the path."""
        from interpkit.records import write_intervention_spec

        return write_intervention_spec(path, self.spec())

    def artifact(self, feature: str | None = None) -> Any:
        """One feature at its current strength as an unvalidated `interpkit.records.SteeringArtifact`.

        Args:
            feature: the feature's name; default: the only feature with a non-zero strength (or the
                panel's only feature).

        Raises:
            ValueError: ``feature`` is None and the choice is ambiguous, or the name is unknown.
        """
        from interpkit.causal import unvalidated_artifact

        if feature is None:
            live = [n for n in self.vectors if float(self.strengths.get(n, 0.0)) != 0.0]
            choice = live if live else list(self.vectors)
            if len(choice) != 1:
                raise ValueError(f"the panel steers {choice}: name the feature to export (feature=...)")
            feature = choice[0]
        if feature not in self.vectors:
            raise ValueError(f"no feature {feature!r}; known: {sorted(self.vectors)}")
        site, vec = self.vectors[feature]
        gen = {"prompt": self.prompt, "max_new_tokens": int(self.max_new_tokens), "seed": int(self.seed),
               "do_sample": bool(self.do_sample), "chat": bool(self.chat)}
        return unvalidated_artifact(self.model, feature, site, vec.detach().cpu().numpy(),
                                    float(self.strengths.get(feature, 0.0)),
                                    criterion=getattr(self.criterion, "text", self.criterion), generation=gen,
                                    command="SteeringPanel.save_artifact")

    def save_artifact(self, path: str | Path, feature: str | None = None) -> Path:
        """Write `artifact` as a steering artifact folder (atomically) and return the path."""
        from interpkit.records import write_steering_artifact

        return write_steering_artifact(path, self.artifact(feature))

    def load_artifact(self, artifact: Any, *, allow_other_model: bool = False) -> str:
        """Add (or replace) the artifact's feature with its vector and strength; return its name.

        Raises:
            ValueError: the model's fingerprint differs from the artifact's (unless
                ``allow_other_model``) or the vector does not fit the model.
        """
        import torch

        from interpkit.causal import artifact_edits, check_artifact_model
        from interpkit.records import SteeringArtifact, read_steering_artifact

        if not isinstance(artifact, SteeringArtifact):
            artifact = read_steering_artifact(artifact)
        check_artifact_model(artifact, self.model, allow_other_model=allow_other_model)
        (edit,) = artifact_edits(artifact, self.model)
        name = artifact.feature
        self.vectors[name] = (edit.site, torch.from_numpy(artifact.vector.copy()))
        meta = [f for f in self.features if f["name"] != name]
        meta.append({"name": name, "site": edit.site, "norm": float(np.linalg.norm(artifact.vector)),
                     "d_model": artifact.d_model})
        self.features = meta
        self.strengths = {**self.strengths, name: float(artifact.strength)}
        return name

    @classmethod
    def from_artifact(cls, model: Any, artifact: Any, *, allow_other_model: bool = False,
                      **kwargs: Any) -> SteeringPanel:
        """A panel over one steering artifact: its feature at its strength, its criterion and generation settings.

        ``kwargs`` go to the constructor and override the artifact's settings.

        Raises:
            ValueError: the model's fingerprint differs from the artifact's (unless ``allow_other_model``).
        """
        from interpkit.causal import check_artifact_model
        from interpkit.records import SteeringArtifact, read_steering_artifact

        if not isinstance(artifact, SteeringArtifact):
            artifact = read_steering_artifact(artifact)
        check_artifact_model(artifact, model, allow_other_model=allow_other_model)
        gen = {k: v for k, v in artifact.generation.items()
               if k in ("prompt", "max_new_tokens", "seed", "do_sample", "chat")}
        options = {"criterion": artifact.criterion, "strengths": {artifact.feature: artifact.strength}, **gen,
                   **kwargs}
        return cls(model, {artifact.feature: (artifact.site, artifact.vector)}, **options)

    @staticmethod
    def edits_from_spec(spec: Mapping[str, Any] | str | Path) -> list[Any]:
        """``AddVector`` edits from a spec dict or file; each vector is checked against its sha256.

        The same as `interpkit.causal.spec_edits`.

        Raises:
            ValueError: (`interpkit.records.RecordError`) not an intervention spec, or a vector that
                does not match its hash.
        """
        from interpkit.causal import spec_edits

        return spec_edits(spec)

    # ---- the run ---------------------------------------------------------------------------------

    def _options(self) -> dict[str, Any]:
        """The scoring and generation settings `interpkit.causal.steer_compare` takes, from the traits."""
        return {"criterion": self.criterion, "compiler": self.compiler_name, "compiler_options": self.compiler_options,
                "metric": self.metric, "max_new_tokens": int(self.max_new_tokens), "do_sample": bool(self.do_sample),
                "chat": bool(self.chat), "seed": int(self.seed)}

    def _baseline(self, prompt: str) -> Any:
        """The unsteered continuation of ``prompt`` with its scores, generated once per prompt and settings."""
        from interpkit.causal import score_generation

        options = self._options()
        key = (prompt, *(options[k] for k in ("max_new_tokens", "do_sample", "chat", "seed")))
        if key not in self._baseline_cache:
            self._baseline_cache[key] = score_generation(self.model, prompt, (), **options)
        return self._baseline_cache[key]

    def _run(self) -> None:
        prompt = self.prompt
        if not prompt.strip():
            return
        self.busy = True
        try:
            out = self.run(prompt, dict(self.strengths))
        except Exception as exc:  # shown in the widget; the kernel keeps running
            self.error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        else:
            self.error = ""
            self.baseline = out["baseline"]["text"]
            self.steered = out["steered"]["text"]
            self.scores = out
        finally:
            self.version += 1
            self.busy = False
