"""A chat backend is a class with two methods: plug any model into chatloom.

    python examples/custom_backend.py

Any langchain-core chat model works as ``Agent(model=...)``. To make it a ``--model`` id
(``shout:anything``), name the class in your package's entry points:

    [project.entry-points."chatloom.models"]
    shout = "my_package:ShoutModel"

chatloom calls the class with keywords; declare a ``model: str`` field to receive the part of
the id after the colon.
"""

from __future__ import annotations

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from chatloom import Agent


class ShoutModel(BaseChatModel):
    """Answers every question by shouting it back. Replace the body with your model's API call."""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        question = messages[-1].content
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=f"{question.upper()}!"))])

    @property
    def _llm_type(self) -> str:
        return "shout"


if __name__ == "__main__":
    agent = Agent(model=ShoutModel(), checkpointer="memory")
    print(agent.chat("hello from a custom backend").answer)
