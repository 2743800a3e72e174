"""``doctor``: a health check of the installation, one line per check, each OK or a fix to copy.

Example:
    >>> from interpkit._doctor import doctor
    >>> any(c.name == "python" for c in doctor())
    True
"""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

_INSTALL_TORCH = "pip install torch==2.13.0  # CPU build; on a GPU machine follow pytorch.org"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    """One line of the doctor's output."""

    name: str
    ok: bool
    detail: str
    """What was found (a version, a path ...)."""
    fix: str | None = None
    """A command or step that fixes a failed check."""
    required: bool = True
    """Whether interpkit's core needs it (optional parts fail soft)."""

    def line(self) -> str:
        status = "OK  " if self.ok else ("FAIL" if self.required else "WARN")
        text = f"[{status}] {self.name:<22} {self.detail}"
        return text if self.ok or not self.fix else f"{text}\n       fix: {self.fix}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix, "required": self.required}


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


_ENV_PACKAGES = ("interpkit", "torch", "transformers", "nnsight", "transformer-lens", "numpy", "pandas",
                 "scikit-learn", "safetensors")


def environment() -> dict[str, Any]:
    """The versions and machine a result was measured with (what a results file records beside its numbers)."""
    threads = None
    if "torch" in sys.modules:
        threads = int(sys.modules["torch"].get_num_threads())
    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch_threads": threads, "packages": {d: _version(d) for d in _ENV_PACKAGES}}


def _package_check(name: str, dist: str, fix: str, *, major: int | None = None, required: bool = True) -> Check:
    v = _version(dist)
    if v is None:
        return Check(name=name, ok=False, detail="not installed", fix=fix, required=required)
    if major is not None and not v.startswith(f"{major}."):
        return Check(name=name, ok=False, detail=f"{v} (interpkit needs {major}.x)", fix=fix, required=required)
    return Check(name=name, ok=True, detail=v, required=required)


def doctor() -> list[Check]:
    """Run every check and return them in display order (never raises for a missing part)."""
    checks = [
        Check(
            name="python",
            ok=sys.version_info >= (3, 10),
            detail=f"{platform.python_version()} ({sys.executable})",
            fix="use Python 3.10 or newer",
        ),
        _package_check("torch", "torch", _INSTALL_TORCH),
        _package_check("transformer-lens", "transformer-lens", 'pip install "transformer-lens>=4,<5"', major=4),
        _package_check("nnsight", "nnsight", 'pip install "nnsight>=0.8,<0.9"'),
        _package_check("transformers", "transformers", "pip install transformers"),
        _package_check("anywidget", "anywidget", "pip install anywidget", required=False),
        _package_check("altair", "altair", "pip install altair", required=False),
    ]
    checks += _model_checks()
    checks.append(_device_check())
    checks.append(_browser_check())
    checks.append(_llm_check())
    return checks


def _browser_check() -> Check:
    """Headless Chromium for the HTML-card and widget browser tests (optional)."""
    import shutil

    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        return Check(name="browser (tests)", ok=False, detail="chromium not found", required=False,
                     fix="sudo apt-get install chromium   (used by the HTML-card browser test via playwright)")
    return Check(name="browser (tests)", ok=True, detail=path, required=False)


def _llm_check() -> Check:
    """Whether an OpenAI-compatible endpoint is configured for labels and the API judge (optional)."""
    import os

    url = os.environ.get("INTERPKIT_LLM_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    model = os.environ.get("INTERPKIT_LLM_MODEL")
    if not url or not model:
        return Check(name="chat API (optional)", ok=True, required=False,
                     detail="not configured: labels and the judge use SmolLM2 locally "
                            "(set INTERPKIT_LLM_BASE_URL, INTERPKIT_LLM_MODEL, INTERPKIT_LLM_API_KEY)")
    return Check(name="chat API (optional)", ok=True, required=False, detail=f"{model} at {url}")


def _model_checks() -> list[Check]:
    from interpkit.models import zoo

    checks = [Check(name="cache directory", ok=True, detail=str(zoo.cache_dir()))]
    for status in zoo.zoo_status():
        name = f"model {status['name']}"
        if not status["installed"]:
            checks.append(Check(name=name, ok=False, detail="not installed", fix=status["install_hint"],
                                required=False))
        elif not status["cached"]:
            checks.append(Check(name=name, ok=True, required=False,
                                detail=f"installed; converted on first load into {status['cache_path']}"))
        else:
            where = status["cache_path"] or status["path"]
            checks.append(Check(name=name, ok=True, detail=f"ready ({where})", required=False))
    return checks


def _device_check() -> Check:
    if _version("torch") is None:
        return Check(name="device", ok=False, detail="torch missing", fix=_INSTALL_TORCH)
    import torch

    cpus = os.cpu_count() or 1
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return Check(name="device", ok=True, detail=f"CUDA: {names}; {cpus} CPU cores")
    return Check(name="device", ok=True, detail=f"CPU only ({cpus} cores, torch {torch.__version__}); "
                 "float32 on CPU (bfloat16 is much slower on most CPUs)")
