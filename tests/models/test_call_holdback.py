"""The one streaming hold-back filter (toolcalls.CallHoldBack), against the tool-call corpus.

Every backend and the agent stream through it, so this is where "what may the user see while
a reply is written" is tested.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatloom.models.toolcalls import CallHoldBack, _Parser, opens_tool_call

CORPUS = [
    json.loads(line) for line in (Path(__file__).parent / "toolcall_corpus.jsonl").read_text().splitlines() if line
]
CALLS = [row for row in CORPUS if row["expected_calls"]]
NO_CALLS = [row for row in CORPUS if not row["expected_calls"]]


def stream(text: str, size: int, tool_names: tuple[str, ...] | list[str] = (), **kw: bool) -> CallHoldBack:
    """``text`` fed through a fresh filter in pieces of ``size`` characters; released text is
    checked to come out in order, as a prefix of the text."""
    hold = CallHoldBack(tool_names, **kw)
    shown = "".join(hold.feed(text[i : i + size]) for i in range(0, len(text), size))
    assert shown == hold.released and text.startswith(shown)
    assert hold.released + hold.rest() == text == hold.text
    return hold


@pytest.mark.parametrize("size", [1, 3, 7])
@pytest.mark.parametrize("row", CALLS, ids=[row["id"] for row in CALLS])
def test_no_part_of_a_call_is_ever_released(row, size):
    parser = _Parser(row["text"], row["tools"], row["params"])
    parser.run()
    first_call = min(start for start, _, _ in parser.spans)
    hold = stream(row["text"], size, row["tools"])
    assert len(hold.released) <= first_call
    assert hold.holding


@pytest.mark.parametrize("size", [1, 3, 7])
@pytest.mark.parametrize("row", NO_CALLS, ids=[row["id"] for row in NO_CALLS])
def test_text_without_a_call_comes_through_whole(row, size):
    hold = stream(row["text"], size, row["tools"])
    if not any(c in row["text"] for c in "{[`<"):  # plain prose: nothing is held at the end
        assert hold.rest() == "" and not hold.holding


@pytest.mark.parametrize("size", [1, 3])
@pytest.mark.parametrize(
    "text",
    [
        "Paris is the capital [1]. Lyon is second [2, 3].",
        "Use {name} placeholders in templates, or {} for none.",
        "Set x = {1, 2} and y = [1, 2].",
        "I could use the calculator, but 2+2 is 4.",
    ],
)
def test_citations_and_prose_brackets_stream(text, size):
    hold = stream(text, size, ["calculator", "search"])
    assert hold.released == text and not hold.holding


def test_a_partial_opener_at_the_end_waits_for_the_next_piece():
    hold = CallHoldBack()
    assert hold.feed("Hi <tool_ca") == "Hi "
    assert hold.feed('ll>{"name": "x"}') == "" and hold.rest() == '<tool_call>{"name": "x"}'
    hold = CallHoldBack()
    assert hold.feed("Hi <to") == "Hi " and not hold.holding
    assert hold.feed("day> is a tag") == "<today> is a tag"
    for partial in ("{", "{ ", "{name", "[", "`", "``", "[TOOL", "functions"):
        hold = CallHoldBack()
        assert hold.feed("See " + partial) == "See ", partial


def test_a_code_fence_is_held():
    hold = stream("Here:\n```python\nx = 1\n```\nDone.", 3)
    assert hold.released == "Here:\n" and hold.rest().startswith("```python")


def test_a_bound_name_opens_a_call_only_when_bound():
    hold = stream("Let me: calc(expression='2+2')", 1, ["calc"])
    assert hold.released == "Let me: " and hold.holding
    hold = stream("Let me: calc(expression='2+2')", 1)
    assert hold.released == "Let me: calc(expression='2+2')"


def test_constrained_output_holds_only_the_grammars_call_shapes():
    hold = stream('{"name": "calc", "arguments": {}}', 3, ["calc"], constrained=True)
    assert hold.released == "" and hold.holding
    hold = stream('See [1] and ```code``` and {"a": 1}, calc(1).', 3, ["calc"], constrained=True)
    assert not hold.holding and hold.rest() == ""
    hold = stream("Let me compute.<tool_call>\n{}", 1, ["calc"], constrained=True)
    assert hold.released == "Let me compute." and hold.holding


def test_opens_tool_call_is_the_same_rule():
    assert not opens_tool_call("So 3 + 4 = 7 and {name} = 2 [1]")
    assert opens_tool_call('{"expression": "2 + 2 =')
    assert opens_tool_call("calculator(expression='2+2=", ["calculator"])
    assert not opens_tool_call("calculator(expression='2+2=")
