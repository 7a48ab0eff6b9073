"""A conversation continues after a restart: a new process, the same data dir."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    from langchain_core.messages import HumanMessage
    from chatloom import Agent
    from chatloom.testing import FakeChatModel

    def answer(messages):
        said = [m.content for m in messages if isinstance(m, HumanMessage)]
        return "I have heard: " + " | ".join(said)

    agent = Agent(model=FakeChatModel(default=answer))  # default checkpointer: SQLite in CHATLOOM_HOME
    print(agent.chat(sys.argv[1], thread_id=sys.argv[2]).answer)
    """
)


def run_turn(home, text, thread):
    env = {**os.environ, "CHATLOOM_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, text, thread], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_conversation_survives_a_restart(tmp_path):
    assert run_turn(tmp_path, "my name is Ada", "t1") == "I have heard: my name is Ada"
    assert (tmp_path / "threads.sqlite").is_file()
    assert run_turn(tmp_path, "what is my name?", "t1") == "I have heard: my name is Ada | what is my name?"
    # Another thread in the same store starts empty.
    assert run_turn(tmp_path, "hi", "t2") == "I have heard: hi"
