"""Turns on one thread are serialised on PostgreSQL too, by an advisory lock on the thread id.

Each worker has its own Agent and so its own connection pool: only the server-side advisory
lock can keep their turns apart, exactly as between processes or machines.
"""

from __future__ import annotations

import threading

import pytest
from langchain_core.messages import HumanMessage

from chatloom import Agent
from chatloom.testing import FakeChatModel


@pytest.fixture()
def pg_env(postgres_dsn, tmp_path, monkeypatch):
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CHATLOOM_CHECKPOINT_URL", postgres_dsn)
    monkeypatch.setenv("CHATLOOM_CONFIG", str(tmp_path / "none.toml"))
    return postgres_dsn


def test_five_pools_twenty_turns_each_lose_no_turn_on_postgres(pg_env):
    agents = [Agent(model=FakeChatModel(default="ok")).load() for _ in range(5)]
    start = threading.Barrier(5)
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            start.wait()
            for i in range(20):
                agents[k].chat(f"w{k}-{i}", thread_id="pg-shared")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(5)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=600)
    assert not errors, errors
    kept = [str(m.content) for m in agents[0].history("pg-shared") if isinstance(m, HumanMessage)]
    assert len(kept) == 100, f"{len(kept)} of 100 turns kept"
    assert sorted(kept) == sorted(f"w{k}-{i}" for k in range(5) for i in range(20))
    for agent in agents:
        agent._services().graph.checkpointer.conn.close()


def test_the_advisory_lock_is_released_when_its_holder_goes_away(pg_env):
    from chatloom.agents.thread_lock import advisory_key, hold_thread

    a = Agent(model=FakeChatModel(default="ok")).load()
    b = Agent(model=FakeChatModel(default="ok")).load()
    saver_a = a._services().graph.checkpointer
    with hold_thread(saver_a, "x"), saver_a.conn.connection() as pg:  # another session sees the lock as taken
        row = pg.execute("SELECT pg_try_advisory_lock(%s) AS got", (advisory_key("x"),)).fetchone()
        assert row["got"] is False
    assert b.chat("hi", thread_id="x").answer == "ok"  # released after the turn
    for agent in (a, b):
        agent._services().graph.checkpointer.conn.close()
