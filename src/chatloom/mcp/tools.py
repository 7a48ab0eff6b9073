"""MCP tools as chatloom tools: ``server.tool``, with the server's JSON schema, under the policy.

A tool's effect is unknown unless the server annotates it read-only (``readOnlyHint``), so it
counts as ``side_effect`` and the default policy asks before running it. Its output is text
from elsewhere: untrusted data (no ``trusted_output``), which taints the thread, so a
side-effecting call after it needs approval even where the spec says ``allow``.

A server that offers resources also gets a read-only ``server.read_resource(uri)`` tool, so
the model can use them as knowledge (cited by their URI, and untrusted like any tool output).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from chatloom.mcp.client import MCPClients, ServerReport
    from chatloom.tools.policy import Rule

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def tool_name(server: str, tool: str, separator: str = ".") -> str:
    """The namespaced name the model sees.

    >>> tool_name("github", "create_issue")
    'github.create_issue'
    """
    return f"{server}{separator}{tool}"


def make_tools(clients: MCPClients, report: ServerReport, separator: str = ".") -> list[BaseTool]:
    """The chatloom tools for one server's listing."""
    from langchain_core.tools import StructuredTool

    tools: list[BaseTool] = []
    for spec in report.tools:
        read_only = bool(spec.annotations and spec.annotations.read_only_hint)
        schema = dict(spec.input_schema or _EMPTY_SCHEMA)
        schema.pop("title", None)  # the SDK's "fooArguments" title only confuses small models
        tool = StructuredTool(
            name=tool_name(report.name, spec.name, separator),
            description=(
                spec.description or spec.title or f"The {spec.name} tool of MCP server {report.name}."
            ).strip(),
            args_schema=schema,
            func=_caller(clients, report.name, spec.name),
        )
        tool.metadata = {
            "effect": "read" if read_only else "side_effect",
            "mcp_server": report.name,
            "mcp_tool": spec.name,
        }
        tools.append(tool)
    allowed = clients.connection(report.name).spec.tools
    if report.resources and (allowed is None or "read_resource" in allowed):
        tools.append(_resource_tool(clients, report, separator))
    return tools


def _caller(clients: MCPClients, server: str, tool: str) -> Any:
    def call(**kwargs: Any) -> str:
        # MCPServerError is a ToolError: the graph turns it into an error message for the model.
        return clients.call_tool(server, tool, kwargs)

    return call


def _resource_tool(clients: MCPClients, report: ServerReport, separator: str) -> BaseTool:
    from langchain_core.tools import StructuredTool

    listing = "; ".join(f"{r.uri} ({r.description or r.name})" for r in report.resources[:20])
    server = report.name

    def read_resource(uri: str) -> str:
        return clients.read_resource(server, uri)

    tool = StructuredTool(
        name=tool_name(server, "read_resource", separator),
        description=f"Read a document of MCP server {server} by its URI. Available: {listing}",
        args_schema={
            "type": "object",
            "properties": {"uri": {"type": "string", "description": "the resource URI"}},
            "required": ["uri"],
        },
        func=read_resource,
    )
    tool.metadata = {"effect": "read", "mcp_server": server, "mcp_tool": "read_resource"}
    return tool


def expand_policy(rules: Mapping[str, Rule], tools: list[BaseTool]) -> dict[str, Rule]:
    """``rules`` with ``server.tool`` and ``server.*`` entries applied to the MCP tools (exact names win).

    Specs always write ``server.tool``, whatever separator the tool names use.

    >>> from langchain_core.tools import StructuredTool
    >>> t = StructuredTool(name="gh__search", description="d", args_schema={"type": "object", "properties": {}}, func=lambda: "")
    >>> t.metadata = {"mcp_server": "gh", "mcp_tool": "search"}
    >>> expand_policy({"gh.*": "allow", "calculator": "allow"}, [t])
    {'calculator': 'allow', 'gh__search': 'allow'}
    """
    servers = {(t.metadata or {}).get("mcp_server") for t in tools} - {None}
    out = {k: v for k, v in rules.items() if k.split(".", 1)[0] not in servers or "." not in k}
    for tool in tools:
        meta = tool.metadata or {}
        if "mcp_server" not in meta:
            continue
        rule = rules.get(f"{meta['mcp_server']}.{meta['mcp_tool']}") or rules.get(f"{meta['mcp_server']}.*")
        if rule:
            out[tool.name] = rule
    return out


def tools_by_server(tools: Mapping[str, Any] | list[Any]) -> dict[str, list[Any]]:
    """Group tools by MCP server (``""`` for chatloom's own tools), for ``/tools`` listings."""
    items = tools.values() if isinstance(tools, Mapping) else tools
    groups: dict[str, list[Any]] = {}
    for tool in items:
        groups.setdefault((getattr(tool, "metadata", None) or {}).get("mcp_server", ""), []).append(tool)
    return groups
