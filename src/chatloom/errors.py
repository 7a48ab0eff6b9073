"""Every failure a user can cause or fix is a :class:`ChatloomError`.

Its ``str()`` is one line: what was wrong (with the value) and what to do about it. The CLI
prints it as ``error: ...`` and exits with status 2; the library only raises.
"""

from __future__ import annotations

from collections.abc import Iterable


class ChatloomError(Exception):
    """A failure with a one-line explanation and, when known, the fix."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} — {self.hint}" if self.hint else self.message


def closest_name(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like a mistyped ``word`` (difflib's similarity, at least ``cutoff``), or
    None: what a "did you mean ...?" hint suggests.

    >>> closest_name("calculater", ["calculator", "search"]), closest_name("xyz", ["search"])
    ('calculator', None)
    """
    import difflib

    found = difflib.get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return found[0] if found else None


def install_hint(extra: str, *packages: str) -> str:
    """How to install what an optional feature needs, worded the same everywhere: the packages
    themselves, then chatloom's extra that holds them.

    >>> install_hint("memory", "kiwipiepy", "kiwipiepy-model")
    "pip install kiwipiepy kiwipiepy-model  (or: pip install 'chatloom[memory]')"
    >>> install_hint("local")
    "pip install torch==2.13.0 && pip install 'chatloom[local]'"
    """
    import shlex

    # An unpinned torch requirement pulls a CUDA build of several GB: the CPU one goes first.
    first = "pip install torch==2.13.0 && " if extra == "local" else ""
    with_extra = f"{first}pip install 'chatloom[{extra}]'"
    if not packages:
        return with_extra
    return f"pip install {' '.join(shlex.quote(p) for p in packages)}  (or: {with_extra})"


class ConfigError(ChatloomError):
    """Bad settings, spec or template content."""


class ModelError(ChatloomError):
    """Base class for model resolution and backend failures."""


class ModelNotFound(ModelError):
    """The model id names no scheme, catalog entry or file that exists."""


class ModelNotInstalled(ModelError):
    """A catalog model that has not been installed into the data dir yet."""


class CorruptModel(ModelError):
    """A model file whose size or sha256 does not match its pin."""


class BackendError(ModelError):
    """A model backend failed at call time (dead server, bad key, timeout)."""


class DataDirError(ChatloomError):
    """The data dir can't be created or written."""


class ToolError(ChatloomError):
    """A tool was misconfigured or refused to run."""


class SandboxUnavailable(ToolError):
    """Sandboxed code execution was asked for but no sandbox is available."""


class MemoryStoreError(ChatloomError):
    """The memory store is unreachable or corrupt."""


class PromptError(ConfigError):
    """A prompt template failed to load, validate or render."""


class PluginError(ChatloomError):
    """A plugin failed to load."""


class EmptyQuestion(ChatloomError):
    """A question with no text in it."""


class ThreadBusy(ChatloomError):
    """Another turn on the same conversation thread held it for longer than the wait allows."""


class TurnStopped(ChatloomError):
    """The turn was stopped before its answer (``Agent.stop``, Ctrl-C, or its stream closed early)."""


class QuestionTooLong(ChatloomError):
    """A question longer than the configured limit (``max_question_chars``)."""


class InvalidHistory(ChatloomError):
    """A conversation history a caller supplied that a turn can't take (e.g. a tool result)."""


class ThreadExists(ChatloomError):
    """History was supplied to start a thread that already holds a conversation."""
