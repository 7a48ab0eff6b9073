"""The ``web_search`` tool, with a small provider interface and a SearxNG provider.

Configure a SearxNG instance (its JSON output enabled: ``search: formats: [html, json]`` in its
``settings.yml``) with ``CHATLOOM_WEB_SEARCH_URL=http://127.0.0.1:8888`` or ``web_search_url``
in ``chatloom.toml``. Unconfigured or unreachable, the tool answers with a clear message; every
request has a total time limit, so it never hangs a turn.

A provider is any object with ``name`` and ``search(query, *, k) -> list[WebResult]``:

>>> class Canned:
...     name = "canned"
...     def search(self, query, *, k=5):
...         return [WebResult("Example", "https://example.com", "An example page.")]
>>> print(make_web_search_tool(Canned()).invoke({"query": "example"}))
[1] Example (https://example.com)
An example page.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from langchain_core.tools import BaseTool, StructuredTool

from chatloom.errors import ToolError

DEFAULT_TIMEOUT_S = 10.0
MAX_RESPONSE_BYTES = 2_000_000
SNIPPET_CHARS = 400


class WebSearchError(ToolError):
    """A web search provider failed (unreachable, timed out, refused, or answered nonsense)."""


@dataclass(frozen=True)
class WebResult:
    """One web search hit."""

    title: str
    url: str
    snippet: str = ""


@runtime_checkable
class WebSearchProvider(Protocol):
    """What the ``web_search`` tool needs from a search backend."""

    name: str

    def search(self, query: str, *, k: int = 5) -> list[WebResult]:
        """Return up to ``k`` results for ``query``; raise :class:`WebSearchError` on failure."""
        ...


class SearxngProvider:
    """SearxNG's JSON API: ``GET {base_url}/search?q=...&format=json``.

    ``timeout`` bounds the whole request (connect, headers and body), not each read.
    """

    name = "searxng"

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT_S, language: str | None = None) -> None:
        if not re.match(r"^https?://", base_url or ""):
            raise WebSearchError(f"web_search_url {base_url!r} is not an http(s) URL", "e.g. http://127.0.0.1:8888")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.language = language

    def search(self, query: str, *, k: int = 5) -> list[WebResult]:
        import httpx  # a core dependency, but only needed when searching

        params = {"q": query, "format": "json"}
        if self.language:
            params["language"] = self.language
        url = f"{self.base_url}/search"
        deadline = time.monotonic() + self.timeout
        limits = httpx.Timeout(self.timeout, connect=min(self.timeout, 5.0))
        try:
            with httpx.Client(timeout=limits, follow_redirects=True, trust_env=False) as client:
                with client.stream("GET", url, params=params, headers={"Accept": "application/json"}) as response:
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > MAX_RESPONSE_BYTES:
                            raise WebSearchError(f"{url} sent more than {MAX_RESPONSE_BYTES} bytes")
                        if time.monotonic() > deadline:
                            raise httpx.ReadTimeout("total time limit")
                    status = response.status_code
        except httpx.TimeoutException:
            raise WebSearchError(
                f"{url} did not answer within {self.timeout:g} s", "check the server or raise the timeout"
            ) from None
        except httpx.HTTPError as exc:
            raise WebSearchError(
                f"cannot reach {url} ({type(exc).__name__}: {exc})", "is the SearxNG server running?"
            ) from None
        if status == 403:
            raise WebSearchError(
                f"{url} refused format=json (HTTP 403)",
                "enable JSON in SearxNG's settings.yml: search: formats: [html, json]",
            )
        if status != 200:
            raise WebSearchError(f"{url} answered HTTP {status}")
        import json

        try:
            data = json.loads(bytes(body))
            rows = data["results"]
            assert isinstance(rows, list)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise WebSearchError(f"{url} did not return SearxNG JSON (no 'results' list)") from None
        results = []
        for row in rows:
            if not isinstance(row, dict) or not row.get("url"):
                continue
            results.append(
                WebResult(str(row.get("title") or row["url"]), str(row["url"]), str(row.get("content") or ""))
            )
            if len(results) >= k:
                break
        return results


def provider_from_settings(settings: Any = None) -> WebSearchProvider | None:
    """The provider ``settings.web_search_url`` configures, or None when it is unset."""
    if settings is None:
        from chatloom.config import get_settings

        settings = get_settings()
    url = getattr(settings, "web_search_url", None)
    return SearxngProvider(url) if url else None


def format_results(results: list[WebResult], max_chars: int = SNIPPET_CHARS) -> str:
    """Numbered results with their URLs, for citation."""
    blocks = []
    for i, r in enumerate(results, 1):
        snippet = re.sub(r"\s+", " ", r.snippet).strip()
        if len(snippet) > max_chars:
            snippet = snippet[: max_chars - 1].rsplit(" ", 1)[0] + "…"
        blocks.append(f"[{i}] {r.title} ({r.url})" + (f"\n{snippet}" if snippet else ""))
    return "\n".join(blocks)


NOT_CONFIGURED = (
    "web search is not configured: set CHATLOOM_WEB_SEARCH_URL (or web_search_url in "
    "chatloom.toml) to a SearxNG instance with JSON output enabled. Answer from what you know "
    "or from the knowledge base instead."
)


def make_web_search_tool(
    provider: WebSearchProvider | Callable[[], WebSearchProvider | None] | None = None,
    *,
    k: int = 5,
    name: str = "web_search",
) -> BaseTool:
    """Build a ``web_search`` tool. ``provider=None`` reads settings at call time."""

    def resolve() -> WebSearchProvider | None:
        if provider is None:
            return provider_from_settings()
        if callable(provider) and not hasattr(provider, "search"):
            return provider()
        return provider  # type: ignore[return-value]

    def web_search(query: str) -> str:
        query = (query or "").strip()
        if not query:
            return "error: give a search query"
        try:
            backend = resolve()
            if backend is None:
                return f"error: {NOT_CONFIGURED}"
            results = backend.search(query, k=k)
        except ToolError as exc:
            return f"error: web search failed: {exc}"
        if not results:
            return f"No web results for {query!r}."
        return format_results(results)

    tool = StructuredTool.from_function(
        func=web_search,
        name=name,
        description="Search the web and return the top results with their URLs. Cite results by number.",
    )
    tool.metadata = {"effect": "read"}  # web pages are untrusted data
    return tool


web_search = make_web_search_tool()
"""The built-in ``web_search`` tool, configured by ``web_search_url``."""
