"""Conversation memory: lasting facts from earlier turns, and summaries of long threads.

:func:`summarize_messages` keeps a thread inside the model's context window: when the messages
exceed ``max_tokens`` it asks the model to summarise the older part and returns the system
messages, one summary message and the recent turns.

>>> from langchain_core.messages import HumanMessage
>>> from chatloom.memory.conversation import extract_facts
>>> extract_facts("Hi! My name is Ada and I prefer metric units. What is 2+2?")
['My name is Ada and I prefer metric units.']
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from chatloom.memory.ingest import split_sentences

log = logging.getLogger("chatloom.memory")

SUMMARY_PREFIX = "Summary of the earlier conversation:"
# First-person statements that are worth carrying into later conversations.
_FACT = re.compile(
    r"\b(my (name|job|role|team|company|email|timezone|time zone|favou?rite|preference|"
    r"goal|project|address|birthday|language)\b|call me\b|i am\b|i'm\b|i work\b|i live\b|"
    r"i prefer\b|i like\b|i love\b|i hate\b|i don'?t like\b|i use\b|i need\b|i have\b|"
    r"remember (that|this)\b|please remember\b|always\b|never\b)",
    re.IGNORECASE,
)
_QUESTION = re.compile(r"\?\s*$")


def extract_facts(user_text: str, *, max_facts: int = 5) -> list[str]:
    """Sentences of a user's message that state something lasting about them (not questions)."""
    facts = []
    for sentence in split_sentences(user_text.replace("\n", " ")):
        sentence = sentence.strip()
        if len(sentence) < 6 or len(sentence) > 400 or _QUESTION.search(sentence):
            continue
        if _FACT.search(sentence):
            facts.append(sentence)
    return facts[:max_facts]


def count_tokens(messages: Sequence[BaseMessage]) -> int:
    """Estimated tokens (see :func:`chatloom.models.profiles.estimate_tokens`), plus a little per
    message; needs no tokenizer download.

    (LangChain's default ``get_num_tokens_from_messages`` fetches a GPT-2 tokenizer from the
    hub and ChatOpenAI's fetches tiktoken tables: neither works offline.)
    """
    from chatloom.models.profiles import estimate_tokens

    return sum(estimate_tokens(_text(m)) + 4 for m in messages)


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        text = content
    else:
        text = " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    calls = getattr(message, "tool_calls", None)
    if calls:
        text += " " + " ".join(f"{c.get('name')}({c.get('args')})" for c in calls)
    return text


def _transcript(messages: Sequence[BaseMessage], limit_chars: int = 24000) -> str:
    lines = []
    for m in messages:
        role = {HumanMessage: "User", AIMessage: "Assistant", ToolMessage: "Tool"}.get(type(m), "Note")
        lines.append(f"{role}: {_text(m).strip()}")
    text = "\n".join(lines)
    return text if len(text) <= limit_chars else "…" + text[-limit_chars:]


def summarize_text(model: Any, messages: Sequence[BaseMessage], *, max_words: int = 200) -> str:
    """Ask ``model`` for a short factual summary of ``messages`` (names, facts, decisions)."""
    prompt = [
        SystemMessage(
            content=(
                "Summarise the conversation below for the assistant's own memory in at most "
                f"{max_words} words. Keep names, facts the user stated about themselves, "
                "numbers, decisions and open questions. Write plain sentences, no preamble."
            )
        ),
        HumanMessage(content=_transcript(messages)),
    ]
    reply = model.invoke(prompt)
    return _text(reply).strip()


def summarize_messages(
    model: Any,
    messages: Sequence[BaseMessage],
    max_tokens: int,
    *,
    keep_recent: float = 0.5,
    token_counter: Callable[[Sequence[BaseMessage]], int] | None = None,
) -> list[BaseMessage]:
    """Return ``messages`` shortened to fit ``max_tokens`` by summarising the older turns.

    - Under budget: the same messages, unchanged.
    - Over budget: leading system messages + one ``SystemMessage`` starting with
      ``"Summary of the earlier conversation:"`` + the most recent turns (about
      ``keep_recent`` of the budget). The cut is always at a user message, so an AI tool call
      is never separated from its tool results. An earlier summary is folded into the new one.
    - If the model fails, the older turns are dropped instead (logged, never raised).
    - ``token_counter(messages) -> int`` overrides the default estimate (4 chars per token).

    >>> from chatloom.memory.conversation import summarize_messages   # doctest: +SKIP
    >>> history = summarize_messages(model, history, max_tokens=3000)  # doctest: +SKIP
    """
    count = token_counter or count_tokens
    messages = list(messages)
    if count(messages) <= max_tokens:
        return messages
    head = []
    i = 0
    while i < len(messages) and isinstance(messages[i], SystemMessage) and not _is_summary(messages[i]):
        head.append(messages[i])
        i += 1
    body = messages[i:]
    budget_recent = max(1, int(max_tokens * keep_recent))
    # Walk back from the end, keeping whole turns (a turn starts at a HumanMessage).
    cut = len(body)
    for j in range(len(body) - 1, -1, -1):
        if isinstance(body[j], HumanMessage):
            if count(body[j:]) > budget_recent and cut < len(body):
                break
            cut = j
    if cut == 0:  # everything is one turn: keep its last human message onwards
        human = [j for j, m in enumerate(body) if isinstance(m, HumanMessage)]
        cut = human[-1] if human and human[-1] > 0 else len(body) - 1
    old, recent = body[:cut], body[cut:]
    if not old:
        return messages
    try:
        summary = summarize_text(model, old)
    except Exception as exc:  # noqa: BLE001 - summarising is best effort: the turn goes on without it
        log.warning("summarising the thread failed (%s); dropping %d older messages", exc, len(old))
        summary = f"({len(old)} earlier messages were dropped to fit the context window.)"
    result = [*head, SystemMessage(content=f"{SUMMARY_PREFIX} {summary}", name="summary"), *recent]
    # Still too long (a huge recent turn): drop the oldest recent messages but keep the last one.
    while count(result) > max_tokens and len(result) > len(head) + 2:
        del result[len(head) + 1]
        while len(result) > len(head) + 2 and isinstance(result[len(head) + 1], ToolMessage):
            del result[len(head) + 1]
    return result


def _is_summary(message: BaseMessage) -> bool:
    return isinstance(message.content, str) and message.content.startswith(SUMMARY_PREFIX)
