"""Small JSON-over-HTTP client for the online services interpkit talks to (Neuronpedia, chat APIs).

Standard library only (``urllib``), so ``import interpkit`` pulls in nothing new. Every call has a
timeout; connection failures, timeouts, HTTP 429 and 5xx are retried with exponential backoff
(``Retry-After`` is honoured for 429/503, capped at ``max_backoff``); other 4xx answers fail at
once. A body that is not JSON raises `MalformedResponse` naming the URL and the start of the body.
`JsonCache` keeps answers on disk, one atomic file per key.

Example:
    >>> cache = JsonCache(__import__("tempfile").mkdtemp())
    >>> cache.put("https://example.org/a?b=1", {"ok": True}); cache.get("https://example.org/a?b=1")
    {'ok': True}
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from interpkit._io import atomic_write_text

__all__ = ["HTTPError", "JsonCache", "MalformedResponse", "ServiceError", "request_json"]

RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ServiceError(RuntimeError):
    """An online service (or its offline stand-in) could not give what was asked: a network failure,
    an unknown feature, a malformed answer, offline mode. The CLI prints these as one ``error:`` line."""


class HTTPError(ServiceError):
    """A request that failed for good: the message names the URL, status and what the server said."""

    def __init__(self, message: str, *, url: str, status: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


class MalformedResponse(HTTPError):
    """The server answered 2xx but the body is not the JSON that was expected."""


def _snippet(body: bytes | str, n: int = 200) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:n] + ("..." if len(text) > n else "")


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def request_json(
    method: str,
    url: str,
    *,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Send one JSON request and return the parsed JSON answer.

    Args:
        method: ``"GET"`` or ``"POST"``.
        url: the full URL.
        payload: a JSON-serialisable body (POST).
        headers: extra headers (an API key, for instance); never logged or put in errors.
        timeout: seconds for each attempt (connect and read).
        retries: further attempts after the first for retryable failures.
        backoff: the first wait; doubled after each failed attempt.
        max_backoff: the longest wait (a larger ``Retry-After`` is capped to it).
        sleep: the wait function (tests pass a recorder).

    Raises:
        HTTPError: a non-retryable status, or a retryable failure that persisted; the message
            says which URL, which status (or network error) and how many attempts were made.
        MalformedResponse: a 2xx answer whose body is not JSON.
    """
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    hdrs = {"Accept": "application/json", "User-Agent": "interpkit"}
    if data is not None:
        hdrs["Content-Type"] = "application/json"
    hdrs.update(headers or {})
    wait = backoff
    last = ""
    status: int | None = None
    for attempt in range(retries + 1):
        req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
        delay = wait
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                body = resp.read()
            try:
                return json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise MalformedResponse(
                    f"{method} {url}: the answer is not JSON ({exc}); it starts with {_snippet(body)!r}",
                    url=url, status=200, body=_snippet(body, 2000)) from None
        except urllib.error.HTTPError as exc:
            status = exc.code
            body = _snippet(exc.read() or b"")
            last = f"HTTP {exc.code}: {body}" if body else f"HTTP {exc.code}"
            if exc.code not in RETRY_STATUS:
                raise HTTPError(f"{method} {url}: {last}", url=url, status=exc.code, body=body) from None
            after = _retry_after(exc.headers)
            if after is not None:
                delay = after
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            reason = getattr(exc, "reason", exc)
            last = f"network error: {reason}"
            status = None
        if attempt < retries:
            sleep(min(delay, max_backoff))
            wait = min(wait * 2, max_backoff)
    raise HTTPError(f"{method} {url}: gave up after {retries + 1} attempt(s); last: {last}",
                    url=url, status=status, body=last)


class JsonCache:
    """A folder of JSON answers keyed by any string (a URL, a prompt): one file per key.

    Files are named by the key's sha256 and written atomically, so a crash never leaves half an
    entry; an unreadable entry counts as a miss.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, key: str) -> Any:
        """The cached value, or None when there is none (or it cannot be read)."""
        p = self.path(key)
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        return entry.get("value") if isinstance(entry, dict) and entry.get("key") == key else None

    def put(self, key: str, value: Any) -> None:
        """Store ``value`` (JSON-serialisable) under ``key``."""
        atomic_write_text(self.path(key), json.dumps({"key": key, "value": value}))
