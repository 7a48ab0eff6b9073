"""What the server tells operators about each turn: JSON log lines, callbacks, OpenTelemetry spans.

Every step of a turn becomes one record ``{"event": "tool.call", "tenant": ..., ...}``:
``turn.start``, ``tool.call``, ``tool.result``, ``approval.requested``, ``turn.paused``, ``turn.end``,
``turn.error`` and ``turn.client_gone``, plus ``http.request`` per request. Records carry names, ids, counts and
timings, never contents: no question, answer, tool argument value or tool output is logged,
and API keys never reach this module, so neither they nor anything a user typed can leak into
logs. They go to the ``chatloom.server`` logger (one JSON object per line with
:func:`configure_json_logs`) and to each callback passed as ``on_event``.

OpenTelemetry: when the ``opentelemetry`` API is importable, each turn is an ``invoke_agent
{agent}`` span with one ``execute_tool {tool}`` child per tool call, with the GenAI semantic
convention attributes (``gen_ai.operation.name``, ``gen_ai.agent.name``,
``gen_ai.conversation.id``, ``gen_ai.tool.name``, ``gen_ai.usage.*``). Without a configured
``TracerProvider`` the API is a no-op, so nothing is recorded or sent anywhere by default.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO, TypedDict

from chatloom.agents.reply import AnswerEvent, ApprovalRequired, ToolCallEvent, ToolResultEvent
from chatloom.errors import ChatloomError

log = logging.getLogger("chatloom.server")

EventCallback = Callable[[dict[str, Any]], None]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, event, and the record's fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            **getattr(record, "fields", {}),
        }
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_json_logs(stream: TextIO | None = None, level: int = logging.INFO) -> logging.Handler:
    """Send the server's records to ``stream`` (stderr) as JSON lines; returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return handler


class Observer:
    """Fans records out to the log and to ``callbacks``; starts :class:`TurnTrace` per turn."""

    def __init__(self, callbacks: Sequence[EventCallback] = ()) -> None:
        self.callbacks = list(callbacks)
        self._tracer = _tracer()

    def emit(self, event: str, *, level: int = logging.INFO, **fields: Any) -> None:
        """Log one record and hand it to every callback (a failing callback is logged, not raised)."""
        log.log(level, event, extra={"fields": fields})
        for callback in self.callbacks:
            try:
                callback({"event": event, **fields})
            except Exception as exc:  # noqa: BLE001 - an observer must never break a turn
                log.warning(
                    "callback.error",
                    extra={"fields": {"callback": getattr(callback, "__name__", "?"), "error": type(exc).__name__}},
                )

    def turn(self, *, agent: str, tenant: str, thread_id: str, request_id: str) -> TurnTrace:
        """A trace of one turn; feed it the turn's events, then :meth:`TurnTrace.failed` or nothing."""
        return TurnTrace(self, {"agent": agent, "tenant": tenant, "thread_id": thread_id, "request_id": request_id})


class TurnIds(TypedDict):
    """What every record of one turn carries."""

    agent: str
    tenant: str
    thread_id: str
    request_id: str


class TurnTrace:
    """Records for one turn, and its spans when OpenTelemetry is configured."""

    def __init__(self, observer: Observer, ids: TurnIds) -> None:
        self.observer = observer
        self.ids = ids
        self.started = time.monotonic()
        self._span: Any = None
        self._tools: dict[str, Any] | None = None  # open tool spans by call id, when tracing
        self._paused = 0  # approvals this turn paused for
        tracer = observer._tracer
        if tracer is not None:
            self._span = tracer.start_span(
                f"invoke_agent {ids['agent']}",
                attributes={
                    "gen_ai.operation.name": "invoke_agent",
                    "gen_ai.agent.name": ids["agent"],
                    "gen_ai.conversation.id": ids["thread_id"],
                    "chatloom.tenant": ids["tenant"],
                },
            )
            self._tools = {}
        observer.emit("turn.start", **ids)

    def see(self, event: Any) -> None:
        """Record one event of the turn."""
        emit = self.observer.emit
        if isinstance(event, ToolCallEvent):
            emit("tool.call", **self.ids, tool=event.name, call_id=event.id, arg_names=sorted(event.args))
            self._start_tool(event)
        elif isinstance(event, ToolResultEvent):
            emit(
                "tool.result",
                **self.ids,
                tool=event.name,
                call_id=event.id,
                ok=event.ok,
                result_chars=len(event.content),
            )
            self._end_tool(event)
        elif isinstance(event, ApprovalRequired):
            self._paused += 1
            emit("approval.requested", **self.ids, tool=event.approval.tool, approval_id=event.approval.approval_id)
        elif isinstance(event, AnswerEvent):
            reply = event.reply
            emit(
                "turn.end",
                **self.ids,
                ms=self._ms(),
                stop_reason=reply.stop_reason,
                steps=reply.steps,
                tool_calls=len(reply.tool_steps),
                citations=len(reply.citations),
                grounded=reply.grounded,
                route=reply.route,
                input_tokens=reply.usage.input_tokens,
                output_tokens=reply.usage.output_tokens,
            )
            if self._span is not None:
                self._span.set_attribute("gen_ai.usage.input_tokens", reply.usage.input_tokens)
                self._span.set_attribute("gen_ai.usage.output_tokens", reply.usage.output_tokens)
                self._span.end()

    def ended(self) -> None:
        """Record that the turn's events ended without an error: a pause, when it paused (an
        answer was recorded by :meth:`see` already)."""
        if not self._paused:
            return
        self.observer.emit("turn.paused", **self.ids, ms=self._ms(), approvals=self._paused)
        if self._span is not None:
            self._span.set_attribute("chatloom.paused_for_approvals", self._paused)
            self._span.end()

    def failed(self, exc: BaseException) -> None:
        """Record that the turn ended with ``exc`` (its type; the message only for chatloom's own errors)."""
        if isinstance(exc, (GeneratorExit, asyncio.CancelledError)):
            # The client went away; the turn itself goes on and is saved (see run_turn).
            self.observer.emit("turn.client_gone", **self.ids, ms=self._ms())
        else:
            detail = str(exc) if isinstance(exc, ChatloomError) else ""
            self.observer.emit(
                "turn.error", level=logging.WARNING, **self.ids, ms=self._ms(), error=type(exc).__name__, detail=detail
            )
        if self._span is not None:
            from opentelemetry.trace import Status, StatusCode

            self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            self._span.end()

    def _ms(self) -> int:
        return round((time.monotonic() - self.started) * 1000)

    def _start_tool(self, event: ToolCallEvent) -> None:
        if self._span is None:
            return
        from opentelemetry import trace

        self._tools = self._tools or {}
        self._tools[event.id] = self.observer._tracer.start_span(
            f"execute_tool {event.name}",
            context=trace.set_span_in_context(self._span),
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": event.name,
                "gen_ai.tool.call.id": event.id,
                "gen_ai.tool.type": "function",
            },
        )

    def _end_tool(self, event: ToolResultEvent) -> None:
        span = (self._tools or {}).pop(event.id, None)
        if span is None:
            return
        if not event.ok:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, "tool failed or was refused"))
        span.end()


def _tracer() -> Any:
    """The OpenTelemetry tracer, or None when the API isn't installed (no-op without a provider)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer("chatloom.server")
