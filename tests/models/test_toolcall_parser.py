"""The tolerant tool-call parser on a corpus of malformed model outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatloom.models.toolcalls import _Parser, parse_tool_calls

CORPUS = [
    json.loads(line) for line in (Path(__file__).parent / "toolcall_corpus.jsonl").read_text().splitlines() if line
]


def test_corpus_is_big_enough():
    assert sum(1 for row in CORPUS if row["expected_calls"]) >= 30


@pytest.mark.parametrize("row", CORPUS, ids=[row["id"] for row in CORPUS])
def test_corpus(row):
    content, calls = parse_tool_calls(row["text"], row["tools"], row["params"])
    assert [{"name": c["name"], "args": c["args"]} for c in calls] == row["expected_calls"]
    assert content == row["expected_content"]
    for call in calls:
        assert call["type"] == "tool_call"
        assert call["id"].startswith("call_")
    assert len({c["id"] for c in calls}) == len(calls)


def test_ids_are_fresh_each_parse():
    text = '{"name": "calculator", "arguments": {"expression": "1"}}'
    a = parse_tool_calls(text, ["calculator"])[1][0]["id"]
    b = parse_tool_calls(text, ["calculator"])[1][0]["id"]
    assert a != b


def test_string_argument_without_param_names_goes_to_input():
    _, calls = parse_tool_calls('{"tool": "calculator", "input": "2+2"}', ["calculator"])
    assert calls[0]["args"] == {"input": "2+2"}


def test_no_tools_means_no_calls():
    text = '{"name": "calculator", "arguments": {}}'
    assert parse_tool_calls(text, []) == (text, [])


def test_literal_eval_never_evaluates_code():
    text = "{'name': 'calculator', 'arguments': __import__('os').system('false')}"
    content, calls = parse_tool_calls(text, ["calculator"])
    assert calls == [] and content == text


def test_pathological_input_is_fast():
    import time

    text = "{" * 20_000 + "calculator" + "[" * 20_000
    start = time.perf_counter()
    assert parse_tool_calls(text, ["calculator"]) == (text, [])
    assert time.perf_counter() - start < 5


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            list("{}[]\"':,<>/`\n abcalcutor_functions.()=")
            + [
                "calculator",
                "<tool_call>",
                "</tool_call>",
                "```json",
                "```",
                "name",
                "arguments",
                "true",
                "null",
                "functions.",
            ]
        ),
        max_size=80,
    ).map("".join)
)
def test_never_raises_on_structured_noise(text):
    content, calls = parse_tool_calls(text, ["calculator"], {"calculator": ["expression"]})
    assert isinstance(content, str)
    for call in calls:
        assert call["name"] == "calculator" and isinstance(call["args"], dict)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_never_raises_on_arbitrary_text(text):
    content, calls = parse_tool_calls(text, ["calculator", "search"])
    assert isinstance(content, str) and isinstance(calls, list)


# The public function swallows a parser bug (a turn must not break on it), so the fuzzing that
# can find a bug runs the inner parser, where any exception fails the test.
NOISE = st.lists(
    st.sampled_from(
        list("{}[]\"':,<>/`\n abcalcutor_functions.()=\\")
        + [
            "calculator",
            "search",
            "<tool_call>",
            "</tool_call>",
            "```json",
            "```",
            "name",
            "arguments",
            "input",
            "true",
            "null",
            "functions.",
            "[TOOL_CALLS]",
            "<function_call>",
            "to=functions.",
            "calculator(",
            "1e999",
        ]
    ),
    max_size=120,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(NOISE)
def test_inner_parser_never_raises_on_structured_noise(text):
    content, calls = _Parser(text, ["calculator", "search"], {"calculator": ["expression"]}).run()
    assert isinstance(content, str)
    for call in calls:
        assert call["name"] in {"calculator", "search"} and isinstance(call["args"], dict)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=3))
def test_inner_parser_never_raises_on_arbitrary_text_and_names(text, names):
    content, calls = _Parser(text, names, {}).run()
    assert isinstance(content, str) and isinstance(calls, list)


def test_a_parser_bug_is_logged_not_hidden(monkeypatch, caplog):
    def broken(self):
        raise KeyError("a bug")

    monkeypatch.setattr(_Parser, "run", broken)
    text = '{"name": "calculator", "arguments": {"expression": "1"}}'
    with caplog.at_level("ERROR", logger="chatloom.models.toolcalls"):
        assert parse_tool_calls(text, ["calculator"]) == (text, [])
    [record] = [r for r in caplog.records if r.name == "chatloom.models.toolcalls"]
    assert "tool-call parser failed" in record.getMessage() and record.exc_info[0] is KeyError
