"""chatloom: an agentic chatbot framework.

Example (needs the default model: ``chatloom models install``)::

    from chatloom import Agent
    agent = Agent()                      # the local default model, no API key
    reply = agent.chat("What is 17*23?")

The names below are the whole public API; they are imported on first use so that
``import chatloom`` (and the CLI) stay fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "chatloom.agents.agent",
    "Reply": "chatloom.agents.reply",
    "Citation": "chatloom.agents.reply",
    "ToolStep": "chatloom.agents.reply",
    "Usage": "chatloom.agents.reply",
    "Token": "chatloom.agents.reply",
    "ToolCallEvent": "chatloom.agents.reply",
    "ToolResultEvent": "chatloom.agents.reply",
    "AnswerEvent": "chatloom.agents.reply",
    "ApprovalRequired": "chatloom.agents.reply",
    "PendingApproval": "chatloom.agents.reply",
    "ChatloomError": "chatloom.errors",
    "Settings": "chatloom.config",
    "get_settings": "chatloom.config",
    "load_prompt": "chatloom.prompts",
    "resolve_model": "chatloom.models",
    "tool": "langchain_core.tools",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'chatloom' has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from langchain_core.tools import tool

    from chatloom.agents.agent import Agent
    from chatloom.agents.reply import (
        AnswerEvent,
        ApprovalRequired,
        Citation,
        PendingApproval,
        Reply,
        Token,
        ToolCallEvent,
        ToolResultEvent,
        ToolStep,
        Usage,
    )
    from chatloom.config import Settings, get_settings
    from chatloom.errors import ChatloomError
    from chatloom.models import resolve_model
    from chatloom.prompts import load_prompt
