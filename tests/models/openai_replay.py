"""A real OpenAI-compatible HTTP server on 127.0.0.1 that replays scripted responses.

Each request to ``/v1/chat/completions`` takes the next scripted reply: a JSON body with a
status, or an SSE stream (a ``.sse`` fixture, sent in pieces with optional pauses). Every
request the server saw is kept in ``server.requests`` so tests can count retries and check
what the client sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A JSON fixture parsed, or an ``.sse`` fixture as text."""
    text = (FIXTURES / name).read_text(encoding="utf-8")
    return text if name.endswith(".sse") else json.loads(text)


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    sse: str | None = None
    delay: float = 0.0
    """Seconds to wait before answering (to trip the client's timeout)."""
    chunk_pause: float = 0.0
    cut_after: int | None = None
    """Drop the connection after this many SSE events (promising more bytes than were sent)."""
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    """Send these bytes as the body instead of ``body`` as JSON (a broken or non-JSON reply)."""
    content_type: str = "application/json"


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class ReplayServer:
    """``with ReplayServer() as srv: srv.add(Reply(...)); ... srv.base_url``"""

    def __init__(self) -> None:
        self.script: deque[Reply] = deque()
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._json(
                        200,
                        {"object": "list", "data": [{"id": "gpt-4o-mini", "object": "model", "owned_by": "replay"}]},
                    )
                else:
                    self._json(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"null")
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                with server._lock:
                    server.requests.append(
                        Seen(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                    )
                    reply = server.script.popleft() if server.script else None
                if not self.path.endswith("/chat/completions"):
                    self._json(404, {"error": {"message": f"no route {self.path}"}})
                    return
                if reply is None:
                    self._json(500, {"error": {"message": "replay script exhausted"}})
                    return
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    if reply.sse is not None:
                        self._sse(reply)
                    elif reply.raw is not None:
                        self._bytes(reply.status, reply.raw, reply.content_type)
                    else:
                        body_out = reply.body
                        if isinstance(body_out, (dict, list)):
                            key = (self.headers.get("Authorization") or "").removeprefix("Bearer ")
                            body_out = json.loads(json.dumps(body_out).replace("{KEY}", key))
                        self._json(reply.status, body_out, reply.headers)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
                self._bytes(status, json.dumps(body).encode(), "application/json", headers)

            def _bytes(
                self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _sse(self, reply: Reply) -> None:
                self.send_response(reply.status)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                if reply.cut_after is not None:
                    self.send_header("Content-Length", str(len(reply.sse.encode()) + 1000))
                self.end_headers()
                self.close_connection = True
                events = [e for e in reply.sse.split("\n\n") if e.strip()]
                if reply.cut_after is not None:
                    events = events[: reply.cut_after]
                for event in events:
                    if event.strip():
                        self.wfile.write((event + "\n\n").encode())
                        self.wfile.flush()
                        if reply.chunk_pause:
                            time.sleep(reply.chunk_pause)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def add(self, *replies: Reply) -> ReplayServer:
        self.script.extend(replies)
        return self

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- what every test file driving the openai: backend against this server needs ---------------

OPENAI_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "CHATLOOM_OPENAI_BASE_URL", "CHATLOOM_MODEL")


def isolate_openai_env(monkeypatch: Any, tmp_path: Path) -> None:
    """No OpenAI settings from the developer's shell, a fresh data dir, no stray chatloom.toml."""
    for var in OPENAI_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def replay_model(server: ReplayServer, **options: Any) -> Any:
    """An ``openai:`` chat model talking to ``server``, with a short timeout."""
    from chatloom.models import resolve_model

    options.setdefault("timeout", 5)
    return resolve_model("openai:gpt-4o-mini", base_url=server.base_url, **options)
