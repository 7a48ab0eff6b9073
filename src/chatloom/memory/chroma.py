"""ChromaMemory: the :class:`~chatloom.memory.base.Memory` that chatloom ships.

Knowledge lives in namespaces (one per bot, say) inside tenants (one per customer); each
namespace is one Chroma collection (the vectors) plus its chunk rows in the index (SQLite, or
PostgreSQL with ``index_url``), from which its BM25 keyword index is built. Conversation memory of a
tenant lives in the namespace ``_conversations``, tagged with ``user_id``.
"""

from __future__ import annotations

import functools
import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chatloom.errors import MemoryStoreError
from chatloom.memory.base import Passage, display_source
from chatloom.memory.conversation import extract_facts
from chatloom.memory.search import Hit, Mode, Space, search
from chatloom.memory.store import (
    CONVERSATION_NAMESPACE,
    DEFAULT_TENANT,
    ChunkRow,
    Store,
    chunk_id,
    ns_key,
    open_store,
    write_session,
)


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an index failure found mid-operation (SQLite corruption, a PostgreSQL server gone
    away) into a clear MemoryStoreError."""

    @functools.wraps(method)
    def wrapper(self: ChromaMemory, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as exc:
            store = self._store
            if store is None:
                raise
            if store.connection_lost:
                # A lost PostgreSQL connection does not come back: reconnect on the next call.
                self.close()
            err = store.index_error(exc)
            if err is None:
                raise
            raise err from None

    return wrapper


class ChromaMemory:
    """Knowledge + conversation memory over Chroma and a BM25 keyword index (:mod:`chatloom.memory.keyword`).

    >>> from chatloom.config import get_settings                 # doctest: +SKIP
    >>> from chatloom.memory import open_memory                   # doctest: +SKIP
    >>> mem = open_memory(get_settings(), namespace="demo")       # doctest: +SKIP
    >>> mem.ingest(["memory/"]).summary()                         # doctest: +SKIP
    >>> [p.source for p in mem.recall("how do I install chatloom?")]  # doctest: +SKIP
    """

    def __init__(
        self,
        settings: Any,
        *,
        namespace: str | None = None,
        tenant: str | None = None,
        embeddings: Any = None,
        diversity: float = 0.15,
    ) -> None:
        self.settings = settings
        self.namespace = namespace or "default"
        self.tenant = tenant or DEFAULT_TENANT
        self.ns = ns_key(self.namespace, self.tenant)
        # None: each namespace uses the bundled model it was built with, and a new one gets the
        # model that suits its first text (see chatloom.memory.embeddings.choose_embeddings).
        self.embeddings = embeddings
        self.diversity = diversity
        self._store: Store | None = open_store(settings)  # fails fast on a corrupt index

    # -- plumbing --------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.settings)
        return self._store

    def close(self) -> None:
        """Release the store (the object reopens it if used again)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def _key(self, namespace: str | None) -> str:
        return ns_key(namespace, self.tenant) if namespace else self.ns

    @property
    def embeddings_name(self) -> str:
        """The name of the embeddings of this memory's namespace (recorded with the store)."""
        return self.embedder(self.ns)[1]

    def matches_across_languages(self, namespace: str | None = None) -> bool:
        """Whether a question here finds passages in another language by their meaning: true for
        a multilingual model (multilingual-e5) and for embeddings chatloom doesn't know, false
        for the English-only MiniLM, whose "matches" for a Korean question are noise."""
        from chatloom.memory.embeddings import ENGLISH_ONLY

        return self.embedder(self._key(namespace))[1] not in ENGLISH_ONLY

    def embedder(self, ns: str, sample: list[str] | None = None) -> tuple[Any, str]:
        """(embeddings, name) for namespace key ``ns``.

        The embeddings given to the constructor, else the bundled model ``ns`` was built with,
        else (a new namespace) the one :func:`~chatloom.memory.embeddings.choose_embeddings`
        picks for ``sample``, the first texts to be written.
        """
        from chatloom.memory.embeddings import (
            ENGLISH_DEFAULT,
            builtin_embeddings,
            choose_embeddings,
            embeddings_id,
        )

        if self.embeddings is not None:
            return self.embeddings, embeddings_id(self.embeddings)
        name = self.store.namespace_embeddings(ns)
        if name is None:
            name = choose_embeddings(sample) if sample else ENGLISH_DEFAULT
        emb = builtin_embeddings(name, Path(self.settings.data_dir()))
        if emb is None:
            raise MemoryStoreError(
                f"namespace {ns!r} was built with embeddings {name!r}, which chatloom does not bundle",
                "open it with open_memory(settings, embeddings=<that model>), "
                f"or re-ingest it: chatloom memory forget --namespace {ns.split('/', 1)[1]}",
            )
        return emb, name

    def _embed_fn(self, emb: Any) -> Callable[[list[str]], Any]:
        from chatloom.memory.embeddings import embed_array

        return lambda texts: embed_array(emb, texts)

    # -- Memory protocol -------------------------------------------------------------------
    @_guard
    def recall(
        self,
        query: str,
        *,
        k: int = 4,
        namespace: str | None = None,
        user_id: str | None = None,
        filters: dict | None = None,
    ) -> list[Passage]:
        """Up to ``k`` passages for ``query``: hybrid search + MMR, best first.

        With ``user_id``, that user's conversation memories (facts, summaries, earlier turns)
        compete in the same ranking as the knowledge chunks. ``filters`` are equality (or list
        membership) tests on metadata: ``{"source": "/abs/path.md"}`` (the path as ingested),
        ``{"name": "hr/leave.md"}`` (the passage's ``source``), ``{"section": [...]}``.
        """
        return self.search(query, k=k, namespace=namespace, user_id=user_id, filters=filters)

    @_guard
    def search(
        self,
        query: str,
        *,
        k: int = 4,
        namespace: str | None = None,
        user_id: str | None = None,
        filters: dict | None = None,
        mode: Mode = "hybrid",
        diversity: float | None = None,
    ) -> list[Passage]:
        """Like :meth:`recall`, with the search ``mode`` and MMR ``diversity`` exposed."""
        if not query or not query.strip():
            return []
        spaces = [Space(self._key(namespace), filters)]
        if user_id is not None:
            conv = ns_key(CONVERSATION_NAMESPACE, self.tenant)
            spaces.append(Space(conv, {**(filters or {}), "user_id": user_id}))
        store = self.store
        store.ensure_fresh()
        store.client  # noqa: B018 - a dead server or corrupt store is an error, not "no results"
        spaces = self._with_models(spaces, query if mode != "keyword" else None)
        hits = search(
            store,
            spaces,
            query,
            k=k,
            mode=mode,
            diversity=self.diversity if diversity is None else diversity,
        )
        return [_passage(h) for h in hits]

    def _with_models(self, spaces: list[Space], query: str | None) -> list[Space]:
        """Each space with its model's name and, given a ``query``, the query embedded by that
        model (once per model)."""
        from chatloom.memory.embeddings import embed_query_array

        out, qvecs = [], {}
        for sp in spaces:
            if self.embeddings is None and self.store.namespace_embeddings(sp.ns) is None:
                out.append(sp)  # nothing stored there yet: don't load a model for it
                continue
            emb, name = self.embedder(sp.ns)
            if query is not None and name not in qvecs:
                qvecs[name] = embed_query_array(emb, query)
            out.append(Space(sp.ns, sp.filters, name, qvecs.get(name)))
        return out

    @_guard
    def remember(self, *, user_id: str | None, thread_id: str, question: str, answer: str) -> None:
        """Keep lasting facts the user stated, and the exchange itself, for later threads.

        Nothing is stored without a ``user_id``: conversation memory is always per user.
        """
        if user_id is None:
            return
        items = [("fact", f"The user said: {fact}") for fact in extract_facts(question)]
        q, a = question.strip()[:1000], answer.strip()[:1500]
        if q and a:
            items.append(("turn", f"Earlier the user asked: {q}\nThe assistant answered: {a}"))
        self._remember_items(user_id, thread_id, items)

    @_guard
    def remember_summary(self, *, user_id: str | None, thread_id: str, summary: str) -> None:
        """Store a thread summary (e.g. from ``summarize_text``) as one conversation memory."""
        if user_id is None or not summary.strip():
            return
        self._remember_items(
            user_id, thread_id, [("summary", f"Summary of an earlier conversation: {summary.strip()}")]
        )

    def _remember_items(self, user_id: str, thread_id: str, items: list[tuple[str, str]]) -> None:
        if not items:
            return
        ns = ns_key(CONVERSATION_NAMESPACE, self.tenant)
        # One "source" per user+thread+turn, so turns accumulate and forget() can drop a user.
        stamp = hashlib.sha1(f"{time.time_ns()}".encode()).hexdigest()[:8]
        source = f"conversation:{user_id}:{thread_id}:{stamp}"
        rows = [
            ChunkRow(
                chunk_id(ns, f"{user_id}\x00{text}"),
                ns,
                text,
                source,
                title=f"conversation {thread_id}",
                section=kind,
                chunk=i,
                kind=kind,
                user_id=user_id,
                meta={"thread_id": thread_id, "at": time.time()},
            )
            for i, (kind, text) in enumerate(items)
        ]
        with write_session(self.settings, self.store) as store:
            emb, name = self.embedder(ns, [r.text for r in rows])
            embed = self._embed_fn(emb)
            store.replace_source(ns, source, rows, lambda new: embed([r.text for r in new]), name, None)

    # -- knowledge management --------------------------------------------------------------
    @_guard
    def ingest(
        self,
        paths: Iterable[str | Path],
        *,
        namespace: str | None = None,
        progress: Any = None,
        name: str | None = None,
    ) -> Any:
        """Ingest files/folders into ``namespace`` (default: this memory's); an IngestReport.

        Passages name each file by its path under the folder given, or by ``name`` (one path
        only): the file's name, or the folder's, before its files' paths.
        """
        from chatloom.memory.ingest import ingest_paths, sample_texts, source_names

        key = self._key(namespace)
        paths = list(paths)
        if name is not None:
            source_names([], [], name=name, paths=paths)  # a bad name fails before the write lock
        with write_session(self.settings, self.store) as store:
            new = self.embeddings is None and store.namespace_embeddings(key) is None
            emb, emb_name = self.embedder(key, sample_texts(paths) if new else None)
            return ingest_paths(
                store,
                key,
                paths,
                embed=self._embed_fn(emb),
                embeddings_name=emb_name,
                progress=progress,
                max_file_bytes=int(self.settings.ingest_max_file_mb * (1 << 20)),
                name=name,
            )

    @_guard
    def forget(self, source: str | None = None, *, namespace: str | None = None, user_id: str | None = None) -> int:
        """Remove one source, one user's conversation memory, or a whole namespace.

        Returns the number of chunks removed. ``forget(namespace="x")`` drops namespace x.
        """
        with write_session(self.settings, self.store) as store:
            if user_id is not None:
                ns = ns_key(CONVERSATION_NAMESPACE, self.tenant)
                # By the chunks' user_id, not a source prefix: a LIKE pattern would read "%" and
                # "_" in a user id as wildcards, and user "a" would match user "a:b"'s sources.
                sources = [
                    s
                    for (s,) in store.db.execute(
                        "SELECT DISTINCT r.source FROM refs r JOIN chunks c ON c.id = r.chunk_id"
                        " WHERE r.ns=? AND c.user_id=?",
                        (ns, user_id),
                    )
                ]
                return sum(store.remove_source(ns, s) for s in sources)
            key = self._key(namespace)
            if source is None:
                if namespace is None:
                    raise MemoryStoreError(
                        "forget needs a source, a namespace or a user_id", "e.g. chatloom memory forget docs/old.md"
                    )
                return store.drop_namespace(key)
            matches = _match_sources(store, key, source)
            if not matches:
                raise MemoryStoreError(
                    f"no source {source!r} in namespace {key!r}",
                    "see `chatloom memory list` for the ingested sources",
                )
            return sum(store.remove_source(key, s) for s in matches)

    @_guard
    def has_knowledge(self, namespace: str | None = None) -> bool:
        """Whether anything has been ingested into the namespace."""
        return self.store.has_chunks(self._key(namespace))

    @_guard
    def sources(self, namespace: str | None = None) -> list[tuple[str, int, float]]:
        """(source, chunks, ingested-at) of every file in the namespace."""
        return self.store.files(self._key(namespace))

    @_guard
    def namespaces(self) -> list[tuple[str, int, int]]:
        """(tenant/namespace, files, chunks) for every namespace in the store."""
        return self.store.namespaces()


def _match_sources(store: Store, key: str, source: str) -> list[str]:
    known = [s for (s,) in store.db.execute("SELECT DISTINCT source FROM refs WHERE ns=?", (key,))]
    if source in known:
        return [source]
    absolute = str(Path(source).expanduser().absolute())
    if absolute in known:
        return [absolute]
    prefix = absolute.rstrip("/") + "/"
    return [s for s in known if s.startswith(prefix)]  # a folder: everything under it


def _passage(hit: Hit) -> Passage:
    r = hit.row
    # The name under the ingest folder, recorded at ingest; a store ingested before names were
    # recorded has only the absolute path, shown as its file name.
    name = (r.meta or {}).get("name")
    return Passage(
        id=r.id,
        text=r.text,
        source=str(name) if name else display_source(r.source),
        title=r.title,
        section=r.section,
        chunk=r.chunk,
        score=round(float(hit.score), 6),
    )
