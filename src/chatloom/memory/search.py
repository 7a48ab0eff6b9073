"""Hybrid retrieval: vector (Chroma) + keyword (language-aware BM25), rank fusion, MMR.

A *space* is one namespace plus optional metadata filters; a search can span several spaces
(e.g. the bot's knowledge and one user's conversation memory) and merges them into one ranking.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from chatloom.errors import ChatloomError, MemoryStoreError
from chatloom.memory.store import ChunkRow, Store

Mode = Literal["hybrid", "vector", "keyword"]
RRF_K = 60
SMALL_SET = 900  # filtered searches over at most this many rows skip the namespace index
_COLUMNS = {"source", "title", "section", "chunk", "kind", "user_id"}


@dataclass(frozen=True)
class Space:
    """One namespace key (``tenant/namespace``) and the metadata filters that apply in it.

    ``embeddings`` and ``qvec`` are the namespace's own embedding model and the query embedded
    with it, when they differ from the search's defaults (namespaces choose their model).
    """

    ns: str
    filters: dict | None = None
    embeddings: str = ""
    qvec: Any = field(default=None, compare=False)


@dataclass(frozen=True)
class Hit:
    row: ChunkRow
    score: float
    vector_rank: int | None = None
    keyword_rank: int | None = None


def _sql_filters(store: Store, filters: dict | None) -> tuple[str, list[Any]]:
    """``filters`` as a WHERE clause on ``chunks c`` and its arguments, in the index's dialect
    (metadata fields other than the columns are JSON inside ``c.meta``)."""
    clauses: list[str] = []
    args: list[Any] = []
    for key, value in (filters or {}).items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise MemoryStoreError(f"filter key {key!r} is not a plain name", "use e.g. source=...")
        if key in _COLUMNS:
            col, mark, adapt = f"c.{key}", "?", lambda v: v
        else:
            col, mark, adapt = store.engine.json_filter(key)
        if isinstance(value, (list, tuple, set)):
            values = list(value)
            clauses.append(f"{col} IN ({','.join([mark] * len(values))})" if values else "1=0")
            args.extend(adapt(v) for v in values)
        else:
            clauses.append(f"{col} = {mark}")
            args.append(adapt(value))
    return " AND ".join(clauses), args


def chroma_where(filters: dict | None) -> dict | None:
    """Metadata filters in Chroma's ``where`` syntax (equality, or membership for lists)."""
    parts = []
    for key, value in (filters or {}).items():
        if isinstance(value, (list, tuple, set)):
            parts.append({key: {"$in": list(value)}})
        else:
            parts.append({key: value})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def _matches_nothing(filters: dict | None) -> bool:
    """Whether a filter asks for membership in an empty set (Chroma rejects ``$in: []``; the SQL
    side writes it as ``1=0``)."""
    return any(isinstance(v, (list, tuple, set)) and not v for v in (filters or {}).values())


def keyword_search(store: Store, spaces: list[Space], query: str, n: int) -> list[tuple[str, float]]:
    """BM25 over language-aware terms in the given spaces: [(chunk id, score)], best first."""
    import numpy as np

    from chatloom.memory import keyword

    hits: list[tuple[int, float]] = []
    try:
        for space in spaces:
            allowed = None
            if space.filters:
                clause, args = _sql_filters(store, space.filters)
                allowed = np.fromiter(
                    (
                        r
                        for (r,) in store.db.execute(
                            f"SELECT rowid FROM chunks c WHERE c.ns = ? AND {clause} ORDER BY rowid", [space.ns, *args]
                        )
                    ),
                    dtype=np.int64,
                )
                if len(allowed) == 0:
                    continue
                if len(allowed) <= SMALL_SET:
                    # Few rows (one user's memories, one file): index just them on the spot,
                    # so a namespace written every turn never needs its saved index rebuilt.
                    marks = ",".join("?" * len(allowed))
                    rows = store.db.execute(
                        f"SELECT rowid, title || ' ' || section || ' ' || text FROM chunks WHERE rowid IN ({marks})",
                        [int(r) for r in allowed],
                    ).fetchall()
                    hits.extend(keyword.KeywordIndex.of_rows(rows).search(query, n))
                    continue
            hits.extend(store.keyword_index(space.ns).search(query, n, allowed))
    except MemoryStoreError:
        raise
    except Exception as exc:
        if isinstance(exc, ChatloomError):
            raise
        if store.index_path is None and (lost := store.index_error(exc)) is not None:
            raise lost from None  # PostgreSQL unreachable: no file to move aside
        raise MemoryStoreError(
            f"keyword search failed on {store.index_label!r} ({type(exc).__name__}: {exc})",
            "the memory index may be corrupt; move it aside and re-run `chatloom ingest`",
        ) from None
    hits.sort(key=lambda h: -h[1])
    hits = hits[:n]
    ids = store.rowids_to_ids([r for r, _ in hits])
    return [(ids[r], score) for r, score in hits if r in ids]


def vector_search(
    store: Store, spaces: list[Space], qvec: Any, n: int, embeddings_name: str
) -> list[tuple[str, float, Any]]:
    """Nearest chunks by cosine: [(chunk id, similarity, embedding)], best first."""
    hits: list[tuple[str, float, Any]] = []
    for space in spaces:
        col = store.collection(space.ns, space.embeddings or embeddings_name, create=False)
        if col is None or _matches_nothing(space.filters):
            continue
        try:
            res = col.query(
                query_embeddings=[space.qvec if space.qvec is not None else qvec],
                n_results=n,
                where=chroma_where(space.filters),
                include=["distances", "embeddings"],
            )
        except Exception as exc:  # noqa: BLE001 - any Chroma failure becomes one line
            raise MemoryStoreError(
                f"vector search in namespace {space.ns!r} failed ({type(exc).__name__}: {exc})",
                "the Chroma store may be corrupt or unreachable; check `chatloom memory list`",
            ) from None
        ids, dists = res["ids"][0], res["distances"][0]
        embs = res["embeddings"][0] if res.get("embeddings") is not None else [None] * len(ids)
        hits.extend((i, 1.0 - float(d), e) for i, d, e in zip(ids, dists, embs))
    hits.sort(key=lambda h: -h[1])
    return hits[:n]


def _embeddings_for(store: Store, ids: list[str], rows: dict[str, ChunkRow], names: dict[str, str]) -> dict:
    by_ns: dict[str, list[str]] = {}
    for cid in ids:
        by_ns.setdefault(rows[cid].ns, []).append(cid)
    out: dict[str, Any] = {}
    for ns, part in by_ns.items():
        col = store.collection(ns, names[ns], create=False)
        if col is None:
            continue
        got = col.get(ids=part, include=["embeddings"])
        out.update(zip(got["ids"], got["embeddings"]))
    return out


def mmr(
    candidates: list[tuple[str, float]],
    vectors: dict[str, Any],
    k: int,
    lam: float,
    groups: dict[str, str] | None = None,
) -> list[int]:
    """Maximal marginal relevance over ``candidates`` (id, relevance in [0, 1]).

    Returns indexes into ``candidates`` in selection order. Candidates without a vector are
    treated as dissimilar to everything, and so are candidates of different ``groups`` (id ->
    embedding model: vectors of two models can't be compared).
    """
    import numpy as np

    picked: list[int] = []
    vecs = [np.asarray(vectors[c], dtype=np.float32) if c in vectors else None for c, _ in candidates]
    max_sim = [0.0] * len(candidates)
    remaining = set(range(len(candidates)))
    while remaining and len(picked) < k:
        best = max(remaining, key=lambda i: lam * candidates[i][1] - (1 - lam) * max_sim[i])
        picked.append(best)
        remaining.discard(best)
        bv = vecs[best]
        if bv is None:
            continue
        for i in remaining:
            v = vecs[i]
            if v is not None and (groups is None or groups.get(candidates[i][0]) == groups.get(candidates[best][0])):
                max_sim[i] = max(max_sim[i], float(np.dot(v, bv)))
    return picked


def search(
    store: Store,
    spaces: list[Space],
    query: str,
    *,
    qvec: Any = None,
    k: int = 4,
    mode: Mode = "hybrid",
    diversity: float | None = 0.15,
    fetch_k: int | None = None,
    embeddings_name: str = "",
) -> list[Hit]:
    """Rank chunks for ``query`` in ``spaces``; see :class:`chatloom.memory.ChromaMemory`.

    ``diversity`` is MMR's weight on novelty against relevance (both on [0, 1]; 0 or None
    turns MMR off). The default 0.15 breaks up near-duplicates without pushing out a second
    relevant passage that merely resembles the first (measured on HotpotQA). Scores: hybrid
    -> fused RRF scaled to [0, 1]; vector -> cosine similarity; keyword -> BM25.
    """
    if k <= 0:
        return []
    fetch = fetch_k or max(4 * k, 20)
    vec_hits = vector_search(store, spaces, qvec, fetch, embeddings_name) if mode != "keyword" else []
    kw_hits = keyword_search(store, spaces, query, fetch) if mode != "vector" else []
    vec_ids = [h[0] for h in vec_hits]
    rows = store.rows_by_id(vec_ids + [h[0] for h in kw_hits])
    # Vector hits without a committed row are leftovers of an interrupted write: skip them.
    vec_hits = [h for h in vec_hits if h[0] in rows]
    kw_hits = [h for h in kw_hits if h[0] in rows]
    vrank = {h[0]: i for i, h in enumerate(vec_hits)}
    krank = {h[0]: i for i, h in enumerate(kw_hits)}
    if mode == "vector":
        scored = [(h[0], h[1]) for h in vec_hits]
        rel = {cid: max(0.0, s) for cid, s in scored}
    elif mode == "keyword":
        scored = [(h[0], h[1]) for h in kw_hits]
        top = scored[0][1] if scored else 1.0
        rel = {cid: s / top if top > 0 else 0.0 for cid, s in scored}
    else:
        lists = [vrank, krank]
        fused: dict[str, float] = {}
        for ranks in lists:
            for cid, r in ranks.items():
                fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + r + 1)
        best = sum(1.0 / (RRF_K + 1) for ranks in lists if ranks) or 1.0
        scored = sorted(((c, s / best) for c, s in fused.items()), key=lambda x: -x[1])
        rel = dict(scored)
    if diversity and len(scored) > k:
        pool = scored[: max(3 * k, 10)]
        vectors = {h[0]: h[2] for h in vec_hits if h[2] is not None}
        missing = [c for c, _ in pool if c not in vectors]
        names = {sp.ns: sp.embeddings or embeddings_name for sp in spaces}
        if missing:
            vectors.update(_embeddings_for(store, missing, rows, names))
        # RRF scores are nearly flat at the top (1.0, 0.98, 0.97...): on that scale any novelty
        # bonus swamps relevance. Spread the pool over [0, 1] so both terms weigh as meant.
        lo, hi = min(rel[c] for c, _ in pool), max(rel[c] for c, _ in pool)
        span = (hi - lo) or 1.0
        pool_rel = [(c, (rel[c] - lo) / span) for c, _ in pool]
        groups = {c: names.get(rows[c].ns, "") for c, _ in pool}
        order = mmr(pool_rel, vectors, k, 1.0 - diversity, groups)
        chosen = [pool[i] for i in order]
    else:
        chosen = scored[:k]
    return [Hit(rows[c], s, vrank.get(c), krank.get(c)) for c, s in chosen]
