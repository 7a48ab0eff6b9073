"""MCP server entries: where a server runs and how to reach it.

In an agent spec::

    mcp_servers:
      - name: files                       # its tools become files.read_file, files.list_dir, ...
        command: npx
        args: [-y, "@modelcontextprotocol/server-filesystem", ./docs]
      - name: github
        url: https://api.githubcopilot.com/mcp/
        headers: {Authorization: "Bearer ${GITHUB_TOKEN}"}   # the secret stays in the environment
        timeout: 20

In ``chatloom.toml`` the same fields go in ``[mcp.servers.NAME]`` tables. ``${VAR}`` in
``headers`` and ``env`` values is read from the environment when the server is started, so
specs never hold secrets; a credential-like header (Authorization, *token*, *key*, *secret*,
Cookie) must use ``${VAR}``.

>>> MCPServerSpec(name="calc", command="python", args=["calc_server.py"]).transport
'stdio'
>>> MCPServerSpec(name="gh", url="https://example.com/mcp", headers={"Authorization": "Bearer abc"})
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for MCPServerSpec
...
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatloom.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_HEADER = re.compile(r"authorization|token|key|secret|cookie|password", re.IGNORECASE)


class MCPServerSpec(BaseModel):
    """One MCP server: ``command`` (+ ``args``, ``env``, ``cwd``) for stdio, or ``url`` (+ ``headers``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$", description="the namespace of its tools: name.tool")
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(
        default_factory=dict, description="extra environment for a stdio server; ${VAR} expands"
    )
    cwd: str | None = None
    url: str | None = None
    headers: dict[str, str] = Field(
        default_factory=dict, description="HTTP headers; ${VAR} expands from the environment"
    )
    timeout: float = Field(default=30.0, gt=0, le=3600, description="seconds one call may take")
    connect_timeout: float = Field(default=20.0, gt=0, le=600, description="seconds to start and greet the server")
    tools: list[str] | None = Field(default=None, description="expose only these of the server's tools")

    @model_validator(mode="after")
    def _one_transport(self) -> MCPServerSpec:
        if bool(self.command) == bool(self.url):
            raise ValueError(
                "give either `command` (a stdio server) or `url` (a Streamable HTTP server), not both or neither"
            )
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {self.url!r}")
        if self.command and self.headers:
            raise ValueError("`headers` are for HTTP servers; a stdio server takes `env`")
        return self

    @field_validator("headers")
    @classmethod
    def _secrets_from_env(cls, value: dict[str, str]) -> dict[str, str]:
        for header, text in value.items():
            if _SECRET_HEADER.search(header) and not _VAR.search(text):
                raise ValueError(
                    f"header {header!r} holds a literal value; keep secrets out of specs: "
                    f'write e.g. {header}: "Bearer ${{MY_TOKEN}}" and export MY_TOKEN'
                )
        return value

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command else "http"

    @property
    def target(self) -> str:
        """What to show for the server (never a secret): the command line or the URL."""
        return " ".join([self.command or "", *self.args]) if self.command else str(self.url)

    def resolved_headers(self) -> tuple[dict[str, str], list[str]]:
        """``(headers, secrets)``: headers with ``${VAR}`` expanded, and the expanded values to redact."""
        return _expand_all(self.headers, self.name, "header")

    def resolved_env(self) -> tuple[dict[str, str], list[str]]:
        """``(env, secrets)`` for a stdio server: only what the spec lists (plus the SDK's PATH, HOME...)."""
        return _expand_all(self.env, self.name, "env")


def _expand_all(values: Mapping[str, str], server: str, what: str) -> tuple[dict[str, str], list[str]]:
    out: dict[str, str] = {}
    secrets: list[str] = []
    for key, text in values.items():

        def sub(match: re.Match[str], key: str = key) -> str:
            var = match.group(1)
            if var not in os.environ:
                raise ConfigError(
                    f"MCP server {server!r}: {what} {key!r} needs the environment variable {var}, which is not set",
                    f"export {var}=... before starting chatloom",
                )
            secrets.append(os.environ[var])
            return os.environ[var]

        out[key] = _VAR.sub(sub, text)
    return out, [s for s in secrets if len(s) >= 4]  # redacting 1-3 characters would garble text


def parse_servers(entries: Any, where: str) -> list[MCPServerSpec]:
    """Validate a list (or ``{name: fields}`` table) of server entries; errors name ``where`` and the field."""
    if entries is None:
        return []
    if isinstance(entries, Mapping):
        entries = [{"name": name, **(fields or {})} for name, fields in entries.items()]
    if not isinstance(entries, list):
        raise ConfigError(
            f"{where}: mcp servers must be a list of entries", "write `- name: x` entries with `command:` or `url:`"
        )
    out: list[MCPServerSpec] = []
    for i, entry in enumerate(entries):
        try:
            out.append(MCPServerSpec.model_validate(entry))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            label = entry.get("name", i) if isinstance(entry, Mapping) else i
            raise ConfigError(
                f"{where}: MCP server {label!r}, field {field!r}: {err['msg']}",
                "see docs/mcp.md for the fields (name, command/args/env or url/headers, timeout)",
            ) from None
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: MCP server {dupes[0]!r} is listed twice", "give each server its own name")
    return out


def toml_servers(path: str | Path | None = None) -> list[MCPServerSpec]:
    """The ``[mcp.servers.NAME]`` tables of ``chatloom.toml`` (or ``$CHATLOOM_CONFIG``)."""
    from chatloom.config import config_path, config_table

    file = Path(path) if path is not None else config_path()
    return parse_servers(config_table("mcp", file).get("servers"), str(file))


def merge_servers(*groups: Iterable[MCPServerSpec]) -> list[MCPServerSpec]:
    """Servers from several places; a later entry with the same name replaces an earlier one."""
    merged: dict[str, MCPServerSpec] = {}
    for group in groups:
        for spec in group:
            merged[spec.name] = spec
    return list(merged.values())
