"""Helpers for the MCP tests: the real MCP test server (fixture_server.py) over stdio and over HTTP."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

from chatloom.mcp.config import MCPServerSpec
from chatloom.testing import free_port, stop_process  # the MCP tests import free_port from here

FIXTURE = Path(__file__).with_name("fixture_server.py")
SRC = Path(__file__).resolve().parents[2] / "src"


def stdio_spec(name: str = "fx", **fields) -> MCPServerSpec:
    """The fixture server as a stdio server entry."""
    return MCPServerSpec(name=name, command=sys.executable, args=[str(FIXTURE), "stdio"], **fields)


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listened on port {port} within {timeout} s")


def start_http_fixture() -> tuple[subprocess.Popen, str]:
    """The fixture server over Streamable HTTP on 127.0.0.1; ``(process, url)``."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(FIXTURE), "http", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wait_for_port(port, proc)
    return proc, f"http://127.0.0.1:{port}/mcp"


stop = stop_process
