"""``interpkit doctor``: what is installed, cached and usable, each line OK or a fix to copy."""

from __future__ import annotations

import argparse
import json

HELP = "check the installation: versions, packaged models, cache, CPU/GPU"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the checks as JSON")


def run(args: argparse.Namespace) -> int:
    from interpkit._doctor import doctor

    checks = doctor()
    if args.json:
        print(json.dumps([c.to_dict() for c in checks], indent=2))
    else:
        for c in checks:
            print(c.line())
    return 0 if all(c.ok or not c.required for c in checks) else 1
