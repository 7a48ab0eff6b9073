"""한빛소프트 HR FAQ 챗봇: the Korean HR FAQ bot from the LLM primers, on chatloom.

    python examples/hr_bot_ko/bot.py                          # the local default model, no API key
    python examples/hr_bot_ko/bot.py "병가를 4일 연속으로 쓰면 무엇을 제출해야 하나요?"
    CHATLOOM_MODEL=openai:gpt-4o-mini python examples/hr_bot_ko/bot.py

The handbook in knowledge/ is ingested into its own namespace ("hr-ko") once; re-running only
re-ingests changed files. Every answer comes from the handbook and cites it as [n], or says
"지식 베이스에서 관련 내용을 찾지 못했습니다." when the handbook doesn't cover the question.
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
    # memory= turns on grounding: cited answers, or an honest "not found" in Korean.
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
    main(
        sys.argv[1:] or ["회사 연차 신청은 어떻게 하나요?", "자기계발비는 얼마인가요?", "회사 주차장은 몇 층에 있나요?"]
    )
