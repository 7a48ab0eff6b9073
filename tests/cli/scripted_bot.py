"""Scripted models, tools and knowledge for the REPL's pseudo-terminal tests.

The ``scripted_plugin`` fixture (conftest.py) declares them as a chatloom plugin, in a dist-info
folder made for the test, so a ``chatloom`` subprocess finds the model scheme ``scripted:`` and
the tools ``lookup`` (read) and ``send_note`` (side effect, so the policy asks first).

``python -m scripted_bot ARGS`` is the ``chatloom`` CLI with one change: its knowledge memory is
:class:`HandbookMemory`, one passage in memory, so a citation needs no Chroma and no embeddings.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from langchain_core.tools import tool

from chatloom.memory.base import Passage
from chatloom.testing import FakeChatModel, _echo, tool_call
from chatloom.tools.policy import declare_effect

LEAVE_ANSWER = "Staff get **25 days** of annual leave [1]."
SLOW_WORDS = 40  # at 0.2 s a word: 8 s, ample time to press Ctrl-C


@declare_effect("read")
@tool
def lookup(topic: str) -> str:
    """Look a topic up in the staff handbook."""
    return f"handbook entry for {topic}: 25 days a year"


@declare_effect("side_effect")
@tool
def send_note(text: str) -> str:
    """Send a note to the whole team."""
    return f"note sent: {text}"


class SlowChatModel(FakeChatModel):
    """Streams each word after a pause, like a slow local model; with ``$SCRIPTED_WORDS_LOG`` set,
    it also appends each word it writes to that file (what it generated, shown or not)."""

    delay: float = 0.2

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        log = os.environ.get("SCRIPTED_WORDS_LOG")
        for chunk in super()._stream(*args, **kwargs):
            time.sleep(self.delay)
            if log:
                with open(log, "a", encoding="utf-8") as out:
                    out.write(f"{chunk.message.content}\n")
            yield chunk


def create_model(name: str, **options: Any) -> FakeChatModel:
    """The ``scripted:`` scheme: ``lookup``, ``note``, ``slow``, ``gated``; each answers by echo afterwards.

    ``gated`` loads only once the file named by ``$SCRIPTED_GATE`` exists (a model that takes
    as long to load as the test wants).
    """
    if name == "gated":
        gate = Path(os.environ["SCRIPTED_GATE"])
        for _ in range(600):  # at most 60 s, so a broken test fails instead of hanging
            if gate.exists():
                break
            time.sleep(0.1)
        return FakeChatModel(default=_echo)
    if name == "lookup":
        return FakeChatModel([tool_call("lookup", topic="annual leave"), LEAVE_ANSWER], default=_echo)
    if name == "note":
        return FakeChatModel([tool_call("send_note", text="lunch at noon"), "Done, the team knows."], default=_echo)
    if name == "slow":
        return SlowChatModel([" ".join(f"word{i}" for i in range(SLOW_WORDS))], default=_echo)
    raise ValueError(f"no scripted model {name!r}")


class HandbookMemory:
    """A knowledge memory holding one handbook passage, recalled for every question."""

    def recall(
        self,
        query: str,
        *,
        k: int = 4,
        namespace: str | None = None,
        user_id: str | None = None,
        filters: dict | None = None,
    ) -> list[Passage]:
        return [
            Passage(
                id="p1",
                text="Staff get 25 days of annual leave a year.",
                source="/srv/docs/handbook.md",
                title="Handbook",
                section="Annual leave",
                chunk=0,
                score=0.91,
            )
        ]

    def remember(self, **kwargs: Any) -> None:
        pass


if __name__ == "__main__":
    import chatloom.memory
    from chatloom.cli.main import run

    chatloom.memory.open_memory = lambda settings, namespace=None, **kw: HandbookMemory()  # type: ignore[assignment]
    sys.exit(run(sys.argv[1:]))
