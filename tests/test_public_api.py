"""The public API is what ``__all__`` says: every name it lists resolves, in every module."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import chatloom


def _modules_with_all() -> list[str]:
    """Every chatloom module that declares ``__all__`` (found by parsing, not importing)."""
    root = Path(chatloom.__file__).parent
    found = []
    for info in pkgutil.walk_packages([str(root)], "chatloom."):
        if ".scaffold" in info.name:
            continue
        spec = importlib.util.find_spec(info.name)
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        if any(
            isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets) for n in tree.body
        ):
            found.append(info.name)
    return ["chatloom", *found]


MODULES = _modules_with_all()


def test_the_public_modules_are_found():
    assert {"chatloom", "chatloom.memory", "chatloom.models", "chatloom.prompts"} <= set(MODULES)


@pytest.mark.parametrize("module_name", MODULES)
def test_every_name_in_all_resolves(module_name):
    module = importlib.import_module(module_name)
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert missing == [], f"{module_name}.__all__ lists names it does not have: {missing}"
    assert len(set(module.__all__)) == len(module.__all__), f"{module_name}.__all__ repeats a name"


def test_the_package_exports_are_what_type_checkers_see():
    """``chatloom.__init__`` imports its names lazily; its TYPE_CHECKING block must list the same ones."""
    tree = ast.parse(Path(chatloom.__file__).read_text(encoding="utf-8"))
    typed = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in node.body
        if isinstance(sub, ast.ImportFrom)
        for alias in sub.names
    }
    assert typed == set(chatloom.__all__)


def test_import_chatloom_loads_nothing_heavy():
    """The lazy exports keep ``import chatloom`` (and the CLI's first screen) cheap."""
    code = "import sys, chatloom; print(sorted(m for m in ('langgraph', 'langchain_core', 'torch', 'chromadb', 'openai') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
