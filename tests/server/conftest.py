"""Fixtures for the server tests: a live server with scripted agents and two tenants."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "memory"))  # memhelpers, for the PostgreSQL fixture

from serverhelpers import config, live_server, scripted_catalog

_spec = importlib.util.spec_from_file_location(
    "chatloom_memory_fixtures", Path(__file__).parents[1] / "memory" / "conftest.py"
)
_memory_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory_fixtures)
postgres_dsn = _memory_fixtures.postgres_dsn  # the real local PostgreSQL of tests/memory


@pytest.fixture
def checkpointer(tmp_path: Path):
    from chatloom.memory.checkpoint import open_sqlite_checkpointer

    saver = open_sqlite_checkpointer(tmp_path / "threads.sqlite")
    yield saver
    saver.conn.close()


@pytest.fixture
def events() -> list[dict]:
    """Every structured record the server emitted (its on_event callback)."""
    return []


@pytest.fixture
def server(checkpointer, events):
    """A live server (uvicorn on 127.0.0.1) with the scripted agents and tenants acme/globex."""
    from chatloom.server.app import create_app

    app = create_app(scripted_catalog(checkpointer), config(max_body_bytes=20_000, ui=True), on_event=[events.append])
    with live_server(app) as url:
        yield url
