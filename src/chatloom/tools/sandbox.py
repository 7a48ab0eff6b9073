"""Run untrusted Python code under bubblewrap with resource limits.

The sandbox sees only what it needs to run Python: ``/usr`` (read-only), the interpreter's own
install (read-only, mounted at ``/opt/python`` when it lives elsewhere, e.g. under ``~/.pyenv``),
a private size-capped ``/tmp`` and a minimal ``/dev``. It has no ``/proc`` (its mount table would
name the host paths bound in, and ``/proc/keys`` the host's keys), no network, no home
directory, no data dir, no project checkout, no ``/etc`` and an empty environment, so no secret
in the parent's environment (``OPENAI_API_KEY``...) can reach it. It runs under a seccomp filter
(:mod:`chatloom.tools.seccomp`: no keyrings, no new namespaces, no mounts, no io_uring, bpf,
ptrace or perf), in a fresh session keyring of its own, with no capabilities, as a uid of its own (so
``RLIMIT_NPROC`` counts its processes only) and with rlimits on CPU time, address space, process
count, file size and open files; the parent enforces a wall-clock timeout (killing the whole
sandbox) and an output cap.

>>> from chatloom.tools.sandbox import Sandbox
>>> Sandbox().run("print(6*7)").stdout            # doctest: +SKIP
'42\\n'

Where bubblewrap is missing, :class:`~chatloom.errors.SandboxUnavailable` says how to install it.
Running without a sandbox needs an explicit opt-in (``Sandbox(unsafe=True)`` or
``CHATLOOM_UNSAFE_EXEC=1``) and logs a loud warning every time.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

from chatloom.errors import SandboxUnavailable, ToolError
from chatloom.tools import seccomp

log = logging.getLogger(__name__)

UNSAFE_ENV = "CHATLOOM_UNSAFE_EXEC"
APT_HINT = "install bubblewrap (`sudo apt-get install -y bubblewrap`; Fedora: `sudo dnf install bubblewrap`)"
NOBODY = 65534
# As root, each run gets a host uid of its own from this range: RLIMIT_NPROC counts every process
# of a uid, so with one shared uid a sandbox holding its limit's worth of sleepers stopped every
# other conversation's sandbox from starting a process. The range sits above the ranges that
# systemd leaves to containers (up to 0x6FFFFFFF), so no real user owns these uids.
RUN_UID_BASE = 0x70000000
RUN_UID_COUNT = 4096
_SANDBOX_PYTHON_ROOT = "/opt/python"
_SANDBOX_SITE = "/opt/site-packages"
MAX_CODE_BYTES = 100_000  # code travels as one argv string; the kernel caps those at 128 KiB


class UnsafeExecutionWarning(UserWarning):
    """Code is about to run on the host without a sandbox."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. Defaults suit short model-written snippets."""

    wall_s: float = 10.0
    """Wall-clock seconds before the whole sandbox is killed."""
    cpu_s: int = 5
    """CPU seconds per process (RLIMIT_CPU)."""
    memory_mb: int = 256
    """Address space per process in MiB (RLIMIT_AS)."""
    processes: int = 16
    """Processes and threads the sandbox user may have (RLIMIT_NPROC)."""
    file_mb: int = 16
    """Largest file the code may write, in MiB (RLIMIT_FSIZE)."""
    tmp_mb: int = 64
    """Size of the private /tmp, in MiB."""
    open_files: int = 256
    """Open file descriptors per process (RLIMIT_NOFILE)."""
    output_bytes: int = 64_000
    """Bytes kept per stream (stdout, stderr); a run that writes more is stopped."""


@dataclass(frozen=True)
class ExecResult:
    """What one sandboxed run produced."""

    stdout: str
    stderr: str
    exit_code: int | None
    """The process exit status; negative for death by signal; None if it was killed by us."""
    timed_out: bool = False
    truncated: bool = False
    duration_s: float = 0.0
    sandboxed: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when the code ran to completion with exit status 0."""
        return self.exit_code == 0 and not self.timed_out and not self.truncated

    def to_text(self) -> str:
        """The result as the model sees it: exit status, then stdout and stderr."""
        if self.timed_out:
            status = "killed: wall-clock time limit reached"
        elif self.truncated:
            status = "killed: output limit reached (output truncated)"
        elif self.exit_code is not None and self.exit_code < 0:
            try:
                name = signal.Signals(-self.exit_code).name
            except ValueError:
                name = f"signal {-self.exit_code}"
            status = f"killed by {name}"
        else:
            status = f"exit status {self.exit_code}"
        parts = [status]
        parts.extend(self.notes)
        if self.stdout:
            parts.append("stdout:\n" + self.stdout.rstrip("\n"))
        if self.stderr:
            parts.append("stderr:\n" + self.stderr.rstrip("\n"))
        if not self.stdout and not self.stderr:
            parts.append("(no output)")
        return "\n".join(parts)


# Runs inside the sandbox as the first thing: drop root if bwrap kept it (we run bwrap without
# a user namespace when the caller is root, so the code ends up as a real unprivileged uid, one
# per run, and RLIMIT_NPROC applies), set the rlimits, then run the code as __main__. The
# capability bounding set stays full as root (bwrap leaves it so): setresuid clears the
# effective and permitted sets, no-new-privs stops exec from gaining any back, and the filter
# stops the one other way, a new user namespace. Emptying it would need ctypes here (~1.4 ms
# of CPU on every run) for no attack left to stop.
_BOOTSTRAP = r"""
import os, sys, resource, _ast
code = sys.argv[1]
drop, uid, gid, cwd = sys.argv[2].split(" ", 3)
if drop == "1" and os.getuid() == 0:
    uid, gid = int(uid), int(gid)
    os.setgroups([]); os.setresgid(gid, gid, gid); os.setresuid(uid, uid, uid)
    if os.getuid() == 0 or os.geteuid() == 0: os._exit(121)
for item in sys.argv[3].split():
    name, _, limits = item.partition("=")
    soft, _, hard = limits.partition(":")
    resource.setrlimit(getattr(resource, name), (int(soft), int(hard)))
sys.path.extend(p for p in sys.argv[4].split(":") if p)
sys.argv = ["<code>"]
os.chdir(cwd)
del os, resource, drop, uid, gid, cwd
_g = {"__name__": "__main__", "__builtins__": __builtins__}
try:
    # Like a REPL: a final bare expression is printed, so "17*23" shows 391.
    _tree = compile(code, "<code>", "exec", _ast.PyCF_ONLY_AST)
    _last = _ast.Expression(_tree.body.pop().value) if _tree.body and isinstance(_tree.body[-1], _ast.Expr) else None
    exec(compile(_tree, "<code>", "exec"), _g)
    if _last is not None:
        _v = eval(compile(_last, "<code>", "eval"), _g)
        if _v is not None: print(repr(_v))
except SystemExit:
    raise
except BaseException as _e:
    # Only now pay for traceback: hide the bootstrap's frame, show the model's own lines.
    import linecache, traceback
    linecache.cache["<code>"] = (len(code), None, code.splitlines(True), "<code>")
    traceback.print_exception(type(_e), _e, None if isinstance(_e, SyntaxError) else _e.__traceback__.tb_next)
    sys.stderr.flush(); sys.exit(1)
"""


@functools.lru_cache(maxsize=8)
def _bwrap_supports(bwrap: str, option: str) -> bool:
    try:
        help_text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return option in help_text


def _python_layout(python: str | None) -> tuple[str, Path, list[str]]:
    """Return (executable, install prefix, shared-lib dirs) of the interpreter to run."""
    if python is None:
        exe = Path(os.path.realpath(sys.executable))
        prefix = Path(sys.base_prefix).resolve()
    else:
        exe = Path(os.path.realpath(python))
        prefix = exe.parent.parent
    libdir = prefix / "lib"
    libs = [str(libdir)] if any(libdir.glob("libpython*.so*")) else []
    return str(exe), prefix, libs


class Sandbox:
    """Run Python code under bubblewrap with rlimits, a wall-clock timeout and an output cap.

    ``unsafe=True`` (or ``CHATLOOM_UNSAFE_EXEC=1``) runs WITHOUT isolation — still with rlimits,
    an empty environment and a throwaway working directory — and warns loudly on every run.
    ``site_packages=True`` makes the current environment's installed packages importable
    (read-only); off by default so the sandbox sees only the standard library.
    """

    def __init__(
        self,
        limits: Limits | None = None,
        *,
        unsafe: bool | None = None,
        site_packages: bool = False,
        python: str | None = None,
        bwrap: str | None = None,
    ) -> None:
        self.limits = limits or Limits()
        if unsafe is None:
            unsafe = os.environ.get(UNSAFE_ENV, "").strip().lower() in {"1", "true", "yes"}
        self.unsafe = unsafe
        self.site_packages = site_packages
        self._exe, self._prefix, self._libs = _python_layout(python)
        self._bwrap = bwrap or shutil.which("bwrap")
        self._probed = False

    # ---------------------------------------------------------------------------------- setup

    @staticmethod
    def available(bwrap: str | None = None) -> bool:
        """True when bubblewrap is installed and can create a sandbox here."""
        try:
            Sandbox(bwrap=bwrap, unsafe=False).check()
        except SandboxUnavailable:
            return False
        return True

    def check(self) -> None:
        """Raise :class:`SandboxUnavailable` unless sandboxed runs can work on this machine."""
        if self.unsafe or self._probed:
            return
        if not self._bwrap:
            raise SandboxUnavailable(
                "bubblewrap ('bwrap') is not installed, so model-written code cannot be sandboxed",
                f"{APT_HINT}, or set {UNSAFE_ENV}=1 to run code WITHOUT a sandbox (unsafe)",
            )
        if not os.access(self._bwrap, os.X_OK):
            raise SandboxUnavailable(
                f"bubblewrap {self._bwrap!r} does not exist or is not executable",
                f"{APT_HINT}, or set {UNSAFE_ENV}=1 to run code WITHOUT a sandbox (unsafe)",
            )
        seccomp.filter_bpf()  # raises SandboxUnavailable when pyseccomp or libseccomp is missing
        # The probe is a real run, bootstrap and all: the filter, the keyring, the uid drop.
        try:
            with _run_uid() as uid:
                probe = self._probe(uid)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"bubblewrap {self._bwrap!r} failed to start ({exc})", APT_HINT) from None
        if probe.returncode != 0 and Path("/usr/bin/true").exists():
            with seccomp.filter_fd() as fd:
                bare = subprocess.run(
                    [*self._bwrap_args(fd), "--", "/usr/bin/true"],
                    capture_output=True,
                    env=self._host_env(),
                    timeout=30,
                    pass_fds=(fd,),
                )
            if bare.returncode == 0:  # namespaces work; the interpreter does not start in them
                detail = probe.stderr.decode(errors="replace").strip().splitlines()
                raise SandboxUnavailable(
                    f"Python {self._exe!r} does not start inside the sandbox ({detail[-1] if detail else probe.returncode})",
                    "pass Sandbox(python=...) an interpreter installed under /usr or in a self-contained prefix",
                )
        if probe.returncode != 0:
            detail = probe.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxUnavailable(
                f"bubblewrap at {self._bwrap!r} cannot create a sandbox here ({detail[-1] if detail else probe.returncode})",
                "allow unprivileged user namespaces (e.g. `sysctl kernel.apparmor_restrict_unprivileged_userns=0`"
                f" on Ubuntu 24.04, `sysctl user.max_user_namespaces=15000`), or set {UNSAFE_ENV}=1 (unsafe)",
            )
        self._probed = True

    def _sandbox_exe(self) -> str:
        if self._exe.startswith("/usr/"):
            return self._exe
        return f"{_SANDBOX_PYTHON_ROOT}/{Path(self._exe).relative_to(self._prefix)}"

    def _host_env(self) -> dict[str, str]:
        # Even bwrap itself gets no inherited variables: nothing secret is ever in its environ.
        return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}

    def _probe(self, uid: int) -> subprocess.CompletedProcess[bytes]:
        """Run ``pass`` through the whole sandboxed path and wait (for :meth:`check`)."""
        with seccomp.filter_fd() as fd:
            argv = self._argv(fd, uid, "pass")
            return _in_fresh_keyring(
                lambda: subprocess.run(argv, capture_output=True, env=self._host_env(), timeout=30, pass_fds=(fd,))
            )

    def _argv(self, seccomp_fd: int, uid: int, code: str) -> list[str]:
        paths = [_SANDBOX_SITE] if self.site_packages else []
        boot = _bootstrap_args(code, os.geteuid() == 0, uid, "/tmp", self._rlimits(), paths)
        return [*self._bwrap_args(seccomp_fd), "--", self._sandbox_exe(), *boot]

    def _bwrap_args(self, seccomp_fd: int) -> list[str]:
        assert self._bwrap
        lim = self.limits
        args = [self._bwrap]
        if os.geteuid() == 0:
            # As root, a user namespace would map the sandbox to host uid 0, which the kernel
            # exempts from RLIMIT_NPROC and which owns root's files. Instead: no user namespace,
            # every capability dropped except setuid/setgid, which the bootstrap uses at once to
            # become this run's own uid for real. bwrap's --disable-userns needs a user namespace,
            # so here the seccomp filter is what stops a nested one (unshare, clone flags, clone3).
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            # A user namespace per run: RLIMIT_NPROC counts per namespace, so per run here.
            args += ["--unshare-all", "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY), "--cap-drop", "ALL"]
            if _bwrap_supports(self._bwrap, "--disable-userns"):  # bubblewrap >= 0.8
                args += ["--disable-userns"]
        args += ["--seccomp", str(seccomp_fd)]
        args += ["--die-with-parent", "--new-session", "--clearenv", "--hostname", "sandbox"]
        args += ["--ro-bind", "/usr", "/usr"]
        for name in ("lib", "lib64", "lib32", "libx32", "bin", "sbin"):
            target = Path("/") / name
            if target.is_symlink():
                args += ["--symlink", os.readlink(target), str(target)]
            elif target.is_dir():
                args += ["--ro-bind", str(target), str(target)]
        # bwrap creates missing parents as 0700 root; the dropped-to user must traverse /opt
        args += ["--perms", "0755", "--dir", "/opt"]
        if not self._exe.startswith("/usr/"):
            args += ["--ro-bind", str(self._prefix), _SANDBOX_PYTHON_ROOT]
            # The base interpreter's own site-packages (pip, tools installed globally) stays hidden.
            version = f"python{sys.version_info.major}.{sys.version_info.minor}"
            if (self._prefix / "lib" / version / "site-packages").is_dir():
                args += ["--tmpfs", f"{_SANDBOX_PYTHON_ROOT}/lib/{version}/site-packages"]
            if self._libs:
                args += ["--setenv", "LD_LIBRARY_PATH", f"{_SANDBOX_PYTHON_ROOT}/lib"]
        elif self._libs and self._libs[0] not in ("/usr/lib", "/usr/lib64"):
            # e.g. /usr/local/lib/libpython3.x.so (Docker python images): found on the host via
            # /etc/ld.so.cache, which the sandbox does not have
            args += ["--setenv", "LD_LIBRARY_PATH", self._libs[0]]
        if self.site_packages:
            args += ["--ro-bind", sysconfig.get_paths()["purelib"], _SANDBOX_SITE]
        args += ["--perms", "1777", "--size", str(lim.tmp_mb * 1024 * 1024), "--tmpfs", "/tmp"]
        # No /proc: its mountinfo names the host paths bound in (the interpreter's home) and
        # /proc/keys the host's keys; Python itself needs none of it.
        args += ["--dev", "/dev", "--chdir", "/tmp"]
        args += ["--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", "/tmp"]
        args += ["--setenv", "LANG", "C.UTF-8", "--setenv", "TMPDIR", "/tmp"]
        return args

    def _rlimits(self) -> dict[str, tuple[int, int]]:
        lim = self.limits
        mib = 1024 * 1024
        return {
            "RLIMIT_CPU": (lim.cpu_s, lim.cpu_s + 1),
            "RLIMIT_AS": (lim.memory_mb * mib, lim.memory_mb * mib),
            "RLIMIT_NPROC": (lim.processes, lim.processes),
            "RLIMIT_FSIZE": (lim.file_mb * mib, lim.file_mb * mib),
            "RLIMIT_NOFILE": (lim.open_files, lim.open_files),
            "RLIMIT_CORE": (0, 0),
        }

    # ------------------------------------------------------------------------------------ run

    def run(self, code: str, *, stdin: str = "") -> ExecResult:
        """Run ``code`` as a Python program and return its stdout, stderr and exit status.

        Never raises for anything the code does; raises :class:`SandboxUnavailable` when no
        sandbox can be created and unsafe execution was not opted into.
        """
        if not isinstance(code, str):
            raise ToolError(f"code must be a string, got {type(code).__name__}")
        if len(code.encode()) > MAX_CODE_BYTES:
            return ExecResult("", f"code is {len(code.encode())} bytes; the limit is {MAX_CODE_BYTES}", 2)
        if self.unsafe:
            return self._run_unsafe(code, stdin)
        self.check()
        with _run_uid() as uid, seccomp.filter_fd() as fd:
            argv = self._argv(fd, uid, code)
            result = _in_fresh_keyring(
                lambda: _execute(argv, self._host_env(), None, stdin, self.limits, sandboxed=True, pass_fds=(fd,))
            )
            if result.exit_code is None and os.geteuid() == 0:
                # Killed: the pid namespace is torn down after bwrap dies; let it finish before
                # the uid goes back to the pool, so the next run does not count its processes.
                _wait_until_no_process_of(uid, timeout=3.0)
        return result

    def _run_unsafe(self, code: str, stdin: str) -> ExecResult:
        message = (
            f"UNSAFE: running model-written code WITHOUT a sandbox ({UNSAFE_ENV}=1 or unsafe=True). "
            "It can read and change your files and use the network."
        )
        log.warning(message)
        warnings.warn(message, UnsafeExecutionWarning, stacklevel=3)
        rlimits = self._rlimits()
        rlimits.pop("RLIMIT_NPROC")  # per-user on the host: it would count all of your processes
        with tempfile.TemporaryDirectory(prefix="chatloom-unsafe-") as cwd:
            argv = [sys.executable, *_bootstrap_args(code, False, 0, cwd, rlimits, [])]
            env = {"PATH": "/usr/bin:/bin", "HOME": cwd, "TMPDIR": cwd, "LANG": "C.UTF-8"}
            result = _execute(argv, env, cwd, stdin, self.limits, sandboxed=False)
        return ExecResult(
            result.stdout,
            result.stderr,
            result.exit_code,
            result.timed_out,
            result.truncated,
            result.duration_s,
            sandboxed=False,
            notes=("warning: ran WITHOUT a sandbox",),
        )


def _bootstrap_args(
    code: str, drop: bool, uid: int, cwd: str, rlimits: dict[str, tuple[int, int]], paths: list[str]
) -> list[str]:
    # Plain strings, not JSON: the bootstrap runs on every call and json costs ~10 ms to import.
    limits = " ".join(f"{name}={soft}:{hard}" for name, (soft, hard) in rlimits.items())
    return ["-I", "-B", "-X", "utf8", "-c", _BOOTSTRAP, code, f"{int(drop)} {uid} {uid} {cwd}", limits, ":".join(paths)]


_T = TypeVar("_T")


@functools.lru_cache(maxsize=1)
def _keyctl() -> Callable[..., int]:
    import ctypes  # already loaded by pyseccomp

    libc = ctypes.CDLL(None, use_errno=True)
    number = seccomp.syscall_number("keyctl")

    def keyctl(*args: object) -> int:
        """keyctl(2) on the calling thread: the result, or -errno."""
        result = libc.syscall(number, *args)
        return result if result >= 0 else -ctypes.get_errno()

    return keyctl


def _in_fresh_keyring(run: Callable[[], _T]) -> _T:
    """Call ``run`` (which starts the sandbox AND waits for it) on a new thread that first joins
    a new, empty session keyring.

    Credentials, the session keyring among them, belong to a thread on Linux, and a child gets
    those of the thread that forked it: so the sandbox starts with a keyring of its own while
    chatloom's other threads keep theirs (where Kerberos caches and ``keyctl`` users keep
    secrets). Inside, the seccomp filter then denies every keyring call. The thread must live
    until the sandbox has exited: ``bwrap --die-with-parent`` is PR_SET_PDEATHSIG, which fires
    when the creating *thread* exits.
    """
    box: dict[str, object] = {}

    def target() -> None:
        try:
            joined = _keyctl()(seccomp.KEYCTL_JOIN_SESSION_KEYRING, None)
            # ENOSYS: a kernel without keyrings; EPERM: keyrings already filtered out here (a
            # container's seccomp profile), so no child of ours can reach one either.
            if joined < 0 and -joined not in (errno.ENOSYS, errno.EPERM):
                raise SandboxUnavailable(
                    f"cannot give the sandbox a session keyring of its own ({os.strerror(-joined)})"
                )
            box["value"] = run()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=target, name="chatloom-sandbox-start", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]


def _uid_lock_dir() -> Path:
    # Root-only: /run is root's; elsewhere a per-user directory that must be ours and private.
    for base in (Path("/run"), Path(tempfile.gettempdir())):
        path = base / f"chatloom-sandbox-uids-{os.geteuid()}"
        try:
            path.mkdir(mode=0o700, exist_ok=True)
            info = path.lstat()
        except OSError:
            continue
        if path.is_dir() and not path.is_symlink() and info.st_uid == os.geteuid() and info.st_mode & 0o077 == 0:
            return path
    raise SandboxUnavailable("no private directory for the sandbox's uid locks", "make /run or $TMPDIR writable")


class _run_uid:
    """Lease a host uid of its own for one sandboxed run (as root); NOBODY otherwise.

    The lease is an flock on a file per uid, so concurrent runs in other processes never share
    a uid either, and a crashed process gives its uids back as its descriptors close.
    """

    def __init__(self) -> None:
        self._fd: int | None = None

    def __enter__(self) -> int:
        if os.geteuid() != 0:
            return NOBODY  # in a user namespace of its own per run
        directory = _uid_lock_dir()
        start = random.randrange(RUN_UID_COUNT)  # random: a uid just given back is rarely the next one
        for i in range(RUN_UID_COUNT):
            slot = (start + i) % RUN_UID_COUNT
            fd = os.open(directory / f"{slot}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            self._fd = fd
            return RUN_UID_BASE + slot
        raise ToolError(f"all {RUN_UID_COUNT} sandbox uids are in use; too many code runs at once")

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _wait_until_no_process_of(uid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_owner(pid) == uid for pid in os.listdir("/proc") if pid.isdigit()):
            return
        time.sleep(0.01)


def _owner(pid: str) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:  # it ended while we looked
        return None


def _execute(
    argv: list[str],
    env: dict[str, str],
    cwd: str | None,
    stdin: str,
    limits: Limits,
    *,
    sandboxed: bool,
    pass_fds: tuple[int, ...] = (),
) -> ExecResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,  # one process group to kill; --die-with-parent does the rest
        close_fds=True,
        pass_fds=pass_fds,
    )
    overflow = threading.Event()
    buffers = {"stdout": bytearray(), "stderr": bytearray()}

    def pump(stream: IO[bytes], buf: bytearray) -> None:
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            if not chunk:
                break
            room = limits.output_bytes - len(buf)
            if room > 0:
                buf += chunk[:room]
            if len(chunk) > room:
                overflow.set()
                _kill(proc)
                break
        stream.close()

    threads = [
        threading.Thread(target=pump, args=(proc.stdout, buffers["stdout"]), daemon=True),
        threading.Thread(target=pump, args=(proc.stderr, buffers["stderr"]), daemon=True),
    ]
    for t in threads:
        t.start()
    if stdin and proc.stdin is not None:
        # In a thread: code that never reads would otherwise block us past the wall clock.
        def feed(pipe: IO[bytes], data: bytes) -> None:
            try:
                pipe.write(data)
                pipe.close()
            except OSError:
                pass

        threading.Thread(
            target=feed, args=(proc.stdin, stdin.encode()[: limits.output_bytes * 16]), daemon=True
        ).start()
    # Wait on the output pipes, not with Popen.wait(timeout), which polls with sleeps of up to
    # 50 ms; the pipes reach EOF the moment the sandbox exits.
    deadline = start + limits.wall_s
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    timed_out = False
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        timed_out = not overflow.is_set()
        _kill(proc)
        proc.wait()
    for t in threads:
        t.join(timeout=5)
    exit_code: int | None = proc.returncode
    if timed_out or overflow.is_set():
        exit_code = None
    elif sandboxed and exit_code is not None and exit_code > 128:
        # bwrap reports a child killed by signal N as exit status 128+N
        exit_code = -(exit_code - 128)
    notes: list[str] = []
    if exit_code == -signal.SIGXCPU or (exit_code == -signal.SIGKILL and not timed_out):
        notes.append(f"(CPU time limit is {limits.cpu_s} s; memory limit {limits.memory_mb} MiB)")
    return ExecResult(
        stdout=buffers["stdout"].decode("utf-8", errors="replace"),
        stderr=buffers["stderr"].decode("utf-8", errors="replace"),
        exit_code=exit_code,
        timed_out=timed_out,
        truncated=overflow.is_set(),
        duration_s=time.monotonic() - start,
        sandboxed=sandboxed,
        notes=tuple(notes),
    )


def _kill(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
