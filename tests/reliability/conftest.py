"""The reliability tier (docs/reliability.md): fuzzed parsers, killed commands, resume, network faults,
untrusted files and determinism.

Every test here is part of `make test`; the tier's whole budget is a few minutes on the two cores, so
each module keeps its cases cheap (small files, tiny config-built models, subprocesses only where a
process must really die).
"""

from __future__ import annotations

import sys
from pathlib import Path

# the tier's helpers (`_fuzz`, ...) are plain modules beside the tests
sys.path.insert(0, str(Path(__file__).parent))
