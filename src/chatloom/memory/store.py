"""Where memory lives: Chroma for vectors, a SQLite file beside it for everything else.

Layout in ``<data dir>/memory/``::

    chroma/          the embedded Chroma store (PersistentClient), one collection per namespace
    index.sqlite     chunk rows + per-namespace file manifest + journal (the truth)
    bm25/            one keyword index per namespace (bm25s; a cache rebuilt from index.sqlite)
    .write.lock      held by whoever writes (ingest, forget, remember)

The SQLite index is the source of truth for *which chunks exist*: a vector hit whose id is not
in ``chunks`` is ignored. Writes go "journal -> Chroma -> SQLite commit -> Chroma cleanup", so a
kill at any point leaves a store that reads consistently, and the next writer finishes the
cleanup (see :meth:`Store.recover`). With ``memory_url`` set, vectors go to a Chroma server and
the index file is ``index-<hash of url>.sqlite``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from chatloom.errors import MemoryStoreError

DEFAULT_TENANT = "default"
DEFAULT_NAMESPACE = "default"
CONVERSATION_NAMESPACE = "_conversations"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_LOCK_TIMEOUT_S = 600

_SCHEMA = """
PRAGMA journal_mode=WAL;
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS namespaces(
    ns TEXT PRIMARY KEY, collection TEXT NOT NULL, embeddings TEXT NOT NULL, created REAL);
CREATE TABLE IF NOT EXISTS chunks(
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    ns TEXT NOT NULL,
    text TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT '',
    title TEXT NOT NULL DEFAULT '',
    section TEXT NOT NULL DEFAULT '',
    chunk INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'doc',
    user_id TEXT,
    meta TEXT);
CREATE INDEX IF NOT EXISTS chunks_ns ON chunks(ns, source);
-- Bumped by every write to a namespace; keyword indexes are stamped with it.
CREATE TABLE IF NOT EXISTS ns_versions(ns TEXT PRIMARY KEY, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS files(
    ns TEXT NOT NULL, source TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER, mtime REAL,
    n_chunks INTEGER, ingested REAL, PRIMARY KEY(ns, source));
CREATE TABLE IF NOT EXISTS refs(
    ns TEXT NOT NULL, source TEXT NOT NULL, chunk_id TEXT NOT NULL,
    PRIMARY KEY(ns, source, chunk_id));
CREATE INDEX IF NOT EXISTS refs_chunk ON refs(chunk_id);
-- Chroma ids that may exist in Chroma but must go unless a committed chunk row claims them.
CREATE TABLE IF NOT EXISTS limbo(ns TEXT NOT NULL, chunk_id TEXT NOT NULL);
"""


@dataclass(frozen=True)
class ChunkRow:
    """One chunk as stored (``id`` is the Chroma id, a content hash within the namespace)."""

    id: str
    ns: str
    text: str
    source: str
    title: str = ""
    section: str = ""
    chunk: int = 0
    kind: str = "doc"
    user_id: str | None = None
    meta: dict | None = None

    def chroma_metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = {
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "chunk": self.chunk,
            "kind": self.kind,
        }
        if self.user_id is not None:
            md["user_id"] = self.user_id
        for key, value in (self.meta or {}).items():
            if isinstance(value, (str, int, float, bool)):
                md.setdefault(key, value)
        return md


def ns_key(namespace: str | None, tenant: str | None) -> str:
    """The internal key of a namespace: ``<tenant>/<namespace>``."""
    namespace = namespace or DEFAULT_NAMESPACE
    tenant = tenant or DEFAULT_TENANT
    for label, value in (("namespace", namespace), ("tenant", tenant)):
        if "/" in value or not value.strip():
            raise MemoryStoreError(
                f"{label} {value!r} is not allowed", f"use a {label} without '/' and not blank"
            )
    return f"{tenant}/{namespace}"


def chunk_id(ns: str, text: str) -> str:
    """Content hash id of a chunk: identical text in one namespace is stored once."""
    return hashlib.sha256(f"{ns}\x00{text}".encode()).hexdigest()[:32]


def _collection_name(ns: str) -> str:
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", ns).strip("-._")[:40] or "ns"
    return f"cl-{slug}-{hashlib.sha1(ns.encode()).hexdigest()[:8]}"


def sqlite_open_lock(path: Path, timeout: float) -> Any:
    """The file lock to hold while opening (and setting up) the SQLite file ``path``.

    Switching a new file to WAL takes a lock that SQLite does not wait for, busy timeout or
    not, so two processes opening a new store at once made one fail with "database is locked"
    (test_thread_lock, test_two_processes_ingesting_at_once_lose_nothing). Held, it lets one
    opener at a time through, across threads and processes; acquiring it past ``timeout``
    raises ``filelock.Timeout``.
    """
    from filelock import FileLock

    return FileLock(f"{path}.open.lock", timeout=timeout)


def _check_sqlite_file(path: Path, what: str) -> None:
    if not path.exists():
        return
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise MemoryStoreError(
            f"{what} {str(path)!r} can't be read ({exc.strerror or exc})",
            "check its permissions",
        ) from None
    if head and head != _SQLITE_MAGIC:
        raise _corrupt(path, what, "not an SQLite database")


def _corrupt(path: Path, what: str, detail: str) -> MemoryStoreError:
    return MemoryStoreError(
        f"{what} {str(path)!r} is corrupt ({detail}); nothing was changed",
        f"move it aside (e.g. mv {path} {path}.broken) and re-run `chatloom ingest`, "
        "or restore it from a backup",
    )


class Store:
    """One memory store: a Chroma client plus the SQLite index. Open with :func:`open_store`."""

    def __init__(self, root: Path, memory_url: str | None = None) -> None:
        self.root = root
        self.memory_url = memory_url
        if memory_url:
            tag = hashlib.sha1(memory_url.encode()).hexdigest()[:10]
            self.index_path = root / f"index-{tag}.sqlite"
        else:
            self.index_path = root / "index.sqlite"
        self.chroma_path = root / "chroma"
        self._client: Any = None
        self._chroma_gen = -1
        self._collections: dict[str, Any] = {}
        self._keyword: dict[str, Any] = {}
        self.touched: set[str] = set()
        self.db = self._open_index()

    # -- SQLite index ----------------------------------------------------------------------
    def _open_index(self) -> sqlite3.Connection:
        from filelock import Timeout

        _check_sqlite_file(self.index_path, "memory index")
        try:
            with sqlite_open_lock(self.index_path, timeout=_LOCK_TIMEOUT_S):
                db = sqlite3.connect(self.index_path, timeout=60, isolation_level=None,
                                     check_same_thread=False)
                db.execute("PRAGMA busy_timeout=60000")
                db.executescript(_SCHEMA)
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("SELECT count(*) FROM meta").fetchone()
        except Timeout:
            raise MemoryStoreError(
                f"memory index {str(self.index_path)!r} has been opened by another process "
                f"for over {_LOCK_TIMEOUT_S} s",
                "check for a hung chatloom process, then retry",
            ) from None
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise MemoryStoreError(
                    f"memory index {str(self.index_path)!r} is busy ({exc}); nothing was changed",
                    "another process holds it: retry when it has finished",
                ) from None
            raise _corrupt(self.index_path, "memory index", str(exc)) from None
        except sqlite3.DatabaseError as exc:
            raise _corrupt(self.index_path, "memory index", str(exc)) from None
        return db

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction on the index; rolled back on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
            # Every commit bumps the generation, so readers know their Chroma view is stale.
            self.db.execute(
                "INSERT INTO meta VALUES ('generation', 1) ON CONFLICT(key) DO UPDATE"
                " SET value = CAST(value AS INTEGER) + 1"
            )
            gen = self._generation()
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")
            if self._client is not None:
                self._chroma_gen = gen

    def _generation(self) -> int:
        row = self.db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def ensure_fresh(self) -> None:
        """Reopen Chroma if another writer committed since we opened it.

        The embedded Chroma keeps index state in memory; after someone else's write it must be
        reopened, both to see the new chunks and so that we never write from a stale view.
        """
        if self._client is not None and not self.memory_url:
            if self._generation() != self._chroma_gen:
                self.close_chroma()

    # -- Chroma ----------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        if self._client is None:
            gen = self._generation()
            self._client = self._open_chroma()
            self._chroma_gen = gen
        return self._client

    def _open_chroma(self) -> Any:
        try:
            import chromadb
            from chromadb.config import Settings as ChromaSettings
        except ImportError:
            raise MemoryStoreError(
                "memory needs chromadb", "pip install chromadb  (or pip install 'chatloom[memory]')"
            ) from None
        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if self.memory_url:
            url = urlparse(self.memory_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise MemoryStoreError(
                    f"memory_url {self.memory_url!r} is not an http(s)://host:port URL",
                    "set CHATLOOM_MEMORY_URL=http://127.0.0.1:8000 or unset it",
                )
            try:
                client = chromadb.HttpClient(
                    host=url.hostname,
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    settings=chroma_settings,
                )
                client.heartbeat()
            except Exception as exc:
                raise MemoryStoreError(
                    f"can't reach the Chroma server at {self.memory_url!r} ({type(exc).__name__})",
                    "start it with `chroma run --host 127.0.0.1 --port 8000 --path DIR` "
                    "or unset memory_url to use the embedded store",
                ) from None
            return client
        sqlite_file = self.chroma_path / "chroma.sqlite3"
        _check_sqlite_file(sqlite_file, "Chroma store")
        self.chroma_path.mkdir(parents=True, exist_ok=True)
        try:
            client = chromadb.PersistentClient(path=str(self.chroma_path), settings=chroma_settings)
            client.list_collections(limit=1)
        except Exception as exc:
            raise _corrupt(self.chroma_path, "Chroma store", f"{type(exc).__name__}: {exc}") from None
        return client

    def close_chroma(self) -> None:
        """Release the Chroma client; the next use opens it again from disk."""
        if self._client is not None and not self.memory_url:
            with contextlib.suppress(Exception):
                from chromadb.api.client import SharedSystemClient

                SharedSystemClient.clear_system_cache()
        self._client = None
        self._collections.clear()

    def close(self) -> None:
        """Release the Chroma client (so another process can write) and the index."""
        self.close_chroma()
        with contextlib.suppress(Exception):
            self.db.close()

    def collection(self, ns: str, embeddings_name: str, *, create: bool) -> Any | None:
        """The Chroma collection of ``ns`` (created on first write), or None if it has none."""
        if ns in self._collections:
            return self._collections[ns]
        row = self.db.execute(
            "SELECT collection, embeddings FROM namespaces WHERE ns=?", (ns,)
        ).fetchone()
        if row and row[1] != embeddings_name:
            raise MemoryStoreError(
                f"namespace {ns!r} was built with embeddings {row[1]!r}, not {embeddings_name!r}",
                "use the same embeddings, or ingest into a new namespace",
            )
        if not row and not create:
            return None
        name = row[0] if row else _collection_name(ns)
        from chatloom.memory.embeddings import chroma_embedding_function

        ef = chroma_embedding_function(_NoEmbeddings(embeddings_name))
        try:
            col = self.client.get_or_create_collection(
                name=name,
                embedding_function=ef,
                metadata={"hnsw:space": "cosine", "chatloom_ns": ns},
            )
        except Exception as exc:
            raise MemoryStoreError(
                f"can't open the memory collection for namespace {ns!r} ({type(exc).__name__}: {exc})",
                "check the Chroma store; see `chatloom memory list`",
            ) from None
        if not row:
            with self.transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO namespaces VALUES (?,?,?,?)",
                    (ns, name, embeddings_name, time.time()),
                )
        self._collections[ns] = col
        return col

    # -- write path ------------------------------------------------------------------------
    def recover(self, ns: str | None = None) -> int:
        """Finish an interrupted write: drop Chroma ids that no committed chunk row claims."""
        where, args = ("WHERE ns=?", (ns,)) if ns else ("", ())
        rows = self.db.execute(
            f"SELECT DISTINCT ns, chunk_id FROM limbo {where}", args
        ).fetchall()
        if not rows:
            return 0
        by_ns: dict[str, list[str]] = {}
        for row_ns, cid in rows:
            alive = self.db.execute("SELECT 1 FROM chunks WHERE id=?", (cid,)).fetchone()
            if not alive:
                by_ns.setdefault(row_ns, []).append(cid)
        for row_ns, ids in by_ns.items():
            emb = self.db.execute(
                "SELECT embeddings FROM namespaces WHERE ns=?", (row_ns,)
            ).fetchone()
            col = self.collection(row_ns, emb[0], create=False) if emb else None
            if col is not None:
                for start in range(0, len(ids), 5000):
                    col.delete(ids=ids[start : start + 5000])
        with self.transaction() as db:
            db.execute(f"DELETE FROM limbo {where}", args)
        return sum(len(v) for v in by_ns.values())

    def replace_source(
        self,
        ns: str,
        source: str,
        rows: Sequence[ChunkRow],
        embed: Callable[[list[ChunkRow]], Any],
        embeddings_name: str,
        file_info: dict | None,
    ) -> tuple[int, int, int]:
        """Make ``source`` in ``ns`` consist of exactly ``rows``; see :meth:`replace_sources`."""
        return self.replace_sources(ns, [(source, rows, file_info)], embed, embeddings_name)[0]

    def replace_sources(
        self,
        ns: str,
        items: Sequence[tuple[str, Sequence[ChunkRow], dict | None]],
        embed: Callable[[list[ChunkRow]], Any],
        embeddings_name: str,
    ) -> list[tuple[int, int, int]]:
        """Make each (source, rows, file_info) in ``ns`` consist of exactly its rows, atomically.

        Returns (chunks added, chunks removed, chunks already stored) per item. ``embed(rows)``
        returns one vector per row and is called only for text new to the namespace (chunks are
        deduplicated by content hash). ``file_info`` ({sha256, size, mtime}) becomes the
        manifest entry, written in the same transaction as the rows: after the vectors, so a
        file is only ever marked done once all of it is stored. Caller holds the write lock.
        """
        col = self.collection(ns, embeddings_name, create=True)
        all_rows = [r for _, rows, _ in items for r in rows]
        fresh = self.new_ids(ns, [r.id for r in all_rows])
        seen: set[str] = set()
        new_rows = [r for r in all_rows if r.id in fresh and not (r.id in seen or seen.add(r.id))]
        if new_rows:
            vectors = embed(new_rows)
            # 1. journal the ids we are about to put into Chroma
            with self.transaction() as db:
                db.executemany("INSERT INTO limbo VALUES (?,?)", [(ns, r.id) for r in new_rows])
            # 2. vectors into Chroma
            for start in range(0, len(new_rows), 2000):
                part = new_rows[start : start + 2000]
                col.upsert(
                    ids=[r.id for r in part],
                    embeddings=vectors[start : start + len(part)],
                    metadatas=[r.chroma_metadata() for r in part],
                    documents=[r.text for r in part],
                )
        # 3. the commit point: rows, refs and manifest in one transaction
        claimed: dict[str, int] = {}
        for r in new_rows:
            claimed[r.source] = claimed.get(r.source, 0) + 1
        stats = []
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO chunks(id, ns, text, source, title, section, chunk, kind,"
                " user_id, meta) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(r.id, r.ns, r.text, r.source, r.title, r.section, r.chunk, r.kind, r.user_id,
                  json.dumps(r.meta) if r.meta else None) for r in new_rows],
            )
            dropped_candidates: dict[str, set[str]] = {}
            for source, rows, file_info in items:
                old = {c for (c,) in db.execute(
                    "SELECT chunk_id FROM refs WHERE ns=? AND source=?", (ns, source))}
                db.execute("DELETE FROM refs WHERE ns=? AND source=?", (ns, source))
                db.executemany("INSERT OR IGNORE INTO refs VALUES (?,?,?)",
                               [(ns, source, r.id) for r in rows])
                dropped_candidates[source] = old - {r.id for r in rows}
                if file_info is not None:
                    db.execute(
                        "INSERT OR REPLACE INTO files VALUES (?,?,?,?,?,?,?)",
                        (ns, source, file_info["sha256"], file_info["size"], file_info["mtime"],
                         len(rows), time.time()),
                    )
            # Orphans only after every item's refs are in: text may move between files.
            for source, rows, _ in items:
                removed = self._drop_orphans(db, ns, dropped_candidates[source])
                added = claimed.get(source, 0)
                stats.append((added, removed, len(rows) - added))
            db.execute("DELETE FROM limbo WHERE ns=? AND chunk_id IN (SELECT id FROM chunks)", (ns,))
            self._bump(db, ns)
        # 4. cleanup in Chroma (re-done by recover() if we die here)
        self.recover(ns)
        return stats

    def _bump(self, db: sqlite3.Connection, ns: str) -> None:
        db.execute(
            "INSERT INTO ns_versions VALUES (?, 1) ON CONFLICT(ns) DO UPDATE SET version=version+1",
            (ns,),
        )
        self.touched.add(ns)

    def _drop_orphans(self, db: sqlite3.Connection, ns: str, candidates: Iterable[str]) -> int:
        dropped = 0
        for cid in candidates:
            if db.execute("SELECT 1 FROM refs WHERE chunk_id=? LIMIT 1", (cid,)).fetchone():
                continue  # another file still has this exact text
            db.execute("DELETE FROM chunks WHERE id=?", (cid,))
            db.execute("INSERT INTO limbo VALUES (?,?)", (ns, cid))
            dropped += 1
        return dropped

    def remove_source(self, ns: str, source: str) -> int:
        """Remove one source (file) from ``ns``; returns the number of chunks deleted."""
        with self.transaction() as db:
            old = [c for (c,) in db.execute(
                "SELECT chunk_id FROM refs WHERE ns=? AND source=?", (ns, source))]
            db.execute("DELETE FROM refs WHERE ns=? AND source=?", (ns, source))
            db.execute("DELETE FROM files WHERE ns=? AND source=?", (ns, source))
            removed = self._drop_orphans(db, ns, old)
            self._bump(db, ns)
        self.recover(ns)
        return removed

    def drop_namespace(self, ns: str) -> int:
        """Delete a whole namespace: its collection, rows, refs and manifest."""
        row = self.db.execute("SELECT collection FROM namespaces WHERE ns=?", (ns,)).fetchone()
        n = self.db.execute("SELECT count(*) FROM chunks WHERE ns=?", (ns,)).fetchone()[0]
        with self.transaction() as db:
            for table in ("chunks", "refs", "files", "limbo", "namespaces"):
                db.execute(f"DELETE FROM {table} WHERE ns=?", (ns,))
            self._bump(db, ns)
        if row:
            with contextlib.suppress(Exception):
                self.client.delete_collection(row[0])
        self._collections.pop(ns, None)
        return n

    def new_ids(self, ns: str, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` that no committed chunk row has yet."""
        have: set[str] = set()
        uniq = list(dict.fromkeys(ids))
        for start in range(0, len(uniq), 500):
            part = uniq[start : start + 500]
            marks = ",".join("?" * len(part))
            have.update(c for (c,) in self.db.execute(
                f"SELECT id FROM chunks WHERE id IN ({marks})", part))
        return set(uniq) - have

    # -- read path -------------------------------------------------------------------------
    def rows_by_id(self, ids: Sequence[str]) -> dict[str, ChunkRow]:
        out: dict[str, ChunkRow] = {}
        uniq = list(dict.fromkeys(ids))
        for start in range(0, len(uniq), 500):
            part = uniq[start : start + 500]
            marks = ",".join("?" * len(part))
            for row in self.db.execute(
                "SELECT id, ns, text, source, title, section, chunk, kind, user_id, meta"
                f" FROM chunks WHERE id IN ({marks})", part):
                out[row[0]] = ChunkRow(*row[:9], meta=json.loads(row[9]) if row[9] else None)
        return out

    def rowids_to_ids(self, rowids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for start in range(0, len(rowids), 500):
            part = list(rowids[start : start + 500])
            marks = ",".join("?" * len(part))
            out.update(self.db.execute(f"SELECT rowid, id FROM chunks WHERE rowid IN ({marks})", part))
        return out

    def namespace_embeddings(self, ns: str) -> str | None:
        """The name of the embeddings ``ns`` was built with, or None for a new namespace."""
        row = self.db.execute("SELECT embeddings FROM namespaces WHERE ns=?", (ns,)).fetchone()
        return row[0] if row else None

    def ns_version(self, ns: str) -> int:
        row = self.db.execute("SELECT version FROM ns_versions WHERE ns=?", (ns,)).fetchone()
        return int(row[0]) if row else 0

    def _keyword_path(self, ns: str) -> Path:
        tag = hashlib.sha1(f"{self.index_path.name}\x00{ns}".encode()).hexdigest()[:16]
        return self.root / "bm25" / tag

    def keyword_index(self, ns: str, *, rebuild: bool = False) -> Any:
        """The namespace's BM25 index, current with the index file (rebuilt if stale)."""
        from chatloom.memory import keyword

        version = self.ns_version(ns)
        idx = self._keyword.get(ns)
        if idx is not None and idx.version == version and not rebuild:
            return idx
        path = self._keyword_path(ns)
        idx = None if rebuild else keyword.load(path)
        if idx is None or idx.version != version:
            rows = self.db.execute(
                "SELECT rowid, title || ' ' || section || ' ' || text FROM chunks WHERE ns=?", (ns,)
            ).fetchall()
            idx = keyword.build(rows, version, path)
        self._keyword[ns] = idx
        return idx

    def namespaces(self) -> list[tuple[str, int, int]]:
        """(namespace key, files, chunks) for every namespace, sorted."""
        return [tuple(r) for r in self.db.execute(
            "SELECT n.ns, (SELECT count(*) FROM files f WHERE f.ns=n.ns),"
            " (SELECT count(*) FROM chunks c WHERE c.ns=n.ns) FROM namespaces n ORDER BY n.ns")]

    def has_chunks(self, ns: str) -> bool:
        """Whether ``ns`` holds anything (one indexed lookup, cheap enough for every turn)."""
        return self.db.execute("SELECT 1 FROM chunks WHERE ns=? LIMIT 1", (ns,)).fetchone() is not None

    def files(self, ns: str) -> list[tuple[str, int, float]]:
        """(source, chunks, ingested time) of every file in ``ns``."""
        return [tuple(r) for r in self.db.execute(
            "SELECT source, n_chunks, ingested FROM files WHERE ns=? ORDER BY source", (ns,))]

    def manifest(self, ns: str) -> dict[str, tuple[str, int, float]]:
        """source -> (sha256, size, mtime) of every ingested file in ``ns``."""
        return {s: (h, size, mt) for s, h, size, mt in self.db.execute(
            "SELECT source, sha256, size, mtime FROM files WHERE ns=?", (ns,))}


class _NoEmbeddings:
    """Stands in for the real embeddings inside the Chroma adapter: chatloom always passes
    vectors itself, so Chroma must never need to embed anything on its own."""

    def __init__(self, name: str) -> None:
        self.model = name

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise MemoryStoreError("Chroma asked to embed text itself", "pass vectors explicitly")

    embed_query = embed_documents  # type: ignore[assignment]


def memory_root(settings: Any) -> Path:
    """``<data dir>/memory``, created."""
    root = Path(settings.data_dir()) / "memory"
    root.mkdir(parents=True, exist_ok=True)
    return root


def open_store(settings: Any) -> Store:
    """Open the store that ``settings`` points at (embedded, or a Chroma server)."""
    return Store(memory_root(settings), getattr(settings, "memory_url", None))


@contextlib.contextmanager
def write_session(settings: Any, store: Store | None = None) -> Iterator[Store]:
    """Hold the store's write lock and a freshly opened store for the whole block.

    Chroma's embedded store is not safe for two writing processes, so every writer works on a
    client that is fresh *inside* the lock: a new store (closed again at the end), or the given
    ``store`` reopened if anyone else wrote since it was opened. The lock is an OS file lock: a
    killed writer releases it automatically.
    """
    from filelock import FileLock, Timeout

    root = memory_root(settings)
    lock = FileLock(str(root / ".write.lock"), timeout=_LOCK_TIMEOUT_S)
    try:
        lock.acquire()
    except Timeout:
        raise MemoryStoreError(
            f"another process has held the memory write lock {str(root / '.write.lock')!r} "
            f"for {_LOCK_TIMEOUT_S} s",
            "wait for the other `chatloom ingest` to finish, then retry",
        ) from None
    own = store is None
    try:
        if store is None:
            store = open_store(settings)
        store.ensure_fresh()
        store.client  # noqa: B018 - open (and so validate) Chroma before any write
        store.recover()
        store.touched.clear()
        yield store
        for ns in sorted(store.touched):  # readers then find fresh keyword indexes
            if not ns.endswith("/" + CONVERSATION_NAMESPACE):  # searched per user: no index
                store.keyword_index(ns)
        store.touched.clear()
    finally:
        if own and store is not None:
            store.close()
        lock.release()
