"""``interpkit dossier add|show|list``: evidence dossiers per feature under a project folder."""

from __future__ import annotations

import argparse
import json

HELP = "evidence dossiers per feature: add a report's evidence, show the graded claim and the next experiment, list"


def add_step_arguments(a: argparse.ArgumentParser) -> None:
    """The options of ``dossier add``, which is also the ``dossier`` step kind of a run config."""
    a.add_argument("--project", required=True, help="project folder (dossiers go in <project>/dossiers/)")
    a.add_argument("--report", required=True, help="report.json written by interpkit inspect (or its folder)")
    a.add_argument("--feature", default=None, help="one of the report's top features (default: all of them)")
    a.add_argument("--matches", default=None, help="matches.json from interpkit match: record the feature's matches")
    a.add_argument("--artifact", default=None, help="a file exported from the feature: record its kind and sha256")


def run_step(args: argparse.Namespace) -> int:
    """Run a ``dossier`` config step (``dossier add``)."""
    args.dossier_command = "add"
    return run(args)


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="dossier_command", required=True, metavar="ACTION")
    add_step_arguments(sub.add_parser(
        "add", help="add a report's evidence on its top features (or one feature) to their dossiers"))
    s = sub.add_parser("show", help="a dossier's evidence, its grade and the experiments that would raise it")
    s.add_argument("--project", required=True, help="project folder")
    s.add_argument("key", help="the feature key (model|site|feature_id[|sha256:...]) or the dossier's folder name")
    s.add_argument("--json", action="store_true", help="print the grade and suggestions as JSON")
    ls = sub.add_parser("list", help="the project's dossiers with their grades")
    ls.add_argument("--project", required=True, help="project folder")


def _show(args: argparse.Namespace) -> int:
    from interpkit.dossier import dossier_summary, dossier_text, load_dossier

    d = load_dossier(args.project, args.key)
    if args.json:
        print(json.dumps(dossier_summary(d, project_dir=args.project), indent=2))
    else:
        print(dossier_text(d, project_dir=args.project), end="")
    return 0


def run(args: argparse.Namespace) -> int:
    from interpkit.dossier import add_to_dossier, grade, list_dossiers

    if args.dossier_command == "add":
        for d in add_to_dossier(args.project, args.report, args.feature, matches=args.matches,
                                artifact=args.artifact):
            g = grade(d)
            print(f"{d.path}: {len(d.entries)} run(s), grade {g.level} ({g.name})")
        return 0
    if args.dossier_command == "show":
        return _show(args)
    dossiers = list_dossiers(args.project)
    if not dossiers:
        print(f"no dossiers in {args.project}/dossiers")
    for d in dossiers:
        g = grade(d)
        print(f"{g.level} {g.name:<28} {len(d.entries)} run(s)  {d.key}  ({d.slug})")
    return 0
