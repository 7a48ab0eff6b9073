"""PostgreSQL for more than one machine: the LangGraph checkpointer (conversation state) and
the connections behind the shared knowledge index (``index_url``, see :mod:`chatloom.memory.store`).

>>> from chatloom.memory.postgres import postgres_checkpointer            # doctest: +SKIP
>>> saver = postgres_checkpointer("postgresql://chatloom@127.0.0.1:5432/chatloom")  # doctest: +SKIP
>>> graph = builder.compile(checkpointer=saver)                         # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from chatloom.errors import ConfigError, MemoryStoreError, install_hint


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (safe for error messages)."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn, flags=re.I)


def check_dsn(dsn: str, setting: str, fallback: str) -> None:
    """Raise a ConfigError unless ``dsn`` looks like a PostgreSQL DSN (URL or key=value form).

    ``setting`` names the setting in the message; ``fallback`` says what unsetting it gives.
    """
    if not re.match(r"^(postgres(ql)?://|\w+=)", dsn.strip()):
        raise ConfigError(
            f"{setting} {redact(dsn)!r} is not a PostgreSQL DSN",
            f"use postgresql://user:password@host:5432/dbname, or unset it {fallback}",
        )


def first_line(exc: BaseException) -> str:
    """The first line of a driver error, any password in it redacted: safe for one-line errors."""
    text = str(exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


def connect_index(dsn: str) -> Any:
    """An autocommit psycopg connection for the knowledge index at ``dsn`` (``index_url``).

    Fails with a ConfigError when psycopg is missing or ``dsn`` is not PostgreSQL, and with a
    MemoryStoreError when the server can't be reached; the DSN is redacted in both.
    """
    check_dsn(dsn, "index_url", "to keep the knowledge index in SQLite in the data dir")
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "index_url is set but the PostgreSQL driver psycopg is not installed",
            install_hint("postgres", "psycopg[binary]"),
        ) from None
    try:
        # No prepared statements: safe behind PgBouncer, like the checkpointer's pool.
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10, prepare_threshold=None)
    except psycopg.Error as exc:
        raise MemoryStoreError(
            f"can't reach the PostgreSQL knowledge index at {redact(dsn)!r} ({first_line(exc)})",
            "check that the server is running and the DSN is right, or unset index_url "
            "to keep the index in SQLite in the data dir",
        ) from None


@contextlib.contextmanager
def advisory_lock(dsn: str, key: int, timeout_s: float) -> Iterator[None]:
    """Hold PostgreSQL's session advisory lock ``key`` on a connection of its own for the block.

    The cross-machine twin of a file lock: every process (on any machine) that takes the same
    key on the same database waits for the holder, and a killed holder's connection ends, which
    releases the lock. A wait past ``timeout_s`` raises MemoryStoreError.
    """
    import psycopg

    conn = connect_index(dsn)
    try:
        try:
            conn.execute(f"SET lock_timeout = {int(timeout_s * 1000)}")
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        except psycopg.errors.LockNotAvailable:
            raise MemoryStoreError(
                f"another process has held the memory write lock in {redact(dsn)!r} for {timeout_s:.0f} s",
                "wait for the other `chatloom ingest` to finish, then retry",
            ) from None
        yield
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


def postgres_checkpointer(dsn: str, *, max_connections: int = 10) -> Any:
    """A ``PostgresSaver`` on a connection pool, with its tables created (idempotent).

    The pool is safe for the many threads of ``chatloom serve``; it closes with the process
    (or call ``saver.conn.close()``). An unreachable server fails now, not at the first turn.
    """
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool
    except ImportError:
        raise ConfigError(
            "checkpoint_url is set but the PostgreSQL checkpointer is not installed",
            install_hint("postgres", "langgraph-checkpoint-postgres", "psycopg[binary]", "psycopg-pool"),
        ) from None
    check_dsn(dsn, "checkpoint_url", "to keep conversations in SQLite")
    pool = ConnectionPool(
        conninfo=dsn,
        min_size=1,
        max_size=max_connections,
        # autocommit + no prepared statements is what PostgresSaver expects (PgBouncer-safe).
        kwargs={"autocommit": True, "prepare_threshold": None, "row_factory": dict_row},
        open=False,
    )
    try:
        pool.open(wait=True, timeout=10)
        saver = PostgresSaver(pool)  # type: ignore[arg-type]
        saver.setup()
    except Exception as exc:  # noqa: BLE001 - any driver failure becomes one line
        pool.close()
        raise ConfigError(
            f"can't use the PostgreSQL checkpointer at {redact(dsn)!r} ({first_line(exc)})",
            "check that the server is running and the DSN is right, or unset checkpoint_url "
            "to keep conversations in SQLite",
        ) from None
    return saver
