"""``echo question | chatloom chat`` and ``chatloom ask`` in scripts: plain text, real exit codes."""

from __future__ import annotations

import subprocess
import sys


def run(env, *args, stdin="", cwd=None, memory=False, extra_env=None):
    entry = ["-m", "scripted_bot"] if memory else ["-m", "chatloom.cli.main"]
    return subprocess.run(
        [sys.executable, *entry, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**env, **(extra_env or {})},
        cwd=cwd,
        timeout=300,
    )


def assert_one_line_error(done, *needles):
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_piped_chat_prints_the_answer_as_plain_text(chat_env, tmp_path):
    done = run(chat_env, "chat", "--model", "fake:echo", stdin="what is *this*?\n", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: what is *this*?\n"  # as written: no markdown layout, no ANSI, no status


def test_piped_chat_shows_tool_steps_and_citations_as_plain_lines(chat_env, workspace):
    done = run(chat_env, "chat", "--model", "scripted:lookup", stdin="How much leave?\n", cwd=workspace, memory=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "→ lookup(topic='annual leave')",
        "← handbook entry for annual leave: 25 days a year",
        "Staff get **25 days** of annual leave [1].",
        "[1] handbook.md › Annual leave",
    ]


def test_ask_prints_citations_as_footnotes(chat_env, workspace):
    done = run(chat_env, "ask", "--model", "scripted:lookup", "How much leave?", cwd=workspace, memory=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Staff get **25 days** of annual leave [1].\n[1] handbook.md › Annual leave\n"


def test_piped_chat_stops_at_the_first_error(chat_env, tmp_path):
    done = run(
        chat_env, "chat", "--model", "fake:echo", stdin="first\n/model nosuch:thing\nnever asked\n", cwd=tmp_path
    )
    assert_one_line_error(done, "unknown model scheme 'nosuch'")
    assert done.stdout == "You said: first\n"


def test_a_missing_spec_is_one_error_line(chat_env, tmp_path):
    for command in (["chat"], ["ask", "hi"]):
        assert_one_line_error(
            run(chat_env, *command, "--spec", "nope.yaml", cwd=tmp_path), "agent spec 'nope.yaml' does not exist"
        )


def test_a_dead_backend_is_one_error_line(chat_env, tmp_path):
    dead = {"CHATLOOM_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "OPENAI_API_KEY": "sk-test-not-a-real-key"}
    asked = run(chat_env, "ask", "--model", "openai:gpt-4o-mini", "hi", cwd=tmp_path, extra_env=dead)
    assert_one_line_error(asked, "cannot connect to 'http://127.0.0.1:9/v1'")
    chatted = run(chat_env, "chat", "--model", "openai:gpt-4o-mini", stdin="hi\n", cwd=tmp_path, extra_env=dead)
    assert_one_line_error(chatted, "cannot connect to 'http://127.0.0.1:9/v1'")
    assert "sk-test-not-a-real-key" not in asked.stderr + chatted.stderr + chatted.stdout  # never the secret


def test_ctrl_c_during_ask_stops_the_model_and_exits_130(chat_env, tmp_path):
    import signal
    import time

    from scripted_bot import SLOW_WORDS

    words = tmp_path / "words.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatloom.cli.main", "ask", "--model", "scripted:slow", "tell me a long story"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**chat_env, "SCRIPTED_WORDS_LOG": str(words)},
        cwd=tmp_path,
        # a pytest started in the background ignores SIGINT, and the child would inherit that
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    for _ in range(600):  # until the model has written two words (at most 60 s)
        if words.exists() and len(words.read_text().split()) >= 2:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (proc.returncode, err)
    assert err.strip() == "interrupted" and out == ""
    assert len(words.read_text().split()) < SLOW_WORDS // 2  # the model stopped, not just the printing
