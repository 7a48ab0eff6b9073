"""Stopping a running turn: Agent.stop, a stream closed early, an async reader that leaves.

The turn runs in LangGraph's worker threads; each test counts what the model went on to write
(or which tools ran) after the stop, not how long anything took.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import ConfigDict

from chatloom import Agent
from chatloom.agents.reply import Token
from chatloom.agents.stopping import StopSignal, StopTurn
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
    # Every tool may run: a tool the policy refused would prove nothing about stopping.
    allowed = {getattr(t, "name", ""): "allow" for t in tools or []}
    return Agent(model=model, tools=tools or [], tool_policy=allowed, checkpointer="memory"), model


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


# -- a stop while the agent loads, and on a backend that doesn't stream ------------------------

WAIT = 10  # seconds: only a bound on a broken test's hang; every wait below is on an Event


class Gate:
    """Two events: ``reached`` once a step gets to the gate, ``opened`` to let it go on."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.opened = threading.Event()

    def hold(self) -> None:
        self.reached.set()
        if not self.opened.wait(WAIT):
            raise AssertionError("the test never opened the gate")


def in_thread(run: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``run`` in a thread; the list gets what it returned or raised."""
    outcome: list[Any] = []

    def target() -> None:
        try:
            outcome.append(run())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def run_turn(agent: Agent, how: str, question: str, seen: list[Any]) -> Any:
    """One turn by ``chat`` or by ``stream``; ``seen`` gets the reply or each event as it comes."""
    if how == "chat":
        seen.append(agent.chat(question, thread_id="t"))
    else:
        for event in agent.stream(question, thread_id="t"):
            seen.append(event)


@pytest.mark.parametrize("how", ["chat", "stream"])
def test_a_stop_while_the_agent_loads_ends_the_turn_before_any_model_call(how, monkeypatch):
    import chatloom.models

    checkpointer = InMemorySaver()
    earlier = Agent(model=FakeChatModel(["Hello, Bob."]), checkpointer=checkpointer)
    earlier.chat("I am Bob.", thread_id="t")  # a turn the stopped one must leave in place

    model = FakeChatModel(["never delivered"])
    loading = Gate()

    def slow_load(model_id: str, **options: Any) -> FakeChatModel:
        loading.hold()  # as a local model does for seconds on the first turn
        return model

    monkeypatch.setattr(chatloom.models, "resolve_model", slow_load)
    agent = Agent(model="slow:model", checkpointer=checkpointer)
    seen: list[Any] = []
    turn, outcome = in_thread(lambda: run_turn(agent, how, "tell me a story", seen))
    assert loading.reached.wait(WAIT)
    assert agent.stop("t") is True  # the turn is known before its model is
    loading.opened.set()
    turn.join(WAIT)

    assert len(outcome) == 1 and isinstance(outcome[0], TurnStopped), outcome
    assert seen == []
    assert model.calls == []
    assert agent.stop("t") is False
    questions = [m.content for m in agent.history("t") if m.type == "human"]
    assert questions == ["I am Bob."]  # the earlier turn is kept; the stopped one saved nothing


class GenerateOnlyModel(BaseChatModel):
    """A backend with no streaming: only ``_generate``. Its first call waits at ``gate``."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[AIMessage]
    gate: Gate
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "generate-only"

    def bind_tools(self, tools: Any, **kwargs: Any) -> GenerateOnlyModel:
        return self  # the replies are scripted; binding changes nothing

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        self.calls += 1
        if self.calls == 1:
            self.gate.hold()  # a whole answer written in one native call
        return ChatResult(generations=[ChatGeneration(message=self.replies.pop(0))])


ANSWER = AIMessage(content="The whole answer.")
TOOL_CALL = AIMessage(content="", tool_calls=[{"name": "record", "args": {"note": "x"}, "id": "c1"}])


@pytest.mark.parametrize("first", [ANSWER, TOOL_CALL], ids=["answer", "tool-call"])
@pytest.mark.parametrize("how", ["chat", "stream"])
def test_a_model_that_does_not_stream_is_stopped_when_its_call_returns(how, first):
    ran: list[str] = []

    @tool
    def record(note: str) -> str:
        """Write a note down."""
        ran.append(note)
        return "noted"

    gate = Gate()
    model = GenerateOnlyModel(replies=[first, AIMessage(content="Here I am.")], gate=gate)
    # "allow": the policy would refuse a tool with side effects, and a refusal proves nothing here
    agent = Agent(model=model, tools=[record], tool_policy={"record": "allow"}, checkpointer="memory")
    seen: list[Any] = []
    turn, outcome = in_thread(lambda: run_turn(agent, how, "write it down", seen))
    assert gate.reached.wait(WAIT)
    assert agent.stop("t") is True
    gate.opened.set()
    turn.join(WAIT)

    assert len(outcome) == 1 and isinstance(outcome[0], TurnStopped), outcome
    assert seen == []  # nothing of the reply: no answer, no token, no tool call
    assert ran == []  # the reply's tool call never ran
    assert model.calls == 1  # and no further model call was made
    assert agent.chat("are you there?", thread_id="t").answer == "Here I am."


def test_a_stop_after_the_last_step_is_too_late_and_says_so():
    signal = StopSignal()
    signal.finish()  # the turn's last step is done
    assert signal.stop() is False
    signal.check()  # nothing raised: the answer stands

    stopped = StopSignal()
    assert stopped.stop() is True
    with pytest.raises(StopTurn):  # a stop that came first ends the turn at its end, at the latest
        stopped.finish()
    assert stopped.stop() is False


class SearchLog:
    """A memory that finds nothing and notes each search: which turns got to their recall step."""

    def __init__(self) -> None:
        self.searched: list[str] = []

    def recall(self, query: str, **options: Any) -> list[Any]:
        self.searched.append(query)
        return []


def test_a_turn_waiting_for_the_thread_is_stopped_with_the_one_running(monkeypatch):
    gate = Gate()
    model = GenerateOnlyModel(replies=[ANSWER, AIMessage(content="Here I am.")], gate=gate)
    memory = SearchLog()
    agent = Agent(model=model, memory=memory, grounding="off", checkpointer="memory").load()
    queued = threading.Event()
    take_lock = agent._turn_lock
    callers: list[str] = []

    def turn_lock(graph: Any, thread_id: str) -> Any:
        callers.append(thread_id)
        if len(callers) == 2:  # the second turn is registered and about to wait for the first
            queued.set()
        return take_lock(graph, thread_id)

    monkeypatch.setattr(agent, "_turn_lock", turn_lock)
    running, first = in_thread(lambda: agent.chat("one", thread_id="t"))
    assert gate.reached.wait(WAIT)
    waiting, second = in_thread(lambda: agent.chat("two", thread_id="t"))
    assert queued.wait(WAIT)
    assert agent.stop("t") is True
    gate.opened.set()
    running.join(WAIT)
    waiting.join(WAIT)

    assert [type(o) for o in first + second] == [TurnStopped, TurnStopped]
    assert model.calls == 1  # the waiting turn made no model call
    assert memory.searched == ["one"]  # nor any step: it stopped before its recall step
    assert agent.chat("are you there?", thread_id="t").answer == "Here I am."
