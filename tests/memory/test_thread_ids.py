"""Listing stored threads, most recent first, the same way for SQLite and in-memory savers."""

from __future__ import annotations

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from chatloom import Agent
from chatloom.memory.checkpoint import open_sqlite_checkpointer, thread_ids
from chatloom.testing import FakeChatModel


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_thread_ids_newest_first_with_a_prefix(store, tmp_path):
    saver = open_sqlite_checkpointer(tmp_path / "threads.sqlite") if store == "sqlite" else InMemorySaver()
    agent = Agent(model=FakeChatModel(default=lambda messages: "ok"), prompt=None, checkpointer=saver)
    for thread in ("acme:a", "beta:x", "acme:b", "acme:a"):  # acme:a used again last
        agent.chat("hi", thread_id=thread)
    assert thread_ids(saver) == ["acme:a", "acme:b", "beta:x"]
    assert thread_ids(saver, prefix="acme:") == ["acme:a", "acme:b"]
    assert thread_ids(saver, prefix="acme:", limit=1) == ["acme:a"]
    assert thread_ids(saver, prefix="nobody:") == []
