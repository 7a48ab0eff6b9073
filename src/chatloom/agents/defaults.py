"""The agent a workspace gets when nothing else is chosen: its spec file if there is one, else
the built-in assistant. Shared by the CLI and the server; kept free of heavy imports, since the
CLI reads it before its prompt is on screen."""

from __future__ import annotations

from pathlib import Path

DEFAULT_SPEC = Path("agents/assistant.yaml")
"""The workspace's own agent spec, relative to the directory chatloom runs in."""
DEFAULT_PROMPT = "assistant"
"""The built-in assistant's prompt template, used when there is no spec."""
DEFAULT_TOOLS = ("calculator",)
"""The built-in assistant's tools, used when there is no spec."""
