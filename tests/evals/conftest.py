"""Fixtures for the eval tests: the scripted model scheme, a private data dir."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def scripted_scheme(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``scripted:`` models for this process only, and a data dir of the test's own."""
    from chatloom.models import registry

    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "scripted", "evalbots:create_model")
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    for name in ("CHATLOOM_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
