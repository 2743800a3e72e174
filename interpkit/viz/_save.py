"""`save_chart`: write an altair chart as PNG, SVG, HTML or vega-lite JSON, without the network."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from interpkit._io import atomic_open, atomic_write_text

FORMATS = ("png", "svg", "html", "json")


def save_chart(chart: Any, path: str | os.PathLike[str], *, format: str | None = None, scale: float = 2.0) -> Path:
    """Write ``chart`` to ``path`` (format from the suffix unless given) and return the path.

    PNG and SVG are rendered by vl-convert (the ``viz`` extra), which bundles vega: nothing is
    fetched. HTML pages embed vega too (about 1 MB), so they open offline. ``.json`` (or
    ``.vl.json``) is the vega-lite spec.

    Args:
        chart: an altair chart (anything with ``to_dict()``).
        path: the output file.
        format: ``"png"``, ``"svg"``, ``"html"`` or ``"json"``; default from the suffix.
        scale: PNG pixel scale.

    Raises:
        ValueError: unknown format.
        ImportError: PNG/SVG/HTML without vl-convert installed.
    """
    path = Path(path)
    fmt = (format or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"save_chart: format must be one of {FORMATS}, got {fmt!r} (from {path.name})")
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        return atomic_write_text(path, chart.to_json() + "\n")
    try:
        import vl_convert as vlc
    except ImportError as exc:
        raise ImportError("save_chart needs vl-convert for PNG/SVG/HTML: pip install 'interpkit[viz]'") from exc
    spec = chart.to_dict()
    if fmt == "svg":
        return atomic_write_text(path, vlc.vegalite_to_svg(spec))
    if fmt == "html":
        return atomic_write_text(path, vlc.vegalite_to_html(spec, bundle=True))
    data = vlc.vegalite_to_png(spec, scale=scale)
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return path
