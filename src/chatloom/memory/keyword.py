"""Keyword search: one language-aware BM25 index (bm25s) and the tokenizer behind it.

:func:`tokenize` turns text into normalised content terms. Latin-script text gives lower-cased,
stop-worded, Snowball-stemmed words; text with Hangul goes through Kiwi (``kiwipiepy``), a Korean
morphological analyser, and gives the morphemes that carry meaning (nouns, verb and adjective
stems, numbers), with particles and endings dropped, so "자기계발비는" and "자기계발비" share
their terms. The choice is made per text, by script: English-only users never load Kiwi.

:class:`KeywordIndex` is the one scorer: bm25s's BM25 over those terms. A namespace's index is
saved beside the store (a cache of the SQLite ``chunks`` table, stamped with the namespace's
version and the tokenizer's); a filtered search over few rows builds a throw-away index of just
those rows, so a namespace written every turn never needs its saved index rebuilt.

>>> tokenize("Refunds are processed within 5 days")
['refund', 'process', 'within', '5', 'day']
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

from chatloom.errors import ChatloomError, install_hint

# Bump when tokenize() changes: saved indexes with another stamp are rebuilt on first use.
TOKENIZER_VERSION = 2
# Words of 2+ characters, or a lone digit: "5" in "chapter 5" must match "5장".
_TOKEN = re.compile(r"(?u)\b(?:\w\w+|\d)\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 1,000 -> 1000, in both scripts
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
# Very common English words: they match almost every chunk and add nothing to BM25's ranking.
STOPWORDS = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
    ]
)
# Kiwi tags (before any "-I"/"-R" irregular-conjugation mark) whose morphemes carry meaning:
# common/proper nouns, numerals, roots, Hanja, verb and adjective stems, numbers.
_KO_CONTENT = {"NNG", "NNP", "NR", "XR", "SH", "VV", "VA"}
_KO_NOUN = {"NNG", "NNP", "XR", "SH"}  # adjacent ones also form a compound term (자기+계발+비)
# Latin words and numbers inside Korean text: the Latin rules, so "3.11" gives the same terms
# in both scripts.
_KO_FOREIGN = {"SL", "SN", "W_URL", "W_EMAIL", "W_HASHTAG", "W_MENTION", "W_SERIAL"}
# Light verbs and copula-like stems: in almost every Korean sentence ("하다", "되다", "있다").
_KO_STOP = frozenset({"하", "되", "있", "않", "이", "같", "그렇", "어떻"})
_local = threading.local()
_kiwi: Any = None
_kiwi_lock = threading.Lock()


def _stemmer() -> Any:
    stem = getattr(_local, "stemmer", None)
    if stem is None:
        try:
            import Stemmer
        except ImportError:
            raise ChatloomError("keyword search needs PyStemmer", install_hint("memory", "PyStemmer")) from None
        stem = _local.stemmer = Stemmer.Stemmer("english")
    return stem


def _latin_terms(text: str) -> list[str]:
    words = [w for w in _TOKEN.findall(_THOUSANDS.sub("", text.lower())) if w not in STOPWORDS]
    return _stemmer().stemWords(words) if words else []


def _korean_analyser() -> Any:
    """The process-wide Kiwi, loaded on first Hangul text (about a second, once)."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                try:
                    from kiwipiepy import Kiwi
                except ImportError:
                    raise ChatloomError(
                        "Korean keyword search needs kiwipiepy and its model",
                        install_hint("memory", "kiwipiepy", "kiwipiepy-model"),
                    ) from None
                try:
                    _kiwi = Kiwi(num_workers=0)
                except Exception as exc:  # noqa: BLE001 - e.g. kiwipiepy-model missing: Kiwi can't find a model
                    raise ChatloomError(
                        f"the Korean analyser (kiwipiepy) can't load its model ({exc})",
                        install_hint("memory", "kiwipiepy-model"),
                    ) from None
    return _kiwi


def _korean_terms(text: str) -> list[str]:
    kiwi = _korean_analyser()
    with _kiwi_lock:  # one shared analyser; its calls are cheap, so a lock is enough
        tokens = kiwi.tokenize(_THOUSANDS.sub("", text))
    terms: list[str] = []
    run: list[Any] = []  # adjacent noun morphemes with no space between them

    def close_run() -> None:
        if len(run) > 1:
            terms.append("".join(t.form for t in run))
        run.clear()

    for tok in tokens:
        tag = tok.tag.split("-")[0]
        if tag in _KO_NOUN:
            if run and not _touching(run[-1], tok):
                close_run()
            run.append(tok)
        else:
            close_run()
        if tag in _KO_CONTENT:
            if tok.form not in _KO_STOP:
                terms.append(tok.form)
        elif tag in _KO_FOREIGN:
            terms.extend(_latin_terms(tok.form))
    close_run()
    return terms


def _touching(left: Any, right: Any) -> bool:
    """Whether two Kiwi tokens are written with no space between them."""
    return bool(left.start + left.len == right.start)


def korean_topics(text: str) -> list[tuple[str, ...]]:
    """The topics of a Korean sentence: each noun written right before the topic particle 은/는,
    as its morphemes ("퇴직금은 언제 ..." -> [("퇴직금",)], "호텔비는" -> [("호텔", "비")]).

    The topic is what a question is about; text that never mentions it can't answer it.
    Empty for text without Hangul.

    >>> korean_topics("회사 연차 신청은 어떻게 하나요?")
    [('신청',)]
    """
    if not _HANGUL.search(text):
        return []
    kiwi = _korean_analyser()
    with _kiwi_lock:
        tokens = kiwi.tokenize(text)
    topics: list[tuple[str, ...]] = []
    run: list[Any] = []
    for tok in tokens:
        tag = tok.tag.split("-")[0]
        if tag in _KO_NOUN:
            if run and not _touching(run[-1], tok):
                run = []
            run.append(tok)
            continue
        if tag == "JX" and tok.form in ("은", "는") and run and _touching(run[-1], tok):
            topics.append(tuple(t.form for t in run))
        run = []
    return topics


def tokenize(text: str) -> list[str]:
    """Normalised content terms of ``text``, for keyword search and for comparing texts.

    Latin script: lower-cased words of 2+ characters or single digits, English stopwords
    removed, Snowball-stemmed. Text containing Hangul: Kiwi morphemes that carry meaning
    (nouns, verb/adjective stems, numbers; no particles or endings), Latin words inside it as
    above, plus the compound of adjacent noun morphemes ("자기계발비" -> 자기, 계발, 비,
    자기계발비). Thread-safe; Kiwi loads once per process, on the first Hangul text.

    >>> tokenize("The refunds were processed")
    ['refund', 'process']
    """
    if not text:
        return []
    if _HANGUL.search(text):
        return _korean_terms(text)
    return _latin_terms(text)


class KeywordIndex:
    """A bm25s index over chunk rows: ``rowids[i]`` is document i's chunk rowid."""

    def __init__(self, retriever: Any, rowids: Any, version: int) -> None:
        self.retriever = retriever
        self.rowids = rowids
        self.version = version

    @classmethod
    def of_rows(cls, rows: list[tuple[int, str]], version: int = 0) -> KeywordIndex:
        """Index ``rows`` of (rowid, text) in memory (document frequencies from these rows)."""
        import bm25s
        import numpy as np

        rows = sorted(rows)
        rowids = np.asarray([r for r, _ in rows], dtype=np.int64)
        retriever = None
        if rows:
            corpus = [tokenize(t) or [""] for _, t in rows]
            retriever = bm25s.BM25(k1=1.2, b=0.75)
            retriever.index(corpus, show_progress=False)
        return cls(retriever, rowids, version)

    def search(self, query: str, n: int, allowed_rowids: Any = None) -> list[tuple[int, float]]:
        """[(chunk rowid, BM25 score)] best first; ``allowed_rowids`` restricts the candidates."""
        import numpy as np

        if self.retriever is None or len(self.rowids) == 0 or n <= 0:
            return []
        vocab = self.retriever.vocab_dict
        terms = [t for t in dict.fromkeys(tokenize(query)) if t in vocab]
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
        scores = np.asarray(self.retriever.get_scores(terms, weight_mask=mask), dtype=np.float32)
        k = min(n, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rowids[d]), float(scores[d])) for d in top if scores[d] > 0]


def build(rows: list[tuple[int, str]], version: int, target: Path) -> KeywordIndex:
    """Index ``rows`` of (rowid, text) and save to ``target`` atomically (tmp dir + rename)."""
    import numpy as np

    index = KeywordIndex.of_rows(rows, version)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f"{target.name}.tmp{os.getpid()}.{threading.get_ident()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    if index.retriever is not None:
        index.retriever.save(str(tmp))
    np.save(tmp / "rowids.npy", index.rowids)
    (tmp / "chatloom.json").write_text(
        json.dumps({"version": version, "docs": len(index.rowids), "tokenizer": TOKENIZER_VERSION})
    )
    old = target.with_name(f"{target.name}.old{os.getpid()}.{threading.get_ident()}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:  # another process put its (equal) build in place first
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return index


def load(target: Path) -> KeywordIndex | None:
    """Load a saved index (memory-mapped), or None when it is missing, unreadable or was
    built by another tokenizer version (the caller then rebuilds it)."""
    import bm25s
    import numpy as np

    try:
        meta = json.loads((target / "chatloom.json").read_text())
        if meta.get("tokenizer") != TOKENIZER_VERSION:
            return None
        rowids = np.load(target / "rowids.npy")
        retriever = bm25s.BM25.load(str(target), mmap=True) if meta["docs"] else None
    except Exception:  # noqa: BLE001 - a cache: rebuilt from the SQLite truth
        return None  # a cache: rebuilt from the SQLite truth
    return KeywordIndex(retriever, rowids, int(meta["version"]))
