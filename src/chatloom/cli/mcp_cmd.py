"""``chatloom mcp``: list and check the MCP servers an agent uses, and serve an agent over MCP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatloom.agents.defaults import DEFAULT_SPEC
from chatloom.cli.agent_setup import spec_option
from chatloom.errors import ChatloomError

if TYPE_CHECKING:
    from chatloom.tools.policy import Rule


def _servers(spec: Path | None) -> tuple[list[Any], dict[str, Rule]]:
    """The servers of ``spec`` (default: agents/assistant.yaml when it exists) plus chatloom.toml's,
    and the spec's tool_policy."""
    from chatloom.mcp.config import merge_servers, toml_servers

    if spec is None and DEFAULT_SPEC.is_file():
        spec = DEFAULT_SPEC
    from_spec: list[Any] = []
    rules: dict[str, Rule] = {}
    if spec is not None:
        from chatloom.agents.spec import load_spec

        loaded = load_spec(spec)
        from_spec, rules = list(loaded.mcp_servers), dict(loaded.tool_policy)
    servers = merge_servers(toml_servers(), from_spec)
    if not servers:
        raise ChatloomError(
            "no MCP servers are configured",
            "add `mcp_servers:` to the agent spec or [mcp.servers.NAME] to chatloom.toml (docs/mcp.md)",
        )
    return servers, rules


def _clients(spec: Path | None) -> tuple[Any, dict[str, Rule]]:
    from chatloom.mcp.client import MCPClients

    servers, rules = _servers(spec)
    return MCPClients(servers), rules


@click.group()
def mcp() -> None:
    """Use MCP servers' tools, and serve an agent's tools and knowledge over MCP."""


@mcp.command("list")
@spec_option
def list_cmd(spec: Path | None) -> None:
    """Show the configured MCP servers and their tools as the model sees them, with the rule each gets."""
    from chatloom.config import get_settings
    from chatloom.mcp.tools import expand_policy, make_tools
    from chatloom.tools.policy import ToolPolicy

    clients, rules = _clients(spec)
    try:
        reports = clients.check()
        tools = {r.name: make_tools(clients, r, get_settings().mcp_separator) for r in reports if not r.error}
    finally:
        clients.close()
    policy = ToolPolicy(expand_policy(rules, [t for group in tools.values() for t in group]))
    for report in reports:
        click.echo(f"{report.name}  ({report.transport}: {report.target})")
        if report.error:
            click.echo(f"  unavailable: {report.error}")
            continue
        for tool in tools[report.name]:
            rule, _ = policy.rule_for(tool)
            first_line = (tool.description or "").strip().splitlines()[0] if tool.description else ""
            click.echo(f"  {tool.name}  [{rule}, {(tool.metadata or {}).get('effect')}]  {first_line}")


@mcp.command()
@spec_option
def check(spec: Path | None) -> None:
    """Connect to each configured MCP server and report what it offers; exit status 2 if any fails."""
    failed = 0
    clients, _ = _clients(spec)
    try:
        reports = clients.check()
    finally:
        clients.close()
    for report in reports:
        if report.error:
            failed += 1
            click.echo(f"FAIL {report.name}: {report.error}")
            continue
        click.echo(
            f"ok   {report.name} ({report.transport}, {report.seconds:.1f} s): {len(report.tools)} tools, "
            f"{len(report.resources)} resources, {len(report.prompts)} prompts"
        )
        for resource in report.resources:
            click.echo(f"     resource {resource.uri}  {resource.description or resource.name}")
        for prompt in report.prompts:
            args = ", ".join(a.name for a in prompt.arguments or [])
            click.echo(f"     prompt   {prompt.name}({args})  {prompt.description or ''}")
    if failed:
        raise ChatloomError(
            f"{failed} of {len(reports)} MCP servers failed the check", "fix the servers marked FAIL above"
        )


@mcp.command()
@spec_option
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio", show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: the address to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="HTTP: the port (the endpoint is /mcp).")
@click.option(
    "--allow-host",
    "allowed_hosts",
    multiple=True,
    help="HTTP without a token: also answer requests for this Host name (NAME or NAME:PORT; repeatable).",
)
@click.option("--namespace", "-n", help="The knowledge namespace knowledge_search searches. Default: the spec's.")
@click.option("--ask", "expose_ask", is_flag=True, help="Also expose the agent itself as an `ask` tool.")
@click.option(
    "--trust-allow-rules", is_flag=True, help="Honour the spec's `allow` rules for side-effecting and code tools."
)
def serve(
    spec: Path | None,
    transport: str,
    host: str,
    port: int,
    allowed_hosts: tuple[str, ...],
    namespace: str | None,
    expose_ask: bool,
    trust_allow_rules: bool,
) -> None:
    """Serve the agent's tools, knowledge search (and --ask) to MCP clients.

    Over HTTP, clients send `Authorization: Bearer <token>` with a token from $CHATLOOM_MCP_TOKEN
    (the mcp_token_env setting); without one, only 127.0.0.1 is served.
    """
    import anyio

    from chatloom.config import get_settings
    from chatloom.mcp import server as mcp_server

    if spec is None and DEFAULT_SPEC.is_file():
        spec = DEFAULT_SPEC
    settings = get_settings()
    tokens = mcp_server.tokens_from_env(settings.mcp_token_env)
    sock = None
    if transport == "http":
        from chatloom.cli.serve_cmd import listening_socket

        mcp_server.check_exposure(host, tokens, settings.mcp_token_env)  # before anything starts
        sock = listening_socket(host, port, "chatloom mcp serve")  # a busy port: one line, exit 2
        port = sock.getsockname()[1]
    app, close = mcp_server.server_from_spec(
        spec, namespace=namespace, ask=expose_ask, trust_allow_rules=trust_allow_rules, settings=settings
    )
    try:
        if sock is None:
            anyio.run(mcp_server.serve_stdio, app)
            return
        from chatloom.cli.serve_cmd import run_uvicorn

        asgi = mcp_server.http_app(app, tokens, host=host, allowed_hosts=allowed_hosts)
        click.echo(
            f"serving MCP on http://{host}:{port}/mcp ({'bearer token required' if tokens else 'no token: local only'})",
            err=True,
        )
        run_uvicorn(asgi, sock, host, port)
    finally:
        close()  # the spec's own MCP servers, and the agent's


@mcp.command()
@spec_option
@click.argument("server")
@click.argument("name")
@click.argument("arguments", nargs=-1)
def prompt(spec: Path | None, server: str, name: str, arguments: tuple[str, ...]) -> None:
    """Render prompt NAME of MCP server SERVER with KEY=VALUE ARGUMENTS (a template from the server)."""
    args = {}
    for item in arguments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ChatloomError(
                f"prompt argument {item!r} is not KEY=VALUE", f"e.g. chatloom mcp prompt {server} {name} topic=leave"
            )
        args[key] = value
    clients, _ = _clients(spec)
    try:
        for role, text in clients.get_prompt(server, name, args):
            click.echo(f"[{role}]\n{text}")
    finally:
        clients.close()


@mcp.command()
@spec_option
@click.argument("server")
@click.argument("uri")
def read(spec: Path | None, server: str, uri: str) -> None:
    """Print resource URI of MCP server SERVER (what `server.read_resource` gives the model)."""
    clients, _ = _clients(spec)
    try:
        click.echo(clients.read_resource(server, uri))
    finally:
        clients.close()
