from pathlib import Path
from textwrap import dedent

import pytest


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty bot workspace as the current directory (so messages show relative paths)."""
    (tmp_path / "prompts").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATLOOM_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def write(workspace: Path):
    """write("prompts/x.yaml", text) -> Path, with the text dedented."""

    def _write(relative: str, text: str) -> Path:
        path = workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write
