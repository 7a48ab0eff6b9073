"""Which conversation `chatloom ask` and `chatloom chat` use: a new one each run, unless
``--thread ID`` or ``-c`` says otherwise. Run in-process on ``fake:echo`` with a private data dir.
"""

from __future__ import annotations

import io
import json
import sys

import pytest

from chatloom.cli.main import run


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHATLOOM_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)  # no agents/assistant.yaml here: the built-in assistant


def ask(capsys, *args: str) -> dict:
    """``chatloom ask --json ARGS``; the reply as a dict."""
    capsys.readouterr()
    code = run(["ask", "--json", "--model", "fake:echo", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def chat(capsys, monkeypatch, stdin: str, *args: str) -> list[str]:
    """``echo STDIN | chatloom chat ARGS``; the output lines."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    code = run(["chat", "--model", "fake:echo", *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.splitlines()


def error(capsys, *args: str) -> str:
    """Run ``chatloom ARGS``, expecting a one-line error and exit status 2; return the line."""
    capsys.readouterr()
    assert run(list(args)) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def messages(thread_id: str) -> list[str]:
    """The saved conversation ``thread_id``, as the texts of its messages."""
    from chatloom import Agent

    agent = Agent(model="fake:echo")
    try:
        return [m.content for m in agent.history(thread_id)]
    finally:
        agent.close()


def test_each_ask_starts_a_new_conversation(capsys):
    first = ask(capsys, "tell me a joke")
    second = ask(capsys, "tell me a joke")
    assert first["thread_id"] != second["thread_id"]
    assert first["thread_id"].startswith("ask-") and second["thread_id"].startswith("ask-")
    # the second question was sent alone, not after the first exchange
    assert second["usage"]["input_tokens"] == first["usage"]["input_tokens"]
    assert messages(first["thread_id"]) == ["tell me a joke", "You said: tell me a joke"]  # saved all the same


def test_c_continues_the_last_conversation(capsys):
    first = ask(capsys, "first")
    followup = ask(capsys, "-c", "second")
    assert followup["thread_id"] == first["thread_id"]
    assert followup["usage"]["input_tokens"] > first["usage"]["input_tokens"]  # it saw the first exchange
    assert messages(first["thread_id"]) == ["first", "You said: first", "second", "You said: second"]
    assert ask(capsys, "--continue", "third")["thread_id"] == first["thread_id"]


def test_thread_continues_a_named_conversation_and_c_follows_it(capsys):
    assert ask(capsys, "--thread", "support-42", "one")["thread_id"] == "support-42"
    other = ask(capsys, "unrelated")["thread_id"]
    assert other != "support-42"
    ask(capsys, "--thread", "support-42", "two")
    assert messages("support-42") == ["one", "You said: one", "two", "You said: two"]
    assert messages(other) == ["unrelated", "You said: unrelated"]
    assert ask(capsys, "-c", "three")["thread_id"] == "support-42"  # the last one used was named


def test_c_with_no_earlier_conversation_is_one_error_line(capsys):
    line = error(capsys, "ask", "--model", "fake:echo", "-c", "hi")
    assert "no earlier conversation to continue" in line and "drop -c" in line


def test_thread_and_c_together_is_one_error_line(capsys):
    line = error(capsys, "ask", "--model", "fake:echo", "-c", "--thread", "x", "hi")
    assert "--thread and -c/--continue" in line


def test_a_failed_turn_does_not_become_the_last_conversation(capsys):
    ask(capsys, "--thread", "keep", "hello")
    error(capsys, "ask", "--model", "nosuch:thing", "--thread", "broken", "hi")
    assert ask(capsys, "-c", "again")["thread_id"] == "keep"


def test_chat_starts_a_new_conversation_and_c_continues_the_last(capsys, monkeypatch):
    asked = ask(capsys, "hello")["thread_id"]
    (shown,) = chat(capsys, monkeypatch, "/thread\n")
    assert shown.startswith("thread chat-") and shown.endswith("(0 messages)")
    assert chat(capsys, monkeypatch, "/thread\n", "-c") == [f"thread {asked} (2 messages)"]
    assert chat(capsys, monkeypatch, "/thread\n", "--thread", asked) == [f"thread {asked} (2 messages)"]


def test_a_chat_turn_becomes_the_last_conversation(capsys, monkeypatch):
    out = chat(capsys, monkeypatch, "hi there\n/thread\n")
    assert out[0] == "You said: hi there"
    thread = out[1].removeprefix("thread ").removesuffix(" (2 messages)")
    assert thread.startswith("chat-")
    assert ask(capsys, "-c", "and now?")["thread_id"] == thread


def test_thread_list_in_the_chat_finds_earlier_conversations(capsys, monkeypatch):
    ask(capsys, "--thread", "older", "one")
    ask(capsys, "--thread", "newer", "two")
    out = chat(capsys, monkeypatch, "/thread list\n/thread switch older\n")
    assert out[0].startswith("* chat-")  # this chat's own new conversation, current, not saved yet
    assert out[1:] == ["  newer", "  older", "thread older (2 messages)"]


def test_help_says_each_run_is_a_new_conversation(capsys):
    for command in ("ask", "chat"):
        assert run([command, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "-c, --continue" in text and "--thread ID" in text
        assert "new conversation" in text


def test_a_damaged_record_of_the_last_conversation_is_nothing_to_continue(capsys, tmp_path):
    from chatloom.cli.threads import LAST_THREAD_FILE

    home = tmp_path / "home"
    home.mkdir()
    (home / LAST_THREAD_FILE).write_text('{"thread_id": ')  # cut short
    assert "no earlier conversation to continue" in error(capsys, "ask", "--model", "fake:echo", "-c", "hi")
    ask(capsys, "hello")  # a new conversation replaces the record
    assert json.loads((home / LAST_THREAD_FILE).read_text())["thread_id"].startswith("ask-")
