"""The local models loaded in this process, shared by the llama.cpp and transformers engines.

Chat model objects are cheap and made often (each agent, each ``/model`` switch, each served
tenant); the weights behind them are hundreds of megabytes to gigabytes. Engines therefore load
weights through :data:`LOADED_MODELS`, keyed by everything that makes two loads differ (engine,
file, context size, threads, device...), so equal settings share one copy.

The cache keeps the :data:`MAX_LOADED_MODELS` most recently used. Dropping one only drops the
cache's reference: a chat model still using it keeps it, and its memory is freed when the last
user goes. Without the bound, a long REPL or server that tried several models kept every one.

>>> cache = ModelCache(max_size=2)
>>> [cache.get_or_load(name, lambda: name.upper()) for name in ("a", "b", "a", "c")]
['A', 'B', 'A', 'C']
>>> cache.keys()  # "b" was the least recently used
['a', 'c']
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

__all__ = ["LOADED_MODELS", "MAX_LOADED_MODELS", "ModelCache"]

MAX_LOADED_MODELS = 2
"""Models kept loaded at once, across both engines: the chat model and one more (the engine it
is moving to, or the model of a ``/model`` switch) fit on a small machine; a third is dropped."""

T = TypeVar("T")


class ModelCache(Generic[T]):
    """A thread-safe LRU of loaded models that loads each key once, however many ask at once."""

    def __init__(self, max_size: int = MAX_LOADED_MODELS) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, not {max_size}")
        self.max_size = max_size
        self._models: OrderedDict[Hashable, T] = OrderedDict()
        self._lock = threading.Lock()
        # One lock per key being loaded: a second caller of the same key waits for the first
        # load instead of loading the weights twice, while different models load side by side.
        self._loading: dict[Hashable, threading.Lock] = {}

    def get_or_load(self, key: Hashable, load: Callable[[], T]) -> T:
        """The model cached under ``key``, else ``load()``'s result, cached (an error is not)."""
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                if key in self._models:  # loaded by the caller this one waited for
                    self._models.move_to_end(key)
                    return self._models[key]
            try:
                model = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self._models[key] = model
                self._models.move_to_end(key)
                while len(self._models) > self.max_size:
                    self._models.popitem(last=False)
            return model

    def keys(self) -> list[Hashable]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._models)

    def clear(self) -> None:
        """Drop every cached model (chat models using one keep it)."""
        with self._lock:
            self._models.clear()


# Any: a llama_cpp.Llama or a transformers (model, tokenizer) pair, types of optional packages.
LOADED_MODELS: ModelCache[Any] = ModelCache()
"""The process's one cache of loaded weights, used by every local engine."""
# Free the weights while the engines' modules are still whole: at interpreter shutdown
# llama-cpp-python's finalizer fails ("'NoneType' object is not callable") once its module
# globals are gone.
atexit.register(LOADED_MODELS.clear)
