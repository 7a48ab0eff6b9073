"""Stopping a running turn early: Ctrl-C in the chat, a stream its reader closed, :meth:`Agent.stop`.

LangGraph runs a turn's steps in worker threads, and a generator that is closed (or a
KeyboardInterrupt in the thread reading it) only ends once those threads are done: a local
model would write its whole answer first. So a turn carries a :class:`StopSignal`, a callback
handler every model call and tool call of the turn inherits. Once the signal is set, the next
token, model call or tool call raises :class:`StopTurn` in the worker, which ends the turn.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler


class StopTurn(BaseException):
    """Raised inside a stopped turn. A BaseException, so that no retry policy, tool-error handler
    or callback logger mistakes it for an ordinary failure to report or retry."""


class StopSignal(BaseCallbackHandler):
    """The stop switch of one turn; :meth:`stop` is safe to call from any thread."""

    raise_error = True  # LangChain passes a handler's errors on only when asked to

    def __init__(self) -> None:
        self._event = threading.Event()

    def stop(self) -> None:
        """Ask the turn to stop at its next token, model call or tool call."""
        self._event.set()

    def _check(self, *args: Any, **kwargs: Any) -> None:
        if self._event.is_set():
            raise StopTurn

    on_chat_model_start = on_llm_start = on_llm_new_token = on_tool_start = _check
