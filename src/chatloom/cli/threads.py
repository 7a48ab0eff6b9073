"""Which conversation thread ``chatloom ask`` and ``chatloom chat`` use.

Each run starts a new thread unless told otherwise: ``--thread ID`` continues (or starts) the
thread ``ID``; ``-c/--continue`` continues the last thread the CLI used. Every thread is saved
in the conversation store, so either flag can come back to it later (``/thread list`` in the
chat shows them). The last thread's id is kept in a small file in the data dir
(:data:`LAST_THREAD_FILE`), written once a turn has run on it. Light: stdlib only, read before
the prompt is on screen.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from chatloom.errors import ChatloomError, TurnStopped

LAST_THREAD_FILE = "cli-last-thread.json"
"""The file in the data dir that holds the id of the last thread ``ask`` or ``chat`` used."""


def new_thread_id(kind: str) -> str:
    """A fresh thread id such as ``ask-20261208-031500-7f3a``: readable, sortable by time, and
    unique even for two runs in the same second.

    >>> new_thread_id("ask").startswith("ask-")
    True
    """
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def last_thread(data_dir: Path) -> str | None:
    """The id of the last thread the CLI used in ``data_dir``, or None if there is none (or the
    record is unreadable, which ``-c`` reports the same way: there is nothing to continue)."""
    try:
        record = json.loads((data_dir / LAST_THREAD_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    thread = record.get("thread_id") if isinstance(record, dict) else None
    return thread if isinstance(thread, str) and thread else None


def remember_thread(data_dir: Path, thread_id: str) -> None:
    """Record ``thread_id`` as the last thread the CLI used in ``data_dir`` (for ``-c``).

    Written to a temporary file and renamed, so a concurrent ``-c`` reads the old id or the new
    one, never half a file. A failed write is ignored: the turn's answer is already shown, and a
    later ``-c`` continues the thread recorded before (or says there is none).
    """
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(dir=data_dir, prefix=".cli-last-thread-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"thread_id": thread_id}, f)
        os.replace(tmp, data_dir / LAST_THREAD_FILE)
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def choose_thread(thread_id: str | None, continue_last: bool, kind: str, data_dir: Callable[[], Path]) -> str:
    """The thread a run uses: ``thread_id`` (``--thread``), else the last one (``-c``), else a new one.

    ``data_dir`` is called only for ``-c``, so a fresh run does not touch the data dir before
    its agent does. Raises :class:`ChatloomError` for both flags at once, or ``-c`` with no
    earlier thread.
    """
    if thread_id is not None and continue_last:
        raise ChatloomError(
            "--thread and -c/--continue both name a conversation", "give one: --thread ID, or -c for the last one"
        )
    if thread_id is not None:
        if not thread_id.strip():
            raise ChatloomError("--thread needs a non-empty id", "e.g. --thread support-42")
        return thread_id
    if continue_last:
        home = data_dir()
        found = last_thread(home)
        if found is None:
            raise ChatloomError(
                f"no earlier conversation to continue in {str(home)!r}",
                "drop -c to start a new one, or pass --thread ID",
            )
        return found
    return new_thread_id(kind)


@contextlib.contextmanager
def recording_turn(data_dir: Callable[[], Path], thread_id: str) -> Iterator[None]:
    """Around a turn: once it has run, or was stopped part-way (its question is saved), record
    ``thread_id`` as the CLI's last thread. A turn that failed (a model that did not load, a dead
    backend) leaves the record alone, so ``-c`` still continues the last conversation that worked.
    """
    try:
        yield
    except TurnStopped:
        _remember(data_dir, thread_id)
        raise
    _remember(data_dir, thread_id)


def _remember(data_dir: Callable[[], Path], thread_id: str) -> None:
    # The answer is on screen by now: a data dir gone unwritable must not turn it into a failure.
    with contextlib.suppress(ChatloomError):
        remember_thread(data_dir(), thread_id)
