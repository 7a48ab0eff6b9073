"""Fixtures for driving ``chatloom chat`` through a real pseudo-terminal (pexpect).

The scripted models and tools of ``scripted_bot.py`` become a chatloom plugin for the
subprocess only: a dist-info folder made in a temporary directory and put on its PYTHONPATH, so
no other test (and no other process) ever sees them.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"

SPEC = """\
name: handbook
prompt: assistant
tools: [lookup, send_note]
memory: {enabled: true, grounding: false}
"""


@pytest.fixture(scope="session")
def scripted_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A site dir whose dist-info declares scripted_bot's model scheme and tools."""
    site = tmp_path_factory.mktemp("scripted-site")
    info = site / "chatloom_scripted-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: chatloom-scripted\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[chatloom.models]\nscripted = scripted_bot:create_model\n\n"
        "[chatloom.tools]\nlookup = scripted_bot:lookup\nsend_note = scripted_bot:send_note\n"
    )
    return site


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A bot folder whose agents/assistant.yaml has the scripted tools and (in-memory) knowledge."""
    (tmp_path / "agents").mkdir()
    (tmp_path / "agents" / "assistant.yaml").write_text(SPEC)
    return tmp_path


@pytest.fixture
def chat_env(tmp_path: Path, scripted_plugin: Path) -> dict[str, str]:
    """The environment of a chat subprocess: this checkout's code, a private data dir, no network keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATLOOM_", "OPENAI_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(SRC), str(HERE), str(scripted_plugin)]),
        CHATLOOM_HOME=str(tmp_path / "home"),
        TERM="xterm-256color",
        PROMPT_TOOLKIT_NO_CPR="1",  # pexpect answers no cursor-position requests
        COLUMNS="120",
        LINES="40",
    )
    env.pop("NO_COLOR", None)
    return env


@pytest.fixture
def spawn_chat(chat_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[..., object]]:
    """``spawn_chat(*args, cwd=..., memory=False)``: ``chatloom chat ARGS`` on a pseudo-terminal.

    ``memory=True`` runs it through scripted_bot, whose knowledge memory is the in-memory handbook.
    """
    pexpect = pytest.importorskip("pexpect")
    children = []

    def spawn(*args: str, cwd: Path | None = None, memory: bool = False) -> object:
        entry = ["-m", "scripted_bot"] if memory else ["-m", "chatloom.cli.main"]
        child = pexpect.spawn(
            sys.executable,
            [*entry, "chat", *args],
            cwd=str(cwd or tmp_path),
            env=chat_env,
            encoding="utf-8",
            timeout=60,
            dimensions=(40, 120),
            # A pytest started in the background by a non-interactive shell ignores SIGINT, and
            # the child would inherit that: Ctrl-C must reach the chat however pytest was run.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        child.logfile_read = io.StringIO()  # the whole session, for assertions over all of it
        children.append(child)
        child.expect("›")  # the prompt
        return child

    yield spawn
    for child in children:
        child.close(force=True)
