"""The real default model for integration tests: the Qwen GGUF `chatloom models install` put
in the data dir (CI's `./run test` installs it), or CHATLOOM_TEST_QWEN_GGUF."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def _installed_qwen() -> str | None:
    from chatloom.config import get_settings
    from chatloom.errors import ChatloomError
    from chatloom.models.install import locate

    try:
        return str(locate("qwen2.5-coder-0.5b", get_settings().data_dir()))
    except ChatloomError:
        return None


INSTALLED_QWEN = _installed_qwen()  # at import: the autouse fixture points CHATLOOM_HOME elsewhere


def qwen_gguf() -> Path:
    """The Qwen GGUF, or a skip (a failure when CI requires the models)."""
    gguf = os.environ.get("CHATLOOM_TEST_QWEN_GGUF") or INSTALLED_QWEN
    if not gguf or not Path(gguf).is_file():
        if os.environ.get("CHATLOOM_REQUIRE_MODELS"):
            pytest.fail("CI installs the default Qwen model (./run test); it is missing")
        pytest.skip("set CHATLOOM_TEST_QWEN_GGUF to a Qwen2.5-Coder GGUF, or run `chatloom models install`")
    return Path(gguf)
