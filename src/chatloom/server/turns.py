"""Running agent turns for the server: off the event loop, with a timeout and HTTP approvals.

A turn is :meth:`Agent.stream <chatloom.agents.agent.Agent.stream>` run in a worker thread;
its events reach the event loop through a queue, so one slow turn never blocks the others. The
agent's per-thread turn lock still serialises two requests on one conversation.

Tool approvals ("ask"): the server's agents get :func:`http_approver`. When a tool call needs
approval, the worker thread registers it in :class:`Approvals`, sends an
:class:`ApprovalRequested` event to the client, and waits until someone calls
``POST /v1/approvals/{id}`` (or ``approval_timeout`` passes, which refuses the call). The
pause lives in this process: a restart refuses the pending call (see docs/serve.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from chatloom.agents.reply import AnswerEvent, Event, Reply, Token, ToolCallEvent, ToolResultEvent
from chatloom.errors import ChatloomError


class TurnTimeout(ChatloomError):
    """A turn ran longer than the server's turn_timeout."""


@dataclass(frozen=True)
class ApprovalRequested:
    """A tool call waits for ``POST /v1/approvals/{approval_id}``."""

    approval_id: str
    tool: str
    args: dict[str, Any]
    effect: str
    why: str


@dataclass
class _Pending:
    tenant: str
    thread_id: str
    event: ApprovalRequested
    decided: threading.Event = field(default_factory=threading.Event)
    approved: bool = False


class Approvals:
    """Tool calls waiting for a person's decision, by approval id; each visible to its tenant only."""

    def __init__(self, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pending: dict[str, _Pending] = {}

    def wait(self, tenant: str, thread_id: str, event: ApprovalRequested) -> bool:
        """Block (in a worker thread) until the call is decided; False on timeout."""
        pending = _Pending(tenant, thread_id, event)
        with self._lock:
            self._pending[event.approval_id] = pending
        try:
            pending.decided.wait(self.timeout)
            return pending.approved
        finally:
            with self._lock:
                self._pending.pop(event.approval_id, None)

    def decide(self, tenant: str, approval_id: str, approve: bool) -> bool:
        """Approve or deny a pending call of ``tenant``; False if it has no such call."""
        with self._lock:
            pending = self._pending.get(approval_id)
            if pending is None or pending.tenant != tenant or pending.decided.is_set():
                return False
            pending.approved = approve is True
            pending.decided.set()
            return True

    def cancel(self, tenant: str, thread_id: str) -> None:
        """Refuse every call waiting in ``thread_id`` of ``tenant`` (its client went away)."""
        with self._lock:
            for p in self._pending.values():
                if p.tenant == tenant and p.thread_id == thread_id:
                    p.decided.set()

    def pending(self, tenant: str) -> list[tuple[str, ApprovalRequested]]:
        """``(thread_id, request)`` of every call of ``tenant`` waiting now."""
        with self._lock:
            return [(p.thread_id, p.event) for p in self._pending.values() if p.tenant == tenant and not p.decided.is_set()]


@dataclass
class _Turn:
    """What :func:`http_approver` needs to know about the turn it is called from."""

    tenant: str
    thread_id: str
    approvals: Approvals | None  # None: nobody can answer (a non-streaming request)
    send: Any  # puts an event on the client's queue
    paused: float = 0.0  # seconds spent waiting for approvals (not counted by the turn timeout)


_current_turn: contextvars.ContextVar[_Turn | None] = contextvars.ContextVar("chatloom_server_turn", default=None)


def http_approver(request: Any) -> bool:
    """The approver of the server's agents: asks the client of the current turn over HTTP.

    Outside a server turn, or in a turn whose client can't answer, the call is refused.
    """
    turn = _current_turn.get()
    if turn is None or turn.approvals is None:
        return False
    event = ApprovalRequested(secrets.token_urlsafe(12), request.tool, dict(request.args), request.effect, request.why)
    turn.send(event)
    started = time.monotonic()
    try:
        return turn.approvals.wait(turn.tenant, turn.thread_id, event)
    finally:
        turn.paused += time.monotonic() - started


async def run_turn(
    agent: Any,
    text: str,
    *,
    thread_id: str,
    tenant: str,
    user_id: str | None = None,
    approvals: Approvals | None = None,
    timeout: float = 300.0,
    executor: Executor | None = None,
) -> AsyncIterator[Event | ApprovalRequested]:
    """Yield the turn's events as they happen; the last is the :class:`AnswerEvent`.

    Raises the turn's own error (e.g. :class:`~chatloom.errors.ThreadBusy`) or
    :class:`TurnTimeout`; on a timeout the turn is stopped at its next step. If the consumer
    goes away (a client disconnects), the turn still finishes and is saved, but any approval
    it asks for is refused.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()
    stop = threading.Event()

    def send(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed (server shutdown): nobody to tell; the turn still ends
            pass

    state = _Turn(tenant, thread_id, approvals, send)

    def pump() -> None:
        _current_turn.set(state)
        events = agent.stream(text, thread_id=thread_id, user_id=user_id)
        try:
            for event in events:
                state.send(event)
                if stop.is_set():
                    break
        except BaseException as exc:  # handed to the consumer, which re-raises it
            state.send(exc)
        finally:
            events.close()  # releases the thread's turn lock now, also when stopped early
            state.send(done)

    # A fresh context per turn: pool threads are reused, and the approver reads the turn from it.
    loop.run_in_executor(executor, contextvars.copy_context().run, pump)
    started = time.monotonic()
    try:
        while True:
            left = started + timeout + state.paused - time.monotonic()
            try:
                item = await asyncio.wait_for(queue.get(), max(left, 0.001))
            except TimeoutError:
                if started + timeout + state.paused - time.monotonic() > 0:
                    continue  # an approval wait ended just now and moved the deadline
                stop.set()
                raise TurnTimeout(f"the turn took longer than {timeout:g} s", "ask something shorter, or raise [serve] turn_timeout") from None
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        # Nobody is listening any more: the turn goes on (and is saved), but what it would
        # ask now, or is asking, is refused.
        if state.approvals is not None:
            waiting, state.approvals = state.approvals, None
            waiting.cancel(tenant, thread_id)


async def final_reply(events: AsyncIterator[Event | ApprovalRequested]) -> Reply:
    """The :class:`Reply` at the end of ``events`` (a turn's other events are dropped)."""
    reply = None
    async for event in events:
        if isinstance(event, AnswerEvent):
            reply = event.reply
    if reply is None:
        raise ChatloomError("the turn ended without an answer")
    return reply


def reply_json(reply: Reply, thread_id: str) -> dict[str, Any]:
    """The reply as JSON for clients, under the client's own ``thread_id`` (no tenant prefix).

    The hidden reasoning and the full retrieval trace stay on the server.
    """
    data = reply.to_dict()
    data["thread_id"] = thread_id
    data.pop("reasoning", None)
    data.pop("retrieved", None)
    return data


def event_json(event: Event | ApprovalRequested, thread_id: str) -> dict[str, Any]:
    """One event as the native endpoint's JSON (its ``type`` names it)."""
    if isinstance(event, Token):
        return {"type": "token", "text": event.text}
    if isinstance(event, ToolCallEvent):
        return {"type": "tool_call", "name": event.name, "args": event.args, "id": event.id}
    if isinstance(event, ToolResultEvent):
        return {"type": "tool_result", "name": event.name, "content": event.content, "id": event.id, "ok": event.ok}
    if isinstance(event, ApprovalRequested):
        return {"type": "approval_required", "approval_id": event.approval_id, "tool": event.tool, "args": event.args, "effect": event.effect, "why": event.why}
    if isinstance(event, AnswerEvent):
        return {"type": "answer", **reply_json(event.reply, thread_id)}
    raise TypeError(f"not a turn event: {event!r}")
