"""MCP tools inside an agent's turn: the policy, the injection case, shutdown with the agent."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from mcp_helpers import FIXTURE, stdio_spec

from chatloom import Agent
from chatloom.agents.spec import load_spec
from chatloom.errors import ConfigError
from chatloom.testing import FakeChatModel, tool_call


def make_agent(replies, **kwargs) -> Agent:
    return Agent(model=FakeChatModel(replies), prompt=None, checkpointer="memory", mcp_servers=[stdio_spec()], **kwargs)


def test_read_only_tools_run_and_others_ask_by_default():
    with make_agent([tool_call("fx.add", a=2, b=3), tool_call("fx.send_note", to="bob", text="hi"), "done"]) as agent:
        reply = agent.chat("go")
    add, send = reply.tool_steps
    assert add.ok and "5" in add.result
    assert not send.ok and "needs approval" in send.result and "no approver" in send.result


def test_mcp_tool_errors_reach_the_model_as_tool_errors():
    with make_agent([tool_call("fx.fail", reason="quota exceeded"), "sorry"]) as agent:
        reply = agent.chat("go")
    assert reply.answer == "sorry"
    step = reply.tool_steps[0]
    assert not step.ok and "MCP server 'fx' tool 'fail' failed" in step.result and "quota exceeded" in step.result


def test_mcp_output_is_untrusted_and_a_following_side_effect_needs_approval():
    """The page asks for fx.send_note; the spec even allows it, but after untrusted MCP output
    the call is escalated to the approver, who sees why."""
    asked = []

    def approver(request):
        asked.append(request)
        return False

    replies = [
        tool_call("fx.fetch_page", url="https://example.com"),
        tool_call("fx.send_note", to="attacker", text="secrets"),
        "ok",
    ]
    with make_agent(replies, tool_policy={"fx.send_note": "allow"}, approver=approver) as agent:
        reply = agent.chat("summarise the page")
    fetch, send = reply.tool_steps
    assert fetch.ok and "<untrusted-data" in fetch.result and 'source="tool:fx.fetch_page"' in fetch.result
    assert not send.ok and "declined by the approver" in send.result
    assert len(asked) == 1 and asked[0].tool == "fx.send_note" and asked[0].untrusted_context
    assert "untrusted data" in asked[0].why


def test_without_the_injection_an_allow_rule_runs_the_side_effect():
    with make_agent(
        [tool_call("fx.send_note", to="bob", text="hi"), "sent"], tool_policy={"fx.send_note": "allow"}
    ) as agent:
        assert agent.chat("send it").tool_steps[0].result.count("sent to bob") == 1


def test_server_wildcard_rules_apply_to_its_tools():
    with make_agent([tool_call("fx.add", a=1, b=1), "no"], tool_policy={"fx.*": "deny"}) as agent:
        step = agent.chat("go").tool_steps[0]
    assert not step.ok and "denied by the tool policy" in step.result


def test_servers_start_lazily_and_stop_with_the_agent():
    agent = make_agent([tool_call("fx.pid"), "done"])
    assert agent._mcp is None  # nothing started by the constructor
    result = agent.chat("pid?").tool_steps[0].result
    pid = int(next(line for line in result.splitlines() if line.strip().isdigit()))
    os.kill(pid, 0)  # running
    agent.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"MCP server {pid} still runs after agent.close()")


def test_spec_lists_mcp_servers_and_policies_for_their_tools(tmp_path):
    (tmp_path / "agents").mkdir()
    spec_file = tmp_path / "agents" / "bot.yaml"
    spec_file.write_text(
        f"tools: [calculator]\nmcp_servers:\n  - name: fx\n    command: {sys.executable}\n    args: [{FIXTURE}, stdio]\n"
        "    timeout: 5\ntool_policy: {fx.send_note: deny, fx.*: ask}\n"
    )
    spec = load_spec(spec_file)
    assert spec.mcp_servers[0].name == "fx" and spec.mcp_servers[0].timeout == 5
    spec_file.write_text("tools: [calculator]\ntool_policy: {nope.send: allow}\n")
    with pytest.raises(ConfigError) as err:
        load_spec(spec_file)
    assert "bot.yaml" in str(err.value) and "'nope.send'" in str(err.value)
    spec_file.write_text(
        "mcp_servers:\n  - name: gh\n    url: https://example.com/mcp\n    headers: {Authorization: Bearer abc}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_spec(spec_file)
    assert "keep secrets out of specs" in str(err.value)


def test_chatloom_toml_servers(tmp_path, monkeypatch):
    from chatloom.mcp.config import toml_servers

    (tmp_path / "chatloom.toml").write_text(
        f'[mcp.servers.fx]\ncommand = "{sys.executable}"\nargs = ["{FIXTURE}", "stdio"]\n'
    )
    monkeypatch.chdir(tmp_path)
    assert [s.name for s in toml_servers()] == ["fx"]
    (tmp_path / "chatloom.toml").write_text('[mcp.servers.fx]\ncommand = "x"\ntimeout = -1\n')
    with pytest.raises(ConfigError) as err:
        toml_servers()
    assert "chatloom.toml: MCP server 'fx', field 'timeout'" in str(err.value)


def test_an_agent_without_mcp_servers_never_imports_the_sdk(tmp_path):
    code = (
        "import sys; from chatloom import Agent; from chatloom.testing import FakeChatModel; "
        "a = Agent(model=FakeChatModel(['hi']), tools=['calculator'], checkpointer='memory'); a.chat('x'); "
        "print('MCP', [m for m in ('mcp', 'mcp_types') if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CHATLOOM_HOME": str(tmp_path)},
    )
    assert "MCP []" in done.stdout, done.stdout + done.stderr


def test_a_slow_server_gives_the_model_a_timeout_error_and_the_turn_ends():
    agent = Agent(
        model=FakeChatModel([tool_call("fx.sleep", seconds=60), "it timed out"]),
        prompt=None,
        checkpointer="memory",
        mcp_servers=[stdio_spec(timeout=1)],
    )
    with agent:
        agent.load()
        start = time.monotonic()
        reply = agent.chat("wait")
        took = time.monotonic() - start
    assert reply.answer == "it timed out" and took < 10
    step = reply.tool_steps[0]
    assert not step.ok and "MCP server 'fx' did not answer tool 'sleep' within 1 s" in step.result
