"""Agent specs: ``agents/*.yaml`` files that say which model, prompt, tools and memory a bot uses.

::

    # agents/assistant.yaml
    name: assistant
    description: The demo bot.
    model: null                  # null or absent: the configured default (CHATLOOM_MODEL)
    prompt: assistant            # a template name, or a path relative to the workspace
    variables: {bot_name: Loom}
    tools: [calculator, search]
    memory: {enabled: true, k: 4}
    max_steps: 8
    tool_choice: auto            # or `required` / a tool name: each turn's first step must call it
    tool_policy: {search: allow}
    mcp_servers:                 # tools of MCP servers, as files.read_file ... (docs/mcp.md)
      - {name: files, command: npx, args: [-y, "@modelcontextprotocol/server-filesystem", ./docs]}

The workspace is the folder that holds ``agents/``: the spec's prompt paths, ``prompts/`` and
``tools/`` are looked up there. Unknown fields and wrong types are errors naming file:line.

Example (run from a workspace)::

    spec = load_spec("agents/assistant.yaml")
    spec.workspace  # the folder that holds agents/
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator

from chatloom import strict_yaml
from chatloom.errors import ConfigError
from chatloom.mcp.config import MCPServerSpec
from chatloom.tools.policy import Rule


class MemorySpec(BaseModel):
    """What the agent remembers: a knowledge namespace to recall from, and past conversations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    namespace: str | None = Field(default=None, description="the knowledge collection; default: the agent's name")
    k: int = Field(default=4, ge=1, le=50, description="passages recalled per question")
    conversation: bool = Field(default=False, description="also store and recall past exchanges")
    grounding: Literal["strict", "cite", "off"] | bool = Field(
        default=True,
        description=(
            "the answer policy: cite (true) answers knowledge questions from the passages, cited, or says the "
            "knowledge base lacks it, and helps with everything else; strict also declines tasks that bring no "
            "text of their own; off (false) checks nothing"
        ),
    )


class AgentSpec(BaseModel):
    """A validated agent spec. Build one with :func:`load_spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", pattern=r"^$|^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    description: str = ""
    model: str | None = None
    prompt: str = "assistant"
    variables: dict[str, Any] = Field(default_factory=dict)
    tools: list[str] = Field(default_factory=list)
    memory: MemorySpec = Field(default_factory=MemorySpec)
    max_steps: int = Field(default=8, ge=1, le=100)
    tool_choice: str = "auto"
    mcp_servers: list[MCPServerSpec] = Field(default_factory=list)
    tool_policy: dict[str, Rule] = Field(default_factory=dict)

    _path: Path | None = PrivateAttr(default=None)
    _workspace: Path | None = PrivateAttr(default=None)

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_shorthand(cls, value: Any) -> Any:
        # `memory: true` / `memory: false` is short for `memory: {enabled: ...}`
        return {"enabled": value} if isinstance(value, bool) else value

    @field_validator("tools")
    @classmethod
    def _unique_tools(cls, value: list[str]) -> list[str]:
        dupes = sorted({t for t in value if value.count(t) > 1})
        if dupes:
            raise ValueError(f"tool {dupes[0]!r} is listed twice")
        return value

    @field_validator("tool_choice")
    @classmethod
    def _choice_names_a_tool(cls, value: str, info: ValidationInfo) -> str:
        tools = info.data.get("tools") or []
        if value not in ("auto", "required") and value not in tools:
            raise ValueError(
                f"tool_choice must be auto, required or one of the tools ({', '.join(tools) or 'none'}), got {value!r}"
            )
        return value

    @field_validator("tool_policy")
    @classmethod
    def _policy_names_tools(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        tools = info.data.get("tools") or []
        servers = {s.name for s in info.data.get("mcp_servers") or []}
        for name in value:
            if name != "*" and name not in tools and name.split(".", 1)[0] not in servers:
                raise ValueError(f"tool_policy names {name!r}, which is not in tools ({', '.join(tools) or 'none'})")
        return value

    @property
    def path(self) -> Path | None:
        """The spec file, when loaded from one."""
        return self._path

    @property
    def workspace(self) -> Path | None:
        """The bot workspace: the folder holding ``agents/`` (or the spec's own folder)."""
        return self._workspace


_FIXES = {
    "max_steps": "use a whole number from 1 to 100",
    "tool_choice": "use auto, required, or the name of one of the spec's tools",
    "tool_policy": "map tool names to allow, deny or ask, e.g. `tool_policy: {python: ask}`",
    "tools": "list tool names, e.g. `tools: [calculator, search]` (`chatloom plugins list` shows plugin tools)",
    "model": "use a model id such as local:qwen2.5-coder-0.5b or openai:gpt-4o-mini, or leave it out",
    "memory": "use `memory: {enabled: true, namespace: docs, k: 4, conversation: false}`",
    "variables": "write them as a mapping, e.g. `variables: {bot_name: Ada}`",
    "name": "use letters, digits, '_', '.' and '-' only, e.g. `name: my_bot`",
    "mcp_servers": "list servers as `- {name: files, command: npx, args: [...]}` or `- {name: gh, url: https://..., headers: {...}}`",
}
_TYPOS = {"system": "prompt", "template": "prompt", "steps": "max_steps", "policy": "tool_policy", "vars": "variables"}


def workspace_of(path: Path) -> Path:
    """The workspace of a spec file: the parent of its ``agents/`` folder, else its own folder."""
    parent = path.resolve().parent
    return parent.parent if parent.name == "agents" else parent


def load_spec(path: str | Path) -> AgentSpec:
    """Read and validate an agent spec; every problem is a ConfigError naming file:line and field.

    The ``name`` defaults to the file's stem.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        found = sorted(p.name for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        hint = (
            f"specs in {path.parent}: {', '.join(found)}"
            if found
            else "check the path, or create one with `chatloom init DIR`"
        )
        raise ConfigError(f"agent spec {str(path)!r} not found", hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"can't read agent spec {str(path)!r}: {exc}", "check the file") from None
    doc = strict_yaml.parse(text, _yaml_display(path), ConfigError, "agent spec")
    spec: AgentSpec = strict_yaml.validate(AgentSpec, doc, ConfigError, _FIXES, _TYPOS)
    if not spec.name:
        spec = spec.model_copy(update={"name": path.stem})
    spec._path = path.resolve()
    spec._workspace = workspace_of(path)
    return spec


def _yaml_display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
