"""Keyword search: one BM25 index (bm25s, stemmed) per namespace, kept beside the store.

The SQLite ``chunks`` table is the truth; an index is a cache of it, stamped with the
namespace's version. Writers rebuild the indexes they touched at the end of a write session;
a reader that finds a stale or missing index rebuilds it itself. Indexes are memory-mapped, so
opening a 100k-chunk namespace costs milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from chatloom.errors import ChatloomError

_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_local = threading.local()


def _stemmer() -> Any:
    stem = getattr(_local, "stemmer", None)
    if stem is None:
        try:
            import Stemmer
        except ImportError:
            raise ChatloomError(
                "keyword search needs PyStemmer", "pip install PyStemmer bm25s"
            ) from None
        stem = _local.stemmer = Stemmer.Stemmer("english")
    return stem


def _stopwords() -> frozenset[str]:
    from chatloom.memory.search import STOPWORDS

    return STOPWORDS


def tokenize(text: str) -> list[str]:
    """Lower-case words of 2+ characters, English stopwords removed, Snowball-stemmed."""
    stop = _stopwords()
    words = [w for w in _TOKEN.findall(text.lower()) if w not in stop]
    return _stemmer().stemWords(words) if words else []


class KeywordIndex:
    """A loaded bm25s index for one namespace: ``rowids[i]`` is document i's chunk rowid."""

    def __init__(self, retriever: Any, rowids: Any, version: int) -> None:
        self.retriever = retriever
        self.rowids = rowids
        self.version = version
        self.vocab = retriever.vocab_dict if retriever is not None else {}

    def search(self, query: str, n: int, allowed_rowids: Any = None) -> list[tuple[int, float]]:
        """[(chunk rowid, BM25 score)] best first; ``allowed_rowids`` restricts the candidates."""
        import numpy as np

        if self.retriever is None or len(self.rowids) == 0:
            return []
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in self.vocab]
        if not terms:
            return []
        mask = None
        if allowed_rowids is not None:
            allowed = np.asarray(allowed_rowids, dtype=np.int64)
            pos = np.searchsorted(self.rowids, allowed)
            keep = pos < len(self.rowids)
            pos, allowed = pos[keep], allowed[keep]
            pos = pos[self.rowids[pos] == allowed]
            if len(pos) == 0:
                return []
            mask = np.zeros(len(self.rowids), dtype=np.float32)
            mask[pos] = 1.0
        scores = self._scores([self.vocab[t] for t in terms])
        if mask is not None:
            scores *= mask
        k = min(n, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rowids[d]), float(scores[d])) for d in top if scores[d] > 0]

    def _scores(self, term_ids: list[int]) -> Any:
        """Sum each term's precomputed BM25 postings into one score per document.

        bm25s stores the score of every (term, doc) pair; its numpy path accumulates them with
        ``np.add.at``, which is several times slower than fancy-index addition. A term's
        postings name each document once, so ``+=`` over them is exact.
        """
        import numpy as np

        sc = self.retriever.scores
        data, indices, indptr = sc["data"], sc["indices"], sc["indptr"]
        scores = np.zeros(int(sc["num_docs"]), dtype=np.float32)
        for tid in term_ids:
            start, end = int(indptr[tid]), int(indptr[tid + 1])
            scores[indices[start:end]] += data[start:end]
        return scores


def search_rows(rows: list[tuple[int, str]], query: str, n: int) -> list[tuple[int, float]]:
    """BM25 over a small set of (rowid, text) computed on the spot: no index to maintain.

    Used for filtered searches that select few rows (e.g. one user's conversation memory);
    document frequencies come from those rows only.
    """
    import math

    terms = list(dict.fromkeys(tokenize(query)))
    if not terms or not rows:
        return []
    docs = [(rowid, tokenize(text)) for rowid, text in rows]
    avgdl = sum(len(t) for _, t in docs) / len(docs) or 1.0
    df = {term: sum(1 for _, toks in docs if term in toks) for term in terms}
    k1, b = 1.2, 0.75
    scored = []
    for rowid, toks in docs:
        score = 0.0
        for term in terms:
            tf = toks.count(term)
            if tf:
                idf = math.log(1 + (len(docs) - df[term] + 0.5) / (df[term] + 0.5))
                score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
        if score > 0:
            scored.append((rowid, score))
    scored.sort(key=lambda x: -x[1])
    return scored[:n]


def build(rows: list[tuple[int, str]], version: int, target: Path) -> KeywordIndex:
    """Index ``rows`` of (rowid, text) and save to ``target`` atomically (tmp dir + rename)."""
    import bm25s
    import numpy as np

    rows = sorted(rows)
    rowids = np.asarray([r for r, _ in rows], dtype=np.int64)
    retriever = None
    if rows:
        corpus = [tokenize(t) or [""] for _, t in rows]
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        retriever.index(corpus, show_progress=False)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if retriever is not None:
        retriever.save(str(tmp))
    np.save(tmp / "rowids.npy", rowids)
    (tmp / "chatloom.json").write_text(json.dumps({"version": version, "docs": len(rows)}))
    old = target.with_name(f"{target.name}.old{os.getpid()}.{threading.get_ident()}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:  # another process put its (equal) build in place first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return KeywordIndex(retriever, rowids, version)


def load(target: Path) -> KeywordIndex | None:
    """Load a saved index (memory-mapped), or None when it is missing or unreadable."""
    import bm25s
    import numpy as np

    try:
        meta = json.loads((target / "chatloom.json").read_text())
        rowids = np.load(target / "rowids.npy")
        retriever = bm25s.BM25.load(str(target), mmap=True) if meta["docs"] else None
    except Exception:
        return None  # a cache: rebuilt from the SQLite truth
    return KeywordIndex(retriever, rowids, int(meta["version"]))
