"""Checkpointers keep each conversation thread's state across restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chatloom.errors import DataDirError


def open_checkpointer(settings: Any) -> Any:
    """Return the LangGraph checkpointer for ``settings``.

    SQLite in ``<data dir>/threads.sqlite`` by default; ``settings.checkpoint_url`` (a
    PostgreSQL DSN) selects PostgreSQL.
    """
    if getattr(settings, "checkpoint_url", None):
        return open_postgres_checkpointer(settings.checkpoint_url)
    return open_sqlite_checkpointer(settings.data_dir() / "threads.sqlite")


def open_sqlite_checkpointer(path: Path) -> Any:
    """An embedded SQLite checkpointer at ``path``, safe to use from several threads."""
    import sqlite3

    from filelock import Timeout
    from langgraph.checkpoint.sqlite import SqliteSaver

    from chatloom.memory.store import sqlite_open_lock

    try:
        with sqlite_open_lock(path, timeout=60):
            conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")  # readers don't block the writer across processes
            saver = SqliteSaver(conn)
            saver.setup()
    except Timeout:
        raise DataDirError(
            f"conversation store {str(path)!r} is being opened by another process for over a minute",
            "check for a hung chatloom process, or point CHATLOOM_HOME elsewhere",
        ) from None
    except sqlite3.DatabaseError as exc:
        raise DataDirError(
            f"conversation store {str(path)!r} can't be opened ({exc})",
            "move the file aside to start fresh, or point CHATLOOM_HOME elsewhere",
        ) from None
    return saver


def open_postgres_checkpointer(dsn: str) -> Any:
    """A PostgreSQL checkpointer; the scale-out option for conversation state."""
    from chatloom.memory.postgres import postgres_checkpointer

    return postgres_checkpointer(dsn)


def thread_ids(checkpointer: Any, prefix: str = "", limit: int | None = None) -> list[str]:
    """The ids of the threads in ``checkpointer`` that start with ``prefix``, most recently used
    first (the REPL's ``/thread list``, the server's per-tenant listing).

    SQLite and PostgreSQL are asked with one grouped query (the checkpoint ids are time-ordered);
    other savers are walked checkpoint by checkpoint.
    """
    cap = 2**62 if limit is None else limit
    grouped = "FROM checkpoints WHERE {prefix} GROUP BY thread_id ORDER BY MAX(checkpoint_id) DESC LIMIT {param}"
    found = _query_thread_ids(checkpointer, grouped, prefix, cap)
    if found is not None:
        return found
    latest: dict[str, str] = {}
    for saved in checkpointer.list(None):
        thread = saved.config["configurable"]["thread_id"]
        if thread.startswith(prefix):
            latest[thread] = max(latest.get(thread, ""), saved.checkpoint.get("ts", ""))
    return sorted(latest, key=lambda t: latest[t], reverse=True)[:cap]


def interrupted_thread_ids(checkpointer: Any, prefix: str = "") -> list[str] | None:
    """The threads starting with ``prefix`` that ever stored an interrupt (a pause), from one
    query over the checkpoint writes of a SQLite or PostgreSQL saver: a superset of the threads
    paused now. None for other savers, which keep no such table."""
    # LangGraph stores a pause as a pending write on the "__interrupt__" channel.
    writes = "FROM {writes} WHERE channel = '__interrupt__' AND {prefix} GROUP BY thread_id"
    return _query_thread_ids(checkpointer, writes, prefix)


def _query_thread_ids(checkpointer: Any, sql: str, prefix: str, *params: Any) -> list[str] | None:
    """Run ``SELECT thread_id <sql>`` on a SQLite or PostgreSQL saver, or None for other savers.

    ``sql`` names ``{writes}`` (each saver's writes table), ``{prefix}`` (the thread id starts
    with ``prefix``) and ``{param}`` (one of ``params``) in a form both databases read.
    """
    kind = type(checkpointer).__name__
    if kind == "SqliteSaver":
        query = "SELECT thread_id " + sql.format(writes="writes", prefix="substr(thread_id, 1, ?) = ?", param="?")
        with checkpointer.lock:
            return [row[0] for row in checkpointer.conn.execute(query, (len(prefix), prefix, *params)).fetchall()]
    if kind == "PostgresSaver":
        from chatloom.agents.thread_lock import _connection

        query = "SELECT thread_id " + sql.format(
            writes="checkpoint_writes", prefix="left(thread_id, %s) = %s", param="%s"
        )
        with _connection(checkpointer.conn) as pg:
            rows = pg.execute(query, (len(prefix), prefix, *params)).fetchall()
        return [row["thread_id"] if isinstance(row, dict) else row[0] for row in rows]
    return None
