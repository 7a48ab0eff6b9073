"""Connections to MCP servers, usable from synchronous code (the turn graph runs tools sync).

One background thread runs an asyncio loop for all of an agent's servers. Each server's
``mcp.Client`` lives in a task of its own there (its transport's cancel scopes must be entered
and left by one task); calls are submitted to the loop and waited for with a deadline, so a
dead, hung or slow server becomes a :class:`MCPServerError` in bounded time, never a hang.
A server is started on first use; one that died is restarted on the next call.

>>> from chatloom.mcp.config import MCPServerSpec
>>> clients = MCPClients([MCPServerSpec(name="nope", command="/no/such/server")])
>>> clients.check()[0].error.startswith("MCP server 'nope' could not be started")
True
>>> clients.close()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatloom.errors import ToolError, install_hint
from chatloom.mcp.config import MCPServerSpec, merge_servers, toml_servers

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from chatloom.config import Settings

log = logging.getLogger("chatloom.mcp")

_GRACE_S = 5.0
"""Extra seconds the caller waits beyond a call's own timeout before abandoning it."""


class MCPServerError(ToolError):
    """An MCP server could not be started, died, timed out, or refused a call."""


def _need_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise MCPServerError("MCP support needs the `mcp` package", install_hint("mcp", "mcp")) from None


@dataclass(frozen=True)
class ServerReport:
    """What one server offered when asked (``chatloom mcp check``)."""

    name: str
    transport: str
    target: str
    tools: tuple[Any, ...] = ()
    resources: tuple[Any, ...] = ()
    prompts: tuple[Any, ...] = ()
    error: str = ""
    seconds: float = 0.0


class _Loop:
    """A daemon thread running an asyncio loop; ``run(coro, timeout)`` waits for a result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="chatloom-mcp", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError from None

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class MCPConnection:
    """One MCP server. All ``a*`` methods run on the shared loop."""

    def __init__(self, spec: MCPServerSpec) -> None:
        self.spec = spec
        self.secrets: list[str] = []
        self._client: Any = None
        self._stop: asyncio.Event | None = None
        self._runner: asyncio.Task | None = None
        self._lock: asyncio.Lock | None = None
        self._stderr: Any = None
        self._http_status = ""

    # -- life cycle ---------------------------------------------------------------------------

    async def client(self) -> Any:
        """The connected ``mcp.Client``, starting the server first if needed."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._client is not None and self._runner is not None and not self._runner.done():
                return self._client
            await self._start()
            return self._client

    async def _start(self) -> None:
        await self._halt()  # a runner left from a server that died: end it before starting anew
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._stop = asyncio.Event()
        self._runner = asyncio.create_task(self._run(ready, self._stop))
        try:
            self._client = await asyncio.wait_for(asyncio.shield(ready), self.spec.connect_timeout)
        except TimeoutError:
            await self._halt()
            raise self.error(
                f"did not start and answer within {self.spec.connect_timeout:g} s",
                "check the command or URL, or raise connect_timeout",
            ) from None
        except MCPServerError:
            raise
        except Exception as exc:  # noqa: BLE001 - the transport's own failure, reworded below
            await self._halt()
            raise self.error(
                f"could not be started ({self._why(exc, stderr=True)})",
                "check its command, arguments, URL and environment",
            ) from None

    async def _run(self, ready: asyncio.Future, stop: asyncio.Event) -> None:
        from mcp import Client

        try:
            async with self._transport() as target, Client(target) as client:
                ready.set_result(client)
                await stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever waits for `ready`
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
        finally:
            if self._runner is asyncio.current_task():  # an old runner must not clear a new client
                self._client = None

    def _transport(self) -> Any:
        """An async context manager yielding what ``mcp.Client`` connects to."""
        from contextlib import asynccontextmanager

        spec = self.spec

        @asynccontextmanager
        async def stdio() -> Any:
            from mcp.client.stdio import StdioServerParameters, stdio_client

            env, self.secrets = spec.resolved_env()
            params = StdioServerParameters(
                command=spec.command or "", args=list(spec.args), env=env or None, cwd=spec.cwd
            )
            # The server's stderr goes to a file, so its last line can explain a failure.
            if self._stderr is not None:
                self._stderr.close()
            self._stderr = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")
            yield stdio_client(params, errlog=self._stderr)

        @asynccontextmanager
        async def http() -> Any:
            from mcp.client.streamable_http import streamable_http_client
            from mcp.shared._httpx_utils import create_mcp_http_client

            headers, self.secrets = spec.resolved_headers()
            async with create_mcp_http_client(headers=headers) as http_client:
                # The SDK reports a refused request as "Server returned an error response";
                # keep the HTTP status so the error can say 401 (the token) or 404 (the URL).
                http_client.event_hooks["response"].append(self._note_status)
                yield streamable_http_client(spec.url or "", http_client=http_client)

        return stdio() if spec.transport == "stdio" else http()

    async def _note_status(self, response: Any) -> None:
        if response.status_code >= 400:
            self._http_status = f"HTTP {response.status_code} {response.reason_phrase}".strip()

    async def _halt(self) -> None:
        runner, self._runner = self._runner, None
        if self._stop is not None:
            self._stop.set()
        if runner is not None and not runner.done():
            try:  # the SDK closes stdin, then terminates the process tree, each wait bounded
                await asyncio.wait_for(asyncio.shield(runner), 10)
            except BaseException:  # noqa: BLE001 - closing: nothing left to report to
                runner.cancel()
        self._client = None

    async def aclose(self) -> None:
        """Stop the server (stdio: close its stdin, then terminate it) or end the HTTP session."""
        await self._halt()
        self._lock = None  # bound to this loop; a later start may run on a new one
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    # -- calls --------------------------------------------------------------------------------

    async def call_tool(self, tool: str, args: dict[str, Any]) -> str:
        """Call ``tool``; its text, or :class:`MCPServerError` (failed, timed out, died)."""
        client = await self.client()
        try:
            result = await client.call_tool(tool, args, read_timeout_seconds=self.spec.timeout)
        except Exception as exc:  # noqa: BLE001 - every transport failure becomes one clear line
            raise self._call_error(f"tool {tool!r}", exc) from None
        text = result_text(result)
        if result.is_error:
            raise self.error(f"tool {tool!r} failed: {text or 'no message'}")
        return text

    async def read_resource(self, uri: str) -> str:
        """The text of resource ``uri`` (binary parts are described, not decoded)."""
        client = await self.client()
        try:
            result = await client.read_resource(uri)
        except Exception as exc:  # noqa: BLE001
            raise self._call_error(f"resources/read {uri}", exc) from None
        parts = [
            getattr(c, "text", None) or f"[{getattr(c, 'mime_type', None) or 'binary'} content of {c.uri}]"
            for c in result.contents
        ]
        return "\n".join(parts)

    async def get_prompt(self, name: str, args: dict[str, str]) -> list[tuple[str, str]]:
        """Prompt ``name`` rendered by the server, as ``(role, text)`` pairs."""
        client = await self.client()
        try:
            result = await client.get_prompt(name, args)
        except Exception as exc:  # noqa: BLE001
            raise self._call_error(f"prompt {name!r}", exc) from None
        return [(m.role, getattr(m.content, "text", "") or "") for m in result.messages]

    async def report(self) -> ServerReport:
        """Connect, and list what the server offers."""
        start = time.perf_counter()
        spec = self.spec
        try:
            client = await self.client()
            caps = client.server_capabilities
            tools = tuple((await client.list_tools()).tools) if caps.tools else ()
            resources = tuple((await client.list_resources()).resources) if caps.resources else ()
            prompts = tuple((await client.list_prompts()).prompts) if caps.prompts else ()
        except MCPServerError as exc:
            return ServerReport(
                spec.name, spec.transport, spec.target, error=self.redact(str(exc)), seconds=time.perf_counter() - start
            )
        except Exception as exc:  # noqa: BLE001
            err = self._call_error("listing", exc)
            return ServerReport(
                spec.name, spec.transport, spec.target, error=self.redact(str(err)), seconds=time.perf_counter() - start
            )
        if spec.tools is not None:
            tools = tuple(t for t in tools if t.name in spec.tools)
        return ServerReport(
            spec.name, spec.transport, spec.target, tools, resources, prompts, seconds=time.perf_counter() - start
        )

    # -- errors -------------------------------------------------------------------------------

    def error(self, what: str, hint: str | None = None) -> MCPServerError:
        """An error naming this server, with any secret redacted."""
        return MCPServerError(self.redact(f"MCP server {self.spec.name!r} {what}"), hint)

    def _call_error(self, what: str, exc: BaseException) -> MCPServerError:
        text = str(exc)
        if "timed out" in text or isinstance(exc, TimeoutError):
            return self.error(
                f"did not answer {what} within {self.spec.timeout:g} s",
                "the call was abandoned; try again later, or raise the server's timeout",
            )
        if "closed" in text.lower() or isinstance(exc, (OSError, EOFError)):
            # Restart on the next call instead of reusing a dead session.
            if self._stop is not None:
                self._stop.set()
            self._client = None
            return self.error(f"stopped during {what} ({self._why(exc)})", "it is restarted on the next call")
        return self.error(f"failed during {what}: {self._why(exc)}")

    def _why(self, exc: BaseException, stderr: bool = False) -> str:
        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        text = f"{type(inner).__name__}: {inner}".strip()
        if self._http_status:
            text = f"{self._http_status}; {text}"
            self._http_status = ""
        last = self._stderr_tail() if stderr else ""
        return self.redact(f"{text}; its last stderr line: {last}" if last else text)

    def _stderr_tail(self) -> str:
        if self._stderr is None or self._stderr.closed:
            return ""
        try:
            self._stderr.seek(0)
            lines = [ln.strip() for ln in self._stderr.read()[-4000:].splitlines() if ln.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1][:300] if lines else ""

    def redact(self, text: str) -> str:
        """``text`` with this server's secrets (expanded ``${VAR}`` values) replaced by ``***``."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def result_text(result: Any) -> str:
    """The text of a ``CallToolResult``: text parts joined; other parts described; else the structured content."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind == "resource":
            inner = block.resource
            parts.append(getattr(inner, "text", None) or f"[binary resource {inner.uri}]")
        elif kind == "resource_link":
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(f"[{kind} content, {getattr(block, 'mime_type', '')}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    return "\n".join(parts)


@dataclass
class MCPClients:
    """An agent's MCP servers: started lazily, called synchronously, closed together.

    Sync methods wait at most the server's ``timeout`` (+5 s); no call can hang the caller.
    """

    specs: Sequence[MCPServerSpec]
    _connections: dict[str, MCPConnection] = field(default_factory=dict, init=False)
    _loop: _Loop | None = field(default=None, init=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False)
    errors: dict[str, str] = field(default_factory=dict, init=False)
    """Servers whose tools could not be listed when :meth:`tools` ran: name -> error."""

    def __post_init__(self) -> None:
        self._connections = {s.name: MCPConnection(s) for s in self.specs}

    def connection(self, name: str) -> MCPConnection:
        """The connection to server ``name``."""
        if name not in self._connections:
            raise MCPServerError(
                f"no MCP server named {name!r}", f"configured: {', '.join(self._connections) or 'none'}"
            )
        return self._connections[name]

    def _run(self, coro: Any, timeout: float, conn: MCPConnection, what: str) -> Any:
        with self._guard:
            if self._loop is None:
                _need_sdk()
                self._loop = _Loop()
            loop = self._loop
        try:
            return loop.run(coro, timeout)
        except TimeoutError:
            raise conn.error(f"did not answer {what} within {timeout:g} s", "the call was abandoned") from None

    def _budget(self, conn: MCPConnection) -> float:
        return conn.spec.connect_timeout + conn.spec.timeout + _GRACE_S

    def call_tool(self, server: str, tool: str, args: dict[str, Any]) -> str:
        """Call ``tool`` on ``server``; text with secrets redacted, or :class:`MCPServerError`."""
        conn = self.connection(server)
        text = self._run(conn.call_tool(tool, args), self._budget(conn), conn, f"tool {tool!r}")
        return conn.redact(text)

    def read_resource(self, server: str, uri: str) -> str:
        """The text of a resource of ``server``."""
        conn = self.connection(server)
        return conn.redact(self._run(conn.read_resource(uri), self._budget(conn), conn, f"resource {uri!r}"))

    def get_prompt(self, server: str, name: str, args: dict[str, str] | None = None) -> list[tuple[str, str]]:
        """A prompt of ``server`` rendered with ``args``, as ``(role, text)`` pairs."""
        conn = self.connection(server)
        return self._run(conn.get_prompt(name, dict(args or {})), self._budget(conn), conn, f"prompt {name!r}")

    def check(self) -> list[ServerReport]:
        """Connect to every server at once; what each offers, or its error."""
        if not self._connections:
            return []

        async def all_reports() -> list[ServerReport]:
            return list(await asyncio.gather(*(c.report() for c in self._connections.values())))

        budget = max(self._budget(c) for c in self._connections.values())
        first = next(iter(self._connections.values()))
        try:
            return self._run(all_reports(), budget, first, "listing")
        except MCPServerError as exc:
            return [
                ServerReport(c.spec.name, c.spec.transport, c.spec.target, error=str(exc))
                for c in self._connections.values()
            ]

    def tools(self, separator: str = ".") -> list[Any]:
        """Every server's tools as chatloom tools (``server.tool``); unreachable servers are logged and skipped."""
        from chatloom.mcp.tools import make_tools

        out: list[Any] = []
        self.errors = {}
        for report in self.check():
            if report.error:
                self.errors[report.name] = report.error
                log.warning("%s — its tools are not available this session", report.error)
                continue
            out += make_tools(self, report, separator)
        return out

    def close(self) -> None:
        """Shut every server down (bounded), then the loop thread."""
        with self._guard:
            loop, self._loop = self._loop, None
        if loop is None:
            return

        async def close_all() -> None:
            await asyncio.gather(*(c.aclose() for c in self._connections.values()), return_exceptions=True)

        try:
            loop.run(close_all(), 15)
        except TimeoutError:
            log.warning("MCP servers did not shut down within 15 s")
        loop.stop()


def agent_mcp_tools(specs: Sequence[MCPServerSpec], settings: Settings) -> tuple[MCPClients | None, list[BaseTool]]:
    """``(clients, tools)`` for an agent: its servers plus ``chatloom.toml``'s; ``(None, [])`` when there are none.

    The ``mcp`` SDK is imported only when some server is configured.
    """
    servers = merge_servers(toml_servers(), specs or ())
    if not servers:
        return None, []
    clients = MCPClients(servers)
    return clients, clients.tools(settings.mcp_separator)
