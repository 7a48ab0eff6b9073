"""resolve_tools: built-ins by name, then plugins, then the workspace's tools/*.py (loaded on demand)."""

import sys
from pathlib import Path
from textwrap import dedent

import pytest

from chatloom.errors import ToolError
from chatloom.tools import registry
from chatloom.tools.registry import BUILTIN_TOOLS, available_tools, resolve_tools

REPO = Path(__file__).resolve().parents[2]


def _tools_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "tools").mkdir(exist_ok=True)
    for name, text in files.items():
        (tmp_path / "tools" / name).write_text(dedent(text).lstrip("\n"))
    return tmp_path


def test_builtin_calculator():
    (calc,) = resolve_tools(["calculator"])
    assert calc.name == "calculator" and calc.invoke({"expression": "17*23"}) == "391"


def test_builtin_table_is_lazy_strings():
    assert BUILTIN_TOOLS["calculator"] == "chatloom.tools.calculator:calculator"
    assert set(BUILTIN_TOOLS) == {"calculator", "python", "search", "web_search"}


def test_unknown_tool_lists_available_names(tmp_path):
    with pytest.raises(ToolError) as err:
        resolve_tools(["calculater"], tmp_path)
    message = str(err.value)
    assert message.startswith("unknown tool 'calculater' — did you mean 'calculator'?")
    for name in BUILTIN_TOOLS:
        assert name in message


def test_workspace_tool_is_found_by_ast_and_imported_only_when_named(tmp_path, monkeypatch):
    ws = _tools_dir(
        tmp_path,
        {
            "greet.py": """
                import json  # noqa
                from langchain_core.tools import tool

                LOADED = True

                @tool
                def greet(name: str) -> str:
                    '''Greet someone by name.'''
                    return f"hello {name}"

                @tool("shout_it")
                def _shout(text: str) -> str:
                    '''Upper-case text.'''
                    return text.upper()
            """,
            "other.py": "raise RuntimeError('must not be imported')\n",
        },
    )
    infos = {t.name: t for t in available_tools(ws)}
    assert infos["greet"].source == "workspace" and infos["greet"].location.endswith("tools/greet.py:7")
    assert "shout_it" in infos
    assert not any("greet" in m for m in sys.modules if m.startswith("chatloom_workspace_tools"))
    greet, shout = resolve_tools(["greet", "shout_it"], ws)
    assert greet.invoke({"name": "Ann"}) == "hello Ann"
    assert shout.invoke({"text": "a"}) == "A"
    # other.py raises on import, but no spec named one of its tools, so it never ran


def test_workspace_tool_that_fails_to_import_names_file_and_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ws = _tools_dir(
        tmp_path,
        {
            "broken.py": """
                from langchain_core.tools import tool
                import not_a_real_module_xyz

                @tool
                def broken(x: str) -> str:
                    '''Broken.'''
                    return x
            """,
            "typo.py": "from langchain_core.tools import tool\n\n@tool\ndef typo(x: str) -> str\n    return x\n",
        },
    )
    with pytest.raises(ToolError) as err:
        resolve_tools(["broken"], ws)
    assert str(err.value).startswith("tools/broken.py:2: ModuleNotFoundError: No module named 'not_a_real_module_xyz'")
    with pytest.raises(ToolError) as err:
        resolve_tools(["typo"], ws)
    assert str(err.value).startswith("tools/typo.py:4: SyntaxError")


def test_workspace_function_without_tool_decorator_is_not_listed(tmp_path):
    ws = _tools_dir(tmp_path, {"helpers.py": "def helper(x: int) -> int:\n    '''Help.'''\n    return x\n"})
    assert "helper" not in {t.name for t in available_tools(ws)}
    with pytest.raises(ToolError, match="unknown tool 'helper'"):
        resolve_tools(["helper"], ws)


def test_builtins_win_over_workspace_tools(tmp_path):
    ws = _tools_dir(tmp_path, {"calculator.py": "raise RuntimeError('never imported')\n"})
    (calc,) = resolve_tools(["calculator"], ws)
    assert calc.invoke({"expression": "1+1"}) == "2"


def test_missing_builtin_module_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(registry.BUILTIN_TOOLS, "ghost", "chatloom.tools.ghost_module:ghost")
    with pytest.raises(ToolError, match=r"built-in tool 'ghost' is not part of this chatloom build"):
        resolve_tools(["ghost"])


def test_reference_workspace_demo_tool():
    (convert,) = resolve_tools(["unit_convert"], REPO)
    assert convert.metadata == {"effect": "read"}
    assert convert.invoke({"value": 5, "from_unit": "mi", "to_unit": "km"}) == "5 mi = 8.04672 km"
    assert convert.invoke({"value": 100, "from_unit": "c", "to_unit": "f"}) == "100 c = 212 f"
    assert convert.invoke({"value": 1, "from_unit": "kg", "to_unit": "km"}).startswith("error: can't convert mass")
    assert convert.invoke({"value": 1, "from_unit": "parsec", "to_unit": "km"}).startswith(
        "error: unknown unit 'parsec'"
    )
