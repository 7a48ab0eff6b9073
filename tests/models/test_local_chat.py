"""The engine-independent local chat model logic, on a scripted engine (no model, no torch).

Covers message conversion for templates with and without tool support, tool-call parsing,
streaming hold-back of call text, usage metadata and the constrained-output path.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from stub_tools import calculator, search

from chatloom.models._local_chat import LocalChatModel, Piece, Prepared
from chatloom.models.toolcalls import CallHoldBack

QWEN_LIKE = "{% if tools %}tools{% endif %}{% for m in messages %}{{ m.content }}{% endfor %}"
PLAIN = "{% for m in messages %}{{ m.content }}{% endfor %}"


class Scripted(LocalChatModel):
    """Yields the scripted text in small pieces and records what it was asked."""

    script: list[str] = []
    template: str = PLAIN
    grammar_ok: bool = False
    seen: list = []
    piece_chars: int = 3

    def _chat_template(self) -> str | None:
        return self.template

    def _grammar_available(self) -> bool:
        return self.grammar_ok

    def _generate_text(self, prepared: Prepared) -> Iterator[Piece]:
        self.seen.append(prepared)
        text = self.script.pop(0)
        for i in range(0, len(text), self.piece_chars):
            yield Piece(text[i : i + self.piece_chars])
        # Like a real engine, the prompt count includes reply text already written (prefix).
        prompt = 11 + -(-len(prepared.prefix) // 3)
        yield Piece("", done=True, input_tokens=prompt, output_tokens=len(text) // 3 + 1, finish_reason="stop")


def make(*script: str, **kw) -> Scripted:
    return Scripted(model_path="fake.gguf", script=list(script), seen=[], **kw)


def test_plain_answer_with_usage_and_metadata():
    m = make("Paris is the capital.")
    r = m.invoke("capital of France?")
    assert r.content == "Paris is the capital." and r.tool_calls == []
    assert r.usage_metadata == {"input_tokens": 11, "output_tokens": 8, "total_tokens": 19}
    assert r.response_metadata["engine"] == "local" and r.response_metadata["finish_reason"] == "stop"


def test_streaming_yields_tokens_and_a_final_usage_chunk():
    m = make("Hello there, how can I help?")
    chunks = list(m.stream("hi"))
    assert len(chunks) > 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.content == "Hello there, how can I help?"
    assert full.usage_metadata["input_tokens"] == 11


def test_qwen_tool_call_text_becomes_tool_calls_and_is_never_streamed():
    text = 'Sure.\n<tool_call>\n{"name": "calculator", "arguments": {"expression": "17*23"}}\n</tool_call>'
    m = make(text, text, template=QWEN_LIKE)
    bound = m.bind_tools([calculator, search], constrained=False)
    r = bound.invoke("What is 17*23?")
    assert r.tool_calls[0]["name"] == "calculator" and r.tool_calls[0]["args"] == {"expression": "17*23"}
    assert "tool_call" not in r.content
    chunks = list(bound.stream("What is 17*23?"))
    streamed = "".join(c.content for c in chunks[:-1])
    assert "<tool" not in streamed and "{" not in streamed
    full = chunks[0]
    for c in chunks[1:]:
        full += c
    assert full.tool_calls[0]["args"] == {"expression": "17*23"}
    assert full.response_metadata["finish_reason"] == "tool_calls"
    # A tool-aware template gets the tools through `tools=`, not in the system prompt.
    assert m.seen[0].tools and m.seen[0].messages[0]["role"] == "user"


def test_template_without_tools_gets_a_system_prompt_and_plain_json_calls():
    m = make('{"name": "search", "arguments": {"query": "chroma"}}', template=PLAIN)
    r = m.bind_tools([search], constrained=False).invoke([SystemMessage("Be brief."), HumanMessage("find chroma")])
    assert r.tool_calls[0]["args"] == {"query": "chroma"}
    sent = m.seen[0]
    assert sent.tools == [] and sent.messages[0]["role"] == "system"
    assert sent.messages[0]["content"].startswith("Be brief.") and '"name": "search"' in sent.messages[0]["content"]


def test_history_with_tool_calls_and_results_is_converted():
    call = {"name": "calculator", "args": {"expression": "2+2"}, "id": "c1", "type": "tool_call"}
    history = [
        HumanMessage("2+2?"),
        AIMessage("", tool_calls=[call]),
        ToolMessage("4", tool_call_id="c1", name="calculator"),
    ]
    native = LocalChatModel._to_dicts(history, native=True)
    assert native[1]["tool_calls"][0]["function"] == {"name": "calculator", "arguments": {"expression": "2+2"}}
    assert native[2] == {"role": "tool", "content": "4", "name": "calculator", "tool_call_id": "c1"}
    plain = LocalChatModel._to_dicts(history, native=False)
    assert json.loads(plain[1]["content"]) == {"name": "calculator", "arguments": {"expression": "2+2"}}
    assert plain[2] == {"role": "user", "content": "Result of tool calculator: 4"}


def test_answer_mentioning_braces_still_arrives_whole():
    m = make("Use a dict like {a: 1} here.")
    chunks = list(m.bind_tools([calculator], constrained=False).stream("x"))
    assert "".join(c.content for c in chunks) == "Use a dict like {a: 1} here."


def test_constrained_path_builds_a_grammar_and_parses_strictly():
    m = make('{"name": "search", "arguments": {"query": "x", "k": 2}}', "Just text.", "free", grammar_ok=True)
    bound = m.bind_tools([calculator, search], constrained=True)
    r = bound.invoke("find x")
    assert r.tool_calls[0]["name"] == "search" and r.tool_calls[0]["args"] == {"query": "x", "k": 2}
    assert m.seen[0].grammar is not None and m.seen[0].grammar.allow_text
    r = bound.invoke("hello")
    assert r.content == "Just text." and r.tool_calls == []
    # Answer-or-call is unconstrained by default (it made small models stop calling tools).
    m.bind_tools([calculator, search]).invoke("hi")
    assert m.seen[-1].grammar is None


def test_tool_choice_required_and_named_and_none():
    m = make("{}", "{}", "plain", grammar_ok=True)
    m.bind_tools([calculator, search], tool_choice="required").invoke("x")
    assert not m.seen[-1].grammar.allow_text and m.seen[-1].max_tokens >= m.tool_max_tokens
    m.bind_tools([calculator, search], tool_choice="search").invoke("x")
    assert m.seen[-1].grammar.tool_names == ["search"]
    r = m.bind_tools([calculator], tool_choice="none").invoke("x")
    assert m.seen[-1].grammar is None and r.content == "plain"


@pytest.mark.parametrize(
    ("text", "cut"),
    [("Hello", 5), ("Hi <tool_call>{", 3), ("Hi <tool", 3), ("```json", 0), ("a {b", 2), ("x `", 2)],
)
def test_hold_back_points(text, cut):
    assert len(CallHoldBack().feed(text)) == cut


def test_engine_choice(monkeypatch):
    from chatloom.errors import ChatloomError
    from chatloom.models import local

    monkeypatch.setattr(local, "available_engines", lambda: ["llama", "transformers"])
    assert local.choose_engine("gguf") == "llama"
    assert local.choose_engine("hf") == "transformers"
    assert local.choose_engine("gguf", "transformers") == "transformers"
    monkeypatch.setattr(local, "available_engines", lambda: ["transformers"])
    assert local.choose_engine("gguf") == "transformers"
    with pytest.raises(ChatloomError, match="pip install"):
        local.choose_engine("gguf", "llama")
    monkeypatch.setattr(local, "available_engines", lambda: [])
    with pytest.raises(ChatloomError) as err:
        local.choose_engine("gguf")
    assert "pip install" in str(err.value) and "\n" not in str(err.value)


def test_gguf_and_hf_factories_reject_bad_paths(tmp_path):
    from chatloom.errors import ModelNotFound
    from chatloom.models.local import create_gguf_model, create_hf_model

    with pytest.raises(ModelNotFound, match="does not exist"):
        create_gguf_model(tmp_path / "nope.gguf")
    with pytest.raises(ModelNotFound, match="config.json"):
        create_hf_model(tmp_path)


def test_stream_keeps_held_back_text_after_leading_whitespace():
    m = make("\nHi {x} there")
    chunks = list(m.bind_tools([calculator], constrained=False).stream("x"))
    assert "".join(c.content for c in chunks).strip() == "Hi {x} there"


# -- inline calculator: the calculator writes the number after each "=" ----------------------


def _slipping_engine(**kw) -> Scripted:
    """A model that gets its sums wrong: each segment is what it writes after the prefix."""
    return make(
        "She has 16 - 3 - 4 = 8 eggs left.",  # cut where "8" starts: the calculator writes "9"
        " eggs left, so she earns 9 × $2 = $20 a day.",  # keeps its "$", loses its "20"
        " a day.\n#### 18",
        **kw,
    )


def test_inline_calculator_writes_each_result_and_the_model_continues_from_it():
    m = _slipping_engine()
    r = m.bind_tools([calculator]).invoke("How much does Janet earn?")
    assert r.content == "She has 16 - 3 - 4 = 9 eggs left, so she earns 9 × $2 = $18 a day.\n#### 18"
    assert [p.prefix for p in m.seen] == [
        "",
        "She has 16 - 3 - 4 = 9",
        "She has 16 - 3 - 4 = 9 eggs left, so she earns 9 × $2 = $18",
    ]
    assert r.response_metadata["calculations"] == 2
    # Token counts are approximate here: the text written before a cut counts as output.
    assert r.usage_metadata["output_tokens"] > 20 and abs(r.usage_metadata["input_tokens"] - 11) <= 3


def test_inline_calculator_streams_the_same_text():
    m = _slipping_engine()
    streamed = "".join(str(c.content) for c in m.bind_tools([calculator]).stream("How much?"))
    assert streamed == "She has 16 - 3 - 4 = 9 eggs left, so she earns 9 × $2 = $18 a day.\n#### 18"


def test_inline_calculator_is_off_without_the_calculator_or_when_switched_off():
    assert make("16 - 3 - 4 = 8 eggs.").invoke("eggs?").content == "16 - 3 - 4 = 8 eggs."
    off = make("16 - 3 - 4 = 8 eggs.", inline_calculator=False)
    assert off.bind_tools([calculator]).invoke("eggs?").content == "16 - 3 - 4 = 8 eggs."
    on = make("16 - 3 - 4 = 8 eggs.", " eggs.", inline_calculator=True)
    assert on.invoke("eggs?").content == "16 - 3 - 4 = 9 eggs."


def test_inline_calculator_leaves_tool_calls_and_code_alone():
    call = '<tool_call>\n{"name": "calculator", "arguments": {"expression": "2 + 2 = 5"}}\n</tool_call>'
    m = make(call, template=QWEN_LIKE)
    r = m.bind_tools([calculator]).invoke("2+2?")
    assert r.tool_calls[0]["args"] == {"expression": "2 + 2 = 5"} and len(m.seen) == 1
    code = "```python\nx = 2 + 2 = 5\n```"
    assert make(code, inline_calculator=True).invoke("code?").content == code


class Believing(Scripted):
    """Writes on from the first of its texts that starts with the prefix, like a model that
    goes on believing a number it once wrote."""

    def _generate_text(self, prepared: Prepared) -> Iterator[Piece]:
        text = next(t for t in self.script if t.startswith(prepared.prefix))
        self.seen.append(prepared)
        rest = text[len(prepared.prefix) :]
        for i in range(0, len(rest), self.piece_chars):
            yield Piece(rest[i : i + self.piece_chars])
        yield Piece("", done=True, input_tokens=11, output_tokens=len(rest), finish_reason="stop")


@pytest.mark.parametrize("piece_chars", [1, 3])
def test_inline_calculator_drops_the_digits_the_model_adds_to_an_inserted_result(piece_chars):
    # Seen on GSM8K: the calculator wrote "102", the model went on ".25" and then divided its
    # 102.25 by 3. Digits that lengthen a result are dropped and the engine restarts from the
    # text without them; a full stop after a result stays.
    script = [
        "Spent 15.75 + 20.25 + 66 = 102.25 in all. Each paid 102.25 / 3 = 34.08. Done.",
        "Spent 15.75 + 20.25 + 66 = 102 in all. Each paid 102 / 3 = 34.08. Done.",
        "Spent 15.75 + 20.25 + 66 = 102 in all. Each paid 102 / 3 = 34. Done.",
    ]
    m = Believing(model_path="fake.gguf", script=script, seen=[], piece_chars=piece_chars)
    r = m.bind_tools([calculator]).invoke("How much did each pay?")
    assert r.content == script[2]
    assert r.response_metadata["calculations"] == 2
    # Two results, each followed by a restart without the model's extra digits.
    assert [p.prefix.endswith(("= 102", "= 34")) for p in m.seen] == [False, True, False, True, False]


def test_inline_calculator_leaves_right_arithmetic_as_the_model_wrote_it_in_one_engine_run():
    # No restart when the model's results are right: the reply is exactly the one it writes
    # without the calculator (a restart re-evaluates the prompt and can change the wording).
    text = "So 3 + 4 = 7 days, 7 * 2.5 = 17.50 dollars, and 102 / 3 = 34."
    m = make(text, inline_calculator=True)
    r = m.invoke("?")
    assert r.content == text and len(m.seen) == 1 and "calculations" not in r.response_metadata


def test_inline_calculator_adds_nothing_when_the_model_writes_no_number_after_the_sign():
    m = make("So 3 + 4 = seven, done.", inline_calculator=True)
    assert m.invoke("?").content == "So 3 + 4 = seven, done." and len(m.seen) == 1


def test_a_reply_stuck_in_a_loop_is_stopped():
    looping = "본사 주소는 서울시 " + "100번길 " * 200
    m = make(looping, looping)
    r = m.invoke("본사 주소가 어디인가요?")
    assert r.response_metadata["finish_reason"] == "repetition"
    assert r.content.startswith("본사 주소는 서울시 100번길") and r.content.count("100번길") < 12
    streamed = "".join(c.content for c in m.stream("본사 주소가 어디인가요?"))
    assert streamed.count("100번길") < 12


def test_prose_and_tables_that_repeat_a_little_are_not_loops():
    table = "| 항목 | 금액 |\n|---|---|\n" + "".join(f"| 항목{i} | {i}만 원 |\n" for i in range(30)) + "|---" * 30
    m = make(table)
    r = m.invoke("표로 보여 주세요")
    assert r.content == table.strip() and r.response_metadata["finish_reason"] == "stop"
