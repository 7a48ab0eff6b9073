"""The built-in templates load, validate and render into the messages a model expects."""

import subprocess
import sys

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool

from chatloom.prompts import list_prompts, load_prompt
from chatloom.tools.calculator import calculator

BUILTINS = ["assistant", "classifier", "researcher", "support", "tutor"]


@tool
def search(query: str, k: int = 4) -> str:
    """Search the knowledge base."""
    return ""


def test_every_builtin_is_listed_and_loads():
    rows = {r.name: r for r in list_prompts() if r.source == "builtin"}
    assert sorted(rows) == BUILTINS
    for name in BUILTINS:
        assert not rows[name].error, rows[name].error
        template = load_prompt(name)
        assert template.description and template.role
        messages = template.render([calculator, search])
        assert isinstance(messages[0], SystemMessage)
        assert all(not isinstance(m, SystemMessage) for m in messages[1:])


def test_assistant_tool_example_renders_as_tool_call_and_tool_message():
    messages = load_prompt("assistant").render([calculator])
    system, human, call, result, answer = messages[:5]
    assert "## Tools" in system.content
    assert "calculator(expression: string)" in system.content
    assert isinstance(human, HumanMessage) and human.content == "What is 17*23?"
    assert isinstance(call, AIMessage)
    assert call.tool_calls == [
        {"name": "calculator", "args": {"expression": "17*23"}, "id": "example_0_0", "type": "tool_call"}
    ]
    assert isinstance(result, ToolMessage) and result.tool_call_id == "example_0_0" and result.content == "391"
    assert isinstance(answer, AIMessage) and "391" in answer.content


def test_examples_that_need_an_unbound_tool_are_left_out():
    messages = load_prompt("assistant").render([])
    assert "## Tools" not in messages[0].content
    assert not any(isinstance(m, ToolMessage) for m in messages)
    assert [m.content for m in messages if isinstance(m, HumanMessage)] == ["Say hello in French."]


def test_researcher_is_grounded_and_cites_numbers():
    template = load_prompt("researcher")
    system = template.system_text([search])
    assert ("[1]" in system and "cite" in system.lower()) or "[1][3]" in system
    answers = [m.content for m in template.render([search]) if isinstance(m, AIMessage) and m.content]
    assert any("[1]" in a and "[2]" in a for a in answers)


def test_tutor_asks_for_think_block_and_its_examples_show_one():
    template = load_prompt("tutor")
    assert template.reasoning == "cot"
    messages = template.render([])
    assert "<think>" in messages[0].content
    ai = [m for m in messages if isinstance(m, AIMessage)]
    assert ai and all(m.content.startswith("<think>") for m in ai)
    answer, reasoning = template.split_reasoning(ai[0].content)
    assert answer.startswith("Its average speed is 80 km/h") and "120 / 1.5" in reasoning


def test_direct_template_does_not_ask_for_reasoning():
    assert "<think>" not in load_prompt("assistant").system_text([])


def test_support_persona_variables_and_policies():
    template = load_prompt("support")
    system = template.system_text([], {"company": "Globex", "product": "Globex Mail"})
    assert "at Globex for Globex Mail" in system
    assert "## Policies" in system and "Never promise refunds" in system
    default = template.system_text([])
    assert "Acme Cloud" in default


def test_classifier_is_few_shot_with_one_label_per_answer():
    messages = load_prompt("classifier").render([])
    answers = [m.content for m in messages if isinstance(m, AIMessage)]
    assert len(answers) >= 4 and all(" " not in a for a in answers)
    labels = load_prompt("classifier").variables["labels"]
    assert all(a in labels for a in answers)


def test_tools_section_describes_arguments_with_defaults():
    system = load_prompt("assistant").system_text([search])
    assert "search(query: string, k: integer = 4): Search the knowledge base." in system


def test_builtin_prefix_and_render_is_deterministic():
    a = load_prompt("builtin:assistant").render([calculator])
    b = load_prompt("assistant").render([calculator])
    assert [m.content for m in a] == [m.content for m in b]


@pytest.mark.parametrize(
    "module", ["chatloom.prompts", "chatloom.agents.spec", "chatloom.tools.registry", "chatloom.plugins"]
)
def test_import_does_not_pull_heavy_dependencies(module):
    code = (
        f"import sys, {module}; "
        "heavy = [m for m in ('langgraph', 'torch', 'transformers', 'chromadb', 'langchain_core.tools') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
