"""Isolation between runs and from the host: what one conversation's code can do to another's.

- the process limit is per run (a uid of its own as root, a user namespace of its own otherwise);
- a key one run writes never reaches the next run, nor the host's session keyring;
- the seccomp filter names every call the hardening issue lists, and without the filter
  (pyseccomp or libseccomp missing) code is refused, not run unfiltered;
- where CI requires the sandbox, an unusable one fails the suite instead of skipping it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from keyring_canary import find_in_session, host_keyring_canary, syscall_numbers  # noqa: F401  (fixture)
from sandbox_gate import gate, require_sandbox, sandbox_problem, sandbox_required  # noqa: F401  (fixture)

from chatloom.errors import SandboxUnavailable
from chatloom.tools.sandbox import Limits, Sandbox

PROJECT = Path(__file__).resolve().parents[2]


def _host_processes_with(needle: bytes) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if needle in Path(f"/proc/{entry}/cmdline").read_bytes():
                    count += 1
            except OSError:
                pass
    return count


@pytest.mark.usefixtures("require_sandbox")
def test_one_sandbox_cannot_spend_another_conversations_process_limit() -> None:
    limits = Limits(wall_s=8, cpu_s=2, processes=16)
    marker = f"{time.time_ns() % 10**6}.25"  # a sleep length no other process on the host uses
    hog_code = f"import subprocess, time\nps = [subprocess.Popen(['sleep', '{marker}']) for _ in range(15)]\nprint('holding', len(ps))\ntime.sleep(3)"
    results = []
    hog = threading.Thread(target=lambda: results.append(Sandbox(limits).run(hog_code)))
    hog.start()
    try:
        deadline = time.monotonic() + 6
        while _host_processes_with(b"sleep\0" + marker.encode()) < 15 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _host_processes_with(b"sleep\0" + marker.encode()) == 15, "the first sandbox never held its 15 sleepers"
        other = Sandbox(limits).run(
            "import subprocess, threading\nt = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
            "print(subprocess.run(['echo', 'started'], capture_output=True, text=True).stdout.strip())"
        )
        assert other.ok and other.stdout == "thread\nstarted\n", other.to_text()
    finally:
        hog.join(15)
    assert results and "holding 15" in results[0].stdout, results[0].to_text() if results else "no result"


@pytest.mark.usefixtures("require_sandbox")
def test_concurrent_runs_get_uids_of_their_own() -> None:
    if os.geteuid() != 0:
        pytest.skip("as a normal user each run has a user namespace of its own; uids are per run as root only")
    sandbox = Sandbox(Limits(wall_s=6, cpu_s=2))
    outputs: list[str] = []
    code = "import os, time\nprint(os.getuid())\ntime.sleep(0.7)"
    threads = [threading.Thread(target=lambda: outputs.append(sandbox.run(code).stdout)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    uids = {int(out) for out in outputs}
    assert len(outputs) == 4 and len(uids) == 4, outputs
    assert not uids & {0, 65534}


@pytest.mark.usefixtures("require_sandbox", "host_keyring_canary")
def test_a_key_one_run_writes_never_reaches_the_next_run_or_the_host() -> None:
    nr = syscall_numbers()
    prelude = "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
    write = prelude + "".join(
        f"print('add', {ring}, libc.syscall({nr['add_key']}, b'user', b'chatloom-channel', b'hello', 5, {ring}))\n"
        for ring in (-3, -4, -5)
    )
    read = (
        prelude
        + f"print('request', libc.syscall({nr['request_key']}, b'user', b'chatloom-channel', None, 0))\n"
        + "".join(
            f"print('search', {ring}, libc.syscall({nr['keyctl']}, 10, {ring}, b'user', b'chatloom-channel', 0))\n"
            for ring in (-3, -4, -5)
        )
    )
    sandbox = Sandbox(Limits(wall_s=6, cpu_s=2))
    first = sandbox.run(write)
    second = sandbox.run(read)
    assert first.ok and second.ok, first.to_text() + second.to_text()
    assert [line.split()[-1] for line in first.stdout.splitlines()] == ["-1"] * 3, first.stdout
    assert [line.split()[-1] for line in second.stdout.splitlines()] == ["-1"] * 4, second.stdout
    assert find_in_session("chatloom-channel") == -1, "a sandbox wrote into the host's session keyring"


def test_the_filter_names_every_call_the_issue_lists() -> None:
    from chatloom.tools import seccomp

    with tempfile.TemporaryFile("w+") as out:
        seccomp.build_filter().export_pfc(out)
        out.seek(0)
        pfc = out.read()
    for name in (
        "keyctl",
        "add_key",
        "request_key",
        "unshare",
        "setns",
        "clone",
        "clone3",
        "mount",
        "umount2",
        "pivot_root",
        "io_uring_setup",
        "io_uring_enter",
        "io_uring_register",
        "bpf",
        "ptrace",
        "perf_event_open",
    ):
        assert f'filter for syscall "{name}"' in pfc, name
    # Default allow, so threads (clone without namespace flags) keep working; a foreign
    # architecture's syscall (int 0x80 on x86_64) kills the process.
    assert "action ALLOW;\n# invalid architecture action\naction KILL" in pfc
    assert len(seccomp.filter_bpf()) % 8 == 0 and seccomp.filter_bpf()


def test_without_the_seccomp_library_code_is_refused_not_run_unfiltered(monkeypatch: pytest.MonkeyPatch) -> None:
    from chatloom.tools import seccomp
    from chatloom.tools.python_exec import make_python_tool

    monkeypatch.delenv("CHATLOOM_UNSAFE_EXEC", raising=False)
    monkeypatch.setitem(sys.modules, "pyseccomp", None)  # import pyseccomp -> ImportError
    seccomp.filter_bpf.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="pip install pyseccomp"):
            Sandbox().run("print('must not run')")
        message = make_python_tool(Sandbox()).invoke({"code": "print('must not run')"})
        assert message.startswith("error: the sandbox's seccomp filter needs the 'pyseccomp' package")
        assert "must not run" not in message.replace("print('must not run')", "")
    finally:
        seccomp.filter_bpf.cache_clear()


def test_an_unusable_sandbox_fails_where_ci_requires_it_and_skips_elsewhere() -> None:
    problem = sandbox_problem(Sandbox(bwrap="/nonexistent/bwrap", unsafe=False))
    assert problem is not None and "bubblewrap" in problem
    with pytest.raises(pytest.fail.Exception, match=r"required here \(CI=true\) but unusable: bubblewrap"):
        gate(problem, sandbox_required({"CI": "true"}))
    with pytest.raises(pytest.fail.Exception, match=r"CHATLOOM_REQUIRE_SANDBOX=1"):
        gate(problem, sandbox_required({"CHATLOOM_REQUIRE_SANDBOX": "1"}))
    with pytest.raises(pytest.skip.Exception, match="sandbox unusable"):
        gate(problem, sandbox_required({"CI": "false"}))
    gate(None, "CI=true")  # a working sandbox passes the gate wherever it is


def test_ci_script_requires_the_sandbox() -> None:
    lines = (PROJECT / ".ci" / "run").read_text().splitlines()
    assert "export CHATLOOM_REQUIRE_SANDBOX=1" in lines


@pytest.mark.usefixtures("require_sandbox", "host_keyring_canary")
def test_the_session_keyring_is_fresh_even_without_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: with an allow-all filter in place of the real one, the key is still not found."""
    import pyseccomp

    from chatloom.tools import seccomp

    with tempfile.TemporaryFile() as out:
        pyseccomp.SyscallFilter(pyseccomp.ALLOW).export_bpf(out)
        out.seek(0)
        allow_all = out.read()
    monkeypatch.setattr(seccomp, "filter_bpf", lambda: allow_all)
    nr = syscall_numbers()
    code = (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        f"print('search', libc.syscall({nr['keyctl']}, 10, -3, b'user', b'chatloom-canary', 0), ctypes.get_errno())\n"
        "print('seccomp', libc.prctl(21, 0, 0, 0, 0))"
    )
    result = Sandbox(Limits(wall_s=6, cpu_s=2)).run(code)
    assert result.ok, result.to_text()
    assert "search -1 126" in result.stdout, result.stdout  # ENOKEY: the keyring is a new, empty one
    assert find_in_session("chatloom-canary") != -1  # while the host's own keyring still holds the canary


@pytest.mark.usefixtures("require_sandbox")
@pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/usr/bin/setpriv").exists() or not Path("/usr/bin/python3").exists(),
    reason="needs root (to become a normal user with setpriv) and a system /usr/bin/python3",
)
def test_process_limit_is_per_run_for_a_normal_user_too() -> None:
    """A normal user's sandboxes share one host uid; the user namespace per run keeps the limits apart."""
    import shutil
    import subprocess

    import pyseccomp

    script = (
        "import threading, time\n"
        "from chatloom.tools.sandbox import Sandbox, Limits\n"
        "lim = Limits(wall_s=8, cpu_s=2, processes=16)\n"
        "res = []\n"
        "hog_code = \"import subprocess, time\\nps = []\\ntry:\\n    while True: ps.append(subprocess.Popen(['sleep', '7.5']))\\n"
        "except OSError: pass\\nprint('holding', len(ps))\\ntime.sleep(3)\"\n"
        "hog = threading.Thread(target=lambda: res.append(Sandbox(lim, python='/usr/bin/python3').run(hog_code)))\n"
        "hog.start(); time.sleep(2)\n"
        "r = Sandbox(lim, python='/usr/bin/python3').run(\"import subprocess\\nprint(subprocess.run(['echo', 'started'], capture_output=True, text=True).stdout)\")\n"
        "hog.join(); print(r.to_text()); print(res[0].to_text())\n"
    )
    with tempfile.TemporaryDirectory(dir="/tmp") as lib:  # pytest's tmp_path is 0700 root
        os.chmod(lib, 0o755)
        shutil.copy(pyseccomp.__file__, lib)  # pure Python: the system interpreter can import a copy
        out = subprocess.run(
            ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", "/usr/bin/python3", "-c", script],
            capture_output=True,
            text=True,
            cwd="/tmp",
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{PROJECT / 'src'}:{lib}"},
            timeout=60,
        )
    if "No module named" in out.stderr:
        pytest.skip(f"system python lacks a dependency: {out.stderr.strip().splitlines()[-1]}")
    assert "stdout:\nstarted" in out.stdout, out.stdout + out.stderr
    assert "holding 14" in out.stdout, out.stdout + out.stderr  # 16 = the code, bwrap's init and 14 sleepers
