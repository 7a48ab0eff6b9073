"""``chatloom chat`` (the REPL) and ``chatloom ask``.

The prompt must be on screen fast, so only click, rich and prompt_toolkit are imported before
it; the agent (langgraph, the model, memory) loads in a background thread meanwhile.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from pathlib import Path
from typing import Any

import click

from chatloom.errors import ChatloomError

DEFAULT_SPEC = Path("agents/assistant.yaml")
_HELP = "Commands: /reset forgets this conversation, /tools lists the tools, /exit (or Ctrl-D) quits, /help shows this."


def _agent_options(func: Any) -> Any:
    func = click.option("--thread", "thread_id", default="cli", show_default=True, help="Conversation id; the same id continues a conversation across runs.")(func)
    func = click.option("--spec", type=click.Path(path_type=Path), help=f"Agent spec YAML. Default: {DEFAULT_SPEC} when it exists here.")(func)
    func = click.option("--model", "-m", help="Model id, e.g. local:qwen2.5-coder-0.5b, openai:gpt-4o-mini, gguf:PATH.")(func)
    return func


def _make_agent(model: str | None, spec: Path | None, approver: Any = None) -> Any:
    from chatloom.agents.agent import Agent

    if spec is None and DEFAULT_SPEC.is_file():
        spec = DEFAULT_SPEC
    overrides: dict[str, Any] = {"approver": approver}
    if model:
        overrides["model"] = model
    if spec is not None:
        if not spec.is_file():
            raise ChatloomError(f"agent spec {str(spec)!r} does not exist", "pass an existing file to --spec")
        return Agent.from_spec(spec, **overrides)
    return Agent(prompt="assistant", tools=["calculator"], **overrides)


@click.command()
@_agent_options
@click.argument("question", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole reply (answer, citations, tool steps, usage) as JSON.")
def ask(model: str | None, spec: Path | None, thread_id: str, question: tuple[str, ...], as_json: bool) -> None:
    """Ask one QUESTION and print the answer."""
    from chatloom.agents.agent import _check_question, check_question_size
    from chatloom.config import get_settings

    # fail fast, before any model loads
    text = check_question_size(_check_question(" ".join(question)), get_settings(model=model).max_question_chars)
    agent = _make_agent(model, spec)
    reply = agent.chat(text, thread_id=thread_id)
    if as_json:
        click.echo(json.dumps(reply.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(strip_control(reply.answer))  # the answer is text, never terminal commands


@click.command()
@_agent_options
def chat(model: str | None, spec: Path | None, thread_id: str) -> None:
    """Chat in the terminal: answers stream as markdown; tool calls are shown as they happen."""
    from rich.console import Console

    console = Console()
    if not sys.stdin.isatty():
        return _chat_lines(console, model, spec, thread_id)

    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    agent = _make_agent(model, spec, approver=_console_approver(console))
    loader = _Loader(agent)
    console.print(f"[bold]chatloom[/] · {_markup_safe(agent._model_spec)} · thread [cyan]{_markup_safe(thread_id)}[/]  ({_HELP})")
    history = InMemoryHistory()
    try:
        history = FileHistory(str(agent.settings.data_dir() / "repl_history"))
    except ChatloomError:
        pass  # an unwritable data dir surfaces below, when the agent loads
    session: PromptSession = PromptSession(history=history)
    while True:
        try:
            text = session.prompt("› ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not _handle(console, loader, agent, text, thread_id):
            break


def _chat_lines(console: Any, model: str | None, spec: Path | None, thread_id: str) -> None:
    """The same REPL over plain stdin lines, for pipes and transcript tests."""
    agent = _make_agent(model, spec)
    loader = _Loader(agent)
    for line in sys.stdin:
        if not _handle(console, loader, agent, line.strip(), thread_id):
            break


def _handle(console: Any, loader: "_Loader", agent: Any, text: str, thread_id: str) -> bool:
    """Run one REPL line; False means quit."""
    if not text:
        return True
    if text in ("/exit", "/quit"):
        return False
    if text == "/help":
        console.print(_HELP)
        return True
    loader.wait(console)
    if text == "/reset":
        agent.reset(thread_id)
        console.print("[dim]conversation forgotten[/]")
        return True
    if text == "/tools":
        _show_tools(console, agent)
        return True
    if text.startswith("/"):
        console.print(f"[red]unknown command {_markup_safe(repr(text))}[/]. {_HELP}")
        return True
    try:
        _render_turn(console, agent, text, thread_id)
    except ChatloomError as exc:  # a failed turn is reported; the conversation goes on
        console.print(f"[red]error:[/] {_markup_safe(str(exc))}")
    except KeyboardInterrupt:  # Ctrl-C stops the answer, not the REPL
        console.print("[dim]interrupted[/]")
    return True


def _show_tools(console: Any, agent: Any) -> None:
    """``/tools``: the agent's own tools, then each MCP server's (and servers that failed to start)."""
    from chatloom.mcp.tools import tools_by_server

    for server, tools in sorted(tools_by_server(agent.tools()).items()):
        console.print(f"[bold]{_markup_safe(f'MCP server {server}' if server else 'chatloom')}[/]")
        for tool in tools:
            effect = (tool.metadata or {}).get("effect", "undeclared")
            console.print(f"  {_markup_safe(tool.name)} [dim]({_markup_safe(effect)}) {_markup_safe(_shorten(tool.description or '', 90))}[/]")
    for server, error in (agent._mcp.errors.items() if agent._mcp is not None else ()):
        console.print(f"[yellow]MCP server {_markup_safe(server)} unavailable:[/] {_markup_safe(error)}")


def _render_turn(console: Any, agent: Any, text: str, thread_id: str) -> None:
    from rich.live import Live
    from rich.markdown import Markdown

    from chatloom.agents.grounding import passage_label
    from chatloom.agents.reply import AnswerEvent, Token, ToolCallEvent, ToolResultEvent

    live: Live | None = None
    buffer = ""
    try:
        for event in agent.stream(text, thread_id=thread_id):
            if isinstance(event, Token):
                buffer += strip_control(event.text)
                if live is None:
                    live = Live(Markdown(buffer), console=console, refresh_per_second=12, transient=True)
                    live.start()
                live.update(Markdown(buffer))
            elif isinstance(event, ToolCallEvent):
                live, buffer = _stop(live), ""
                args = ", ".join(f"{k}={v!r}" for k, v in event.args.items())
                console.print(f"[dim]→ {_markup_safe(_shorten(f'{event.name}({args})', 400))}[/]")
            elif isinstance(event, ToolResultEvent):
                style = "dim" if event.ok else "yellow"
                console.print(f"[{style}]← {_markup_safe(_shorten(event.content))}[/]")
            elif isinstance(event, AnswerEvent):
                live = _stop(live)
                console.print(Markdown(strip_control(event.reply.answer) or "_(no answer)_"))
                for c in event.reply.citations:
                    label = passage_label({"source": c.source, "section": c.section or c.title})
                    console.print(f"[dim]{_markup_safe(f'[{c.index}] {label}')}[/]")
                for sentence in event.reply.unsupported if event.reply.grounded is False else ():
                    console.print(f"[yellow]not backed by any passage:[/] {_markup_safe(_shorten(sentence))}")
    finally:
        _stop(live)


def _stop(live: Any) -> None:
    if live is not None:
        live.stop()
    return None


# Terminal control sequences: OSC (title, hyperlinks, clipboard writes), CSI (colours, cursor
# moves, screen clears), other ESC sequences, and their 8-bit C1 forms.
_CONTROL_SEQ = re.compile(
    r"(?:\x1b\]|\x9d).*?(?:\x07|\x1b\\|\x9c|$)"  # OSC ... BEL/ST (or to the end)
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f]).*?(?:\x1b\\|\x9c|$)"  # DCS/SOS/PM/APC strings
    r"|(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"  # CSI
    r"|\x1b[ -/]*[0-~]?",  # two-byte ESC sequences (and a lone ESC)
    re.DOTALL,
)
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def strip_control(text: str) -> str:
    r"""``text`` without terminal control sequences or control characters (newlines and tabs stay).

    Model and tool text must not retitle the window, move the cursor, rewrite the screen or
    write the clipboard (OSC 52) of the person reading it.

    >>> strip_control("\x1b]0;pwned\x07ok \x1b[31mred\x1b[0m\r\n")
    'ok red\n'
    """
    return _CONTROL_CHARS.sub("", _CONTROL_SEQ.sub("", text))


def _markup_safe(text: str) -> str:
    """Model, tool or user text made inert for rich: no markup, no control sequences."""
    from rich.markup import escape

    return escape(strip_control(text))


def _shorten(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _console_approver(console: Any) -> Any:
    from rich.markup import escape

    from chatloom.tools.policy import console_approver

    return console_approver(lambda question: console.input(f"[yellow]{escape(strip_control(question))}[/]"))


class _Loader:
    """Loads the agent in the background while the user types the first question."""

    def __init__(self, agent: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(agent,), daemon=True)
        self._thread.start()

    def _load(self, agent: Any) -> None:
        try:
            agent.load()
        except BaseException as exc:  # re-raised on the main thread by wait()
            self._error = exc

    def wait(self, console: Any) -> None:
        if self._thread.is_alive():
            with console.status("loading the model…"):
                self._thread.join()
        if self._error is not None:
            raise self._error
