"""The MCP client against a real MCP server (tests/mcp/fixture_server.py), over stdio and over
Streamable HTTP on 127.0.0.1: tools listed and called, errors, timeouts, a server that dies."""

from __future__ import annotations

import logging
import time

import pytest
from mcp_helpers import start_http_fixture, stdio_spec, stop

from chatloom.errors import ConfigError
from chatloom.mcp.client import MCPClients, MCPServerError
from chatloom.mcp.config import MCPServerSpec


@pytest.fixture(scope="module", params=["stdio", "http"])
def clients(request):
    """One connection per transport for the module's tests (starting a server takes seconds)."""
    proc = None
    if request.param == "stdio":
        spec = stdio_spec(timeout=1.5)
    else:
        proc, url = start_http_fixture()
        spec = MCPServerSpec(name="fx", url=url, timeout=1.5)
    clients = MCPClients([spec])
    yield clients
    clients.close()
    if proc is not None:
        stop(proc)


@pytest.fixture(scope="module")
def tools(clients):
    return {t.name: t for t in clients.tools()}


def test_tools_are_listed_namespaced_with_their_schemas(tools):
    assert {"fx.add", "fx.send_note", "fx.fail", "fx.sleep", "fx.read_resource"} <= set(tools)
    add = tools["fx.add"]
    assert add.description == "Add two whole numbers."
    assert add.args_schema["properties"]["a"]["type"] == "integer" and add.args_schema["required"] == ["a", "b"]
    # the policy's view: read-only only where the server says so
    assert add.metadata["effect"] == "read"
    assert tools["fx.send_note"].metadata["effect"] == "side_effect"


def test_a_call_returns_the_tool_text(tools):
    assert tools["fx.add"].invoke({"a": 20, "b": 22}) == "42"


def test_a_failing_tool_is_a_clear_error(tools):
    with pytest.raises(MCPServerError) as err:
        tools["fx.fail"].invoke({"reason": "disk on fire"})
    assert "MCP server 'fx' tool 'fail' failed" in str(err.value) and "disk on fire" in str(err.value)


def test_a_slow_tool_times_out_without_hanging(tools):
    start = time.monotonic()
    with pytest.raises(MCPServerError) as err:
        tools["fx.sleep"].invoke({"seconds": 30})
    assert time.monotonic() - start < 8
    assert "did not answer tool 'sleep' within 1.5 s" in str(err.value)
    assert tools["fx.add"].invoke({"a": 1, "b": 1}) == "2"  # the connection still works


def test_resources_and_prompts_are_listed_and_read(clients, tools):
    report = clients.check()[0]
    assert [r.uri for r in report.resources] == ["notes://leave"]
    assert [p.name for p in report.prompts] == ["summarise"]
    assert "25 days" in tools["fx.read_resource"].invoke({"uri": "notes://leave"})
    assert clients.get_prompt("fx", "summarise", {"topic": "leave"}) == [
        ("user", "Summarise leave in three bullet points.")
    ]


def test_stdio_server_dying_mid_call_is_an_error_and_it_restarts():
    clients = MCPClients([stdio_spec(timeout=20)])
    try:
        tools = {t.name: t for t in clients.tools()}
        first_pid = tools["fx.pid"].invoke({})
        start = time.monotonic()
        with pytest.raises(MCPServerError) as err:
            tools["fx.die"].invoke({})
        assert time.monotonic() - start < 10  # well under the 20 s timeout: the closed pipe is noticed
        assert "MCP server 'fx' stopped during tool 'die'" in str(err.value)
        assert tools["fx.add"].invoke({"a": 2, "b": 2}) == "4"  # started again on the next call
        assert tools["fx.pid"].invoke({}) != first_pid
    finally:
        clients.close()


def test_http_server_dying_mid_call_is_an_error():
    proc, url = start_http_fixture()
    clients = MCPClients([MCPServerSpec(name="fx", url=url, timeout=5, connect_timeout=5)])
    try:
        tools = {t.name: t for t in clients.tools()}
        start = time.monotonic()
        with pytest.raises(MCPServerError) as err:
            tools["fx.die"].invoke({})
        with pytest.raises(MCPServerError) as again:
            tools["fx.add"].invoke({"a": 1, "b": 2})  # nothing listens any more
        assert time.monotonic() - start < 25
        assert "MCP server 'fx'" in str(err.value) and "MCP server 'fx'" in str(again.value)
    finally:
        clients.close()
        stop(proc)


def test_a_server_entry_can_expose_only_some_tools():
    clients = MCPClients([stdio_spec(tools=["add", "read_resource"])])
    try:
        assert [t.name for t in clients.tools()] == ["fx.add", "fx.read_resource"]
    finally:
        clients.close()


def test_a_server_that_cannot_start_is_reported_and_its_tools_skipped(caplog):
    clients = MCPClients([MCPServerSpec(name="ghost", command="/no/such/mcp-server")])
    with caplog.at_level(logging.WARNING, logger="chatloom.mcp"):
        assert clients.tools() == []
    assert "MCP server 'ghost' could not be started" in clients.errors["ghost"]
    assert "could not be started" in caplog.text
    clients.close()


def test_a_server_that_never_answers_fails_within_connect_timeout(tmp_path):
    hang = tmp_path / "hang.py"
    hang.write_text("import time\ntime.sleep(60)\n")
    import sys

    clients = MCPClients([MCPServerSpec(name="mute", command=sys.executable, args=[str(hang)], connect_timeout=1.5)])
    start = time.monotonic()
    report = clients.check()[0]
    clients.close()
    assert "did not start and answer within 1.5 s" in report.error
    assert time.monotonic() - start < 20


SECRET = "s3cr3t-value-7f2a9c"


def test_secrets_reach_only_the_server_configured_to_get_them(monkeypatch, caplog, tmp_path):
    """A secret in chatloom's environment is not inherited by stdio servers; one passed on purpose
    (env: {TOKEN: ${VAR}}) reaches the server but never the model's tool results or the logs."""
    monkeypatch.setenv("CHATLOOM_TEST_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    clients = MCPClients([stdio_spec("plain"), stdio_spec("given", env={"TOKEN": "${CHATLOOM_TEST_SECRET}"})])
    try:
        tools = {t.name: t for t in clients.tools()}
        assert tools["plain.getenv"].invoke({"name": "CHATLOOM_TEST_SECRET"}) == "<unset>"
        assert tools["given.getenv"].invoke({"name": "TOKEN"}) == "***"  # it has it; the model sees it redacted
        for tool in tools.values():
            assert SECRET not in repr(tool) and SECRET not in str(tool.args_schema)
    finally:
        clients.close()
    assert SECRET not in caplog.text


def test_http_header_secret_is_sent_but_never_shown(monkeypatch, caplog, http_url):
    monkeypatch.setenv("CHATLOOM_TEST_SECRET", SECRET)
    caplog.set_level(logging.DEBUG)
    spec = MCPServerSpec(name="fx", url=http_url, headers={"Authorization": "Bearer ${CHATLOOM_TEST_SECRET}"})
    clients = MCPClients([spec])
    try:
        tools = {t.name: t for t in clients.tools()}
        assert tools["fx.whoami"].invoke({}) == "authorization: Bearer ***"
        with pytest.raises(MCPServerError) as err:
            tools["fx.whoami"].invoke({"fail": True})
        assert "denied, authorization: Bearer ***" in str(err.value)
    finally:
        clients.close()
    assert SECRET not in caplog.text
    assert SECRET not in repr(spec)


def test_a_missing_secret_variable_is_a_clear_error(monkeypatch, http_url):
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    clients = MCPClients(
        [MCPServerSpec(name="fx", url=http_url, headers={"Authorization": "Bearer ${NO_SUCH_TOKEN_VAR}"})]
    )
    report = clients.check()[0]
    clients.close()
    assert "environment variable NO_SUCH_TOKEN_VAR, which is not set" in report.error


def test_literal_secret_headers_are_refused():
    with pytest.raises(Exception) as err:
        MCPServerSpec(name="gh", url="https://example.com/mcp", headers={"Authorization": "Bearer abc123"})
    assert "keep secrets out of specs" in str(err.value)
    with pytest.raises(ConfigError) as err:
        from chatloom.mcp.config import parse_servers

        parse_servers([{"name": "x", "command": "a", "url": "http://b"}], "agents/x.yaml")
    assert "agents/x.yaml: MCP server 'x'" in str(err.value) and "either `command`" in str(err.value)
