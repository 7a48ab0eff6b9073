"""llama engine settings: one thread count for prompt evaluation and generation; the grammar engine."""

from __future__ import annotations

import pytest
from fake_llama import FakeLlama

from chatloom.models import model_cache
from chatloom.models.llamacpp_backend import LlamaCppChatModel, default_threads


@pytest.fixture
def fake_llama(monkeypatch, tmp_path):
    FakeLlama.made = []
    llama_cpp = pytest.importorskip("llama_cpp")  # for its chat formatter; the weights are faked
    monkeypatch.setattr(llama_cpp, "Llama", FakeLlama)
    monkeypatch.setattr(model_cache, "LOADED_MODELS", model_cache.ModelCache())
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    return gguf


@pytest.mark.parametrize("cores, expected", [(1, 1), (2, 1), (8, 4), (None, 1)])
def test_default_threads_is_half_the_cores_at_least_one(monkeypatch, cores, expected):
    monkeypatch.setattr("os.cpu_count", lambda: cores)
    assert default_threads() == expected


def test_prompt_evaluation_uses_the_same_threads_as_generation(fake_llama, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    LlamaCppChatModel(model_path=str(fake_llama)).load()
    assert FakeLlama.made[-1]["n_threads"] == 1 and FakeLlama.made[-1]["n_threads_batch"] == 1


def test_a_profile_can_set_the_threads_and_gets_its_own_instance(fake_llama):
    LlamaCppChatModel(model_path=str(fake_llama), n_threads=3).load()
    LlamaCppChatModel(model_path=str(fake_llama), n_threads=1).load()
    assert [(m["n_threads"], m["n_threads_batch"]) for m in FakeLlama.made] == [(3, 3), (1, 1)]


def test_grammar_engine_auto_is_llama_cpps_own_and_a_typo_is_a_clear_error(tmp_path):
    from chatloom.errors import ChatloomError

    assert LlamaCppChatModel(model_path=str(tmp_path / "m.gguf"))._use_xgrammar() is False
    assert LlamaCppChatModel(model_path="m.gguf", grammar_engine="xgrammar")._use_xgrammar() is True
    with pytest.raises(ChatloomError, match="unknown grammar_engine 'fast'"):
        LlamaCppChatModel(model_path="m.gguf", grammar_engine="fast")._use_xgrammar()


@pytest.mark.integration
@pytest.mark.slow
def test_the_same_prompt_gets_the_same_reply_whatever_the_kv_cache_held(default_model_gguf):
    # llama.cpp computes a prompt's last token with other kernels alone than in a batch; when
    # a prompt was evaluated whole the first time and found in the cache the second, Qwen 0.5B
    # answered "2. Multiply the total ..." then "2. Determine the total ...".
    pytest.importorskip("llama_cpp")
    from langchain_core.messages import HumanMessage

    model = LlamaCppChatModel(model_path=str(default_model_gguf), max_tokens=48, prompt_cache=False, n_threads=1)
    question = [
        HumanMessage("Tom gets 4 car washes a month.  If each car wash costs $15 how much does he pay in a year?")
    ]
    first = model.invoke(question).content  # the prompt evaluated whole
    again = model.invoke(question).content  # all but its last token found in the cache
    model.invoke([HumanMessage("Say hello.")])
    after_another = model.invoke(question).content  # the shared system prompt found in the cache
    assert first == again == after_another
    assert "2." in first  # long enough to reach where the replies had parted
