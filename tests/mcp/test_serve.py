"""``chatloom mcp serve``, driven by the ``mcp`` SDK's own client: over stdio (the real CLI in a
subprocess), in memory, and over Streamable HTTP with bearer tokens."""

from __future__ import annotations

import os
import sys
import threading

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp_helpers import SRC, free_port, wait_for_port

from chatloom.errors import ConfigError
from chatloom.mcp.server import build_server, check_exposure, http_app
from chatloom.memory.base import Passage
from chatloom.testing import FakeChatModel, stop_process
from chatloom.tools.policy import ToolPolicy
from chatloom.tools.registry import resolve_tools


class Notes:
    """A memory that records the namespace it was asked about."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []

    def recall(self, query, *, k=4, namespace=None, user_id=None, filters=None):
        self.asked.append((query, namespace))
        return [
            Passage(
                id="1",
                text="Refunds take 5 working days.",
                source="faq.md",
                chunk=2,
                title="FAQ",
                section="Refunds",
                score=0.9,
            ),
            Passage(id="2", text="Contact support by email.", source="contact.md", chunk=0, score=0.5),
        ][:k]

    def remember(self, **kw):
        pass


def test_serve_over_stdio_lists_and_calls_tools_under_the_policy(tmp_path):
    (tmp_path / "agents").mkdir()
    spec = tmp_path / "agents" / "bot.yaml"
    spec.write_text("tools: [calculator, python]\nmemory: false\n")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "chatloom.cli.main", "mcp", "serve", "--spec", str(spec)],
        env={"PYTHONPATH": str(SRC), "CHATLOOM_HOME": str(tmp_path)},
        cwd=str(tmp_path),
    )

    async def session():
        async with Client(params, read_timeout_seconds=60) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            calc = await client.call_tool("calculator", {"expression": "17*23"})
            code = await client.call_tool("python", {"code": "print(1)"})
            return names, calc, code

    names, calc, code = anyio.run(session)
    assert names == ["calculator", "python"]  # no memory in the spec: no knowledge_search
    assert not calc.is_error and calc.content[0].text == "391"
    # `python` is an "ask" tool; an MCP server has no one to ask, so it is refused, not run
    assert code.is_error and "refused by policy" in code.content[0].text and "no approver" in code.content[0].text


def test_knowledge_search_returns_cited_passages_from_the_namespace():
    notes = Notes()
    server = build_server(resolve_tools(["calculator"]), memory=notes, namespace="hr")

    async def session():
        async with Client(server) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            found = await client.call_tool("knowledge_search", {"query": "refund time", "k": 2})
            empty = await client.call_tool("knowledge_search", {"query": "  "})
            return listed, found, empty

    listed, found, empty = anyio.run(session)
    assert listed["knowledge_search"].annotations.read_only_hint and listed["calculator"].annotations.read_only_hint
    assert notes.asked == [("refund time", "hr")]
    assert found.content[0].text.splitlines()[0] == "[1] (faq.md#2) FAQ — Refunds: Refunds take 5 working days."
    cites = found.structured_content["citations"]
    assert [(c["index"], c["source"], c["chunk"]) for c in cites] == [(1, "faq.md", 2), (2, "contact.md", 0)]
    assert empty.is_error and "give a search query" in empty.content[0].text


def test_the_agent_itself_as_an_ask_tool_and_policy_rules_hold():
    from chatloom import Agent

    agent = Agent(model=FakeChatModel(["It is 391."]), prompt=None, checkpointer="memory")
    tools = resolve_tools(["calculator", "python"])
    server = build_server(tools, policy=ToolPolicy({"calculator": "deny"}), agent=agent)

    async def session():
        async with Client(server) as client:
            answer = await client.call_tool("ask", {"question": "What is 17*23?"})
            denied = await client.call_tool("calculator", {"expression": "1+1"})
            unknown = await client.call_tool("nope", {})
            return answer, denied, unknown

    answer, denied, unknown = anyio.run(session)
    assert (
        not answer.is_error
        and answer.content[0].text == "It is 391."
        and answer.structured_content["answer"] == "It is 391."
    )
    assert denied.is_error and "denied by the tool policy" in denied.content[0].text
    assert unknown.is_error and "no tool named 'nope'" in unknown.content[0].text


def test_serve_over_http_needs_the_bearer_token():
    import uvicorn
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = "tok-" + os.urandom(8).hex()
    port = free_port()
    app = http_app(build_server(resolve_tools(["calculator"]), memory=Notes()), [token])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/mcp"

        async def session(auth: str | None):
            headers = {"Authorization": auth} if auth else None
            async with create_mcp_http_client(headers=headers) as http:
                async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=20) as client:
                    names = [t.name for t in (await client.list_tools()).tools]
                    result = await client.call_tool("knowledge_search", {"query": "refund"})
                    return names, result

        names, result = anyio.run(session, f"Bearer {token}")
        assert names == ["calculator", "knowledge_search"]
        assert result.structured_content["citations"][0]["source"] == "faq.md"
        import httpx

        for bad in (None, "Bearer wrong-token", f"Basic {token}"):
            with pytest.raises(Exception):  # the SDK client can't connect ...
                anyio.run(session, bad)
            headers = {"Authorization": bad} if bad else {}
            reply = httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, headers=headers)
            assert reply.status_code == 401 and reply.headers["www-authenticate"] == "Bearer"  # ... because of this
    finally:
        server.should_exit = True
        thread.join(10)


def test_serving_beyond_localhost_without_a_token_is_refused():
    with pytest.raises(ConfigError) as err:
        check_exposure("0.0.0.0", [], "CHATLOOM_MCP_TOKEN")
    assert "export CHATLOOM_MCP_TOKEN=" in str(err.value)
    check_exposure("127.0.0.1", [], "CHATLOOM_MCP_TOKEN")  # local only: allowed
    check_exposure("0.0.0.0", ["t0k3n"], "CHATLOOM_MCP_TOKEN")


def test_the_cli_serves_http_with_a_token_from_the_environment(tmp_path):
    import subprocess

    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = "tok-" + os.urandom(8).hex()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(SRC), "CHATLOOM_HOME": str(tmp_path), "CHATLOOM_MCP_TOKEN": token}
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "bot.yaml").write_text("tools: [calculator]\nmemory: false\n")
    cmd = [
        sys.executable,
        "-m",
        "chatloom.cli.main",
        "mcp",
        "serve",
        "--spec",
        "agents/bot.yaml",
        "--transport",
        "http",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port, proc)

        async def session():
            async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http:
                async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as client:
                    return await client.call_tool("calculator", {"expression": "2**10"})

        assert anyio.run(session).content[0].text == "1024"
    finally:
        stop_process(proc)
    assert token not in proc.stderr.read()  # the banner says a token is required, never which
    open_env = {k: v for k, v in env.items() if k != "CHATLOOM_MCP_TOKEN"}
    refused = subprocess.run(
        [*cmd[:-2], "--host", "0.0.0.0", "--port", str(port)],
        env=open_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2 and refused.stderr.startswith(
        "error: refusing to serve MCP on '0.0.0.0' without a bearer token"
    )


def test_a_client_without_the_token_is_told_the_http_status():
    import uvicorn

    from chatloom.mcp.client import MCPClients
    from chatloom.mcp.config import MCPServerSpec

    port = free_port()
    app = http_app(build_server(resolve_tools(["calculator"])), ["the-right-token"])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_for_port(port)
        clients = MCPClients([MCPServerSpec(name="cl", url=f"http://127.0.0.1:{port}/mcp", connect_timeout=10)])
        report = clients.check()[0]
        clients.close()
    finally:
        server.should_exit = True
        thread.join(10)
    assert "MCP server 'cl' could not be started (HTTP 401 Unauthorized" in report.error


def test_the_specs_own_mcp_servers_are_served_through_the_policy(tmp_path):
    from mcp_helpers import FIXTURE

    from chatloom.mcp.server import server_from_spec

    (tmp_path / "agents").mkdir()
    spec = tmp_path / "agents" / "bot.yaml"
    spec.write_text(
        f"tools: [calculator]\nmemory: false\nmcp_servers:\n  - name: fx\n    command: {sys.executable}\n"
        f"    args: [{FIXTURE}, stdio]\n    tools: [add, send_note]\ntool_policy: {{fx.send_note: allow}}\n"
    )
    server, close = server_from_spec(spec)

    async def session():
        async with Client(server) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            added = await client.call_tool("fx.add", {"a": 2, "b": 40})
            sent = await client.call_tool("fx.send_note", {"to": "x", "text": "y"})
            return names, added, sent

    try:
        names, added, sent = anyio.run(session)
    finally:
        close()
    assert names == ["calculator", "fx.add", "fx.send_note"]
    assert added.content[0].text == "42"
    # allowed in the spec, but the MCP client's context is untrusted: escalated, and no one to ask
    assert sent.is_error and "needs approval" in sent.content[0].text


def test_build_server_without_the_mcp_sdk_says_what_to_install(monkeypatch):
    # A base install has no `mcp`: `chatloom mcp serve` must say which extra to add, not fail
    # with ModuleNotFoundError (found by benchmarks/package_smoke.py in a fresh venv).
    from chatloom.mcp.client import MCPServerError

    monkeypatch.setitem(sys.modules, "mcp", None)
    with pytest.raises(MCPServerError, match=r"pip install mcp .*chatloom\[mcp\]"):
        build_server([])


def test_a_keyless_http_server_checks_host_and_origin_as_chatloom_serve_does():
    # One check for both servers (chatloom.local_only); the deployer can list more names.
    from starlette.testclient import TestClient

    app = http_app(build_server(resolve_tools(["calculator"])), [], allowed_hosts=["mcp.lan"])
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    accept = {"Accept": "application/json, text/event-stream"}
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        evil = client.post("/mcp", json=ping, headers={"Host": "evil.example:8765", **accept})
        assert evil.status_code == 421 and evil.json()["error"]["code"] == "host_not_allowed"
        assert "chatloom mcp serve --allow-host" in evil.json()["error"]["message"]
        cross = client.post("/mcp", json=ping, headers={"Origin": "https://evil.example", **accept})
        assert cross.status_code == 403 and cross.json()["error"]["code"] == "origin_not_allowed"
        for host in ("mcp.lan", "localhost:8765"):
            reply = client.post("/mcp", json=ping, headers={"Host": host, **accept})
            assert reply.status_code not in (403, 421), (host, reply.status_code, reply.text)
