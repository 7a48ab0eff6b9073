"""The HR bots answer from their handbooks on the REAL local default model (integration).

A Korean and an English question, each with a fact from the handbook and a citation of the
right document, and a question the handbook doesn't cover, answered with the abstention. The
model must be installed (`chatloom models install`, which `./run test` does); in CI a missing
model is a failure, elsewhere a skip with the reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def home(tmp_path_factory, default_model_gguf) -> Path:
    """A fresh data dir whose models/ is the real one (no weights copied)."""
    h = tmp_path_factory.mktemp("home")
    (h / "models").symlink_to(default_model_gguf.parent, target_is_directory=True)
    return h


def ask(script: str, *questions: str, home: Path) -> list[tuple[str, list[str]]]:
    """[(answer, cited file names)] per question, from the example's own printout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATLOOM_")} | {"CHATLOOM_HOME": str(home)}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *questions], capture_output=True, text=True, env=env, timeout=900
    )
    assert done.returncode == 0, done.stderr[-2000:]
    replies: list[tuple[str, list[str]]] = []
    answering = False
    for line in done.stdout.splitlines():
        if line.startswith("A: "):
            replies.append((line[3:], []))
            answering = True
        elif line.startswith("   [") and replies:
            replies[-1][1].append(line.split("]", 1)[1].split("›")[0].split("(")[0].strip())
            answering = False
        elif answering and line.strip():
            replies[-1] = (replies[-1][0] + "\n" + line, replies[-1][1])
        else:
            answering = False
    assert len(replies) == len(questions), done.stdout
    return replies


@pytest.mark.integration
@pytest.mark.slow
def test_korean_hr_bot_answers_with_the_procedure_and_a_citation(home):
    (leave, leave_cites), (parking, parking_cites) = ask(
        "hr_bot_ko/bot.py", "회사 연차 신청은 어떻게 하나요?", "회사 주차장은 몇 대까지 주차할 수 있나요?", home=home
    )
    assert "근태" in leave or "휴가 신청" in leave, leave
    assert "연차휴가.md" in leave_cites, (leave, leave_cites)
    assert parking == "지식 베이스에서 관련 내용을 찾지 못했습니다." and parking_cites == []


@pytest.mark.integration
@pytest.mark.slow
def test_english_hr_bot_answers_with_the_figure_and_a_citation(home):
    [(hotel, cites)] = ask("hr_bot/bot.py", "What is the hotel limit when I travel?", home=home)
    assert "150" in hotel, hotel
    assert "expenses.md" in cites, (hotel, cites)


@pytest.mark.integration
@pytest.mark.slow
def test_korean_hr_bot_talks_translates_and_finds_a_paraphrased_fact(home):
    # Issue 29: the grounded bot answered greetings and translations with the abstention, and
    # abstained when the question's words ("넘어가나요") were not the handbook's ("이월").
    abstain = "지식 베이스에서 관련 내용을 찾지 못했습니다."
    (hello, hello_cites), (translated, _), (carry, carry_cites), (thanks, thanks_cites) = ask(
        "hr_bot_ko/bot.py",
        "안녕하세요",
        "Translate 'good morning' into Korean.",
        "남은 연차는 다음 해로 넘어가나요?",
        "고마워요",
        home=home,
    )
    assert hello.strip() and abstain not in hello and hello_cites == [], hello
    assert any(word in translated for word in ("좋은 아침", "안녕")), translated
    assert "5일" in carry and "연차휴가.md" in carry_cites, (carry, carry_cites)
    assert thanks.strip() and abstain not in thanks and thanks_cites == [], thanks
