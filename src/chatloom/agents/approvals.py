"""Durable tool approvals: a turn that pauses for a person's decision, stored in the checkpointer.

With ``Agent(approver="pause")``, the ``act`` node first collects a decision for every call of
the model's message that needs one, through LangGraph's :func:`~langgraph.types.interrupt`,
and only then runs any call. The pause is the interrupt saved with the thread's checkpoint, so
it survives a restart; :meth:`Agent.resume <chatloom.agents.agent.Agent.resume>` answers it with
``Command(resume={approval_id: bool, ...})``. LangGraph re-runs an interrupted node from its
start on resume, which is harmless here because nothing runs before the last decision is in.

Decisions may come one at a time: a resume that leaves calls undecided pauses again at once
(a new interrupt listing the rest); the decisions already given are kept in the checkpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chatloom.agents.reply import PendingApproval
from chatloom.errors import ChatloomError, ConfigError

_MARK = "chatloom_approvals"  # marks our interrupt payloads among any others in a thread


class UnknownApproval(ChatloomError):
    """A decision named an approval that is not waiting in the thread."""


class ApprovalPending(ChatloomError):
    """A new question came to a thread whose turn is paused for a tool approval."""


def approval_id(message_id: str | None, call_id: str | None, index: int) -> str:
    """A stable id for call ``index`` of a model message: the same on every re-run of the node.

    The ``ap-`` prefix matters: LangGraph reads a resume dict whose keys are all hex digests
    as a map of interrupt ids, and ours must stay one value (the decisions)."""
    digest = hashlib.sha256(f"{message_id}|{call_id}|{index}".encode("utf-8", "surrogatepass")).hexdigest()
    return f"ap-{digest[:16]}"


def request_payload(requests: list[dict[str, Any]], *, agent: str | None, user_id: str | None) -> dict[str, Any]:
    """The interrupt value of a pause: the undecided calls, and what resuming needs to know."""
    return {_MARK: 1, "agent": agent, "user_id": user_id, "requests": requests}


def is_approval_payload(value: Any) -> bool:
    """Whether an interrupt value is a pause for tool approvals (not some other interrupt)."""
    return isinstance(value, dict) and value.get(_MARK) == 1


def paused_turn(state: Any, thread_id: str) -> tuple[list[PendingApproval], str | None]:
    """The approvals a thread waits for, from its ``graph.get_state(...)`` snapshot, and the
    pausing turn's user id; ``([], None)`` when the thread is not paused for approvals."""
    pending: list[PendingApproval] = []
    user_id = None
    for interrupt in state.interrupts:
        value = interrupt.value
        if not is_approval_payload(value):
            continue
        user_id = value.get("user_id")
        for r in value["requests"]:
            pending.append(
                PendingApproval(
                    approval_id=r["approval_id"],
                    thread_id=thread_id,
                    tool=r["tool"],
                    args=dict(r["args"]),
                    effect=r["effect"],
                    why=r["why"],
                    tool_call_id=r["tool_call_id"],
                    agent=value.get("agent"),
                    requested_at=state.created_at or "",
                )
            )
    return pending, user_id


def check_decisions(thread_id: str, pending: list[PendingApproval], decisions: Mapping[str, bool]) -> dict[str, bool]:
    """``decisions`` checked against what ``thread_id`` waits for: each id pending, each value a bool."""
    if not pending:
        raise UnknownApproval(
            f"thread {thread_id!r} has no tool call waiting for approval", "Agent.pending_approvals lists what waits"
        )
    if not isinstance(decisions, Mapping) or not decisions:
        raise ConfigError(f"no decisions given for thread {thread_id!r}", "pass {approval_id: True or False, ...}")
    waiting = {p.approval_id for p in pending}
    for key, value in decisions.items():
        if key not in waiting:
            listed = ", ".join(sorted(waiting)) or "none"
            raise UnknownApproval(
                f"no tool call is waiting for approval {key!r} in thread {thread_id!r}",
                f"the pending approvals are: {listed} (Agent.pending_approvals lists them)",
            )
        if not isinstance(value, bool):
            raise ConfigError(
                f"the decision for {key!r} is {value!r}, not True or False", "pass True to approve, False to decline"
            )
    return dict(decisions)
