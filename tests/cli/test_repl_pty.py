"""``chatloom chat`` driven through a real pseudo-terminal, as a person would use it.

Each test runs the CLI in a subprocess on a scripted model (tests/cli/scripted_bot.py): no
network, no real model. The output is the raw terminal stream, ANSI codes and all, so the
patterns look for words that rich writes in one piece.
"""

from __future__ import annotations

import re

import pytest
from scripted_bot import SLOW_WORDS

pexpect = pytest.importorskip("pexpect")

_ANSI = r"\x1b\[[0-?]*[ -/]*[@-~]"
ANSI = re.compile(_ANSI)


def plain(text: str) -> str:
    """Terminal output without its colour and cursor codes."""
    return ANSI.sub("", text)


def everything(child) -> str:
    """All the child wrote so far, without colour and cursor codes."""
    return plain(child.logfile_read.getvalue())


def shown(text: str) -> str:
    """A pattern for ``text`` as it appears on the terminal: styles may switch between any two characters."""
    return f"(?:{_ANSI})*".join(re.escape(ch) for ch in text)


def test_status_line_then_streamed_answer(spawn_chat):
    child = spawn_chat("--model", "scripted:slow")
    child.sendline("tell me a long story")
    child.expect(r"thinking · \d+\.\d s")  # the status line, before any answer text
    child.expect(shown("word0 word1 word2"))  # the answer streams in ...
    child.expect(r"writing · \d+\.\d s")  # ... while the status line is still there
    assert "word39" not in child.before  # not all at once
    child.expect("word39", timeout=60)
    child.expect(r"\d+ in · \d+ out tokens · \d+\.\d s")  # the per-turn usage line
    child.expect("›")
    child.sendline("/cost off")
    child.expect(shown("the line after each answer is off"))
    child.sendline("again")
    child.expect(shown("You said: again"))
    child.expect("›")
    assert "out tokens" not in plain(child.before)  # toggled off
    child.sendeof()
    child.expect(pexpect.EOF)


def test_prompt_first_then_the_first_question_waits_for_the_model(spawn_chat, chat_env, tmp_path):
    gate = tmp_path / "model-may-load"
    chat_env["SCRIPTED_GATE"] = str(gate)
    child = spawn_chat("--model", "scripted:gated")  # returns at the prompt, with the model still loading
    assert not gate.exists()
    child.sendline("hello")
    child.expect(r"loading the model · \d+\.\d s")  # the status while the question waits
    assert "You said" not in everything(child)
    gate.touch()
    child.expect(shown("You said: hello"))
    child.expect("›")
    child.sendline("and again")  # loaded now: no more waiting
    child.expect(shown("You said: and again"))
    child.expect("›")
    assert "loading the model" not in plain(child.before)
    child.sendeof()
    child.expect(pexpect.EOF)


def test_tool_panel_citation_and_trace(spawn_chat, workspace):
    child = spawn_chat("--model", "scripted:lookup", cwd=workspace, memory=True)
    child.sendline("How much annual leave do I get?")
    child.expect(shown("╭─ lookup "))  # the tool step's panel, titled with the tool
    child.expect(shown("→ lookup(topic='annual leave')"))
    child.expect(shown("← handbook entry for annual leave: 25 days a year"))
    child.expect(shown("╰─"))
    child.expect(shown("of annual leave"))  # the answer
    child.expect(shown("[1] handbook.md › Annual leave"))  # its citation as a footnote
    child.expect("›")
    assert "/srv/docs" not in child.before  # a file name, never the absolute path
    child.sendline("/trace")
    child.expect(shown("retrieved 1 passages"))
    child.expect(shown("[1] handbook.md › Annual leave  (score 0.910)"))
    child.expect(shown("Staff get 25 days of annual leave a year."))
    child.expect("›")
    child.sendline("/exit")
    child.expect(pexpect.EOF)


def test_slash_command_and_did_you_mean(spawn_chat):
    child = spawn_chat("--model", "fake:echo")
    child.sendline("/hlep")
    child.expect(shown("error: unknown command '/hlep' — did you mean /help?"))
    child.expect("›")
    child.sendline("/help")
    child.expect(shown("/thread [new [ID] | list | switch ID]"))
    child.expect("›")
    child.send("/mod\t")  # Tab completes the command name: had it not, '/mod' would be unknown
    child.sendline(" nosuch:thing")
    child.expect(shown("error: unknown model scheme 'nosuch'"))
    child.expect("›")
    child.sendline("still here?")
    child.expect(shown("You said: still here?"))  # the bad /model changed nothing
    child.sendline("/exit")
    child.expect(pexpect.EOF)


def test_ctrl_c_stops_the_answer_and_stays_in_the_chat(spawn_chat, chat_env, tmp_path):
    words = tmp_path / "words.log"
    chat_env["SCRIPTED_WORDS_LOG"] = str(words)
    child = spawn_chat("--model", "scripted:slow")
    child.sendline("tell me a long story")
    child.expect("word2")
    child.sendintr()
    child.expect(shown("interrupted"))
    # The model itself stopped, not just the display: a Ctrl-C that only reached the chat once
    # the turn's worker was done would come after all SLOW_WORDS words were written.
    written = words.read_text().split()
    assert 3 <= len(written) < SLOW_WORDS // 2, written
    child.expect("›")
    child.sendline("are you there?")
    child.expect(shown("You said: are you there?"))
    assert child.isalive()
    assert "word39" not in everything(child)  # the story never finished
    child.expect("›")
    child.sendeof()  # Ctrl-D quits
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_history_survives_a_restart(spawn_chat):
    child = spawn_chat("--model", "fake:echo")
    child.sendline("remember this line")
    child.expect(shown("You said: remember this line"))
    child.expect("›")
    child.sendeof()
    child.expect(pexpect.EOF)

    again = spawn_chat("--model", "fake:echo")
    again.send("\x1b[A")  # Up arrow: the last line of the earlier run
    again.expect(shown("remember this line"))
    again.send("\r")
    again.expect(shown("You said: remember this line"))
    again.expect("›")
    again.sendeof()
    again.expect(pexpect.EOF)


@pytest.mark.parametrize(("answer", "outcome"), [("y", "note sent: lunch at noon"), ("n", "declined by the approver")])
def test_a_side_effect_tool_asks_first(spawn_chat, workspace, answer, outcome):
    child = spawn_chat("--model", "scripted:note", cwd=workspace, memory=True)
    child.sendline("tell the team about lunch")
    child.expect(shown('send_note(text="lunch at noon")'))
    child.expect(shown("Run it? [y/N]"))
    child.sendline(answer)
    child.expect(shown("╭─ send_note"))
    child.expect(shown(outcome))
    child.expect(shown("Done, the team knows."))
    child.expect("›")
    child.sendline("/exit")
    child.expect(pexpect.EOF)
