"""The openai: backend against a real OpenAI-compatible HTTP server on 127.0.0.1.

The server (openai_replay.py) replays recorded chat.completions JSON and SSE streams; nothing
here mocks the client. It counts the requests it saw, so retries are checked on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest
from langchain_core.messages import AIMessageChunk
from openai_replay import ReplayServer, Reply, fixture, isolate_openai_env, replay_model
from stub_tools import calculator, search

from chatloom.config import Settings
from chatloom.errors import BackendError, ConfigError, ModelNotFound
from chatloom.models import resolve_model
from chatloom.models.openai_backend import ChatloomOpenAI

SECRET = "sk-test-THIS-KEY-MUST-NEVER-LEAK-0123456789"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    isolate_openai_env(monkeypatch, tmp_path)


@pytest.fixture()
def srv():
    with ReplayServer() as server:
        yield server


def make(srv, **options):
    options.setdefault("max_retries", 2)
    return replay_model(srv, **options)


def merged(chunks):
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    return full


# -- replies ----------------------------------------------------------------------------------


def test_plain_reply_with_usage_and_cost(srv):
    srv.add(Reply(body=fixture("chat_plain.json")))
    reply = make(srv).invoke("What is 17*23?")
    assert reply.content == "17 × 23 = 391."
    assert reply.usage_metadata["input_tokens"] == 25
    assert reply.usage_metadata["output_tokens"] == 9
    # gpt-4o-mini: $0.15 in / $0.60 out per 1M tokens
    assert reply.response_metadata["cost_usd"] == pytest.approx((25 * 0.15 + 9 * 0.60) / 1e6)
    sent = srv.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["model"] == "gpt-4o-mini"
    assert sent.body["messages"] == [{"role": "user", "content": "What is 17*23?"}]
    # A custom endpoint without OPENAI_API_KEY gets a dummy key, not an error.
    assert sent.headers["authorization"] == "Bearer sk-no-key-required"


def test_native_tool_calls(srv):
    srv.add(Reply(body=fixture("chat_tool_calls.json")))
    reply = make(srv).bind_tools([calculator, search]).invoke("What is 17*23?")
    assert reply.tool_calls == [
        {
            "name": "calculator",
            "args": {"expression": "17*23"},
            "id": "call_Xk3lq9Rw2bB0c1dE4fG5hI6j",
            "type": "tool_call",
        }
    ]
    assert [t["function"]["name"] for t in srv.requests[0].body["tools"]] == ["calculator", "search"]
    # 64 of 81 prompt tokens were cached, at the cached-input price
    assert reply.response_metadata["cost_usd"] == pytest.approx((17 * 0.15 + 64 * 0.075 + 17 * 0.60) / 1e6)


def test_unknown_model_price_means_no_cost(srv):
    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")))
    reply = resolve_model("openai:qwen-local", base_url=srv.base_url).invoke("hi")
    assert "cost_usd" not in reply.response_metadata
    assert reply.usage_metadata["total_tokens"] == 204


def test_sse_stream_of_tokens_with_usage(srv):
    srv.add(Reply(sse=fixture("stream_text.sse"), chunk_pause=0.01))
    chunks = list(make(srv).stream("What is 17*23?"))
    texts = [c.content for c in chunks if c.content]
    assert texts == ["17", " ×", " 23", " =", " ", "391", "."]
    full = merged(chunks)
    assert full.content == "17 × 23 = 391."
    assert full.usage_metadata["output_tokens"] == 7
    assert full.response_metadata["cost_usd"] == pytest.approx((25 * 0.15 + 7 * 0.60) / 1e6)
    body = srv.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_sse_stream_of_tool_call_chunks(srv):
    srv.add(Reply(sse=fixture("stream_tool_calls.sse")))
    chunks = list(make(srv).bind_tools([calculator]).stream("What is 17*23?"))
    assert sum(1 for c in chunks if c.tool_call_chunks) == 8
    full = merged(chunks)
    assert full.tool_calls[0]["name"] == "calculator"
    assert full.tool_calls[0]["args"] == {"expression": "17*23"}
    assert full.tool_calls[0]["id"] == "call_Q1w2E3r4T5y6U7i8O9p0Asdf"
    assert full.usage_metadata["total_tokens"] == 98


# -- tool calls a local server left in the text ---------------------------------------------


def test_tool_call_in_text_is_recovered(srv):
    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")))
    reply = make(srv).bind_tools([calculator]).invoke("What is 17*23?")
    assert reply.content == ""
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("calculator", {"expression": "17*23"})]
    assert reply.tool_calls[0]["id"].startswith("call_")


def test_tool_call_in_streamed_text_is_recovered_and_never_shown(srv):
    srv.add(Reply(sse=fixture("stream_llamacpp_text_toolcall.sse")))
    chunks = list(make(srv).bind_tools([calculator]).stream("What is 17*23?"))
    shown = "".join(c.content for c in chunks)
    assert "tool_call" not in shown and "{" not in shown
    assert shown.startswith("I will compute it.")
    full = merged(chunks)
    assert [(c["name"], c["args"]) for c in full.tool_calls] == [("calculator", {"expression": "17*23"})]
    assert full.usage_metadata["total_tokens"] == 210


def test_prose_with_brackets_keeps_streaming(srv):
    from chatloom.models.toolcalls import CallHoldBack

    holder = CallHoldBack(["calculator"])
    shown = [holder.feed(p) for p in ["Paris [1", "] is the capital [2].", " Done."]]
    assert shown == ["Paris [1", "] is the capital [2].", " Done."]
    holder = CallHoldBack(["calculator"])
    shown = [holder.feed(p) for p in ["Calling:", " [", '{"name": "calculator"}]']]
    assert shown == ["Calling:", " ", ""] and holder.rest().startswith("[{")


def test_recovery_only_for_bound_tools_and_can_be_switched_off(srv):
    text = fixture("llamacpp_text_toolcall.json")["choices"][0]["message"]["content"]
    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")))
    assert make(srv).invoke("x").content == text  # no tools bound: text stays text
    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")))
    assert make(srv).bind_tools([search]).invoke("x").tool_calls == []  # not a bound tool
    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")))
    off = make(srv, recover_tool_calls=False).bind_tools([calculator]).invoke("x")
    assert off.tool_calls == [] and off.content == text


# -- resilience -------------------------------------------------------------------------------


def test_429_then_success_is_retried_with_backoff(srv):
    srv.add(
        Reply(429, fixture("error_429.json")),
        Reply(429, fixture("error_429.json")),
        Reply(body=fixture("chat_plain.json")),
    )
    start = time.monotonic()
    reply = make(srv, max_retries=2).invoke("hi")
    assert reply.content == "17 × 23 = 391."
    assert len(srv.requests) == 3
    gaps = [b.at - a.at for a, b in zip(srv.requests, srv.requests[1:])]
    # exponential backoff: ~0.5 s then ~1 s (each less up to 25% jitter)
    assert gaps[0] >= 0.35 and gaps[1] >= 0.7 and gaps[1] > gaps[0]
    assert time.monotonic() - start < 5


def test_retry_after_header_is_honoured(srv):
    srv.add(
        Reply(429, fixture("error_429.json"), headers={"retry-after-ms": "50"}), Reply(body=fixture("chat_plain.json"))
    )
    make(srv).invoke("hi")
    assert len(srv.requests) == 2
    assert srv.requests[1].at - srv.requests[0].at < 0.35


def test_429_exhausted_is_one_clear_line(srv):
    srv.add(*[Reply(429, fixture("error_429.json"), headers={"retry-after-ms": "10"})] * 2)
    with pytest.raises(BackendError) as info:
        make(srv, max_retries=1).invoke("hi")
    assert len(srv.requests) == 2
    msg = str(info.value)
    assert "rate limited" in msg and "HTTP 429" in msg and "after 2 attempts" in msg
    assert "\n" not in msg


def test_500_is_retried_then_a_clear_error(srv):
    srv.add(*[Reply(500, fixture("error_500.json"))] * 3)
    with pytest.raises(BackendError) as info:
        make(srv, max_retries=2).invoke("hi")
    assert len(srv.requests) == 3
    msg = str(info.value)
    assert f"{srv.base_url!r} failed with HTTP 500 after 3 attempts" in msg
    assert "Traceback" not in msg and "\n" not in msg
    assert info.value.__cause__ is None


def test_500_then_success(srv):
    srv.add(Reply(503, fixture("error_500.json")), Reply(body=fixture("chat_plain.json")))
    assert make(srv).invoke("hi").content == "17 × 23 = 391."
    assert len(srv.requests) == 2


def test_500_on_a_stream_is_a_clear_error(srv):
    srv.add(*[Reply(500, fixture("error_500.json"))] * 2)
    with pytest.raises(BackendError, match="HTTP 500 after 2 attempts"):
        list(make(srv, max_retries=1).stream("hi"))


def test_401_bad_key_is_not_retried_and_never_shows_the_key(srv, caplog):
    srv.add(Reply(401, fixture("error_401.json")))  # the server echoes the key back
    model = make(srv, api_key=SECRET)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as info:
        model.invoke("hi")
    assert len(srv.requests) == 1
    assert srv.requests[0].headers["authorization"] == f"Bearer {SECRET}"
    msg = str(info.value)
    assert msg == f"{srv.base_url!r} rejected the API key (HTTP 401) — set a valid OPENAI_API_KEY"
    for text in (msg, repr(info.value), repr(model), str(model), caplog.text, str(model.model_dump())):
        assert SECRET not in text and "NEVER-LEAK" not in text


def test_404_model_not_found(srv):
    srv.add(Reply(404, fixture("error_404_model.json")))
    with pytest.raises(BackendError) as info:
        resolve_model("openai:gpt-nope", base_url=srv.base_url).invoke("hi")
    assert len(srv.requests) == 1
    msg = str(info.value)
    assert msg.startswith(f"model 'gpt-nope' not found at {srv.base_url!r} (HTTP 404")
    assert "/models" in msg


def test_timeout_is_per_call_and_retried(srv):
    srv.add(*[Reply(delay=2.0, body=fixture("chat_plain.json"))] * 2)
    start = time.monotonic()
    with pytest.raises(BackendError) as info:
        make(srv, timeout=0.3, max_retries=1).invoke("hi")
    elapsed = time.monotonic() - start
    assert elapsed < 1.9  # never waited for the slow server
    assert len(srv.requests) == 2
    assert str(info.value).startswith(f"no reply from {srv.base_url!r} within 0.3 s after 2 attempts")


def test_timeout_can_be_set_per_invoke(srv):
    srv.add(Reply(delay=2.0, body=fixture("chat_plain.json")))
    model = make(srv, timeout=30, max_retries=0)
    start = time.monotonic()
    with pytest.raises(BackendError, match=r"within 0.25 s —"):
        model.invoke("hi", timeout=0.25)
    assert time.monotonic() - start < 1.5


def test_dead_server_names_the_url():
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    model = resolve_model("openai:gpt-4o-mini", base_url=url, max_retries=0)
    with pytest.raises(BackendError) as info:
        model.invoke("hi")
    assert str(info.value) == (
        f"cannot connect to {url!r} (connection refused) — start the "
        "server, or fix CHATLOOM_OPENAI_BASE_URL / OPENAI_BASE_URL"
    )
    with pytest.raises(BackendError, match="connection refused"):
        list(model.stream("hi"))


def test_connection_dropped_mid_stream(srv):
    srv.add(Reply(sse=fixture("stream_text.sse"), cut_after=3))
    got = []
    with pytest.raises(BackendError) as info:
        for chunk in make(srv, max_retries=0).stream("hi"):
            got.append(chunk.content)
    assert "17" in got  # the reply had started
    assert str(info.value).startswith(f"the connection to {srv.base_url!r} broke during the reply")


# -- async ------------------------------------------------------------------------------------


def test_async_invoke_and_stream(srv):
    srv.add(Reply(body=fixture("chat_plain.json")), Reply(sse=fixture("stream_llamacpp_text_toolcall.sse")))
    model = make(srv)

    async def go():
        reply = await model.ainvoke("hi")
        chunks = [c async for c in model.bind_tools([calculator]).astream("x")]
        return reply, chunks

    reply, chunks = asyncio.run(go())
    assert reply.response_metadata["cost_usd"] > 0
    full = merged(chunks)
    assert isinstance(full, AIMessageChunk)
    assert full.tool_calls[0]["args"] == {"expression": "17*23"}


def test_async_errors_are_translated(srv):
    srv.add(Reply(401, fixture("error_401.json")))
    with pytest.raises(BackendError, match="HTTP 401"):
        asyncio.run(make(srv).ainvoke("hi"))


# -- configuration ----------------------------------------------------------------------------


def test_base_url_from_settings_and_env(srv, monkeypatch):
    srv.add(
        Reply(body=fixture("chat_plain.json")),
        Reply(body=fixture("chat_plain.json")),
        Reply(body=fixture("chat_plain.json")),
    )
    via_settings = resolve_model("openai:gpt-4o-mini", settings=Settings(openai_base_url=srv.base_url))
    assert via_settings.invoke("a").content
    monkeypatch.setenv("CHATLOOM_OPENAI_BASE_URL", srv.base_url)
    assert resolve_model("openai:gpt-4o-mini").invoke("b").content
    monkeypatch.delenv("CHATLOOM_OPENAI_BASE_URL")
    monkeypatch.setenv("OPENAI_BASE_URL", srv.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    model = resolve_model("openai:gpt-4o-mini")
    assert isinstance(model, ChatloomOpenAI)
    assert model.invoke("c").content
    assert len(srv.requests) == 3
    assert srv.requests[2].headers["authorization"] == f"Bearer {SECRET}"


def test_missing_key_without_base_url_is_a_config_error():
    with pytest.raises(ConfigError) as info:
        resolve_model("openai:gpt-4o-mini")
    assert "OPENAI_API_KEY is not set" in str(info.value)
    assert "CHATLOOM_OPENAI_BASE_URL" in str(info.value)


@pytest.mark.parametrize("bad", ["localhost:8000", "ftp://x/v1", "not a url"])
def test_bad_base_url_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="is not an http"):
        resolve_model("openai:gpt-4o-mini", base_url=bad)


def test_empty_model_name():
    with pytest.raises(ModelNotFound, match="needs a model name"):
        resolve_model("openai:", base_url="http://127.0.0.1:1/v1")


# -- through the agent ------------------------------------------------------------------------


def test_agent_turn_over_http_with_recovered_tool_call(srv):
    """A whole chatloom turn: text tool call -> calculator -> answer, usage summed."""
    from chatloom import Agent

    srv.add(Reply(body=fixture("llamacpp_text_toolcall.json")), Reply(body=fixture("chat_plain.json")))
    agent = Agent(model=make(srv), tools=[calculator], memory=False)
    reply = agent.chat("How many seats are in 17 rows of 23?")
    assert "391" in reply.answer
    assert [step.name for step in reply.tool_steps] == ["calculator"]
    assert len(srv.requests) == 2
    second = srv.requests[1].body["messages"]
    assert second[-1]["role"] == "tool" and "391" in second[-1]["content"]
    # llama_cpp.server rejects `content: null` on the assistant's tool-call turn
    assistant = [m for m in second if m["role"] == "assistant"]
    assert assistant[-1]["content"] == "" and assistant[-1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert reply.usage.input_tokens == 180 + 25
    assert reply.usage.cost_usd == pytest.approx((25 * 0.15 + 9 * 0.60) / 1e6)


def test_agent_stream_over_http_shows_no_call_text(srv):
    """Agent.stream with a server that writes the call as text (recorded llama.cpp + Qwen)."""
    from chatloom import Agent
    from chatloom.agents.reply import AnswerEvent, Token, ToolCallEvent

    srv.add(Reply(sse=fixture("stream_llamacpp_qwen_toolcall_real.sse")), Reply(sse=fixture("stream_text.sse")))
    agent = Agent(model=make(srv), tools=[calculator], memory=False)
    events = list(agent.stream("How many seats are in 17 rows of 23?"))
    calls = [e for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.name, c.args) for c in calls] == [("calculator", {"expression": "17*23"})]
    shown = "".join(e.text for e in events if isinstance(e, Token))
    assert shown == "17 × 23 = 391."
    answer = events[-1]
    assert isinstance(answer, AnswerEvent) and answer.reply.usage.output_tokens == 7
    assert all(r.body["stream"] is True for r in srv.requests)
