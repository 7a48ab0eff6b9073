"""Stopping a running turn: Agent.stop, a stream closed early, an async reader that leaves.

The turn runs in LangGraph's worker threads; each test counts what the model went on to write
(or which tools ran) after the stop, not how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from langchain_core.tools import tool

from chatloom import Agent
from chatloom.agents.reply import Token
from chatloom.errors import TurnStopped
from chatloom.testing import FakeChatModel, tool_call

WORDS = 60


class CountingModel(FakeChatModel):
    """Streams its replies word by word with a short pause, keeping every word it wrote."""

    delay: float = 0.02
    written: list[str] = []

    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        for chunk in super()._stream(*args, **kwargs):
            time.sleep(self.delay)
            self.written.append(str(chunk.message.content))
            yield chunk


def long_story() -> str:
    return " ".join(f"word{i}" for i in range(WORDS))


def counting_agent(*replies: Any, tools: list[Any] | None = None) -> tuple[Agent, CountingModel]:
    model = CountingModel(list(replies), written=[])
    return Agent(model=model, tools=tools or [], checkpointer="memory"), model


def test_closing_a_stream_early_stops_the_model():
    agent, model = counting_agent(long_story())
    stream = agent.stream("tell me a story", thread_id="t")
    for event in stream:
        if isinstance(event, Token) and len(model.written) >= 3:
            break
    stream.close()  # returns once the turn's worker is done
    assert 3 <= len(model.written) < 10, model.written
    assert agent.stop("t") is False  # nothing left running on the thread


def test_stop_ends_the_turn_with_turn_stopped_and_the_thread_goes_on():
    agent, model = counting_agent(long_story(), "Here I am.")
    with pytest.raises(TurnStopped, match="stopped before its answer"):
        for event in agent.stream("tell me a story", thread_id="t"):
            if isinstance(event, Token):
                assert agent.stop("t") is True
    assert len(model.written) < 10, model.written
    assert agent.chat("are you there?", thread_id="t").answer == "Here I am."
    questions = [m.content for m in agent.history("t") if m.type == "human"]
    assert questions == ["tell me a story", "are you there?"]  # the stopped question is kept
    assert agent.stop("t") is False


def test_a_stopped_turn_runs_no_further_tool_call():
    ran: list[str] = []

    @tool
    def record(note: str) -> str:
        """Write a note down."""
        ran.append(note)
        return "noted"

    def stop_then_call(messages: Any) -> Any:
        agent.stop("t")  # as Ctrl-C would, while the model is writing its tool call
        return tool_call("record", note="never")

    agent, _ = counting_agent(stop_then_call, "done", tools=[record])
    with pytest.raises(TurnStopped):
        agent.chat("write it down", thread_id="t")
    assert ran == []
    assert agent.stop("t") is False


def test_stopping_one_thread_leaves_another_alone():
    agent, _ = counting_agent("first answer")
    assert agent.stop("nobody") is False
    assert agent.chat("hello", thread_id="other").answer == "first answer"


def test_an_async_reader_that_leaves_stops_the_turn():
    agent, model = counting_agent(long_story())

    async def read_a_little() -> None:
        events = agent.astream("tell me a story", thread_id="t")
        async for event in events:
            if isinstance(event, Token) and len(model.written) >= 3:
                break
        await events.aclose()  # type: ignore[attr-defined]

    asyncio.run(read_a_little())
    for _ in range(200):  # the worker thread ends on its own; wait for it (at most 10 s)
        if not agent.stop("t"):
            break
        time.sleep(0.05)
    assert len(model.written) < 20, model.written
