"""``./run``'s llama.cpp build (``./run _build-llama``), on stand-in pip and python executables.

The real build compiles for minutes; here ``.venv/bin/pip`` and ``.venv/bin/python`` are small
scripts that record what they were asked and succeed or fail on cue, so the tests check the
script's own promises: the venv is touched only by a complete wheel, a wheel that does not
import is uninstalled again, a failure leaves a ``failed`` mark and a log, and the install
waits for the foreground set-up to finish with pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PIP = """#!/usr/bin/env bash
echo "pip $*" >> "$CALLS"
if [ "$1" = wheel ]; then
  [ -n "${BUILD_FAILS:-}" ] && { echo "CMake Error: compiler exploded"; exit 1; }
  while [ $# -gt 0 ]; do [ "$1" = -w ] && dir=$2; shift; done
  mkdir -p "$dir" && touch "$dir/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
fi
exit 0
"""

PYTHON = """#!/usr/bin/env bash
case "$*" in
  *"import llama_cpp"*) echo "python import llama_cpp" >> "$CALLS"; [ -z "${IMPORT_FAILS:-}" ] ;;
  *find_spec*) [ -z "${LLAMA_ABSENT:-}" ] ;;
  *) exec "$REAL_PYTHON" "$@" ;;
esac
"""

CHATLOOM = """#!/usr/bin/env bash
echo "chatloom $*" >> "$CALLS"
"""


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of ./run and pyproject.toml with a stand-in venv whose set-up has finished."""
    shutil.copy(ROOT / "run", tmp_path / "run")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for name, text in (("pip", PIP), ("python", PYTHON), ("chatloom", CHATLOOM)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / ".venv" / ".chatloom-installed").write_text("all\n")
    return tmp_path


def build(checkout: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[str], str]:
    """``./run _build-llama [FOREGROUND_PID]`` as the background job runs it; (process, pip/python calls, build log)."""
    calls = checkout / "calls"
    calls.touch()
    done = subprocess.run(
        ["bash", "./run", "_build-llama", *args],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CALLS": str(calls), "REAL_PYTHON": sys.executable, **env},
    )
    return done, calls.read_text().splitlines(), done.stdout + done.stderr


def test_a_complete_wheel_is_installed_with_its_extra(checkout):
    done, calls, log = build(checkout)
    assert done.returncode == 0, log
    wheel = ".venv/llama-build/wheels/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    assert calls[0].startswith("pip wheel --no-deps -w .venv/llama-build/wheels llama-cpp-python[server]")
    assert f"pip install --no-input {wheel}[server]" in calls
    assert "python import llama_cpp" in calls  # checked before it counts as installed
    assert "llama.cpp is installed" in log
    assert not (checkout / ".venv/llama-build/failed").exists()
    assert not (checkout / ".venv/llama-build/wheels").exists()  # the wheel is not kept
    assert not (checkout / ".venv/llama-build/pid").exists()  # no build is running now


def test_a_failed_build_never_touches_the_venv(checkout):
    done, calls, log = build(checkout, BUILD_FAILS="1")
    assert done.returncode != 0
    assert [c for c in calls if c.startswith("pip ")] == [calls[0]]  # the wheel build, nothing else
    assert calls[0].startswith("pip wheel")
    assert "CMake Error: compiler exploded" in log and "the build failed" in log
    assert (checkout / ".venv/llama-build/failed").exists()
    assert not (checkout / ".venv/llama-build/pid").exists()


def test_a_wheel_that_does_not_import_is_uninstalled(checkout):
    done, calls, log = build(checkout, IMPORT_FAILS="1")
    assert done.returncode != 0
    install = next(i for i, c in enumerate(calls) if c.startswith("pip install"))
    assert calls.index("pip uninstall -y llama-cpp-python") > install  # never left half-installed
    assert "uninstalled it" in log
    assert (checkout / ".venv/llama-build/failed").exists()


def test_the_install_waits_for_the_foreground_set_up(checkout):
    (checkout / ".venv" / ".chatloom-installed").unlink()  # the foreground pip is still at work ...
    foreground = subprocess.Popen(["sleep", "60"])
    try:
        calls = checkout / "calls"
        calls.touch()
        job = subprocess.Popen(
            ["bash", "./run", "_build-llama", str(foreground.pid)],
            cwd=checkout,
            env={**os.environ, "CALLS": str(calls), "REAL_PYTHON": sys.executable},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(100):  # the wheel gets built meanwhile ...
            if any(line.startswith("pip wheel") for line in calls.read_text().splitlines()):
                break
            subprocess.run(["sleep", "0.1"])
        assert job.poll() is None
        assert not any(line.startswith("pip install") for line in calls.read_text().splitlines())
        (checkout / ".venv" / ".chatloom-installed").write_text("all\n")  # ... and now it is done
        out, _ = job.communicate(timeout=30)
        assert job.returncode == 0, out
        assert any(line.startswith("pip install") for line in calls.read_text().splitlines())
    finally:
        foreground.kill()
        foreground.wait()


def test_a_set_up_that_dies_first_gets_no_install(checkout):
    (checkout / ".venv" / ".chatloom-installed").unlink()  # the set-up never finished ...
    gone = subprocess.Popen(["true"])
    gone.wait()  # ... and its process is gone
    done, calls, log = build(checkout, str(gone.pid))
    assert done.returncode != 0
    assert "set-up stopped before it finished; not installing" in log
    assert not any(line.startswith("pip install") for line in calls)
    assert (checkout / ".venv/llama-build/failed").exists()


def chat(checkout: Path, **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """``./run`` (the chat) on the stand-in venv, llama.cpp missing; (process, calls)."""
    calls = checkout / "calls"
    calls.touch()
    done = subprocess.run(
        ["bash", "./run"],
        cwd=checkout,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "CALLS": str(calls), "REAL_PYTHON": sys.executable, "LLAMA_ABSENT": "1", **env},
    )
    return done, calls.read_text().splitlines()


def test_chat_after_a_failed_build_says_so_and_starts(checkout):
    (checkout / ".venv/llama-build").mkdir()
    (checkout / ".venv/llama-build/failed").touch()
    done, calls = chat(checkout)
    assert done.returncode == 0, done.stderr
    assert (
        "warning: the llama.cpp build failed (log: .venv/llama-build/build.log); chatting on transformers"
        in done.stderr
    )
    assert "Retry: rm .venv/llama-build/failed; ./run" in done.stderr
    assert not any(c.startswith("pip wheel") for c in calls)  # no new build on its own
    assert calls[-1] == "chatloom chat"


def test_chat_while_the_build_runs_does_not_start_another(checkout):
    (checkout / ".venv/llama-build").mkdir()
    builder = subprocess.Popen(["sleep", "60"])
    try:
        (checkout / ".venv/llama-build/pid").write_text(f"{builder.pid}\n")
        done, calls = chat(checkout)
    finally:
        builder.kill()
        builder.wait()
    assert done.returncode == 0, done.stderr
    assert "llama.cpp is still building in the background" in done.stderr
    assert not any(c.startswith("pip ") for c in calls)
    assert calls[-1] == "chatloom chat"
