"""PostgreSQL LangGraph checkpointer: conversation state for more than one machine.

>>> from chatloom.memory.postgres import postgres_checkpointer            # doctest: +SKIP
>>> saver = postgres_checkpointer("postgresql://chatloom@127.0.0.1:5432/chatloom")  # doctest: +SKIP
>>> graph = builder.compile(checkpointer=saver)                         # doctest: +SKIP
"""

from __future__ import annotations

import re
from typing import Any

from chatloom.errors import ConfigError

_INSTALL = "pip install langgraph-checkpoint-postgres 'psycopg[binary]' psycopg-pool"


def redact(dsn: str) -> str:
    """The DSN with any password replaced by ``***`` (safe for error messages)."""
    dsn = re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", dsn)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", dsn, flags=re.I)


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
            "checkpoint_url is set but the PostgreSQL checkpointer is not installed", _INSTALL
        ) from None
    if not re.match(r"^(postgres(ql)?://|\w+=)", dsn.strip()):
        raise ConfigError(
            f"checkpoint_url {redact(dsn)!r} is not a PostgreSQL DSN",
            "use postgresql://user:password@host:5432/dbname, or unset it for SQLite",
        )
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
    except Exception as exc:
        pool.close()
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"can't use the PostgreSQL checkpointer at {redact(dsn)!r} ({detail})",
            "check that the server is running and the DSN is right, or unset checkpoint_url "
            "to keep conversations in SQLite",
        ) from None
    return saver
