"""Routes: what kind of request a turn is, so each kind gets the help it needs.

- ``conversation``: greetings, thanks, "who are you", questions about the chat itself;
- ``task``: work on text the user supplies or asks for: translate, rewrite, summarise, write, code;
- ``calculation``: figures the user gives, to compute with;
- ``knowledge``: a question of fact about the knowledge domain.

Only knowledge answers need passages (and are cited or abstained); every other kind gets the
model's own answer. The route is decided by meaning: the request's multilingual embedding is
compared with a few example requests of each kind (:data:`EXAMPLES`, written for chatloom, in
Korean and English), so new wording and other languages route as their nearest examples do.
Three structural signals are kept because they are exact: a request that is only an
arithmetic expression is a calculation, one with no digit never is ("수수료는 얼마인가요?"),
and one that brings text of its own to work on (:func:`brings_text`) is a task, not small talk.
"""

from __future__ import annotations

import functools
import re

from chatloom.agents.grounding import terms
from chatloom.agents.meaning import MeaningScorer
from chatloom.agents.reply import Route

ROUTES: tuple[Route, ...] = ("conversation", "task", "calculation", "knowledge")

EXAMPLES: dict[Route, tuple[str, ...]] = {
    "conversation": (
        "hello",
        "hey, good morning!",
        "안녕",
        "안녕하세요, 처음 뵙겠습니다",
        "좋은 아침이에요",
        "thank you so much",
        "thanks a lot, that was useful",
        "감사합니다!",
        "정말 도움이 됐어요, 고맙습니다",
        "okay, got it",
        "알겠어요",
        "bye, see you later",
        "잘 가요, 다음에 또 봐요",
        "who are you?",
        "what are you?",
        "너는 누구야?",
        "당신은 어떤 챗봇인가요?",
        "what can you do for me?",
        "어떤 걸 물어볼 수 있어요?",
        "how are you today?",
        "잘 지내요?",
        "what was my last question?",
        "방금 내가 뭐라고 했지?",
        "please repeat that in simpler words",
        "다시 한 번 짧게 말해 줄래요?",
        "nice to meet you",
        "반가워요",
        "sorry, my mistake",
        "미안해요",
        "great job!",
        "좋아요, 훌륭해요",
    ),
    "task": (
        "Translate 'where is the station?' into Japanese.",
        "이 문장을 영어로 번역해 줘: 오늘 회의는 취소되었습니다.",
        "'잘 부탁드립니다'를 영어로 옮겨 주세요.",
        "How do you say 'happy birthday' in Korean?",
        "Rewrite this email so it sounds friendlier: send me the file now.",
        "이 문장을 더 정중하게 바꿔 줘: 빨리 답장해.",
        "Summarize this paragraph in one sentence: The meeting covered budgets, hiring and the new office.",
        "다음 글을 세 줄로 요약해 주세요: 올해 매출은 늘었지만 비용도 크게 증가했다.",
        "Write a short poem about autumn.",
        "가을에 관한 짧은 시를 써 줘.",
        "Write a birthday message for my colleague.",
        "동료에게 보낼 생일 축하 메시지를 써 주세요.",
        "Draft an apology email to a customer whose order was late.",
        "고객에게 보낼 사과 메일 초안을 작성해 줘.",
        "Correct the spelling: 'I recieved the pakage yesterday'",
        "맞춤법을 고쳐 주세요: 어의없는 일이 생겼어요",
        "Write a Python function that reverses a string.",
        "파이썬으로 리스트를 정렬하는 코드를 짜 줘.",
        "Suggest five titles for a blog post about travel.",
        "회의 이름 아이디어 세 개만 주세요.",
        "Make this sentence shorter: we would like to kindly remind you about the deadline.",
        "이 문장을 반말로 바꿔 줘: 내일 만나요.",
        "Give me a catchy slogan for a bakery.",
        "Turn these notes into a bullet list: milk, eggs, bread.",
        "Explain this code: for i in range(3): print(i)",
    ),
    "calculation": (
        "What is 48 times 12?",
        "23 곱하기 7은 얼마야?",
        "What is 20% of 350?",
        "350의 20%는 얼마인가요?",
        "Convert 10 miles to kilometers.",
        "10마일은 몇 킬로미터예요?",
        "If I buy 4 books at 12 dollars each, how much do I pay?",
        "사과 3개에 1,200원이면 사과 10개는 얼마예요?",
        "A train goes 60 km per hour. How far does it go in 2.5 hours?",
        "한 시간에 60킬로미터를 가면 3시간에 몇 킬로미터를 가나요?",
        "Split a 90,000 won bill among 4 people.",
        "How many minutes are in 3.5 hours?",
        "What is the square root of 144?",
        "100달러를 3명이 똑같이 나누면 얼마씩이에요?",
        "What is half of 90?",
        "What is 45 tripled?",
        "How much is 7 squared?",
        "8의 두 배는 얼마예요?",
        "How many inches are 30 centimeters?",
    ),
    "knowledge": (
        "How do I apply for annual leave?",
        "연차 신청은 어떻게 하나요?",
        "What is the refund policy?",
        "환불은 며칠 안에 되나요?",
        "Who is the contact person for payroll questions?",
        "급여 문의는 누구에게 하나요?",
        "When was the company founded?",
        "이 회사는 언제 설립되었나요?",
        "How many days of sick leave do we get?",
        "병가는 며칠까지 쓸 수 있어요?",
        "Where is the head office located?",
        "본사는 어디에 있나요?",
        "What documents do I need to submit for reimbursement?",
        "경비 정산에 필요한 서류는 무엇인가요?",
        "Who wrote the novel that the film was based on?",
        "그 전투에서 프랑스군을 지휘한 장군은 누구인가?",
        "Which team won the championship in 1998?",
        "이 조약이 체결된 해는?",
        "What is the maximum transfer limit per day?",
        "하루 송금 한도는 얼마인가요?",
        "Can I use my card overseas?",
        "해외에서도 카드를 쓸 수 있나요?",
        "What does the policy say about remote work?",
        "재택근무 규정은 어떻게 되나요?",
        "Summarize our leave policy.",
        "우리 회사 출장비 규정을 요약해 줘.",
        "What is the name of the album released in 2005?",
        "그 선수가 처음 데뷔한 구단의 이름은?",
        "조선을 건국한 인물은?",
        "이 사건이 일어난 도시는 어디인가?",
        "그 소설을 쓴 작가가 태어난 나라는?",
        "전쟁이 끝난 뒤 체결된 조약의 이름은?",
        "회사가 처음 출시한 제품은 무엇인가?",
        "이 법안을 처음 제안한 정치인은 누구인가?",
        "Which river flows through the capital?",
        "In what year did the war end?",
        "What was the name of the ship that sank in the storm?",
        "Who succeeded the king after his death?",
        "Which of the two bands was formed earlier, the one from Leeds or the one from Oslo?",
        "Were the painter and the sculptor born in the same country?",
        "What nationality is the director of the 1994 documentary about the harbour?",
        "The novelist who wrote the trilogy was born in which city?",
        "In which county is the castle that the earl rebuilt in 1620?",
        "What award did the actress who starred in the series win in 2010?",
        "How many members did the party that won the election have in parliament?",
        "The river that flows past the old mill joins which larger river?",
    ),
}

_FIGURE = re.compile(r"\d")
# Quoted words (not an apostrophe: "What's", "park's"), three words after a colon (not a time,
# "9:00"), a second line.
_OWN_TEXT = re.compile(
    r"(?<!\w)['\"‘“「『][^'\"’”」』]{2,}['\"’”」』](?!\w)|(?<!\d):(?!\d)\s*\S+(?:\s+\S+){2,}|\n\s*\S", re.DOTALL
)
SMALL_TALK_TERMS = 4
"""A request naming more things than this is not small talk, whatever its nearest examples: the
longest of the route examples names four ("thanks a lot, that was useful"), while questions
about an article name six and more ("The Argentine former footballer who replaced Ronald
Koeman ... was born when?" was routed conversation by its nearest examples)."""
TOP = 3
"""A route's score is the mean similarity of its ``TOP`` nearest examples (robust to one outlier)."""


def route_request(text: str, scorer: MeaningScorer) -> tuple[Route, dict[Route, float]]:
    """The route of ``text`` and every route's score (mean similarity to its nearest examples)."""
    from chatloom.arithmetic import expression_asked

    scores = _scores(text, scorer)
    if expression_asked(text) is not None:
        return "calculation", scores
    # A calculation works on figures the request gives; "수수료는 얼마인가요?" gives none.
    candidates = ROUTES if _FIGURE.search(text) else tuple(r for r in ROUTES if r != "calculation")
    if len(terms(text)) > SMALL_TALK_TERMS:  # it names too much to be small talk
        candidates = tuple(r for r in candidates if r != "conversation")
    route = max(candidates, key=lambda r: scores[r])
    if route == "conversation" and brings_text(text):
        return "task", scores  # "Translate 'thank you very much'": the quoted words are the work
    return route, scores


def brings_text(request: str) -> bool:
    """Whether ``request`` carries text of its own to work on: quoted words, text after a
    colon, or lines after the first.

    >>> brings_text("Fix the grammar: he go to school"), brings_text("Write a poem about autumn.")
    (True, False)
    """
    return bool(_OWN_TEXT.search(request))


def _scores(text: str, scorer: MeaningScorer) -> dict[Route, float]:
    out: dict[Route, float] = {}
    sims = scorer.similarities(text, list(_all_examples()), kind="query")
    at = 0
    for route in ROUTES:
        n = len(EXAMPLES[route])
        top = sorted(sims[at : at + n], reverse=True)[:TOP]
        out[route] = sum(top) / len(top)
        at += n
    return out


@functools.cache
def _all_examples() -> tuple[str, ...]:
    return tuple(e for route in ROUTES for e in EXAMPLES[route])
