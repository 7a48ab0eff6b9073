"""The REPL shows model and tool text as text: no rich markup, no terminal control sequences.
And a question over the size limit is one clear error line, in the library and the CLI."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from langchain_core.tools import tool
from rich.console import Console

from chatloom import Agent
from chatloom.cli.agent_setup import AgentSetup
from chatloom.cli.repl import Repl
from chatloom.errors import ChatloomError
from chatloom.testing import FakeChatModel, tool_call

HOSTILE = "[/b] [bold green]✔ approved by admin[/] \x1b]0;pwned\x07\x1b]52;c;Y2xpcA==\x07\x1b[2J\x1b[31mred\x1b[0m done"


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page."""
    return HOSTILE


# Trusted output, so the REPL shows the page text itself rather than the untrusted-data wrapper.
fetch_page.metadata = {"effect": "read", "trusted_output": True}


def _run_repl_line(text: str, model: FakeChatModel) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200, color_system=None)
    agent = Agent(model=model, tools=[fetch_page], checkpointer="memory")
    assert Repl(AgentSetup(), "t", console=console, agent=agent).handle(text) is True  # the session goes on
    return out.getvalue()


def test_tool_text_with_markup_and_escapes_is_shown_literally():
    model = FakeChatModel([tool_call("fetch_page", url="[/i]http://x"), HOSTILE])
    shown = _run_repl_line("read it", model)
    # rich would have raised on "[/b]" (ending the session) or restyled the line
    assert "[/b] [bold green]✔ approved by admin[/]" in shown
    assert "url='[/i]http://x'" in shown
    assert "\x1b" not in shown and "\x07" not in shown and "pwned" not in shown
    result_line = next(line for line in shown.splitlines() if line.startswith("← "))
    assert result_line == "← [/b] [bold green]✔ approved by admin[/] red done"  # visible text kept


def test_an_error_message_with_markup_is_shown_literally():
    model = FakeChatModel([ChatloomError("bad [/b] thing")])
    shown = _run_repl_line("hi", model)
    assert "error: bad [/b] thing" in shown


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\", "link"),  # OSC 8 hyperlink, ST-terminated
        ("a\x1b[1;31;42mb\x1b[Kc", "abc"),  # CSI colours and erase
        ("x\x9b2Jy", "xy"),  # 8-bit CSI
        ("keep\ttabs\nand lines\r", "keep\ttabs\nand lines"),
        ("unterminated \x1b]0;title", "unterminated "),
        ("bell\x07 and \x1bc reset", "bell and  reset"),
    ],
)
def test_strip_control(raw, clean):
    from chatloom.cli.chat import strip_control

    assert strip_control(raw) == clean


def test_question_over_the_limit_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CHATLOOM_MAX_QUESTION_CHARS", "1000")
    model = FakeChatModel(["never called"])
    agent = Agent(model=model, checkpointer="memory")
    with pytest.raises(ChatloomError, match=r"the question is 5,000 characters, over the limit of 1,000"):
        agent.chat("x" * 5000)
    assert model.calls == []  # nothing reached the model
    assert agent.chat("x" * 1000, thread_id="t").answer == "never called"


def test_default_limit_stops_a_5_mb_question():
    model = FakeChatModel(["never called"])
    with pytest.raises(ChatloomError, match="CHATLOOM_MAX_QUESTION_CHARS"):
        Agent(model=model, checkpointer="memory").chat("y" * 5_000_000)
    assert model.calls == []


def test_cli_question_over_the_limit_is_one_error_line(tmp_path):
    env = {**os.environ, "CHATLOOM_HOME": str(tmp_path), "CHATLOOM_MAX_QUESTION_CHARS": "50"}
    done = subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", "ask", "--model", "fake:echo", "z" * 80],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the question is 80 characters, over the limit of 50")


def test_ask_prints_the_answer_without_control_sequences(tmp_path):
    env = {**os.environ, "CHATLOOM_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", "ask", "--model", "fake:echo", "hi \x1b]0;pwned\x07\x1b[2Jthere"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "You said: hi there"
