"""The knowledge-base ``search`` tool, against an in-memory fake of the Memory protocol."""

from __future__ import annotations

import pytest

from chatloom.errors import MemoryStoreError
from chatloom.memory.base import Memory, Passage
from chatloom.tools.search import format_passages, make_search_tool, search


class FakeMemory:
    """A tiny keyword 'retriever' that implements the Memory protocol."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.queries: list[tuple[str, int, str | None]] = []

    def recall(self, query, *, k=4, namespace=None, user_id=None, filters=None):
        self.queries.append((query, k, namespace))
        words = set(query.lower().split())
        hits = [p for p in self.passages if words & set(p.text.lower().split())]
        return hits[:k]

    def remember(self, *, user_id, thread_id, question, answer) -> None:
        pass


DOCS = [
    Passage(
        id="a",
        text="Refunds are paid within 5 business days.",
        source="faq.md",
        title="FAQ",
        section="Refunds",
        chunk=0,
    ),
    Passage(id="b", text="Shipping is free over 50 euros.\n\n  It takes 2 days.", source="docs/shipping.md", chunk=3),
    Passage(id="c", text="word " * 400, source="long.txt", chunk=1),
]


def test_fake_satisfies_the_memory_protocol() -> None:
    assert isinstance(FakeMemory([]), Memory)


def test_returns_numbered_cited_snippets() -> None:
    memory = FakeMemory(DOCS)
    tool = make_search_tool(memory, namespace="support", k=3)
    out = tool.invoke({"query": "refunds shipping"})
    assert out.splitlines() == [
        "[1] (faq.md#0) FAQ — Refunds: Refunds are paid within 5 business days.",
        "[2] (docs/shipping.md#3) Shipping is free over 50 euros. It takes 2 days.",
    ]
    assert memory.queries == [("refunds shipping", 3, "support")]


def test_long_passages_are_cut_to_a_snippet() -> None:
    out = format_passages([DOCS[2]], max_chars=50)
    assert out.startswith("[1] (long.txt#1) word word") and out.endswith("…") and len(out) < 80


def test_no_hits_and_empty_query_are_clear_messages() -> None:
    tool = make_search_tool(FakeMemory(DOCS))
    result = tool.invoke({"query": "quantum"})
    assert result.startswith("error: no passages in the knowledge base match 'quantum'")
    assert "chatloom ingest" in tool.invoke({"query": "quantum"})
    assert tool.invoke({"query": "  "}) == "error: give a search query"


def test_store_errors_become_tool_messages() -> None:
    class Broken(FakeMemory):
        def recall(self, query, **kwargs):
            raise MemoryStoreError("memory store at '/x' is corrupt", "run `chatloom memory rebuild`")

    out = make_search_tool(Broken([])).invoke({"query": "refunds"})
    assert out.startswith("error: knowledge base search failed: memory store at '/x' is corrupt")


def test_factory_is_called_once_lazily() -> None:
    calls = []

    def factory():
        calls.append(1)
        return FakeMemory(DOCS)

    tool = make_search_tool(factory)
    assert calls == []
    tool.invoke({"query": "refunds"})
    tool.invoke({"query": "shipping"})
    assert calls == [1]


def test_default_tool_opens_the_configured_memory(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import chatloom.memory as memory_pkg

    opened = []

    def fake_open(settings, namespace=None, **kwargs):
        opened.append((settings.home, namespace))
        return FakeMemory(DOCS)

    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path))
    monkeypatch.setattr(memory_pkg, "open_memory", fake_open)
    tool = make_search_tool(namespace="bot")
    assert "[1] (faq.md#0)" in tool.invoke({"query": "refunds"})
    assert opened == [(tmp_path, "bot")]


def test_builtin_tool_shape() -> None:
    assert search.name == "search" and search.metadata == {"effect": "read"}
    assert set(search.args) == {"query"}
