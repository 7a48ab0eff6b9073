"""The sandbox's contract: results, refusal without bubblewrap, the loud unsafe opt-in, the tool."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from sandbox_gate import require_sandbox  # noqa: F401  (the fixture below)

from chatloom.errors import SandboxUnavailable
from chatloom.tools.python_exec import make_python_tool, python_tool
from chatloom.tools.sandbox import ExecResult, Limits, Sandbox, UnsafeExecutionWarning

# Fails in CI (CI=true, CHATLOOM_REQUIRE_SANDBOX=1) and skips elsewhere when the sandbox cannot run.
needs_bwrap = pytest.mark.usefixtures("require_sandbox")
FAST = Limits(wall_s=4.0, cpu_s=2)


@needs_bwrap
def test_returns_stdout_stderr_and_exit_status() -> None:
    result = Sandbox(FAST).run("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(3)")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 3)
    assert result.sandboxed and not result.ok
    assert result.to_text() == "exit status 3\nstdout:\nout\nstderr:\nerr"


@needs_bwrap
def test_final_expression_is_printed_like_a_repl() -> None:
    assert Sandbox(FAST).run("x = 17\nx * 23").stdout == "391\n"
    assert Sandbox(FAST).run("None").stdout == ""


@needs_bwrap
def test_tracebacks_point_at_the_models_code_only() -> None:
    result = Sandbox(FAST).run("def f():\n    return 1/0\nf()")
    assert result.exit_code == 1
    assert 'File "<code>", line 2, in f' in result.stderr and "return 1/0" in result.stderr
    assert "_BOOTSTRAP" not in result.stderr and "<string>" not in result.stderr
    syntax = Sandbox(FAST).run("def f(:")
    assert "SyntaxError" in syntax.stderr and "ast.py" not in syntax.stderr


@needs_bwrap
def test_stdin_is_passed_through() -> None:
    assert Sandbox(FAST).run("print(input().upper())", stdin="hello\n").stdout == "HELLO\n"


@needs_bwrap
def test_unread_stdin_cannot_block_past_the_wall_clock() -> None:
    result = Sandbox(Limits(wall_s=2, cpu_s=2)).run("import time\ntime.sleep(60)", stdin="x" * 500_000)
    assert result.timed_out and result.duration_s < 4


@needs_bwrap
def test_standard_library_works_and_site_packages_are_opt_in() -> None:
    code = "import json, decimal, fractions, statistics, sqlite3, datetime, re\nprint('ok')"
    assert Sandbox(FAST).run(code).stdout == "ok\n"
    assert "ModuleNotFoundError" in Sandbox(FAST).run("import langchain_core").stderr
    with_site = Sandbox(FAST, site_packages=True).run("import langchain_core; print('imported')")
    assert with_site.stdout == "imported\n", with_site.to_text()


def test_missing_bwrap_refuses_with_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATLOOM_UNSAFE_EXEC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    sandbox = Sandbox()
    with pytest.raises(SandboxUnavailable) as info:
        sandbox.run("print(1)")
    assert "apt-get install -y bubblewrap" in str(info.value)
    assert "CHATLOOM_UNSAFE_EXEC=1" in str(info.value)
    assert not Sandbox.available(bwrap="/nonexistent/bwrap")


def test_missing_bwrap_reaches_the_model_as_a_tool_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATLOOM_UNSAFE_EXEC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    tool = make_python_tool()
    message = tool.invoke({"code": "print('must not run')"})
    assert message.startswith("error: bubblewrap ('bwrap') is not installed")
    assert "must not run" not in message


def test_broken_bwrap_is_reported_not_bypassed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHATLOOM_UNSAFE_EXEC", raising=False)
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="No permissions to create new namespace"):
        Sandbox(bwrap=str(fake)).run("print(1)")


def test_unsafe_opt_in_warns_loudly_every_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHATLOOM_UNSAFE_EXEC", "1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unsafe-canary")
    sandbox = Sandbox(FAST)
    assert sandbox.unsafe
    with caplog.at_level(logging.WARNING, logger="chatloom.tools.sandbox"):
        with pytest.warns(UnsafeExecutionWarning, match="WITHOUT a sandbox"):
            result = sandbox.run("import os\nprint(os.environ.get('OPENAI_API_KEY'))")
    assert "UNSAFE" in caplog.text
    assert not result.sandboxed and "WITHOUT a sandbox" in result.to_text()
    # Even unsafe runs get an empty environment and limits.
    assert result.stdout == "None\n"
    with pytest.warns(UnsafeExecutionWarning):
        looping = Sandbox(Limits(wall_s=4, cpu_s=1), unsafe=True).run("while True: pass")
    assert looping.exit_code == -24 and "SIGXCPU" in looping.to_text()


def test_unsafe_flag_false_overrides_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATLOOM_UNSAFE_EXEC", "1")
    assert not Sandbox(unsafe=False).unsafe


@needs_bwrap
def test_python_tool_shape_and_output() -> None:
    assert python_tool.name == "python"
    assert python_tool.metadata == {"effect": "code", "trusted_output": True}
    assert python_tool.invoke({"code": "print(sum(range(10)))"}) == "exit status 0\nstdout:\n45"
    assert "killed by SIGXCPU" in make_python_tool(Sandbox(Limits(wall_s=5, cpu_s=1))).invoke({"code": "while 1: pass"})


@needs_bwrap
@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv") or not Path("/usr/bin/python3").exists(),
    reason="needs root (to become nobody) and a system /usr/bin/python3",
)
def test_unprivileged_caller_path_works(tmp_path: Path) -> None:
    """The common case, a normal user: bwrap with a user namespace and --disable-userns."""
    src = Path(__file__).resolve().parents[2] / "src"
    script = (
        "from chatloom.tools.sandbox import Sandbox, Limits\n"
        "s = Sandbox(Limits(wall_s=4, cpu_s=2), python='/usr/bin/python3')\n"
        'r = s.run(\'import os, ctypes\\nprint(os.getuid(), sorted(os.listdir("/")))\\n'
        "print(ctypes.CDLL(None).unshare(0x10000000))')\n"
        "print(r.to_text())\n"
        "r = s.run('import os\\nn = 0\\ntry:\\n    while True:\\n        os.fork() or os._exit(0) if False else None\\n"
        "        pid = os.fork()\\n        if pid == 0:\\n            import time; time.sleep(2); os._exit(0)\\n        n += 1\\n"
        'except OSError: print("nproc stopped at", n)\')\n'
        "print(r.to_text())\n"
    )
    import tempfile

    import pyseccomp  # pure Python: the system interpreter can import a copy of it

    with tempfile.TemporaryDirectory(dir="/tmp") as lib:  # pytest's tmp_path is 0700 root
        os.chmod(lib, 0o755)
        shutil.copy(pyseccomp.__file__, lib)
        out = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", script],
            capture_output=True,
            text=True,
            cwd="/tmp",
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{src}:{lib}"},
            timeout=60,
        )
    if "No module named" in out.stderr:
        pytest.skip(f"system python lacks a dependency: {out.stderr.strip().splitlines()[-1]}")
    assert "exit status 0" in out.stdout, out.stdout + out.stderr
    assert "65534 ['bin', 'dev', 'lib'" in out.stdout
    assert "\n-1\n" in out.stdout  # nested user namespaces are disabled
    assert "nproc stopped at" in out.stdout


def test_exec_result_text_forms() -> None:
    assert ExecResult("", "", 0).to_text() == "exit status 0\n(no output)"
    assert ExecResult("", "", None, timed_out=True).to_text().startswith("killed: wall-clock")
    assert ExecResult("x", "", -9).to_text().startswith("killed by SIGKILL")


@needs_bwrap
def test_an_interpreter_that_cannot_start_inside_is_named(tmp_path: Path) -> None:
    prefix = tmp_path / "py"
    (prefix / "bin").mkdir(parents=True)
    fake = prefix / "bin" / "python3"
    fake.write_text("#!/nonexistent/interpreter\n")
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="does not start inside the sandbox"):
        Sandbox(python=str(fake)).check()
