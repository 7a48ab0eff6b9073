"""The turn graph: recall -> think -> (act -> think)* -> remember.

State holds only serialisable things (messages, retrieved passages, counters) so any LangGraph
checkpointer can persist it. The services a turn needs (model, tools, memory, prompt, policy)
travel as runtime context, so one compiled graph serves every conversation.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.messages.utils import trim_messages
from langchain_core.tools import BaseTool
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.runtime import Runtime

from chatloom.memory.base import Memory
from chatloom.prompts.template import split_reasoning
from chatloom.agents.taint import is_tainted, taint_update
from chatloom.tools.policy import contains_untrusted, output_is_trusted, wrap_untrusted

STEP_LIMIT_ANSWER = "I stopped after {steps} steps without reaching an answer. Try a narrower question."
LOOP_ANSWER = "I stopped because I kept repeating the same tool call ({call}). Try rephrasing the question."
FINAL_ANSWER_NUDGE = "Using the tool results above, answer my question now, in plain words. Do not call a tool."
HISTORY_TOKEN_BUDGET = 3000  # approximate tokens of earlier conversation sent to the model


class TurnState(TypedDict, total=False):
    """The checkpointed state of one conversation thread."""

    messages: Annotated[list[AnyMessage], add_messages]
    passages: list[dict[str, Any]]  # this turn's retrieved passages (memory.base.Passage as dicts)
    steps: int  # model calls made this turn
    seen_calls: list[str]  # signatures of tool calls already run this turn
    stop_reason: str  # "", "answer", "step_limit" or "loop"
    turn_start: int  # index into messages where this turn's question sits
    summary: str  # a summary of the thread's messages before summary_upto
    summary_upto: int
    tainted: str  # the first untrusted source the thread saw ("" = none); only /reset clears it


@dataclass
class TurnContext:
    """The services one turn uses. Not checkpointed."""

    model: Any  # a langchain-core chat model, tools already bound
    first_model: Any = None  # the model for a turn's first call when a tool call is forced
    tools: dict[str, BaseTool] = field(default_factory=dict)
    render_prompt: Any = None  # callable(tools) -> list[BaseMessage]; None means no system prompt
    split_reasoning: Any = split_reasoning
    memory: Memory | None = None
    recall_k: int = 4
    namespace: str | None = None
    user_id: str | None = None
    thread_id: str = "default"
    max_steps: int = 8
    policy: Any = None  # an object with authorize(tool, args, *, untrusted_context) -> decision
    conversation_memory: bool = False  # store and recall per-user facts across threads
    summarizer: Any = None  # the model without tools, for summarising long threads
    history_tokens: int = HISTORY_TOKEN_BUDGET


def recall(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Start a turn: reset the counters and fetch passages relevant to the question."""
    ctx = runtime.context
    messages = state["messages"]
    question = _last_question(messages)
    passages: list[dict[str, Any]] = []
    if ctx.memory is not None and question:
        user_id = ctx.user_id if ctx.conversation_memory else None
        found = ctx.memory.recall(question, k=ctx.recall_k, namespace=ctx.namespace, user_id=user_id)
        passages = [asdict(p) for p in found]
    return {
        "passages": passages,
        "steps": 0,
        "seen_calls": [],
        "stop_reason": "",
        "turn_start": len(messages) - 1,
        **_summarise_if_long(state, ctx),
        **taint_update(state, tools=ctx.tools, passages=passages),
    }


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
        return {"messages": [_answer_without_tools(state, ctx)]}
    if steps >= ctx.max_steps:
        return {"messages": [AIMessage(content=STEP_LIMIT_ANSWER.format(steps=steps))], "stop_reason": "step_limit"}

    model = ctx.first_model if steps == 0 and ctx.first_model is not None else ctx.model
    response = model.invoke(_model_input(state, ctx))
    update: dict[str, Any] = {"steps": steps + 1}
    if not response.tool_calls:
        response = _final_answer(response, ctx)
        update["stop_reason"] = "answer"
    update["messages"] = [response]
    return update


def _answer_without_tools(state: TurnState, ctx: TurnContext) -> AIMessage:
    """End a turn whose model keeps repeating a call: ask once more, with no tools bound.

    Small models often re-issue a call after its result instead of answering; the result is
    in the context by then, so an answer usually is one tools-free call away.
    """
    call = state["seen_calls"][-1] if state.get("seen_calls") else "?"
    fallback = AIMessage(content=LOOP_ANSWER.format(call=call))
    if ctx.summarizer is None or state.get("steps", 0) >= ctx.max_steps:
        return fallback
    response = ctx.summarizer.invoke(_model_input(state, ctx) + [HumanMessage(content=FINAL_ANSWER_NUDGE)])
    answer = _final_answer(response, ctx)
    if not answer.content or str(answer.content).lstrip().startswith(("{", "[", "<tool_call>", "```")):
        return fallback  # still trying to call a tool: give up cleanly
    return answer


def _final_answer(response: AIMessage, ctx: TurnContext) -> AIMessage:
    """The model's reply as the turn's answer: reasoning moved out of the visible text."""
    answer, reasoning = ctx.split_reasoning(str(response.content))
    kwargs = {k: v for k, v in response.additional_kwargs.items() if k != "tool_calls"}
    if reasoning:
        kwargs["reasoning"] = reasoning  # kept in the trace, never shown as the answer
    return response.model_copy(update={"content": answer, "additional_kwargs": kwargs, "tool_calls": []})


def act(state: TurnState, runtime: Runtime[TurnContext]) -> dict[str, Any]:
    """Run the tool calls of the last model message; every outcome becomes a ToolMessage."""
    ctx = runtime.context
    last = state["messages"][-1]
    seen = list(state.get("seen_calls", []))
    # Enforced here, not left to the model: once retrieved text or untrusted tool output has
    # been in the thread (this turn, an earlier one, or a summary of it), the policy will not
    # auto-run side-effecting or code tools.
    turn = state["messages"][state.get("turn_start", 0) :]
    untrusted = is_tainted(state) or bool(state.get("passages")) or contains_untrusted(turn, ctx.tools)
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
            results.append(_tool_message(call, f"{earlier}\n(This exact call was already made; answer with this result.)", False))
            continue
        seen.append(signature)
        result = this_step[signature] = _run_tool(ctx, call, untrusted)
        results.append(result)
        untrusted = untrusted or contains_untrusted([result], ctx.tools)
    return {"messages": results, "seen_calls": seen, "stop_reason": stop_reason, **taint_update(state, turn + results, ctx.tools)}


def _signature(call: dict[str, Any]) -> str:
    return f"{call['name']}({json.dumps(call['args'], sort_keys=True, default=str)})"


def _earlier_result(turn: list[BaseMessage], signature: str) -> str:
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


def build_graph(checkpointer: Any = None) -> Any:
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


def _run_tool(ctx: TurnContext, call: dict[str, Any], untrusted: bool) -> ToolMessage:
    tool = ctx.tools.get(call["name"])
    if tool is None:
        known = ", ".join(sorted(ctx.tools)) or "none"
        return _tool_message(call, f"error: no tool named {call['name']!r}; available tools: {known}", False)
    if ctx.policy is not None:
        decision = ctx.policy.authorize(tool, call["args"], untrusted_context=untrusted)
        if not decision.allowed:
            return _tool_message(call, f"error: tool call refused by policy: {decision.reason}", False)
    try:
        output = tool.invoke(call["args"])
    except Exception as exc:  # a tool's failure is information for the model, not a crash
        return _tool_message(call, f"error: {type(exc).__name__}: {exc}", False)
    text = output if isinstance(output, str) else json.dumps(output, default=str)
    if not output_is_trusted(tool):  # text fetched from elsewhere is data, never instructions
        text = wrap_untrusted(text, f"tool:{tool.name}")
    return _tool_message(call, text, True)


def _tool_message(call: dict[str, Any], content: str, ok: bool) -> ToolMessage:
    return ToolMessage(content=content, tool_call_id=call["id"], name=call["name"], status="success" if ok else "error")


def _model_input(state: TurnState, ctx: TurnContext) -> list[BaseMessage]:
    messages = list(state["messages"])
    start = state.get("turn_start", len(messages) - 1)
    # Earlier turns: the summary, then what came after it, trimmed to the budget as a backstop.
    # The current turn is always sent whole.
    history = trim_messages(
        _complete_exchanges(messages[state.get("summary_upto", 0) : start]),
        max_tokens=ctx.history_tokens,
        token_counter="approximate",
        strategy="last",
        start_on="human",
    )
    prefix: list[BaseMessage] = list(ctx.render_prompt(list(ctx.tools.values()))) if ctx.render_prompt else []
    if state.get("summary"):
        prefix.append(SystemMessage(content=f"Summary of the earlier conversation: {state['summary']}"))
    if state.get("passages"):
        prefix.append(SystemMessage(content=_passages_block(state["passages"])))
    return prefix + history + messages[start:]


def _complete_exchanges(messages: list[BaseMessage]) -> list[BaseMessage]:
    """Drop tool calls whose results never arrived (a turn interrupted mid-tool).

    Chat APIs reject a history where an assistant tool call has no matching tool message.
    """
    answered = {m.tool_call_id for m in messages if isinstance(m, ToolMessage)}
    return [
        m
        for m in messages
        if not (isinstance(m, AIMessage) and m.tool_calls and any(c["id"] not in answered for c in m.tool_calls))
    ]


def _passages_block(passages: list[dict[str, Any]]) -> str:
    lines = ["Knowledge passages for this question. Cite them as [1], [2] when you use them."]
    for i, p in enumerate(passages, 1):
        lines.append(wrap_untrusted(p["text"], f"[{i}] {p['source']}#{p['chunk']}"))
    return "\n".join(lines)


def _last_question(messages: list[BaseMessage]) -> str:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return str(message.content)
    return ""
