"""No security test skips silently: where the sandbox is required, an unusable one is a failure.

CI sets ``CI=true`` and ``.ci/run`` exports ``CHATLOOM_REQUIRE_SANDBOX=1``; there a missing or
broken bubblewrap (or seccomp library) fails every sandbox test instead of skipping it, so CI
cannot go green with no sandbox at all. On a developer's machine without bubblewrap they skip,
and the skip reason says how to install it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import pytest

from chatloom.errors import SandboxUnavailable
from chatloom.tools.sandbox import Sandbox

REQUIRE_ENV = "CHATLOOM_REQUIRE_SANDBOX"


def sandbox_required(env: Mapping[str, str] = os.environ) -> str | None:
    """Why the sandbox must work here (a CI variable), or None when a skip is allowed."""
    if env.get("CI", "").strip().lower() in {"1", "true", "yes"}:
        return "CI=true"
    if env.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return f"{REQUIRE_ENV}=1"
    return None


def sandbox_problem(sandbox: Sandbox | None = None) -> str | None:
    """What makes the sandbox unusable here, or None when it works."""
    try:
        (sandbox or Sandbox(unsafe=False)).check()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def gate(problem: str | None, required: str | None) -> None:
    """Fail (where required) or skip (elsewhere) when ``problem`` says the sandbox is unusable."""
    if problem is None:
        return
    if required:
        pytest.fail(f"the sandbox is required here ({required}) but unusable: {problem}", pytrace=False)
    pytest.skip(f"sandbox unusable: {problem}")


_problem: list[str | None] = []


@pytest.fixture
def require_sandbox() -> None:
    """Use in every sandbox test: fails in CI, skips elsewhere, when the sandbox cannot run."""
    if not _problem:  # probe once per session; a real run of the sandbox takes ~0.1 s
        _problem.append(sandbox_problem())
    gate(_problem[0], sandbox_required())
