"""The docs' Python blocks: the ones marked runnable run, and none uses a name it doesn't define.

A ```` ```python ```` block in README.md or docs/*.md whose fence line comes right after a
``<!-- runnable -->`` line is run by :func:`test_runnable_block`, each in a fresh interpreter:
- the working dir is a fresh temp dir holding a copy of the reference workspace (``agents/``,
  ``prompts/``, ``tools/``, ``memory/``) and ``examples/``, as a checkout of this repository is;
- ``CHATLOOM_HOME`` is an empty temp dir, ``CHATLOOM_MODEL`` is ``fake:echo`` (so ``Agent()``
  answers "You said: ..." with no weights), and no other ``CHATLOOM_*`` or API key is inherited;
- any connection to a host other than this one fails, and the Hugging Face hub is offline;
- ``python`` on ``PATH`` is the interpreter running the tests;
- top-level ``await`` works (as in ``python -m asyncio``), and a block of ``>>>`` lines is a
  doctest, so its shown output is checked too;
- a warning logged by chatloom (an MCP server that didn't start, say) fails the block.
A failing block fails with its file:line, and its traceback's lines are the markdown file's.
"""

from __future__ import annotations

import ast
import builtins
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
# What a block's working dir holds: the reference bot workspace and the examples.
WORKSPACE = ("agents", "prompts", "tools", "memory", "examples")
TIMEOUT = 300


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # the first line of code (the line after the opening fence), 1-based
    code: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


_FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\S*)")


def blocks(path: Path, text: str | None = None) -> list[Block]:
    """Every fenced Python block of a markdown file, with whether it is marked runnable."""
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        ticks, lang = fence.group(1), fence.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == ticks), len(lines))
        if lang in ("python", "py", "pycon"):
            runnable = i > 0 and lines[i - 1].strip() == MARKER
            found.append(Block(path, i + 2, "\n".join(lines[i + 1 : end]) + "\n", runnable))
        i = end + 1
    return found


ALL = [b for path in DOCS for b in blocks(path)]
RUNNABLE = [b for b in ALL if b.runnable]


def stray_markers(path: Path, text: str | None = None) -> list[int]:
    """Lines of markers that mark no Python block (a typo, a blank line before the fence)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    marking = {b.line - 2 for b in blocks(path, text) if b.runnable}  # the line before the fence
    return [n for n, line in enumerate(text.splitlines(), 1) if line.strip() == MARKER and n not in marking]


def test_blocks_and_markers_are_read_as_written():
    text = "<!-- runnable -->\n```python\nx = 1\n```\n\n<!-- runnable -->\n\n```python\ny = 2\n```\n<!-- runnable -->\n```bash\nls\n```\n"
    found = blocks(ROOT / "x.md", text)
    assert [(b.line, b.code, b.runnable) for b in found] == [(3, "x = 1\n", True), (9, "y = 2\n", False)]
    assert stray_markers(ROOT / "x.md", text) == [6, 11]


def test_markers_each_mark_a_python_block():
    stray = [f"{path.relative_to(ROOT)}:{n}" for path in DOCS for n in stray_markers(path)]
    assert not stray, f"{MARKER} must be the line right before a ```python fence: {', '.join(stray)}"


def test_the_readme_library_section_is_runnable():
    # The quick start is what a new user copies first; it must not rot unnoticed.
    readme = [b for b in RUNNABLE if b.path.name == "README.md"]
    assert any("Agent()" in b.code for b in readme), "README's library quick start is not marked runnable"
    assert any("FakeChatModel" in b.code for b in readme), "README's FakeChatModel example is not marked runnable"


# -- no undefined names -----------------------------------------------------------------------


def _source(block: Block) -> str:
    """The block as Python: a ``>>>`` block's statements, with its shown output dropped."""
    if not block.code.lstrip().startswith(">>>"):
        return block.code
    return "\n".join(line[4:] for line in block.code.splitlines() if line.startswith((">>> ", "... ")))


def undefined_names(source: str) -> dict[str, int]:
    """Names a piece of code reads but neither binds anywhere nor gets from builtins, each with
    the (1-based) line of the code where it is first read.

    Flow-insensitive on purpose: a name bound anywhere in the block counts as defined, so this
    catches only what a reader can't find at all (a variable from another block, a missing
    import), never a false alarm on an ordering the code itself gets right.
    """
    tree = ast.parse(source)
    bound: set[str] = set(dir(builtins)) | {"__name__", "__file__"}
    read: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Load):
                read[node.id] = min(read.get(node.id, node.lineno), node.lineno)
            else:
                bound.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            bound.update(node.names)
    return {name: line for name, line in sorted(read.items(), key=lambda kv: kv[1]) if name not in bound}


def test_undefined_names_finds_what_a_block_does_not_define():
    # The README's grounded-answers snippet once read `memory` it never defined.
    assert undefined_names("reply = Agent(memory=memory).chat('hi')\nreply.answer\nmemory\n") == {
        "Agent": 1,
        "memory": 1,
    }
    ok = "from x import f\nfor i in range(3):\n    f(i, key=lambda v: v)\n[y for y in [1]]\nclass C:\n    def m(self, a): return a\n"
    assert undefined_names(ok) == {}


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_block_defines_the_names_it_uses(block: Block):
    try:
        missing = undefined_names(_source(block))
    except SyntaxError as exc:
        pytest.fail(f"{block.path.relative_to(ROOT)}:{block.line + (exc.lineno or 1) - 1}: not Python: {exc.msg}")
    where = [f"{name} ({block.path.relative_to(ROOT)}:{block.line + line - 1})" for name, line in missing.items()]
    assert not missing, f"{block.where}: the block uses names it never defines or imports: {', '.join(where)}"


# -- running the marked blocks ----------------------------------------------------------------

# Runs in the block's interpreter: refuse connections off this host, then run the block compiled
# with the markdown file as its file name, padded so that traceback lines are the file's lines.
_RUNNER = r"""
import ast, asyncio, doctest, inspect, ipaddress, logging, socket, sys

_connect = socket.socket.connect

def _local_only(self, address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise OSError(f"no network in a docs block: connection to {address!r} refused")
    return _connect(self, address)

socket.socket.connect = _local_only


class _Warnings(logging.Handler):
    # A warning chatloom logs (an MCP server that didn't start, a plugin skipped) fails the
    # block: a documented example should run clean, not limp past a broken part.
    records = []

    def emit(self, record):
        self.records.append(self.format(record))


logging.getLogger("chatloom").addHandler(_Warnings(logging.WARNING))
path, line, code = sys.argv[1], int(sys.argv[2]), open(sys.argv[3], encoding="utf-8").read()
sys.argv = [path]
namespace = {"__name__": "__main__"}
if code.lstrip().startswith(">>>"):
    test = doctest.DocTestParser().get_doctest(code, namespace, path, path, line - 1)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    sys.exit(1 if runner.failures else 0)
compiled = compile("\n" * (line - 1) + code, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
result = eval(compiled, namespace)
if inspect.iscoroutine(result):
    asyncio.run(result)
if _Warnings.records:
    sys.exit("the block ran, but chatloom logged warnings:\n" + "\n".join(_Warnings.records))
"""


def block_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith("CHATLOOM_") and not k.endswith("_API_KEY")}
    return {
        **keep,
        "CHATLOOM_HOME": str(home),
        "CHATLOOM_MODEL": "fake:echo",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "NO_COLOR": "1",
        # `python` in a block (an MCP server's command) is this interpreter, as in an active venv.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), keep.get("PATH", "")]),
    }


@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.where)
def test_runnable_block(block: Block, tmp_path: Path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    for name in WORKSPACE:
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    script = tmp_path / "block.py"
    script.write_text(block.code, encoding="utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER, str(block.path), str(block.line), str(script)],
            cwd=work,
            env=block_env(home),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{block.where}: the block ran longer than {TIMEOUT} s", pytrace=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()[-4000:]
        pytest.fail(f"{block.where}: the block failed (exit {done.returncode}):\n{output}", pytrace=False)
