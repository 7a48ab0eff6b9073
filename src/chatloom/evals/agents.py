"""The agents an evaluation compares, written as one string each on the command line.

Three forms:

- a spec file: ``agents/tutor.yaml`` (any ``.yaml``/``.yml`` path);
- a model id: ``local:qwen2.5-coder-0.5b``, ``openai:gpt-4o-mini``, ``fake:echo`` (no prompt, no tools);
- keys: ``prompt=NAME,tools=a+b,model=ID`` — any of ``spec``, ``model``, ``prompt``, ``tools``
  (joined by ``+``; ``tools=`` for none), ``max_steps`` and ``name`` (the label in tables;
  by default the string itself).

>>> parse_agent("prompt=assistant,tools=calculator+search").tools
('calculator', 'search')
>>> parse_agent("fake:echo").model
'fake:echo'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatloom.errors import ConfigError

__all__ = ["AgentChoice", "parse_agent"]

_KEYS = ("name", "spec", "model", "prompt", "tools", "max_steps")
SYNTAX_HELP = (
    "a spec file (agents/x.yaml), a model id (local:qwen2.5-coder-0.5b, fake:echo), "
    "or keys like prompt=NAME,tools=a+b,model=ID (keys: " + ", ".join(_KEYS) + ")"
)


@dataclass(frozen=True)
class AgentChoice:
    """One agent under evaluation: how to build it, and its label in results."""

    label: str
    spec: Path | None = None
    model: str | None = None
    prompt: str | None = None
    tools: tuple[str, ...] | None = None
    max_steps: int | None = None
    workspace: Path | None = None
    """Where a key-form agent finds ``prompts/`` and ``tools/`` (a spec knows its own)."""

    def build(self, *, memory: Any = None, namespace: str | None = None, settings: Any = None) -> Any:
        """A fresh :class:`~chatloom.Agent`; ``memory`` replaces the agent's own when given.

        Every agent keeps its threads in process (a run must not fill the user's chat store).
        """
        from chatloom import Agent

        options: dict[str, Any] = {"checkpointer": "memory"}
        if settings is not None:
            options["settings"] = settings
        for key in ("model", "prompt", "max_steps"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        if self.tools is not None:
            options["tools"] = list(self.tools)
        if memory is not None:
            options.update(memory=memory, namespace=namespace)
        if self.spec is not None:
            return Agent.from_spec(self.spec, **options)
        return Agent(workspace=self.workspace, **options)


def parse_agent(text: str, *, workspace: Path | None = None) -> AgentChoice:
    """Read one ``--agent`` value (see the module doc); a bad one is a one-line ConfigError."""
    text = text.strip()
    base = workspace or Path.cwd()
    if "=" in text:
        fields: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in _KEYS:
                raise ConfigError(f"bad agent {text!r}: unknown key {key!r}", f"an agent is {SYNTAX_HELP}")
            fields[key] = value.strip()
        spec = _spec_path(fields["spec"], base, text) if "spec" in fields else None
        tools = tuple(t for t in fields["tools"].split("+") if t) if "tools" in fields else None
        max_steps = None
        if "max_steps" in fields:
            try:
                max_steps = int(fields["max_steps"])
            except ValueError:
                raise ConfigError(f"bad agent {text!r}: max_steps must be a whole number") from None
        return AgentChoice(
            label=fields.get("name") or text,
            spec=spec,
            model=fields.get("model") or None,
            prompt=fields.get("prompt") or None,
            tools=tools,
            max_steps=max_steps,
            workspace=base,
        )
    if text.endswith((".yaml", ".yml")):
        return AgentChoice(label=text, spec=_spec_path(text, base, text))
    if ":" in text:
        return AgentChoice(label=text, model=text, workspace=base)
    raise ConfigError(f"unknown agent {text!r}", f"an agent is {SYNTAX_HELP}")


def _spec_path(value: str, base: Path, text: str) -> Path:
    path = Path(value).expanduser()
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise ConfigError(
            f"agent spec {value!r} does not exist (agent {text!r})", "check the path, e.g. agents/assistant.yaml"
        )
    return path
