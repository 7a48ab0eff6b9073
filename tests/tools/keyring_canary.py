"""A secret in the test process's session keyring, where Kerberos caches and `keyctl` users keep theirs.

The sandbox inherits the session keyring of the process that starts it; the attacks try to read
this key. The fixture first moves the test process into a fresh anonymous session keyring, so the
canary never lands in the session of whoever runs the tests.
"""

from __future__ import annotations

import ctypes
import functools
import uuid

import pytest

KEY_DESCRIPTION = "chatloom-canary"
KEY_SECRET = "keyring-canary-" + uuid.uuid4().hex
KEY_SPEC_SESSION_KEYRING = -3
KEYCTL_JOIN_SESSION_KEYRING = 1
KEYCTL_REVOKE = 3
KEYCTL_SEARCH = 10

_NAMES = (
    "keyctl",
    "add_key",
    "request_key",
    "clone",
    "clone3",
    "unshare",
    "setns",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "bpf",
    "perf_event_open",
    "ptrace",
    "process_vm_readv",
    "userfaultfd",
    "kcmp",
    "pivot_root",
    "umount2",
    "fsopen",
    "open_tree",
    "kexec_load",
    "init_module",
    "reboot",
    "getpid",
)


@functools.lru_cache(maxsize=1)
def syscall_numbers() -> dict[str, int]:
    """This machine's syscall numbers, for attack code that calls them through ctypes."""
    import pyseccomp

    return {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in _NAMES}


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def keyctl(*args: int | bytes | None) -> int:
    """keyctl(2) in this (host) process."""
    return _libc().syscall(syscall_numbers()["keyctl"], *args)


def find_in_session(description: str) -> int:
    """The id of a "user" key in this process's session keyring, or -1."""
    return keyctl(KEYCTL_SEARCH, KEY_SPEC_SESSION_KEYRING, b"user", description.encode(), 0)


_state: dict[str, int] = {}


@pytest.fixture
def host_keyring_canary() -> str:
    """Put KEY_SECRET into this process's (fresh) session keyring; return its description."""
    if "key" not in _state:
        if keyctl(KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
            pytest.fail(f"cannot join a session keyring in the test process (errno {ctypes.get_errno()})")
        payload = KEY_SECRET.encode()
        key = _libc().syscall(
            syscall_numbers()["add_key"],
            b"user",
            KEY_DESCRIPTION.encode(),
            payload,
            len(payload),
            KEY_SPEC_SESSION_KEYRING,
        )
        if key < 0:
            pytest.fail(f"cannot add the canary key (errno {ctypes.get_errno()})")
        _state["key"] = key
    return KEY_DESCRIPTION
