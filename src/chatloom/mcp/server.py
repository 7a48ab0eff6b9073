"""``chatloom mcp serve``: an agent's tools, its knowledge and (optionally) the agent itself,
as an MCP server over stdio or Streamable HTTP.

- Every tool runs exactly as it would in a turn: the ``python`` tool in its sandbox, and each
  call through the agent's :class:`~chatloom.tools.policy.ToolPolicy`. The MCP client's
  conversation can't be seen from here, so it counts as untrusted: read tools run, ``ask``
  tools are refused (there is no one to ask), and ``allow`` rules for side-effecting or code
  tools hold only with ``trust_allow_rules``.
- ``knowledge_search`` searches one memory namespace and returns cited passages, as text
  (``[1] (source#chunk) ...``) and as structured ``citations``.
- ``ask`` (opt-in) runs a whole turn of the agent and returns its answer and citations.

HTTP clients authenticate with ``Authorization: Bearer <token>``; the tokens come from the
environment variable named by the ``mcp_token_env`` setting (default ``CHATLOOM_MCP_TOKEN``,
comma-separated). They are this server's own (the API keys and tenants of ``chatloom serve``
don't apply): every holder sees the same tools and namespace, read from the tenant ``default``,
as ``chatloom ingest`` writes it and a keyless ``chatloom serve`` reads it.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from chatloom.errors import ConfigError

log = logging.getLogger("chatloom.mcp")

SEARCH_TOOL = "knowledge_search"
ASK_TOOL = "ask"


def build_server(
    tools: Sequence[Any] = (),
    *,
    policy: Any = None,
    memory: Any = None,
    namespace: str | None = None,
    agent: Any = None,
    name: str = "chatloom",
) -> Any:
    """A low-level ``mcp`` server exposing ``tools`` (checked by ``policy``), ``knowledge_search``
    over ``memory``/``namespace`` (when ``memory`` is given) and ``ask`` (when ``agent`` is given).

    ``memory`` may be a zero-argument factory, so the store is opened on the first search.
    """
    from chatloom.mcp.client import _need_sdk

    _need_sdk()  # without the `mcp` extra: a one-line error with the install command, not ImportError
    import anyio
    import mcp_types as types
    from mcp.server.lowlevel import Server

    from chatloom.tools.policy import ToolPolicy, tool_effect

    policy = policy if policy is not None else ToolPolicy()
    by_name = {t.name: t for t in tools}
    for reserved in (SEARCH_TOOL, ASK_TOOL):
        if (
            reserved in by_name
            and (reserved != SEARCH_TOOL or memory is not None)
            and (reserved != ASK_TOOL or agent is not None)
        ):
            raise ConfigError(f"tool name {reserved!r} clashes with the MCP server's own tool", "rename the tool")
    listing: list[types.Tool] = []
    for tool in by_name.values():
        effect = tool_effect(tool)
        listing.append(
            types.Tool(
                name=tool.name,
                description=tool.description or tool.name,
                input_schema=_schema(tool),
                annotations=types.ToolAnnotations(
                    read_only_hint=effect == "read", destructive_hint=None if effect == "read" else True
                ),
            )
        )
    if memory is not None:
        listing.append(
            types.Tool(
                name=SEARCH_TOOL,
                description=f"Search the knowledge base{f' (namespace {namespace})' if namespace else ''} and return the most "
                "relevant passages, each with a citation [n] (source#chunk).",
                input_schema={
                    "type": "object",
                    "properties": {
                        "query": {"type": "string"},
                        "k": {"type": "integer", "minimum": 1, "maximum": 20, "default": 4},
                    },
                    "required": ["query"],
                },
                annotations=types.ToolAnnotations(read_only_hint=True),
            )
        )
    if agent is not None:
        listing.append(
            types.Tool(
                name=ASK_TOOL,
                description="Ask the chatloom agent a question; it answers with its own tools and knowledge, citing sources.",
                input_schema={
                    "type": "object",
                    "properties": {"question": {"type": "string"}, "thread_id": {"type": "string", "default": "mcp"}},
                    "required": ["question"],
                },
                annotations=types.ToolAnnotations(read_only_hint=False),
            )
        )
    open_memory = _once(memory) if memory is not None else None

    def text_result(text: str, error: bool = False, structured: dict[str, Any] | None = None) -> types.CallToolResult:
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text)], is_error=error, structured_content=structured
        )

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        args = dict(params.arguments or {})
        try:
            if params.name == SEARCH_TOOL and open_memory is not None:
                text, citations = await anyio.to_thread.run_sync(lambda: _search(open_memory(), namespace, args))
                return text_result(text, structured={"citations": citations})
            if params.name == ASK_TOOL and agent is not None:
                return text_result(*await anyio.to_thread.run_sync(lambda: _ask(agent, args)))
            tool = by_name.get(params.name)
            if tool is None:
                return text_result(
                    f"error: no tool named {params.name!r}; available: {', '.join(t.name for t in listing)}", True
                )
            decision = policy.authorize(tool, args, untrusted_context=True)
            if not decision.allowed:
                return text_result(f"error: tool call refused by policy: {decision.reason}", True)
            output = await anyio.to_thread.run_sync(lambda: tool.invoke(args))
        except Exception as exc:  # noqa: BLE001 - a tool's failure is the caller's information
            return text_result(f"error: {type(exc).__name__}: {exc}", True)
        text = output if isinstance(output, str) else json.dumps(output, default=str, ensure_ascii=False)
        return text_result(text, text.startswith("error:"))

    return Server(
        name,
        instructions="chatloom: an agent's tools and knowledge.",
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


def _schema(tool: Any) -> dict[str, Any]:
    schema = tool.args_schema if isinstance(tool.args_schema, dict) else tool.tool_call_schema.model_json_schema()
    schema = dict(schema)
    schema.pop("title", None)
    schema.pop("description", None)
    schema.setdefault("type", "object")
    return schema


def _once(factory: Any) -> Callable[[], Any]:
    holder: list[Any] = []

    def get() -> Any:
        if not holder:
            holder.append(factory() if callable(factory) and not hasattr(factory, "recall") else factory)
        return holder[0]

    return get


def _search(memory: Any, namespace: str | None, args: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    from chatloom.memory.base import display_source
    from chatloom.tools.search import format_passages

    query = str(args.get("query") or "").strip()
    if not query:
        raise ValueError("give a search query")
    k = max(1, min(int(args.get("k") or 4), 20))
    passages = list(memory.recall(query, k=k, namespace=namespace))
    if not passages:
        return f"No passages in the knowledge base match {query!r}.", []
    citations = [
        {
            "index": i,
            "source": display_source(p.source),
            "chunk": p.chunk,
            "title": p.title,
            "section": p.section,
            "score": p.score,
            "text": p.text,
        }
        for i, p in enumerate(passages, 1)
    ]
    return format_passages(passages), citations


def _ask(agent: Any, args: dict[str, Any]) -> tuple[str, bool, dict[str, Any]]:
    question = str(args.get("question") or "")
    reply = agent.chat(question, thread_id=str(args.get("thread_id") or "mcp"))
    citations = [
        {"index": c.index, "source": c.source, "chunk": c.chunk, "section": c.section} for c in reply.citations
    ]
    text = reply.answer + (
        "\n\n" + "\n".join(f"[{c['index']}] {c['source']}#{c['chunk']}" for c in citations) if citations else ""
    )
    return text, False, {"answer": reply.answer, "citations": citations, "stop_reason": reply.stop_reason}


def server_from_spec(
    spec_path: str | Path | None,
    *,
    namespace: str | None = None,
    ask: bool = False,
    trust_allow_rules: bool = False,
    settings: Any = None,
) -> tuple[Any, Callable[[], None]]:
    """``(server, close)`` for an agent spec (or, with no spec, the built-in calculator and the
    default knowledge base). The spec's own MCP servers are served too (``fx.add``), started now;
    ``close()`` stops them."""
    from chatloom.config import get_settings
    from chatloom.mcp.client import agent_mcp_tools
    from chatloom.mcp.tools import expand_policy
    from chatloom.tools.policy import ToolPolicy
    from chatloom.tools.registry import resolve_tools

    settings = settings or get_settings()
    mcp_specs: list[Any] = []
    if spec_path is not None:
        from chatloom.agents.spec import load_spec

        spec = load_spec(spec_path)
        names, rules, workspace = list(spec.tools), dict(spec.tool_policy), spec.workspace
        namespace = namespace or spec.memory.namespace or spec.name
        use_memory = spec.memory.enabled or "search" in names
        mcp_specs = list(spec.mcp_servers)
    else:
        names, rules, workspace, use_memory = ["calculator"], {}, None, True
    # knowledge_search replaces the spec's `search`, with the namespace and citations.
    tools = resolve_tools([n for n in names if n != "search"], workspace=workspace)
    clients, mcp_tools = agent_mcp_tools(mcp_specs, settings)
    tools += mcp_tools

    def memory() -> Any:
        from chatloom.memory import open_memory

        return open_memory(settings, namespace=namespace)

    agent = None
    if ask:
        from chatloom.agents.agent import Agent

        agent = Agent.from_spec(spec_path) if spec_path is not None else Agent(prompt="assistant", tools=["calculator"])
    rules = expand_policy({k: v for k, v in rules.items() if k != "search"}, tools)
    policy = ToolPolicy(rules, None, trust_allow_rules=trust_allow_rules)
    server = build_server(tools, policy=policy, memory=memory if use_memory else None, namespace=namespace, agent=agent)

    def close() -> None:
        if clients is not None:
            clients.close()
        if agent is not None:
            agent.close()

    return server, close


async def serve_stdio(server: Any) -> None:
    """Serve over this process's stdin/stdout until the client closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def http_app(
    server: Any,
    tokens: Sequence[str],
    *,
    host: str = "127.0.0.1",
    path: str = "/mcp",
    allowed_hosts: Sequence[str] = (),
) -> Any:
    """The Streamable HTTP ASGI app at ``path``, behind bearer-token auth when ``tokens`` is non-empty.

    Without tokens it is local only (:class:`~chatloom.local_only.LocalOnly`, the check
    ``chatloom serve`` uses too): a Host other than localhost on this port, or one of
    ``allowed_hosts``, gets a 421, and a cross-site Origin can't POST.
    """
    if tokens:
        return _BearerAuth(server.streamable_http_app(streamable_http_path=path, host=host), tokens)
    from mcp.server.transport_security import TransportSecuritySettings

    from chatloom.local_only import LocalOnly

    # The SDK's own rebinding check (any port, no extra names) is off: LocalOnly does it, in one place.
    app = server.streamable_http_app(
        streamable_http_path=path,
        host=host,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return LocalOnly(
        app, bound_host=host, allowed_hosts=allowed_hosts, setting="`chatloom mcp serve --allow-host NAME`"
    )


def tokens_from_env(var: str) -> list[str]:
    """The bearer tokens in environment variable ``var`` (comma-separated), never logged."""
    import os

    return [t.strip() for t in os.environ.get(var, "").split(",") if t.strip()]


def check_exposure(host: str, tokens: Sequence[str], var: str) -> None:
    """Refuse to serve beyond this machine without a token."""
    if not tokens and host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"refusing to serve MCP on {host!r} without a bearer token",
            f"export {var}=<a long random token> (clients send Authorization: Bearer <token>), or serve on 127.0.0.1",
        )


class _BearerAuth:
    """ASGI wrapper: HTTP requests need ``Authorization: Bearer <one of tokens>`` (compared in constant time)."""

    def __init__(self, app: Any, tokens: Sequence[str]) -> None:
        self.app = app
        self._tokens = [t.encode() for t in tokens]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not self._ok(scope):
            body = b'{"error": "unauthorized: send Authorization: Bearer <token>"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _ok(self, scope: dict[str, Any]) -> bool:
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return False
        return any(hmac.compare_digest(token.strip(), t) for t in self._tokens)
