"""Where the widgets' front-end files live, in a source checkout and in an installed wheel.

The ES modules and stylesheets are hand-written and ship as they are (no bundler, no CDN). Their
source is the repository's top-level ``widgets/`` folder; ``interpkit/widgets/static`` is a
symlink to it, so setuptools copies the files into the wheel as package data
(``[tool.setuptools.package-data]``) and an editable install reads them in place. Where the
symlink is not materialised (a checkout on a filesystem without symlinks) the repository folder is
used directly.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC", "asset"]


def _static_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "static", here.parents[1] / "widgets"):
        if (candidate / "criterion_editor.js").is_file():
            return candidate
    raise FileNotFoundError(
        f"interpkit's widget files are missing: neither {here / 'static'} nor {here.parents[1] / 'widgets'} "
        "holds criterion_editor.js (reinstall interpkit)")


STATIC: Path = _static_dir()
"""Folder holding ``<widget>.js`` and ``<widget>.css``."""


def asset(name: str) -> Path:
    """The path of one front-end file (``"steering_panel.js"``).

    Raises:
        FileNotFoundError: the file is not shipped.
    """
    path = STATIC / name
    if not path.is_file():
        raise FileNotFoundError(f"interpkit widget file {name!r} not found in {STATIC}")
    return path
