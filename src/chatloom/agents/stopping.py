"""Stopping a running turn early: Ctrl-C in the chat, a stream its reader closed, :meth:`Agent.stop`.

LangGraph runs a turn's steps in worker threads, and a generator that is closed (or a
KeyboardInterrupt in the thread reading it) only ends once those threads are done: a local
model would write its whole answer first. So a turn carries a :class:`StopSignal`, a callback
handler every step, model call and tool call of the turn inherits. Once the signal is set, the
turn raises :class:`StopTurn` in the worker at the first of: the next token, the end of the
model call under way (its reply is dropped, so a backend that doesn't stream stops there too),
the start of the next graph step, model call or tool call. What the signal can't interrupt is a
call already under way in native code (a model's ``_generate``, a tool's body, a model load):
the turn stops when that call returns.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler


class StopTurn(BaseException):
    """Raised inside a stopped turn. A BaseException, so that no retry policy, tool-error handler
    or callback logger mistakes it for an ordinary failure to report or retry."""


class StopSignal(BaseCallbackHandler):
    """The stop switch of one turn; :meth:`stop` is safe to call from any thread.

    A switch is created when the turn starts, before the agent loads, so a stop during the load
    counts. The turn calls :meth:`finish` once its last step is done: from then on :meth:`stop`
    is too late and says so (False), and a stop that came before makes :meth:`finish` raise
    :class:`StopTurn`. So ``stop()`` returning True always means the turn ends in StopTurn.
    """

    raise_error = True  # LangChain passes a handler's errors on only when asked to

    def __init__(self) -> None:
        # Reentrant: stop() may run in a signal handler (Ctrl-C) on the very thread that holds
        # the lock in finish(), and a plain Lock would deadlock there.
        self._lock = threading.RLock()
        self._stopped = False
        self._finished = False

    def stop(self) -> bool:
        """Ask the turn to stop at its next step; False when it has already finished."""
        with self._lock:
            if self._finished:
                return False
            self._stopped = True
            return True

    @property
    def stopped(self) -> bool:
        """Whether a stop was asked for before the turn finished."""
        return self._stopped

    def check(self, *args: Any, **kwargs: Any) -> None:
        """Raise :class:`StopTurn` if the turn was asked to stop (any callback's arguments are accepted)."""
        if self._stopped:
            raise StopTurn

    def finish(self) -> None:
        """Mark the turn done; raise :class:`StopTurn` if a stop came first (see the class)."""
        with self._lock:
            self._finished = True
        self.check()

    # The callbacks that check: a token, a model call's start and end (the end is where a model
    # that doesn't stream is stopped: its reply is dropped), a tool call, and any runnable's start,
    # which includes each node of the graph (recall, think, act, remember) and the graph itself.
    on_chat_model_start = on_llm_start = on_llm_new_token = on_llm_end = on_tool_start = on_chain_start = check
