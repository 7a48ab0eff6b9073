"""``chatloom mcp list`` / ``check`` and the REPL's ``/tools``, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys

from mcp_helpers import FIXTURE, SRC


def chatloom(*args: str, cwd, stdin: str | None = None):
    env = {**os.environ, "CHATLOOM_HOME": str(cwd / "home"), "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def write_spec(tmp_path, dead: bool = True, policy: str = ""):
    (tmp_path / "agents").mkdir(exist_ok=True)
    spec = tmp_path / "agents" / "bot.yaml"
    text = f"tools: [calculator]\nmcp_servers:\n  - name: fx\n    command: {sys.executable}\n    args: [{FIXTURE}, stdio]\n"
    if dead:
        text += "  - name: gone\n    command: /no/such/mcp-server\n"
    spec.write_text(text + policy)
    return spec


def test_list_shows_servers_tools_and_the_rule_each_gets(tmp_path):
    spec = write_spec(tmp_path, policy="tool_policy: {fx.fail: deny}\n")
    done = chatloom("mcp", "list", "--spec", str(spec), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "fx  (stdio:" in out and "fx.add  [allow, read]  Add two whole numbers." in out
    assert "fx.send_note  [ask, side_effect]" in out  # no read-only annotation: ask
    assert "fx.fail  [deny, read]" in out  # the spec's rule wins
    assert "fx.read_resource  [allow, read]" in out
    assert "gone  (stdio: /no/such/mcp-server)" in out and "unavailable: MCP server 'gone' could not be started" in out


def test_check_reports_each_server_and_fails_when_one_does(tmp_path):
    done = chatloom("mcp", "check", "--spec", str(write_spec(tmp_path)), cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "ok   fx (stdio" in done.stdout and "tools, 1 resources, 1 prompts" in done.stdout
    assert "resource notes://leave" in done.stdout and "prompt   summarise(topic)" in done.stdout
    assert "FAIL gone:" in done.stdout
    assert done.stderr.strip() == "error: 1 of 2 MCP servers failed the check — fix the servers marked FAIL above"
    ok = chatloom("mcp", "check", "--spec", str(write_spec(tmp_path, dead=False)), cwd=tmp_path)
    assert ok.returncode == 0 and "FAIL" not in ok.stdout


def test_no_servers_is_a_one_line_error(tmp_path):
    done = chatloom("mcp", "list", cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: no MCP servers are configured")


def test_repl_tools_lists_mcp_tools_by_server(tmp_path):
    done = chatloom(
        "chat", "--model", "fake:echo", "--spec", str(write_spec(tmp_path)), cwd=tmp_path, stdin="/tools\n/exit\n"
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    lines = [" ".join(line.split()) for line in out.splitlines()]  # the columns are padded
    assert "tools" in lines and any(line.startswith("calculator (read)") for line in lines)
    assert "MCP server fx" in lines
    assert any(line.startswith("fx.add (read)") for line in lines)
    assert any(line.startswith("fx.send_note (side_effect)") for line in lines)
    assert "MCP server unavailable: gone:" in out


def test_prompts_and_resources_from_the_command_line(tmp_path):
    spec = str(write_spec(tmp_path, dead=False))
    done = chatloom("mcp", "prompt", "--spec", spec, "fx", "summarise", "topic=leave", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[user]\nSummarise leave in three bullet points.\n"
    done = chatloom("mcp", "read", "--spec", spec, "fx", "notes://leave", cwd=tmp_path)
    assert done.returncode == 0 and "25 days of annual leave" in done.stdout
    bad = chatloom("mcp", "prompt", "--spec", spec, "fx", "summarise", "topic", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: prompt argument 'topic' is not KEY=VALUE")
    unknown = chatloom("mcp", "read", "--spec", spec, "nope", "x://y", cwd=tmp_path)
    assert unknown.returncode == 2 and "no MCP server named 'nope'" in unknown.stderr
