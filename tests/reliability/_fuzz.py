"""The harness every parser fuzz test uses: byte-level mutations of a valid file, and one check.

A parser passes when, on every generated input, it either returns or raises its documented error, and
that error names the file (and, where the format has them, the line or row / tensor and the field).
Anything else (a ``KeyError``, a ``UnicodeDecodeError``, a ``TypeError`` from deep inside, a hang) fails.

`fuzz` runs a check under Hypothesis and returns how many cases it tried, so each test can assert the
issue's floor (``CASES``, 1,000) was really reached, not silently cut short by a small search space.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: generated cases per parser (the issue's floor)
CASES = 1000

#: fixed seed, no example database: the same cases on every run and machine (CI is reproducible)
SETTINGS = settings(
    max_examples=CASES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

BOM = b"\xef\xbb\xbf"

#: what a JSON value may be replaced with: wrong types, non-finite and huge numbers, broken tokens
REPLACEMENTS: tuple[bytes, ...] = (
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"123456789012345678901234567890123",
    b"-1", b"0", b"0.5", b"1.5", b"true", b"false", b"null", b'""', b'"x"', b'"NaN"', b"[]", b"{}",
    b"[1, 2]", b'{"a": 1}', b'"\\ud800"', b'"' + b"\xff\xfe" + b'"', b"9" * 400,
)

_TOKEN = re.compile(rb'"(?:[^"\\\n]|\\.)*"|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null')


def _truncate(data: bytes, k: int) -> bytes:
    return data[: k % (len(data) + 1)]


def _replace_token(data: bytes, i: int, new: bytes) -> bytes:
    toks = list(_TOKEN.finditer(data))
    if not toks:
        return data + new
    m = toks[i % len(toks)]
    return data[: m.start()] + new + data[m.end():]


def _insert(data: bytes, i: int, junk: bytes) -> bytes:
    k = i % (len(data) + 1)
    return data[:k] + junk + data[k:]


def _flip(data: bytes, i: int, b: int) -> bytes:
    if not data:
        return bytes([b])
    k = i % len(data)
    return data[:k] + bytes([b]) + data[k + 1:]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _dup_line(data: bytes, i: int) -> bytes:
    lines = _lines(data)
    k = i % len(lines)
    return b"\n".join(lines[: k + 1] + [lines[k]] + lines[k + 1:])


def _drop_line(data: bytes, i: int) -> bytes:
    lines = _lines(data)
    k = i % len(lines)
    return b"\n".join(lines[:k] + lines[k + 1:])


def _swap_key(data: bytes, i: int, name: bytes) -> bytes:
    """Rename one JSON key (a string followed by a colon): a missing field and an unknown one."""
    keys = list(re.finditer(rb'"(?:[^"\\\n]|\\.)*"\s*:', data))
    if not keys:
        return data
    m = keys[i % len(keys)]
    return data[: m.start()] + b'"' + name + b'":' + data[m.end():]


def one_mutation(data: bytes) -> st.SearchStrategy[bytes]:
    """One edit of ``data``: truncation, a BOM, CRLF endings, junk bytes, a replaced value, a duplicated
    or dropped line, a renamed key, or the empty file."""
    idx = st.integers(0, 1 << 30)
    return st.one_of(
        idx.map(lambda k: _truncate(data, k)),
        st.just(BOM + data),
        st.just(data.replace(b"\n", b"\r\n")),
        st.tuples(idx, st.binary(min_size=1, max_size=12)).map(lambda t: _insert(data, *t)),
        st.tuples(idx, st.integers(0, 255)).map(lambda t: _flip(data, *t)),
        st.tuples(idx, st.sampled_from(REPLACEMENTS)).map(lambda t: _replace_token(data, *t)),
        idx.map(lambda k: _dup_line(data, k)),
        idx.map(lambda k: _drop_line(data, k)),
        st.tuples(idx, st.sampled_from([b"x", b"", b"id", b"\xff"])).map(lambda t: _swap_key(data, *t)),
        st.just(b""),
        st.binary(min_size=1, max_size=64),
    )


def mutated(valid: bytes | list[bytes], *, max_edits: int = 3) -> st.SearchStrategy[bytes]:
    """1 to ``max_edits`` successive edits (`one_mutation`) of a valid file (or of one of several)."""

    @st.composite
    def chain(draw: st.DrawFn) -> bytes:
        data = draw(st.sampled_from(valid)) if isinstance(valid, list) else valid
        for _ in range(draw(st.integers(1, max_edits))):
            data = draw(one_mutation(data))
        return data

    return chain()


def fuzz(strategy: st.SearchStrategy[Any], check: Callable[[Any], None], *, cases: int = CASES) -> int:
    """Run ``check`` on ``cases`` generated inputs (Hypothesis, fixed seed) and return how many ran."""
    count = 0

    @settings(SETTINGS, max_examples=cases)
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal count
        count += 1
        check(value)

    run()
    return count


def expect_documented(
    parse: Callable[[], Any],
    errors: type[BaseException] | tuple[type[BaseException], ...],
    *,
    names: str | Path,
    where: str | None = None,
) -> BaseException | None:
    """Run ``parse``; it must return, or raise one of ``errors`` whose message names ``names`` (the
    file's name) and, when given, matches the regex ``where`` (a line, row, tensor or field).

    Returns the documented error it raised (None when it parsed).
    """
    try:
        parse()
    except errors as exc:
        msg = str(exc)
        name = Path(names).name if isinstance(names, Path) else names
        assert name in msg, f"{type(exc).__name__} does not name the file {name!r}: {msg}"
        if where is not None:
            assert re.search(where, msg), f"{type(exc).__name__} does not say where ({where!r}): {msg}"
        return exc
    return None


def huge_line(size: int = 50 * 1024 * 1024) -> bytes:
    """One line of about ``size`` bytes: a JSON object with one enormous string field."""
    return b'{"text": "' + b"a" * size + b'"}\n'
