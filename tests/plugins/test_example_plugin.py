"""The example plugin package, really pip-installed, is found through its entry points."""

import json
import os
import subprocess
import sys
from pathlib import Path

from langchain_core.messages import AIMessage

from chatloom import plugins
from chatloom.cli.main import run
from chatloom.prompts import list_prompts, load_prompt
from chatloom.tools.registry import available_tools, resolve_tools


def test_discovery_lists_entry_points_without_importing(example_plugin):
    found = plugins.discover("chatloom.tools")
    assert found["word_count"].dist == "chatloom-example-plugin"
    assert found["word_count"].value == "chatloom_example_plugin:word_count"
    assert "haiku" in plugins.discover("chatloom.prompts")
    assert "chatloom_example_plugin" not in sys.modules  # lazy: nothing imported yet
    assert any(t.name == "word_count" and t.source == "plugin chatloom-example-plugin" for t in available_tools())
    assert "chatloom_example_plugin" not in sys.modules


def test_plugin_tool_resolves_and_runs(example_plugin):
    (word_count,) = resolve_tools(["word_count"])
    assert word_count.name == "word_count"
    assert word_count.metadata == {"effect": "read"}
    assert word_count.invoke({"text": "one two\nthree"}) == "3 words, 2 lines, 13 characters"


def test_plugin_prompt_loads_and_renders(example_plugin):
    template = load_prompt("haiku")
    assert template.source == "plugin chatloom-example-plugin"
    messages = template.render([], {"season": "winter"})
    assert "image of winter" in messages[0].content
    assert isinstance(messages[-1], AIMessage) and "winter leaves return" in messages[-1].content
    row = next(r for r in list_prompts() if r.name == "haiku")
    assert row.source == "plugin chatloom-example-plugin" and not row.error


def test_workspace_prompt_shadows_plugin_prompt(example_plugin, tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "haiku.yaml").write_text("extends: haiku\nvariables: {season: spring}\n")
    template = load_prompt("haiku", tmp_path)
    assert template.source == "workspace"
    assert "image of spring" in template.system_text([])  # role inherited from the plugin's haiku


def test_cli_plugins_list_and_prompts_render(example_plugin, capsys):
    assert run(["plugins", "list"]) == 0
    out = capsys.readouterr().out
    assert "word_count" in out and "haiku" in out and "chatloom-example-plugin" in out
    assert run(["plugins", "list", "--check", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {(r["name"], r["status"]) for r in rows} >= {("word_count", "ok"), ("haiku", "ok")}
    assert run(["prompts", "render", "haiku", "--tool", "word_count", "--var", "season=summer"]) == 0
    out = capsys.readouterr().out
    assert "word_count(text: string)" in out and "summer leaves return" in out


def test_installed_plugin_is_seen_by_a_fresh_process(example_plugin_target):
    env = {**os.environ, "PYTHONPATH": str(example_plugin_target)}
    code = "from chatloom.plugins import discover; print(sorted(discover('chatloom.tools')))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert "word_count" in out


def test_plugin_author_code_fits_on_one_screen():
    root = Path(__file__).resolve().parents[2] / "examples" / "chatloom-example-plugin"
    code = (root / "src" / "chatloom_example_plugin" / "__init__.py").read_text()
    assert len(code.splitlines()) <= 25


def test_check_fails_when_the_wheel_left_the_prompt_yaml_out(unpackaged_example_plugin, capsys):
    # Built without the package-data line, the plugin installs and imports fine; only `--check`
    # (or its first use) finds that haiku.yaml never shipped.
    assert run(["plugins", "list", "--check", "--json"]) == 2
    out, err = capsys.readouterr()
    rows = {r["name"]: r["status"] for r in json.loads(out)}
    assert rows["word_count"] == "ok"  # the tool is code: it shipped
    assert rows["haiku"].startswith("error: prompt plugin 'haiku' from chatloom-example-plugin 0.1.0 points at")
    assert "haiku.yaml" in rows["haiku"] and "which is not installed" in rows["haiku"]
    assert '`chatloom_example_plugin = ["*.yaml"]`' in rows["haiku"]
    assert err.startswith("error: ") and "failed the check" in err
