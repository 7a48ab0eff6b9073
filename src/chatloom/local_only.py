"""DNS-rebinding protection for the keyless HTTP servers (``chatloom serve`` and ``mcp serve``).

A server without keys binds only loopback, but that alone doesn't keep browsers out: a web page
whose domain re-resolves to 127.0.0.1 talks to it as that domain, with every request carrying
``Host: evil.example:8000``. So a keyless server answers only requests whose ``Host`` names
this machine (localhost, 127.0.0.1, [::1], or the address it was bound to) on its own port, or
a name the deployer listed (``[serve] allowed_hosts`` / ``--allow-host``). State-changing
requests (POST, PUT, PATCH, DELETE) from a browser must also come from such an origin or a
listed CORS origin: a cross-site ``Origin`` is refused, even when the Host is right.

>>> guard = LocalOnly(None, bound_host="127.0.0.1")
>>> guard.host_ok("localhost:8000", 8000), guard.host_ok("evil.example:8000", 8000)
(True, False)
>>> guard.host_ok("127.0.0.1:9999", 8000), guard.origin_ok("http://[::1]:8000", 8000)
(False, True)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def split_host(value: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a Host header value (``[::1]:8000`` -> ``("::1", 8000)``), lowercased;
    None when it is malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else ""
    else:
        name, _, port_text = value.partition(":") if value.count(":") == 1 else (value, "", "")
        if ":" in name:  # a bare IPv6 address, not allowed in a Host header
            return None
    if not name:
        return None
    if port_text:
        if not port_text.isdigit():
            return None
        return name, int(port_text)
    return name, None


class LocalOnly:
    """ASGI middleware: 421 for a Host naming no local name, 403 for a cross-site Origin on a
    state-changing request. Errors are JSON in OpenAI's shape, which MCP clients read too.

    ``allowed_hosts`` are extra names the deployer serves under (``chat.internal`` matches any
    port, ``chat.internal:8080`` that port only); ``allowed_origins`` are extra browser origins
    (the CORS origins). The server's port comes from the ASGI scope, so one app serves on any port.
    """

    def __init__(
        self,
        app: Any,
        *,
        bound_host: str = "127.0.0.1",
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        setting: str = "--allow-host",
    ) -> None:
        self.app = app
        self.local = set(LOOPBACK_NAMES) | {bound_host.strip("[]").lower()}
        self.extra: list[tuple[str, int | None]] = [p for p in map(split_host, allowed_hosts) if p]
        self.origins = {o.rstrip("/").lower() for o in allowed_origins}
        self.setting = setting

    def host_ok(self, host: str, port: int | None) -> bool:
        """True when ``host`` (a Host header value) names this server: a local name on ``port``
        (no port given: only when the server listens on 80), or a listed host."""
        parts = split_host(host)
        return parts is not None and self._names_us(parts[0], parts[1] or 80, port)

    def origin_ok(self, origin: str, port: int | None) -> bool:
        """True when a browser ``origin`` may change state: a listed origin, or http(s) on a
        name :meth:`host_ok` accepts (the server's own pages)."""
        if origin.rstrip("/").lower() in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            given = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False  # "null" (sandboxed frames, file: pages) and other schemes
        return self._names_us(parts.hostname, given or (443 if parts.scheme == "https" else 80), port)

    def _names_us(self, name: str, given: int, port: int | None) -> bool:
        if name in self.local:
            # The port too: another local service's page (say a dev server on :3000) is another site.
            return port is None or given == port
        return any(name == n and (p is None or p == given) for n, p in self.extra)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        server = scope.get("server")
        port = server[1] if server and len(server) > 1 and server[1] else None
        host = headers.get("host", "")
        if not self.host_ok(host, port):
            return await _refuse(
                send,
                421,
                f"this server answers only requests addressed to this machine (localhost or 127.0.0.1 on its "
                f"port), not Host {host[:100]!r}; a deployer who serves it under that name lists it with "
                f"{self.setting}",
                "host_not_allowed",
            )
        origin = headers.get("origin")
        if origin is not None and scope.get("method", "GET") in UNSAFE_METHODS and not self.origin_ok(origin, port):
            return await _refuse(
                send,
                403,
                f"a web page from {origin[:100]!r} may not change anything on this server without an API key; "
                "list the page's origin with --cors-origin, or configure API keys",
                "origin_not_allowed",
            )
        await self.app(scope, receive, send)


async def _refuse(send: Any, status: int, message: str, code: str) -> None:
    body = json.dumps(
        {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
