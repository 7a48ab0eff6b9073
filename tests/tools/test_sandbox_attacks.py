"""Attack corpus for the python sandbox: every case must be contained and leave the host as it was.

Each attack runs as model-written code. The sandbox must return a clean ExecResult (never raise),
leak no canary (secret env var, data-dir file, project file, host /tmp file, a key in the host's
session keyring), change nothing on the host, leave no process behind, and finish within its
limits. Where the sandbox is required (CI) and unusable, every case fails instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from keyring_canary import KEY_DESCRIPTION, KEY_SECRET, host_keyring_canary, syscall_numbers  # noqa: F401  (fixture)
from sandbox_gate import require_sandbox  # noqa: F401  (fixture)

from chatloom.tools import sandbox as sandbox_module
from chatloom.tools.sandbox import ExecResult, Limits, Sandbox

pytestmark = pytest.mark.usefixtures("require_sandbox")

PROJECT = Path(__file__).resolve().parents[2]
SECRET = "sk-canary-" + uuid.uuid4().hex
LIMITS = Limits(wall_s=4.0, cpu_s=2, memory_mb=256, processes=16, file_mb=1, tmp_mb=8, output_bytes=20_000)


@dataclass
class Host:
    """What the attacks aim at, and what must be the same afterwards."""

    data_dir: Path
    data_file: Path
    outside_dir: Path
    tmp_marker: Path
    port: int
    accepted: list
    pid: int

    def fingerprint(self) -> dict[str, str]:
        files = [self.data_file, PROJECT / "pyproject.toml", self.tmp_marker]
        state = {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}
        state["outside"] = ",".join(sorted(p.name for p in self.outside_dir.iterdir()))
        state["data"] = ",".join(sorted(p.name for p in self.data_dir.iterdir()))
        return state


def _is_sandbox_uid(uid: int) -> bool:
    base = getattr(sandbox_module, "RUN_UID_BASE", None)  # the per-run uids (as root)
    count = getattr(sandbox_module, "RUN_UID_COUNT", 0)
    return uid == 65534 or (base is not None and base <= uid < base + count)


def _processes_of(uids: set[int]) -> set[int]:
    """Host processes running as one of ``uids``."""
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    pids.add(int(entry))
            except OSError:
                pass
    return pids


def _record_leased_uids(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The per-run uids the sandbox leases from now on (as root; none with a shared uid)."""
    leased: list[int] = []
    run_uid = getattr(sandbox_module, "_run_uid", None)
    if run_uid is not None and os.geteuid() == 0:

        class Recording(run_uid):  # type: ignore[misc, valid-type]
            def __enter__(self) -> int:
                leased.append(super().__enter__())
                return leased[-1]

        monkeypatch.setattr(sandbox_module, "_run_uid", Recording)
    return leased


@pytest.fixture(scope="module")
def listener():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    accepted: list = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, addr = server.accept()
            except OSError:
                continue
            accepted.append(addr)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(2)
    server.close()


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listener, host_keyring_canary) -> Host:
    data_dir = tmp_path / "chatloom-home"
    data_dir.mkdir()
    data_file = data_dir / "memory.sqlite3"
    data_file.write_text("data-canary " + SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    tmp_marker = Path("/tmp") / f"chatloom-host-marker-{uuid.uuid4().hex}"
    tmp_marker.write_text("host-tmp-canary " + SECRET)
    monkeypatch.setenv("CHATLOOM_HOME", str(data_dir))
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    port, accepted = listener
    accepted.clear()
    yield Host(data_dir, data_file, outside, tmp_marker, port, accepted, os.getpid())
    tmp_marker.unlink(missing_ok=True)


def _fmt(code: str, host: Host) -> str:
    return code.format(
        data_dir=host.data_dir,
        data_file=host.data_file,
        outside=host.outside_dir,
        tmp_marker=host.tmp_marker,
        project=PROJECT,
        port=host.port,
        host_pid=host.pid,
        home=Path.home(),
        prefix=sys.base_prefix,
        key=KEY_DESCRIPTION,
        **{f"nr_{name}": number for name, number in syscall_numbers().items()},
    )


def _no_success(r: ExecResult) -> None:
    assert "ESCAPED" not in r.stdout, r.to_text()


def _printed(expected: str) -> Callable[[ExecResult], None]:
    def check(r: ExecResult) -> None:
        assert expected in r.stdout, r.to_text()
        _no_success(r)

    return check


def _failed_with(*words: str) -> Callable[[ExecResult], None]:
    def check(r: ExecResult) -> None:
        assert r.exit_code != 0 or r.timed_out or r.truncated, r.to_text()
        text = r.stdout + r.stderr
        assert any(w in text for w in words), r.to_text()
        _no_success(r)

    return check


def _killed(r: ExecResult) -> None:
    assert not r.ok and (r.timed_out or (r.exit_code or 0) < 0 or r.exit_code == 1), r.to_text()


def _timed_out(r: ExecResult) -> None:
    assert r.timed_out and r.exit_code is None, r.to_text()


def _truncated(r: ExecResult) -> None:
    assert (
        r.truncated and len(r.stdout.encode()) <= LIMITS.output_bytes and len(r.stderr.encode()) <= LIMITS.output_bytes
    )


TRY_READ = """
import os
paths = {paths}
for p in paths:
    try:
        data = open(p, 'rb').read()
        print('ESCAPED', p, data[:80])
    except OSError as e:
        print('blocked', p, type(e).__name__)
"""

TRY_WRITE = """
import os
for p in {paths}:
    try:
        with open(p, 'w') as f:
            f.write('pwned')
        print('wrote-inside-only', p)
    except OSError as e:
        print('blocked', p, type(e).__name__)
"""

# ctypes syscalls by number (the host's numbers, formatted in as {nr_NAME}); prints NAME, result, errno
SYS = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def sc(name, nr, *args):
    r = libc.syscall(nr, *args)
    e = ctypes.get_errno()
    print(name, r if r >= 0 else -1, errno.errorcode.get(e, e) if r < 0 else 'ok')
    return r
"""


def _own_uid(r: ExecResult) -> None:
    """Not root; as root, a uid from the per-run range rather than one shared by every sandbox."""
    uid, euid, gid = (int(x) for x in r.stdout.split()[1:4])
    assert 0 not in (uid, euid, gid), r.to_text()
    if os.geteuid() == 0:
        assert uid != 65534 and _is_sandbox_uid(uid), r.to_text()


# (id, code, check)
CASES: list[tuple[str, str, Callable[[ExecResult], None]]] = [
    # --- reading outside -------------------------------------------------------------------
    (
        "read-etc-shadow",
        TRY_READ.replace("{paths}", "['/etc/shadow', '/etc/gshadow']"),
        _printed("blocked /etc/shadow"),
    ),
    ("read-etc-passwd", TRY_READ.replace("{paths}", "['/etc/passwd', '/etc/hosts']"), _printed("blocked /etc/passwd")),
    (
        "read-ssh-keys",
        TRY_READ.replace(
            "{paths}",
            "[os.path.expanduser('~/.ssh/id_rsa'), '{home}/.ssh/id_rsa', '{home}/.ssh/authorized_keys', '/root/.ssh/id_ed25519']",
        ),
        _printed("blocked"),
    ),
    (
        "list-home",
        "import os\nfor d in ['{home}', '/root', '/home']:\n    try: print('ESCAPED', d, os.listdir(d))\n    except OSError as e: print('blocked', d)",
        _printed("blocked /root"),
    ),
    (
        "read-data-dir",
        TRY_READ.replace("{paths}", "['{data_file}']")
        + "\ntry: print('ESCAPED', os.listdir('{data_dir}'))\nexcept OSError: print('blocked dir')",
        _printed("blocked dir"),
    ),
    (
        "read-project-checkout",
        TRY_READ.replace(
            "{paths}", "['{project}/pyproject.toml', '{project}/src/chatloom/config.py', '{project}/.git/config']"
        ),
        _printed("blocked"),
    ),
    (
        "read-venv",
        "import os\ntry: print('ESCAPED', os.listdir('{project}/.venv'))\nexcept OSError: print('blocked venv')",
        _printed("blocked venv"),
    ),
    (
        "read-host-tmp",
        TRY_READ.replace("{paths}", "['{tmp_marker}']") + "\nprint('tmp has', os.listdir('/tmp'))",
        _printed("tmp has []"),
    ),
    (
        "read-interpreter-site-packages",
        "import os\nprint('site', [n for n in os.listdir('/opt/python/lib/python3.11/site-packages')] if os.path.isdir('/opt/python/lib/python3.11/site-packages') else 'absent')\ntry:\n    import pytest\n    print('ESCAPED pytest importable')\nexcept ImportError: print('blocked import')",
        _printed("blocked import"),
    ),
    (
        "walk-root-fs",
        "import os\nseen = []\nfor top in os.listdir('/'):\n    seen.append(top)\nprint(sorted(seen))\nassert not {{'etc', 'root', 'home', 'work', 'var', 'srv', 'sys'}} & set(seen), seen\nprint('only-system')",
        _printed("only-system"),
    ),
    # --- writing outside -------------------------------------------------------------------
    (
        "write-outside-dir",
        TRY_WRITE.replace("{paths}", "['{outside}/pwned.txt', '{data_dir}/pwned.txt', '{project}/pwned.txt']"),
        _printed("blocked"),
    ),
    (
        "write-system",
        TRY_WRITE.replace("{paths}", "['/usr/pwned', '/usr/bin/python3', '/opt/python/pwned', '/pwned', '/bin/sh']"),
        _printed("blocked /usr/pwned"),
    ),
    (
        "write-host-tmp",
        "open('/tmp/chatloom-escape-probe', 'w').write('x'); print('wrote private tmp')",
        _printed("wrote private tmp"),
    ),
    ("overwrite-tmp-marker", TRY_WRITE.replace("{paths}", "['{tmp_marker}']"), _printed("")),
    (
        "fill-tmpfs",
        "import os\ntry:\n    for i in range(100000):\n        open(f'/tmp/f{{i}}', 'wb').write(b'x' * 1_000_000)\nexcept OSError as e: print('stopped', e.errno)",
        _printed("stopped"),
    ),
    (
        "big-file-fsize",
        "try:\n    open('/tmp/big', 'wb').write(b'x' * 5_000_000)\nexcept OSError as e: print('stopped', e.errno)",
        _printed("stopped"),
    ),
    (
        "write-proc-sys",
        TRY_WRITE.replace(
            "{paths}", "['/proc/sys/kernel/hostname', '/proc/sys/vm/drop_caches', '/proc/sysrq-trigger']"
        ),
        _printed("blocked"),
    ),
    # --- network ---------------------------------------------------------------------------
    (
        "tcp-to-host-listener",
        "import socket\ns = socket.socket(); s.settimeout(2)\ntry:\n    s.connect(('127.0.0.1', {port})); print('ESCAPED connected')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "tcp-ipv6-localhost",
        "import socket\ntry:\n    s = socket.create_connection(('::1', {port}), timeout=2); print('ESCAPED')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "tcp-external",
        "import socket\ntry:\n    socket.create_connection(('1.1.1.1', 443), timeout=2); print('ESCAPED')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "dns-lookup",
        "import socket\ntry:\n    print('ESCAPED', socket.gethostbyname('pypi.org'))\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "udp-send",
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ntry:\n    s.sendto(b'x', ('10.0.0.1', 53)); print('ESCAPED sent')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "list-interfaces",
        "import socket\nprint('ifaces', sorted(n for _, n in socket.if_nameindex()))",
        _printed("ifaces ['lo']"),
    ),
    (
        "urllib-fetch",
        "import urllib.request\ntry:\n    urllib.request.urlopen('http://127.0.0.1:{port}/', timeout=2); print('ESCAPED')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    # --- secrets ---------------------------------------------------------------------------
    (
        "env-openai-key",
        "import os\nprint('ESCAPED' if os.environ.get('OPENAI_API_KEY') else 'no key', sorted(os.environ))",
        _printed("no key"),
    ),
    (
        "env-dump-all",
        "import os\nfor k, v in os.environ.items():\n    if 'sk-canary' in v: print('ESCAPED', k)\nprint('clean env')",
        _printed("clean env"),
    ),
    (
        "proc-environ-scan",
        "import os\nfor pid in (os.listdir('/proc') if os.path.isdir('/proc') else []):\n    if pid.isdigit():\n        try:\n            if b'sk-canary' in open(f'/proc/{{pid}}/environ', 'rb').read(): print('ESCAPED', pid)\n        except OSError: pass\nprint('scanned')",
        _printed("scanned"),
    ),
    (
        "shell-echo-key",
        "import subprocess\nprint('got[' + subprocess.run(['sh', '-c', 'echo $OPENAI_API_KEY'], capture_output=True, text=True).stdout.strip() + ']')",
        _printed("got[]"),
    ),
    # --- resource exhaustion ---------------------------------------------------------------
    ("fork-bomb", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass", _killed),
    (
        "thread-bomb",
        "import threading, time\nn = 0\ntry:\n    while True:\n        threading.Thread(target=time.sleep, args=(30,), daemon=True).start(); n += 1\nexcept RuntimeError as e: print('stopped at', n)",
        _printed("stopped at"),
    ),
    ("memory-bomb-bytearray", "x = bytearray(8 * 1024**3)", _failed_with("MemoryError")),
    ("memory-bomb-growth", "x = []\nwhile True: x.append(' ' * 10_000_000)", _failed_with("MemoryError")),
    ("infinite-loop-cpu", "while True: pass", _killed),
    ("sleep-forever", "import time\ntime.sleep(3600)", _timed_out),
    ("huge-stdout", "while True: print('A' * 1000)", _truncated),
    ("huge-stderr", "import sys\nwhile True: sys.stderr.write('E' * 1000)", _truncated),
    (
        "raise-rlimits",
        "import resource\ntry:\n    resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY)); print('ESCAPED')\nexcept (ValueError, OSError) as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    # --- the parent, other processes, /proc -------------------------------------------------
    (
        "kill-host-parent",
        "import os, signal\ntry:\n    os.kill({host_pid}, signal.SIGKILL); print('sent')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _no_success,
    ),
    (
        "kill-ppid-and-init",
        "import os, signal\nfor pid in (os.getppid(), 1):\n    try: os.kill(pid, signal.SIGKILL); print('sent', pid)\n    except OSError as e: print('blocked', pid, type(e).__name__)",
        _no_success,
    ),
    (
        "kill-everything",
        "import os, signal\ntry: os.kill(-1, signal.SIGKILL)\nexcept OSError as e: print('blocked', type(e).__name__)",
        _no_success,
    ),
    (
        "proc-pid-list",
        "import os\npids = [p for p in os.listdir('/proc') if p.isdigit()] if os.path.isdir('/proc') else []\nprint('pids', len(pids))\nassert len(pids) <= 3, pids\nassert str({host_pid}) not in pids or open(f'/proc/{host_pid}/cmdline').read().find('pytest') < 0",
        _printed("pids"),
    ),
    (
        "proc-parent-snoop",
        TRY_READ.replace(
            "{paths}",
            "['/proc/{host_pid}/environ', '/proc/{host_pid}/cmdline', '/proc/1/environ', '/proc/1/root/etc/shadow', '/proc/self/root/etc/shadow']",
        )
        + "\nprint('done')",
        _printed("done"),
    ),
    (
        "proc-mem-of-init",
        "try:\n    f = open('/proc/1/mem', 'rb'); f.seek(0x400000); print('ESCAPED', f.read(16))\nexcept (OSError, ValueError) as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "ptrace-init",
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nprint('ptrace', libc.ptrace(16, 1, 0, 0), ctypes.get_errno())",
        _printed("ptrace -1"),
    ),
    # --- symlinks, ctypes, subprocess --------------------------------------------------------
    (
        "symlink-to-shadow",
        "import os\nos.symlink('/etc/shadow', '/tmp/s')\ntry: print('ESCAPED', open('/tmp/s').read())\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "symlink-to-data-dir",
        "import os\nos.symlink('{data_file}', '/tmp/d')\ntry: print('ESCAPED', open('/tmp/d').read())\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "symlink-proc-root",
        "import os\ntry: print('ESCAPED', os.listdir('/proc/1/root/root'))\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "hardlink-system-file",
        "import os\ntry: os.link('/usr/bin/env', '/tmp/env'); print('linked')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "ctypes-setuid-root",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint('setuid', libc.setuid(0), 'root' if os.getuid() == 0 or os.geteuid() == 0 else 'not root')",
        _printed("setuid -1 not root"),
    ),
    (
        "ctypes-mount",
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nprint('mount', r, ctypes.get_errno())",
        _printed("mount -1"),
    ),
    (
        "ctypes-chroot-escape",
        "import os\ntry: os.chroot('/tmp'); print('ESCAPED chroot')\nexcept OSError as e: print('blocked', type(e).__name__)",
        _printed("blocked"),
    ),
    (
        "ctypes-segfault",
        "import ctypes\nctypes.string_at(0)",
        lambda r: (r.exit_code is not None and r.exit_code < 0) or pytest.fail(r.to_text()),
    ),
    (
        "ctypes-new-namespaces",
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nprint('unshare', libc.unshare(0x10000000 | 0x00020000))\nfor d in ['/root', '/work', '/etc', '/home']:\n    print('ESCAPED' if os.path.exists(d) else 'absent', d)",
        _printed("absent /root"),
    ),
    (
        "subprocess-cat-shadow",
        "import subprocess\nr = subprocess.run(['cat', '/etc/shadow', '{data_file}'], capture_output=True, text=True)\nprint('rc', r.returncode, r.stderr)",
        _printed("rc 1"),
    ),
    (
        "subprocess-setuid-binary",
        "import subprocess, glob\nfor b in ['/usr/bin/su', '/usr/bin/sudo', '/usr/bin/mount', '/usr/bin/passwd']:\n    try:\n        r = subprocess.run([b, '--help'] if b.endswith('mount') else [b, '-c', 'id'], capture_output=True, text=True, timeout=2)\n        print(b, r.returncode, 'uid=0(' in r.stdout and 'ESCAPED' or 'contained')\n    except (OSError, subprocess.SubprocessError) as e: print(b, 'blocked', type(e).__name__)\nprint('done')",
        _printed("done"),
    ),
    (
        "subprocess-shell-escape",
        "import subprocess\nr = subprocess.run('ls /work /root /etc 2>&1; id', shell=True, capture_output=True, text=True)\nprint(r.stdout)\nprint('ESCAPED root' if ' uid=0(' in ' ' + r.stdout or 'uid=0 ' in r.stdout else 'not root')",
        _printed("not root"),
    ),
    (
        "subprocess-detach",
        "import subprocess\nsubprocess.Popen(['sleep', '30'], start_new_session=True)\nprint('spawned')",
        _printed("spawned"),
    ),
    (
        "no-new-privs",
        "import ctypes\nlibc = ctypes.CDLL(None)\nhead = (ctypes.c_uint32 * 2)(0x20080522, 0)\ndata = (ctypes.c_uint32 * 6)()\nlibc.capget(head, data)\nprint('nnp', libc.prctl(39, 0, 0, 0, 0), 'effective', data[0], data[3], 'permitted', data[1], data[4])",
        _printed("nnp 1 effective 0 0 permitted 0 0"),
    ),
    (
        "dev-devices",
        "import os\nprint(sorted(os.listdir('/dev')))\nfor d in ['/dev/mem', '/dev/kmsg', '/dev/sda', '/dev/vda']:\n    print('ESCAPED' if os.path.exists(d) else 'absent', d)",
        _printed("absent /dev/mem"),
    ),
    # --- kernel keyrings: the session keyring is inherited from chatloom's own process --------
    (
        "keyring-request-key-canary",
        SYS
        + "k = sc('request_key', {nr_request_key}, b'user', b'{key}', None, 0)\nif k >= 0:\n    buf = ctypes.create_string_buffer(256)\n    n = libc.syscall({nr_keyctl}, 11, k, buf, 256)\n    print('ESCAPED', buf.raw[:max(n, 0)])",
        _printed("request_key -1 EPERM"),
    ),
    (
        "keyring-search-session",
        SYS
        + "k = sc('search', {nr_keyctl}, 10, -3, b'user', b'{key}', 0)\nif k >= 0:\n    buf = ctypes.create_string_buffer(256)\n    n = libc.syscall({nr_keyctl}, 11, k, buf, 256)\n    print('ESCAPED', buf.raw[:max(n, 0)])",
        _printed("search -1 EPERM"),
    ),
    (
        "keyring-read-session-keyring",
        SYS
        + "import struct\nbuf = ctypes.create_string_buffer(4096)\nn = sc('read', {nr_keyctl}, 11, -3, buf, 4096)\nfor (i,) in struct.iter_unpack('i', buf.raw[:max(n, 0)]):\n    b = ctypes.create_string_buffer(256)\n    m = libc.syscall({nr_keyctl}, 11, i, b, 256)\n    if m > 0: print('ESCAPED', b.raw[:m])",
        _printed("read -1 EPERM"),
    ),
    (
        "keyring-describe-session",
        SYS
        + "buf = ctypes.create_string_buffer(512)\nn = sc('describe', {nr_keyctl}, 6, -3, buf, 512)\nif n > 0: print('ESCAPED', buf.value)",
        _printed("describe -1 EPERM"),
    ),
    (
        "keyring-add-key-session",
        SYS + "sc('add_key', {nr_add_key}, b'user', b'chatloom-channel', b'hello next run', 14, -3)",
        _printed("add_key -1 EPERM"),
    ),
    (
        "keyring-add-key-user-keyrings",
        SYS
        + "sc('add_key_user', {nr_add_key}, b'user', b'chatloom-channel', b'hello', 5, -4)\nsc('add_key_user_session', {nr_add_key}, b'keyring', b'chatloom-ring', None, 0, -5)",
        _printed("add_key_user_session -1 EPERM"),
    ),
    ("keyring-join-named", SYS + "sc('join', {nr_keyctl}, 1, b'chatloom-shared')", _printed("join -1 EPERM")),
    (
        "keyring-join-anonymous",
        SYS
        + "sc('join_anonymous', {nr_keyctl}, 1, None)\nbuf = ctypes.create_string_buffer(64)\nsc('read', {nr_keyctl}, 11, -3, buf, 64)",
        _printed("join_anonymous -1 EPERM"),
    ),
    ("keyring-session-to-parent", SYS + "sc('to_parent', {nr_keyctl}, 18)", _printed("to_parent -1 EPERM")),
    ("keyring-get-persistent", SYS + "sc('persistent', {nr_keyctl}, 22, -1, -3)", _printed("persistent -1 EPERM")),
    (
        "keyring-proc-keys",
        TRY_READ.replace("{paths}", "['/proc/keys', '/proc/key-users']"),
        _printed("blocked /proc/keys"),
    ),
    # --- nested namespaces and mounts ----------------------------------------------------------
    (
        "userns-unshare-then-tmpfs",
        SYS
        + "r = sc('unshare', {nr_unshare}, 0x10000000 | 0x00020000)\nif r == 0:\n    os.makedirs('/tmp/big', exist_ok=True)\n    print('mount', libc.mount(b'none', b'/tmp/big', b'tmpfs', 0, None))\n    n = 0\n    try:\n        for i in range(64):\n            with open(f'/tmp/big/f{{i}}', 'wb') as f: f.write(b'x' * 1000000)\n            n += 1\n    except OSError: pass\n    print('ESCAPED wrote MB', n) if n > 8 else print('stopped at', n)",
        _printed("unshare -1 EPERM"),
    ),
    (
        "userns-unshare-each-namespace",
        SYS
        + "flags = (0x80, 0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000)\nres = [libc.syscall({nr_unshare}, f) for f in flags]\nprint('unshare', res)\nprint('all refused' if all(r == -1 for r in res) else 'ESCAPED')",
        _printed("all refused"),
    ),
    (
        "userns-clone-newuser",
        SYS
        + "r = sc('clone', {nr_clone}, 0x10000000 | 17, None, None, None, None)\nif r == 0: os._exit(0)\nif r > 0:\n    os.waitpid(r, 0)\n    print('ESCAPED clone made a user namespace')",
        _printed("clone -1 EPERM"),
    ),
    (
        "userns-clone-newnet-newpid",
        SYS
        + "r = sc('clone', {nr_clone}, 0x40000000 | 0x20000000 | 17, None, None, None, None)\nif r == 0: os._exit(0)\nif r > 0:\n    os.waitpid(r, 0)\n    print('ESCAPED')",
        _printed("clone -1 EPERM"),
    ),
    (
        "userns-clone3",
        SYS
        + "args = ctypes.create_string_buffer(88)\nctypes.memmove(args, (0x10000000).to_bytes(8, 'little'), 8)\nctypes.memmove(ctypes.addressof(args) + 32, (17).to_bytes(8, 'little'), 8)\nr = sc('clone3', {nr_clone3}, args, 88)\nif r == 0: os._exit(0)\nif r > 0:\n    os.waitpid(r, 0)\n    print('ESCAPED')",
        _printed("clone3 -1 ENOSYS"),
    ),
    ("userns-setns", SYS + "sc('setns', {nr_setns}, 0, 0)", _printed("setns -1 EPERM")),
    (
        "userns-unshare-binary",
        "import subprocess\nr = subprocess.run(['unshare', '-Ur', 'id'], capture_output=True, text=True)\nprint('rc', r.returncode, r.stderr.strip()[-80:])\nprint('ESCAPED' if 'uid=0' in r.stdout else 'refused')",
        _printed("refused"),
    ),
    (
        "userns-nested-bwrap",
        "import subprocess\nr = subprocess.run(['bwrap', '--ro-bind', '/', '/', '--unshare-user', '--uid', '0', 'id'], capture_output=True, text=True)\nprint('rc', r.returncode, r.stderr.strip()[-80:])\nprint('ESCAPED' if r.returncode == 0 else 'refused')",
        _printed("refused"),
    ),
    (
        "mount-new-api",
        SYS + "sc('fsopen', {nr_fsopen}, b'tmpfs', 0)\nsc('open_tree', {nr_open_tree}, -100, b'/usr', 1)",
        _printed("open_tree -1 EPERM"),
    ),
    (
        "mount-pivot-umount",
        SYS + "sc('pivot_root', {nr_pivot_root}, b'/tmp', b'/tmp')\nsc('umount2', {nr_umount2}, b'/usr', 2)",
        _printed("umount2 -1 EPERM"),
    ),
    (
        "threads-still-work",
        "import threading\nout = []\nts = [threading.Thread(target=out.append, args=(i,)) for i in range(8)]\nfor t in ts: t.start()\nfor t in ts: t.join()\nprint('threads ok', sorted(out) == list(range(8)))",
        _printed("threads ok True"),
    ),
    (
        "fork-and-subprocess-still-work",
        "import os, subprocess\nfrom concurrent.futures import ThreadPoolExecutor\npid = os.fork()\nif pid == 0: os._exit(7)\nprint('fork', os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\nprint('sub', subprocess.run(['true']).returncode)\nprint('pool', sum(ThreadPoolExecutor(4).map(abs, range(-5, 0))))",
        _printed("fork 7\nsub 0\npool 15"),
    ),
    # --- io_uring, bpf, perf, ptrace and other kernel interfaces ---------------------------------
    (
        "io-uring-setup",
        SYS
        + "params = ctypes.create_string_buffer(120)\nfd = sc('io_uring_setup', {nr_io_uring_setup}, 8, params)\nif fd >= 0: print('ESCAPED io_uring fd', fd)",
        _printed("io_uring_setup -1 EPERM"),
    ),
    (
        "io-uring-enter-register",
        SYS
        + "sc('io_uring_enter', {nr_io_uring_enter}, 0, 1, 0, 0, None, 0)\nsc('io_uring_register', {nr_io_uring_register}, 0, 0, None, 0)",
        _printed("io_uring_register -1 EPERM"),
    ),
    (
        "bpf-prog-and-map",
        SYS
        + "attr = ctypes.create_string_buffer(128)\nsc('bpf_prog_load', {nr_bpf}, 5, attr, 128)\nsc('bpf_map_create', {nr_bpf}, 0, attr, 128)",
        _printed("bpf_map_create -1 EPERM"),
    ),
    (
        "perf-event-open-self",
        SYS
        + "attr = bytearray(128)\nattr[0:4] = (1).to_bytes(4, 'little')\nattr[4:8] = (128).to_bytes(4, 'little')\nattr[40:48] = ((1 << 5) | (1 << 6)).to_bytes(8, 'little')\nbuf = ctypes.create_string_buffer(bytes(attr), 128)\nfd = sc('perf_event_open', {nr_perf_event_open}, buf, 0, -1, -1, 0)\nif fd >= 0: print('ESCAPED perf fd')",
        _printed("perf_event_open -1 EPERM"),
    ),
    ("ptrace-traceme", SYS + "sc('ptrace', {nr_ptrace}, 0, 0, None, None)", _printed("ptrace -1 EPERM")),
    (
        "ptrace-attach-child",
        SYS
        + "import time\npid = os.fork()\nif pid == 0:\n    time.sleep(2)\n    os._exit(0)\nsc('ptrace', {nr_ptrace}, 16, pid, None, None)\nos.kill(pid, 9)\nos.waitpid(pid, 0)",
        _printed("ptrace -1 EPERM"),
    ),
    (
        "process-vm-readv",
        SYS + "sc('process_vm_readv', {nr_process_vm_readv}, os.getpid(), None, 0, None, 0, 0)",
        _printed("process_vm_readv -1 EPERM"),
    ),
    ("userfaultfd-user-mode", SYS + "sc('userfaultfd', {nr_userfaultfd}, 1)", _printed("userfaultfd -1 EPERM")),
    ("kcmp-self", SYS + "sc('kcmp', {nr_kcmp}, os.getpid(), os.getpid(), 0, 0, 0)", _printed("kcmp -1 EPERM")),
    (
        "kernel-admin-calls",
        SYS
        + "sc('kexec_load', {nr_kexec_load}, 0, 0, None, 0)\nsc('init_module', {nr_init_module}, None, 0, b'')\nsc('reboot', {nr_reboot}, 0, 0, 0, None)",
        _printed("reboot -1 EPERM"),
    ),
    (
        "seccomp-filter-is-on",
        "import ctypes\nlibc = ctypes.CDLL(None)\nprint('seccomp', libc.prctl(21, 0, 0, 0, 0), 'nnp', libc.prctl(39, 0, 0, 0, 0))",
        _printed("seccomp 2 nnp 1"),
    ),
    (
        "tiocsti-inject",
        SYS
        + "c = ctypes.c_char(b'x')\nfor req in (0x5412, 0x100005412):\n    r = libc.ioctl(1, ctypes.c_ulong(req), ctypes.byref(c))\n    e = ctypes.get_errno()\n    print('tiocsti', r, errno.errorcode.get(e, e))",
        lambda r: r.stdout.count("tiocsti -1 EPERM") == 2 or pytest.fail(r.to_text()),
    ),
    (
        "int80-foreign-arch",
        "import ctypes, mmap, platform\nif platform.machine() != 'x86_64':\n    print('not x86_64')\nelse:\n    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n    m.write(bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3]))\n    f = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))\n    print('ESCAPED int80 returned', f())",
        lambda r: (
            ("int80 returned" not in r.stdout and (r.exit_code == -31 or "not x86_64" in r.stdout))
            or pytest.fail(r.to_text())
        ),
    ),
    # --- host paths ---------------------------------------------------------------------------
    (
        "mountinfo-host-paths",
        "import os\nfor p in ['/proc/self/mountinfo', '/proc/self/mounts', '/proc/mounts', '/proc/self/mountstats']:\n    try: data = open(p).read()\n    except OSError as e:\n        print('blocked', p, type(e).__name__)\n        continue\n    print('readable', p, 'ESCAPED' if '{prefix}' in data or '/work' in data else 'no host path')",
        _printed("blocked /proc/self/mountinfo"),
    ),
    (
        "proc-host-info",
        TRY_READ.replace(
            "{paths}",
            "['/proc/cpuinfo', '/proc/meminfo', '/proc/version', '/proc/cmdline', '/proc/kallsyms', '/proc/self/cgroup']",
        ),
        _printed("blocked /proc/cmdline"),
    ),
    (
        "interpreter-paths",
        "import os, sys\nvals = list(os.environ.values()) + sys.path + [sys.executable, sys.prefix, os.getcwd()]\nprint('ESCAPED' if any('{prefix}' in v or '{home}' in v for v in vals) else 'clean', sys.prefix)",
        _printed("clean /opt/python") if not sys.base_prefix.startswith("/usr") else _printed("clean"),
    ),
    (
        "sys-fs-absent",
        "import os\nfor d in ['/sys', '/proc', '/run', '/var']:\n    print('ESCAPED' if os.path.exists(d) and os.listdir(d) else 'absent', d)",
        _printed("absent /proc"),
    ),
    # --- process limits: per run, not per host uid -----------------------------------------------
    (
        "nproc-limit-holds-in-run",
        "import subprocess\nps = []\ntry:\n    for i in range(40): ps.append(subprocess.Popen(['sleep', '5']))\nexcept OSError as e: print('stopped at', len(ps), type(e).__name__)\nfor p in ps: p.kill()\nfor p in ps: p.wait()",
        lambda r: (
            ("stopped at" in r.stdout and int(r.stdout.split("stopped at")[1].split()[0]) <= 15)
            or pytest.fail(r.to_text())
        ),
    ),
    (
        "uid-is-the-runs-own",
        "import os\nprint('uid', os.getuid(), os.geteuid(), os.getgid(), os.getgroups())",
        lambda r: _own_uid(r),
    ),
]


def test_corpus_has_at_least_60_cases() -> None:
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(("name", "code", "check"), CASES, ids=[c[0] for c in CASES])
def test_attack_is_contained(
    name: str, code: str, check, sandbox: Sandbox, host: Host, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = host.fingerprint()
    # Other sandboxes may run on this host meanwhile: watch this run's own uid where it has one.
    leased = _record_leased_uids(monkeypatch)
    procs_before = _processes_of({65534})
    start = time.monotonic()
    result = sandbox.run(_fmt(code, host))  # must never raise
    elapsed = time.monotonic() - start
    # A clean result the model can read.
    assert isinstance(result, ExecResult) and result.sandboxed
    text = result.to_text()
    assert text.splitlines()[0].startswith(("exit status", "killed"))
    check(result)
    # Nothing secret came back.
    for leak in (SECRET, KEY_SECRET, "data-canary", "host-tmp-canary", "[build-system]"):
        assert leak not in result.stdout + result.stderr, (leak, text)
    # Limits held.
    assert elapsed < LIMITS.wall_s + 3
    # The host is as it was: files, parent environment, listener, processes.
    assert host.fingerprint() == before
    assert os.environ["OPENAI_API_KEY"] == SECRET
    assert host.accepted == [], "the sandbox reached a host socket"
    assert not Path("/tmp/chatloom-escape-probe").exists()
    assert not (host.outside_dir / "pwned.txt").exists()
    watched, baseline = (set(leased), set()) if leased else ({65534}, procs_before)
    deadline = time.monotonic() + 3
    while _processes_of(watched) - baseline and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not (_processes_of(watched) - baseline), "sandbox processes outlived the run"


def test_oversized_code_is_refused_cleanly(sandbox: Sandbox) -> None:
    result = sandbox.run("x = 1\n" * 30_000)
    assert result.exit_code == 2 and "limit" in result.stderr


def test_host_is_still_healthy_after_the_corpus(sandbox: Sandbox) -> None:
    result = sandbox.run("print(sum(range(10)))")
    assert result.ok and result.stdout == "45\n"
