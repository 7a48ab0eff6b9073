"""The ``search`` tool: the knowledge base (the memory layer's hybrid search), as cited snippets.

>>> from chatloom.memory.base import Passage
>>> class Notes:
...     def recall(self, query, *, k=4, namespace=None, user_id=None, filters=None):
...         return [Passage(id="1", text="Refunds take 5 days.", source="faq.md", chunk=2)]
...     def remember(self, **kw): pass
>>> print(make_search_tool(Notes()).invoke({"query": "refund time"}))
[1] (faq.md#2) Refunds take 5 days.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from langchain_core.tools import BaseTool, StructuredTool

from chatloom.errors import ChatloomError, install_hint
from chatloom.memory.base import Memory, Passage, display_source

SNIPPET_CHARS = 700
"""Longest snippet shown per passage; the model gets the gist and the citation."""

_DESCRIPTION = (
    "Search the knowledge base (the bot's documents) and return the most relevant passages, "
    "each with a citation like [1] (source#chunk). Cite the numbers you use in your answer."
)


def format_passages(passages: list[Passage], max_chars: int = SNIPPET_CHARS) -> str:
    """Render passages as numbered, cited snippets: ``[1] (source#chunk) text``."""
    lines = []
    for i, p in enumerate(passages, 1):
        text = re.sub(r"\s+", " ", p.text).strip()
        if len(text) > max_chars:
            text = text[: max_chars - 1].rsplit(" ", 1)[0] + "…"
        heading = " — ".join(x for x in (p.title, p.section) if x)
        # The tool result goes to clients too (tool steps): never a server path as the source.
        source = display_source(p.source)
        lines.append(f"[{i}] ({source}#{p.chunk}) {heading + ': ' if heading else ''}{text}")
    return "\n".join(lines)


def make_search_tool(
    memory: Memory | Callable[[], Memory] | None = None,
    *,
    namespace: str | None = None,
    k: int = 4,
    name: str = "search",
) -> BaseTool:
    """Build a ``search`` tool over ``memory``.

    ``memory`` is a :class:`~chatloom.memory.base.Memory`, a zero-argument factory for one, or
    ``None`` for ``chatloom.memory.open_memory(get_settings(), namespace=namespace)``. The store
    is opened on the first search, so building the tool is free and never fails.
    """
    lock = threading.Lock()
    holder: dict[str, Memory] = {}

    def get_memory() -> Memory:
        with lock:
            if "memory" not in holder:
                if memory is None:
                    from chatloom.config import get_settings
                    from chatloom.memory import open_memory  # heavy (chromadb), so only now

                    holder["memory"] = open_memory(get_settings(), namespace=namespace)
                elif callable(memory) and not hasattr(memory, "recall"):
                    holder["memory"] = memory()
                else:
                    holder["memory"] = memory  # type: ignore[assignment]
            return holder["memory"]

    def search(query: str) -> str:
        query = (query or "").strip()
        if not query:
            return "error: give a search query"
        try:
            passages = get_memory().recall(query, k=k, namespace=namespace)
        except ChatloomError as exc:
            return f"error: knowledge base search failed: {exc}"
        except ImportError as exc:
            return f"error: knowledge base search needs {exc.name}, which is not installed: {install_hint('memory')}"
        if not passages:
            # Reported as a failed step ("error: ..."): nothing found backs no answer, and the
            # agent leaves such steps out of the prompt for its last tools-free attempt.
            return (
                f"error: no passages in the knowledge base match {query!r}. "
                "(If the knowledge base is empty, add documents with `chatloom ingest DIR`.)"
            )
        return format_passages(list(passages))

    tool = StructuredTool.from_function(func=search, name=name, description=_DESCRIPTION)
    tool.metadata = {"effect": "read"}  # its output is retrieved text: untrusted data
    return tool


search = make_search_tool()
"""The built-in ``search`` tool over the default knowledge base."""
