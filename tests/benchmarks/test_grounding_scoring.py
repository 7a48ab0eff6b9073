"""The scoring functions of benchmarks/bench_grounding.py (no model, no memory)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_grounding as bg


def test_facts_need_one_string_of_every_group():
    groups = [["보안"], ["본인인증"]]
    assert bg.holds_facts("보안 설정에서 본인인증을 하세요", groups)
    assert not bg.holds_facts("보안 설정에서 풀 수 있어요", groups)
    assert bg.holds_facts("Points are valid for TWO years", [["2", "two"]])
    assert not bg.holds_facts("anything", [])  # no groups: nothing to hold


@pytest.mark.parametrize(
    "answer",
    [
        "지식 베이스에서 관련 내용을 찾지 못했습니다.",
        "I couldn't find this in the knowledge base.",
        "I don't know.",
        "문서에 해당 정보가 없습니다 [1].",  # a citation marker is not an invented figure
    ],
)
def test_abstentions(answer):
    assert bg.abstains(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "본사 주소는 서울시 강남구 테헤란로 123입니다.",  # invented
        "I couldn't find it, but it is probably 42 Main Street.",  # a phrase plus an invented figure
        "누리페이 주식은 증권사 앱에서 살 수 있습니다.",
    ],
)
def test_not_abstentions(answer):
    assert not bg.abstains(answer)


@pytest.mark.parametrize(
    "answer",
    [
        '```json\n{"name": "doctor_jones_update_records", "arguments": {"hours_left": 9}}\n```',
        '{"name": "calculator", "arguments": {"expression": "2+2"}}',
        '{"arguments": {"x": 1}, "name": "calculator"}',
        '{"tool": "calculator", "input": "17*23"}',
        "<tool_call>\n{}\n</tool_call>",
        "functions.calculator: 17*23",
    ],
)
def test_tool_text_found(answer):
    assert bg.has_tool_text(answer)


@pytest.mark.parametrize(
    "answer",
    [
        "17 * 23 = 391 [1]",
        "연차는 그룹웨어의 '근태 > 휴가 신청'에서 신청합니다 [1].",
        'He said "name": no more.',
    ],
)
def test_plain_answers_have_no_tool_text(answer):
    assert not bg.has_tool_text(answer)


def test_squad_normalisation_em_and_f1():
    assert bg.exact_match("The Eiffel Tower.", "eiffel tower")
    assert not bg.exact_match("Eiffel Tower in Paris", "Eiffel Tower")
    assert bg.token_f1("Eiffel Tower in Paris", "the Eiffel Tower") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert bg.token_f1("yes", "no") == 0.0
    assert bg.token_f1("no", "no") == 1.0
    assert bg.token_f1("", "Paris") == 0.0


def test_contains_answer_matches_whole_normalised_words():
    assert bg.contains_answer("Creature Comforts is a stop motion comedy [1].", "Creature Comforts")
    assert bg.contains_answer("It was founded in Bath, Maine.", "Bath, Maine")
    assert not bg.contains_answer("It was in 20045.", "2004")
    assert not bg.contains_answer("anything", "")


def test_file_titles_are_safe_and_unique():
    taken: set[str] = set()
    a = bg.file_title("AC/DC: Live", taken)
    b = bg.file_title("AC/DC: Live", taken)
    assert "/" not in a and a != b


def test_summary_pairs_tools_against_no_tools():
    def row(agent, i, correct):
        return {
            "model": "m",
            "set": "gsm8k",
            "agent": agent,
            "i": i,
            "correct": correct,
            "error": None,
            "seconds": 1.0,
            "tool_text": False,
            "tool_calls": 0,
            "grounded": None,
        }

    rows = [
        row("default", 1, True),
        row("default+tools", 1, False),
        row("default", 2, False),
        row("default+tools", 2, True),
        row("default", 3, False),
        row("default+tools", 3, True),
    ]
    per = bg.summarize(rows, {})["m"]["gsm8k"]["agents"]
    assert per["default+tools"]["correct"] == (2, 3)
    assert per["default+tools"]["vs"] == {
        "other": "default",
        "questions": 3,
        "wins": 2,
        "losses": 1,
        "sign_test_p": 1.0,
    }


def test_split_half_is_stable_and_balanced():
    from _common import split_half

    # Pinned: the rule is sha256(key) even -> tune, so these never move between runs or machines.
    assert split_half("6304690-11-0") == "tune"
    assert split_half("6539905-0-2") == "heldout"
    assert split_half("c") == "tune" and split_half("a") == "heldout"
    tune = sum(split_half(f"question {i}") == "tune" for i in range(2000))
    assert 900 < tune < 1100


def test_half_of_keys_by_id_then_question():
    from _common import split_half

    assert bg.half_of({"id": "6539905-0-2", "input": "c"}) == "heldout"  # the id wins over the text
    assert bg.half_of({"_id": "c", "question": "a"}) == "tune"
    assert bg.half_of({"question": "a"}) == split_half("a")
    assert bg.half_of({"input": "c", "kind": "task"}) == split_half("c")


def test_korquad_contains_ignores_spaces():
    assert bg.contains_span("배터리 용량이 1000mAh 늘었습니다 [1].", ["1000 mAh"])
    assert bg.contains_span("보인강에 삽니다.", ["보인 강"])
    assert bg.contains_span("빅토르 페 랭 장군입니다", ["빅토르 페랭"])
    assert bg.contains_span("It grew by 1000 MAH.", ["1000 mAh"])  # any case
    assert bg.contains_span("미가엘입니다", ["가브리엘", "미가엘"])  # one of the spans
    assert not bg.contains_span("신동아가 아니라 월간조선입니다?", ["주간동아"])
    assert not bg.contains_span("출처는 [3]입니다", ["3"])  # a citation marker is not the answer
    assert not bg.contains_span("anything", [])
    assert not bg.contains_span("anything", [" "])


@pytest.mark.parametrize(
    ("answer", "expected_any", "error"),
    [
        ("지식 베이스에서 관련 내용을 찾지 못했습니다.", None, None),  # an abstention
        ("I don't know.", ["thank"], None),
        ("I stopped because my tool calls kept failing (calculator). Try rephrasing the question.", None, None),
        ("error: division by zero", ["360"], None),
        ("The answer is 365.", ["360"], None),  # expected_any missed
        ("Hello! How can I help?", ["Minji"], None),
        ("", None, None),
        ("   ", None, None),
        ("partial answer", None, "TimeoutError: the model did not answer"),
    ],
)
def test_not_helped(answer, expected_any, error):
    assert not bg.helped(answer, expected_any, error)


@pytest.mark.parametrize(
    ("answer", "expected_any"),
    [
        ("안녕하세요! 무엇을 도와드릴까요?", None),
        ("15% of 2,400 is 360.", ["360"]),
        ("Thank you", ["thank"]),  # any case
        ("1,250,000원의 3%는 37,500원입니다.", ["37,500", "37500"]),
        (
            "def reverse(s):\n    try:\n        return s[::-1]\n    except TypeError:\n        return ''",  # not 'error:'
            ["def "],
        ),
    ],
)
def test_helped(answer, expected_any):
    assert bg.helped(answer, expected_any)


def _case(set_name, i, *, grounded, half="tune", agent="default", route=None, **fields):
    row = {
        "model": "m",
        "set": set_name,
        "agent": agent,
        "i": i,
        "half": half,
        "error": None,
        "seconds": 1.0,
        "tool_text": False,
        "tool_calls": 0,
        "grounded": grounded,
        "route": route,
        "answer": "",
        "correct": False,
    }
    return row | fields


def _korquad(i, *, grounded, contains=None, abstained=False, half="tune", route="knowledge"):
    kind = "unanswerable" if contains is None else "answerable"
    return _case(
        "korquad",
        i,
        grounded=grounded,
        half=half,
        route=route,
        kind=kind,
        contains=contains,
        gold_cited=None if contains is None else True,
        abstained=abstained,
        false_abstention=None if contains is None else (abstained and not contains),
        retrieval_top3=None if contains is None else True,
        correct=bool(contains) if contains is not None else abstained,
    )


def test_grounded_but_wrong_per_set():
    assert bg.grounded_wrong(_korquad(1, grounded=True, contains=False))
    assert not bg.grounded_wrong(_korquad(1, grounded=True, contains=True))
    assert not bg.grounded_wrong(_korquad(1, grounded=False, contains=False))  # wrong, but not marked grounded
    assert not bg.grounded_wrong(_korquad(1, grounded=None, contains=False))  # no grounding (or an error)
    assert bg.grounded_wrong(_korquad(1, grounded=True, abstained=False))  # unanswerable, answered anyway
    assert not bg.grounded_wrong(_korquad(1, grounded=True, abstained=True))
    faq = {"kind": "lookup", "facts": False, "abstained": False}
    assert bg.grounded_wrong(_case("korean_faq", 1, grounded=True, **faq))
    assert not bg.grounded_wrong(_case("korean_faq", 1, grounded=True, **(faq | {"facts": True})))
    unans = {"kind": "unanswerable", "facts": None, "abstained": False}
    assert bg.grounded_wrong(_case("korean_faq", 1, grounded=True, **unans))
    assert not bg.grounded_wrong(_case("korean_faq", 1, grounded=True, **(unans | {"abstained": True})))
    assert bg.grounded_wrong(_case("hotpotqa", 1, grounded=True, contains=False, gold="Paris"))
    assert not bg.grounded_wrong(_case("hotpotqa", 1, grounded=True, answer="It is Paris [1].", gold="Paris"))
    assert not bg.grounded_wrong(_case("general", 1, grounded=True, helped=False))  # not a knowledge set


def test_grounded_but_wrong_counts_out_of_all_replies_per_half():
    rows = [
        _korquad(1, grounded=True, contains=False),  # counted
        _korquad(2, grounded=True, contains=True),
        _korquad(3, grounded=False, contains=False),
        _korquad(4, grounded=True, abstained=False, route="conversation"),  # counted
        _korquad(5, grounded=True, contains=False, half="heldout"),  # counted
        _korquad(6, grounded=None, contains=None, abstained=True, half="heldout", route=None),
    ]
    entry = bg.summarize(rows, {})["m"]["korquad"]
    assert entry["agents"]["default"]["grounded_wrong"] == (3, 6)
    assert entry["halves"]["tune"]["agents"]["default"]["grounded_wrong"] == (2, 4)
    assert entry["halves"]["heldout"]["agents"]["default"]["grounded_wrong"] == (1, 2)
    tune = entry["halves"]["tune"]["agents"]["default"]
    assert tune["routes"] == {"knowledge": 3, "conversation": 1}
    assert tune["correct_answerable"] == (1, 3) and tune["false_abstention"] == (0, 3)
    assert entry["halves"]["heldout"]["agents"]["default"]["routes"] == {"knowledge": 1, "none": 1}
    assert entry["halves"]["tune"]["retrieval_top3"] == (3, 3)
    assert entry["retrieval_top3"] == (4, 4)


def test_an_abstention_is_never_a_wrong_grounded_answer_and_precision_counts_claims_only():
    # An answerable question abstained: a false abstention, not a wrong grounded answer.
    abstained = _korquad(1, grounded=True, contains=False, abstained=True)
    assert not bg.grounded_wrong(abstained)
    rows = [
        abstained,
        _korquad(2, grounded=True, contains=True),  # a right grounded claim
        _korquad(3, grounded=True, contains=False),  # a wrong grounded claim
        _korquad(4, grounded=False, contains=False),  # not marked grounded: no claim of grounding
    ]
    tune = bg.summarize(rows, {})["m"]["korquad"]["halves"]["tune"]["agents"]["default"]
    assert tune["grounded_wrong"] == (1, 4) and tune["false_abstention"] == (1, 4)
    assert tune["grounded_precision"] == (1, 2)


def test_general_summary_and_tables_per_half(capsys):
    rows = [
        _case("general", 1, grounded=None, kind="greeting", helped=True, abstained=False, failure_text=False),
        _case("general", 2, grounded=None, kind="calc", helped=False, abstained=False, failure_text=True),
        _case(
            "general", 3, grounded=None, kind="calc", helped=True, abstained=False, failure_text=False, half="heldout"
        ),
    ]
    summary = bg.summarize(rows, {})
    per = summary["m"]["general"]["halves"]["tune"]["agents"]["default"]
    assert per["helped"] == (1, 2) and per["helped_by_kind"] == {"greeting": (1, 1), "calc": (0, 1)}
    assert per["failure_text"] == (1, 2)
    bg.print_tables(summary)
    table = capsys.readouterr().out
    assert "| default | tune | 2 | 1/2 (50%) |" in table
    assert "| default | heldout | 1 | 1/1 (100%) |" in table
    assert "| default | both | 3 | 2/3 (67%) |" in table


def test_pick_limits_the_file_then_the_half_and_quick_takes_one_per_kind_and_half():
    rows = [{"id": k, "kind": kind} for k, kind in [("a", "x"), ("b", "y"), ("c", "x"), ("d", "x"), ("e", "y")]]
    halves = {r["id"]: bg.half_of(r) for r in rows}
    assert halves == {"a": "heldout", "b": "heldout", "c": "tune", "d": "tune", "e": "tune"}
    kind = lambda r: r["kind"]  # noqa: E731
    assert [i for i, _ in bg._pick(rows, None, "tune", kind)] == [3, 5, 4]  # round-robin x, y, x
    assert [i for i, _ in bg._pick(rows, 3, "heldout", kind)] == [1, 2]  # the first 3 rows, then the half
    tune = bg._pick(rows, 4, "tune", kind)
    heldout = bg._pick(rows, 4, "heldout", kind)
    assert sorted(tune + heldout) == sorted(bg._pick(rows, 4, "both", kind))
    assert [i for i, _ in bg._pick(rows, None, "both", kind, {})] == [1, 2, 3, 5]  # one per kind and half
    assert [i for i, _ in bg._pick(rows, None, "tune", kind, {})] == [3, 5]
    assert [i for i, _ in bg._pick(rows, None, "tune", kind, {"x": 2})] == [3, 5, 4]


HR_BOT_KO = Path(__file__).resolve().parents[2] / "examples" / "hr_bot_ko"


def test_hr_bot_ko_questions_match_the_handbook():
    """Every gold document exists, and a lookup's facts are written in its gold document."""
    import json

    rows = [json.loads(line) for line in (HR_BOT_KO / "questions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12
    assert {r["kind"] for r in rows} == {"lookup", "multistep", "unanswerable", "english"}
    for r in rows:
        assert set(r) == {"question", "gold_doc", "facts_all_of_any", "kind"}
        if r["kind"] == "unanswerable":
            assert r["gold_doc"] is None and r["facts_all_of_any"] == []
            continue
        doc = (HR_BOT_KO / "knowledge" / r["gold_doc"]).read_text(encoding="utf-8")
        if r["kind"] in ("lookup", "english"):  # multistep answers are computed, not quoted
            assert bg.holds_facts(doc, r["facts_all_of_any"]), r["question"]
