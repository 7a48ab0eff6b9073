"""A scripted chat model for tests: yours and ours.

>>> from chatloom.testing import FakeChatModel, tool_call
>>> model = FakeChatModel([tool_call("calculator", expression="17*23"), "17*23 is 391."])
>>> from chatloom import Agent
>>> from chatloom.tools.calculator import calculator
>>> Agent(model=model, tools=[calculator], checkpointer="memory").chat("How many seats are in 17 rows of 23?").answer
'17*23 is 391.'

Every call returns a *new* message object with a fresh id: LangGraph's ``add_messages`` reducer
treats a reused id as an update of the old message, which silently drops turns.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

Reply = str | AIMessage | Callable[[list[BaseMessage]], "str | AIMessage"] | BaseException


def tool_call(name: str, /, **args: Any) -> AIMessage:
    """A scripted reply that calls tool ``name`` with ``args``."""
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": "", "type": "tool_call"}])


class FakeChatModel(BaseChatModel):
    """Replays queued replies in order; each reply is text, an AIMessage, a callable or an error.

    - ``str``: a plain answer (streamed word by word).
    - ``AIMessage``: returned as a copy with a fresh id (use :func:`tool_call` for tool calls).
    - a callable: called with the messages the model was given; returns either of the above.
    - an exception instance: raised, to test backend failures.

    When the queue runs dry, ``default`` is used (``None`` raises an AssertionError, so a test
    notices an unexpected extra call). ``calls`` records the messages of every call, and
    ``tool_choices`` the ``tool_choice`` each call was bound with (``None`` for "auto").
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    replies: list[Any] = Field(default_factory=list)
    default: Any = None
    _queue: deque = PrivateAttr()
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    bound_tools: list[str] = Field(default_factory=list)
    tool_choices: list[Any] = Field(default_factory=list)

    def __init__(self, replies: Sequence[Reply] = (), **kwargs: Any) -> None:
        super().__init__(replies=list(replies), **kwargs)
        self._queue = deque(self.replies)

    def enqueue(self, *replies: Reply) -> FakeChatModel:
        """Queue more replies; returns the model so calls chain."""
        self._queue.extend(replies)
        return self

    @property
    def _llm_type(self) -> str:
        return "chatloom-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeChatModel:
        # The same object, so the queue and the call log are shared with the caller's handle.
        self.bound_tools = [getattr(t, "name", str(t)) for t in tools]
        choice = kwargs.get("tool_choice")
        return self if choice in (None, "auto") else self.bind(tool_choice=choice)  # type: ignore[return-value]

    def _next(self, messages: list[BaseMessage], tool_choice: Any = None) -> AIMessage:
        with self._lock:
            self.calls.append(list(messages))
            self.tool_choices.append(tool_choice)
            reply = self._queue.popleft() if self._queue else self.default
        if reply is None:
            raise AssertionError(f"FakeChatModel ran out of replies after {len(self.calls) - 1} calls")
        if callable(reply) and not isinstance(reply, BaseException):
            reply = reply(list(messages))
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, str):
            reply = AIMessage(content=reply)
        calls = [{**c, "id": c.get("id") or f"call_{uuid.uuid4().hex[:12]}"} for c in reply.tool_calls]
        prompt_tokens = sum(len(str(m.content).split()) for m in messages)
        completion_tokens = len(str(reply.content).split()) + len(calls)
        return AIMessage(
            content=reply.content,
            tool_calls=calls,
            id=f"fake-{uuid.uuid4().hex}",
            usage_metadata={
                "input_tokens": prompt_tokens,
                "output_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._next(messages, kwargs.get("tool_choice")))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._next(messages, kwargs.get("tool_choice"))
        text = str(message.content)
        pieces = [w for w in text.split(" ")]
        for i, piece in enumerate(pieces):
            token = piece if i == len(pieces) - 1 else piece + " "
            if not token:
                continue
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
            if run_manager:
                run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                id=message.id,
                tool_call_chunks=[
                    {"name": c["name"], "args": _json(c["args"]), "id": c["id"], "index": i, "type": "tool_call_chunk"}
                    for i, c in enumerate(message.tool_calls)
                ],
                usage_metadata=message.usage_metadata,
                chunk_position="last",
            )
        )


def _json(args: dict) -> str:
    import json

    return json.dumps(args)


def _echo(messages: list[BaseMessage]) -> str:
    last = next((m for m in reversed(messages) if isinstance(m, HumanMessage)), None)
    return f"You said: {last.content}" if last else "Hello."


def create_fake_model(name: str = "echo", **options: Any) -> FakeChatModel:
    """Factory behind the ``fake:`` model scheme; ``fake:echo`` repeats the last user message."""
    if name != "echo":
        from chatloom.errors import ModelNotFound

        raise ModelNotFound(f"unknown fake model {name!r}", "use 'fake:echo'")
    return FakeChatModel(default=_echo, **options)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a test server."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_serving(process: Any, url: str, *, timeout: float = 60, what: str = "the server") -> None:
    """Poll ``url`` until it answers 200 while ``process`` (a ``subprocess.Popen``) runs.

    Raises RuntimeError when the process exits first, or kills it and raises when ``timeout``
    seconds pass: a test server that never comes up fails the test instead of hanging it.
    """
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode} before answering {url}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")
        time.sleep(0.2)


def stop_process(process: Any, *, timeout: float = 15) -> None:
    """Stop a test server process (a ``subprocess.Popen``): politely, then for sure.

    SIGTERM lets it close its stores; one that is still running after ``timeout`` seconds is
    killed, so a stuck server never hangs the test run.
    """
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
