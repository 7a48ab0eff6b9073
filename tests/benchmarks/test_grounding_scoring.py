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
