"""What ``chatloom serve`` needs beyond :class:`~chatloom.config.Settings`: tenants and limits.

Read from the ``[serve]`` table of ``chatloom.toml`` (the file ``CHATLOOM_CONFIG`` names), then
``CHATLOOM_API_KEYS``, then CLI flags::

    [serve]
    api_keys = {acme = "env:ACME_CHATLOOM_KEY", globex = ["env:GLOBEX_KEY_1", "env:GLOBEX_KEY_2"]}
    max_body_bytes = 1_000_000
    turn_timeout = 300
    cors_origins = ["https://intranet.example.com"]
    # allowed_hosts = ["chat.internal"]  # without api_keys: Host names served besides localhost
    # local_tenant = "default"   # without api_keys: the one tenant served (see below)
    # store_stateless = false     # keep chat completions that name no thread (see docs/serve.md)

``CHATLOOM_API_KEYS="acme=KEY,globex=KEY2"`` adds keys from the environment. A value
``env:NAME`` reads the key from environment variable ``NAME``, so no key has to sit in a file.
Each key maps to a tenant; a tenant's conversations and memory are its own. Keys are compared
in constant time and never logged or shown (``repr`` hides them).

Without API keys the server serves one tenant, ``local_tenant``: by default ``default``, the
tenant ``chatloom ingest``, ``ask`` and ``chat`` (and ``open_memory``) use when none is named, so
a knowledge bot served right after ``chatloom ingest docs/ -n faq`` answers from those docs.

>>> config = ServerConfig(tenants=(Tenant("acme", ("k" * 24,)),))
>>> config.tenant_for("k" * 24).name, config.tenant_for("wrong"), "k" * 24 in repr(config)
('acme', None, False)
"""

from __future__ import annotations

import hmac
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chatloom.config import config_path, config_table
from chatloom.errors import ConfigError
from chatloom.memory.store import DEFAULT_TENANT

API_KEYS_ENV = "CHATLOOM_API_KEYS"
# One tenant story: a keyless server is the CLI's tenant. It used to be "local", so a knowledge
# base fed by `chatloom ingest` (tenant "default") was never read by the server, silently. The
# CLI's side won because it holds most data (every ingest, ask and chat without --tenant) and is
# the library's default too; a store kept under "local" stays readable with [serve] local_tenant
# (or `serve --tenant local`), and the server says so when it finds one (see knowledge.py).
LOCAL_TENANT = DEFAULT_TENANT
LEGACY_LOCAL_TENANT = "local"
MIN_KEY_CHARS = 16
_TENANT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Tenant:
    """A customer of the server: its name (the thread-id prefix and memory tenant) and its keys."""

    name: str
    keys: tuple[str, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class ServerConfig:
    """Tenants, request limits and CORS for the HTTP server.

    With no tenants the server needs no key and serves one tenant, ``local_tenant`` (the CLI's
    tenant, ``default``); the CLI then refuses to listen beyond this machine.
    """

    tenants: tuple[Tenant, ...] = ()
    max_body_bytes: int = 1_000_000
    turn_timeout: float = 300.0
    """Seconds a turn may run (time spent waiting for a tool approval not counted)."""
    approval_timeout: float = 600.0
    """Seconds a paused turn blocks its thread: until then a new message on it is a 409; after,
    the new message first declines the waiting calls (they can be decided until that happens)."""
    cors_origins: tuple[str, ...] = ()
    max_concurrent_turns: int = 32
    """Worker threads running turns; more turns than this wait their turn."""
    ui: bool = False
    local_tenant: str = LOCAL_TENANT
    """The tenant every request is without API keys (threads, memory, approvals)."""
    store_stateless: bool = False
    """Store each chat completion that names no thread as a new thread (its id in the
    ``X-Chatloom-Thread`` response header), the client's earlier messages included. Off, such a
    request is answered from the messages it carries and leaves nothing behind, as OpenAI's API
    does for clients that resend the conversation (chat UIs)."""

    allowed_hosts: tuple[str, ...] = ()
    """Without API keys: Host names (``name`` or ``name:port``) served besides localhost,
    127.0.0.1 and [::1] on the server's port. Any other Host gets a 421 (DNS rebinding; see
    :mod:`chatloom.local_only`). With API keys every Host is served: a key is the protection."""

    def __post_init__(self) -> None:
        from chatloom.local_only import split_host

        for entry in self.allowed_hosts:
            if split_host(entry) is None or "/" in entry:
                raise ConfigError(
                    f"allowed host {entry!r} is not a host name", "write a name or name:port, e.g. chat.internal:8000"
                )
        names = [t.name for t in self.tenants]
        for tenant in self.tenants:
            if not _TENANT_NAME.match(tenant.name):
                raise ConfigError(
                    f"tenant name {tenant.name!r} is not allowed", "use letters, digits, '_' or '-' (at most 64)"
                )
            for key in tenant.keys:
                if len(key) < MIN_KEY_CHARS:
                    raise ConfigError(
                        f"an API key of tenant {tenant.name!r} is shorter than {MIN_KEY_CHARS} characters",
                        "use a long random key, e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`",
                    )
        if not _TENANT_NAME.match(self.local_tenant):
            raise ConfigError(
                f"local_tenant {self.local_tenant!r} is not allowed", "use letters, digits, '_' or '-' (at most 64)"
            )
        if self.tenants and self.local_tenant != LOCAL_TENANT:
            # With keys each request's tenant comes from its key: a local_tenant would be ignored.
            raise ConfigError(
                f"local_tenant {self.local_tenant!r} applies only to a server without API keys",
                "drop local_tenant (--tenant), or the API keys",
            )
        if len(set(names)) != len(names):
            raise ConfigError("a tenant is listed twice", "merge its keys into one entry")
        all_keys = [k for t in self.tenants for k in t.keys]
        if len(set(all_keys)) != len(all_keys):
            raise ConfigError("the same API key is given to two tenants", "give each tenant its own keys")
        for name, value in (
            ("max_body_bytes", self.max_body_bytes),
            ("turn_timeout", self.turn_timeout),
            ("max_concurrent_turns", self.max_concurrent_turns),
        ):
            if value <= 0:
                raise ConfigError(f"serve setting {name} must be positive, got {value!r}")

    @property
    def open(self) -> bool:
        """True when no API keys are configured: every request is the ``local_tenant``."""
        return not self.tenants

    def tenant_for(self, key: str) -> Tenant | None:
        """The tenant whose key is ``key`` (constant-time comparison), or None."""
        given = key.encode()
        found = None
        for tenant in self.tenants:
            for candidate in tenant.keys:
                if hmac.compare_digest(given, candidate.encode()):
                    found = tenant  # keep looping: the time taken doesn't depend on where it matched
        return found

    def served_tenants(self) -> list[str]:
        """The tenants requests can be: each key's, or the ``local_tenant`` without keys."""
        return [t.name for t in self.tenants] if self.tenants else [self.local_tenant]

    def check_exposure(self, host: str) -> None:
        """Refuse to serve beyond this machine without API keys."""
        if self.open and host not in _LOOPBACK:
            raise ConfigError(
                f"refusing to serve on {host!r} without API keys",
                f"set {API_KEYS_ENV}=tenant=<long random key> or [serve] api_keys in chatloom.toml, or serve on 127.0.0.1",
            )


def load_server_config(
    path: str | Path | None = None, environ: dict[str, str] | None = None, **overrides: Any
) -> ServerConfig:
    """The server config from ``[serve]`` in chatloom.toml, ``CHATLOOM_API_KEYS`` and ``overrides``.

    ``None`` overrides are ignored (unset CLI flags).
    """
    environ = dict(os.environ if environ is None else environ)
    table = config_table("serve", path or config_path(environ))
    keys: dict[str, list[str]] = {}
    for tenant, value in dict(table.pop("api_keys", {}) or {}).items():
        values = value if isinstance(value, list) else [value]
        keys.setdefault(str(tenant), []).extend(_resolve_key(str(v), tenant, environ) for v in values)
    for item in filter(None, (p.strip() for p in environ.get(API_KEYS_ENV, "").split(","))):
        tenant, sep, key = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"{API_KEYS_ENV} has an entry without '=' (tenant {tenant.strip()!r})", "write tenant=key,tenant2=key2"
            )
        keys.setdefault(tenant.strip(), []).append(_resolve_key(key.strip(), tenant.strip(), environ))
    known = {f for f in ServerConfig.__dataclass_fields__ if f != "tenants"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(
            f"[serve] in {str(path)!r} has an unknown setting {unknown[0]!r}",
            f"use one of api_keys, {', '.join(sorted(known))}",
        )
    for name in ("cors_origins", "allowed_hosts"):
        if name in table:
            table[name] = tuple(table[name])
    config = ServerConfig(tenants=tuple(Tenant(name, tuple(k)) for name, k in keys.items()), **table)
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _resolve_key(value: str, tenant: str, environ: dict[str, str]) -> str:
    if not value.startswith("env:"):
        return value
    name = value[4:]
    key = environ.get(name, "").strip()
    if not key:
        raise ConfigError(
            f"the API key of tenant {tenant!r} comes from ${name}, which is not set", f"export {name}=<the key>"
        )
    return key
