"""한빛소프트 HR FAQ 챗봇: the Korean HR FAQ bot from the LLM primers, on chatloom.

    python examples/hr_bot_ko/bot.py                          # a short chat on the local default model
    python examples/hr_bot_ko/bot.py "병가를 4일 연속으로 쓰면 무엇을 제출해야 하나요?"
    CHATLOOM_MODEL=openai:gpt-4o-mini python examples/hr_bot_ko/bot.py

The handbook in knowledge/ is ingested into its own namespace ("hr-ko") once; re-running only
re-ingests changed files. The bot still talks: a greeting, thanks or a translation gets the
model's own reply. A question about the company is answered from the handbook and cites it as
[n], or gets "지식 베이스에서 관련 내용을 찾지 못했습니다." when the handbook doesn't cover it.
Each reply says which route the turn took (``reply.route``).
"""

from __future__ import annotations

import sys
from functools import cache
from pathlib import Path

from chatloom import Agent, Reply, get_settings
from chatloom.memory import open_memory

KNOWLEDGE = Path(__file__).with_name("knowledge")


@cache
def _agent() -> Agent:
    memory = open_memory(get_settings(), namespace="hr-ko")
    memory.ingest([KNOWLEDGE])  # incremental: unchanged files are skipped
    # memory= turns on grounding: knowledge questions get cited answers, or an honest "not found"
    # in Korean; greetings and tasks get the model's own answer. grounding="strict" would also
    # decline tasks that bring no text of their own.
    return Agent(memory=memory, checkpointer="memory")


def chatbot(question: str) -> Reply:
    """Answer one HR question from the handbook: ``chatbot("회사 연차 신청은 어떻게 하나요?").answer``."""
    return _agent().chat(question, thread_id="hr-ko-demo")


def main(questions: list[str]) -> None:
    for question in questions:
        reply = chatbot(question)
        print(f"\nQ: {question}\nA: {reply.answer}")
        for c in reply.citations:
            section = f" › {c.section}" if c.section else ""
            print(f"   [{c.index}] {Path(c.source).name}{section}")


if __name__ == "__main__":
    # With no arguments, a short conversation: a greeting, a handbook question, thanks.
    main(sys.argv[1:] or ["안녕하세요", "회사 연차 신청은 어떻게 하나요?", "고마워요"])
