"""Every bad template names file:line, the field, and the fix."""

import pytest

from chatloom.errors import PromptError
from chatloom.prompts import load_prompt


def _error(name, workspace, *args) -> str:
    with pytest.raises(PromptError) as err:
        template = load_prompt(name, workspace)
        template.render(*args)
    return str(err.value)


def test_yaml_syntax_error(write, workspace):
    write("prompts/bad.yaml", "name: bad\nrole: |\n  ok\npolicies: [one, two\nreasoning: cot\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:5: YAML syntax error")
    assert "started at line 4" in message and " — fix the YAML" in message


def test_unknown_top_level_field_suggests_the_real_one(write, workspace):
    write("prompts/bad.yaml", "name: bad\nsystem: You are a bot.\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:2: unknown field 'system'")
    assert "did you mean 'role'?" in message and "valid fields are: name, description" in message


def test_unknown_field_inside_an_example(write, workspace):
    write("prompts/bad.yaml", "role: r\nexamples:\n  - user: hi\n    asistant: hello\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:4: unknown field 'asistant' in examples[0]")
    assert "did you mean 'assistant'?" in message


def test_example_without_an_assistant_turn(write, workspace):
    write("prompts/bad.yaml", "role: r\nexamples:\n  - user: hi\n    assistant: hello\n  - user: bye\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:5: field 'examples[1].assistant' is required but missing")
    assert "every example needs an assistant turn" in message


def test_tool_example_without_a_result(write, workspace):
    write(
        "prompts/bad.yaml",
        "role: r\nexamples:\n  - user: hi\n    tool_calls:\n      - name: calculator\n    assistant: a\n",
    )
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:5: field 'examples[0].tool_calls[0].result' is required")


@pytest.mark.parametrize(
    ("line", "text", "field"),
    [
        (2, "role: r\npolicies: be nice\n", "policies"),
        (2, "role: r\nreasoning: deep\n", "reasoning"),
        (2, "role: r\nvariables: [a, b]\n", "variables"),
        (2, "role: r\nexamples: {user: hi}\n", "examples"),
        (3, "role: r\nexamples:\n  - user: [not, text]\n    assistant: a\n", "examples[0].user"),
        (1, "role: {nested: mapping}\n", "role"),
    ],
)
def test_wrong_types(write, workspace, line, text, field):
    write("prompts/bad.yaml", text)
    message = _error("bad", workspace)
    assert message.startswith(f"prompts/bad.yaml:{line}: field {field!r}:"), message
    assert "(got " in message and " — " in message


def test_undefined_variable_is_caught_at_load_with_its_line(write, workspace):
    write(
        "prompts/bad.yaml",
        """
        variables: {product: Widget}
        role: |
          You support {{ product }}.
          Our company is {{ compnay }}.
        """,
    )
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:4: field 'role' uses undefined variable 'compnay'")
    assert "declare it under `variables:`" in message


def test_undefined_variable_in_an_example(write, workspace):
    write(
        "prompts/bad.yaml",
        "variables: {product: W}\nrole: r\nexamples:\n  - user: hi\n    assistant: 'I sell {{ produkt }}'\n",
    )
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:5: field 'examples[0].assistant' uses undefined variable 'produkt'")
    assert "did you mean 'product'?" in message


def test_undefined_attribute_at_render_time_names_the_line(write, workspace):
    write("prompts/bad.yaml", "variables: {user: Ann}\nrole: |\n  line one\n  Hello {{ user.first_name }}\n")
    message = _error("bad", workspace, [])
    assert message.startswith("prompts/bad.yaml:4: field 'role': UndefinedError")
    assert "first_name" in message


def test_unknown_variable_passed_to_render(write, workspace):
    write("prompts/ok.yaml", "variables: {product: W}\nrole: 'About {{ product }}'\n")
    message = _error("ok", workspace, [], {"prodcut": "X"})
    assert "has no variable 'prodcut'" in message and "did you mean 'product'?" in message


def test_jinja_syntax_error(write, workspace):
    write("prompts/bad.yaml", "role: |\n  fine\n  {% if x %}never closed\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:")
    assert "field 'role': Jinja syntax error" in message


def test_sandbox_blocks_attribute_escapes(write, workspace):
    write("prompts/bad.yaml", 'role: "{{ tools.__class__.__mro__ }}"\n')
    message = _error("bad", workspace, [])
    assert message.startswith("prompts/bad.yaml:1: field 'role': SecurityError")


def test_extends_cycle(write, workspace):
    write("prompts/a.yaml", "role: a\nextends: b\n")
    write("prompts/b.yaml", "# b\nextends: c\n")
    write("prompts/c.yaml", "# c\nrole: c\nextends: a\n")
    message = _error("a", workspace)
    assert message.startswith("prompts/c.yaml:3: field 'extends': extends cycle a -> b -> c -> a")
    assert "remove one `extends:`" in message


def test_extends_itself_by_path(write, workspace):
    write("prompts/me.yaml", "role: r\nextends: me.yaml\n")
    assert _error("me", workspace).startswith("prompts/me.yaml:2: field 'extends': extends cycle me -> me")


def test_extends_unknown_template_names_the_line(write, workspace):
    write("prompts/bad.yaml", "role: r\nextends: asistant\n")
    message = _error("bad", workspace)
    assert (
        message.startswith("prompts/bad.yaml:2: unknown prompt 'asistant'") and "did you mean 'assistant'?" in message
    )


def test_no_role_anywhere(write, workspace):
    write("prompts/bad.yaml", "description: nothing else\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:1: prompt 'bad' has no role") and "extends: assistant" in message


def test_duplicate_key(write, workspace):
    write("prompts/bad.yaml", "role: a\nrole: b\n")
    assert _error("bad", workspace).startswith("prompts/bad.yaml:2: field 'role' is set twice")


def test_empty_file_and_non_mapping(write, workspace):
    write("prompts/empty.yaml", "# nothing\n")
    write("prompts/list.yaml", "- a\n- b\n")
    assert _error("empty", workspace).startswith("prompts/empty.yaml:1: the file is empty")
    assert "expected a YAML mapping" in _error("list", workspace)


def test_reserved_variable_name(write, workspace):
    write("prompts/bad.yaml", "role: r\nvariables:\n  tools: x\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:3: field 'variables.tools':") and "reserved" in message
    assert "chatloom provides" in message


def test_yaml_anchors_and_aliases_are_refused(write, workspace):
    # A merge key (<<: *base) is an alias too; specs and prompts never need them (issue 30).
    write("prompts/bad.yaml", "name: bad\nrole: r\nexamples:\n  - &one {user: hi, assistant: hello}\n  - *one\n")
    message = _error("bad", workspace)
    assert message.startswith("prompts/bad.yaml:4: YAML anchor &one is not allowed"), message
    assert "write the repeated value out in full" in message
