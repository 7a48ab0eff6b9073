"""How a chat turn looks: the status line, streamed markdown, tool panels, citations and the trace.

Text written by the model, a tool or a document is always shown as text: it goes through
:func:`strip_control` and into ``rich.text.Text`` objects, so it is never read as rich markup
and never reaches the terminal as a control sequence.

On a terminal a turn is live (a spinner with the phase and elapsed time, then the answer
streamed as markdown); anywhere else (a pipe, a file) it is plain lines with no ANSI codes.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.text import Text

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


def safe_text(text: str, style: str = "") -> Text:
    """Untrusted text as a rich ``Text``: styled as a whole, never parsed as markup."""
    return Text(strip_control(text), style=style)


def shorten(text: str, limit: int = 200) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis.

    >>> shorten("a  b\\nc", 4)
    'a b…'
    """
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(message: str) -> Text:
    """``error: message`` as one red-labelled line."""
    return Text.assemble(("error: ", "bold red"), strip_control(message))


def call_text(name: str, args: dict[str, Any], limit: int | None = 400) -> str:
    """``name(key=value, ...)`` for a tool call; shortened unless ``limit`` is None."""
    text = f"{name}({', '.join(f'{k}={v!r}' for k, v in args.items())})"
    return text if limit is None else shorten(text, limit)


def tool_step(
    name: str, args: dict[str, Any], result: str, ok: bool, *, boxed: bool, expanded: bool = False
) -> RenderableType:
    """One tool step: the call, then its result.

    Collapsed (the default) each is one shortened line; ``expanded`` shows both whole (``/trace``).
    ``boxed`` draws a compact panel titled with the tool's name (terminals); otherwise the two
    lines start with ``→`` and ``←`` (pipes and files).
    """
    from chatloom.tools.policy import unwrap_untrusted

    call = safe_text(call_text(name, args, None if expanded else 400))
    result = strip_control(unwrap_untrusted(result)).strip()  # the data, not the model's framing of it
    shown = result if expanded else shorten(result)
    outcome = Text(shown, style="" if ok else "yellow")
    lines = [Text("→ ", style="dim") + call, Text("← ", style="dim") + outcome]
    if not boxed:
        return Group(*lines)
    from rich.panel import Panel

    if not expanded:  # one screen line each, cut at the panel's edge
        for line in lines:
            line.no_wrap, line.overflow = True, "ellipsis"
    return Panel(
        Group(*lines),
        title=safe_text(name if ok else f"{name} (failed)"),
        title_align="left",
        border_style="dim" if ok else "yellow",
        expand=expanded,
        padding=(0, 1),
    )


def citation_label(source: str, section: str) -> str:
    """``file › section`` for a footnote: the file's name and section, never an absolute path."""
    from chatloom.agents.grounding import passage_label

    return strip_control(passage_label({"source": source, "section": section}))


def footnotes(reply: Any) -> list[str]:
    """The reply's citations as footnote lines: ``[1] handbook.md › Leave``.

    Two passages from the same section share one line (``[1] [3] handbook.md › Leave``), so
    the list names each source once.
    """
    marks: dict[str, list[str]] = {}
    for c in reply.citations:
        marks.setdefault(citation_label(c.source, c.section or c.title), []).append(f"[{c.index}]")
    return [f"{' '.join(indexes)} {label}" for label, indexes in marks.items()]


def usage_text(usage: Any, seconds: float) -> str:
    """``412 in · 37 out tokens · 2.3 s`` (and the cost, when the model's price is known);
    ``no model call · 0.0 s`` for a turn answered without the model (an exact calculation)."""
    if not usage.input_tokens and not usage.output_tokens:
        return f"no model call · {seconds:.1f} s"
    text = f"{usage.input_tokens:,} in · {usage.output_tokens:,} out tokens · {seconds:.1f} s"
    return text + (f" · ${usage.cost_usd:.4f}" if usage.cost_usd is not None else "")


def markdown(text: str) -> RenderableType:
    """Model text rendered as markdown with highlighted code, links shown as text.

    Hyperlinks are off: a terminal link's target is invisible, so a model could dress up
    any URL as harmless link text.
    """
    from rich.markdown import Markdown

    return Markdown(strip_control(text), hyperlinks=False, code_theme="monokai")


def print_answer(console: Console, reply: Any) -> None:
    """The final answer, its citation footnotes and any sentences grounding found unsupported."""
    if console.is_terminal:
        console.print(markdown(reply.answer or "_(no answer)_"))
    else:  # plain text for pipes and files: the answer as written, not a layout of it
        console.print(Text(strip_control(reply.answer) or "(no answer)"), soft_wrap=True)
    for line in footnotes(reply):
        console.print(Text(line, style="dim"), soft_wrap=True)
    for sentence in reply.unsupported if reply.grounded is False else ():
        console.print(Text.assemble(("not backed by any passage: ", "yellow"), shorten(strip_control(sentence))))


def print_trace(console: Console, reply: Any) -> None:
    """``/trace``: the last turn expanded: reasoning, every tool step whole, the retrieved passages."""
    from rich.panel import Panel
    from rich.rule import Rule

    console.print(Rule(Text(f"trace: {reply.steps} steps, stopped by {reply.stop_reason}"), style="dim"))
    if reply.reasoning.strip():
        console.print(
            Panel(safe_text(reply.reasoning.strip()), title="reasoning", title_align="left", border_style="dim")
        )
    for step in reply.tool_steps:
        console.print(tool_step(step.name, step.args, step.result, step.ok, boxed=console.is_terminal, expanded=True))
    if reply.retrieved:
        console.print(Text(f"retrieved {len(reply.retrieved)} passages:", style="bold"))
    for i, passage in enumerate(reply.retrieved, 1):
        label = citation_label(passage.source, passage.section or passage.title)
        console.print(Text(f"[{i}] {label}  (score {passage.score:.3f})", style="cyan"), soft_wrap=True)
        console.print(Text("    " + shorten(strip_control(passage.text), 600)), soft_wrap=True)
    if not (reply.reasoning.strip() or reply.tool_steps or reply.retrieved):
        console.print(Text("no reasoning, tool steps or retrieved passages in the last turn", style="dim"))


class TurnView:
    """Shows one turn as it happens.

    On a terminal: a live region with the answer streamed as markdown above a status line
    (spinner, phase, elapsed seconds); tool steps are printed as panels above it. Elsewhere:
    nothing live, just the tool steps and the answer as plain lines.

    Use it as a context manager; :meth:`show` takes each event of ``Agent.stream`` and returns
    the ``Reply`` when the turn is over.
    """

    def __init__(self, console: Console, phase: str = "thinking") -> None:
        self.console = console
        self.started = time.monotonic()
        self._phase = phase
        self._streamed = ""
        self._calls: dict[str, tuple[str, dict[str, Any]]] = {}
        self._live: Any = None
        self._lock = threading.Lock()  # the approver may pause the view from the tool's thread

    # -- the live region ---------------------------------------------------------------------

    def __enter__(self) -> TurnView:
        self._start()
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self._stop()
        if exc_type is not None and self._streamed.strip() and self.console.is_terminal:
            # The live region goes with the turn; what the user was reading stays on screen,
            # marked as unfinished: it never reached the answer check. (A pipe showed nothing.)
            self.console.print(markdown(self._streamed))
            self.console.print(Text("(unfinished: not checked against the sources)", style="dim"))

    def _start(self) -> None:
        if not self.console.is_terminal:
            return
        from rich.live import Live

        with self._lock:
            if self._live is None:
                self._live = Live(self, console=self.console, refresh_per_second=10, transient=True)
                self._live.start()

    def _stop(self) -> None:
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Take the live region off the screen meanwhile (e.g. to ask the user something)."""
        self._stop()
        try:
            yield
        finally:
            self._start()

    def __rich__(self) -> RenderableType:
        from rich.spinner import Spinner

        parts: list[RenderableType] = []
        if self._streamed:
            # only the tail fits a live region; the whole answer is printed when the turn ends
            keep = max(self.console.height - 4, 3)
            parts.append(markdown("\n".join(self._streamed.splitlines()[-keep:])))
        elapsed = time.monotonic() - self.started
        parts.append(Spinner("dots", text=Text(f"{self._phase} · {elapsed:.1f} s", style="dim"), style="cyan"))
        return Group(*parts)

    def phase(self, text: str) -> None:
        """What the turn is doing now, shown in the status line ("loading the model", ...)."""
        self._phase = text

    # -- events ------------------------------------------------------------------------------

    def show(self, event: Any) -> Any:
        """Render one stream event; returns the Reply once the AnswerEvent arrives, else None."""
        from chatloom.agents.reply import AnswerEvent, Token, ToolCallEvent, ToolResultEvent

        if isinstance(event, Token):
            self._streamed += strip_control(event.text)
            self._phase = "writing"
        elif isinstance(event, ToolCallEvent):
            self._streamed = ""  # text before a tool call was not the answer
            self._calls[event.id] = (event.name, event.args)
            self._phase = "calling " + shorten(strip_control(call_text(event.name, event.args)), 60)
        elif isinstance(event, ToolResultEvent):
            name, args = self._calls.pop(event.id, (event.name, {}))
            self.console.print(tool_step(name, args, event.content, event.ok, boxed=self.console.is_terminal))
            self._phase = "thinking"
        elif isinstance(event, AnswerEvent):
            self._stop()
            print_answer(self.console, event.reply)
            return event.reply
        return None

    def seconds(self) -> float:
        """Seconds since the question was sent."""
        return time.monotonic() - self.started


def table_console() -> Console:
    """The console for command listings (``prompts list``, ``plugins list``).

    Piped output (tests, ``| grep``) gets 160-column lines instead of rich's 80-column wrapping.
    """
    import sys

    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def print_rows(console: Console, rows: Sequence[tuple[str, str]], style: str = "bold") -> None:
    """Two-column ``name  description`` rows (command lists, tool lists), text shown literally."""
    width = max((len(name) for name, _ in rows), default=0)
    for name, description in rows:
        console.print(
            Text.assemble((strip_control(name).ljust(width), style), "  ", (strip_control(description), "dim")),
            soft_wrap=True,
        )


def transcript(messages: Sequence[Any], thread_id: str) -> str:
    """A conversation as markdown (``/save``): questions, answers, and each tool step in a line."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    lines = [f"# chatloom conversation `{strip_control(thread_id)}`", ""]
    for message in messages:
        text = strip_control(str(message.content)).strip()
        if isinstance(message, HumanMessage):
            lines += ["## You", "", text, ""]
        elif isinstance(message, AIMessage) and message.tool_calls:
            # the text beside a tool call is the call itself (small models write it out)
            lines += [f"- tool call: `{call_text(c['name'], c['args'])}`" for c in message.tool_calls]
        elif isinstance(message, AIMessage) and text:
            lines += ["## Assistant", "", text, ""]
        elif isinstance(message, ToolMessage):
            from chatloom.tools.policy import unwrap_untrusted

            lines += [f"- result: {shorten(unwrap_untrusted(text), 500)}", ""]
    return "\n".join(lines).rstrip() + "\n"
