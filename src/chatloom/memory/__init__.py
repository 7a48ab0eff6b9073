"""Memory: knowledge retrieval (Chroma vectors plus a BM25 keyword index) and conversation memory.

>>> from chatloom.config import get_settings                   # doctest: +SKIP
>>> from chatloom.memory import open_memory                     # doctest: +SKIP
>>> mem = open_memory(get_settings(), namespace="support")      # doctest: +SKIP
>>> mem.recall("refund policy", k=4)                            # doctest: +SKIP
[Passage(id='…', text='…', source='/…/faq.md', title='FAQ', section='Refunds', chunk=0, score=1.0)]

Heavy dependencies (chromadb, onnxruntime) load only when memory is first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatloom.memory.base import Memory, Passage

if TYPE_CHECKING:  # pragma: no cover
    from chatloom.memory.chroma import ChromaMemory

__all__ = ["Memory", "Passage", "open_memory", "summarize_messages"]


def open_memory(
    settings: Any,
    namespace: str | None = None,
    tenant: str | None = None,
    embeddings: Any = None,
) -> ChromaMemory:
    """Open the memory that ``settings`` points at: ``<data dir>/memory`` or ``memory_url``.

    ``namespace`` (default ``"default"``) separates bots, ``tenant`` separates customers, and
    ``embeddings`` is any langchain-core ``Embeddings`` (default: the bundled all-MiniLM-L6-v2
    on onnxruntime). A corrupt store raises :class:`~chatloom.errors.MemoryStoreError`.
    """
    from chatloom.memory.chroma import ChromaMemory

    return ChromaMemory(settings, namespace=namespace, tenant=tenant, embeddings=embeddings)


def summarize_messages(model: Any, messages: Any, max_tokens: int, **options: Any) -> Any:
    """Shorten a thread to fit ``max_tokens``; see :func:`chatloom.memory.conversation.summarize_messages`."""
    from chatloom.memory.conversation import summarize_messages as _impl

    return _impl(model, messages, max_tokens, **options)
