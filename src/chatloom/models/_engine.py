"""What a local engine is given for one call (:class:`Prepared`) and gives back (:class:`Piece`).

Shared by the local chat model (``_local_chat``), the engines and the inline calculator
(``_inline_calculator``), which sits between the engine and the chat model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Piece:
    """A piece of generated text from an engine; the last one carries the totals."""

    text: str
    done: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    finish_reason: str | None = None
    calculations: int = 0  # the model's numbers the calculator corrected (inline_calculator)


@dataclass
class Prepared:
    """Everything an engine needs for one call."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]]
    """Tools for the chat template (empty when the template can't render tools)."""
    bound: list[dict[str, Any]]
    """Every bound tool (OpenAI format)."""
    tool_choice: Any
    grammar: Any  # chatloom.models.constrained.ToolGrammar | None
    stop: list[str]
    max_tokens: int
    extra: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    """Reply text already written; the engine continues it (used by the inline calculator)."""
