"""The rendered turn, captured from a rich console: tool panels, citation footnotes, /trace."""

from __future__ import annotations

import io

from rich.console import Console

from chatloom.agents.reply import Citation, Reply, Token, ToolStep, Usage
from chatloom.cli.render import TurnView, footnotes, print_answer, print_trace, tool_step, transcript, usage_text
from chatloom.errors import TurnStopped

HOSTILE = "[bold red]root[/] \x1b]0;pwned\x07\x1b]52;c;Y2xpcA==\x07\x1b[2Jdone"


def terminal(width: int = 80) -> Console:
    return Console(record=True, file=io.StringIO(), force_terminal=True, color_system="truecolor", width=width)


def reply(**fields) -> Reply:
    leave = Citation(
        1, "/srv/docs/handbook.md", 3, 0.91, "Handbook", "Staff get 25 days of annual leave a year.", "Annual leave"
    )
    defaults = dict(
        answer="Staff get **25 days** of annual leave [1].",
        thread_id="t",
        citations=(leave,),
        retrieved=(leave,),
        tool_steps=(ToolStep("calculator", {"expression": "5*5"}, "25"),),
        usage=Usage(300, 12, 312),
        steps=2,
    )
    return Reply(**{**defaults, **fields})


def test_a_tool_step_is_a_compact_panel_with_the_call_then_the_result():
    console = terminal()
    console.print(tool_step("calculator", {"expression": "17*23"}, "391", True, boxed=True))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("╭─ calculator ─") and lines[0].endswith("╮")
    assert lines[1] == "│ → calculator(expression='17*23') │"
    assert lines[2].startswith("│ ← 391 ") and lines[2].endswith("│")
    assert lines[3].startswith("╰─") and len(lines) == 4
    assert len(lines[0]) < 80  # compact: as wide as its content, not the terminal


def test_a_panel_is_collapsed_until_expanded():
    long_result = "row " * 200
    collapsed, expanded = terminal(), terminal()
    collapsed.print(tool_step("sql", {"q": "select"}, long_result, True, boxed=True))
    expanded.print(tool_step("sql", {"q": "select"}, long_result, True, boxed=True, expanded=True))
    short, whole = collapsed.export_text(), expanded.export_text()
    assert len(short.splitlines()) == 4 and short.splitlines()[2].endswith("… │")  # one line, cut
    assert whole.count("row") == 200


def test_a_failed_step_says_so_in_its_title():
    console = terminal()
    console.print(tool_step("python", {"code": "1/0"}, "error: ZeroDivisionError", False, boxed=True))
    assert console.export_text().splitlines()[0].startswith("╭─ python (failed) ─")


def test_hostile_tool_text_in_a_panel_is_shown_as_text():
    console = terminal()
    console.print(tool_step("fetch", {"url": "[/i]x"}, HOSTILE, True, boxed=True))
    raw, text = console.file.getvalue(), console.export_text()
    assert "[bold red]root[/] done" in text and "url='[/i]x'" in text  # markup shown, not applied
    assert "\x1b]" not in raw and "pwned" not in raw and "\x1b[2J" not in raw  # no OSC, no screen clear


def test_citations_are_footnotes_with_file_and_section():
    console = terminal()
    print_answer(console, reply())
    text = console.export_text()
    assert "Staff get 25 days of annual leave [1]." in text  # markdown rendered: no ** left
    assert text.rstrip().splitlines()[-1] == "[1] handbook.md › Annual leave"
    assert "/srv/docs" not in text
    assert footnotes(reply()) == ["[1] handbook.md › Annual leave"]


def test_passages_of_one_section_share_a_footnote():
    def cite(index: int, source: str, section: str) -> Citation:
        return Citation(index, source, 0, 0.9, "", "text", section)

    cited = reply(
        citations=(
            cite(1, "docs/models.md", "Local models"),
            cite(2, "docs/install.md", "Quick start"),
            cite(3, "docs/models.md", "Local models"),
            cite(4, "docs/models.md", "OpenAI"),
        )
    )
    assert footnotes(cited) == [
        "[1] [3] models.md › Local models",
        "[2] install.md › Quick start",
        "[4] models.md › OpenAI",
    ]


def test_plain_output_has_no_ansi_and_keeps_the_answer_as_written():
    out = io.StringIO()
    print_answer(Console(file=out, force_terminal=False, width=80), reply())
    assert out.getvalue() == "Staff get **25 days** of annual leave [1].\n[1] handbook.md › Annual leave\n"


def test_trace_expands_reasoning_steps_and_passages():
    console = terminal()
    print_trace(
        console,
        reply(reasoning="5 weeks of 5 days", tool_steps=(ToolStep("calculator", {"expression": "5*5"}, "x" * 300),)),
    )
    text = console.export_text()
    assert "5 weeks of 5 days" in text and "reasoning" in text
    assert text.count("x") >= 300  # the whole result, not the collapsed line
    assert "[1] handbook.md › Annual leave  (score 0.910)" in text
    assert "Staff get 25 days of annual leave a year." in text


def test_usage_line_shows_cost_only_when_known():
    assert usage_text(Usage(1200, 40, 1240), 2.34) == "1,200 in · 40 out tokens · 2.3 s"
    assert usage_text(Usage(1200, 40, 1240, cost_usd=0.00042), 1.0).endswith(" · $0.0004")


def test_usage_line_of_a_turn_without_a_model_call():
    assert usage_text(Usage(0, 0, 0), 0.04) == "no model call · 0.0 s"


def test_transcript_is_markdown_without_control_sequences():
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    messages = [
        HumanMessage("What is 5*5?"),
        AIMessage("", tool_calls=[{"name": "calculator", "args": {"expression": "5*5"}, "id": "c1"}]),
        ToolMessage("25", tool_call_id="c1", name="calculator"),
        AIMessage("It is **25**.\x1b]0;pwned\x07"),
    ]
    text = transcript(messages, "t1")
    assert text.splitlines()[0] == "# chatloom conversation `t1`"
    assert "## You\n\nWhat is 5*5?" in text
    assert "- tool call: `calculator(expression='5*5')`" in text and "- result: 25" in text
    assert "## Assistant\n\nIt is **25**." in text and "\x1b" not in text


def test_a_stopped_turn_leaves_the_text_so_far_on_screen_marked_unfinished():
    console = terminal()
    try:
        with TurnView(console) as view:
            view.show(Token("Staff get **25 days**"))
            view.show(Token(" of annual"))
            raise TurnStopped("the turn was stopped before its answer")
    except TurnStopped:
        pass
    text = console.export_text()
    assert "Staff get 25 days of annual" in text  # rendered as markdown
    assert "(unfinished: not checked against the sources)" in text


def test_a_turn_stopped_before_any_text_prints_nothing():
    console = terminal()
    try:
        with TurnView(console):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert "unfinished" not in console.export_text()  # (the live status line was all it drew)
