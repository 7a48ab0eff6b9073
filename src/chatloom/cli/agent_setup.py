"""What the CLI builds its agent from (:class:`AgentSetup`), shared by ``chat``, ``ask``, the
REPL and ``mcp``. Light: read before the prompt is on screen."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatloom.agents.defaults import DEFAULT_PROMPT, DEFAULT_SPEC, DEFAULT_TOOLS
from chatloom.errors import ChatloomError

if TYPE_CHECKING:
    from chatloom.agents.agent import Agent
    from chatloom.agents.spec import AgentSpec
    from chatloom.config import Settings

spec_option = click.option(
    "--spec", type=click.Path(path_type=Path), help=f"Agent spec YAML. Default: {DEFAULT_SPEC} when it exists here."
)


@dataclass(frozen=True)
class AgentSetup:
    """What the CLI builds its agent from: a spec file and the choices that override it.

    ``None`` means "as the spec says" (or the built-in default without a spec). The REPL's
    ``/model``, ``/prompt`` and ``/tools`` make a changed copy and build a new agent from it.
    """

    model: str | None = None
    spec: Path | None = None
    prompt: str | None = None
    tools: tuple[str, ...] | None = None

    @classmethod
    def from_options(cls, model: str | None, spec: Path | None) -> AgentSetup:
        """The setup for ``--model``/``--spec``; the spec defaults to agents/assistant.yaml when it exists."""
        if spec is None and DEFAULT_SPEC.is_file():
            spec = DEFAULT_SPEC
        if spec is not None and not spec.is_file():
            raise ChatloomError(f"agent spec {str(spec)!r} does not exist", "pass an existing file to --spec")
        return cls(model=model, spec=spec)

    def build(self, approver: Any = None) -> Agent:
        """A new (not yet loaded) :class:`~chatloom.Agent` for this setup."""
        from chatloom.agents.agent import Agent

        overrides: dict[str, Any] = {"approver": approver}
        if self.model:
            overrides["model"] = self.model
        if self.prompt is not None:
            overrides["prompt"] = self.prompt
        if self.tools is not None:
            overrides["tools"] = list(self.tools)
        if self.spec is not None:
            return Agent.from_spec(self.spec, **overrides)
        return Agent(**{"prompt": DEFAULT_PROMPT, "tools": list(DEFAULT_TOOLS), **overrides})

    def model_id(self, settings: Settings) -> str:
        """The model id the agent uses: the override, else the spec's, else the configured default."""
        return self.model or (self._spec().model if self.spec else None) or settings.model

    def prompt_name(self) -> str:
        """The prompt template the agent uses (a name or a path)."""
        return self.prompt or (self._spec().prompt if self.spec else DEFAULT_PROMPT)

    def tool_names(self) -> tuple[str, ...]:
        """The names of the tools the agent gets (MCP servers' tools aside)."""
        if self.tools is not None:
            return self.tools
        return tuple(self._spec().tools) if self.spec else DEFAULT_TOOLS

    def _spec(self) -> AgentSpec:
        from chatloom.agents.spec import load_spec

        assert self.spec is not None, "callers read the spec only when one was given"
        return load_spec(self.spec)

    def with_changes(self, **changes: Any) -> AgentSetup:
        """A copy with ``changes`` applied (model=, prompt=, tools=)."""
        return replace(self, **changes)


@contextlib.contextmanager
def ctrl_c_stops_the_turn(agent: Agent, thread_id: str, on_stop: Callable[[], None] = lambda: None) -> Iterator[None]:
    """Meanwhile, Ctrl-C stops ``agent``'s turn on ``thread_id`` at the model's next token.

    The default KeyboardInterrupt would reach the main thread only once the turn's worker had
    finished, so a local model would first write its whole answer. The turn then raises
    :class:`~chatloom.errors.TurnStopped`. A Ctrl-C while the turn itself loads the model (as
    in ``chatloom ask``) stops it once the load is done, before any model call. A second
    Ctrl-C, or one before the turn has started (the chat loads the model in the background
    first), raises KeyboardInterrupt as before.
    """
    if threading.current_thread() is not threading.main_thread():  # signals reach only that one
        yield
        return

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if not agent.stop(thread_id):
            raise KeyboardInterrupt
        on_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
