"""A loaded prompt template: render it into messages, split reasoning out of a model's answer.

Rendering uses Jinja's sandboxed environment with ``StrictUndefined``: a template can only read
the variables it declares (plus ``tools`` and ``today``), and a missing one is an error that names
the file and line, never an empty string in the prompt.
"""

from __future__ import annotations

import datetime as _dt
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from chatloom.errors import PromptError, closest_name
from chatloom.prompts.schema import RESERVED_VARIABLES, Example, Reasoning
from chatloom.strict_yaml import Origin

if TYPE_CHECKING:
    from jinja2 import Template
    from langchain_core.messages import BaseMessage
    from langchain_core.tools import BaseTool
    from pydantic import BaseModel

DEFAULT_TOOLS_SECTION = """\
## Tools
You can call these tools. Call one when it helps you answer correctly; otherwise answer directly.
{% for t in tools %}
- {{ t.signature }}: {{ t.description }}
{% endfor %}"""

COT_INSTRUCTIONS = """\
## How to answer
First think step by step inside <think> and </think>; the user never sees that part. \
Then, after </think>, write only the final answer for the user."""

# <think>, <thinking> and <reasoning> blocks are what models emit; accept all three.
_OPEN = re.compile(r"<(think|thinking|reasoning)>", re.IGNORECASE)
_CLOSE = {"think": "</think>", "thinking": "</thinking>", "reasoning": "</reasoning>"}
_LONE_CLOSE = re.compile(r"</(think|thinking|reasoning)>", re.IGNORECASE)


def split_reasoning(text: str) -> tuple[str, str]:
    """Split ``text`` into (visible answer, reasoning), removing every ``<think>`` block.

    An unterminated block (the model stopped mid-thought) is reasoning to the end of the text; a
    closing tag with no opening tag (some chat templates open the block themselves) makes
    everything before it reasoning.

    >>> split_reasoning("<think>17*23 = 391</think>The answer is 391.")
    ('The answer is 391.', '17*23 = 391')
    >>> split_reasoning("Sure.<think>still thinking")
    ('Sure.', 'still thinking')
    """
    answer: list[str] = []
    reasoning: list[str] = []
    rest = text
    lone = _LONE_CLOSE.search(rest)
    first_open = _OPEN.search(rest)
    if lone and (first_open is None or lone.start() < first_open.start()):
        reasoning.append(rest[: lone.start()])
        rest = rest[lone.end() :]
    while True:
        opened = _OPEN.search(rest)
        if opened is None:
            answer.append(rest)
            break
        answer.append(rest[: opened.start()])
        closing = _CLOSE[opened.group(1).lower()]
        end = rest.lower().find(closing, opened.end())
        if end < 0:
            reasoning.append(rest[opened.end() :])
            break
        reasoning.append(rest[opened.end() : end])
        rest = rest[end + len(closing) :]
    visible = "".join(answer).strip()
    return visible, "\n\n".join(r.strip() for r in reasoning if r.strip())


def _env() -> Any:
    global _ENV
    if _ENV is None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        _ENV = SandboxedEnvironment(
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )
    return _ENV


_ENV: Any = None


def compile_text(text: str, origin: Origin, field_name: str, declared: set[str]) -> Template:
    """Compile one templated field, checking its syntax and that it only uses declared names."""
    from jinja2 import TemplateSyntaxError, meta

    env = _env()
    try:
        ast = env.parse(text)
    except TemplateSyntaxError as exc:
        line = origin.text_line + (exc.lineno or 1) - 1
        raise PromptError(
            f"{origin.file}:{line}: field {field_name!r}: Jinja syntax error: {exc.message}",
            "fix the {{ }} or {% %} tags on that line",
        ) from None
    allowed = declared | set(RESERVED_VARIABLES)
    for name in sorted(meta.find_undeclared_variables(ast) - allowed):
        line = origin.text_line + _line_of(text, name) - 1
        close = closest_name(name, sorted(declared))
        guess = f"did you mean {close!r}? or " if close else ""
        raise PromptError(
            f"{origin.file}:{line}: field {field_name!r} uses undefined variable {name!r}",
            f"{guess}declare it under `variables:` with a default (declared: {', '.join(sorted(declared)) or 'none'})",
        )
    return env.from_string(ast)


def _line_of(text: str, name: str) -> int:
    pattern = re.compile(r"\b" + re.escape(name) + r"\b")
    in_tag = re.compile(r"(\{\{|\{%)[^}]*\b" + re.escape(name) + r"\b")
    for i, line in enumerate(text.splitlines(), 1):
        if in_tag.search(line):
            return i
    for i, line in enumerate(text.splitlines(), 1):
        if pattern.search(line):
            return i
    return 1


def describe_tool(tool: BaseTool) -> dict[str, Any]:
    """A tool as the template sees it: name, description, JSON-schema parameters, a signature."""
    schema = tool.tool_call_schema
    # langchain-core builds these schemas with pydantic 2 (a v1 model would have no model_json_schema).
    params = schema if isinstance(schema, dict) else cast("type[BaseModel]", schema).model_json_schema()
    props = params.get("properties", {})
    required = set(params.get("required", []))
    args = []
    for arg, spec in props.items():
        kind = spec.get("type") or "/".join(s.get("type", "any") for s in spec.get("anyOf", [])) or "any"
        args.append(f"{arg}: {kind}" if arg in required else f"{arg}: {kind} = {spec.get('default')!r}")
    description = " ".join((tool.description or "").split())
    return {
        "name": tool.name,
        "description": description,
        "parameters": params,
        "signature": f"{tool.name}({', '.join(args)})",
    }


@dataclass(frozen=True, eq=False)
class PromptTemplate:
    """A resolved prompt template (``extends`` already applied). Build one with ``load_prompt``.

    >>> from chatloom.prompts import load_prompt
    >>> messages = load_prompt("assistant").render([])
    >>> messages[0].type
    'system'
    """

    name: str
    description: str
    version: str
    role: str
    policies: tuple[str, ...]
    reasoning: Reasoning
    variables: Mapping[str, Any]
    examples: tuple[Example, ...]
    tools_section: str
    source: str  # "builtin", "workspace", "file", or "plugin <distribution>"
    path: str  # the template's file (for plugins given as data: a label)
    extends: tuple[str, ...] = ()  # the files this one inherits from, nearest first
    origins: Mapping[str, Origin] = field(default_factory=dict, repr=False)
    _compiled: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- rendering ------------------------------------------------------------------------------

    def render(self, tools: Sequence[BaseTool] = (), variables: Mapping[str, Any] | None = None) -> list[BaseMessage]:
        """Render the system message and few-shot messages for an agent bound to ``tools``.

        The system message holds the role, the policies, a tools section built from the tools'
        names, descriptions and argument schemas, and (for ``reasoning: cot``) the instruction to
        think inside ``<think>...</think>``. Each example becomes a HumanMessage, an AIMessage
        with ``tool_calls`` plus a ToolMessage per call (for tool-use examples), and an AIMessage
        with the answer. Examples that call a tool the agent does not have are left out.
        """
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

        tools = list(tools or ())
        context = {
            **self._values(variables),
            "tools": [describe_tool(t) for t in tools],
            "today": _dt.date.today().isoformat(),
        }
        parts = [self._render("role", context)]
        policies = [self._render(f"policies[{i}]", context) for i in range(len(self.policies))]
        if policies:
            parts.append("## Policies\n" + "\n".join(f"- {p.strip()}" for p in policies))
        if tools and self.tools_section:
            parts.append(self._render("tools_section", context))
        if self.reasoning == "cot":
            parts.append(COT_INSTRUCTIONS)
        system = "\n\n".join(p.strip() for p in parts if p.strip())
        messages: list[BaseMessage] = [SystemMessage(content=system)]

        bound = {t.name for t in tools}
        for i, example in enumerate(self.examples):
            if any(call.name not in bound for call in example.tool_calls):
                continue
            key = f"examples[{i}]"
            thinking = ""
            if self.reasoning == "cot" and example.thinking:
                thinking = f"<think>\n{self._render(key + '.thinking', context).strip()}\n</think>\n\n"
            messages.append(HumanMessage(content=self._render(key + ".user", context)))
            if example.tool_calls:
                calls = [
                    {"name": c.name, "args": dict(c.args), "id": f"example_{i}_{j}", "type": "tool_call"}
                    for j, c in enumerate(example.tool_calls)
                ]
                messages.append(AIMessage(content=thinking.strip(), tool_calls=calls))
                thinking = ""
                for j, c in enumerate(example.tool_calls):
                    result = self._render(f"{key}.tool_calls[{j}].result", context)
                    messages.append(ToolMessage(content=result, tool_call_id=f"example_{i}_{j}", name=c.name))
            messages.append(AIMessage(content=thinking + self._render(key + ".assistant", context)))
        return messages

    def split_reasoning(self, text: str) -> tuple[str, str]:
        r"""Return (visible answer, reasoning) for a model's final reply.

        Every template strips ``<think>`` blocks (see :func:`split_reasoning`), even
        ``reasoning: direct`` ones, because many models emit them unasked. One exception keeps
        the user from getting an empty reply: when a model never closes its block and writes
        nothing outside it (small models do this), the block's last paragraph, where the
        conclusion sits, becomes the answer; the whole block stays the reasoning.

        >>> from chatloom.prompts import load_prompt
        >>> load_prompt("tutor").split_reasoning("<think>2+2 is 4.\n\nThe answer is 4.")
        ('The answer is 4.', '2+2 is 4.\n\nThe answer is 4.')
        """
        answer, reasoning = split_reasoning(text)
        if not answer and reasoning:
            answer = reasoning.split("\n\n")[-1].strip()
        return answer, reasoning

    def system_text(self, tools: Sequence[BaseTool] = (), variables: Mapping[str, Any] | None = None) -> str:
        """Just the rendered system message text."""
        return str(self.render(tools, variables)[0].content)

    # -- internals ------------------------------------------------------------------------------

    def _values(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        values = dict(self.variables)
        for key, value in (given or {}).items():
            if key not in values:
                close = closest_name(key, sorted(set(values)))
                guess = f"did you mean {close!r}? " if close else ""
                declared = ", ".join(sorted(values)) or "none"
                raise PromptError(
                    f"prompt {self.name!r} ({self.path}) has no variable {key!r}",
                    f"{guess}its variables are: {declared}; declare new ones under `variables:` in the template",
                )
            values[key] = value
        for key, value in values.items():
            if value is None:
                origin = self.origins.get(f"variables.{key}")
                where = f"{origin}: " if origin else ""
                raise PromptError(
                    f"{where}prompt {self.name!r} needs variable {key!r} (it has no default)",
                    f"pass it: `variables: {{{key}: ...}}` in the agent spec, or --var {key}=...",
                )
        return values

    def _render(self, key: str, context: dict[str, Any]) -> str:
        template = self._compiled.get(key)
        if template is None:  # only templates built by hand skip the loader's compile step
            template = compile_text(
                self._text(key), self.origins.get(key, Origin(self.path, 1)), key, set(self.variables)
            )
            self._compiled[key] = template
        try:
            return template.render(context)
        except Exception as exc:  # noqa: BLE001 - jinja raises UndefinedError, SecurityError, TypeError, ...
            origin = self.origins.get(key, Origin(self.path, 1))
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<template>"]
            line = origin.text_line + ((frames[-1].lineno or 1) - 1 if frames else 0)
            raise PromptError(
                f"{origin.file}:{line}: field {key!r}: {type(exc).__name__}: {exc}",
                "fix the expression on that line, or the variable's value",
            ) from None

    def _text(self, key: str) -> str:
        """The raw text of a templated field such as ``examples[0].user``."""
        node: Any = self
        for part in re.findall(r"[A-Za-z_]+|\[\d+\]", key):
            node = node[int(part[1:-1])] if part.startswith("[") else getattr(node, part)
        return str(node)
