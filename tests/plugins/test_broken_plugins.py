"""A plugin that fails is reported with file:line and skipped; it never crashes the CLI."""

import json

import pytest

from chatloom import plugins
from chatloom.cli.main import run
from chatloom.errors import PluginError, ToolError
from chatloom.prompts import list_prompts, load_prompt
from chatloom.tools.registry import resolve_tools

BROKEN = {
    "brokenplug/__init__.py": """
        import os

        raise RuntimeError("missing API key")
    """,
    "goodplug.py": """
        from langchain_core.tools import tool

        @tool
        def shout(text: str) -> str:
            '''Upper-case the text.'''
            return text.upper()

        def not_a_tool_object():
            pass

        NUMBER = 42
    """,
}
ENTRY_POINTS = {
    "chatloom.tools": {
        "broken_tool": "brokenplug:tool",
        "shout": "goodplug:shout",
        "louder": "goodplug:shout",
        "number": "goodplug:NUMBER",
    },
    "chatloom.prompts": {"broken_prompt": "brokenplug:PROMPT", "number_prompt": "goodplug:NUMBER"},
}


@pytest.fixture
def broken(fake_dist):
    return fake_dist("broken-plugin", ENTRY_POINTS, BROKEN)


def test_plugin_raising_on_import_is_a_plugin_error_with_file_and_line(broken):
    with pytest.raises(PluginError) as err:
        resolve_tools(["broken_tool"])
    message = str(err.value)
    assert "plugin 'broken_tool' from broken-plugin 1.0 (chatloom.tools) failed to load" in message
    assert f"{broken / 'brokenplug' / '__init__.py'}:3: RuntimeError: missing API key" in message
    assert "pip uninstall broken-plugin" in message
    assert plugins.problems() and plugins.problems()[0] is err.value


def test_other_plugins_of_the_same_package_still_work(broken):
    (shout,) = resolve_tools(["shout"])
    assert shout.invoke({"text": "hi"}) == "HI"


def test_entry_point_name_is_the_tool_name(broken):
    (louder,) = resolve_tools(["louder"])
    assert louder.name == "louder" and louder.invoke({"text": "a"}) == "A"


def test_entry_point_that_is_not_a_tool(broken):
    with pytest.raises(PluginError, match=r"gave a int, not a tool"):
        resolve_tools(["number"])


def test_broken_prompt_plugin_is_reported_in_the_listing_not_raised(broken):
    rows = {r.name: r for r in list_prompts()}
    assert "RuntimeError: missing API key" in rows["broken_prompt"].error
    assert "not a template" in rows["number_prompt"].error
    assert not rows["assistant"].error  # the rest still loads
    with pytest.raises(PluginError):
        load_prompt("broken_prompt")


def test_cli_survives_a_broken_plugin(broken, capsys):
    # --check reports every plugin, then fails (status 2) because some did
    assert run(["plugins", "list", "--check", "--json"]) == 2
    out, err = capsys.readouterr()
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["broken_tool"]["status"].startswith("error: plugin 'broken_tool'")
    assert rows["shout"]["status"] == "ok"
    failed = sum(r["status"] != "ok" for r in rows.values())
    assert err.strip() == (
        f"error: {failed} of {len(rows)} plugins failed the check — fix or uninstall the plugins marked error above"
    )
    assert run(["plugins", "list", "--check"]) == 2
    assert "missing API key" in capsys.readouterr().out
    assert run(["plugins", "list"]) == 0  # without --check nothing is imported, so nothing fails
    assert run(["prompts", "list"]) == 0
    out = capsys.readouterr().out
    assert "broken_prompt" in out and "error:" in out and "assistant" in out
    # asking for the broken plugin by name is a one-line error and exit status 2
    assert run(["prompts", "show", "broken_prompt"]) == 2
    assert "error: plugin 'broken_prompt'" in capsys.readouterr().err


def test_plugin_with_syntax_error(fake_dist):
    site = fake_dist("syntax-plugin", {"chatloom.tools": {"bad": "synplug:bad"}}, {"synplug.py": "def bad(:\n"})
    with pytest.raises(PluginError) as err:
        resolve_tools(["bad"])
    assert f"{site / 'synplug.py'}:1: SyntaxError" in str(err.value)


def test_unknown_group():
    with pytest.raises(PluginError, match="unknown plugin group"):
        plugins.discover("chatloom.nope")


def test_unknown_tool_error_lists_plugin_tools(broken):
    with pytest.raises(ToolError) as err:
        resolve_tools(["shuot"])
    assert "did you mean 'shout'?" in str(err.value) and "calculator" in str(err.value)


def test_plugin_template_errors_name_the_real_yaml_file(fake_dist):
    site = fake_dist(
        "yaml-plugin",
        {"chatloom.prompts": {"typo": "yamlplug:TYPO", "child": "yamlplug:CHILD"}},
        {
            "yamlplug/__init__.py": """
                from pathlib import Path
                HERE = Path(__file__).parent
                TYPO = HERE / "typo.yaml"
                CHILD = str(HERE / "child.yaml")
            """,
            "yamlplug/typo.yaml": "role: r\nexampels: []\n",
            "yamlplug/base.yaml": "role: plugin base role\n",
            "yamlplug/child.yaml": "extends: base.yaml\n",  # relative to the plugin's own folder
        },
    )
    with pytest.raises(Exception) as err:
        load_prompt("typo")
    assert str(err.value).startswith(f"{site / 'yamlplug' / 'typo.yaml'}:2: unknown field 'exampels'")
    assert load_prompt("child").role == "plugin base role"
    assert load_prompt("child").source == "plugin yaml-plugin"


def test_check_reads_the_yaml_each_prompt_plugin_declares(fake_dist, capsys):
    # Importing a prompt plugin only makes a path; the file behind it may be missing or invalid.
    site = fake_dist(
        "leaky-plugin",
        {"chatloom.prompts": {"gone": "leakyplug:GONE", "bad": "leakyplug:BAD", "fine": "leakyplug:FINE"}},
        {
            "leakyplug/__init__.py": """
                from importlib.resources import files
                GONE = files(__name__) / "gone.yaml"
                BAD = files(__name__) / "bad.yaml"
                FINE = files(__name__) / "fine.yaml"
            """,
            "leakyplug/bad.yaml": "role: r\nexampels: []\n",
            "leakyplug/fine.yaml": "role: a fine role\n",
        },
    )
    assert run(["plugins", "list", "--check", "--json"]) == 2
    out, err = capsys.readouterr()
    rows = {r["name"]: r["status"] for r in json.loads(out)}
    assert rows["gone"] == (
        f"error: prompt plugin 'gone' from leaky-plugin 1.0 points at {str(site / 'leakyplug' / 'gone.yaml')!r}, "
        "which is not installed — ship the YAML as package data (setuptools: `[tool.setuptools.package-data]` "
        '`leakyplug = ["*.yaml"]` in the plugin\'s pyproject.toml), then reinstall the plugin'
    )
    assert rows["bad"].startswith(f"error: {site / 'leakyplug' / 'bad.yaml'}:2: unknown field 'exampels'")
    assert rows["fine"] == "ok"
    assert err.startswith("error: ") and "plugins failed the check" in err and "Traceback" not in err
    # the table shows the hint's brackets as text
    assert run(["plugins", "list", "--check"]) == 2
    table = " ".join(capsys.readouterr().out.split())
    assert "[tool.setuptools.package-data]" in table and "gone.yaml" in table
