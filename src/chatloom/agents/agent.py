"""The :class:`Agent` facade: the one object most users touch."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from chatloom.agents.reply import (
    AnswerEvent,
    ApprovalRequired,
    Citation,
    Event,
    EventStream,
    GroundingMode,
    PendingApproval,
    Reply,
    Token,
    ToolCallEvent,
    ToolResultEvent,
    ToolStep,
    Usage,
)
from chatloom.errors import ConfigError, EmptyQuestion, InvalidHistory, QuestionTooLong, ThreadExists, TurnStopped
from chatloom.memory.base import display_source

if TYPE_CHECKING:  # the heavy imports stay lazy: a REPL shows its prompt before any of them
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
    from langchain_core.runnables import RunnableConfig
    from langchain_core.tools import BaseTool
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.types import Command, Durability, StreamMode

    from chatloom.agents.graph import ChatRunnable, TurnContext, TurnGraph, TurnState
    from chatloom.agents.stopping import StopSignal
    from chatloom.config import Settings
    from chatloom.mcp.config import MCPServerSpec
    from chatloom.memory.base import Memory
    from chatloom.models.profiles import ModelProfile
    from chatloom.prompts.template import PromptTemplate
    from chatloom.tools.policy import Approver, Rule, ToolPolicy

log = logging.getLogger(__name__)

_CITE = re.compile(r"\[(\d{1,3})\]")
# A turn is checkpointed when it ends (or fails), not after every step: a half-finished turn
# never lands in the thread, and the per-turn overhead stays below create_agent's.
_DURABILITY: Durability = "exit"


@dataclass(frozen=True)
class _Services:
    """What a loaded agent runs its turns with: built once, on the first turn or :meth:`Agent.load`."""

    profile: ModelProfile
    graph: TurnGraph
    model: ChatRunnable  # every offered tool bound
    first_model: ChatRunnable | None  # bound to force the first call (tool_choice), or None
    plain_model: BaseChatModel  # no tools bound
    answer_model: ChatRunnable  # only the profile's inline tools bound
    tools: dict[str, BaseTool]  # every tool a call may name
    offered: frozenset[str]  # the tools the policy lets the model see
    render_prompt: Callable[[list[BaseTool]], list[BaseMessage]] | None
    split_reasoning: Callable[[str], tuple[str, str]]
    memory: Memory | None
    policy: ToolPolicy
    bound: dict[frozenset[str], ChatRunnable] = field(default_factory=dict)  # offered subset -> model (_turn_tools)


class Agent:
    """A chatbot: a model, a prompt, tools and memory, run turn by turn through the graph.

    >>> from chatloom import Agent
    >>> from chatloom.testing import FakeChatModel
    >>> agent = Agent(model=FakeChatModel(["Hi there!"]), checkpointer="memory")
    >>> agent.chat("Hello", thread_id="t1").answer
    'Hi there!'

    ``model`` is a model id (``"local:qwen2.5-coder-0.5b"``, ``"openai:gpt-4o-mini"``, ...) or
    any langchain-core chat model; ``None`` takes the configured default. ``prompt`` is a
    template name or path (``None`` means no system prompt). ``tools`` are langchain tools,
    plain typed functions with docstrings, or names of registered tools. ``memory`` is a
    :class:`chatloom.memory.base.Memory`, ``True`` for the default store, the name of an installed
    ``chatloom.memory`` plugin, or ``None``.
    ``checkpointer`` is a LangGraph checkpointer, ``"memory"`` for an in-process one, or
    ``None`` for the configured store in the data dir (so conversations survive restarts).
    ``tool_choice="required"`` (or a tool's name) makes each turn's first model call a tool
    call; later calls are free, so the model can answer from the result. ``approver`` decides
    tool calls the policy marks "ask": a callable asked in-process (the REPL's y/N), or
    ``"pause"`` (:data:`chatloom.tools.policy.PAUSE`) to pause the turn, durably, until
    :meth:`resume` (see :meth:`pending_approvals`; this needs a persistent checkpointer).
    ``name`` labels the agent in its paused turns (a server resumes them with the agent of that
    name). ``conversation_memory`` stores
    lasting facts per ``user_id`` and recalls them in later threads. Threads longer than
    ``history_tokens`` (approximate) have their older turns summarised by the model.
    ``grounding`` (default ``"cite"`` when the agent has memory) routes each turn by meaning
    (``Reply.route``): greetings, tasks on the user's text and calculations get the model's own
    answer; a knowledge question is answered from the passages about it, checked sentence by
    sentence: backed sentences are cited as ``[n]``, and an answer nothing backs becomes the
    passage sentence that answers the question or "I couldn't find this in the knowledge base"
    in the user's language; ``Reply.grounded`` and ``Reply.unsupported`` report the outcome.
    ``"strict"`` also declines tasks that bring no text of their own (a company FAQ bot);
    ``"off"`` (or False) checks nothing. ``mcp_servers`` (``chatloom.mcp.config.MCPServerSpec``,
    plus any in ``chatloom.toml``) add MCP servers' tools as ``server.tool``; they start when the
    agent loads and stop with :meth:`close` (or ``with Agent(...) as agent:``).
    """

    def __init__(
        self,
        model: str | BaseChatModel | None = None,
        prompt: str | PromptTemplate | None = None,
        tools: Sequence[str | BaseTool | Callable[..., Any]] = (),
        *,
        memory: Memory | bool | str | None = None,
        max_steps: int | None = None,
        tool_choice: str = "auto",
        tool_policy: dict[str, Rule] | None = None,
        approver: Approver | Literal["pause"] | None = None,
        variables: dict[str, Any] | None = None,
        workspace: str | Path | None = None,
        namespace: str | None = None,
        recall_k: int = 4,
        conversation_memory: bool = False,
        history_tokens: int = 3000,
        grounding: bool | GroundingMode | None = None,
        checkpointer: BaseCheckpointSaver | Literal["memory"] | None = None,
        settings: Settings | None = None,
        mcp_servers: Sequence[MCPServerSpec] = (),
        name: str | None = None,
    ) -> None:
        from chatloom.config import get_settings

        self.settings = settings or get_settings()
        self.workspace = Path(workspace) if workspace else None
        self._model_spec = model if model is not None else self.settings.model
        self._prompt_spec = prompt
        self._tool_specs = list(tools)
        self._memory_spec = memory
        self.max_steps = max_steps if max_steps is not None else self.settings.max_steps
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1, got {self.max_steps!r}")
        self.tool_choice = tool_choice
        self.tool_policy = dict(tool_policy or {})
        self.approver = approver
        self.name = name
        self.variables = dict(variables or {})
        self.namespace = namespace
        self.recall_k = recall_k
        self.conversation_memory = conversation_memory
        self.history_tokens = history_tokens
        if isinstance(grounding, str) and grounding not in ("strict", "cite", "off"):
            raise ConfigError(f"grounding must be 'strict', 'cite', 'off', True or False, got {grounding!r}")
        self.grounding = grounding
        self._checkpointer_spec = checkpointer
        self._mcp_specs = list(mcp_servers)  # plus chatloom.toml's; started when the agent loads
        self._mcp: Any = None
        self._lock = threading.Lock()
        self._ready: _Services | None = None
        # thread id -> the stop switches of its turns, from before the agent loads until they end
        # (see stop). Reentrant: stop() may run in a signal handler on a thread that holds it.
        self._running: dict[str, list[StopSignal]] = {}
        self._running_lock = threading.RLock()

    @classmethod
    def from_spec(cls, path: str | Path, **overrides: Any) -> Agent:
        """Build an agent from an ``agents/*.yaml`` spec; keyword arguments override it."""
        from chatloom.agents.spec import load_spec

        spec = load_spec(path)
        workspace = spec.workspace
        kwargs: dict[str, Any] = {
            "model": spec.model,
            "prompt": spec.prompt,
            "tools": list(spec.tools),
            "memory": True if spec.memory.enabled else None,
            "max_steps": spec.max_steps,
            "tool_choice": spec.tool_choice,
            "tool_policy": dict(spec.tool_policy),
            "variables": dict(spec.variables),
            "workspace": workspace,
            "namespace": spec.memory.namespace or spec.name,
            "recall_k": spec.memory.k,
            "conversation_memory": spec.memory.enabled and spec.memory.conversation,
            # None: "cite" whenever memory is on; a spec may ask for "strict" or "off".
            "grounding": spec.memory.grounding if spec.memory.enabled and spec.memory.grounding is not True else None,
            "mcp_servers": list(spec.mcp_servers),
            "name": spec.name,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- set-up, done once and lazily so a REPL can show its prompt first ----------------------

    def load(self) -> Agent:
        """Resolve the model, prompt, tools, memory and store now instead of on the first turn."""
        self._services()
        return self

    def _services(self) -> _Services:
        with self._lock:
            if self._ready is None:
                self._ready = self._build()
            return self._ready

    def _build(self) -> _Services:
        from chatloom.agents.graph import build_graph

        memory = self._resolve_memory()
        tools = self._ready_tools = self._resolve_tools(memory)
        policy = self._resolve_policy()
        offered = _offered_tools(tools, policy)
        plain_model = self._resolve_model()
        model = plain_model.bind_tools(offered) if offered else plain_model
        first_model = self._first_model(plain_model, offered)
        profile = self._profile(plain_model)
        render_prompt, split = self._resolve_prompt(profile.few_shot)
        # Inline tools run mid-generation without a call: only those the policy lets run.
        inline = [t for t in offered if t.name in profile.inline_tools]
        checkpointer = self._resolve_checkpointer()
        if policy.pauses:
            _check_can_pause(checkpointer)
        return _Services(
            profile=profile,
            graph=build_graph(checkpointer),
            model=model,
            first_model=first_model,
            plain_model=plain_model,
            answer_model=plain_model.bind_tools(inline) if inline else plain_model,
            tools={t.name: t for t in tools},
            offered=frozenset(t.name for t in offered),
            render_prompt=render_prompt,
            split_reasoning=split,
            memory=memory,
            policy=policy,
        )

    def _first_model(self, plain_model: BaseChatModel, tools: list[BaseTool]) -> ChatRunnable | None:
        """The model for each turn's first call: bound to force a tool call, or None ("auto")."""
        choice = self.tool_choice
        if choice == "auto":
            return None
        names = [t.name for t in tools]
        if choice != "required" and choice not in names:
            known = ", ".join(names) or "none"
            raise ConfigError(f"tool_choice must be 'auto', 'required' or a tool name ({known}), got {choice!r}")
        if not tools:
            raise ConfigError("tool_choice='required' needs at least one tool")
        return plain_model.bind_tools(tools, tool_choice=choice)

    def _profile(self, model: BaseChatModel) -> ModelProfile:
        from chatloom.models.profiles import profile_for

        # The id says more than the object for catalog models ("local:qwen2.5-coder-0.5b").
        return profile_for(self._model_spec if isinstance(self._model_spec, str) else model)

    def _resolve_model(self) -> BaseChatModel:
        if not isinstance(self._model_spec, str):
            return self._model_spec
        from chatloom.models import resolve_model

        return resolve_model(self._model_spec, settings=self.settings)

    def _resolve_tools(self, memory: Memory | None) -> list[BaseTool]:
        from langchain_core.tools import BaseTool, tool

        names = [t for t in self._tool_specs if isinstance(t, str)]
        resolved: dict[str, Any] = {}
        if names:
            from chatloom.tools.registry import resolve_tools

            resolved = {t.name: t for t in resolve_tools(names, workspace=self.workspace)}
        self._knowledge_tools: frozenset[str] = frozenset()
        if memory is not None and "search" in names:
            from chatloom.tools import search as builtin_search

            if resolved["search"] is builtin_search.search:
                # The built-in search tool searches this agent's own memory and namespace.
                resolved["search"] = builtin_search.make_search_tool(memory, namespace=self.namespace)
                self._knowledge_tools = frozenset({"search"})
        out = []
        for spec in self._tool_specs:
            if isinstance(spec, str):
                out.append(resolved[spec])
            elif isinstance(spec, BaseTool):
                out.append(spec)
            elif callable(spec):
                out.append(tool(spec))
            else:
                raise ConfigError(
                    f"{spec!r} is not a tool", "pass a @tool, a typed function with a docstring, or a tool name"
                )
        from chatloom.mcp.client import agent_mcp_tools  # imports the mcp SDK only if servers are configured

        self.close()  # a load that failed before may have started servers
        self._mcp, mcp_tools = agent_mcp_tools(self._mcp_specs, self.settings)
        return out + mcp_tools

    def _resolve_prompt(
        self, few_shot: bool = True
    ) -> tuple[Callable[[list[BaseTool]], list[BaseMessage]] | None, Callable[[str], tuple[str, str]]]:
        """(render(tools) -> messages, split_reasoning); examples only where the profile wants them."""
        from chatloom.prompts.template import split_reasoning

        if self._prompt_spec is None:
            return None, split_reasoning
        if isinstance(self._prompt_spec, str):
            from chatloom.prompts import load_prompt

            template = load_prompt(self._prompt_spec, workspace=self.workspace)
        else:
            template = self._prompt_spec
        variables = self.variables
        keep = None if few_shot else 1  # the system message alone, without the examples
        return (lambda tools: template.render(tools, variables)[:keep]), template.split_reasoning

    def _resolve_memory(self) -> Memory | None:
        if self._memory_spec is True:
            from chatloom.memory import open_memory

            return open_memory(self.settings, namespace=self.namespace)
        if isinstance(self._memory_spec, str):
            from chatloom.memory import open_plugin_memory

            return open_plugin_memory(self._memory_spec, self.settings, namespace=self.namespace)
        return self._memory_spec or None

    def _resolve_policy(self) -> ToolPolicy:
        from chatloom.tools.policy import ToolPolicy

        rules = self.tool_policy
        if self._mcp is not None:  # `server.tool` and `server.*` rules name MCP tools
            from chatloom.mcp.tools import expand_policy

            rules = expand_policy(rules, list(self._ready_tools))
        return ToolPolicy(rules, self.approver)

    def _resolve_checkpointer(self) -> BaseCheckpointSaver:
        spec = self._checkpointer_spec
        if spec == "memory":
            from langgraph.checkpoint.memory import InMemorySaver

            return InMemorySaver()
        if spec is None:
            from chatloom.memory.checkpoint import open_checkpointer

            return open_checkpointer(self.settings)
        return spec

    def tools(self) -> list[BaseTool]:
        """The agent's tools once loaded (MCP tools included, named ``server.tool``)."""
        return list(self._services().tools.values())

    @property
    def has_memory(self) -> bool:
        """Whether turns recall from a knowledge memory (as given to ``memory=``); never loads."""
        return bool(self._memory_spec)

    def checks_answers(self) -> bool:
        """Whether answers are checked against the passages and may be replaced (grounding):
        ``grounding`` when set, else on exactly when the agent has memory. Loads the agent."""
        if self.grounding is not None:
            return self.grounding not in (False, "off")
        return self._services().memory is not None

    def grounding_mode(self) -> GroundingMode:
        """The answer policy: ``"strict"``, ``"cite"`` (the default with memory) or ``"off"``."""
        if not self.checks_answers():
            return "off"
        return "strict" if self.grounding == "strict" else "cite"

    @property
    def loaded_model(self) -> BaseChatModel | None:
        """The chat model once the agent has loaded (see :meth:`load`), else None; never loads."""
        return self._ready.plain_model if self._ready is not None else None

    def close(self) -> None:
        """Shut down the agent's MCP servers, if any were started (a later tool call starts them again)."""
        if self._mcp is not None:
            self._mcp.close()

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- turns ---------------------------------------------------------------------------------

    def chat(
        self,
        text: str,
        *,
        thread_id: str | None = "default",
        user_id: str | None = None,
        history: Sequence[BaseMessage] | None = None,
    ) -> Reply:
        """Run one turn and return the :class:`Reply` (``stop_reason="paused"`` when a tool call
        waits for approval: see :meth:`resume`).

        ``history`` is the conversation before ``text`` when the caller keeps it (a stateless chat
        client resends it on every request): its questions and answers as ``HumanMessage`` and
        ``AIMessage``. With ``thread_id=None`` the turn runs on ``history`` alone and nothing is
        saved (``Reply.thread_id`` is ``""``; tool calls that need approval are refused, as there is
        no thread to pause; :meth:`stop` can't name the turn: close its stream instead). With a thread id, ``history`` starts that thread and is saved with the
        turn; a thread that already holds a conversation raises :class:`~chatloom.errors.ThreadExists`.
        The answers in ``history`` are the caller's word: the model sees them as earlier turns, but
        they are never passages or tool results an answer is checked against, and they count as
        untrusted data for the tool policy (they may quote anything).

        >>> from langchain_core.messages import AIMessage, HumanMessage
        >>> from chatloom.testing import FakeChatModel
        >>> model = FakeChatModel(default=lambda messages: f"{messages[0].content.split()[-1]}")
        >>> Agent(model=model, checkpointer="memory").chat(
        ...     "What is my name?", thread_id=None, history=[HumanMessage("I am Bob"), AIMessage("Hi Bob.")]
        ... ).answer
        'Bob'
        """
        named, thread_id = thread_id, _no_thread() if thread_id is None else thread_id
        with self._turn(text, thread_id, user_id, history, saved=named is not None) as turn:
            graph, state_in, config, context, signal = turn
            stoppable: RunnableConfig = {**config, "callbacks": [signal]}
            state = graph.invoke(state_in, stoppable, context=context, durability=_DURABILITY)
            if "__interrupt__" in state:  # paused: the saved state says for which calls
                return _outcome(graph.get_state(config), thread_id)
        return _named(_reply(state, thread_id), named)

    def stream(
        self,
        text: str,
        *,
        thread_id: str | None = "default",
        user_id: str | None = None,
        history: Sequence[BaseMessage] | None = None,
    ) -> EventStream:
        """Run one turn, yielding Token, ToolCallEvent, ToolResultEvent and, last, AnswerEvent.

        A turn that pauses for a tool approval (``approver="pause"``) ends instead with one
        :class:`ApprovalRequired` per call waiting; :meth:`resume` streams the rest. A new question
        on a thread that is paused raises :class:`~chatloom.agents.approvals.ApprovalPending`.
        ``thread_id=None`` and ``history`` work as in :meth:`chat`.
        """
        return self._stream(text, thread_id, user_id, None, history)

    def _stream(
        self,
        text: str,
        thread_id: str | None,
        user_id: str | None,
        signal: StopSignal | None,
        history: Sequence[BaseMessage] | None = None,
    ) -> EventStream:
        """:meth:`stream` with the turn's stop switch given (see :meth:`astream`), or a new one."""
        named, thread_id = thread_id, _no_thread() if thread_id is None else thread_id
        # The thread stays locked until the stream ends or is closed.
        with self._turn(text, thread_id, user_id, history, signal, saved=named is not None) as turn:
            graph, state_in, config, context, switch = turn
            # closing(): a reader that closes this stream early closes the turn's stream at once
            with closing(self._stream_turn(graph, state_in, config, context, thread_id, switch)) as events:
                for event in events:
                    yield AnswerEvent(_named(event.reply, named)) if isinstance(event, AnswerEvent) else event

    def pending_approvals(self, thread_id: str = "default") -> list[PendingApproval]:
        """The tool calls ``thread_id``'s paused turn waits for ([] when it is not paused);
        each :class:`PendingApproval` has the ``approval_id`` that :meth:`resume` takes."""
        from chatloom.agents.approvals import paused_turn

        graph = self._services().graph
        return paused_turn(graph.get_state({"configurable": {"thread_id": thread_id}}), thread_id)[0]

    def resume(self, thread_id: str, decisions: dict[str, bool]) -> EventStream:
        """Continue a paused turn with ``{approval_id: approved}``, yielding its events as
        :meth:`stream` does: approved calls run (each once), declined ones are reported to the
        model as declined, and the turn goes on to its answer, or pauses again for calls still
        undecided (decisions may come one at a time). Works in a new process on the same
        checkpointer. An id that isn't waiting raises :class:`~chatloom.agents.approvals.UnknownApproval`
        and changes nothing. For example::

            for waiting in agent.pending_approvals("t1"):
                for event in agent.resume("t1", {waiting.approval_id: ask_someone(waiting)}):
                    print(event)
        """
        return self._resume(thread_id, decisions, None)

    def _resume(self, thread_id: str, decisions: dict[str, bool], signal: StopSignal | None) -> EventStream:
        """:meth:`resume` with the turn's stop switch given (see :meth:`aresume`), or a new one."""
        from langgraph.types import Command

        from chatloom.agents.approvals import check_decisions, paused_turn

        with self._stoppable(thread_id, signal) as signal:
            services = self._services()
            signal.check()  # stopped while loading: no tool or model call
            graph = services.graph
            config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
            with self._turn_lock(graph, thread_id):
                pending, user_id = paused_turn(graph.get_state(config), thread_id)
                answers = check_decisions(thread_id, pending, decisions)
                context = self._context(services, thread_id, user_id)
                yield from self._stream_turn(graph, Command(resume=answers), config, context, thread_id, signal)

    def aresume(self, thread_id: str, decisions: dict[str, bool]) -> AsyncIterator[Event]:
        """Async twin of :meth:`resume`."""
        from chatloom.agents.stopping import StopSignal

        signal = StopSignal()  # a reader that leaves stops this turn, not others queued on the thread
        return _in_thread(lambda: self._resume(thread_id, decisions, signal), signal.stop)

    def _stream_turn(
        self,
        graph: TurnGraph,
        state_in: TurnState | Command,
        config: RunnableConfig,
        context: TurnContext,
        thread_id: str,
        signal: StopSignal,
    ) -> EventStream:
        from langchain_core.messages import AIMessage, AIMessageChunk, ToolMessage

        visible = _VisibleText(frozenset(context.tools) if context.offered is None else context.offered)
        modes: list[StreamMode] = ["updates", "messages"]
        stoppable: RunnableConfig = {**config, "callbacks": [signal]}
        # With a list of modes LangGraph yields (mode, payload) pairs; its overloads can't say so.
        events = cast(
            Iterator[tuple[str, Any]],
            graph.stream(state_in, stoppable, context=context, stream_mode=modes, durability=_DURABILITY),
        )
        try:
            for mode, payload in events:
                if mode == "messages":
                    chunk, meta = payload
                    if meta.get("langgraph_node") == "think" and isinstance(chunk, AIMessageChunk):
                        piece = visible.feed(str(chunk.content or ""))
                        if piece:
                            yield Token(piece)
                    continue
                for node, update in payload.items():
                    if node == "__interrupt__":  # a pause: reported below, from the saved state
                        continue
                    for message in (update or {}).get("messages", []):
                        if isinstance(message, AIMessage):
                            visible.reset()
                            for call in message.tool_calls:
                                yield ToolCallEvent(call["name"], call["args"], call["id"] or "")
                        elif isinstance(message, ToolMessage):
                            yield ToolResultEvent(
                                message.name or "",
                                str(message.content),
                                message.tool_call_id,
                                message.status != "error",
                            )
        except BaseException:
            # A reader that closes this stream early (GeneratorExit) or fails sets the stop switch
            # here, while this frame still holds `events`: releasing `events` waits for the turn's
            # workers, which must by then stop at their next step instead of writing the whole answer.
            signal.stop()
            raise
        signal.finish()  # a stop that came before the end ends the turn here, before its answer is shown
        outcome = _outcome(graph.get_state(config), thread_id)
        if outcome.stop_reason == "paused":
            for approval in outcome.approval_required:
                yield ApprovalRequired(approval)
            return
        yield AnswerEvent(outcome)

    async def achat(
        self,
        text: str,
        *,
        thread_id: str | None = "default",
        user_id: str | None = None,
        history: Sequence[BaseMessage] | None = None,
    ) -> Reply:
        """Async twin of :meth:`chat`. Runs the turn in a worker thread."""
        # One sync code path (and one checkpointer) serves both; the model call dominates anyway.
        return await asyncio.to_thread(self.chat, text, thread_id=thread_id, user_id=user_id, history=history)

    def astream(
        self,
        text: str,
        *,
        thread_id: str | None = "default",
        user_id: str | None = None,
        history: Sequence[BaseMessage] | None = None,
    ) -> AsyncIterator[Event]:
        """Async twin of :meth:`stream`."""
        from chatloom.agents.stopping import StopSignal

        signal = StopSignal()  # a reader that leaves stops this turn, not others queued on the thread
        return _in_thread(lambda: self._stream(text, thread_id, user_id, signal, history), signal.stop)

    def history(self, thread_id: str = "default") -> list[BaseMessage]:
        """The messages of a thread so far (tool calls and reasoning included)."""
        services = self._services()
        state = services.graph.get_state({"configurable": {"thread_id": thread_id}})
        return list(state.values.get("messages", []))

    def reset(self, thread_id: str = "default") -> None:
        """Forget a conversation thread."""
        from langgraph.checkpoint.base import BaseCheckpointSaver

        graph = self._services().graph
        if isinstance(graph.checkpointer, BaseCheckpointSaver):  # (LangGraph also allows a bool here)
            with self._turn_lock(graph, thread_id):  # never in the middle of a running turn
                graph.checkpointer.delete_thread(thread_id)

    def stop(self, thread_id: str = "default") -> bool:
        """Stop the turn this agent runs on ``thread_id`` in this process; True if there was one.

        True is a promise: that turn's :meth:`chat`, :meth:`stream` or :meth:`resume` raises
        :class:`~chatloom.errors.TurnStopped` and delivers no reply or :class:`AnswerEvent`
        (tokens a stream already yielded stay yielded). The turn stops at the first of:

        - the end of loading, for a turn started before the agent was loaded (the first turn
          loads the model): no model call is made;
        - the model's next token, on a backend that streams;
        - the end of the model call under way: its reply is dropped. A backend that doesn't
          stream (only ``_generate``) can't be interrupted mid-call, so it writes its whole
          reply first, but nobody gets it;
        - the start of the turn's next step, model call or tool call.

        Nothing already running is interrupted: a model load, a model call that doesn't stream
        and a tool each run to their end, and the turn stops when they return. False means there
        is nothing to stop: no turn on ``thread_id``, or its last step is done, so it answers as
        usual. Turns waiting for ``thread_id`` behind another in this process stop too.

        The thread keeps what earlier turns saved, plus the stopped turn's question and the steps
        it finished (a turn stopped while loading saves nothing). A stop during the turn's last
        step (saving its answer) still raises TurnStopped, though the thread then has the answer.
        Closing a stream before its end stops its turn the same way, so a reader that goes away
        doesn't leave the model writing. Safe from any thread, a signal handler included.
        """
        with self._running_lock:
            signals = list(self._running.get(thread_id, ()))
        return any([signal.stop() for signal in signals])  # a list: every turn is asked, not just the first

    @contextmanager
    def _turn(
        self,
        text: str,
        thread_id: str,
        user_id: str | None,
        history: Sequence[BaseMessage] | None,
        signal: StopSignal | None = None,
        *,
        saved: bool = True,
    ) -> Iterator[tuple[TurnGraph, TurnState, RunnableConfig, TurnContext, StopSignal]]:
        """Set up one new turn for :meth:`chat` and :meth:`stream`: the stop switch first (a stop
        while the agent loads counts, see :meth:`_stoppable`), then the graph input (see
        :meth:`_start`), then the thread locked for the body, refusing a paused thread or history
        for one that already holds a conversation. Yields (graph, input, config, context, switch)."""
        with self._stoppable(thread_id, signal) as signal:
            graph, state_in, config, context = self._start(text, thread_id, user_id, history, saved=saved)
            signal.check()  # stopped while loading: no model call
            with self._turn_lock(graph, thread_id):
                self._refuse_if_paused(graph, thread_id)
                _refuse_if_started(graph, thread_id, history)
                yield graph, state_in, config, context, signal

    @contextmanager
    def _stoppable(self, thread_id: str, signal: StopSignal | None = None) -> Iterator[StopSignal]:
        """Run a turn with a stop switch (see :meth:`stop`): ``signal``, or a new one.

        Entered before the agent loads, so that a stop while it loads counts; a StopTurn from
        the turn (or from the switch's final check, when the body ends) becomes TurnStopped.
        """
        from chatloom.agents.stopping import StopSignal, StopTurn

        signal = signal or StopSignal()
        with self._running_lock:
            self._running.setdefault(thread_id, []).append(signal)
        try:
            yield signal
            signal.finish()  # from here stop() is too late; a stop that came first raises StopTurn
        except StopTurn:
            raise TurnStopped("the turn was stopped before its answer") from None
        finally:
            signal.stop()  # a turn that failed or was closed early: its workers stop at their next step
            with self._running_lock:
                running = self._running.get(thread_id, [])
                running.remove(signal)
                if not running:
                    del self._running[thread_id]

    def _turn_lock(self, graph: TurnGraph, thread_id: str) -> Any:
        """Serialise turns on ``thread_id``, across threads and processes (see thread_lock)."""
        from chatloom.agents.thread_lock import hold_thread

        return hold_thread(graph.checkpointer, thread_id, timeout=self.settings.turn_lock_timeout)

    def _start(
        self,
        text: str,
        thread_id: str,
        user_id: str | None,
        history: Sequence[BaseMessage] | None = None,
        *,
        saved: bool = True,
    ) -> tuple[TurnGraph, TurnState, RunnableConfig, TurnContext]:
        """Check the question and prepare the graph input, config and runtime context.

        Unless ``saved``, the graph runs on a throwaway in-memory checkpoint (LangGraph needs one
        to report the outcome), so the agent's own store never sees the turn.
        """
        from langchain_core.messages import AIMessage, HumanMessage

        question = check_question(text, self.settings.max_question_chars)
        earlier = _given_history(history)
        services = self._services()
        state_in: TurnState = {"messages": [*earlier, HumanMessage(content=question, id=f"human-{uuid.uuid4().hex}")]}
        if any(isinstance(m, AIMessage) for m in earlier):
            # The agent never saw how those answers came about: they may quote a web page or a
            # document that asked for something. Treat the turn as a thread that read such text.
            state_in["tainted"] = CLIENT_HISTORY
        graph = services.graph
        if not saved:
            from langgraph.checkpoint.memory import InMemorySaver

            graph = graph.copy(update={"checkpointer": InMemorySaver()})
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        context = self._context(services, thread_id, user_id)
        if not saved and services.policy.pauses:
            # A pause would be lost with the throwaway checkpoint: nobody could ever decide it.
            context = replace(context, policy=replace(services.policy, approver=_no_thread_approver))
        return graph, state_in, config, context

    def _refuse_if_paused(self, graph: TurnGraph, thread_id: str) -> None:
        # Only agents that pause leave paused threads, so only they pay for the extra read.
        if self._services().policy.pauses:
            _refuse_if_paused(graph, thread_id)

    def _turn_tools(self, services: _Services) -> tuple[frozenset[str], ChatRunnable, ChatRunnable | None]:
        """(offered tool names, model, first model) for the next turn.

        While the agent's knowledge namespace is empty, the tool that searches it is not offered:
        it can only come back empty. On GSM8K the reference bot with nothing ingested sent 312
        searches in 100 word problems, each a failed step the 0.5B then worked around. A turn
        after ``chatloom ingest`` (from any process) offers it again. A forced first call
        (``tool_choice``) keeps the tools the developer chose.
        """
        offered = services.offered
        idle = self._knowledge_tools & offered
        memory = services.memory
        has_knowledge = getattr(memory, "has_knowledge", None)  # optional in the Memory protocol
        if not idle or self.tool_choice != "auto" or not callable(has_knowledge) or has_knowledge(self.namespace):
            return offered, services.model, services.first_model
        narrowed = offered - idle
        with self._lock:
            if narrowed not in services.bound:
                tools = [t for name, t in services.tools.items() if name in narrowed]
                plain = services.plain_model
                services.bound[narrowed] = plain.bind_tools(tools) if tools else plain
            return narrowed, services.bound[narrowed], None

    def _context(self, services: _Services, thread_id: str, user_id: str | None) -> TurnContext:
        """The runtime context of a turn on ``thread_id`` (a new one, or a paused one resumed)."""
        from chatloom.agents.graph import TurnContext
        from chatloom.agents.meaning import default_scorer

        offered, model, first_model = self._turn_tools(services)
        return TurnContext(
            model=model,
            first_model=first_model,
            tools=services.tools,
            offered=offered,
            render_prompt=services.render_prompt,
            split_reasoning=services.split_reasoning,
            memory=services.memory,
            recall_k=self.recall_k,
            namespace=self.namespace,
            user_id=user_id,
            thread_id=thread_id,
            max_steps=self.max_steps,
            max_tool_result_bytes=self.settings.max_tool_result_bytes,
            policy=services.policy,
            conversation_memory=self.conversation_memory,
            summarizer=services.plain_model,
            answer_model=services.answer_model,
            history_tokens=self.history_tokens,
            grounding=self.checks_answers(),
            grounding_mode=self.grounding_mode(),
            scorer=default_scorer() if self.checks_answers() else None,  # None: words decide
            profile=services.profile,
            agent_name=self.name,
        )


async def _in_thread(make_events: Callable[[], Iterator[Event]], stop: Callable[[], object]) -> AsyncIterator[Event]:
    """The events of a sync stream, produced in a worker thread and handed to the event loop.

    A reader that leaves before the end calls ``stop`` (the turn's own stop switch), as closing
    the sync stream would: the worker is not left generating an answer nobody reads.
    """
    # One sync code path (and one checkpointer) serves both; the model call dominates anyway.
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    done = object()

    def send(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: its reader is gone, and the turn ends anyway
            pass

    def pump() -> None:
        try:
            for event in make_events():
                send(event)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            send(exc)
        finally:
            send(done)

    worker = threading.Thread(target=pump, daemon=True)
    worker.start()
    finished = False
    try:
        while (item := await queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
        finished = True
    finally:
        if not finished:
            stop()


CLIENT_HISTORY = "client:history"
"""The taint source (``TurnState["tainted"]``) of a turn whose caller supplied earlier answers."""


def _given_history(history: Sequence[BaseMessage] | None) -> list[HumanMessage | AIMessage]:
    """Fresh copies of a caller's earlier conversation, or :class:`InvalidHistory`.

    Only the text of questions and answers is kept: reused message ids would make LangGraph's
    reducer drop a turn, and tool calls, tool results or metadata (a grounding verdict) from a
    caller must never pass for the agent's own.
    """
    from langchain_core.messages import AIMessage, HumanMessage

    out: list[HumanMessage | AIMessage] = []
    for i, message in enumerate(history or ()):
        if isinstance(message, AIMessage) and (message.tool_calls or message.invalid_tool_calls):
            what = "an AIMessage with tool calls"
        elif isinstance(message, (HumanMessage, AIMessage)):
            kind = "human" if isinstance(message, HumanMessage) else "ai"
            fresh = HumanMessage if kind == "human" else AIMessage
            out.append(fresh(content=message.content, id=f"history-{kind}-{uuid.uuid4().hex}"))
            continue
        else:
            what = f"a {type(message).__name__}"
        raise InvalidHistory(
            f"history[{i}] is {what}",
            "history holds only the conversation's questions (HumanMessage) and answers (AIMessage): "
            "the agent runs its own tools, and its prompt is its system message",
        )
    return out


def _no_thread_approver(request: Any) -> bool:
    """The approver of a turn on no thread: it can't pause, so nobody can be asked."""
    from chatloom.tools.policy import ApprovalUnavailable

    raise ApprovalUnavailable("a turn on no thread can't pause for approval (ask on a thread to approve tool calls)")


def _no_thread() -> str:
    """The private key of a turn on no thread (its throwaway checkpoint's, and :meth:`Agent.stop`'s)."""
    return f"no-thread-{uuid.uuid4().hex}"


def _named(reply: Reply, thread_id: str | None) -> Reply:
    """``reply`` as the caller sees it: a turn on no thread names none (``""``)."""
    return reply if thread_id is not None else replace(reply, thread_id="")


def _refuse_if_started(graph: TurnGraph, thread_id: str, history: Sequence[Any] | None) -> None:
    """History starts a thread; it must not be spliced into one that already has a conversation.
    (A turn on no thread passes: its throwaway checkpoint is empty.)"""
    if history and graph.get_state({"configurable": {"thread_id": thread_id}}).values.get("messages"):
        raise ThreadExists(
            f"thread {thread_id!r} already holds a conversation, so history can't start it",
            "leave history out to continue the thread, or pass thread_id=None for a turn that saves nothing",
        )


def _check_can_pause(checkpointer: Any) -> None:
    """A paused turn lives in the checkpointer: refuse one that forgets it when the process ends."""
    from langgraph.checkpoint.memory import InMemorySaver

    from chatloom.agents.thread_lock import sqlite_path

    in_memory = isinstance(checkpointer, InMemorySaver) or (
        type(checkpointer).__name__ == "SqliteSaver" and sqlite_path(checkpointer) is None
    )
    if checkpointer is None or in_memory:
        raise ConfigError(
            "approver='pause' stores paused turns in the checkpointer, and this one keeps nothing after the process ends",
            "use checkpointer=None (the data dir's SQLite store), a SqliteSaver on a file or a PostgresSaver; "
            "or pass a callable approver to ask in-process",
        )


def _refuse_if_paused(graph: TurnGraph, thread_id: str) -> None:
    """A new question must not slip past a paused turn: its calls would be left undecided."""
    from chatloom.agents.approvals import ApprovalPending, paused_turn

    pending, _ = paused_turn(graph.get_state({"configurable": {"thread_id": thread_id}}), thread_id)
    if pending:
        ids = ", ".join(p.approval_id for p in pending)
        raise ApprovalPending(
            f"thread {thread_id!r} is paused: a tool call waits for approval ({ids})",
            "approve or decline it first (Agent.resume, or POST /v1/approvals/ID on the server)",
        )


def _outcome(state: Any, thread_id: str) -> Reply:
    """The Reply of the turn that just ran: its answer, or the approvals it paused for."""
    from chatloom.agents.approvals import paused_turn

    pending, _ = paused_turn(state, thread_id)
    if pending:
        return Reply.paused(thread_id, pending, steps=state.values.get("steps", 0))
    return _reply(state.values, thread_id)


def _offered_tools(tools: list[Any], policy: Any) -> list[Any]:
    """The tools to show the model: those the policy could ever let run (see
    :meth:`~chatloom.tools.policy.ToolPolicy.never_runs`). The rest are logged (at info level:
    piped ``chatloom chat`` has no one to approve, by design), once per agent."""
    offered = []
    for t in tools:
        why = policy.never_runs(t)
        if why is None:
            offered.append(t)
        else:
            log.info("tool not offered to the model: %s; pass approver=... or set tool_policy {%s: allow}", why, t.name)
    return offered


def _reply(state: dict[str, Any], thread_id: str) -> Reply:
    """Build the Reply for the turn that just ended from the thread's final state."""
    from langchain_core.messages import AIMessage, ToolCall, ToolMessage

    turn = state["messages"][state.get("turn_start", 0) :]
    final = turn[-1]
    answer = str(final.content)
    calls: dict[str | None, ToolCall] = {c["id"]: c for m in turn if isinstance(m, AIMessage) for c in m.tool_calls}
    steps = tuple(
        ToolStep(
            m.name or (call["name"] if call else ""), call["args"] if call else {}, str(m.content), m.status != "error"
        )
        for m in turn
        if isinstance(m, ToolMessage)
        for call in [calls.get(m.tool_call_id)]
    )
    usage = _sum_usage(m for m in turn if isinstance(m, AIMessage))
    passages = state.get("passages", [])
    cited = sorted({int(n) for n in _CITE.findall(answer) if 0 < int(n) <= len(passages)})
    citations = tuple(replace(_passage(passages[n - 1]), index=n) for n in cited)
    return Reply(
        answer=answer,
        thread_id=thread_id,
        citations=citations,
        tool_steps=steps,
        usage=usage,
        reasoning=str(final.additional_kwargs.get("reasoning", "")),
        stop_reason=state.get("stop_reason") or "answer",
        steps=state.get("steps", 0),
        grounded=final.additional_kwargs.get("grounded"),
        unsupported=tuple(final.additional_kwargs.get("unsupported", ())),
        retrieved=tuple(_passage(p) for p in state.get("retrieved", [])),
        route=state.get("route") or None,
    )


def _passage(p: dict[str, Any]) -> Citation:
    # display_source: a memory backend that hands out absolute paths must not send the
    # server's paths to clients through the Reply (HTTP, MCP, eval reports all read it).
    source = display_source(str(p["source"]))
    return Citation(0, source, p["chunk"], p["score"], p.get("title", ""), p["text"], p.get("section", ""))


def _sum_usage(messages: Any) -> Usage:
    totals = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    cost = None
    for message in messages:
        meta = message.usage_metadata or {}
        for key in totals:
            totals[key] += int(meta.get(key, 0) or 0)
        call_cost = (message.response_metadata or {}).get("cost_usd")
        if call_cost is not None:
            cost = (cost or 0.0) + float(call_cost)
    return Usage(**totals, cost_usd=cost)


class _VisibleText:
    """Filters a token stream down to what the user should see while it is being written.

    Chain-of-thought blocks are hidden here; what is left goes through the backends' tool-call
    filter (:class:`~chatloom.models.toolcalls.CallHoldBack`), which holds back text that may
    turn out to be a call rather than an answer (for any backend, custom ones included). The
    final answer always arrives whole in the AnswerEvent.
    """

    def __init__(self, tool_names: frozenset[str] = frozenset()) -> None:
        self._tool_names = tool_names
        self.reset()

    def reset(self) -> None:
        """Start on a new model reply."""
        from chatloom.models.toolcalls import CallHoldBack

        self._raw = ""
        self._sent = 0  # characters of the reasoning-free text passed on to the call filter
        self._calls = CallHoldBack(self._tool_names)

    def feed(self, piece: str) -> str:
        """Add ``piece`` of the reply; return the text the user may see now."""
        self._raw += piece
        text = self._raw.lstrip()
        if not text:
            return ""
        from chatloom.prompts.template import split_reasoning

        shown, _ = split_reasoning(text) if "<think>" in text or text.startswith("<") else (text, "")
        if "<" in shown[-12:]:  # maybe the start of a <think> tag; wait for more
            shown = shown[: shown.rfind("<")]
        if len(shown) <= self._sent:
            return ""
        new, self._sent = shown[self._sent :], len(shown)
        return self._calls.feed(new)


def check_question(text: Any, max_chars: int) -> str:
    """``text`` as a turn takes it (stripped), or a one-line :class:`EmptyQuestion` or
    :class:`QuestionTooLong` (over ``max_chars``).

    A 5 MB question would go to the model as it is: slow, costly, and past any context window.
    """
    if not isinstance(text, str) or not text.strip():
        raise EmptyQuestion("the question is empty", "type a question")
    question = text.strip()
    if len(question) > max_chars:
        raise QuestionTooLong(
            f"the question is {len(question):,} characters, over the limit of {max_chars:,}",
            "shorten it, ingest long documents with `chatloom ingest` instead, or raise "
            "max_question_chars (CHATLOOM_MAX_QUESTION_CHARS)",
        )
    return question
