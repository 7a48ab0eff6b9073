"""The turn graph: recall -> think -> (act -> think)* -> remember.

State holds only serialisable things (messages, retrieved passages, counters) so any LangGraph
checkpointer can persist it. The services a turn needs (model, tools, memory, prompt, policy)
travel as runtime context, so one compiled graph serves every conversation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AnyMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolCall,
    ToolMessage,
)
from langchain_core.messages.ai import add_usage
from langchain_core.messages.utils import trim_messages
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.constants import TAG_NOSTREAM
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from chatloom.agents import grounding, language
from chatloom.agents.meaning import MeaningScorer
from chatloom.agents.reply import GroundingMode, Route, StopReason
from chatloom.agents.routing import brings_text, route_request
from chatloom.agents.taint import is_tainted, taint_update
from chatloom.arithmetic import CalculatorError, evaluate, expression_asked
from chatloom.memory.base import Memory
from chatloom.models.profiles import ModelProfile, estimate_tokens, profile_for
from chatloom.models.toolcalls import looks_like_tool_call, new_call_id
from chatloom.prompts.template import split_reasoning
from chatloom.tools.policy import (
    ToolPolicy,
    cap_tool_result,
    contains_untrusted,
    output_is_trusted,
    unwrap_untrusted,
    wrap_untrusted,
)

ChatRunnable = Runnable[LanguageModelInput, AIMessage]
"""A chat model, or one with tools bound to it (what ``bind_tools`` returns)."""

STEP_LIMIT_ANSWER = "I stopped after {steps} steps without reaching an answer. Try a narrower question."
LOOP_ANSWER = "I stopped because I kept repeating the same tool call ({call}). Try rephrasing the question."
FAILING_ANSWER = "I stopped because my tool calls kept failing ({call}). Try rephrasing the question."
FINAL_ANSWER_NUDGE = "Using the tool results above, answer my question now, in plain words. Do not call a tool."
BAD_CALL_NOTE = (
    "That was not a valid tool call. The tools you can call are: {tools}. Call one of them with "
    "valid JSON arguments, or answer the question in plain words."
)
NO_TOOLS_NOTE = "You have no tools. Answer the question in plain words."
BAD_CALL_ANSWER = "I couldn't answer: the model kept writing a tool call that doesn't exist instead of an answer."
HISTORY_TOKEN_BUDGET = 3000  # approximate tokens of earlier conversation sent to the model
ROUTE_MARGIN = 0.03
"""A request routed elsewhere still looks in the knowledge base when its knowledge score is
within this of its route's ("미네르바가 주장한 기고문이 실린 언론지는?" scored task 0.834,
knowledge 0.806): it becomes a knowledge question if passages answer it by meaning. On the tune
half of korquad every answerable question routed elsewhere was within 0.03; "오늘 기분이 좀
우울해요" (0.035) is not looked up."""
FACT_MARGIN = 0.02
"""Within this, a request that names things is a knowledge question even when no passage
answers it (see :func:`_seeks_facts`)."""


class TurnState(TypedDict, total=False):
    """The checkpointed state of one conversation thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    passages: list[dict[str, Any]]  # this turn's relevant passages (memory.base.Passage as dicts)
    retrieved: list[dict[str, Any]]  # everything recall found, relevant or not (the trace)
    steps: int  # model calls made this turn
    seen_calls: list[str]  # signatures of tool calls already run this turn
    # "" while the turn runs; "loop" means no progress (a repeated call, or calls that keep failing)
    stop_reason: StopReason | Literal[""]
    turn_start: int  # index into messages where this turn's question sits
    summary: str  # a summary of the thread's messages before summary_upto
    summary_upto: int
    tainted: str  # the first untrusted source the thread saw ("" = none); only /reset clears it
    route: Route | Literal[""]  # what kind of request this turn is ("" = not routed: no grounding)
    query: str  # what recall searched for: the question, or a follow-up read with the one before


@dataclass
class TurnContext:
    """The services one turn uses. Not checkpointed."""

    model: ChatRunnable  # a langchain-core chat model, tools already bound
    first_model: ChatRunnable | None = None  # the model for a turn's first call when a tool call is forced
    tools: dict[str, BaseTool] = field(default_factory=dict)  # every tool a call may name
    offered: frozenset[str] | None = None  # the tools shown to the model; None: all of ``tools``
    render_prompt: Callable[[list[BaseTool]], list[BaseMessage]] | None = None  # None: no system prompt
    split_reasoning: Callable[[str], tuple[str, str]] = split_reasoning
    memory: Memory | None = None
    recall_k: int = 4
    namespace: str | None = None
    user_id: str | None = None
    thread_id: str = "default"
    max_steps: int = 8
    max_tool_result_bytes: int = 1024 * 1024  # longer tool results are cut, with a marker
    policy: ToolPolicy | None = None  # None: every call runs
    conversation_memory: bool = False  # store and recall per-user facts across threads
    summarizer: ChatRunnable | None = None  # the model without tools (summaries, plain answers); None: model
    answer_model: ChatRunnable | None = None  # the model with only the profile's inline tools bound (no tool list)
    history_tokens: int = HISTORY_TOKEN_BUDGET
    grounding: bool = False  # check answers against passages and tool results; cite or abstain
    grounding_mode: GroundingMode = "cite"  # with grounding on: "strict" also declines off-topic tasks
    scorer: MeaningScorer | None = None  # judges relevance, support and routes by meaning; None: by words
    profile: ModelProfile = field(default_factory=lambda: profile_for(None))
    agent_name: str | None = None  # recorded with a paused turn, so a server resumes it with the same agent


TurnGraph = CompiledStateGraph[TurnState, TurnContext, TurnState, TurnState]
"""The compiled turn graph (:func:`build_graph`)."""


def recall(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Start a turn: reset the counters and fetch passages relevant to the question."""
    ctx = runtime.context
    messages = state["messages"]
    question = _last_question(messages)
    route: Route | Literal[""] = ""
    scores: dict[Route, float] = {}
    may_ask_facts = True  # whether the request could be a question for the knowledge base
    query = question  # what recall and relevance read
    if ctx.grounding and ctx.scorer is not None and question:
        route, scores = route_request(question, ctx.scorer)
        # A calculation may need the documents' figures ("a 12 mi trail on the park's map"); a
        # task that brings its own text ("Fix the grammar: ...") is about that text.
        may_ask_facts = route == "calculation" or scores["knowledge"] >= scores[route] - ROUTE_MARGIN
        may_ask_facts = may_ask_facts and not (route == "task" and brings_text(question))
        if may_ask_facts and state.get("route") == "knowledge" and _follows_up(question):
            # A follow-up to a knowledge question ("What about for contractors?") is read
            # with it: on its own it names nothing to look up.
            query = f"{_previous_question(messages)} {question}".strip()
    retrieved: list[dict[str, Any]] = []
    if ctx.memory is not None and question and may_ask_facts:
        user_id = ctx.user_id if ctx.conversation_memory else None
        found = ctx.memory.recall(query, k=ctx.recall_k, namespace=ctx.namespace, user_id=user_id)
        retrieved = [asdict(p) for p in found]
    passages = retrieved
    if ctx.grounding and retrieved:
        # Passages that don't answer the question mislead a small model into answering from
        # them; it sees only the relevant ones. A passage's section heading is part of what it
        # says ("출장비 > 정산 방법"), as the model sees it too.
        texts = [_passage_text(p) for p in retrieved]
        # Optional in the Memory protocol: a memory that doesn't say is trusted to match
        # questions to passages across languages.
        across = getattr(ctx.memory, "matches_across_languages", None)
        across_languages = across(ctx.namespace) if callable(across) else True
        relevant = grounding.relevant_passages(query, texts, across_languages=across_languages, scorer=ctx.scorer)
        passages = [retrieved[i] for i in relevant]
    if route and route != "knowledge":
        # Close to a knowledge question, and a passage in its language answers it: it is one.
        # Across languages e5-small can't tell a question from a task ("Convert 5 km to miles"
        # scored 0.78 against "카드는 최대 5장까지 등록할 수 있습니다").
        lang = language.language_of(question)
        if any(language.language_of(p["text"]) == lang for p in passages) or _seeks_facts(question, route, scores):
            route = "knowledge"
        else:
            retrieved, passages = [], []  # nothing to show or cite for a conversation turn or a task
    return {
        "route": route,
        "query": query,
        "passages": passages,
        "retrieved": retrieved,
        "steps": 0,
        "seen_calls": [],
        "stop_reason": "",
        "turn_start": len(messages) - 1,
        **_summarise_if_long(state, ctx),
        **taint_update(state, tools=ctx.tools, passages=passages),
    }


def _passage_text(passage: dict[str, Any]) -> str:
    """A passage as the grounding checks read it: its section heading, then its text."""
    return (f"# {passage['section']}\n" if passage.get("section") else "") + passage["text"]


FOLLOW_UP_TERMS = 2
"""A request naming at most this many things ("그럼 주차는요?", "What about for contractors?")
after a knowledge question is read with it; one naming more ("회사 주차장은 몇 대까지 주차할 수
있나요?") is a question of its own, and read with the one before it, it borrowed its passages."""


def _follows_up(request: str) -> bool:
    """Whether ``request`` reads as a follow-up: it names little and brings no text of its own."""
    return len(grounding.terms(request)) <= FOLLOW_UP_TERMS and not brings_text(request)


def _seeks_facts(question: str, route: Route, scores: dict[Route, float]) -> bool:
    """Whether a request routed elsewhere is still a question of fact, though no passage answers
    it: its knowledge score is within :data:`FACT_MARGIN` of its route's, it names at least
    two things (content terms), and it brings no text of its own to work on. Such a question
    ("책임 무능력자의 가해행위 시 입증책임이 있는 자는?") must be abstained, not answered
    from the model's memory."""
    if (route == "task" and brings_text(question)) or len(grounding.terms(question)) < 2:
        return False
    return scores["knowledge"] >= scores[route] - FACT_MARGIN


def _summarise_if_long(state: TurnState, ctx: TurnContext) -> dict[str, Any]:
    """Fold older turns into a summary once the thread outgrows the history budget.

    The summary is kept in the state, so each stretch of history is summarised once, not on
    every turn; the full messages stay in the checkpoint as the trace.
    """
    from chatloom.memory.conversation import SUMMARY_PREFIX, count_tokens, summarize_messages

    messages = state["messages"]
    upto = state.get("summary_upto", 0)
    history = _complete_exchanges(messages[upto:-1])
    if ctx.summarizer is None or count_tokens(history) <= ctx.history_tokens:
        return {}
    previous = [SystemMessage(content=f"{SUMMARY_PREFIX} {state['summary']}")] if state.get("summary") else []
    shortened = summarize_messages(ctx.summarizer, previous + history, ctx.history_tokens)
    summary = next((str(m.content) for m in shortened if str(m.content).startswith(SUMMARY_PREFIX)), "")
    kept_ids = {m.id for m in shortened}
    first_kept = next((i for i in range(upto, len(messages) - 1) if messages[i].id in kept_ids), len(messages) - 1)
    return {"summary": summary.removeprefix(SUMMARY_PREFIX).strip(), "summary_upto": first_kept}


def think(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Call the model, or end the turn when a limit or a loop has been hit."""
    ctx = runtime.context
    steps = state.get("steps", 0)
    if state.get("stop_reason") == "loop":
        return {"messages": [_answer_without_tools(state, ctx, LOOP_ANSWER)]}
    failing = ctx.profile.failed_steps_allowed
    if failing is not None and _failed_steps_in_a_row(state, ctx) >= failing:
        return {"messages": [_answer_without_tools(state, ctx, FAILING_ANSWER)], "stop_reason": "loop"}
    if steps >= ctx.max_steps:
        fallback = STEP_LIMIT_ANSWER.format(steps=steps)
        return {"messages": [_answer_without_tools(state, ctx, fallback)], "stop_reason": "step_limit"}

    question = _last_question(state["messages"])
    route = state.get("route", "")
    if steps == 0 and route in ("conversation", "task"):
        return {"steps": 1, "stop_reason": "answer", "messages": [_own_answer(state, ctx, question)]}
    if ctx.grounding and steps == 0 and not _offered(ctx) and not state.get("passages") and _is_fact_question(state):
        # Nothing relevant was found and no tool could find it: say so, with no model call to
        # invent an answer.
        text = language.abstention(question)
        answer = AIMessage(content=text, additional_kwargs={"grounded": True, "fallback": "abstain"})
        return {"messages": [answer], "stop_reason": "answer"}

    if steps == 0 and ctx.first_model is None and "calculator" in _offered(ctx):
        expression = expression_asked(question)
        if expression is not None:
            # A question that is only a calculation ("What is 17*23?") is the calculator's, and
            # its result is the answer: Qwen 0.5B, shown the reference bot's tools and
            # passages, searched the docs for "17*23" and answered 401, and given the result it
            # went on converting 391 mm to cm. The call still goes through the tool policy.
            call = {"name": "calculator", "args": {"expression": expression}, "id": new_call_id()}
            asked = AIMessage(content="", tool_calls=[call], additional_kwargs={"asked_calculation": expression})
            return {"steps": 1, "messages": [asked]}
    calculable = steps == 0 and route == "calculation" and "calculator" not in _offered(ctx)
    if calculable and (expression := expression_asked(question)) is not None:
        # Without a calculator tool, the asked calculation is still worked out exactly, by the
        # calculator's own evaluator (no tool runs): Qwen 0.5B alone answered "1,250,000원의
        # 3%는 3,250,000원입니다".
        try:
            worked = AIMessage(content=f"{expression} = {evaluate(expression)}")
        except CalculatorError:
            pass  # out of the evaluator's limits: the model answers
        else:
            return {"steps": 1, "stop_reason": "answer", "messages": [_final_answer(worked, state, ctx)]}
    if steps == 1 and (calculated := _calculated_answer(state["messages"])) is not None:
        return {"stop_reason": "answer", "messages": [_final_answer(calculated, state, ctx)]}

    if steps == 0 and _answers_from_passages_alone(state, ctx, question):
        plain = _plain_answer(state, ctx)
        if plain is not None:
            return {"steps": 1, "stop_reason": "answer", "messages": [_final_answer(plain, state, ctx)]}

    model = ctx.first_model if steps == 0 and ctx.first_model is not None else ctx.model
    prompt = _model_input(state, ctx)
    # With the profile's answers_without_tool_list, this call only decides between calling a
    # tool and answering; an answer is then written without the tool list, so the draft is
    # not streamed to the user.
    deciding = _answers_without_tool_list(state, ctx)
    response = model.invoke(prompt, config={"tags": [TAG_NOSTREAM]} if deciding else None)
    steps += 1
    if not response.tool_calls and looks_like_tool_call(str(response.content)):
        response, extra = _retry_bad_call(response, prompt, ctx)
        steps += extra
    if deciding and not response.tool_calls:
        plain = _plain_answer(state, ctx)
        if plain is not None:
            usage = add_usage(response.usage_metadata, plain.usage_metadata)
            response = plain.model_copy(update={"usage_metadata": usage})
            steps += 1
    update: dict[str, Any] = {"steps": steps}
    if not response.tool_calls:
        response = _final_answer(response, state, ctx)
        update["stop_reason"] = "answer"
    update["messages"] = [response]
    return update


def _own_answer(state: TurnState, ctx: TurnContext, question: str) -> AIMessage:
    """The answer to a conversation turn or a task: the model's own, with no tool list, in the
    conversation so far. Such turns state no fact about the knowledge domain, so no passage
    has to back them, and a failing tool can never become the answer to a greeting (a request
    the documents answer was routed to knowledge in :func:`recall`). In ``strict`` mode a task
    that brings no text of its own is politely declined."""
    if ctx.grounding_mode == "strict" and state.get("route") == "task" and not brings_text(question):
        lang = language.language_of(question)
        return AIMessage(content=language.DECLINE_ANSWER[lang], additional_kwargs={"declined": True})
    response = _plain_answer(state, ctx)  # no tool step was made: the prompt has no tool list
    if response is None:  # nothing, or a tool call again: never shown as the answer
        return AIMessage(content=language.NO_ANSWER[language.language_of(question)])
    return _uncited(_as_answer(response, ctx), question)


def _uncited(message: AIMessage, question: str) -> AIMessage:
    """An answer of a turn that was shown no passage, without the citation markers a model
    writes out of habit (they point nowhere); the apology if nothing else is left."""
    text = grounding.without_citations(str(message.content))
    if not re.search(r"[^\W_]", text):
        text = language.NO_ANSWER[language.language_of(question)]
    return message.model_copy(update={"content": text})


def _as_answer(response: AIMessage, ctx: TurnContext) -> AIMessage:
    """The model's reply as the turn's answer, unchecked: its reasoning moved into the trace."""
    answer, reasoning = ctx.split_reasoning(str(response.content))
    kwargs = {k: v for k, v in response.additional_kwargs.items() if k != "tool_calls"}
    if reasoning:
        kwargs["reasoning"] = reasoning  # kept in the trace, never shown as the answer
    return response.model_copy(update={"content": answer, "additional_kwargs": kwargs, "tool_calls": []})


def _calculated_answer(messages: list[AnyMessage]) -> AIMessage | None:
    """ "17*23 = 391" when the last step ran the calculation the question asked for (None if
    the policy refused it or it failed: then the model answers)."""
    if len(messages) < 2:
        return None
    asked, result = messages[-2], messages[-1]
    expression = asked.additional_kwargs.get("asked_calculation") if isinstance(asked, AIMessage) else None
    if expression is None or not isinstance(result, ToolMessage) or result.status == "error":
        return None
    return AIMessage(content=f"{expression} = {result.content}")


def _retry_bad_call(response: AIMessage, prompt: list[BaseMessage], ctx: TurnContext) -> tuple[AIMessage, int]:
    """Recover from a reply that is a call to a tool that isn't bound, or a broken call.

    The model is told which tools exist and gets one more try; then one attempt with no tools
    bound. Call text never becomes the answer. Returns the reply to use and the model calls made.
    """
    tried = [str(response.content)]
    offered = _offered(ctx)
    note = BAD_CALL_NOTE.format(tools=", ".join(sorted(offered))) if offered else NO_TOOLS_NOTE
    retry = ctx.model.invoke([*prompt, AIMessage(content=tried[0]), HumanMessage(content=note)])
    calls = 1
    if retry.tool_calls or not looks_like_tool_call(str(retry.content)):
        return _noting(retry, tried), calls
    tried.append(str(retry.content))
    if ctx.summarizer is not None and offered:
        retry = ctx.summarizer.invoke([*prompt, HumanMessage(content=NO_TOOLS_NOTE)])
        calls += 1
        if not looks_like_tool_call(str(retry.content)):
            return _noting(retry, tried), calls
        tried.append(str(retry.content))
    return _noting(AIMessage(content=BAD_CALL_ANSWER), tried), calls


def _noting(response: AIMessage, rejected: list[str]) -> AIMessage:
    """``response`` with the rejected call texts kept in its trace."""
    kwargs = {**response.additional_kwargs, "rejected_calls": rejected}
    return response.model_copy(update={"additional_kwargs": kwargs})


def _offered(ctx: TurnContext) -> dict[str, BaseTool]:
    """The tools the model is shown (and bound to): those the policy could ever let run.

    A call to another tool of ``ctx.tools`` still reaches the policy, which explains the refusal.
    """
    if ctx.offered is None:
        return ctx.tools
    return {name: t for name, t in ctx.tools.items() if name in ctx.offered}


def _answers_without_tool_list(state: TurnState, ctx: TurnContext) -> bool:
    """Whether an answer the model writes now would be rewritten without the tool list: the
    profile asks for it, tools are offered as calls, and no tool result has gone into the
    answer yet (so it would be what the model says with no tools)."""
    offered = [name for name in _offered(ctx) if name not in ctx.profile.inline_tools]
    return (
        ctx.profile.answers_without_tool_list
        and bool(offered)
        and ctx.summarizer is not None
        and not _useful_steps(state, ctx)
    )


def _answers_from_passages_alone(state: TurnState, ctx: TurnContext, question: str) -> bool:
    """Whether a small model answers this turn without ever seeing the tool list: it asks for
    facts (no figures to compute with), relevant passages came with it, and the profile writes
    answers without the tool list anyway. Shown the reference bot's tools, Qwen 0.5B converted
    "5 mi" (the unit tool's own example) for "카드는 몇 장까지 등록돼요?" and looped; the
    passages already hold what a search would find, and the calculator still runs inline."""
    return (
        ctx.profile.answers_without_tool_list
        and ctx.first_model is None  # a forced tool call is the developer's choice
        and bool(state.get("passages"))
        and _asks_for_facts(question)
        and _answers_without_tool_list(state, ctx)
    )


def _answer_without_tools(state: TurnState, ctx: TurnContext, fallback: str) -> AIMessage:
    """End a turn that stopped making progress (a repeated call, calls that keep failing, or
    the step limit): ask once more, with no tools bound (see :func:`_plain_answer`); if the
    model still writes a call, ``fallback`` (``{call}`` is the last call made) is the answer.

    Small models often re-issue a call after its result instead of answering; the result is
    in the context by then, so an answer usually is one tools-free call away. At the step limit
    this is one call past it, as smolagents' final answer is: a turn that ran out of steps
    still answers from what it found.
    """
    call = state["seen_calls"][-1] if state.get("seen_calls") else "?"
    give_up = AIMessage(content=fallback.replace("{call}", call))
    if ctx.summarizer is None:
        return give_up
    response = _plain_answer(state, ctx)
    if response is None:
        return give_up  # still trying to call a tool: give up cleanly
    return _final_answer(response, state, ctx)


def _failed_steps_in_a_row(state: TurnState, ctx: TurnContext) -> int:
    """How many of this turn's last tool steps gave nothing to answer from: every call failed
    (error, refused, repeated) or was built on figures or names the question never gave
    (see :func:`_tool_steps`)."""
    count = 0
    for _, kept in reversed(_tool_steps(state, ctx.profile.checks_call_words)):
        if kept:
            break
        count += 1
    return count


def _plain_answer(state: TurnState, ctx: TurnContext) -> AIMessage | None:
    """The model's answer with no tools to call, from the question and the tool results worth
    answering from (see :func:`_useful_steps`); None if it still writes a call.

    When no result is worth it (Qwen 0.5B converted an invented "5 mm" for a question about
    bolts of fiber, then asked for code it may not run), the model answers from the question
    alone, as it would with no tools (its inline tools, such as the calculator, still work):
    tools must never leave a turn worse off than none.
    """
    messages = state["messages"]
    kept = _useful_steps(state, ctx)
    clean: Any = {**state, "messages": [*messages[: state.get("turn_start", len(messages) - 1) + 1], *kept]}
    plain = ctx.summarizer or ctx.model
    if kept:
        prompt = _model_input(clean, ctx) + [HumanMessage(content=FINAL_ANSWER_NUDGE)]
        response = plain.invoke(prompt)
    else:
        response = (ctx.answer_model or plain).invoke(_model_input(clean, ctx, show_tools=False))
    if not str(response.content).strip() or looks_like_tool_call(str(response.content)):
        return None
    return response


def _final_answer(response: AIMessage, state: TurnState, ctx: TurnContext) -> AIMessage:
    """The model's reply as the turn's answer: reasoning moved out, and, with grounding on,
    checked against the passages and tool results (cited, or replaced by a fallback)."""
    message = _as_answer(response, ctx)
    route = state.get("route", "")
    # A routed calculation states no fact of the domain: its tool steps are its evidence, and
    # "grounded" would only say that some arithmetic on the question's figures gives its figure.
    if not ctx.grounding:
        return message
    if route == "calculation":
        return _uncited(message, _last_question(state["messages"]))
    answer = str(message.content)
    evidence = _evidence(state, ctx)
    strict = route == "knowledge" if route else bool(evidence.passages) or _asks_for_facts(evidence.question)
    checked = grounding.check_answer(answer, evidence, strict=strict, quote=ctx.profile.quote_best_sentence)
    kwargs = {**message.additional_kwargs, "grounded": checked.grounded, "unsupported": list(checked.unsupported)}
    if checked.answer != answer:
        kwargs["draft"] = answer  # the model's own words stay in the trace
    if checked.left_out:
        kwargs["left_out"] = list(checked.left_out)  # the trace keeps what was not shown
    if checked.fallback:
        kwargs["fallback"] = checked.fallback
    return message.model_copy(update={"content": checked.answer, "additional_kwargs": kwargs})


def _useful_steps(state: TurnState, ctx: TurnContext) -> list[BaseMessage]:
    """This turn's tool calls worth answering from, each with its result (see
    :func:`_tool_steps`); the full trace stays in the thread."""
    kept: list[BaseMessage] = []
    for message, steps in _tool_steps(state, ctx.profile.checks_call_words):
        if steps:
            kept.append(message.model_copy(update={"content": "", "tool_calls": [c for c, _ in steps]}))
            kept.extend(result for _, result in steps)
    return kept


def _tool_steps(state: TurnState, check_words: bool) -> list[tuple[AIMessage, list[tuple[ToolCall, ToolMessage]]]]:
    """Each tool step of this turn with its calls worth answering from: those that succeeded
    and started from what the question, a passage or an earlier kept result gave.

    Failed, refused and repeated calls are left out, and so are calls on figures the model
    made up ("2 mi = 3.2 km" from an invented 2 backs nothing), and, with ``check_words`` (the
    profile's ``checks_call_words``), on names it made up: "50 mi = 80.5 km" for a question
    about 50 friends (Qwen 0.5B converted the unit tool's own example units on word problems,
    then answered "Amy and Lily have together 80.4672 km").
    """
    messages = state["messages"]
    start = state.get("turn_start", len(messages) - 1)
    question = _last_question(messages)
    given = [question, *(p["text"] for p in state.get("passages") or [])]
    known = set().union(*(grounding.numbers(t) for t in given))
    # The question's words may be abbreviated ("km" for "kilometers"); passages and results
    # must hold the name itself: against their hundreds of words any two letters abbreviate
    # something ("mm" in "memory", "cm" in "chatloom").
    words = _Words(_words(question), _words(" ".join(given[1:])))
    results = {m.tool_call_id: m for m in messages[start:] if isinstance(m, ToolMessage)}
    out = []
    for message in messages[start + 1 :]:
        if not isinstance(message, AIMessage) or not message.tool_calls:
            continue
        kept = []
        for call in message.tool_calls:
            result = results.get(call["id"] or "")
            if (
                result is not None
                and result.status != "error"
                and _arguments_given(call["args"], known, words if check_words else None)
            ):
                kept.append((call, result))
                text = unwrap_untrusted(str(result.content))
                known |= grounding.numbers(text)
                words.verbatim |= _words(text)
        out.append((message, kept))
    return out


@dataclass
class _Words:
    """The words given before a call: the question's, and those of passages and kept results."""

    question: set[str]
    verbatim: set[str]


def _arguments_given(args: dict[str, Any], known: set[str], words: _Words | None) -> bool:
    """Whether a call's figures, and unless ``words`` is None its one-word arguments (units,
    codes, names), were all given before it. A one-word argument counts as given when a passage
    or kept result holds it, or it abbreviates a word of the question, its letters in order from
    the first: "km" for "kilometers"."""
    if not grounding.numbers(json.dumps(args, ensure_ascii=False), identifiers=False) <= known:
        return False
    if words is None:
        return True
    symbols = [v.strip().lower() for v in args.values() if isinstance(v, str) and _SYMBOL.fullmatch(v.strip())]
    return all(
        symbol in words.verbatim or any(_abbreviates(symbol, word) for word in words.question) for symbol in symbols
    )


_SYMBOL = re.compile(r"[^\W\d_][\w.-]{0,15}")  # one word, starting with a letter


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]\w*", text.lower()))


def _abbreviates(short: str, word: str) -> bool:
    if not word.startswith(short[0]):
        return False
    rest = iter(word[1:])
    return all(ch in rest for ch in short[1:])


def _is_fact_question(state: TurnState) -> bool:
    """Whether this turn asks for facts: its route says so, or, where turns are not routed (no
    meaning scorer), its question states no figures (see :func:`_asks_for_facts`)."""
    route = state.get("route", "")
    return route == "knowledge" if route else _asks_for_facts(_last_question(state["messages"]))


def _asks_for_facts(question: str) -> bool:
    """A question for facts (which must come from the knowledge), not a computation on the
    figures it gives ("What is 17*23?", a word problem), which the model may work out itself."""
    return not grounding.numbers(question)


def _evidence(state: TurnState, ctx: TurnContext) -> grounding.Evidence:
    """What this turn's answer may draw on: its passages, the results of its useful tool calls
    (see :func:`_useful_steps`), the question.

    Results of tools that fetch text (search, web, MCP) also pass the relevance filter of
    recalled passages, so a search the model ran for an uncovered question ("누리페이 주식")
    can't lend an unrelated passage to its answer.
    """
    question = _last_question(state["messages"])
    computed: list[str] = []
    fetched: list[str] = []
    for m in _useful_steps(state, ctx):
        if isinstance(m, ToolMessage):
            tool = ctx.tools.get(m.name or "")
            if tool is not None and output_is_trusted(tool):
                computed.append(str(m.content))
            else:
                fetched.append(unwrap_untrusted(str(m.content)))
    fetched = [fetched[i] for i in grounding.relevant_passages(question, fetched, scorer=ctx.scorer)]
    passages = tuple(_passage_text(p) for p in state.get("passages") or [])
    results = (*fetched, *computed)
    if ctx.scorer is not None and passages:
        judged = grounding.linked_sentences(state.get("query") or question, passages, ctx.scorer)
        return replace(judged, question=question, tool_results=results)
    return grounding.Evidence(passages=passages, tool_results=results, question=question)


def act(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Run the tool calls of the last model message; every outcome becomes a ToolMessage."""
    ctx = runtime.context
    last = state["messages"][-1]
    assert isinstance(last, AIMessage), "act runs only after a model message with tool calls"
    seen = list(state.get("seen_calls", []))
    # Enforced here, not left to the model: once retrieved text or untrusted tool output has
    # been in the thread (this turn, an earlier one, or a summary of it), the policy will not
    # auto-run side-effecting or code tools.
    turn = state["messages"][state.get("turn_start", 0) :]
    untrusted = is_tainted(state) or bool(state.get("passages")) or contains_untrusted(turn, ctx.tools)
    # A policy that pauses (approver="pause") gets every decision before any call runs.
    answers = _ask_first(last, seen, untrusted, ctx) if getattr(ctx.policy, "pauses", False) else {}
    results: list[ToolMessage] = []
    stop_reason = ""
    this_step: dict[str, ToolMessage] = {}
    for call in last.tool_calls:
        signature = _signature(call)
        if signature in this_step:  # the same call twice in one message: run once, answer both
            first = this_step[signature]
            results.append(_tool_message(call, str(first.content), first.status != "error"))
            continue
        if signature in seen:
            stop_reason = "loop"
            # Repeat the earlier result: a small model answers from it, but talks about an error.
            earlier = _earlier_result(turn, signature)
            results.append(
                _tool_message(call, f"{earlier}\n(This exact call was already made; answer with this result.)", False)
            )
            continue
        seen.append(signature)
        result = this_step[signature] = _run_tool(ctx, call, untrusted, answers.get(call["id"] or ""))
        results.append(result)
        untrusted = untrusted or contains_untrusted([result], ctx.tools)
    return {
        "messages": results,
        "seen_calls": seen,
        "stop_reason": stop_reason,
        **taint_update(state, turn + results, ctx.tools),
    }


def _ask_first(message: AIMessage, seen: list[str], untrusted: bool, ctx: TurnContext) -> dict[str, bool]:
    """Pause the turn (a LangGraph interrupt) until every call of ``message`` that needs approval
    is decided; returns ``{tool_call_id: approved}``.

    Runs before any call does, and has no side effects, so LangGraph's re-run of ``act`` on
    resume is harmless. It walks the calls as :func:`act` will: repeats are skipped, and a call
    after one whose output is untrusted is judged with ``untrusted_context`` on.
    """
    from langgraph.types import interrupt

    from chatloom.agents.approvals import approval_id, request_payload

    assert ctx.policy is not None, "act asks first only under a policy that pauses"

    requests: list[dict[str, Any]] = []
    signatures = set(seen)
    for index, call in enumerate(message.tool_calls):
        signature = _signature(call)
        if signature in signatures:
            continue  # answered from the earlier result, never run
        signatures.add(signature)
        tool = ctx.tools.get(call["name"])
        if tool is None:
            untrusted = True  # act's "no tool named" message counts as untrusted output
            continue
        request = ctx.policy.review(tool, call["args"], untrusted_context=untrusted)
        if request is not None:
            requests.append(
                {
                    "approval_id": approval_id(message.id, call["id"], index),
                    "tool_call_id": call["id"],
                    "tool": request.tool,
                    "args": request.args,
                    "effect": request.effect,
                    "why": request.why,
                }
            )
        untrusted = untrusted or not output_is_trusted(tool)
    decided: dict[str, bool] = {}
    while undecided := [r for r in requests if r["approval_id"] not in decided]:
        answer = interrupt(request_payload(undecided, agent=ctx.agent_name, user_id=ctx.user_id))
        for r in undecided:  # anything else in the answer is ignored
            if isinstance(answer, dict) and isinstance(answer.get(r["approval_id"]), bool):
                decided[r["approval_id"]] = answer[r["approval_id"]]
    return {r["tool_call_id"]: decided[r["approval_id"]] for r in requests}


def _signature(call: ToolCall) -> str:
    return f"{call['name']}({json.dumps(call['args'], sort_keys=True, default=str)})"


def _earlier_result(turn: Sequence[BaseMessage], signature: str) -> str:
    ids = {c["id"] for m in turn if isinstance(m, AIMessage) for c in m.tool_calls if _signature(c) == signature}
    return next((str(m.content) for m in turn if isinstance(m, ToolMessage) and m.tool_call_id in ids), "")


def remember(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Store the finished exchange in memory (when the agent has memory)."""
    ctx = runtime.context
    if ctx.memory is not None and ctx.conversation_memory and state.get("stop_reason") == "answer":
        question = _last_question(state["messages"])
        answer = str(state["messages"][-1].content)
        ctx.memory.remember(user_id=ctx.user_id, thread_id=ctx.thread_id, question=question, answer=answer)
    return {}


def route_after_think(state: TurnState) -> Literal["act", "remember"]:
    """Tool calls go to ``act``; an answer (or a forced stop) ends the turn."""
    last = state["messages"][-1]
    return "act" if isinstance(last, AIMessage) and last.tool_calls else "remember"


def build_graph(checkpointer: BaseCheckpointSaver | None = None) -> TurnGraph:
    """Compile the turn graph, persisting state through ``checkpointer`` when one is given."""
    graph = StateGraph(TurnState, context_schema=TurnContext)
    graph.add_node("recall", recall)
    graph.add_node("think", think)
    graph.add_node("act", act)
    graph.add_node("remember", remember)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "think")
    graph.add_conditional_edges("think", route_after_think, ["act", "remember"])
    graph.add_edge("act", "think")
    graph.add_edge("remember", END)
    return graph.compile(checkpointer=checkpointer)


def _run_tool(ctx: TurnContext, call: ToolCall, untrusted: bool, answer: bool | None = None) -> ToolMessage:
    """Run one call the policy lets run; ``answer`` is a paused turn's decision for it, if any."""
    tool = ctx.tools.get(call["name"])
    if tool is None:
        known = ", ".join(sorted(_offered(ctx))) or "none"
        return _tool_message(call, f"error: no tool named {call['name']!r}; available tools: {known}", False)
    if ctx.policy is not None:
        decided = {} if answer is None else {"answer": answer}  # a policy that never pauses needn't take it
        decision = ctx.policy.authorize(tool, call["args"], untrusted_context=untrusted, **decided)
        if not decision.allowed:
            return _tool_message(call, f"error: tool call refused by policy: {decision.reason}", False)
    try:
        output = tool.invoke(call["args"])
    except Exception as exc:  # noqa: BLE001 - a tool's failure is information for the model, not a crash
        return _tool_message(call, f"error: {type(exc).__name__}: {exc}", False)
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    # Tools report a failure by raising or by answering "error: ..." (the calculator, the
    # sandbox, web fetches): either way the step failed, and its text backs no answer.
    ok = not text.lstrip().startswith("error:")
    text = cap_tool_result(text, ctx.max_tool_result_bytes)  # before the thread stores it
    if not output_is_trusted(tool):  # text fetched from elsewhere is data, never instructions
        text = wrap_untrusted(text, f"tool:{tool.name}")
    return _tool_message(call, text, ok)


def _tool_message(call: ToolCall, content: str, ok: bool) -> ToolMessage:
    return ToolMessage(
        content=content, tool_call_id=call["id"] or "", name=call["name"], status="success" if ok else "error"
    )


def _model_input(state: TurnState, ctx: TurnContext, show_tools: bool = True) -> list[BaseMessage]:
    """What the model sees: the prompt, earlier turns, then this turn with its passages.

    Everything is fitted to the model profile's input budget, so a turn never fails for
    length: long tool results are clipped, the lowest-ranked passages are dropped, and the
    earlier conversation gets what is left (the current question is always sent). With
    ``show_tools`` off, the prompt is rendered as for an agent with no tools.
    """
    profile = ctx.profile
    messages = list(state["messages"])
    start = state.get("turn_start", len(messages) - 1)
    tools = _offered(ctx) if show_tools else {}
    prefix: list[BaseMessage] = list(ctx.render_prompt(list(tools.values()))) if ctx.render_prompt else []
    if state.get("summary"):
        prefix.append(SystemMessage(content=f"Summary of the earlier conversation: {state['summary']}"))
    budget = profile.input_budget - _tokens(prefix) - _tools_tokens(tools)
    turn = [_clipped(m, profile.tool_result_tokens) for m in messages[start:]]
    passages = list(state.get("passages") or [])
    while True:
        current = [_with_passages(turn[0], passages, profile), *turn[1:]] if passages else turn
        if not passages or _tokens(current) <= budget:
            break
        passages.pop()  # the lowest-ranked passage goes first
    left = min(ctx.history_tokens, budget - _tokens(current))
    history: list[BaseMessage] = []
    if left > 0:
        history = trim_messages(
            _complete_exchanges(messages[state.get("summary_upto", 0) : start]),
            max_tokens=left,
            token_counter=_tokens,
            strategy="last",
            start_on="human",
        )
    return prefix + history + current


def _with_passages(question: BaseMessage, passages: list[dict[str, Any]], profile: ModelProfile) -> HumanMessage:
    shown = [(grounding.passage_label(p), _clip(p["text"], profile.passage_tokens)) for p in passages]
    text = grounding.question_with_passages(str(question.content), shown, profile.offer_abstention)
    return HumanMessage(content=text, id=question.id)


def _clipped(message: BaseMessage, limit: int) -> BaseMessage:
    """A tool result cut to ``limit`` tokens (the whole result stays in the checkpoint)."""
    if not isinstance(message, ToolMessage) or estimate_tokens(str(message.content)) <= limit:
        return message
    return message.model_copy(update={"content": _clip(str(message.content), limit) + "\n[... cut to fit the context]"})


def _clip(text: str, limit: int) -> str:
    if estimate_tokens(text) <= limit:
        return text
    lo, hi = 0, len(text)
    while lo < hi:  # the longest prefix within the limit
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if estimate_tokens(text[:mid]) <= limit else (lo, mid - 1)
    return text[:lo]


def _tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(estimate_tokens(str(m.content)) + 4 for m in messages)


def _tools_tokens(tools: dict[str, BaseTool]) -> int:
    """The tool descriptions a backend adds to the prompt."""
    return sum(estimate_tokens(f"{t.name} {t.description} {json.dumps(t.args)}") + 20 for t in tools.values())


def _complete_exchanges(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Drop tool calls whose results never arrived (a turn interrupted mid-tool).

    Chat APIs reject a history where an assistant tool call has no matching tool message.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [
        m
        for m in messages
        if not (isinstance(m, AIMessage) and m.tool_calls and any(c["id"] not in answered for c in m.tool_calls))
    ]


def _previous_question(messages: Sequence[BaseMessage]) -> str:
    """The user's question before the last one ("" in a new thread)."""
    asked = [m for m in messages if isinstance(m, HumanMessage)]
    return str(asked[-2].content) if len(asked) > 1 else ""


def _last_question(messages: Sequence[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""
