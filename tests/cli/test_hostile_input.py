"""Bytes that are not UTF-8 in a question, on the command line or piped in: one line, exit 2,
and nothing half-written in the thread. Issue 30, item 7. In-process on ``fake:echo``."""

from __future__ import annotations

import io
import os
import sys

import pytest

from chatloom.cli.main import run


@pytest.fixture(autouse=True)
def private_home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("CHATLOOM_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)


def stored(thread_id: str) -> list[str]:
    from chatloom import Agent

    agent = Agent(model="fake:echo")
    try:
        return [m.content for m in agent.history(thread_id)]
    finally:
        agent.close()


def one_error_line(capsys, code: int) -> str:
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_non_utf8_question_on_the_command_line_is_refused_before_anything_is_stored(capsys):
    question = os.fsdecode(b"caf\xe9 prices?")  # what Python makes of such argv bytes
    line = one_error_line(capsys, run(["ask", "--model", "fake:echo", "--thread", "t1", question]))
    assert "the question is not valid UTF-8 (byte 0xe9 at character 4); nothing was asked" in line
    assert stored("t1") == []


def test_a_non_utf8_line_piped_to_chat_stops_there_and_earlier_lines_are_kept(capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"first\r\ncaf\xe9\nnever asked\n")))
    line = one_error_line(capsys, run(["chat", "--model", "fake:echo", "--thread", "t2"]))
    assert "line 2 of the input is not valid UTF-8 (byte 0xe9 at byte 4); it was not asked" in line
    assert stored("t2") == ["first", "You said: first"]  # whole turns only
