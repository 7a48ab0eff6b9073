"""Against real servers on 127.0.0.1: `chroma run` (HttpClient) and PostgreSQL (checkpointer)."""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict

import pytest
from memhelpers import consistent, free_port

from chatloom.errors import ConfigError, MemoryStoreError
from chatloom.memory import open_memory


def test_memory_on_a_chroma_server(home, monkeypatch, minilm, chroma_url, tmp_path):
    from chatloom.config import get_settings

    monkeypatch.setenv("CHATLOOM_MEMORY_URL", chroma_url)
    settings = get_settings()
    doc = tmp_path / "kb.md"
    doc.write_text("# Billing\nInvoices are sent on the first of each month.\n")
    mem = open_memory(settings, namespace="srv", embeddings=minilm)
    report = mem.ingest([doc])
    assert report.chunks_added == 1
    # Vectors are on the server, not in the data dir.
    assert not (home / "memory" / "chroma").exists()
    assert consistent(mem) == (1, 1)
    hit = mem.recall("when are invoices sent", k=1)[0]
    assert hit.section == "Billing" and hit.source == doc.name
    mem.close()
    again = open_memory(settings, namespace="srv", embeddings=minilm)
    assert again.recall("invoices", k=1)[0].id == hit.id
    assert again.forget(str(doc)) == 1
    assert again.recall("invoices", k=1) == []


def test_unreachable_chroma_server_is_a_clear_error(home, monkeypatch, minilm):
    from chatloom.config import get_settings

    monkeypatch.setenv("CHATLOOM_MEMORY_URL", f"http://127.0.0.1:{free_port()}")
    mem = open_memory(get_settings(), namespace="srv", embeddings=minilm)
    with pytest.raises(MemoryStoreError, match="can.t reach the Chroma server .*chroma run"):
        mem.recall("anything", k=1)
    monkeypatch.setenv("CHATLOOM_MEMORY_URL", "ftp://nowhere")
    with pytest.raises(MemoryStoreError, match="not an http"):
        open_memory(get_settings(), namespace="srv", embeddings=minilm).recall("x")


class _State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(checkpointer):
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(_State)
    g.add_node("step", lambda s: {"log": [f"turn{len(s['log'])}"]})
    g.add_edge(START, "step")
    g.add_edge("step", END)
    return g.compile(checkpointer=checkpointer)


def test_postgres_checkpointer_keeps_threads_across_connections(postgres_dsn, settings):
    from chatloom.memory.checkpoint import open_checkpointer

    cfg = {"configurable": {"thread_id": "t-1"}}
    s = settings.model_copy(update={"checkpoint_url": postgres_dsn})
    saver = open_checkpointer(s)
    graph = _graph(saver)
    graph.invoke({"log": []}, cfg)
    graph.invoke({"log": []}, cfg)
    saver.conn.close()
    # A new pool (as another server process would have) sees the same thread.
    saver2 = open_checkpointer(s)
    state = _graph(saver2).get_state(cfg)
    assert state.values["log"] == ["turn0", "turn1"]
    assert _graph(saver2).get_state({"configurable": {"thread_id": "other"}}).values == {}
    saver2.conn.close()


def test_postgres_checkpointer_errors_name_the_fix(settings):
    from chatloom.memory.postgres import postgres_checkpointer, redact

    with pytest.raises(ConfigError, match=r"can't use the PostgreSQL checkpointer at .*\*\*\*"):
        postgres_checkpointer(f"postgresql://u:hunter2@127.0.0.1:{free_port()}/db")
    with pytest.raises(ConfigError, match="not a PostgreSQL DSN"):
        postgres_checkpointer("mysql://x")
    assert redact("postgresql://u:secret@h/db") == "postgresql://u:***@h/db"
    assert "secret" not in redact("host=h password=secret")
