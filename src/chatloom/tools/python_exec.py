"""The ``python`` tool: model-written code, run in the bubblewrap sandbox.

>>> from chatloom.tools.python_exec import python_tool
>>> python_tool.name, python_tool.metadata
('python', {'effect': 'code', 'trusted_output': True})
>>> print(python_tool.invoke({"code": "print(sum(range(10)))"}))   # doctest: +SKIP
exit status 0
stdout:
45
"""

from __future__ import annotations

import threading

from langchain_core.tools import BaseTool, StructuredTool

from chatloom.errors import ChatloomError
from chatloom.tools.sandbox import Limits, Sandbox

_DESCRIPTION = (
    "Run a Python 3 program in a sandbox and return its exit status, stdout and stderr. "
    "Use print() to show results (a final bare expression is printed too). Only the standard "
    "library is available; there is no network and no access to files outside /tmp; "
    "runs are limited to {wall:g} s and {mem} MiB."
)


def make_python_tool(sandbox: Sandbox | None = None, *, name: str = "python") -> BaseTool:
    """Build a ``python`` tool around ``sandbox`` (default: a :class:`Sandbox` with default limits).

    The sandbox is created on first use, so building the tool never fails; a machine without
    bubblewrap gets a tool message that says how to install it.
    """
    lock = threading.Lock()
    holder: dict[str, Sandbox] = {}
    limits = sandbox.limits if sandbox is not None else Limits()

    def get() -> Sandbox:
        with lock:
            if "sandbox" not in holder:
                holder["sandbox"] = sandbox if sandbox is not None else Sandbox()
            return holder["sandbox"]

    def run_python(code: str) -> str:
        try:
            return get().run(code).to_text()
        except ChatloomError as exc:
            return f"error: {exc}"

    tool = StructuredTool.from_function(
        func=run_python,
        name=name,
        description=_DESCRIPTION.format(wall=limits.wall_s, mem=limits.memory_mb),
    )
    # Output is a function of the code alone: the sandbox reads no files and no network.
    tool.metadata = {"effect": "code", "trusted_output": True}
    return tool


python_tool = make_python_tool()
"""The built-in ``python`` tool with default limits."""
python = python_tool  # the name the tool registry looks up
