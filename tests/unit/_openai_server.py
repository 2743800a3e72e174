"""A loopback OpenAI-compatible chat-completions server for tests (127.0.0.1, a thread, no network).

``FakeChatServer(reply=..., probs=...)`` answers ``POST /v1/chat/completions``: ``reply(messages)``
gives the message content, ``probs(messages)`` a ``{token: probability}`` map returned as
``logprobs.content[0].top_logprobs`` when the request asks for logprobs (and ``probs`` is given).
``script(...)`` queues failures served before normal answers: ``(status, headers, body)`` tuples,
``"malformed"`` (a non-JSON 200) or ``"no_choices"`` (JSON without ``choices``). Every request is
recorded in ``requests`` (path, headers, parsed body).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def _last_user(messages: list[dict[str, str]]) -> str:
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


class FakeChatServer:
    def __init__(self, reply: Callable[[list[dict[str, str]]], str] | None = None,
                 probs: Callable[[list[dict[str, str]]], dict[str, float]] | None = None) -> None:
        self.reply = reply or (lambda messages: "echo: " + _last_user(messages))
        self.probs = probs
        self.requests: list[dict[str, Any]] = []
        self._script: list[Any] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    body = None
                with server._lock:
                    server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                    action = server._script.pop(0) if server._script else None
                if isinstance(action, tuple):
                    status, headers, text = action
                    self._send(status, text.encode(), headers)
                elif action == "malformed":
                    self._send(200, b"<html>not json</html>")
                elif action == "no_choices":
                    self._send(200, json.dumps({"id": "x", "object": "chat.completion"}).encode())
                elif self.path != "/v1/chat/completions" or body is None:
                    self._send(404, b'{"error": "unknown path"}')
                else:
                    self._send(200, json.dumps(server.answer(body)).encode())

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *actions: Any) -> None:
        with self._lock:
            self._script.extend(actions)

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        messages = body["messages"]
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop",
                                  "message": {"role": "assistant", "content": self.reply(messages)}}
        if body.get("logprobs") and self.probs is not None:
            probs = self.probs(messages)
            top = sorted(probs.items(), key=lambda kv: -kv[1])[: int(body.get("top_logprobs") or 1)]
            entries = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in top]
            choice["message"]["content"] = top[0][0]
            choice["logprobs"] = {"content": [{"token": top[0][0], "logprob": entries[0]["logprob"],
                                               "top_logprobs": entries}]}
        return {"id": "chatcmpl-1", "object": "chat.completion", "model": body.get("model"),
                "choices": [choice]}

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeChatServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
