"""Running agent turns for the server: off the event loop, with a timeout and durable approvals.

A turn is :meth:`Agent.stream <chatloom.agents.agent.Agent.stream>` (or :meth:`~chatloom.agents.agent.Agent.resume`)
run in a worker thread; its events reach the event loop through a queue, so one slow turn never
blocks the others. The agent's per-thread turn lock still serialises two requests on one conversation.

Tool approvals ("ask"): the server's agents pause (``approver=http_approver``, which is
:data:`~chatloom.tools.policy.PAUSE`). A turn that needs a decision stores the pause in the
checkpointer, sends ``approval_required`` and ends; ``POST /v1/approvals/{id}`` resumes it, in
this process or in another one after a restart (see docs/serve.md).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime
from typing import Any

from chatloom.agents.reply import (
    AnswerEvent,
    ApprovalRequired,
    Event,
    EventStream,
    PendingApproval,
    Reply,
    Token,
    ToolCallEvent,
    ToolResultEvent,
)
from chatloom.errors import ChatloomError
from chatloom.tools.policy import PAUSE

http_approver = PAUSE
"""The approver of the server's agents: ``Agent(approver=http_approver)`` pauses each "ask" call
durably until ``POST /v1/approvals/{id}`` decides it. (It is :data:`chatloom.tools.policy.PAUSE`.)"""


class TurnTimeout(ChatloomError):
    """A turn ran longer than the server's turn_timeout."""


def public_approval_id(thread_id: str, approval_id: str) -> str:
    """The id clients use for an approval: the client's thread id (no tenant prefix) and the
    approval's id within the thread, so a decision finds its thread without a server-side index.

    >>> public_approval_id("t1", "ap-0123")
    'dDE.ap-0123'
    """
    encoded = base64.urlsafe_b64encode(thread_id.encode("utf-8")).decode("ascii").rstrip("=")
    return f"{encoded}.{approval_id}"


def split_approval_id(public_id: str) -> tuple[str, str] | None:
    """``(thread id, approval id)`` of a client's approval id, or None if it isn't one."""
    encoded, sep, approval_id = public_id.rpartition(".")
    if not sep or not encoded or not approval_id.startswith("ap-"):
        return None
    try:
        thread_id = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not thread_id or public_approval_id(thread_id, approval_id) != public_id:  # stray characters were skipped
        return None
    return thread_id, approval_id


def new_turn(
    agent: Any,
    text: str,
    *,
    thread_id: str | None,
    user_id: str | None,
    approval_timeout: float,
    history: list[Any] | None = None,
) -> EventStream:
    """The events of a new question on ``thread_id`` (None: on no thread, nothing saved).

    ``history`` is the conversation before the question as the client sent it (see
    :meth:`Agent.stream <chatloom.agents.agent.Agent.stream>`): the whole of it on no thread, or
    the start of a new thread.

    A pause older than ``approval_timeout`` seconds no longer blocks the thread: its calls are
    declined first (that turn ends and is saved, the model told they were declined), then the
    question runs. A younger pause makes the agent refuse the question (``ApprovalPending``).
    """
    from chatloom.agents.approvals import ApprovalPending

    try:
        # The agent checks for a pause itself, before its first event; only then is one looked at here.
        yield from agent.stream(text, thread_id=thread_id, user_id=user_id, history=history)
        return
    except ApprovalPending:
        if thread_id is None:  # (a turn on no thread never pauses; nothing to decline)
            raise
        pending = agent.pending_approvals(thread_id)
        if not pending or any(_age(p) <= approval_timeout for p in pending):
            raise
    for _ in agent.resume(thread_id, {p.approval_id: False for p in pending}):
        pass
    yield from agent.stream(text, thread_id=thread_id, user_id=user_id)


def _age(approval: PendingApproval) -> float:
    """Seconds since the turn paused for ``approval``."""
    try:
        paused = datetime.fromisoformat(approval.requested_at)
    except ValueError:
        return 0.0  # unknown: never counts as expired
    return (datetime.now(UTC) - paused).total_seconds()


async def run_turn(
    events_of: Callable[[], EventStream], *, timeout: float = 300.0, executor: Executor | None = None
) -> AsyncIterator[Event]:
    """Yield the events of ``events_of()`` (a turn, new or resumed) as they happen.

    Raises the turn's own error (e.g. :class:`~chatloom.errors.ThreadBusy`) or
    :class:`TurnTimeout`; on a timeout the turn is stopped at its next step. If the consumer
    goes away (a client disconnects), the turn still finishes and is saved; a pause is saved too,
    and can be decided later.
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

    def pump() -> None:
        events = events_of()
        try:
            for event in events:
                send(event)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            send(exc)
        finally:
            events.close()  # releases the thread's turn lock now, also when stopped early
            send(done)

    # A fresh context per turn: pool threads are reused.
    loop.run_in_executor(executor, contextvars.copy_context().run, pump)
    deadline = time.monotonic() + timeout
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), max(deadline - time.monotonic(), 0.001))
        except TimeoutError:
            stop.set()
            raise TurnTimeout(
                f"the turn took longer than {timeout:g} s", "ask something shorter, or raise [serve] turn_timeout"
            ) from None
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


async def final_reply(events: AsyncIterator[Event]) -> Reply:
    """The :class:`Reply` at the end of ``events`` (a turn's other events are dropped); a turn
    that paused gives a Reply with ``stop_reason="paused"`` listing its approvals."""
    reply = None
    paused: list[PendingApproval] = []
    async for event in events:
        if isinstance(event, AnswerEvent):
            reply = event.reply
        elif isinstance(event, ApprovalRequired):
            paused.append(event.approval)
    if reply is None and paused:
        return Reply.paused(paused[0].thread_id, paused)
    if reply is None:
        raise ChatloomError("the turn ended without an answer")
    return reply


def reply_json(reply: Reply, thread_id: str | None) -> dict[str, Any]:
    """The reply as JSON for clients, under the client's own ``thread_id`` (no tenant prefix;
    None for a turn on no thread: no id is claimed for a conversation that wasn't stored).

    The hidden reasoning and the full retrieval trace stay on the server.
    """
    data = reply.to_dict()
    data["thread_id"] = thread_id
    data.pop("reasoning", None)
    data.pop("retrieved", None)
    data["approval_required"] = [approval_json(a, thread_id or "") for a in reply.approval_required]
    return data


def approval_json(approval: PendingApproval, thread_id: str) -> dict[str, Any]:
    """A pending approval as clients see it: the public id, under the client's ``thread_id``."""
    return {
        "type": "approval_required",
        "approval_id": public_approval_id(thread_id, approval.approval_id),
        "thread_id": thread_id,
        "tool": approval.tool,
        "args": approval.args,
        "effect": approval.effect,
        "why": approval.why,
        "model": approval.agent,
        "requested_at": approval.requested_at,
    }


def paused_notice(approvals: tuple[PendingApproval, ...] | list[PendingApproval]) -> str:
    """The text an OpenAI client shows for a paused turn (it has no field for approvals)."""
    from chatloom.tools.policy import ToolCallRequest

    lines = [f"- {ToolCallRequest(a.tool, a.args, a.effect, a.why).describe()}: {a.why}." for a in approvals]
    return (
        "Waiting for approval before going on:\n"
        + "\n".join(lines)
        + "\nApprove or decline (POST /v1/approvals/{id}); the answer follows."
    )


def event_json(event: Event, thread_id: str | None) -> dict[str, Any]:
    """One event as the native endpoint's JSON (its ``type`` names it)."""
    if isinstance(event, Token):
        return {"type": "token", "text": event.text}
    if isinstance(event, ToolCallEvent):
        return {"type": "tool_call", "name": event.name, "args": event.args, "id": event.id}
    if isinstance(event, ToolResultEvent):
        return {"type": "tool_result", "name": event.name, "content": event.content, "id": event.id, "ok": event.ok}
    if isinstance(event, ApprovalRequired):
        return approval_json(event.approval, thread_id or "")
    if isinstance(event, AnswerEvent):
        return {"type": "answer", **reply_json(event.reply, thread_id)}
    raise TypeError(f"not a turn event: {event!r}")
