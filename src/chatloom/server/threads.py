"""A tenant's conversation threads, read straight from the checkpointer.

Every thread a tenant starts is stored as ``<tenant>:<its thread id>``; the prefix is added by
the server and never taken from the client, so no request can name another tenant's thread.
"""

from __future__ import annotations

from typing import Any

MAX_THREAD_ID_CHARS = 200


def internal_id(tenant: str, thread_id: str) -> str:
    """The stored id of a tenant's thread."""
    return f"{tenant}:{thread_id}"


def list_threads(checkpointer: Any, tenant: str, limit: int = 100) -> list[str]:
    """The tenant's thread ids (without the prefix), most recently used first."""
    from chatloom.memory.checkpoint import thread_ids

    prefix = internal_id(tenant, "")
    return [t[len(prefix) :] for t in thread_ids(checkpointer, prefix, limit)]


def thread_messages(checkpointer: Any, tenant: str, thread_id: str) -> list[dict[str, Any]] | None:
    """The thread's questions, answers and tool steps as JSON; None if it doesn't exist."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    from chatloom.tools.policy import unwrap_untrusted

    saved = checkpointer.get_tuple({"configurable": {"thread_id": internal_id(tenant, thread_id)}})
    if saved is None:
        return None
    out: list[dict[str, Any]] = []
    for message in saved.checkpoint.get("channel_values", {}).get("messages", []):
        if isinstance(message, HumanMessage):
            out.append({"role": "user", "content": str(message.content)})
        elif isinstance(message, AIMessage) and message.tool_calls:
            out += [
                {"role": "tool_call", "name": c["name"], "args": c["args"], "id": c["id"]} for c in message.tool_calls
            ]
        elif isinstance(message, AIMessage):
            out.append({"role": "assistant", "content": str(message.content)})
        elif isinstance(message, ToolMessage):
            out.append(
                {
                    "role": "tool",
                    "name": message.name,
                    "id": message.tool_call_id,
                    "content": unwrap_untrusted(str(message.content)),
                    "ok": message.status != "error",
                }
            )
    return out


def delete_thread(checkpointer: Any, tenant: str, thread_id: str, timeout: float) -> None:
    """Forget a tenant's thread (waiting for a running turn on it to finish)."""
    from chatloom.agents.thread_lock import hold_thread

    stored = internal_id(tenant, thread_id)
    with hold_thread(checkpointer, stored, timeout=timeout):
        checkpointer.delete_thread(stored)


def maybe_paused_threads(checkpointer: Any, tenant: str) -> list[str]:
    """The tenant's stored thread ids (with the prefix) that may be paused for an approval.

    SQLite and PostgreSQL are asked for the threads that ever stored an interrupt (one query
    over the checkpoint writes), a superset that the caller checks against each thread's latest
    state; other stores give all of the tenant's threads.
    """
    from chatloom.memory.checkpoint import interrupted_thread_ids, thread_ids

    prefix = internal_id(tenant, "")
    found = interrupted_thread_ids(checkpointer, prefix)
    return thread_ids(checkpointer, prefix) if found is None else found
