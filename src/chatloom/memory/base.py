"""The contract between the turn graph and any memory backend."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Protocol, runtime_checkable

_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def display_source(source: str) -> str:
    """``source`` as clients may see it: an absolute path becomes its file name.

    Passages and citations leave the server (HTTP, the web page, MCP, eval reports), and the
    server's own paths (``/home/deploy/kb/...``) are none of the client's business. chatloom's
    memory hands out each file's path under the folder it was ingested from; this is the
    fallback for anything else (a store ingested before that, another memory backend). Names
    that are not absolute paths (``hr/leave.md``, ``web:https://...``) are kept.

    >>> display_source("/srv/kb/hr/leave.md"), display_source("hr/leave.md"), display_source("C:/kb/a.md")
    ('leave.md', 'hr/leave.md', 'a.md')
    """
    if source.startswith("/"):
        return PurePosixPath(source).name or source
    if _WINDOWS_ABSOLUTE.match(source):
        return PureWindowsPath(source).name or source
    return source


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk of knowledge, with where it came from.

    ``source`` names the document for citations: for chatloom's memory, the file's path under
    the folder given to ``ingest`` (or its file name, when the file itself was given), never
    the server's absolute path.
    """

    id: str
    text: str
    source: str
    title: str = ""
    section: str = ""
    chunk: int = 0
    score: float = 0.0


@runtime_checkable
class Memory(Protocol):
    """What the recall and remember nodes need from a memory backend.

    Two more methods are optional, and used when present: ``matches_across_languages(namespace)``
    (whether its search finds passages in another language by meaning; assumed true) and
    ``has_knowledge(namespace)`` (whether anything was ingested; while not, the agent doesn't
    offer its ``search`` tool).
    """

    def recall(
        self,
        query: str,
        *,
        k: int = 4,
        namespace: str | None = None,
        user_id: str | None = None,
        filters: dict | None = None,
    ) -> list[Passage]:
        """Return up to ``k`` passages relevant to ``query``, best first."""
        ...

    def remember(self, *, user_id: str | None, thread_id: str, question: str, answer: str) -> None:
        """Store what is worth keeping from one finished turn."""
        ...
