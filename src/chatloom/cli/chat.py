"""``chatloom chat`` (the REPL) and ``chatloom ask``.

The prompt must be on screen fast, so only click, rich and prompt_toolkit are imported before
it; the agent (langgraph, the model, memory) loads in a background thread meanwhile (see
:mod:`chatloom.cli.repl`).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from chatloom.cli.render import strip_control  # noqa: F401 - re-exported: chatloom.cli.chat.strip_control
from chatloom.errors import ChatloomError

if TYPE_CHECKING:
    from chatloom.agents.spec import AgentSpec

DEFAULT_SPEC = Path("agents/assistant.yaml")
DEFAULT_PROMPT = "assistant"
DEFAULT_TOOLS = ("calculator",)


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
    def from_options(cls, model: str | None, spec: Path | None) -> "AgentSetup":
        """The setup for ``--model``/``--spec``; the spec defaults to agents/assistant.yaml when it exists."""
        if spec is None and DEFAULT_SPEC.is_file():
            spec = DEFAULT_SPEC
        if spec is not None and not spec.is_file():
            raise ChatloomError(f"agent spec {str(spec)!r} does not exist", "pass an existing file to --spec")
        return cls(model=model, spec=spec)

    def build(self, approver: Any = None) -> Any:
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

    def model_id(self, settings: Any) -> str:
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

    def with_changes(self, **changes: Any) -> "AgentSetup":
        """A copy with ``changes`` applied (model=, prompt=, tools=)."""
        return replace(self, **changes)


def _agent_options(func: Any) -> Any:
    func = click.option("--thread", "thread_id", default="cli", show_default=True, help="Conversation id; the same id continues a conversation across runs.")(func)
    func = click.option("--spec", type=click.Path(path_type=Path), help=f"Agent spec YAML. Default: {DEFAULT_SPEC} when it exists here.")(func)
    func = click.option("--model", "-m", help="Model id, e.g. local:qwen2.5-coder-0.5b, openai:gpt-4o-mini, gguf:PATH.")(func)
    return func


@click.command()
@_agent_options
@click.argument("question", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole reply (answer, citations, tool steps, usage) as JSON.")
def ask(model: str | None, spec: Path | None, thread_id: str, question: tuple[str, ...], as_json: bool) -> None:
    """Ask one QUESTION and print the answer as plain text, with its citations as footnotes.

    Exits with status 2 and a one-line error when the question cannot be answered (no such
    model or spec, a dead backend, ...).
    """
    from chatloom.agents.agent import _check_question, check_question_size
    from chatloom.cli.render import footnotes
    from chatloom.config import get_settings

    # fail fast, before any model loads
    text = check_question_size(_check_question(" ".join(question)), get_settings(model=model).max_question_chars)
    agent = AgentSetup.from_options(model, spec).build()
    reply = agent.chat(text, thread_id=thread_id)
    if as_json:
        click.echo(json.dumps(reply.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(strip_control(reply.answer))  # the answer is text, never terminal commands
    for line in footnotes(reply):
        click.echo(line)


class _ChatCommand(click.Command):
    """``chatloom chat --help`` lists the slash commands from the REPL's own table."""

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        from chatloom.cli.repl import COMMANDS

        with formatter.section("Slash commands (type them at the prompt; Tab completes)"):
            formatter.write_dl([(usage, help_text) for usage, help_text in COMMANDS.values()])
        with formatter.section("Keys"):
            formatter.write_dl([
                ("Alt-Enter", "a new line (with /multi: send)"),
                ("Up / Down", "history, kept across runs in the data dir"),
                ("Ctrl-C", "stop the current answer and stay in the chat"),
                ("Ctrl-D", "quit"),
            ])


@click.command(cls=_ChatCommand)
@_agent_options
def chat(model: str | None, spec: Path | None, thread_id: str) -> None:
    """Chat in the terminal: live status, answers streamed as markdown, tool steps as panels,
    citations as footnotes.

    With stdin or stdout not a terminal (`echo question | chatloom chat`) each input line is
    one question or command and the output is plain text; the first error stops it with a
    one-line message and exit status 2.
    """
    from chatloom.cli.repl import Repl

    setup = AgentSetup.from_options(model, spec)
    if sys.stdin.isatty() and sys.stdout.isatty():
        Repl(setup, thread_id, interactive=True).run_interactive()
    else:
        Repl(setup, thread_id, interactive=False).run_lines(sys.stdin)
