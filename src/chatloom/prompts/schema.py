"""The schema of a prompt template file. Unknown fields are errors, so typos never pass silently.

A template is one YAML file::

    name: support
    description: A friendly support agent for {{ product }}
    extends: assistant            # or {role: researcher, examples: classifier}
    reasoning: direct             # or cot: think in <think>...</think>, which is stripped
    variables:                    # defaults; `null` means "must be given"
      product: chatloom
    role: |
      You are the support agent for {{ product }}.
    policies:
      - Never promise refunds.
    examples:
      - user: What is 17*23?
        tool_calls: [{name: calculator, args: {expression: "17*23"}, result: "391"}]
        assistant: 17*23 = 391.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Reasoning = Literal["direct", "cot"]
# The fields a template can inherit one by one through the mapping form of `extends`.
InheritableField = Literal["description", "role", "policies", "reasoning", "variables", "examples", "tools_section"]
INHERITABLE: tuple[str, ...] = InheritableField.__args__  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _scalar_to_str(value: Any) -> Any:
    # YAML reads `result: 391` or `version: 2` as numbers; they are text all the same.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


class ToolCallExample(_Strict):
    """One tool call inside a few-shot example, with the result the tool returned."""

    name: str = Field(min_length=1, description="the tool's name, e.g. calculator")
    args: dict[str, Any] = Field(default_factory=dict, description="the call's arguments")
    result: str = Field(description="what the tool returned")

    _coerce = field_validator("result", mode="before")(_scalar_to_str)


class Example(_Strict):
    """A few-shot example: a user turn, optional tool calls, and the assistant's answer."""

    user: str = Field(min_length=1)
    thinking: str | None = Field(default=None, description="the reasoning shown before the answer (reasoning: cot)")
    tool_calls: list[ToolCallExample] = Field(default_factory=list)
    assistant: str = Field(min_length=1, description="the assistant's final answer")

    _coerce = field_validator("user", "assistant", mode="before")(_scalar_to_str)


class PromptFile(_Strict):
    """The content of one template file; unset fields are inherited through ``extends``."""

    name: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str | None = None
    version: str = "1"
    extends: str | dict[InheritableField, str] | None = None
    role: str | None = None
    policies: list[str] | None = None
    reasoning: Reasoning | None = None
    variables: dict[str, Any] | None = None
    examples: list[Example] | None = None
    tools_section: str | None = None

    _coerce = field_validator("version", mode="before")(_scalar_to_str)

    @field_validator("variables")
    @classmethod
    def _identifiers(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for key in value or {}:
            if not key.isidentifier() or key in RESERVED_VARIABLES:
                raise ValueError(f"variable name {key!r} is reserved or not a Python identifier (letters, digits, _)")
        return value


# Names every template can use without declaring them.
RESERVED_VARIABLES: tuple[str, ...] = ("tools", "today")

# Field-specific fixes shown in error messages.
FIXES: dict[str, str] = {
    "assistant": "every example needs an assistant turn: add `assistant: <the reply you want>` to it",
    "user": "every example starts with a user turn: add `user: <the question>`",
    "result": "each example tool call needs the tool's output: add `result: <what the tool returned>`",
    "reasoning": "use `reasoning: direct` or `reasoning: cot`",
    "extends": "use `extends: NAME`, or map fields to templates: `extends: {role: support, examples: classifier}`",
    "name": "use letters, digits, '_', '.' and '-' only, e.g. `name: my_bot`",
    **{
        f"variables.{name}": f"rename it: chatloom provides `{name}` to every template itself"
        for name in ("tools", "today")
    },
}
# Likely names for real fields, for "did you mean" hints.
TYPOS: dict[str, str] = {"system": "role", "prompt": "role", "example": "examples", "vars": "variables"}
