"""The ``chatloom chat`` session: turns, slash commands, and the prompt_toolkit input around them.

Only click, rich and prompt_toolkit are imported before the prompt is on screen (and this
module only by ``chatloom chat``; prompt_toolkit only by its interactive loop, so neither
``chatloom ask`` nor a piped chat pays for it); the agent
loads in a background thread (:class:`_Loader`) and the first question waits for it with a
visible status.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from chatloom.cli.agent_setup import AgentSetup, ctrl_c_stops_the_turn
from chatloom.cli.render import (
    TurnView,
    error_line,
    print_rows,
    print_trace,
    safe_text,
    shorten,
    strip_control,
    transcript,
    usage_text,
)
from chatloom.cli.threads import new_thread_id, recording_turn
from chatloom.errors import ChatloomError, TurnStopped, closest_name

# name -> (usage, what it does); /help, `chatloom chat --help` and Tab completion all read this.
COMMANDS: dict[str, tuple[str, str]] = {
    "/help": ("/help", "list the commands"),
    "/model": ("/model [NAME]", "show the model, or switch to NAME (local:..., openai:..., gguf:PATH)"),
    "/prompt": ("/prompt [NAME]", "show the prompt template, or switch to NAME"),
    "/tools": ("/tools [enable|disable NAME]", "list the tools, or turn one on or off"),
    "/memory": (
        "/memory search TEXT | add TEXT | forget SOURCE",
        "search, add a note to, or prune the knowledge memory",
    ),
    "/ingest": ("/ingest PATH", "add a file or folder (.md .txt .pdf .html) to the knowledge memory"),
    "/thread": ("/thread [new [ID] | list | switch ID]", "show, start, list or switch conversations"),
    "/save": ("/save FILE", "write this conversation to FILE as markdown"),
    "/trace": ("/trace", "expand the last turn: reasoning, tool steps, retrieved passages"),
    "/cost": ("/cost [on|off]", "tokens, time and cost so far; on/off toggles the line after each answer"),
    "/multi": ("/multi", "toggle multiline input (Enter adds a line, Alt-Enter sends)"),
    "/reset": ("/reset", "forget this conversation"),
    "/exit": ("/exit", "quit (also Ctrl-D)"),
}
_ALIASES = {"/quit": "/exit", "/?": "/help"}
_SUBCOMMANDS = {
    "/tools": ("enable", "disable"),
    "/thread": ("new", "list", "switch"),
    "/memory": ("search", "add", "forget"),
    "/cost": ("on", "off"),
}


class CommandError(ChatloomError):
    """A slash command that can't run as typed."""


def _unknown(what: str, word: str, choices: Iterable[str], otherwise: str) -> CommandError:
    # A looser bar (0.5) than the other hints' 0.6: command and thread names are short, so
    # one slip costs a larger share of their letters.
    guess = closest_name(word, choices, cutoff=0.5)
    return CommandError(f"{what} {word!r}", f"did you mean {guess}?" if guess else otherwise)


@dataclass
class _Totals:
    """What the session has used so far (``/cost``)."""

    turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cost_usd: float | None = None

    def add(self, usage: Any, seconds: float) -> None:
        self.turns += 1
        self.input_tokens += usage.input_tokens
        self.output_tokens += usage.output_tokens
        self.seconds += seconds
        if usage.cost_usd is not None:
            self.cost_usd = (self.cost_usd or 0.0) + usage.cost_usd

    def __str__(self) -> str:
        cost = f"${self.cost_usd:.4f}" if self.cost_usd is not None else "no cost (a local or unpriced model)"
        return f"{self.turns} turns · {self.input_tokens:,} in · {self.output_tokens:,} out tokens · {self.seconds:.1f} s · {cost}"


class Repl:
    """One chat session: an agent, a conversation thread, and the commands that change them.

    :meth:`handle` runs one line (a question or a slash command) and reports errors as one
    line; :meth:`execute` raises them instead. :meth:`run_interactive` is the prompt_toolkit
    loop, :meth:`run_lines` the plain one for pipes. An ``interactive`` session asks the user
    to approve the tool calls the policy marks "ask" and shows a usage line after each answer;
    otherwise nobody is there to ask, so such calls are refused. ``agent`` (tests) replaces the
    agent that ``setup`` would build. With ``record_thread`` each turn records its thread as
    the CLI's last one in the data dir, for ``chatloom ask -c`` and ``chatloom chat -c``.
    """

    def __init__(
        self,
        setup: AgentSetup,
        thread_id: str,
        *,
        interactive: bool = True,
        console: Console | None = None,
        agent: Any = None,
        record_thread: bool = False,
    ) -> None:
        from chatloom.tools.policy import console_approver

        self.console = console or Console()
        self.setup = setup
        self.thread_id = thread_id
        self.record_thread = record_thread
        self.show_usage = interactive  # pipes get the answer alone
        self.multiline = False
        self.last_reply: Any = None
        self.totals = _Totals()
        self._view: TurnView | None = None
        self._memory: Any = None
        self._approver = console_approver(self._ask_user) if interactive else None
        self.agent = agent if agent is not None else setup.build(self._approver)
        self.loader = _Loader(self.agent)
        self._await_llama = agent is None  # see _move_to_llama_when_installed

    # -- lines -------------------------------------------------------------------------------

    def handle(self, text: str) -> bool:
        """Run one line, printing any error as one line; False means quit."""
        try:
            return self.execute(text)
        except (KeyboardInterrupt, TurnStopped):  # Ctrl-C stops the answer, not the chat
            self.console.print(Text("interrupted", style="dim"))
        except ChatloomError as exc:  # a failed turn or command is reported; the chat goes on
            self.console.print(error_line(str(exc)), soft_wrap=True)
        except Exception as exc:  # a bug must not end the session either; one line, as `chatloom` prints it
            if os.environ.get("CHATLOOM_DEBUG"):
                raise
            self.console.print(
                error_line(
                    f"internal error: {type(exc).__name__}: {exc} — rerun with CHATLOOM_DEBUG=1 for the traceback, and please report it"
                ),
                soft_wrap=True,
            )
        return True

    def execute(self, text: str) -> bool:
        """Run one line: a slash command or a question. Errors are raised; False means quit."""
        text = text.strip()
        if not text:
            return True
        if not text.startswith("/"):
            self.ask(text)
            return True
        word, _, arg = text.partition(" ")
        name = _ALIASES.get(word.lower(), word.lower())
        if name not in COMMANDS:
            raise _unknown("unknown command", word, COMMANDS, "type /help for the list")
        return getattr(self, f"_cmd_{name[1:]}")(arg.strip()) is not False

    def ask(self, question: str) -> None:
        """Run one turn, showing it live; remembers the reply for ``/trace`` and ``/cost``."""
        self._move_to_llama_when_installed()
        reply = None
        with (
            TurnView(self.console, "loading the model" if not self.loader.done() else self._first_phase()) as view,
            ctrl_c_stops_the_turn(self.agent, self.thread_id, lambda: view.phase("stopping")),
        ):
            self._view = view
            try:
                self.loader.join()
                view.phase(self._first_phase())
                with (
                    recording_turn(self.agent.settings.data_dir, self.thread_id)
                    if self.record_thread
                    else contextlib.nullcontext(),
                    contextlib.closing(self.agent.stream(question, thread_id=self.thread_id)) as events,
                ):
                    for event in events:
                        reply = view.show(event) or reply
            finally:
                self._view = None
        if reply is None:
            return
        seconds = view.seconds()
        self.last_reply = reply
        self.totals.add(reply.usage, seconds)
        if self.show_usage:
            self.console.print(Text(usage_text(reply.usage, seconds), style="dim"))

    def _move_to_llama_when_installed(self) -> None:
        """Rebuild the agent on llama.cpp once llama-cpp-python appears, if its GGUF model runs on transformers.

        ``./run`` starts the chat on transformers while llama.cpp compiles in the background; the
        same model on llama.cpp is several times faster and decodes tool calls under a grammar.
        Checked before each question (a directory lookup, no import); one attempt per session,
        and a failed switch keeps the transformers agent.
        """
        if not self._await_llama or not self.loader.done():
            return
        model = self.agent.loaded_model
        if getattr(model, "engine_name", None) != "transformers" or not str(
            getattr(model, "model_path", "")
        ).lower().endswith(".gguf"):
            self._await_llama = False  # a remote model, an HF dir, or already on llama.cpp
            return
        if not _llama_installed():
            return
        self._await_llama = False
        try:
            self._switch("the model on llama.cpp")
        except Exception as exc:  # noqa: BLE001 - the chat goes on as it was
            self.console.print(
                error_line(
                    f"llama.cpp is installed but the model did not load on it ({type(exc).__name__}: {exc}); staying on transformers"
                ),
                soft_wrap=True,
            )
            return
        if self.console.is_terminal:  # a pipe gets answers only
            self.console.print(Text("llama.cpp is installed: the model runs on it from now on", style="dim"))

    def _first_phase(self) -> str:
        # Agent.stream reports no event before the first token or tool call, so the status
        # can't tell recall from thinking; it names both when the agent recalls at all.
        return "recalling, thinking" if self.agent.has_memory else "thinking"

    def _ask_user(self, question: str) -> str:
        """The approver's y/N question, asked with the live status off the screen."""
        view = self._view
        with view.paused() if view is not None else contextlib.nullcontext():
            return self.console.input(safe_text(question, "yellow"))

    def _loaded(self) -> Any:
        """The agent, once loaded (waiting for it with a status line)."""
        _wait(self.console, self.loader, "loading the model")
        return self.agent

    def _switch(self, what: str, **changes: Any) -> None:
        """Replace the agent with one built from the setup with ``changes``; the old one stays on failure."""
        setup = self.setup.with_changes(**changes)
        agent = setup.build(self._approver)
        loader = _Loader(agent)
        try:
            _wait(self.console, loader, f"loading {what}")
        except BaseException:
            agent.close()
            raise
        self.agent.close()
        self.agent, self.setup, self.loader, self._memory = agent, setup, loader, None

    # -- slash commands (one method per entry of COMMANDS) -------------------------------------

    def _cmd_help(self, arg: str) -> None:
        print_rows(self.console, list(COMMANDS.values()))
        self.console.print(
            Text(
                "Tab completes commands, model ids, prompts and tools. Alt-Enter adds a line; Ctrl-C stops an answer; Ctrl-D quits.",
                style="dim",
            ),
            soft_wrap=True,
        )

    def _cmd_exit(self, arg: str) -> bool:
        return False

    def _cmd_model(self, arg: str) -> None:
        if arg:
            self._switch(arg, model=arg)
        engine = getattr(self.agent.loaded_model, "engine_name", None)  # local models say which engine runs them
        self.console.print(
            Text.assemble(
                "model ",
                (strip_control(self.setup.model_id(self.agent.settings)), "cyan"),
                (f" on {engine}" if engine else "", "dim"),
            )
        )

    def _cmd_prompt(self, arg: str) -> None:
        if arg:
            self._switch(f"prompt {arg}", prompt=arg)
        self.console.print(Text.assemble("prompt ", (strip_control(self.setup.prompt_name()), "cyan")))

    def _cmd_tools(self, arg: str) -> None:
        action, _, name = arg.partition(" ")
        name = name.strip()
        enabled = self.setup.tool_names()
        if action == "enable" and name:
            if name in enabled:
                raise CommandError(f"tool {name!r} is already on")
            self._switch(f"tool {name}", tools=(*enabled, name))
        elif action == "disable" and name:
            if name not in enabled:
                raise _unknown("no enabled tool is called", name, enabled, f"enabled: {', '.join(enabled) or 'none'}")
            self._switch(f"without {name}", tools=tuple(t for t in enabled if t != name))
        elif arg:
            raise CommandError(f"can't do {arg!r}", f"usage: {COMMANDS['/tools'][0]}")
        self._show_tools()

    def _show_tools(self) -> None:
        """The agent's own tools, then each MCP server's, with their effect (read, side_effect, code)."""
        from chatloom.mcp.tools import tools_by_server

        for server, tools in sorted(tools_by_server(self._loaded().tools()).items()):
            self.console.print(safe_text(f"MCP server {server}" if server else "tools", "bold"))
            print_rows(
                self.console,
                [
                    (
                        f"  {tool.name}",
                        f"({(tool.metadata or {}).get('effect', 'undeclared')}) {shorten(tool.description or '', 90)}",
                    )
                    for tool in tools
                ],
                style="",
            )
        mcp = getattr(self.agent, "_mcp", None)  # servers that failed to start have no tools to list
        for server, error in mcp.errors.items() if mcp is not None else ():
            self.console.print(
                Text.assemble(("MCP server unavailable: ", "yellow"), strip_control(f"{server}: {error}"))
            )
        off = [name for name in self._tool_names_available() if name not in self.setup.tool_names()]
        if off:
            self.console.print(Text("off: " + ", ".join(off) + "  (/tools enable NAME)", style="dim"), soft_wrap=True)

    def _cmd_memory(self, arg: str) -> None:
        action, _, text = arg.partition(" ")
        text = text.strip()
        if action == "search" and text:
            hits = self._knowledge().search(text, k=4)
            if not hits:
                self.console.print(Text("no matches", style="dim"))
            from chatloom.cli.render import citation_label

            for i, hit in enumerate(hits, 1):
                self.console.print(
                    Text(
                        f"[{i}] {citation_label(hit.source, hit.section or hit.title)}  (score {hit.score:.3f})",
                        style="cyan",
                    ),
                    soft_wrap=True,
                )
                self.console.print(Text("    " + shorten(strip_control(hit.text), 300)), soft_wrap=True)
        elif action == "add" and text:
            self._ingest(self._write_note(text))
        elif action == "forget" and text:
            removed = self._knowledge().forget(text)
            self.console.print(safe_text(f"forgot {text}: {removed} chunks removed"))
        else:
            raise CommandError(
                f"can't do {arg!r}" if arg else "/memory needs a sub-command", f"usage: {COMMANDS['/memory'][0]}"
            )

    def _write_note(self, text: str) -> Path:
        """``/memory add``: the note becomes a markdown file in the data dir, ingested like any other."""
        notes = Path(self.agent.settings.data_dir()) / "notes"
        path = notes / f"note-{time.strftime('%Y%m%d-%H%M%S')}-{time.time_ns() % 10**6:06d}.md"
        try:
            notes.mkdir(exist_ok=True)
            path.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                f"can't write the note to {str(notes)!r}: {exc.strerror or exc}", "check the data dir (CHATLOOM_HOME)"
            ) from None
        return path

    def _cmd_ingest(self, arg: str) -> None:
        if not arg:
            raise CommandError("/ingest needs a PATH", f"usage: {COMMANDS['/ingest'][0]}")
        path = Path(arg).expanduser()
        if not path.exists():
            raise CommandError(
                f"no such file or folder: {arg!r}", "give the path of a file or folder of .md .txt .pdf .html"
            )
        self._ingest(path)

    def _ingest(self, path: Path) -> None:
        with (
            self.console.status(f"ingesting {strip_control(str(path))}")
            if self.console.is_terminal
            else contextlib.nullcontext()
        ):
            report = self._knowledge().ingest([path])
        for skipped, reason in report.skipped:
            self.console.print(
                Text.assemble(("skipped ", "yellow"), strip_control(f"{skipped}: {reason}")), soft_wrap=True
            )
        self.console.print(safe_text(report.summary()), soft_wrap=True)

    def _knowledge(self) -> Any:
        """The agent's knowledge memory (its namespace), opened on first use."""
        if self._memory is None:
            from chatloom.memory import open_memory

            with self.console.status("opening the memory") if self.console.is_terminal else contextlib.nullcontext():
                self._memory = open_memory(self.agent.settings, namespace=self.agent.namespace)
        return self._memory

    def _cmd_thread(self, arg: str) -> None:
        action, _, name = arg.partition(" ")
        name = name.strip()
        if action == "new":
            name = name or new_thread_id("chat")
            if name in self._threads():
                raise CommandError(f"thread {name!r} already exists", f"/thread switch {name}")
            self.thread_id, self.last_reply = name, None
        elif action == "switch" and name:
            threads = self._threads()
            if name not in threads:
                raise _unknown(
                    "no thread is called", name, threads, f"/thread list shows them; /thread new {name} starts one"
                )
            self.thread_id, self.last_reply = name, None
        elif action == "list":
            threads = self._threads()
            # A new conversation is saved at its first question; list it meanwhile all the same.
            for thread in threads if self.thread_id in threads else [self.thread_id, *threads]:
                self.console.print(safe_text(f"{'*' if thread == self.thread_id else ' '} {thread}"), soft_wrap=True)
            return
        elif arg:
            raise CommandError(f"can't do {arg!r}", f"usage: {COMMANDS['/thread'][0]}")
        count = len(self._loaded().history(self.thread_id))
        self.console.print(Text.assemble("thread ", (strip_control(self.thread_id), "cyan"), f" ({count} messages)"))

    def _threads(self) -> list[str]:
        """Every conversation thread in the store, the most recent first."""
        from chatloom.memory.checkpoint import open_checkpointer, thread_ids

        return thread_ids(open_checkpointer(self._loaded().settings))

    def _cmd_save(self, arg: str) -> None:
        if not arg:
            raise CommandError("/save needs a FILE", f"usage: {COMMANDS['/save'][0]}")
        path = Path(arg).expanduser()
        text = transcript(self._loaded().history(self.thread_id), self.thread_id)
        try:
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(
                f"can't write {arg!r}: {exc.strerror or exc}", "pick a file in a folder you can write to"
            ) from None
        self.console.print(safe_text(f"saved thread {self.thread_id} to {path}"), soft_wrap=True)

    def _cmd_trace(self, arg: str) -> None:
        if self.last_reply is None:
            raise CommandError("no turn to trace yet", "ask a question first")
        print_trace(self.console, self.last_reply)

    def _cmd_cost(self, arg: str) -> None:
        if arg in ("on", "off"):
            self.show_usage = arg == "on"
            self.console.print(Text(f"the line after each answer is {arg}", style="dim"))
        elif arg:
            raise CommandError(f"can't do {arg!r}", f"usage: {COMMANDS['/cost'][0]}")
        else:
            self.console.print(Text(str(self.totals)))

    def _cmd_multi(self, arg: str) -> None:
        self.multiline = not self.multiline
        self.console.print(
            Text(
                "multiline on: Enter adds a line, Alt-Enter (or Esc then Enter) sends"
                if self.multiline
                else "multiline off: Enter sends, Alt-Enter adds a line",
                style="dim",
            )
        )

    def _cmd_reset(self, arg: str) -> None:
        self._loaded().reset(self.thread_id)
        self.last_reply = None
        self.console.print(Text("conversation forgotten", style="dim"))

    # -- what Tab completes ------------------------------------------------------------------

    def completions(self, command: str, before: list[str]) -> list[str]:
        """Candidates for the next argument of ``command`` after the words ``before``."""
        if command in _SUBCOMMANDS and not before:
            return list(_SUBCOMMANDS[command])
        if command == "/model" and not before:
            return self._model_ids()
        if command == "/prompt" and not before:
            from chatloom.prompts.loader import list_prompts

            return sorted({p.name for p in list_prompts(self.agent.workspace) if not p.error})
        if command == "/tools" and before == ["enable"]:
            return [t for t in self._tool_names_available() if t not in self.setup.tool_names()]
        if command == "/tools" and before == ["disable"]:
            return list(self.setup.tool_names())
        if command == "/thread" and before == ["switch"]:
            return self._threads()
        return []

    def _model_ids(self) -> list[str]:
        from chatloom.models.catalog import CATALOG
        from chatloom.models.registry import known_schemes

        ids = [f"local:{name}" for name in CATALOG] + ["openai:gpt-4o-mini", "openai:gpt-4o", "fake:echo"]
        return ids + [f"{scheme}:" for scheme in known_schemes() if not any(i.startswith(f"{scheme}:") for i in ids)]

    def _tool_names_available(self) -> list[str]:
        from chatloom.tools.registry import available_tools

        return list(dict.fromkeys(t.name for t in available_tools(self.agent.workspace)))

    # -- the loops ---------------------------------------------------------------------------

    def run_lines(self, lines: Iterable[str]) -> None:
        """Each line a question or command, for pipes; the first error is raised (exit status 2)."""
        try:
            for line in lines:
                if not self.execute(line):
                    break
        finally:
            self.agent.close()

    def run_interactive(self) -> None:
        """The prompt loop: history, completion, multiline; Ctrl-C clears the line, Ctrl-D quits."""
        from prompt_toolkit import PromptSession

        self.console.print(
            Text.assemble(
                ("chatloom", "bold"),
                " · ",
                (strip_control(self.setup.model_id(self.agent.settings)), "cyan"),
                " · thread ",
                (strip_control(self.thread_id), "cyan"),
                ("   /help lists the commands, Ctrl-D quits", "dim"),
            )
        )
        session: PromptSession = PromptSession(
            history=self._input_history(),
            completer=_slash_completer(self),
            complete_while_typing=False,
            key_bindings=self._key_bindings(),
        )
        try:
            while True:
                try:
                    text = session.prompt("› ", multiline=self.multiline, prompt_continuation="  ")
                except KeyboardInterrupt:
                    continue
                except EOFError:
                    break
                if not self.handle(text):
                    break
        finally:
            self.agent.close()

    def _input_history(self) -> Any:
        from prompt_toolkit.history import FileHistory, InMemoryHistory

        try:
            return FileHistory(str(self.agent.settings.data_dir() / "repl_history"))
        except ChatloomError:
            return InMemoryHistory()  # an unwritable data dir is reported when the agent loads

    def _key_bindings(self) -> Any:
        from prompt_toolkit.filters import Condition
        from prompt_toolkit.key_binding import KeyBindings

        bindings = KeyBindings()

        # In multiline mode prompt_toolkit itself sends on Alt-Enter (Esc, Enter).
        @bindings.add("escape", "enter", filter=Condition(lambda: not self.multiline))
        def _new_line(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        return bindings


def _slash_completer(repl: Repl) -> Any:
    """Tab completion: command names, then each command's arguments (see Repl.completions).

    prompt_toolkit is imported here, by the interactive loop only: a piped chat never pays for it.
    """
    from prompt_toolkit.completion import Completer, Completion

    class SlashCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterator[Any]:
            text = document.text_before_cursor
            if not text.startswith("/") or "\n" in text:
                return
            words = text.split(" ")
            if len(words) == 1:
                candidates = list(COMMANDS)
            else:
                try:
                    candidates = repl.completions(words[0].lower(), [w for w in words[1:-1] if w])
                except Exception:  # noqa: BLE001 - a completion source failing must not end the prompt
                    candidates = []
            word = words[-1]
            for candidate in candidates:
                if candidate.startswith(word):
                    yield Completion(candidate, start_position=-len(word))

    return SlashCompleter()


class _Loader:
    """Loads the agent in the background while the user types the first question."""

    def __init__(self, agent: Any) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._load, args=(agent,), daemon=True)
        self._thread.start()

    def _load(self, agent: Any) -> None:
        try:
            agent.load()
            import rich.markdown  # noqa: F401 - what renders the first answer; 40 ms less after Enter
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread by join()
            self._error = exc

    def done(self) -> bool:
        """Whether loading has finished (well or not)."""
        return not self._thread.is_alive()

    def join(self) -> None:
        """Wait for the load; raises its error, if any (again on every call, until replaced)."""
        self._thread.join()
        if self._error is not None:
            raise self._error


def _llama_installed() -> bool:
    """Whether llama-cpp-python is installed now, completely (it may appear while the chat runs)."""
    import importlib
    import importlib.metadata

    from chatloom.models.local import available_engines

    importlib.invalidate_caches()  # the import system caches directory listings
    if "llama" not in available_engines():
        return False
    try:  # pip writes RECORD last: without it the install is still under way
        return importlib.metadata.distribution("llama_cpp_python").read_text("RECORD") is not None
    except importlib.metadata.PackageNotFoundError:
        return False


def _wait(console: Console, loader: _Loader, what: str) -> None:
    """``loader.join()``, with a status line on a terminal while it takes."""
    if loader.done() or not console.is_terminal:
        return loader.join()
    with console.status(strip_control(what) + "…"):
        loader.join()
