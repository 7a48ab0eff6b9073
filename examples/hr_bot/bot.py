"""An HR FAQ bot embedded as a library: ingest a handbook, then answer with citations.

    python examples/hr_bot/bot.py                     # the local default model
    CHATLOOM_MODEL=openai:gpt-4o-mini python examples/hr_bot/bot.py
    python examples/hr_bot/bot.py "How many days of annual leave do I get?"

The knowledge goes into its own namespace ("hr") in the chatloom data dir; re-running only
re-ingests changed files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from chatloom import Agent, get_settings
from chatloom.memory import open_memory

KNOWLEDGE = Path(__file__).with_name("knowledge")
QUESTIONS = [
    "How many days of annual leave do I get, and can I carry any over?",
    "What is the hotel limit when I travel?",
]


def main(questions: list[str]) -> None:
    settings = get_settings()
    memory = open_memory(settings, namespace="hr")
    print(memory.ingest([KNOWLEDGE]).summary())  # incremental: unchanged files are skipped

    agent = Agent(
        prompt="researcher",  # grounded answers that cite [1], [2]
        memory=memory,  # each question recalls the best handbook passages first
        checkpointer="memory",  # this demo keeps no conversation on disk
        settings=settings,
    )
    for question in questions:
        reply = agent.chat(question, thread_id="hr-demo", user_id="employee-42")
        print(f"\nQ: {question}\nA: {reply.answer}")
        for c in reply.citations:
            print(f"   [{c.index}] {Path(c.source).name} (chunk {c.chunk}, score {c.score:.2f})")


if __name__ == "__main__":
    main(sys.argv[1:] or QUESTIONS)
