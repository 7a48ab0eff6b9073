"""The seccomp filter that model-written code runs under, built with libseccomp (``pyseccomp``).

The sandbox hands the compiled BPF program to ``bwrap --seccomp FD``, which loads it right
before it starts the interpreter, so the bootstrap and the model's code both run under it.

It is a deny list on top of bubblewrap's namespaces: the default action is to allow, and the
calls below fail with ``EPERM`` (``clone3`` with ``ENOSYS``, so that glibc falls back to
``clone``, whose flags a filter can see). An allow list would be stricter, but model-written
code may use any part of the standard library, and a missing syscall there fails in ways the
model cannot understand. The rules are for the native architecture; a syscall made through
another one (``int 0x80`` on x86_64) kills the process, libseccomp's default for a foreign
architecture (the attack corpus checks it).

>>> from chatloom.tools.seccomp import filter_bpf
>>> len(filter_bpf()) % 8                        # whole ``struct sock_filter`` instructions
0
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import tempfile
from collections.abc import Iterator
from typing import Any

from chatloom.errors import SandboxUnavailable

# Flags of clone(2) and unshare(2) that create a namespace (linux/sched.h).
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (
    CLONE_NEWTIME,
    CLONE_NEWNS,
    CLONE_NEWCGROUP,
    CLONE_NEWUTS,
    CLONE_NEWIPC,
    CLONE_NEWUSER,
    CLONE_NEWPID,
    CLONE_NEWNET,
)

KEYCTL_JOIN_SESSION_KEYRING = 1
TIOCSTI = 0x5412  # push bytes into the terminal's input queue: typing into the parent's shell
TIOCLINUX = 0x541C  # the same on a virtual console (TIOCL_PASTESEL), and more

DENIED: dict[str, tuple[str, ...]] = {
    # The session keyring is inherited from chatloom's own process, and keys outlive a run
    # (the sandbox starts in a fresh keyring too; see sandbox._in_fresh_keyring).
    "kernel keyrings": ("add_key", "request_key", "keyctl"),
    # New namespaces (a nested user namespace gives back CAP_SYS_ADMIN, hence mounts).
    "namespaces": ("unshare", "setns"),
    "mounts": (
        "mount",
        "umount2",
        "pivot_root",
        "chroot",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "move_mount",
        "mount_setattr",
    ),
    # Large kernel attack surfaces that plain Python never needs.
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
    "kernel interfaces": (
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "kexec_load",
        "kexec_file_load",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "swapon",
        "swapoff",
        "acct",
        "syslog",
        "quotactl",
        "lookup_dcookie",
        "open_by_handle_at",
        "name_to_handle_at",
        "iopl",
        "ioperm",
        "settimeofday",
        "clock_settime",
        "clock_adjtime",
        "adjtimex",
        "vhangup",
        "fanotify_init",
    ),
    # Reading or steering other processes.
    "other processes": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "process_madvise"),
}
DENIED_WITH_ENOSYS = ("clone3",)  # its flags sit in a struct a filter cannot read; glibc then uses clone

PIP_HINT = "pip install pyseccomp (it needs libseccomp: `sudo apt-get install -y libseccomp2`)"


def _library() -> Any:
    """Import pyseccomp, or say how to install it (a sandbox without the filter is refused)."""
    try:
        import pyseccomp
    except ImportError:
        raise SandboxUnavailable("the sandbox's seccomp filter needs the 'pyseccomp' package", PIP_HINT) from None
    except (OSError, RuntimeError) as exc:  # pyseccomp raises RuntimeError when libseccomp.so is missing
        raise SandboxUnavailable(
            f"libseccomp could not be loaded ({exc})", "sudo apt-get install -y libseccomp2"
        ) from None
    return pyseccomp


def build_filter() -> Any:
    """Return the sandbox's ``pyseccomp.SyscallFilter`` (default allow, the calls in DENIED fail)."""
    seccomp = _library()
    flt = seccomp.SyscallFilter(seccomp.ALLOW)
    eperm = seccomp.ERRNO(errno.EPERM)
    for names in DENIED.values():
        for name in names:
            _add(seccomp, flt, eperm, name)
    for name in DENIED_WITH_ENOSYS:
        _add(seccomp, flt, seccomp.ERRNO(errno.ENOSYS), name)
    # Threads and fork use clone too: refuse only the flags that make a namespace.
    for flag in NAMESPACE_FLAGS:
        _add(seccomp, flt, eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    # ioctl's request is an unsigned int: compare the low 32 bits only, or high bits slip past.
    for request in (TIOCSTI, TIOCLINUX):
        _add(seccomp, flt, eperm, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, request))
    return flt


def _add(seccomp: Any, flt: Any, action: int, name: str, *args: Any) -> None:
    # -1 means this libseccomp has never heard of the name (an older release and a newer
    # syscall). Known calls that this architecture lacks resolve to other negative numbers,
    # which add_rule accepts and leaves out of the program.
    if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) == -1:
        if name in _OPTIONAL:
            return
        raise SandboxUnavailable(f"libseccomp does not know the syscall {name!r}", "upgrade libseccomp2 (2.5 or newer)")
    try:
        flt.add_rule(action, name, *args)
    except OSError as exc:
        raise SandboxUnavailable(
            f"libseccomp refused the rule for {name!r} ({exc})", "upgrade libseccomp2 (2.5 or newer)"
        ) from None


# Newer than libseccomp 2.5.0; a build that does not know them gets a filter without them.
_OPTIONAL = frozenset(
    {
        "mount_setattr",
        "process_madvise",
        "pidfd_getfd",
        "fsopen",
        "fsconfig",
        "fsmount",
        "fspick",
        "open_tree",
        "move_mount",
    }
)


@functools.lru_cache(maxsize=1)
def filter_bpf() -> bytes:
    """The compiled filter as the raw ``struct sock_filter`` array ``bwrap --seccomp`` reads."""
    flt = build_filter()
    with tempfile.TemporaryFile() as out:
        flt.export_bpf(out)
        out.seek(0)
        return out.read()


@functools.lru_cache(maxsize=1)
def syscall_number(name: str) -> int:
    """The native architecture's number of syscall ``name`` (for calls through ctypes)."""
    seccomp = _library()
    number = seccomp.resolve_syscall(seccomp.Arch.NATIVE, name)
    if number < 0:
        raise SandboxUnavailable(
            f"libseccomp does not know the syscall {name!r} on this machine", "upgrade libseccomp2"
        )
    return int(number)


@contextlib.contextmanager
def filter_fd() -> Iterator[int]:
    """A pipe's read end holding the filter, for one ``bwrap --seccomp FD``; closed on exit.

    A pipe rather than a shared file: bwrap reads to EOF from the descriptor's offset, so each
    run needs its own.
    """
    data = filter_bpf()
    read_end, write_end = os.pipe()
    try:
        # The program is about 1 KiB; a pipe holds 64 KiB, so this write never blocks.
        view = memoryview(data)
        while view:
            view = view[os.write(write_end, view) :]
        os.close(write_end)
        write_end = -1
        yield read_end
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
