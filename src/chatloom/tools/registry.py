"""Find tools by name: built-ins, then plugins (``chatloom.tools``), then the workspace's ``tools/*.py``.

Nothing is imported until a name is asked for: the built-in table maps names to
``module:attribute`` strings, plugins are entry points, and workspace files are read with
``ast`` to learn which tools they define. A workspace file is executed only when an agent spec
names one of its tools.

>>> [t.name for t in resolve_tools(["calculator"])]
['calculator']
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatloom.errors import PluginError, ToolError, closest_name

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

BUILTIN_TOOLS: dict[str, str] = {
    "calculator": "chatloom.tools.calculator:calculator",
    "python": "chatloom.tools.python_exec:python",
    "search": "chatloom.tools.search:search",
    "web_search": "chatloom.tools.web:web_search",
}


@dataclass(frozen=True)
class ToolInfo:
    """Where a tool name comes from, known without importing it."""

    name: str
    source: str  # "builtin", "plugin <dist>", "workspace"
    location: str  # "module:attr" or "tools/file.py:line"


def available_tools(workspace: Path | str | None = None) -> list[ToolInfo]:
    """Every tool name that :func:`resolve_tools` can find, in lookup order. Imports nothing."""
    from chatloom import plugins

    rows = [ToolInfo(name, "builtin", target) for name, target in BUILTIN_TOOLS.items()]
    rows += [ToolInfo(p.name, f"plugin {p.dist}", p.value) for p in plugins.discover("chatloom.tools").values()]
    for path, names in _scan_workspace(workspace).items():
        rows += [ToolInfo(name, "workspace", f"{_display(path)}:{line}") for name, line in names.items()]
    return rows


def resolve_tools(names: Iterable[str], workspace: Path | str | None = None) -> list[BaseTool]:
    """The tools called ``names``, in order; an unknown name is a ToolError listing the known ones."""
    return [resolve_tool(name, workspace) for name in names]


def resolve_tool(name: str, workspace: Path | str | None = None) -> BaseTool:
    """One tool by name: built-in, then plugin entry point, then the workspace's ``tools/*.py``."""
    from chatloom import plugins

    if name in BUILTIN_TOOLS:
        return _named(_load_builtin(name), name)
    plugin = plugins.discover("chatloom.tools").get(name)
    if plugin is not None:
        return _named(_as_tool(plugin.load(), f"plugin {plugin.label}"), name)
    for path, found in _scan_workspace(workspace).items():
        if name in found:
            return _load_workspace_tool(path, name, found[name])
    known = [t.name for t in available_tools(workspace)]
    close = closest_name(name, known)
    guess = f"did you mean {close!r}? " if close else ""
    raise ToolError(
        f"unknown tool {name!r}",
        f"{guess}available: {', '.join(known)}; or add a @tool named {name} to the workspace's tools/",
    )


# -- built-ins and plugins -----------------------------------------------------------------------


def _load_builtin(name: str) -> Any:
    module_name, attr = BUILTIN_TOOLS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise ToolError(
                f"built-in tool {name!r} needs the missing package {exc.name!r}",
                f"pip install {exc.name}",
            ) from None
        raise ToolError(
            f"built-in tool {name!r} is not part of this chatloom build ({module_name} is missing)",
            "remove it from the spec's tools:, or upgrade chatloom",
        ) from None
    return getattr(module, attr)


def _as_tool(obj: Any, where: str) -> BaseTool:
    from langchain_core.tools import BaseTool, tool

    if isinstance(obj, BaseTool):
        return obj
    if callable(obj) and getattr(obj, "__doc__", None):
        return tool(obj)  # a typed function with a docstring is a whole tool
    raise PluginError(
        f"{where} gave a {type(obj).__name__}, not a tool",
        "point the entry point at a @tool (from langchain_core.tools) or a typed function with a docstring",
    )


def _named(tool: BaseTool, name: str) -> BaseTool:
    # The spec names tools by their entry-point name; the model must see the same name.
    return tool if tool.name == name else tool.model_copy(update={"name": name})


# -- workspace tools/*.py --------------------------------------------------------------------------


def _scan_workspace(workspace: Path | str | None) -> dict[Path, dict[str, int]]:
    """``{file: {tool name: line}}`` for ``workspace/tools/*.py``, read with ``ast`` (no import)."""
    if workspace is None:
        return {}
    folder = Path(workspace) / "tools"
    if not folder.is_dir():
        return {}
    out: dict[Path, dict[str, int]] = {}
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except SyntaxError as exc:
            # listed under its file name so that asking for it reports the syntax error
            out[path] = {path.stem: exc.lineno or 1}
            continue
        except (OSError, UnicodeDecodeError):
            continue
        out[path] = _tools_in(tree)
    return out


def _tools_in(tree: ast.Module) -> dict[str, int]:
    found: dict[str, int] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = node.name
            for deco in node.decorator_list:
                if isinstance(deco, ast.Call) and _callee(deco.func) == "tool":
                    name = _str_arg(deco) or name
            decorated = any(_callee(d.func if isinstance(d, ast.Call) else d) == "tool" for d in node.decorator_list)
            if decorated and not name.startswith("_"):
                found.setdefault(name, node.lineno)
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
            if _callee(node.value.func) in ("tool", "from_function"):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        found.setdefault(_kwarg(node.value, "name") or target.id, node.lineno)
    return found


def _callee(func: ast.AST) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _str_arg(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str):
        return call.args[0].value
    return _kwarg(call, "name_or_callable")


def _kwarg(call: ast.Call, key: str) -> str | None:
    for kw in call.keywords:
        if kw.arg == key and isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
            return kw.value.value
    return None


_MODULES: dict[tuple[str, float], Any] = {}


def _load_workspace_tool(path: Path, name: str, line: int) -> BaseTool:
    from langchain_core.tools import BaseTool

    module = _import_file(path)
    candidates = [v for v in vars(module).values() if isinstance(v, BaseTool) and v.name == name]
    if candidates:
        return candidates[0]
    obj = getattr(module, name, None)
    if callable(obj) and not isinstance(obj, type):
        return _named(_as_tool(obj, f"{_display(path)}:{line}"), name)
    raise ToolError(
        f"{_display(path)}:{line}: {name!r} is not a tool",
        "decorate it with @tool (from langchain_core.tools import tool) and give it a docstring",
    )


def _import_file(path: Path) -> Any:
    key = (str(path.resolve()), path.stat().st_mtime)
    if key in _MODULES:
        return _MODULES[key]
    digest = hashlib.sha1(key[0].encode()).hexdigest()[:10]
    module_name = f"chatloom_workspace_tools_{digest}_{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # pydantic and dataclasses look their module up here
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - user code: report it with its location
        sys.modules.pop(module_name, None)
        raise ToolError(
            f"{_location(exc, path)}: {type(exc).__name__}: {exc} (loading workspace tools from {_display(path)})",
            "fix the error at that line; the file runs when an agent spec names one of its tools",
        ) from None
    _MODULES[key] = module
    return module


def _location(exc: BaseException, path: Path) -> str:
    """``file:line`` of the innermost frame of ``exc`` inside ``path`` (else the file itself)."""
    import traceback

    if isinstance(exc, SyntaxError) and exc.filename:
        return f"{_display(Path(exc.filename))}:{exc.lineno}"
    target = str(path.resolve())
    lines = [
        f.lineno
        for f in traceback.extract_tb(exc.__traceback__)
        if f.filename and str(Path(f.filename).resolve()) == target
    ]
    return f"{_display(path)}:{lines[-1]}" if lines else _display(path)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
