"""doctor: every check present, failures carry a fix, JSON output for machines."""

import json

from interpkit import _doctor
from interpkit.cli import main


def test_checks_cover_the_stack():
    names = [c.name for c in _doctor.doctor()]
    for expected in ("python", "torch", "transformer-lens", "nnsight", "anywidget", "cache directory", "device"):
        assert expected in names
    assert any(n.startswith("model smollm2-135m") for n in names)
    assert any(n.startswith("model minilm-l6") for n in names)


def test_missing_package_gives_fix(monkeypatch):
    monkeypatch.setattr(_doctor, "_version", lambda dist: None if dist == "nnsight" else "4.3.0")
    check = next(c for c in _doctor.doctor() if c.name == "nnsight")
    assert not check.ok and "pip install" in check.fix
    assert "fix: pip install" in check.line()


def test_wrong_major_version(monkeypatch):
    monkeypatch.setattr(_doctor, "_version", lambda dist: "3.9.0")
    check = next(c for c in _doctor.doctor() if c.name == "transformer-lens")
    assert not check.ok and "needs 4.x" in check.detail


def test_json_output(capsys):
    rc = main(["doctor", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc in (0, 1)
    assert {"name", "ok", "detail", "fix", "required"} <= set(rows[0])
