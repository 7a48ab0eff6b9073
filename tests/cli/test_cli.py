"""The console script, run as a user would: a subprocess, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def chatloom(*args: str, home: Path, stdin: str | None = None, env: dict | None = None, cwd: Path | None = None):
    full_env = {**os.environ, "CHATLOOM_HOME": str(home), **(env or {})}
    full_env.pop("OPENAI_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or home,
        timeout=300,
    )


def assert_one_line_error(done, *needles: str) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_lists_the_commands(tmp_path):
    done = chatloom("--help", home=tmp_path)
    assert done.returncode == 0
    for command in ("chat", "ask", "models", "prompts", "ingest"):
        assert command in done.stdout


def test_ask_prints_the_answer(tmp_path):
    done = chatloom("ask", "--model", "fake:echo", "hello there", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "You said: hello there"


def test_ask_json_prints_the_whole_reply(tmp_path):
    done = chatloom("ask", "--json", "--model", "fake:echo", "hi", home=tmp_path)
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["answer"] == "You said: hi"
    assert {"citations", "tool_steps", "usage", "thread_id", "stop_reason"} <= set(reply)


def test_ask_continues_a_thread_across_processes(tmp_path):
    chatloom("ask", "--model", "fake:echo", "--thread", "x", "first", home=tmp_path)
    done = chatloom("ask", "--json", "--model", "fake:echo", "--thread", "x", "second", home=tmp_path)
    assert json.loads(done.stdout)["usage"]["input_tokens"] > 2  # it saw the first exchange too


def test_chat_transcript_over_stdin(tmp_path):
    transcript = "hello\n/help\n/reset\nagain\n/exit\nnever reached\n"
    done = chatloom("chat", "--model", "fake:echo", stdin=transcript, home=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "You said: hello" in out and "You said: again" in out
    assert "/reset" in out and "forget this conversation" in out and "conversation forgotten" in out
    assert "never reached" not in out


def test_empty_question(tmp_path):
    assert_one_line_error(chatloom("ask", "--model", "fake:echo", "   ", home=tmp_path), "question is empty")


def test_unknown_model(tmp_path):
    done = chatloom("ask", "--model", "nosuch:thing", "hi", home=tmp_path)
    assert_one_line_error(done, "nosuch:thing")


def test_model_not_installed(tmp_path):
    done = chatloom("ask", "--model", "local:qwen2.5-coder-1.5b", "hi", home=tmp_path)
    assert_one_line_error(done, "qwen2.5-coder-1.5b", "chatloom models install")


def test_corrupt_model_file(tmp_path):
    from chatloom.models.catalog import CATALOG

    entry = CATALOG["qwen2.5-coder-0.5b"]
    models = tmp_path / "models"
    models.mkdir()
    # Right size, wrong bytes: only the sha256 can tell.
    with open(models / "qwen2.5-coder-0.5b.gguf", "wb") as f:
        f.truncate(entry.size)
    done = chatloom("ask", "--model", "local:qwen2.5-coder-0.5b", "hi", home=tmp_path)
    assert_one_line_error(done, "sha256", "chatloom models install")


@pytest.mark.skipif(os.geteuid() == 0 and sys.platform != "linux", reason="needs a file mode root can't bypass")
def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    # A data dir *inside a regular file* can't be created, even by root.
    done = chatloom("ask", "--model", "fake:echo", "hi", home=tmp_path, env={"CHATLOOM_HOME": str(blocker / "data")})
    assert_one_line_error(done, "not writable", "CHATLOOM_HOME")


def test_processes_starting_together_all_find_the_data_dir_writable(tmp_path):
    # Each start checks the data dir with a probe file; they must not delete each other's.
    from concurrent.futures import ThreadPoolExecutor

    from chatloom.config import Settings

    settings = Settings(home=tmp_path / "home")
    with ThreadPoolExecutor(8) as pool:
        homes = list(pool.map(lambda _: settings.data_dir(), range(400)))
    assert set(homes) == {tmp_path / "home"}
    assert list((tmp_path / "home").iterdir()) == []  # no probe left behind


def test_corrupt_conversation_store(tmp_path):
    (tmp_path / "threads.sqlite").write_bytes(b"this is not a database" * 100)
    done = chatloom("ask", "--model", "fake:echo", "hi", home=tmp_path)
    assert_one_line_error(done, "threads.sqlite", "move the file aside")
    assert (tmp_path / "threads.sqlite").read_bytes().startswith(b"this is not a database")  # nothing destroyed


def test_malformed_config_file(tmp_path):
    (tmp_path / "chatloom.toml").write_text("model = [unclosed\n")
    assert_one_line_error(chatloom("ask", "hi", home=tmp_path), "chatloom.toml", "not valid TOML")


def test_help_imports_no_heavy_modules(tmp_path):
    code = (
        "import sys; from chatloom.cli.main import run; run(['--help']); "
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'langgraph', 'langchain_core') if m in sys.modules]; "
        "print('HEAVY', heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "CHATLOOM_HOME": str(tmp_path)}
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_chat_prompt_appears_before_heavy_imports(tmp_path):
    """The REPL shows its prompt before torch, transformers, chromadb or langgraph load."""
    code = """
import sys
import prompt_toolkit
from chatloom.cli import chat as chat_module
from chatloom.cli import repl as repl_module

class NoLoad:  # the background loader would import everything; leave it out to look at the prompt alone
    def __init__(self, agent): pass
    def done(self): return True
    def join(self): pass

def fake_prompt(self, message, **kw):
    heavy = [m for m in ("torch", "transformers", "chromadb", "langgraph", "llama_cpp") if m in sys.modules]
    print("PROMPT", message, "HEAVY", heavy)
    raise EOFError

repl_module._Loader = NoLoad
chat_module.sys.stdin.isatty = lambda: True
chat_module.sys.stdout.isatty = lambda: True
prompt_toolkit.PromptSession.prompt = fake_prompt
from chatloom.cli.main import run
sys.exit(run(["chat", "--model", "fake:echo"]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "CHATLOOM_HOME": str(tmp_path)},
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
