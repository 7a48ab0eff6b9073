"""Turns on one thread are serialised, across threads and processes: no turn is lost.

Before the lock, 5 processes x 20 turns on one thread_id kept 32 to 34 of the 100 turns, with
no error: each turn forked from the same parent checkpoint and the last writer won.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

import chatloom
from chatloom import Agent
from chatloom.errors import ChatloomError
from chatloom.testing import FakeChatModel

SRC = str(Path(chatloom.__file__).resolve().parents[1])

# One worker process: its own Agent on the default SQLite store in CHATLOOM_HOME, a scripted
# model, N turns on the shared thread.
WORKER = """
import sys
from chatloom import Agent
from chatloom.testing import FakeChatModel
name, turns = sys.argv[1], int(sys.argv[2])
agent = Agent(model=FakeChatModel(default="ok"))
agent.load()
print("ready", flush=True)
sys.stdin.readline()  # start together
for i in range(turns):
    agent.chat(f"{name}-{i}", thread_id="shared")
"""


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    for var in ("CHATLOOM_CHECKPOINT_URL", "CHATLOOM_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHATLOOM_CONFIG", str(tmp_path / "none.toml"))
    return tmp_path / "home"


def run_processes(n: int, turns: int, env: dict[str, str]) -> None:
    """Start ``n`` worker processes, release them at once, and wait for all of them."""
    env = {**os.environ, **env, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, f"p{k}", str(turns)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(n)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready", p.stderr.read()
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err


def questions(agent: Agent, thread_id: str = "shared") -> list[str]:
    return [str(m.content) for m in agent.history(thread_id) if isinstance(m, HumanMessage)]


def test_five_processes_twenty_turns_each_lose_no_turn(home):
    run_processes(5, 20, {"CHATLOOM_HOME": str(home)})
    kept = questions(Agent(model=FakeChatModel()))
    assert len(kept) == 100, f"{len(kept)} of 100 turns kept"
    assert sorted(kept) == sorted(f"p{k}-{i}" for k in range(5) for i in range(20))
    for k in range(5):  # each process's turns stay in its own order
        mine = [q for q in kept if q.startswith(f"p{k}-")]
        assert mine == [f"p{k}-{i}" for i in range(20)]


@pytest.mark.parametrize("shared_agent", [True, False], ids=["one-agent", "agent-per-thread"])
def test_five_threads_twenty_turns_each_lose_no_turn(home, shared_agent):
    agents = (
        [Agent(model=FakeChatModel(default="ok"))] * 5
        if shared_agent
        else [Agent(model=FakeChatModel(default="ok")) for _ in range(5)]
    )
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            start.wait()
            for i in range(20):
                agents[k].chat(f"t{k}-{i}", thread_id="shared")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    assert not errors, errors
    kept = questions(agents[0])
    assert len(kept) == 100, f"{len(kept)} of 100 turns kept"
    # Every answer follows its own question: no two turns interleaved inside one thread.
    history = agents[0].history("shared")
    assert [type(m).__name__ for m in history] == ["HumanMessage", "AIMessage"] * 100


def test_other_threads_are_not_blocked(home):
    from chatloom.agents.thread_lock import hold_thread

    agent = Agent(model=FakeChatModel(default="ok"))
    graph = agent._services().graph
    with hold_thread(graph.checkpointer, "busy"):
        assert agent.chat("hi", thread_id="free").answer == "ok"


def test_a_turn_that_waits_too_long_gets_a_clear_error(home, monkeypatch):
    from chatloom.agents.thread_lock import hold_thread

    monkeypatch.setenv("CHATLOOM_TURN_LOCK_TIMEOUT", "0.3")
    agent = Agent(model=FakeChatModel(default="ok"))
    graph = agent._services().graph
    held = threading.Event()
    release = threading.Event()

    def holder() -> None:  # another process's turn, as far as the file lock can tell
        from chatloom.memory.checkpoint import open_sqlite_checkpointer

        with hold_thread(open_sqlite_checkpointer(home / "threads.sqlite"), "t"):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(10)
        began = time.monotonic()
        with pytest.raises(ChatloomError, match=r"thread 't' is still busy with another turn after 0.3 s"):
            agent.chat("hi", thread_id="t")
        assert 0.25 <= time.monotonic() - began < 5
        assert graph.get_state({"configurable": {"thread_id": "t"}}).values == {}  # nothing written
    finally:
        release.set()
        t.join()
    assert agent.chat("hi", thread_id="t").answer == "ok"  # free again


def test_a_stream_holds_the_lock_until_it_is_closed(home, monkeypatch):
    from chatloom.agents.thread_lock import hold_thread

    agent = Agent(model=FakeChatModel(default="one two three"))
    graph = agent._services().graph
    stream = agent.stream("hi", thread_id="s")
    next(stream)  # the turn is running
    got = threading.Event()

    def other() -> None:
        with hold_thread(graph.checkpointer, "s", timeout=5):
            got.set()

    t = threading.Thread(target=other)
    t.start()
    assert not got.wait(0.3)
    stream.close()  # the consumer went away: the lock is released
    assert got.wait(5)
    t.join()
