"""Lookup order, workspace prompts, and `extends` composition."""

from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from chatloom.errors import PromptError
from chatloom.prompts import load_prompt


def test_workspace_prompt_wins_over_builtin_and_can_extend_it(write, workspace):
    write(
        "prompts/assistant.yaml",
        """
        extends: assistant      # the built-in: a file never resolves to itself
        variables: {bot_name: Ada}
        role: You are {{ bot_name }}, the house bot.
        """,
    )
    template = load_prompt("assistant", workspace)
    assert template.source == "workspace"
    assert template.role == "You are {{ bot_name }}, the house bot."
    assert template.extends and template.extends[0].endswith("builtin/assistant.yaml")
    messages = template.render([])
    assert messages[0].content.startswith("You are Ada, the house bot.")
    # inherited from the built-in: policies and the non-tool example
    assert "## Policies" in messages[0].content
    assert any(isinstance(m, HumanMessage) and m.content == "Say hello in French." for m in messages)
    # without the workspace, the built-in is found
    assert load_prompt("assistant").source == "builtin"


def test_explicit_path_beats_every_name(write, workspace):
    write("prompts/tutor.yaml", "role: workspace tutor\n")
    write("elsewhere/tutor.yaml", "role: file tutor\n")
    assert load_prompt("elsewhere/tutor.yaml", workspace).role == "file tutor"
    assert load_prompt(str(workspace / "elsewhere/tutor.yaml")).role == "file tutor"
    assert load_prompt("tutor", workspace).role == "workspace tutor"
    assert load_prompt("builtin:tutor", workspace).source == "builtin"


def test_relative_paths_resolve_against_the_workspace_not_the_cwd(write, workspace, tmp_path_factory, monkeypatch):
    write("prompts/mine.yaml", "role: mine\n")
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    assert load_prompt("prompts/mine.yaml", workspace).role == "mine"


def test_extends_mapping_takes_fields_from_different_templates(write, workspace):
    write(
        "prompts/mix.yaml",
        """
        name: mix
        extends:
          role: support          # the persona and its variables
          examples: classifier   # the few-shot examples
        reasoning: cot
        """,
    )
    template = load_prompt("mix", workspace)
    support, classifier = load_prompt("support"), load_prompt("classifier")
    assert template.role == support.role
    assert template.examples == classifier.examples
    assert template.policies == ()  # not inherited: not named in the mapping
    assert template.reasoning == "cot"
    system = template.system_text([], {"product": "Widget"})
    assert "for Widget" in system and "<think>" in system
    answers = [m.content for m in template.render([]) if isinstance(m, AIMessage)]
    assert "billing" in answers


def test_extends_chain_and_own_fields_override(write, workspace):
    write("prompts/base.yaml", "role: base role\npolicies: [be brief]\nvariables: {a: 1, b: 2}\n")
    write("prompts/middle.yaml", "extends: base\npolicies: [be kind]\nvariables: {b: 20}\n")
    write("prompts/top.yaml", "extends: middle\nrole: 'top {{ a }} {{ b }}'\n")
    template = load_prompt("top", workspace)
    assert template.system_text([]) == "top 1 20\n\n## Policies\n- be kind"
    assert [Path(p).name for p in template.extends] == ["middle.yaml", "base.yaml"]


def test_extends_relative_path_is_relative_to_the_extending_file(write, workspace):
    write("prompts/shared/base.yaml", "role: shared base\n")
    write("prompts/child.yaml", "extends: shared/base.yaml\n")
    assert load_prompt("child", workspace).role == "shared base"


def test_unknown_prompt_lists_what_exists(workspace):
    with pytest.raises(PromptError) as err:
        load_prompt("tutr", workspace)
    message = str(err.value)
    assert "unknown prompt 'tutr'" in message and "did you mean 'tutor'" in message
    assert "assistant" in message and "researcher" in message


def test_missing_prompt_file(workspace):
    with pytest.raises(PromptError, match=r"prompt file 'nope\.yaml' not found"):
        load_prompt("nope.yaml", workspace)


def test_name_defaults_to_file_stem_and_version_is_text(write, workspace):
    write("prompts/stemmy.yaml", "role: r\nversion: 2\n")
    template = load_prompt("stemmy", workspace)
    assert (template.name, template.version) == ("stemmy", "2")


def test_required_variable_must_be_given(write, workspace):
    write("prompts/needs.yaml", "variables:\n  company: null\nrole: 'You work for {{ company }}.'\n")
    template = load_prompt("needs", workspace)
    assert template.system_text([], {"company": "Initech"}) == "You work for Initech."
    with pytest.raises(PromptError) as err:
        template.render([])
    assert (
        "prompts/needs.yaml:2" in str(err.value)
        and "'company'" in str(err.value)
        and "--var company=" in str(err.value)
    )


def test_cot_example_with_tool_calls_puts_thinking_before_the_call(write, workspace):
    write(
        "prompts/cot.yaml",
        """
        reasoning: cot
        role: r
        examples:
          - user: q
            thinking: I should compute.
            tool_calls: [{name: calculator, args: {expression: "1+1"}, result: 2}]
            assistant: It is 2.
        """,
    )
    from chatloom.tools.calculator import calculator

    _, _, call, result, answer = load_prompt("cot", workspace).render([calculator])
    assert call.content == "<think>\nI should compute.\n</think>" and call.tool_calls
    assert result.content == "2" and answer.content == "It is 2."


def test_tools_section_can_be_customised_or_turned_off(write, workspace):
    from chatloom.tools.calculator import calculator

    write(
        "prompts/custom.yaml", 'role: r\ntools_section: \'Tools: {{ tools | map(attribute="name") | join(", ") }}\'\n'
    )
    write("prompts/off.yaml", "role: r\ntools_section: ''\n")
    assert load_prompt("custom", workspace).system_text([calculator]) == "r\n\nTools: calculator"
    assert load_prompt("off", workspace).system_text([calculator]) == "r"
