"""Chat models: one registry for every backend, and tool-call recovery for small models.

>>> from chatloom.models import resolve_model
>>> model = resolve_model("fake:echo")          # or "openai:gpt-4o-mini", "local:qwen2.5-coder-0.5b"
"""

from __future__ import annotations

from chatloom.models.registry import known_schemes, resolve_model
from chatloom.models.toolcalls import parse_tool_calls

__all__ = ["known_schemes", "parse_tool_calls", "resolve_model"]
