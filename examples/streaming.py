"""Stream a turn: tokens as they are written, tool calls and results, then the Reply.

python examples/streaming.py "What is 1234 * 5678, and what is that squared?"
"""

from __future__ import annotations

import sys

from chatloom import Agent, AnswerEvent, Token, ToolCallEvent, ToolResultEvent

agent = Agent(prompt="assistant", tools=["calculator"], checkpointer="memory")
question = " ".join(sys.argv[1:]) or "What is 1234 * 5678?"
for event in agent.stream(question):
    if isinstance(event, Token):
        print(event.text, end="", flush=True)
    elif isinstance(event, ToolCallEvent):
        print(f"\n→ {event.name}({event.args})")
    elif isinstance(event, ToolResultEvent):
        print(f"← {event.content}")
    elif isinstance(event, AnswerEvent):
        print(f"\n\nanswer: {event.reply.answer}\nusage: {event.reply.usage}")
