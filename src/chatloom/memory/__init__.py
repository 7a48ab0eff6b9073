"""Memory: knowledge retrieval (Chroma vectors plus a BM25 keyword index) and conversation memory.

>>> from chatloom.config import get_settings                   # doctest: +SKIP
>>> from chatloom.memory import open_memory                     # doctest: +SKIP
>>> mem = open_memory(get_settings(), namespace="support")      # doctest: +SKIP
>>> mem.recall("refund policy", k=4)                            # doctest: +SKIP
[Passage(id='…', text='…', source='faq.md', title='FAQ', section='Refunds', chunk=0, score=1.0)]

Heavy dependencies (chromadb, onnxruntime) load only when memory is first used. Another store
plugs in as any :class:`Memory` object, or by name through a ``chatloom.memory`` entry point
(:func:`open_plugin_memory`, ``Agent(memory="name")``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatloom.memory.base import Memory, Passage

if TYPE_CHECKING:  # pragma: no cover
    from chatloom.memory.chroma import ChromaMemory

__all__ = ["PLUGIN_GROUP", "Memory", "Passage", "open_memory", "open_plugin_memory", "summarize_messages"]

PLUGIN_GROUP = "chatloom.memory"


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


def open_plugin_memory(name: str, settings: Any = None, namespace: str | None = None) -> Memory:
    """The memory that the installed ``chatloom.memory`` plugin called ``name`` provides.

    The entry point names a :class:`Memory` (an object with ``recall`` and ``remember``), or a
    class or factory that returns one; it gets ``settings`` and ``namespace`` when its signature
    declares them. A missing, broken or wrong plugin raises :class:`~chatloom.errors.PluginError`.
    """
    from chatloom import plugins
    from chatloom.errors import PluginError

    provided = plugins.load(PLUGIN_GROUP, name)
    plugin = plugins.discover(PLUGIN_GROUP)[name]
    # A class has recall and remember too, so the protocol check alone can't tell it from a store.
    if callable(provided) and (isinstance(provided, type) or not isinstance(provided, Memory)):
        found = plugins.declared_keywords(provided, settings=settings, namespace=namespace)
        provided = plugins.create(plugin, "memory", repr(name), provided, **found)
    if isinstance(provided, type) or not isinstance(provided, Memory):
        raise PluginError(
            f"memory plugin {plugin.label} ({plugin.value}) gave a {type(provided).__name__}, not a memory",
            "point the entry point at an object with recall() and remember() (chatloom.memory.Memory), "
            "or at a class or factory that returns one",
        )
    return provided


def summarize_messages(model: Any, messages: Any, max_tokens: int, **options: Any) -> Any:
    """Shorten a thread to fit ``max_tokens``; see :func:`chatloom.memory.conversation.summarize_messages`."""
    from chatloom.memory.conversation import summarize_messages as _impl

    return _impl(model, messages, max_tokens, **options)
