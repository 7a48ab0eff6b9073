"""Thread taint: once untrusted data has been in a thread, the thread stays untrusted.

An instruction planted in a web page or a retrieved document can be obeyed a turn later, or
survive in a summary of the thread after the page itself has been folded away. So the policy's
``untrusted_context`` is not a property of the current turn but of the whole thread: the first
untrusted source seen is kept in the checkpointed state (``TurnState["tainted"]``), survives
restarts and summaries, and only ``/reset`` (which deletes the thread) clears it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from chatloom.tools.policy import untrusted_source

TAINT_KEY = "tainted"


def is_tainted(state: Mapping[str, Any]) -> bool:
    """Whether the thread has held untrusted data in an earlier step or turn."""
    return bool(state.get(TAINT_KEY))


def taint_update(
    state: Mapping[str, Any],
    messages: Iterable[Any] = (),
    tools: Mapping[str, Any] | None = None,
    passages: list[dict[str, Any]] | None = None,
) -> dict[str, str]:
    """The state update that taints the thread, or ``{}`` when it is tainted already or clean.

    ``messages`` are checked for untrusted tool output or marked text; ``passages`` are
    retrieved passages (always untrusted). A thread checkpointed before this key existed is
    checked whole, summary included, so an old thread is not trusted by accident.
    """
    if is_tainted(state):
        return {}
    if passages:
        source = f"retrieved:{passages[0].get('source', '?')}"
    else:
        scan = list(messages)
        if TAINT_KEY not in state:  # a thread from before taint was kept: look at all of it once
            scan = list(state.get("messages", [])) + scan
        source = untrusted_source(scan, tools)
    return {TAINT_KEY: source} if source or TAINT_KEY not in state else {}
