"""One turn at a time per conversation thread, across threads and processes.

A turn reads the thread's latest checkpoint, runs, and writes a new one. Two turns on the same
thread that overlap both fork from the same parent and the last writer wins: five processes
sending 20 turns each kept 32 to 34 of the 100, with no error. So a turn holds a lock on its
thread from the read to the write:

- always, an in-process lock per (checkpointer, thread id), for threads of one process;
- SQLite: a file lock (``filelock``) next to the database, keyed by the database and the thread
  id, for other processes on the same machine (the only ones that can share the file);
- PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) on a 64-bit hash of the
  thread id, held on a connection of the saver's pool, for other processes and machines. The
  server drops it when the holder's connection dies, so a killed process can't wedge a thread.

A turn that waits longer than ``timeout`` seconds gets a :class:`~chatloom.errors.ThreadBusy`.

>>> from langgraph.checkpoint.memory import InMemorySaver
>>> with hold_thread(InMemorySaver(), "alice", timeout=1):
...     pass
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from chatloom.errors import ThreadBusy

DEFAULT_TIMEOUT = 600.0  # seconds; a local model's turn can take minutes on a small machine

_guard = threading.Lock()
_local_locks: dict[tuple[int, str], list[Any]] = {}  # key -> [lock, users]


@contextmanager
def hold_thread(checkpointer: Any, thread_id: str, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[None]:
    """Hold the lock of ``thread_id`` in ``checkpointer``'s store for the duration of a turn."""
    deadline = time.monotonic() + max(0.0, timeout)
    with _local_lock(checkpointer, thread_id, timeout), _store_lock(checkpointer, thread_id, deadline, timeout):
        yield


@contextmanager
def _local_lock(checkpointer: Any, thread_id: str, timeout: float) -> Iterator[None]:
    key = (id(checkpointer), thread_id)
    with _guard:
        entry = _local_locks.setdefault(key, [threading.Lock(), 0])
        entry[1] += 1
    try:
        if not entry[0].acquire(timeout=max(0.0, timeout)):
            raise _busy(thread_id, timeout)
        try:
            yield
        finally:
            entry[0].release()
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                _local_locks.pop(key, None)


def _store_lock(checkpointer: Any, thread_id: str, deadline: float, timeout: float) -> Any:
    """The cross-process lock for this kind of checkpointer (a no-op for in-memory ones)."""
    kind = type(checkpointer).__name__
    if kind == "SqliteSaver":
        path = sqlite_path(checkpointer)
        if path is not None:
            return _file_lock(path, thread_id, deadline, timeout)
    if kind == "PostgresSaver":
        return _advisory_lock(checkpointer.conn, thread_id, deadline, timeout)
    return _nothing()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def sqlite_path(checkpointer: Any) -> Path | None:
    """The database file behind a ``SqliteSaver``, or None for an in-memory database."""
    with checkpointer.lock:  # the saver's own lock: its connection is shared by threads
        rows = checkpointer.conn.execute("PRAGMA database_list").fetchall()
    main = next((row[2] for row in rows if row[1] == "main"), "")
    return Path(main) if main else None


def lock_key(thread_id: str) -> str:
    """A stable, file-name-safe key for a thread id (any string, of any length)."""
    return hashlib.sha256(thread_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@contextmanager
def _file_lock(db: Path, thread_id: str, deadline: float, timeout: float) -> Iterator[None]:
    from filelock import FileLock, Timeout

    # One empty file per thread in "<db>.locks/"; locks are advisory (flock) and vanish with
    # the process holding them, so a crash never leaves a thread locked.
    folder = db.with_name(db.name + ".locks")
    folder.mkdir(exist_ok=True)
    lock = FileLock(str(folder / f"{lock_key(thread_id)}.lock"))
    try:
        lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
    except Timeout:
        raise _busy(thread_id, timeout) from None
    try:
        yield
    finally:
        lock.release()


def advisory_key(thread_id: str) -> int:
    """The signed 64-bit ``pg_advisory_lock`` key of a thread id."""
    digest = hashlib.sha256(b"chatloom-thread:" + thread_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def _advisory_lock(conn: Any, thread_id: str, deadline: float, timeout: float) -> Iterator[None]:
    key = advisory_key(thread_id)
    with _connection(conn) as pg:
        # Polling pg_try_advisory_lock keeps the wait bounded without touching lock_timeout.
        pause = 0.01
        while not _fetch_one(pg, "SELECT pg_try_advisory_lock(%s)", key):
            if time.monotonic() >= deadline:
                raise _busy(thread_id, timeout)
            time.sleep(pause)
            pause = min(pause * 2, 0.2)
        try:
            yield
        finally:
            _fetch_one(pg, "SELECT pg_advisory_unlock(%s)", key)


@contextmanager
def _connection(conn: Any) -> Iterator[Any]:
    """A connection of its own from the saver's pool (or the saver's single connection)."""
    if hasattr(conn, "connection") and hasattr(conn, "getconn"):  # a psycopg_pool pool
        with conn.connection() as pg:
            yield pg
    else:
        yield conn


def _fetch_one(pg: Any, sql: str, key: int) -> Any:
    row = pg.execute(sql, (key,)).fetchone()
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _busy(thread_id: str, timeout: float) -> ThreadBusy:
    return ThreadBusy(
        f"thread {thread_id!r} is still busy with another turn after {timeout:g} s",
        "wait for the other turn to finish and retry, or use another --thread",
    )
