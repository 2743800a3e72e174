"""The package root: lazy exports, no heavy imports, no network at import."""

import subprocess
import sys

import interpkit


def test_import_is_light():
    code = (
        "import sys, interpkit, interpkit.records, interpkit.table, interpkit.report;"
        "heavy = [m for m in ('torch', 'transformer_lens', 'nnsight', 'altair', 'anywidget', 'transformers')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_lazy_names_resolve():
    for name in interpkit.__all__:
        if name == "__version__":
            continue
        assert getattr(interpkit, name) is not None, name


def test_unknown_attribute():
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        interpkit.nope  # noqa: B018


def test_all_lists_every_lazy_name():
    assert set(interpkit.__all__) == set(interpkit._LAZY) | {"__version__", "rank"}
