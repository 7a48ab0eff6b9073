"""What a turn gives back: the :class:`Reply`, and the events :meth:`Agent.stream` yields."""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

StopReason = Literal["answer", "step_limit", "loop", "paused"]
"""Why a turn ended (see :class:`Reply`)."""
Route = Literal["conversation", "task", "calculation", "knowledge"]
"""What kind of request a turn was (see :mod:`chatloom.agents.routing`)."""
GroundingMode = Literal["strict", "cite", "off"]
"""How an agent with memory treats answers: ``"cite"`` (the default) cites or abstains on
knowledge questions and helps with everything else; ``"strict"`` (a company FAQ bot) also
politely declines tasks that bring no text of their own; ``"off"`` checks nothing."""


@dataclass(frozen=True)
class Citation:
    """A retrieved passage the answer cites as ``[index]``."""

    index: int
    source: str
    chunk: int
    score: float
    title: str = ""
    text: str = ""
    section: str = ""


@dataclass(frozen=True)
class ToolStep:
    """One tool call the agent made during the turn and what came back."""

    name: str
    args: dict[str, Any]
    result: str
    ok: bool = True


@dataclass(frozen=True)
class Usage:
    """Token counts summed over every model call of the turn; cost where the price is known."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True)
class Reply:
    """The outcome of one turn.

    ``answer`` is what the user sees (chain-of-thought removed); ``reasoning`` keeps that text.
    ``stop_reason`` is ``"answer"``, ``"step_limit"``, ``"loop"`` (no progress: the same call
    again, or, for small models, calls failing two steps in a row), or ``"paused"`` when a tool
    call waits for approval (``approval_required`` then lists them; ``answer`` is empty).
    With grounding on (agents with memory), each turn takes a ``route``: ``"knowledge"`` (a
    question of fact about the domain), ``"conversation"`` (greetings, thanks, the chat itself),
    ``"task"`` (translate, rewrite, write, code) or ``"calculation"``. On a knowledge turn,
    ``grounded`` says whether every claim in the answer is backed by a sentence of a cited
    passage about the question, or a tool result (an honest "not found" is grounded; a quoted
    passage sentence that stands in for an unbacked answer is not); ``unsupported`` lists the
    sentences of ``answer`` nothing backs (a knowledge answer leaves such sentences out, and a
    fallback replaces them: the trace keeps them). Conversation, task and calculation turns
    state no fact of the domain: ``grounded`` is None (a calculation's evidence is its tool
    steps). Without grounding ``route`` and ``grounded`` are None. ``retrieved`` holds every passage recall found (``citations`` index
    the relevant ones the model was shown).
    """

    answer: str
    thread_id: str
    citations: tuple[Citation, ...] = ()
    tool_steps: tuple[ToolStep, ...] = ()
    usage: Usage = field(default_factory=Usage)
    reasoning: str = ""
    stop_reason: StopReason = "answer"
    steps: int = 0
    grounded: bool | None = None
    unsupported: tuple[str, ...] = ()
    retrieved: tuple[Citation, ...] = ()
    approval_required: tuple[PendingApproval, ...] = ()
    route: Route | None = None

    @classmethod
    def paused(cls, thread_id: str, approvals: Sequence[PendingApproval], steps: int = 0) -> Reply:
        """The Reply of a turn that paused for ``approvals`` (no answer yet)."""
        return cls(
            answer="", thread_id=thread_id, stop_reason="paused", steps=steps, approval_required=tuple(approvals)
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole reply."""
        return asdict(self)


@dataclass(frozen=True)
class Token:
    """A piece of the answer as the model writes it."""

    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """The model asked for a tool."""

    name: str
    args: dict[str, Any]
    id: str


@dataclass(frozen=True)
class ToolResultEvent:
    """A tool finished (or was refused); ``ok`` is False for errors and refusals."""

    name: str
    content: str
    id: str
    ok: bool = True


@dataclass(frozen=True)
class PendingApproval:
    """A tool call of a paused turn, waiting for :meth:`Agent.resume <chatloom.agents.agent.Agent.resume>`.

    ``approval_id`` names it within its thread; ``why`` says why a person must decide (shown to
    them); ``agent`` is the name of the agent that paused (``Agent(name=...)``), ``requested_at``
    the ISO time of the pause.
    """

    approval_id: str
    thread_id: str
    tool: str
    args: dict[str, Any]
    effect: str
    why: str
    tool_call_id: str = ""
    agent: str | None = None
    requested_at: str = ""


@dataclass(frozen=True)
class ApprovalRequired:
    """The turn paused: ``approval`` waits for a decision. The stream ends after these events,
    with no :class:`AnswerEvent`; :meth:`Agent.resume <chatloom.agents.agent.Agent.resume>`
    streams the rest of the turn."""

    approval: PendingApproval


@dataclass(frozen=True)
class AnswerEvent:
    """The turn is over; the full :class:`Reply`."""

    reply: Reply


Event = Token | ToolCallEvent | ToolResultEvent | ApprovalRequired | AnswerEvent
EventStream = Generator[Event, None, None]
"""A turn's events as :meth:`Agent.stream` yields them; ``close()`` stops reading early and
releases the thread's turn lock at once."""
