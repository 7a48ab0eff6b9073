"""Fixtures for the MCP tests."""

from __future__ import annotations

import pytest

pytest.importorskip("mcp")

from mcp_helpers import start_http_fixture, stop


@pytest.fixture(scope="module")
def http_url():
    proc, url = start_http_fixture()
    yield url
    stop(proc)
