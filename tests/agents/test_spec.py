"""Agent specs: strict validation with file:line errors, workspace detection, the reference bot."""

from pathlib import Path
from textwrap import dedent

import pytest

from chatloom.agents.spec import AgentSpec, MemorySpec, load_spec
from chatloom.errors import ConfigError
from chatloom.prompts import load_prompt
from chatloom.tools.registry import resolve_tools

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "bot.yaml") -> Path:
        path = tmp_path / "agents" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"))
        return Path("agents") / name

    return write


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    return str(err.value)


def test_full_spec(spec_file, tmp_path):
    path = spec_file(
        """
        name: helper
        description: A helper.
        model: openai:gpt-4o-mini
        prompt: prompts/helper.yaml
        variables: {bot_name: Ada, level: 3}
        tools: [calculator, search]
        memory: {enabled: true, namespace: docs, k: 6, conversation: true}
        max_steps: 5
        tool_choice: calculator
        tool_policy: {search: ask, "*": deny}
        """
    )
    spec = load_spec(path)
    assert spec.name == "helper" and spec.model == "openai:gpt-4o-mini"
    assert spec.prompt == "prompts/helper.yaml" and spec.variables == {"bot_name": "Ada", "level": 3}
    assert spec.tools == ["calculator", "search"]
    assert spec.memory == MemorySpec(enabled=True, namespace="docs", k=6, conversation=True)
    assert spec.tool_choice == "calculator"
    assert spec.max_steps == 5 and spec.tool_policy == {"search": "ask", "*": "deny"}
    assert spec.workspace == tmp_path.resolve()  # the parent of agents/
    assert spec.path == (tmp_path / "agents" / "bot.yaml").resolve()


def test_defaults_and_name_from_file(spec_file):
    spec = load_spec(spec_file("description: minimal\n", name="tiny.yaml"))
    assert spec.name == "tiny" and spec.model is None and spec.prompt == "assistant"
    assert spec.tools == [] and spec.memory == MemorySpec() and spec.max_steps == 8 and spec.tool_policy == {}
    assert spec.memory.k == 4 and spec.memory.enabled is False and spec.memory.conversation is False


def test_memory_shorthand(spec_file):
    assert load_spec(spec_file("memory: true\n")).memory.enabled is True


@pytest.mark.parametrize(
    ("written", "mode"), [("strict", "strict"), ("cite", "cite"), ("false", "off"), ("off", "off")]
)
def test_memory_grounding_names_the_answer_policy(spec_file, written, mode):
    from chatloom import Agent

    path = spec_file(f"memory: {{enabled: true, grounding: {written}}}\n")
    assert Agent.from_spec(path).grounding_mode() == mode


def test_an_unknown_answer_policy_names_the_ones_there_are(spec_file):
    assert "'strict', 'cite' or 'off'" in _error(spec_file("memory: {enabled: true, grounding: sometimes}\n"))


def test_spec_outside_agents_dir_uses_its_own_folder(tmp_path):
    path = tmp_path / "loose.yaml"
    path.write_text("prompt: tutor\n")
    assert load_spec(path).workspace == tmp_path.resolve()


def test_specs_are_frozen_but_copyable(spec_file):
    spec = load_spec(spec_file("tools: [calculator]\n"))
    with pytest.raises(Exception):
        spec.max_steps = 3
    copy = spec.model_copy(update={"model": "fake:echo"})
    assert copy.model == "fake:echo" and copy.workspace == spec.workspace


def test_yaml_syntax_error(spec_file):
    message = _error(spec_file("name: bot\ntools: [calculator\nmax_steps: 3\n"))
    assert message.startswith("agents/bot.yaml:3: YAML syntax error") and "started at line 2" in message


def test_unknown_field(spec_file):
    message = _error(spec_file("name: bot\nsteps: 3\n"))
    assert message.startswith("agents/bot.yaml:2: unknown field 'steps'")
    assert "did you mean 'max_steps'?" in message and "valid fields are: name, description, model" in message


def test_unknown_nested_field(spec_file):
    message = _error(spec_file("memory:\n  enabled: true\n  top_k: 3\n"))
    assert message.startswith("agents/bot.yaml:3: unknown field 'top_k' in memory")
    assert "valid fields in memory are: enabled, namespace, k, conversation" in message


@pytest.mark.parametrize(
    ("text", "line", "field", "fix"),
    [
        ("name: bot\nmax_steps: ten\n", 2, "max_steps", "whole number"),
        ("max_steps: 0\n", 1, "max_steps", "whole number"),
        ("tools: calculator\n", 1, "tools", "tools: [calculator, search]"),
        ("tools:\n  - calculator\n  - {name: x}\n", 3, "tools[1]", "tools: [calculator, search]"),
        ("tools: [calculator]\ntool_policy:\n  calculator: maybe\n", 3, "tool_policy.calculator", "allow, deny or ask"),
        ("memory:\n  k: lots\n", 2, "memory.k", "memory: {enabled: true"),
        ("model: 3\n", 1, "model", "local:qwen2.5-coder-0.5b"),
        ("variables: [a]\n", 1, "variables", "variables: {bot_name: Ada}"),
    ],
)
def test_wrong_types(spec_file, text, line, field, fix):
    message = _error(spec_file(text))
    assert message.startswith(f"agents/bot.yaml:{line}: field {field!r}:"), message
    assert fix in message


def test_policy_for_a_tool_that_is_not_listed(spec_file):
    message = _error(spec_file("tools: [calculator]\ntool_policy:\n  calculater: allow\n"))
    assert message.startswith("agents/bot.yaml:3: field 'tool_policy.calculater': tool_policy names 'calculater'")


def test_tool_choice_must_name_a_listed_tool(spec_file):
    message = _error(spec_file("tools: [calculator]\ntool_choice: python\n"))
    assert message.startswith("agents/bot.yaml:2: field 'tool_choice':") and "(calculator), got 'python'" in message
    assert "use auto, required, or the name" in message


def test_duplicate_tool(spec_file):
    message = _error(spec_file("tools: [calculator, calculator]\n"))
    assert message.startswith("agents/bot.yaml:1: field 'tools':") and "listed twice" in message


def test_missing_file_suggests_existing_specs(spec_file):
    spec_file("name: a\n", name="real.yaml")
    message = _error(Path("agents/typo.yaml"))
    assert "agent spec 'agents/typo.yaml' not found" in message and "real.yaml" in message


def test_reference_bot_spec_prompt_and_tools():
    spec = load_spec(REPO / "agents" / "assistant.yaml")
    assert spec.model is None and spec.memory.enabled
    assert {"calculator", "python", "search"} <= set(spec.tools)
    assert spec.workspace == REPO
    prompt = load_prompt(spec.prompt, spec.workspace)
    assert prompt.source == "workspace" and prompt.extends  # prompts/loom.yaml extends assistant
    tools = resolve_tools(["calculator", "unit_convert"], spec.workspace)
    system = prompt.system_text(tools, spec.variables)
    # loom.yaml turns the tools section off: the backends describe bound tools to the model.
    assert system.startswith("You are Loom") and "## Tools" not in system
    assert "unit_convert(value: number" in load_prompt("assistant").system_text(tools, {})


@pytest.mark.parametrize("path", sorted((REPO / "agents").glob("*.yaml")), ids=lambda p: p.name)
def test_every_reference_spec_is_valid(path):
    spec = load_spec(path)
    assert isinstance(spec, AgentSpec)
    load_prompt(spec.prompt, spec.workspace).render([], spec.variables)


def test_yaml_anchors_and_aliases_are_refused_fast_with_file_and_line(spec_file):
    # A "billion laughs", six levels of nine aliases here (nine never finish on the old loader,
    # which walked the alias graph as a tree); now the first anchor is an error, before anything expands.
    import time

    laughs = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n' + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdef", "bcdefg", strict=True)
    )
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_spec(spec_file("description: ok\n" + laughs))
    assert time.monotonic() - started < 1
    assert str(err.value).startswith("agents/bot.yaml:2: YAML anchor &a is not allowed")
    with pytest.raises(ConfigError, match=r"agents/c.yaml:1: YAML alias \*nowhere is not allowed"):
        load_spec(spec_file("description: *nowhere\n", name="c.yaml"))
