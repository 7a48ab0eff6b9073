"""The one bounded cache of loaded weights that both local engines share (fake loaders, no model)."""

from __future__ import annotations

import threading

import pytest
from fake_llama import FakeLlama

from chatloom.models import model_cache
from chatloom.models.model_cache import MAX_LOADED_MODELS, ModelCache


class Loader:
    """Counts the loads of each key."""

    def __init__(self) -> None:
        self.loads: list[str] = []

    def __call__(self, key: str):
        def load() -> str:
            self.loads.append(key)
            return f"weights of {key}"

        return load


def test_the_least_recently_used_model_is_dropped_past_the_bound():
    cache: ModelCache[str] = ModelCache(max_size=2)
    loader = Loader()
    for key in ("a", "b", "a", "c"):  # "a" was used again after "b", so "b" goes
        assert cache.get_or_load(key, loader(key)) == f"weights of {key}"
    assert cache.keys() == ["a", "c"]
    cache.get_or_load("a", loader("a"))
    cache.get_or_load("b", loader("b"))  # dropped, so loaded again
    assert loader.loads == ["a", "b", "c", "b"]
    assert cache.keys() == ["a", "b"]


def test_the_default_bound_is_two_models():
    assert MAX_LOADED_MODELS == 2 and model_cache.LOADED_MODELS.max_size == 2


def test_a_failed_load_is_not_cached():
    cache: ModelCache[str] = ModelCache(max_size=2)

    def broken() -> str:
        raise OSError("bad file")

    with pytest.raises(OSError, match="bad file"):
        cache.get_or_load("a", broken)
    assert cache.get_or_load("a", lambda: "weights") == "weights"


def test_callers_of_one_model_at_once_load_it_once():
    cache: ModelCache[str] = ModelCache(max_size=2)
    started, release = threading.Event(), threading.Event()
    loads: list[int] = []

    def slow() -> str:
        loads.append(1)
        started.set()
        release.wait(5)
        return "weights"

    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_load("a", slow))) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert started.wait(5)
    release.set()
    for thread in threads:
        thread.join(5)
    assert loads == [1] and results == ["weights"] * 4


def test_different_models_load_side_by_side():
    cache: ModelCache[str] = ModelCache(max_size=2)
    b_loaded = threading.Event()

    def a_waits_for_b() -> str:
        assert b_loaded.wait(5), "b could not load while a was loading"
        return "A"

    def b() -> str:
        b_loaded.set()
        return "B"

    loading_a = threading.Thread(target=lambda: cache.get_or_load("a", a_waits_for_b))
    loading_a.start()
    assert cache.get_or_load("b", b) == "B"
    loading_a.join(5)
    assert sorted(cache.keys()) == ["a", "b"]


def test_a_bound_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        ModelCache(max_size=0)


def test_both_engines_share_one_bounded_cache(tmp_path, monkeypatch):
    llama_cpp = pytest.importorskip("llama_cpp")  # for its chat formatter; the weights are faked
    pytest.importorskip("torch")
    from chatloom.models.llamacpp_backend import LlamaCppChatModel
    from chatloom.models.transformers_backend import TransformersChatModel

    FakeLlama.made = []
    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    monkeypatch.setattr(model_cache, "LOADED_MODELS", ModelCache(max_size=2))
    hf_loads: list[str] = []
    monkeypatch.setattr(TransformersChatModel, "_device", lambda self: "cpu")
    monkeypatch.setattr(
        TransformersChatModel, "_load", lambda self, device: hf_loads.append(self.model_path) or ("model", "tokenizer")
    )
    for name in ("a.gguf", "b.gguf", "hf-dir"):
        (tmp_path / name).write_bytes(b"GGUF")

    first = LlamaCppChatModel(model_path=str(tmp_path / "a.gguf")).load()
    LlamaCppChatModel(model_path=str(tmp_path / "a.gguf")).load()  # shared, not loaded again
    LlamaCppChatModel(model_path=str(tmp_path / "b.gguf")).load()
    TransformersChatModel(model_path=str(tmp_path / "hf-dir")).load()  # the third model: a.gguf goes
    assert [key[0] for key in model_cache.LOADED_MODELS.keys()] == ["llama.cpp", "transformers"]  # noqa: SIM118 - a ModelCache, not a dict
    assert first._llm is not None  # a model in use keeps its weights when the cache drops them
    LlamaCppChatModel(model_path=str(tmp_path / "a.gguf")).load()
    assert [m["model_path"] for m in FakeLlama.made] == [str(tmp_path / n) for n in ("a.gguf", "b.gguf", "a.gguf")]
    assert hf_loads == [str(tmp_path / "hf-dir")]
