"""Slash commands, run in-process on ``fake:echo`` with a private data dir.

Bad input is one ``error:`` line and the chat goes on; nothing here prints a traceback.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from chatloom.cli.agent_setup import AgentSetup
from chatloom.cli.repl import COMMANDS, Repl


class Session:
    """A Repl whose output is captured line by line."""

    def __init__(self, setup: AgentSetup) -> None:
        self.out = io.StringIO()
        console = Console(file=self.out, force_terminal=False, width=200, color_system=None)
        self.repl = Repl(setup, "t", console=console, interactive=False)

    def __call__(self, line: str) -> str:
        start = self.out.tell()
        assert self.repl.handle(line) is True  # the chat goes on, whatever the line
        output = self.out.getvalue()[start:]
        assert "Traceback" not in output
        return output


@pytest.fixture
def chat(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    session = Session(AgentSetup(model="fake:echo"))
    yield session
    session.repl.agent.close()


def one_error(output: str, *needles: str) -> None:
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), output
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_every_command_has_a_handler(chat):
    assert all(hasattr(chat.repl, f"_cmd_{name[1:]}") for name in COMMANDS)


def test_unknown_command_suggests_the_closest(chat):
    one_error(chat("/tols"), "unknown command '/tols'", "did you mean /tools?")
    one_error(chat("/zzzzzz"), "type /help for the list")


def test_exit_ends_the_session(chat):
    assert chat.repl.handle("/exit") is False
    assert chat.repl.handle("/quit") is False


def test_model_switch_and_a_bad_model_id(chat):
    one_error(chat("/model nosuch:thing"), "unknown model scheme 'nosuch'")
    assert "You said: hi" in chat("hi")  # the old agent is still there
    assert chat("/model fake:echo").strip() == "model fake:echo"
    assert chat.repl.setup.model == "fake:echo"


def test_prompt_switch_and_a_bad_name(chat):
    one_error(chat("/prompt no-such-template"), "no-such-template")
    assert chat("/prompt tutor").strip() == "prompt tutor"
    assert "You said: hi" in chat("hi")


def test_tools_list_enable_disable(chat):
    listing = chat("/tools")
    assert "calculator" in listing and "(read)" in listing
    assert "off:" in listing and "python" in listing.split("off:")[1]
    chat("/tools disable calculator")
    assert chat.repl.setup.tool_names() == ()
    assert "calculator" in chat("/tools").split("off:")[1]
    one_error(chat("/tools disable calculator"), "no enabled tool is called 'calculator'")
    one_error(chat("/tools enable calcualtor"), "unknown tool 'calcualtor'", "did you mean 'calculator'?")
    chat("/tools enable calculator")
    assert chat.repl.setup.tool_names() == ("calculator",)
    one_error(chat("/tools shuffle"), "usage: /tools")


def test_threads_new_list_switch(chat):
    chat("first question")
    assert chat("/thread").strip() == "thread t (2 messages)"
    assert chat("/thread new other").strip() == "thread other (0 messages)"
    chat("second question")
    listing = chat("/thread list").splitlines()
    assert listing == ["* other", "  t"]  # the most recent first, the current one starred
    assert chat("/thread switch t").strip() == "thread t (2 messages)"
    one_error(chat("/thread switch othr"), "no thread is called 'othr'", "did you mean other?")
    one_error(chat("/thread new other"), "already exists")


def test_save_writes_a_markdown_transcript(chat, tmp_path):
    chat("hello there")
    assert "saved thread t to" in chat("/save talk.md")
    text = (tmp_path / "talk.md").read_text()
    assert "## You\n\nhello there" in text and "## Assistant\n\nYou said: hello there" in text


def test_save_to_an_unwritable_path_is_one_error_line(chat, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    one_error(chat(f"/save {tmp_path / 'file' / 'talk.md'}"), "can't write", "Not a directory")
    one_error(chat("/save"), "/save needs a FILE")


def test_ingest_a_missing_path(chat):
    one_error(chat("/ingest no/such/dir"), "no such file or folder: 'no/such/dir'")
    one_error(chat("/memory"), "usage: /memory search TEXT")


def test_trace_cost_reset_multi(chat):
    one_error(chat("/trace"), "no turn to trace yet")
    chat("hello")
    assert "trace: 1 steps, stopped by answer" in chat("/trace")
    assert chat("/cost").startswith("1 turns · ")
    assert "line after each answer is on" in chat("/cost on")
    assert "out tokens" in chat("again")  # the per-turn line, now on
    assert "conversation forgotten" in chat("/reset")
    assert chat.repl.agent.history("t") == []
    assert "multiline on" in chat("/multi") and chat.repl.multiline
    assert "multiline off" in chat("/multi") and not chat.repl.multiline


def test_completions(chat):
    repl = chat.repl
    assert "local:qwen2.5-coder-0.5b" in repl.completions("/model", [])
    assert {"assistant", "tutor"} <= set(repl.completions("/prompt", []))
    assert repl.completions("/tools", []) == ["enable", "disable"]
    assert "python" in repl.completions("/tools", ["enable"]) and "calculator" not in repl.completions(
        "/tools", ["enable"]
    )
    assert repl.completions("/tools", ["disable"]) == ["calculator"]


def test_a_bug_is_one_line_and_the_chat_goes_on(tmp_path, monkeypatch):
    from chatloom import Agent
    from chatloom.testing import FakeChatModel

    monkeypatch.delenv("CHATLOOM_DEBUG", raising=False)
    out = io.StringIO()
    agent = Agent(model=FakeChatModel([ValueError("boom"), "fine again"]), checkpointer="memory")
    repl = Repl(AgentSetup(), "t", console=Console(file=out, width=200), interactive=False, agent=agent)
    assert repl.handle("first") is True
    assert repl.handle("second") is True
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("error: internal error: ValueError: boom — rerun with CHATLOOM_DEBUG=1")
    assert lines[1:] == ["fine again"]
