"""`grade` (the claim a dossier's evidence supports) and `next_experiments` (what would raise it).

The rules are the ones docs/dossiers.md states, applied top-down; the first that holds decides.
No weights: each level names the kind of evidence it needs, never a score.

- 3 ``replicated``: level-2 evidence in two entries with different ranking seeds, separately measured
  intervention records (not one records file ranked twice) whose measurement of the feature differs
  (not the same edit on the same prompts rerun) and the same sign, or level-2 evidence plus a validated match (``validated: true``) in another model.
- 2 ``causal on held-out prompts``: an entry whose causal interval excludes zero (``promotes`` or
  ``suppresses``, n >= 3) and lies beyond every control's interval (random, matched-frequency, placebo) (``beats_controls``).
- 1 ``correlational``: an entry with a significant held-out association (BH q < fdr_alpha, sign as
  on train) whose interventions did not show it inert.
- 0 ``causally inert`` when some significant entry was measured inert, ``not significant`` when
  entries exist but none of the above holds, ``no evidence`` without entries.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from ._add import CAUSAL_WITH_SIGN
from ._format import Dossier

__all__ = ["GRADES", "Grade", "Suggestion", "grade", "next_experiments"]

GRADES: tuple[str, ...] = ("not significant", "correlational", "causal on held-out prompts", "replicated")
"""Level names, lowest first (level 0 is also ``no evidence`` or ``causally inert``)."""


@dataclass(frozen=True)
class Grade:
    """The level a dossier reaches, the rule that fired, the evidence behind it and what is missing."""

    level: int
    name: str
    rule: str
    evidence: tuple[str, ...] = ()
    """One line per entry or match that satisfied the rule."""
    missing: tuple[str, ...] = ()
    """What the next level needs and this dossier lacks."""
    synthetic: bool = False
    """True when any entry came from synthetic data (the toy backend)."""

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "name": self.name, "rule": self.rule, "evidence": list(self.evidence),
                "missing": list(self.missing), "synthetic": self.synthetic}


@dataclass(frozen=True)
class Suggestion:
    """An experiment that would raise the grade: why, the command to run, the level it aims at."""

    raises_to: int
    why: str
    command: str
    placeholders: tuple[str, ...] = field(default=())
    """Upper-case words in ``command`` the user must fill in (nothing the dossier knows)."""

    def to_dict(self) -> dict[str, Any]:
        return {"raises_to": self.raises_to, "why": self.why, "command": self.command,
                "placeholders": list(self.placeholders)}


def _run(e: dict[str, Any]) -> str:
    return f"run {e['report_path']} (seed {e['settings']['seed']}, rank {e['rank']}, tier {e['tier']!r})"


def _interventions_sha(e: dict[str, Any]) -> str | None:
    return next((i["sha256"] for i in e["settings"]["inputs"] if i["role"] == "interventions"), None)


def _measurement(e: dict[str, Any]) -> tuple[Any, ...]:
    """The feature's own causal measurement (what two runs on the same prompts repeat exactly)."""
    c = e["causal"]
    return c["n"], c["effect"], c["ci_low"], c["ci_high"]


def _is_causal(e: dict[str, Any]) -> bool:
    c = e["causal"]
    return c is not None and c["status"] in CAUSAL_WITH_SIGN and c["beats_controls"] is True


def _is_associated(e: dict[str, Any]) -> bool:
    return e["association"]["significant"] and not (e["causal"] and e["causal"]["status"] == "inert")


def _causal_line(e: dict[str, Any]) -> str:
    c = e["causal"]
    worst = max((x["ci_high"] for x in c["controls"] if x["ci_high"] is not None), default=None) \
        if c["status"] == "promotes" else min((x["ci_low"] for x in c["controls"] if x["ci_low"] is not None),
                                              default=None)
    return (f"{_run(e)}: {c['status']}, effect {c['effect']:.3g} with {c['ci_level']:.0%} CI "
            f"[{c['ci_low']:.3g}, {c['ci_high']:.3g}] (n={c['n']}) beyond {len(c['controls'])} control(s) "
            f"(nearest control bound {worst:.3g})")


def _assoc_line(e: dict[str, Any]) -> str:
    a = e["association"]
    ci = "" if a["auroc_ci_low"] is None else f" [{a['auroc_ci_low']:.3f}, {a['auroc_ci_high']:.3f}]"
    return f"{_run(e)}: held-out AUROC {a['auroc_test']:.3f}{ci}, q = {a['q_value']:.3g} (n_test={a['n_test']})"


def grade(dossier: Dossier) -> Grade:
    """The claim the dossier's evidence supports, by the rules of docs/dossiers.md (see the module docstring)."""
    entries = dossier.entries
    synthetic = any(e["synthetic"] for e in entries)
    if not entries:
        return Grade(0, "no evidence", "no run has been added", missing=("a run: `interpkit dossier add`",))
    causal = [e for e in entries if _is_causal(e)]
    other_model = [m for m in dossier.matches
                   if m["validated"] is True and m["other_model"] and m["other_model"] != dossier.feature["model"]]
    shared_records = same_measurement = False
    for sign in CAUSAL_WITH_SIGN:
        same = [e for e in causal if e["causal"]["status"] == sign]
        for i, x in enumerate(same):
            for y in same[i + 1:]:
                if x["settings"]["seed"] == y["settings"]["seed"]:
                    continue
                # the causal interval comes from the intervention records: runs that ranked one records
                # file under two seeds measured the effect once, so they do not replicate it
                fx, fy = _interventions_sha(x), _interventions_sha(y)
                if fx is not None and fx == fy:
                    shared_records = True
                    continue
                # new records can still hold the same measurement: the same edit on the same prompts is
                # deterministic, so a rerun that only drew new controls or permutations repeats the
                # feature's effect and interval exactly
                if _measurement(x) == _measurement(y):
                    same_measurement = True
                    continue
                return Grade(3, "replicated", "causal beyond controls in >= 2 runs with different seeds and "
                             "separately measured interventions that differ, same sign",
                             (_causal_line(x), _causal_line(y)), synthetic=synthetic)
    if causal and other_model:
        lines = [_causal_line(causal[0])] + [
            f"validated match {m['other_feature_id']} in {m['other_model']} (score {m['score']:.3g}, "
            f"confidence {m['confidence']:.2f}) from {m['matches_path']}" for m in other_model]
        return Grade(3, "replicated", "causal beyond controls and a validated match in another model",
                     tuple(lines), synthetic=synthetic)
    if causal:
        return Grade(2, GRADES[2], "causal interval excludes zero and lies beyond every control's interval",
                     tuple(_causal_line(e) for e in causal),
                     missing=("a second causal run with a different seed and newly measured intervention "
                              "records, or a validated match in another model",
                              *(("the causal runs with different seeds share one intervention records file",)
                                if shared_records else ()),
                              *(("the causal runs with different seeds measured the same effect and interval "
                                 "(the same edit on the same prompts): a replication needs other prompts",)
                                if same_measurement else ())),
                     synthetic=synthetic)
    missing = []
    for e in entries:
        c = e["causal"]
        if c is None:
            continue
        if c["status"] in CAUSAL_WITH_SIGN and c["beats_controls"] is None:
            missing.append(f"{_run(e)}: causal {c['status']} but no control was measured")
        elif c["status"] in CAUSAL_WITH_SIGN:
            missing.append(f"{_run(e)}: causal {c['status']} but its interval overlaps a control's")
        elif c["status"] == "insufficient n":
            missing.append(f"{_run(e)}: only {c['n']} intervention record(s); an interval needs >= 3")
    if not any(e["causal"] for e in entries):
        missing.append("intervention records (with same-norm controls) for this feature")
    associated = [e for e in entries if _is_associated(e)]
    if associated:
        return Grade(1, GRADES[1], "held-out association significant after FDR, not measured inert",
                     tuple(_assoc_line(e) for e in associated), tuple(missing), synthetic)
    inert = [e for e in entries if e["association"]["significant"]]
    if inert:
        return Grade(0, "causally inert", "significant association, but interventions bound the effect inside "
                     "+/- causal_margin (a correlated decoy)", tuple(_run(e) for e in inert), tuple(missing),
                     synthetic)
    return Grade(0, GRADES[0], "no run shows a significant held-out association or a causal effect beyond controls",
                 tuple(_run(e) for e in entries),
                 ("a run with a significant held-out association or causal evidence", *missing), synthetic)


def _q(x: Any) -> str:
    return shlex.quote(str(x))


def _input(e: dict[str, Any], role: str) -> str | None:
    return next((i["path"] for i in e["settings"]["inputs"] if i["role"] == role), None)


def _inspect_cmd(e: dict[str, Any], *, seed: int, out: str, interventions: str | None) -> str:
    """The ``interpkit inspect`` command of the entry's run, with another seed / intervention file."""
    s = e["settings"]
    parts = ["interpkit", "inspect", "--backend", e["backend"], "--criterion", _q(e["criterion"])]
    if e["backend"] == "model":
        parts += ["--model", _q(e["model"])]
        if s.get("site"):
            parts += ["--site", _q(s["site"])]
        if s.get("max_per_class"):
            parts += ["--max-per-class", str(s["max_per_class"])]
        if s.get("compiler"):
            parts += ["--compiler", _q(s["compiler"])]
    for role, flag in (("records", "--records"), ("features", "--features"), ("dataset", "--dataset")):
        if _input(e, role):
            parts += [flag, _q(_input(e, role))]
    if interventions and e["backend"] != "toy":
        parts += ["--interventions", interventions]
    parts += ["--top-k", str(s.get("top_k") or 10), "--n-permutations", str(s["n_permutations"]),
              "--n-bootstrap", str(s["n_bootstrap"]), "--seed", str(seed), "--out", _q(out)]
    return " ".join(parts)


def _interventions_cmd(e: dict[str, Any], report: str, out: str) -> tuple[str, tuple[str, ...]]:
    dataset = _input(e, "dataset")
    cmd = ["interpkit", "export-hf-interventions", "--model", _q(e["model"]), "--dataset",
           _q(dataset) if dataset else "DATASET.jsonl", "--report", _q(report), "--criterion", _q(e["criterion"]),
           "--top-k", str(e["rank"]), "--n-controls", "4", "--split", "test", "--out", _q(out)]
    return " ".join(cmd), (() if dataset else ("DATASET.jsonl",))


def next_experiments(dossier: Dossier, *, project_dir: str | None = None) -> list[Suggestion]:
    """The experiments that would raise the dossier's grade, each with the command to run.

    Commands rebuild the latest run's ``interpkit inspect`` call (backend, inputs, sizes) and change
    only what the next level needs: intervention records with 4 same-norm controls on the held-out
    prompts (levels 0-1), another seed or a validated match in another model (level 2).
    ``project_dir`` (default: the dossier's project) is where new runs are written.
    """
    g = grade(dossier)
    if g.level >= 3 or not dossier.entries:
        return []
    e = dossier.entries[-1]
    root = project_dir or (str(dossier.path.parents[2]) if dossier.path else ".")
    seeds = [x["settings"]["seed"] for x in dossier.entries]
    new_seed = max(s for s in seeds if isinstance(s, int)) + 1 if any(isinstance(s, int) for s in seeds) else 1
    runs = f"{root}/runs/{dossier.slug}"
    out: list[Suggestion] = []
    if g.level <= 1:
        if e["backend"] == "model":
            ivs = f"{runs}/seed{e['settings']['seed']}-interventions.jsonl"
            export, holes = _interventions_cmd(e, e["report_path"], ivs)
            rerun = _inspect_cmd(e, seed=e["settings"]["seed"], out=f"{runs}/seed{e['settings']['seed']}-causal",
                                 interventions=ivs)
            out.append(Suggestion(2, "causal evidence: edit the feature on held-out positive prompts with 4 "
                                  "random same-norm controls, then rank with those records",
                                  f"{export} && {rerun}", holes))
        elif e["backend"] == "toy":
            out.append(Suggestion(2, "causal evidence beyond controls: the toy backend's records have no "
                                  "controls; rank exported activation records with intervention records that "
                                  "include <feature>::control<k> rows",
                                  _inspect_cmd({**e, "backend": "records"}, seed=e["settings"]["seed"],
                                               out=f"{runs}/causal", interventions="INTERVENTIONS.jsonl")
                                  .replace("--backend records", "--backend records --records RECORDS.jsonl"),
                                  ("RECORDS.jsonl", "INTERVENTIONS.jsonl")))
        else:
            out.append(Suggestion(2, "causal evidence beyond controls: rank with intervention records of this "
                                  "feature and its <feature>::control<k> same-norm controls (n >= 3 each)",
                                  _inspect_cmd(e, seed=e["settings"]["seed"], out=f"{runs}/causal",
                                               interventions="INTERVENTIONS.jsonl"), ("INTERVENTIONS.jsonl",)))
    if g.level == 0 and e["backend"] == "model":
        more = 2 * int(e["settings"].get("max_per_class") or 60)
        out.append(Suggestion(1, f"more held-out examples ({e['association']['n_test']} now): the association "
                              "may be real but underpowered",
                              _inspect_cmd({**e, "settings": {**e["settings"], "max_per_class": more}},
                                           seed=e["settings"]["seed"], out=f"{runs}/more-examples",
                                           interventions=None)))
    if g.level == 2:
        causal = next(x for x in reversed(dossier.entries) if _is_causal(x))
        ivs = _input(causal, "interventions")
        if causal["backend"] == "model":
            out_dir = f"{runs}/seed{new_seed}"
            export, holes = _interventions_cmd(causal, f"{out_dir}/report.json", f"{out_dir}-interventions.jsonl")
            cmd = " && ".join([_inspect_cmd(causal, seed=new_seed, out=out_dir, interventions=None), export,
                               _inspect_cmd(causal, seed=new_seed, out=f"{out_dir}-causal",
                                            interventions=f"{out_dir}-interventions.jsonl")])
        else:
            # the same records would measure the same effect again: new ones, on other prompts, are needed
            holes = ("NEW_INTERVENTIONS.jsonl",) if ivs else ()
            cmd = _inspect_cmd(causal, seed=new_seed, out=f"{runs}/seed{new_seed}",
                               interventions="NEW_INTERVENTIONS.jsonl" if ivs else None)
        out.append(Suggestion(3, f"replication: the causal result with another seed (seeds so far: "
                              f"{sorted(set(map(str, seeds)))}) and intervention records measured anew"
                              f"{' (NEW_INTERVENTIONS.jsonl: other prompts than ' + ivs + ')' if ivs else ''} "
                              "must keep its sign beyond the controls",
                              f"{cmd} && interpkit dossier add --project {_q(root)} --report "
                              f"{_q(out_dir + '-causal' if causal['backend'] == 'model' else runs + '/seed' + str(new_seed))}"
                              f" --feature {_q(dossier.feature['feature_id'])}", holes))
        model = dossier.feature["model"]
        out.append(Suggestion(3, "replication in another model: match this run's features with another "
                              "model's report, validate the top matches by interventions on both models "
                              "(validate-matches), add the validated matches file",
                              f"interpkit match --left {_q(causal['report_path'])} --right OTHER/report.json "
                              f"--out {_q(runs + '/matches.json')} && interpkit validate-matches "
                              f"{_q(runs + '/matches.json')} --left-model {_q(model)} --right-model OTHER_MODEL "
                              f"--prompts PROMPTS.jsonl --target-tokens TARGET_TOKENS --out "
                              f"{_q(runs + '/matches.validated.json')} && interpkit dossier add --project {_q(root)} "
                              f"--report {_q(causal['report_path'])} --matches {_q(runs + '/matches.validated.json')}",
                              ("OTHER/report.json", "OTHER_MODEL", "PROMPTS.jsonl", "TARGET_TOKENS")))
    return out
