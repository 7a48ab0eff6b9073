"""web_search against a real local HTTP server on 127.0.0.1 speaking SearxNG's JSON API."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from chatloom.config import get_settings
from chatloom.tools.web import (
    SearxngProvider,
    WebResult,
    WebSearchError,
    make_web_search_tool,
    provider_from_settings,
    web_search,
)

RESULTS = {
    "query": "bubblewrap",
    "number_of_results": 3,
    "results": [
        {
            "url": "https://github.com/containers/bubblewrap",
            "title": "containers/bubblewrap",
            "content": "Low-level unprivileged sandboxing tool",
            "engine": "duckduckgo",
        },
        {
            "url": "https://wiki.archlinux.org/title/Bubblewrap",
            "title": "Bubblewrap - ArchWiki",
            "content": "Bubblewrap is a  lightweight\n setuid sandbox",
            "engine": "bing",
        },
        {"title": "no url, skipped"},
        {"url": "https://example.com/3", "title": "", "content": ""},
    ],
    "answers": [],
    "suggestions": [],
}


class SearxngHandler(BaseHTTPRequestHandler):
    mode = "ok"
    requests: list = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = parse_qs(url.query)
        type(self).requests.append((url.path, query))
        mode = type(self).mode
        if url.path != "/search":
            return self._send(404, b"not found")
        if mode == "forbidden" or query.get("format") != ["json"]:
            return self._send(403, b"Forbidden")
        if mode == "slow":
            time.sleep(2)
        if mode == "drip":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            for _ in range(25):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
            return
        if mode == "html":
            return self._send(200, b"<html>searx</html>", "text/html")
        if mode == "error":
            return self._send(500, b"boom")
        if mode == "empty":
            return self._send(200, json.dumps({"query": query["q"][0], "results": []}).encode())
        return self._send(200, json.dumps(RESULTS).encode())

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def searx():
    SearxngHandler.mode = "ok"
    SearxngHandler.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), SearxngHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_searxng_provider_speaks_the_json_api(searx: str) -> None:
    results = SearxngProvider(searx + "/").search("bubblewrap sandbox", k=5)
    assert results == [
        WebResult(
            "containers/bubblewrap",
            "https://github.com/containers/bubblewrap",
            "Low-level unprivileged sandboxing tool",
        ),
        WebResult(
            "Bubblewrap - ArchWiki",
            "https://wiki.archlinux.org/title/Bubblewrap",
            "Bubblewrap is a  lightweight\n setuid sandbox",
        ),
        WebResult("https://example.com/3", "https://example.com/3", ""),
    ]
    path, query = SearxngHandler.requests[0]
    assert path == "/search" and query["q"] == ["bubblewrap sandbox"] and query["format"] == ["json"]


def test_tool_output_is_numbered_with_urls(searx: str) -> None:
    tool = make_web_search_tool(SearxngProvider(searx), k=2)
    assert tool.invoke({"query": "bubblewrap"}) == (
        "[1] containers/bubblewrap (https://github.com/containers/bubblewrap)\n"
        "Low-level unprivileged sandboxing tool\n"
        "[2] Bubblewrap - ArchWiki (https://wiki.archlinux.org/title/Bubblewrap)\n"
        "Bubblewrap is a lightweight setuid sandbox"
    )


def test_configured_through_settings(searx: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLOOM_WEB_SEARCH_URL", searx)
    provider = provider_from_settings(get_settings())
    assert isinstance(provider, SearxngProvider) and provider.base_url == searx
    assert web_search.invoke({"query": "bubblewrap"}).startswith("[1] containers/bubblewrap")


def test_unconfigured_is_a_clear_tool_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATLOOM_WEB_SEARCH_URL", raising=False)
    monkeypatch.setenv("CHATLOOM_CONFIG", "/nonexistent/chatloom.toml")
    out = web_search.invoke({"query": "anything"})
    assert out.startswith("error: web search is not configured: set CHATLOOM_WEB_SEARCH_URL")


def test_offline_server_is_a_clear_tool_message() -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = make_web_search_tool(SearxngProvider(f"http://127.0.0.1:{port}")).invoke({"query": "x"})
    assert out.startswith(f"error: web search failed: cannot reach http://127.0.0.1:{port}/search")
    assert "is the SearxNG server running?" in out


@pytest.mark.parametrize("mode", ["slow", "drip"])
def test_timeouts_never_hang(searx: str, mode: str) -> None:
    SearxngHandler.mode = mode
    tool = make_web_search_tool(SearxngProvider(searx, timeout=1.0))
    start = time.monotonic()
    out = tool.invoke({"query": "x"})
    assert time.monotonic() - start < 2.5
    assert "did not answer within 1 s" in out


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("forbidden", "refused format=json (HTTP 403) — enable JSON in SearxNG's settings.yml"),
        ("error", "answered HTTP 500"),
        ("html", "did not return SearxNG JSON"),
    ],
)
def test_server_failures_are_explained(searx: str, mode: str, expected: str) -> None:
    SearxngHandler.mode = mode
    out = make_web_search_tool(SearxngProvider(searx)).invoke({"query": "x"})
    assert out.startswith("error: web search failed:") and expected in out


def test_no_results(searx: str) -> None:
    SearxngHandler.mode = "empty"
    assert make_web_search_tool(SearxngProvider(searx)).invoke({"query": "zzz"}) == "No web results for 'zzz'."


def test_bad_url_is_refused() -> None:
    with pytest.raises(WebSearchError, match="is not an http"):
        SearxngProvider("file:///etc/passwd")


def test_builtin_tool_shape() -> None:
    assert web_search.name == "web_search" and web_search.metadata == {"effect": "read"}
