"""Fixtures shared by every test directory.

``browser``: a headless Chromium driven by Selenium, for the pages chatloom writes or serves
(the eval report, the web chat). Debian's ``chromium`` and ``chromium-driver`` packages provide
a browser and a driver of the same version, so nothing is downloaded at test time. Where
``CHATLOOM_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) a missing browser fails the test instead
of skipping it, so CI can't go green without running the page tests.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REQUIRE_BROWSER_ENV = "CHATLOOM_REQUIRE_BROWSER"


def _browser_problem() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for exe in ("chromium", "chromedriver"):
        if shutil.which(exe) is None:
            return f"{exe} is not on PATH (apt-get install -y chromium chromium-driver)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium WebDriver; quit after the test."""
    problem = _browser_problem()
    if problem:
        if os.environ.get(REQUIRE_BROWSER_ENV, "").strip().lower() in {"1", "true", "yes"}:
            pytest.fail(f"a browser is required here ({REQUIRE_BROWSER_ENV}=1): {problem}", pytrace=False)
        pytest.skip(f"no headless browser: {problem}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    # --no-sandbox: CI runs as root, where Chromium's own sandbox refuses to start.
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="session")
def default_model_gguf() -> Path:
    """The default local model's GGUF, as `chatloom models install` put it in the real data dir
    (``./run test`` does), or ``CHATLOOM_TEST_QWEN_GGUF``. For the integration tests on the real
    model: in CI (``CI`` or ``CHATLOOM_REQUIRE_MODELS`` set) a missing model fails the test,
    elsewhere it skips with the reason. Session-scoped, so it reads the real data dir before any
    test's own fixtures point ``CHATLOOM_HOME`` elsewhere."""
    from chatloom.config import get_settings
    from chatloom.errors import ChatloomError
    from chatloom.models.catalog import DEFAULT_LOCAL_MODEL
    from chatloom.models.install import locate

    override = os.environ.get("CHATLOOM_TEST_QWEN_GGUF")
    if override and Path(override).is_file():
        return Path(override)
    try:
        return Path(locate(DEFAULT_LOCAL_MODEL, get_settings().data_dir()))
    except ChatloomError as exc:
        if os.environ.get("CI") or os.environ.get("CHATLOOM_REQUIRE_MODELS"):
            pytest.fail(f"the default model is needed in CI (./run test installs it): {exc}")
        pytest.skip(f"the default local model is not installed: run `chatloom models install` ({exc})")
