"""The contract between the turn graph and any memory backend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk of knowledge, with where it came from."""

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
