"""``chatloom chat`` (the REPL) and ``chatloom ask``.

The prompt must be on screen fast, so only click, rich and prompt_toolkit are imported before
it; the agent (langgraph, the model, memory) loads in a background thread meanwhile (see
:mod:`chatloom.cli.repl`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from chatloom.cli.agent_setup import AgentSetup, ctrl_c_stops_the_turn, spec_option
from chatloom.cli.render import strip_control  # re-exported: chatloom.cli.chat.strip_control
from chatloom.cli.threads import choose_thread, recording_turn
from chatloom.errors import ChatloomError

_NOT_UTF8_HINT = "save or pass the text as UTF-8 (e.g. iconv -f latin1 -t utf-8)"


def utf8_argument(text: str, what: str = "the question") -> str:
    """``text`` from the command line, refused when it held bytes that are not UTF-8.

    Python hands such bytes over as lone surrogates (surrogateescape), which fail later, when
    the turn is stored or sent: an "internal error" after the question was already saved.
    Refused here, before any thread is touched, it is one line and exit 2.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        try:
            byte = f"byte 0x{text[exc.start].encode('utf-8', 'surrogateescape')[0]:02x}"
        except UnicodeEncodeError:  # a surrogate that wasn't an undecodable byte
            byte = f"character {text[exc.start]!r}"
        raise ChatloomError(
            f"{what} is not valid UTF-8 ({byte} at character {exc.start + 1}); nothing was asked", _NOT_UTF8_HINT
        ) from None
    return text


def utf8_lines(stream: Any) -> Any:
    """The lines of ``stream`` (piped stdin) as text, each decoded on its own as strict UTF-8.

    A line that isn't UTF-8 stops the run with one line naming it (exit 2), before it is asked:
    the lines before it were answered and stored whole, nothing of it is. Decoding per line is
    what makes that so; a text-mode stdin decodes a whole buffer at once and fails, as an
    "internal error", on lines not reached yet.
    """
    raw = getattr(stream, "buffer", None)
    if raw is None:  # already text (a StringIO in tests, an embedding caller)
        yield from stream
        return
    for number, line in enumerate(raw, 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ChatloomError(
                f"line {number} of the input is not valid UTF-8 (byte 0x{line[exc.start]:02x} at byte "
                f"{exc.start + 1}); it was not asked",
                _NOT_UTF8_HINT,
            ) from None
        yield text[:-2] + "\n" if text.endswith("\r\n") else text  # as text mode reads it


def _agent_options(func: Any) -> Any:
    func = click.option(
        "--continue",
        "-c",
        "continue_last",
        is_flag=True,
        help="Continue the last conversation `chatloom ask` or `chatloom chat` used.",
    )(func)
    func = click.option(
        "--thread",
        "thread_id",
        metavar="ID",
        help="Continue conversation ID (or start it, if new). Default: a new conversation.",
    )(func)
    func = spec_option(func)
    func = click.option(
        "--model", "-m", help="Model id, e.g. local:qwen2.5-coder-0.5b, openai:gpt-4o-mini, gguf:PATH."
    )(func)
    return func


@click.command()
@_agent_options
@click.argument("question", nargs=-1, required=True)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the whole reply (answer, citations, tool steps, usage) as JSON."
)
def ask(
    model: str | None,
    spec: Path | None,
    thread_id: str | None,
    continue_last: bool,
    question: tuple[str, ...],
    as_json: bool,
) -> None:
    """Ask one QUESTION and print the answer as plain text, with its citations as footnotes.

    Each call is a new conversation: earlier questions are not sent along. Every conversation
    is saved, so `-c` continues the last one (`chatloom ask -c "and in EUR?"`) and `--thread ID`
    a named one; `--json` shows the conversation's id as `thread_id`.

    Exits with status 2 and a one-line error when the question cannot be answered (no such
    model or spec, a dead backend, ...).
    """
    from chatloom.agents.agent import check_question
    from chatloom.agents.reply import AnswerEvent
    from chatloom.cli.render import footnotes
    from chatloom.config import get_settings

    settings = get_settings(model=model)
    # fail fast, before any model loads
    text = check_question(utf8_argument(" ".join(question)), settings.max_question_chars)
    thread_id = choose_thread(thread_id, continue_last, "ask", settings.data_dir)
    agent = AgentSetup.from_options(model, spec).build()
    # Streamed, as in the chat, so that Ctrl-C stops the model at its next token.
    with ctrl_c_stops_the_turn(agent, thread_id), recording_turn(agent.settings.data_dir, thread_id):
        answers = [e.reply for e in agent.stream(text, thread_id=thread_id) if isinstance(e, AnswerEvent)]
    if not answers:  # without an approver, "ask" tools are refused: a turn can't pause here
        raise ChatloomError("the turn ended without an answer")
    reply = answers[0]
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
            formatter.write_dl(
                [
                    ("Alt-Enter", "a new line (with /multi: send)"),
                    ("Up / Down", "history, kept across runs in the data dir"),
                    ("Ctrl-C", "stop the current answer and stay in the chat"),
                    ("Ctrl-D", "quit"),
                ]
            )


@click.command(cls=_ChatCommand)
@_agent_options
def chat(model: str | None, spec: Path | None, thread_id: str | None, continue_last: bool) -> None:
    """Chat in the terminal: live status, answers streamed as markdown, tool steps as panels,
    citations as footnotes.

    Each chat starts a new conversation; `-c` continues the last one `ask` or `chat` used,
    `--thread ID` a named one, and `/thread list` at the prompt shows the saved ones.

    With stdin or stdout not a terminal (`echo question | chatloom chat`) each input line is
    one question or command and the output is plain text; the first error stops it with a
    one-line message and exit status 2.
    """
    from chatloom.cli.repl import Repl
    from chatloom.config import get_settings

    setup = AgentSetup.from_options(model, spec)
    thread_id = choose_thread(thread_id, continue_last, "chat", lambda: get_settings(model=model).data_dir())
    if sys.stdin.isatty() and sys.stdout.isatty():
        Repl(setup, thread_id, interactive=True, record_thread=True).run_interactive()
    else:
        Repl(setup, thread_id, interactive=False, record_thread=True).run_lines(utf8_lines(sys.stdin))
