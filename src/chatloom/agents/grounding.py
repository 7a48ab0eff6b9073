"""Grounding: an answer states what the retrieved passages (or tool results) say, cites them,
or says in the user's language that the knowledge base does not cover the question.

Small local models cannot be trusted to follow "answer only from the sources" on their own:
they copy facts from the wrong passage, invent figures, and rarely write citations. So the
checks here run outside the model. With a meaning scorer (:mod:`chatloom.agents.meaning`, the
default wherever the ``memory`` extra is installed) they read meaning first:

- :func:`passages_by_meaning` keeps the passages with a sentence that answers the question by
  meaning (multilingual-e5, so new wording and another language still match), before the model
  is called;
- :func:`linked_sentences` picks, per passage, the sentences about the question: only they may
  back a claim, so a name found elsewhere in a passage is not linked to the question's subject;
- :func:`check_answer` splits the model's answer into sentences and decides which ones the
  evidence backs (their new terms appear there, and every figure is found there or computed
  from found figures), cites each with its passage, and leaves the rest out of a knowledge
  answer; when nothing is backed it falls back to the passage sentence that best answers the
  question (not marked grounded: nothing checked that it answers), or to the abstention.

Without a scorer the same steps run on words alone (:func:`relevant_passages`'s term coverage,
:data:`RELEVANCE_THRESHOLD`, :data:`EXTRACTIVE_THRESHOLD`, :data:`QUOTE_THRESHOLD`), as before
turns were routed. Terms come from :func:`chatloom.memory.keyword.tokenize`, which splits Hangul
into morphemes, so "자기계발비는" and "자기계발비" are the same term.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatloom.agents.language import (
    ABSTAIN,
    ASK_WITH_PASSAGES,
    ASKING_KO,
    ATTRIBUTE_ASKED,
    COUNT,
    COUNTER_NORMAL,
    EXTRACTIVE_LEAD,
    HANGUL,
    IF_NOT_FOUND,
    OTHER_LANGUAGE,
    PASSAGE_HEAD,
    PASSAGE_LABELS,
    QUESTION_LABELS,
    abstention,
    asking_terms,
    is_abstention,
    korean_counts_as_digits,
    language_of,
)
from chatloom.arithmetic import KOREAN_MULTIPLIER_WORDS, KOREAN_MULTIPLIERS, finish_equation

if TYPE_CHECKING:
    from chatloom.agents.meaning import MeaningScorer


RELEVANCE_THRESHOLD = 0.25
"""Least weighted share of the question's terms a passage must hold to count as relevant, where
words decide: without a meaning scorer, or for a passage in another language than the question
under an English-only index."""
SUPPORT_THRESHOLD = 0.6
"""Least share of a sentence's new terms (not in the question) one passage must hold."""
EXTRACTIVE_THRESHOLD = 0.5
"""Without a meaning scorer: the least question coverage for a passage sentence to stand in for
an unsupported answer."""
QUOTE_THRESHOLD = 0.4
"""Without a meaning scorer: the least question coverage for a passage sentence to be quoted
after an answer that missed it: lower than the bar for replacing an answer, since a quote only
adds a cited line."""

MEANING_RELEVANCE = 0.85
"""Least meaning score (e5 cosine, question to sentence) of a passage's best sentence for the
passage to count as answering the question. Calibrated on the tune half of the dev sets
(benchmarks/bench_grounding.py, docs/grounding.md)."""
MEANING_RELEVANCE_WITH_WORDS = 0.82
"""The least meaning score for a passage that also holds half of the question's specific terms
(weighted by rarity, see :func:`relevant_passages`)."""
MEANING_RELEVANCE_ACROSS = 0.78
"""The same for a passage in another language than the question: e5 scores such pairs lower."""
MEANING_MARGIN = 0.04
"""How far below the best sentence's score a sentence may be and still be about the question."""
PASSAGE_MARGIN = 0.01
"""How far below the best passage's score a passage may be and still be shown: a small model
shown several near-misses answers from the wrong one (it mixed the leave-days passage into
"연차 신청은 어떻게 하나요?")."""
MEANING_EXTRACT = 0.86
"""Least meaning score of the best sentence to stand in, cited, for an unsupported answer."""
BRIDGE_RELEVANCE = 0.8
"""Least meaning score for a passage that a shown passage names by its heading to be shown too
(see :func:`passages_by_meaning`): the second step of a two-step question doesn't read like the
question ("the singer who popularized X": the singer's page scored 0.83), but a page about
something else still scores lower (0.77)."""
NEIGHBOUR_MARGIN = 0.06
"""A sentence next to one about the question counts too when it is this close to the best: it
often names what the other calls "it" or "he", but one far off is about something else (the
club's chair in a leave passage)."""
LINKED_SENTENCES = 6
"""How many of the best-answering sentences (with their neighbours) a claim may draw on."""
_WORD = re.compile(r"[^\W_]")  # a letter or digit of any script
_WORDS = re.compile(r"[^\W_]+")  # words and figures
_WORD_RUN = re.compile(r"[^\W\d_]+")  # a word of letters, any script
_CITE = re.compile(r"\s*\[(\d{1,3})\]")
# Also "[1" cut off at the end of a reply, and lists such as "[1, 2, 3]".
_CITE_LOOSE = re.compile(r"\s*\[\d{0,3}(?:\s*,\s*\d{1,3})*\]?(?=\W|$)")
# Small models copy the passage headers into their answer ("[1] (faq.md):", "Passage [2]:").
_ECHOED_HEADER = re.compile(
    rf"^[ \t]*(?:(?:{'|'.join(PASSAGE_LABELS)})\s*)?\[\d{{1,3}}\][ \t]*(?:\([^)\n]{{0,200}}\))?[ \t]*[:.]?[ \t]*",
    re.MULTILINE,
)
# A passage's label (see passage_label) copied into the answer, "faq.md › Leave:" or
# "(faq.md › Leave)": small models imitate the passage headers. The citations show the labels
# already. A file name (no spaces, a letter extension: not "1.2") then " › " marks it.
_LABEL_NAME = r"(?<![^\s(])[^\s›:()\[\]\d][^\s›:()\[\]]*\.[A-Za-z]\w{0,4}"
_ECHOED_LABEL = re.compile(
    rf"\(\s*{_LABEL_NAME} › [^\n()›]{{1,200}}?\)[ \t]*:?[ \t]*|{_LABEL_NAME} › [^\n:()›]{{1,200}}?:[ \t]*"
)
_ECHOED_PROMPT = re.compile(rf"(?:^|\n|(?<=[.!?。]))\s*(?:{'|'.join(QUESTION_LABELS)})\s*:")
_CLAUSE = re.compile(r"(?<=[,;])\s+")
_ASKS = re.compile(r"[?？]\s*$")
_CITES_ONLY = re.compile(r"^(\s*\[\d{1,3}\])+[\s.。]*$")
_FENCE = re.compile(r"```.*?(```|$)", re.DOTALL)
_LIST_MARK = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])(?:\s+|$)", re.MULTILINE)
# Phone numbers, dates, times, versions: matched as written, never as arithmetic.
_IDENT = re.compile(r"\d+(?:[-:/]\d+)+")
_NUMBER = re.compile(rf"(?<![\w.])(\d+(?:,\d{{3}})*(?:\.\d+)?)\s*({KOREAN_MULTIPLIER_WORDS})?")
_FIGURE_WITH_UNIT = re.compile(_NUMBER.pattern + r"\s*[^\W\d_]{0,5}")  # "200만 원", "1,000포인트", "5 miles"
_SENTENCE_END = re.compile(r"(?<=[.!?。])\s+|\n+")


def without_citations(text: str) -> str:
    """``text`` without citation markers: for an answer that cites nothing (no passage was
    shown), where a "[1]" the model wrote out of habit points nowhere.

    >>> without_citations('[1] "See you tomorrow" [2] "내일 봐요"')
    '"See you tomorrow" "내일 봐요"'
    """
    return re.sub(r"[ \t]{2,}", " ", _CITE_LOOSE.sub(" ", text)).strip()


def terms(text: str) -> frozenset[str]:
    """The content terms of ``text`` (morphemes for Hangul, stems for Latin script)."""
    return _terms(_CITE_LOOSE.sub(" ", text))


@functools.lru_cache(maxsize=1024)
def _terms(text: str) -> frozenset[str]:
    # Cached: one turn compares the same passages in the relevance filter, the answer check and
    # the extractive fallback, and morphological analysis is the costly part.
    from chatloom.memory.keyword import tokenize

    text = korean_counts_as_digits(text)
    counts = {f"{n}{COUNTER_NORMAL.get(unit, unit)}" for n, unit in COUNT.findall(text)}
    return frozenset(tokenize(text)) - asking_terms() | counts


def numbers(text: str, identifiers: bool = True) -> set[str]:
    """The numbers ``text`` states, normalised: ``"200만 원"`` -> ``"2000000"``, ``"1,500"`` -> ``"1500"``.

    Identifiers such as phone numbers and dates (``1588-0000``) are kept as written, unless
    ``identifiers`` is off (for arithmetic, where ``13-10`` is two numbers). Citation markers
    and list numbering are not numbers of the text.

    >>> sorted(numbers("1회 최대 200만 원, 수수료 1,500원 [2]. 문의: 1588-0000"))
    ['1', '1500', '1588-0000', '2000000']
    """
    text = _LIST_MARK.sub(" ", _CITE_LOOSE.sub(" ", text))
    found = set(_IDENT.findall(text)) if identifiers else set()
    text = _IDENT.sub(" ", text) if identifiers else text
    for digits, unit in _NUMBER.findall(text):
        value = float(digits.replace(",", "")[:30]) * KOREAN_MULTIPLIERS.get(unit, 1)
        if math.isfinite(value):
            found.add(_normal(value))
    return found


def _normal(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.6g}"


@dataclass(frozen=True)
class Evidence:
    """What an answer may draw on: the passages shown to the model, tool results, the question."""

    passages: tuple[str, ...] = ()
    tool_results: tuple[str, ...] = ()
    question: str = ""
    linked: tuple[str, ...] | None = None
    """Per passage, the text of its sentences that are about the question (see
    :func:`linked_sentences`), or None to let the whole passage count. A claim is supported only
    by what these say: an entity elsewhere in a passage is not linked to the question's subject."""
    best_lines: tuple[tuple[float, int, str], ...] = ()
    """(meaning score, passage index, sentence) of the sentences that best answer the question,
    best first; empty when no scorer judged them (the word-based ranking is used instead)."""


@dataclass(frozen=True)
class Checked:
    """The outcome of :func:`check_answer`."""

    answer: str
    """The answer to show: citations fixed, or the fallback that replaced the model's text."""
    grounded: bool
    """True when every claim in ``answer`` is supported (an abstention is grounded too)."""
    unsupported: tuple[str, ...] = ()
    """Sentences of ``answer`` (as shown) that no passage or tool result supports."""
    left_out: tuple[str, ...] = ()
    """Sentences of the model's answer that nothing supports and that are not shown: left out of
    a knowledge answer, or the whole draft a fallback replaced (kept for the trace)."""
    fallback: str = ""
    """``"abstain"`` or ``"extractive"`` when the model's answer was replaced, else ``""``."""


def relevant_passages(
    question: str,
    passages: Sequence[str],
    threshold: float = RELEVANCE_THRESHOLD,
    across_languages: bool = True,
    scorer: MeaningScorer | None = None,
) -> list[int]:
    """Indexes of the passages that answer the question: by meaning with a ``scorer`` (see
    :func:`passages_by_meaning`), else those that hold enough of the question's specific terms.

    A term found in every retrieved passage (a product name, "company") says little about
    which passage answers; a rare one says much, so terms are weighted by their rarity among
    ``passages``. Passages in another language than the question (an English question over
    Korean documents) can't be compared word by word, so they are all kept when the search
    matched them by meaning (``across_languages``: a multilingual embedder). When it could not
    have (a Korean question over English documents indexed by MiniLM), only shared words count:
    the Latin ones of "chatloom ingest는 어떤 파일을 읽나요?" still find the ingest section.
    """
    if not passages:
        return []
    if scorer is not None:
        return passages_by_meaning(question, passages, scorer, across_languages)
    if across_languages and any(language_of(p) != language_of(question) for p in passages):
        return list(range(len(passages)))
    q = terms(question)
    if not q:
        return list(range(len(passages)))
    held = [terms(p) for p in passages]
    if _uncovered_topic(question, held):
        return []
    return [i for i, share in enumerate(_coverage(q, held)) if share >= threshold]


def _uncovered_topic(question: str, held: Sequence[AbstractSet[str]]) -> bool:
    """Whether the question is about something no passage mentions: its topic ("퇴직금은 언제
    지급되나요?") is in none of them.

    Such passages can still share the question's other words ("지급", "다음 달"), and a small
    model then answers from them about the wrong thing: a handbook without a word on severance
    pay "said" it is paid with next month's salary, which is what it says of travel expenses.
    Only when *no* passage names the topic: a passage about the topic that doesn't repeat it
    (the product's name, written once in the title) is not dropped for that.
    """
    from chatloom.memory.keyword import korean_topics

    topics = [t for t in korean_topics(question) if not set(t) <= ASKING_KO and not _asked_for(t, question)]
    return bool(topics) and not any(set(topic) <= h for topic in topics for h in held)


def _asked_for(topic: tuple[str, ...], question: str) -> bool:
    """Whether ``topic`` is what the question asks for, not what it is about: nothing but asking
    words follows it ("…버틴 장수는?", "…멸망한 연도는?", "가수의 이름은 무엇인가?"). The
    answer's kind ("장수", "연도") is rarely written in the passage that names the answer."""
    at = question.rfind("".join(topic))
    if at < 0:
        return False
    after = question[at + len("".join(topic)) + 1 :]
    # "수수료는 얼마인가요?", "언제", "몇": a figure or a date of the topic is asked for.
    return not terms(after) and not ATTRIBUTE_ASKED.search(after)


def _coverage(q: AbstractSet[str], docs: Sequence[AbstractSet[str]]) -> list[float]:
    """The weighted share of the question's terms ``q`` each doc holds.

    Weights are IDF-like over ``docs`` themselves: a term every doc has counts least.
    """
    n = len(docs)
    weights = {w: math.log(1 + n / max(sum(w in d for d in docs), 0.5)) for w in q}
    total = sum(weights.values()) or 1.0
    return [sum(weights[w] for w in q & d) / total for d in docs]


def sentence_scores(question: str, passages: Sequence[str], scorer: MeaningScorer) -> list[tuple[float, int, str]]:
    """(meaning score, passage index, sentence) of every sentence of ``passages``, in passage
    order; the score is how well the sentence answers ``question`` (e5 query to passage).

    A passage's heading line (its section, "출장비 > 정산") is read with its first sentence:
    it often names the subject that the sentence leaves out.
    """
    rows: list[tuple[int, str, list[str]]] = []  # (passage, sentence as shown, texts scored for it)
    for i, passage in enumerate(passages):
        heading = _heading(passage)
        statements = [s for s in _passage_sentences(passage) if len(_WORDS.findall(s)) >= 2]  # not a label
        for n, sentence in enumerate(statements):
            scored = [f"{heading} {sentence}".strip() if n == 0 and heading else sentence]
            # A sentence that lists several facts ("rail in standard class, ..., hotels up to 150
            # EUR a night") is scored by its best clause too: the whole dilutes each part.
            clauses = [c for c in _CLAUSE.split(sentence) if len(_WORDS.findall(c)) >= 3]
            rows.append((i, sentence, scored + clauses if len(clauses) > 1 else scored))
    flat = [text for _, _, texts in rows for text in texts]
    scores = iter(scorer.similarities(question, flat))
    out = []
    for i, sentence, texts in rows:
        out.append((max(next(scores) for _ in texts), i, sentence))
    return out


def passages_by_meaning(
    question: str, passages: Sequence[str], scorer: MeaningScorer, across_languages: bool = True
) -> list[int]:
    """Indexes of the passages with a sentence that answers ``question`` by meaning (see
    :data:`MEANING_RELEVANCE`), and not far below the best passage's (:data:`PASSAGE_MARGIN`).

    A passage in another language than the question counts by meaning only when the search
    matched them by meaning (``across_languages``, a multilingual index: an English question
    over Korean documents scored 0.82 to 0.84). Under an English-only index a Korean question's
    nearest passages are noise, and e5-small can't tell them apart either (a Korean question on
    severance pay scored 0.796 against an English leave sentence, one on leave 0.787), so only
    the words they share count there, as without a scorer.
    """
    best: dict[int, float] = {}
    for score, i, _ in sentence_scores(question, passages, scorer):
        best[i] = max(best.get(i, 0.0), score)
    if not best:
        return []
    lang = language_of(question)
    held = [terms(p) for p in passages if language_of(p) == lang]
    if held and _uncovered_topic(question, held):  # words can't be compared across languages
        return []
    top = max(best.values())
    q = terms(question)
    shares = _coverage(q, [terms(p) for p in passages]) if q else [0.0] * len(passages)

    def answers(i: int) -> bool:
        if language_of(passages[i]) != lang:
            return best[i] >= MEANING_RELEVANCE_ACROSS if across_languages else shares[i] >= RELEVANCE_THRESHOLD
        # Close by meaning, or nearly so and holding most of the question's specific words: e5
        # scores a short question against a long sentence low ("What is the hotel limit?" 0.842
        # against the sentence listing rail, flights, hotels and meals).
        return best[i] >= MEANING_RELEVANCE or (best[i] >= MEANING_RELEVANCE_WITH_WORDS and shares[i] >= 0.5)

    chosen = [i for i in sorted(best) if answers(i) and best[i] >= top - PASSAGE_MARGIN]
    # A passage that a chosen one names (by its heading) joins it: "the singer who popularized
    # X" is answered by the singer's page, which X's page names, not the question.
    named = [
        i
        for i in sorted(best)
        if i not in chosen and best[i] >= BRIDGE_RELEVANCE and _named_in(passages[i], passages, chosen)
    ]
    return sorted(chosen + named)


def _named_in(passage: str, passages: Sequence[str], chosen: Sequence[int]) -> bool:
    """Whether the heading of ``passage`` (its subject) is named in the text of a chosen passage."""
    name = _heading(passage)
    return len(name) >= 3 and any(name in passages[j].partition("\n")[2] for j in chosen)


def linked_sentences(question: str, passages: Sequence[str], scorer: MeaningScorer) -> Evidence:
    """The evidence of ``passages`` for ``question`` judged by meaning: per passage, the text of
    the sentences about the question (the best ones, within :data:`MEANING_MARGIN` of the best,
    each with the sentences before and after it that are within :data:`NEIGHBOUR_MARGIN`), and
    the sentences that best answer it."""
    scored = sentence_scores(question, passages, scorer)
    if not scored:
        return Evidence(passages=tuple(passages), question=question, linked=("",) * len(passages))
    order = sorted(range(len(scored)), key=lambda at: -scored[at][0])
    top = scored[order[0]][0]
    keep: set[int] = set()
    for at in order[:LINKED_SENTENCES]:
        if scored[at][0] < top - MEANING_MARGIN:
            break
        keep.add(at)
        keep |= {
            j
            for j in (at - 1, at + 1)
            if 0 <= j < len(scored) and scored[j][1] == scored[at][1] and scored[j][0] >= top - NEIGHBOUR_MARGIN
        }
    about = [[_heading(p)] for p in passages]  # the heading names what the sentences are about
    for at in sorted(keep):
        _, i, sentence = scored[at]
        about[i].append(sentence)
    linked = tuple(" ".join(parts).strip() if len(parts) > 1 else "" for parts in about)
    best = tuple(scored[at] for at in order[:LINKED_SENTENCES])
    return Evidence(passages=tuple(passages), question=question, linked=linked, best_lines=best)


def _heading(passage: str) -> str:
    """A passage's heading lines ("# 연차휴가 > 연차 신청 방법") as one text, without the marks."""
    return " ".join(s.lstrip("# ").strip() for s in _sentences(passage) if s.startswith("#"))


def check_answer(answer: str, evidence: Evidence, strict: bool = True, quote: bool = False) -> Checked:
    """Check ``answer`` against ``evidence``; cite supported sentences; replace an unsupported answer.

    A sentence is a claim when it adds terms the question doesn't have, or states a number.
    A claim is supported by a passage (or tool result) that holds most of its new terms and
    every number it states, where a number also counts as found when the answer computes it
    from found numbers ("300,000 × 2% = 6,000") or a short computation gives it (see
    :func:`_computed`).
    With evidence judged by meaning (``evidence.linked``) and ``strict`` on, the sentences
    nothing backs are left out (``Checked.left_out``) and what is shown is grounded.
    With ``strict`` off, an unsupported answer is reported (``grounded=False``) but kept.
    With ``quote`` on, an answer that leaves out what the best-matching passage line says gets
    that line quoted after it (see :func:`_quote_if_missed`).
    """
    question = evidence.question
    answer = _ECHOED_PROMPT.split(_ECHOED_LABEL.sub("", _ECHOED_HEADER.sub("", answer)), 1)[0].strip()
    if is_abstention(answer):
        return Checked(abstention(question), grounded=True)
    if not _WORD.search(_CITE_LOOSE.sub("", answer)):  # nothing said ("[1] [2]", "[1, 2, 3]")
        return _fallback(evidence, ())
    sources = [*evidence.passages, *evidence.tool_results]
    # A claim is supported by what a source says about the question: with a meaning judgement
    # (evidence.linked), only a passage's sentences about the question count, figures included
    # (the meal limit doesn't back a hotel limit).
    supporting = [*(evidence.linked or evidence.passages), *evidence.tool_results]
    source_terms = [terms(s) for s in supporting]
    source_numbers = [numbers(s) for s in supporting]
    known = set().union(numbers(question), *source_numbers)
    known |= _computed(answer, known, question)
    q_terms = terms(question)

    out: list[tuple[str, bool]] = []  # (sentence as shown, whether it starts a line)
    unsupported: list[str] = []
    supported_claims = 0
    seen: set[str] = set()
    frames: set[str] = set()  # the claims said so far with their figures blanked (see _claim_frame)
    for sentence, new_line in _line_starts(answer, _sentences(answer)):
        key = _CITE.sub("", sentence).strip(" .")
        frame = _claim_frame(key) if evidence.passages else None
        if key in seen or frame in frames:
            continue  # small models loop: a repeated sentence (or claim) is said once
        seen.add(key)
        if frame is not None:
            frames.add(frame)
        if evidence.passages and _ASKS.search(key):
            continue  # the question echoed back ("1년에 며칠까지 쓸 수 있나요 [2]?"): not an answer
        body = _LIST_MARK.sub(" ", _FENCE.sub(" ", sentence))
        nums = numbers(body)
        new = {t for t in terms(body) - q_terms if _script([t]) != "num"}  # figures: checked as nums
        best = _best_support(new, nums, known, source_terms, source_numbers) if new or nums else None
        if not new and not nums:
            shown = _strip_bad_cites(sentence, len(evidence.passages))
        elif best is None and not sources and nums and nums <= known:
            supported_claims += 1  # pure arithmetic on the question's own figures, checked above
            shown = sentence
        elif best is None:
            unsupported.append(sentence.strip())
            # Judged by meaning, a knowledge answer shows only what the passages back: the rest
            # of a pasted paragraph, or an entity from elsewhere, is left out (kept in the trace).
            shown = "" if strict and evidence.linked is not None else _strip_bad_cites(sentence, len(evidence.passages))
        else:
            supported_claims += 1
            shown = _cite(sentence, best, len(evidence.passages))
        out.append((shown, new_line))
    if not supported_claims and (unsupported or evidence.passages) and strict:
        # Nothing supported, or no claim at all although passages were given.
        return _fallback(evidence, unsupported)
    checked = _join(out)
    if quote:
        checked = _quote_if_missed(checked, question, evidence.passages, evidence.best_lines)
    if strict and evidence.linked is not None:  # the unsupported sentences were left out
        return Checked(checked, grounded=True, left_out=tuple(unsupported))
    return Checked(checked, grounded=not unsupported, unsupported=tuple(unsupported))


def _claim_frame(sentence: str) -> str | None:
    """``sentence`` with its figures (and their units) blanked, or None when it has no figure or
    the frame is too short to be a claim ("# 원", "Day #: # miles").

    Two sentences with one frame are the same claim with other figures: a small model listing
    every figure of the passages as the answer ("The maximum single transfer is 200만 원. The
    maximum single transfer is 500만 원. …"). Only the first, the model's own pick, is kept:
    contradicting claims would each look supported.
    """
    frame = _FIGURE_WITH_UNIT.sub("#", sentence)
    if frame == sentence or len(_WORD_RUN.findall(frame)) < 4:
        return None
    return frame


def _best_support(
    new: set[str],
    nums: set[str],
    known: set[str],
    source_terms: Sequence[AbstractSet[str]],
    source_numbers: Sequence[set[str]],
) -> int | None:
    """The index of the source that best supports a claim, or None.

    Only terms in the source's script can be compared ("chatloom" in a Korean sentence about
    English docs can; 웹사이트 can't). A claim with nothing comparable and no figure (a Korean
    sentence about English passages) can't be checked, so it is not supported.
    """
    if nums - known or not source_terms:
        return None  # a figure that no source gives and nothing computes: invented
    best, best_rank = None, (0.0, 0.0)
    for i, (t, n) in enumerate(zip(source_terms, source_numbers)):
        script = _script(t)
        comparable = {w for w in new if _script({w}) == script}
        if not comparable and not nums:
            continue
        # The claim's figures were checked above (found or computed); they count as matched.
        share = (len(comparable & t) + len(nums)) / (len(comparable) + len(nums))
        rank = (share, len(nums & n) / len(nums) if nums else 0.0)  # then: states the figures
        if share >= SUPPORT_THRESHOLD and rank > best_rank:
            best, best_rank = i, rank
    return best


def _script(words: Iterable[str]) -> str:
    """ "ko" when any word has Hangul, "num" for figures only, else "en"."""
    words = [w for w in words if not w.replace(".", "").isdigit()]
    if not words:
        return "num"
    return "ko" if any(HANGUL.search(w) for w in words) else "en"


def _computed(answer: str, known: set[str], question: str = "") -> set[str]:
    """Numbers the answer computes from known numbers, checked with the calculator.

    Covers "a op b = c" written in the answer (each step may use an earlier step's result) and
    one arithmetic step from a figure of the question (2% of 300,000 is 6,000), or two when
    the first starts there ("13 transfers, 10 free": 13 - 10 = 3, then 3 x 500), and a sum or
    difference of two figures the sources give.
    """
    found: set[str] = set()
    text = _CITE.sub(" ", answer)
    for m in re.finditer(r"=\s*([\d,]+(?:\.\d+)?)", text):
        value = finish_equation(text[: m.start() + 1].replace("×", "*").replace("÷", "/"))
        if value is None:
            continue
        written = _normal(float(m.group(1).replace(",", "")))
        operands = numbers(re.split(r"[=\n.:]\s", text[: m.start()])[-1])
        # The calculator writes thousands separators when the operands had them ("10,000").
        if _normal(float(value.replace(",", ""))) == written and operands <= known | found:
            found.add(written)
    values = _plain(known)[:40]
    # Between two figures the sources give, only a sum or a difference ("5 days more"): with
    # products and quotients too, some pair of a page's figures makes almost any round number
    # (200만 / 2 "backed" an invented 100만).
    found |= _one_step(values, values, additive=True)
    # Two steps when the first starts from the question's own figures ("13 transfers, 10 free,
    # 500 won each": 13 - 10 = 3, then 3 x 500 = 1,500).
    from_question = _one_step(_plain(numbers(question)), values)
    found |= from_question | _one_step(_plain(from_question)[:200], values)
    return found


def _plain(found: Iterable[str]) -> list[float]:
    return [float(n) for n in found if re.fullmatch(r"\d+(?:\.\d+)?", n)]


def _one_step(left: Sequence[float], right: Sequence[float], additive: bool = False) -> set[str]:
    out: set[str] = set()
    for a in left:
        for b in right:
            ops = [a + b, a - b, b - a]
            if not additive:
                ops += [a * b, a * b / 100, a / b if b else 0, b / a if a else 0]
            for v in ops:
                if v > 0:
                    out.add(_normal(round(v, 6)))
    return out


def _fallback(evidence: Evidence, unsupported: Iterable[str]) -> Checked:
    """Replace an answer with no supported claim: the passage sentence that answers the
    question (by meaning, when judged so), cited, or the abstention."""
    question = evidence.question
    if evidence.best_lines:
        score, index, sentence = evidence.best_lines[0]
        best = (index, _short(sentence)) if score >= MEANING_EXTRACT else None
    else:
        best = _best_sentence(question, evidence.passages)
    if best is not None:
        index, sentence = best
        # A quote is the passage's own words, but whether it answers the question is the
        # scorer's guess, not a check: it is not marked grounded.
        return Checked(
            _cite(sentence, index, len(evidence.passages)),
            grounded=not evidence.best_lines,
            left_out=tuple(unsupported),
            fallback="extractive",
        )
    return Checked(abstention(question), grounded=True, left_out=tuple(unsupported), fallback="abstain")


def _best_sentence(question: str, passages: Sequence[str]) -> tuple[int, str] | None:
    """(passage index, text) of the passage sentences that best answer the question.

    The best-covering sentence, plus the next best of the same passage when it covers part
    of the question too ("Annual leave is 25 days." + "Apply in the HR portal."), in order.
    """
    ranked = _ranked_sentences(question, passages)
    if not ranked or ranked[0][0] < EXTRACTIVE_THRESHOLD:
        return None
    _, index, top = ranked[0]
    after = next((s for score, i, s in ranked[1:] if i == index and score > 0), None)
    chosen = [top] if after is None else sorted([top, after], key=passages[index].find)
    return index, " ".join(chosen)


def _quote_if_missed(
    answer: str, question: str, passages: Sequence[str], best_lines: Sequence[tuple[float, int, str]] = ()
) -> str:
    """``answer`` plus the passage sentence that clearly best matches the question, when the
    answer leaves out what that sentence says (its figures, or most of its words).

    Small models often answer from the wrong line of the right passage ("1588-0000" to "until
    when is chat support open?", whose line says "24시간"). The quote puts the matching line
    in front of the user, cited, without guessing which of the two is meant.
    """
    if best_lines:
        if best_lines[0][0] < MEANING_EXTRACT:
            return answer  # no line answers the question well enough to quote
        _, index, sentence = best_lines[0]
        sentence = _short(sentence)
    else:
        ranked = _ranked_sentences(question, passages)
        if not ranked or ranked[0][0] < QUOTE_THRESHOLD or (len(ranked) > 1 and ranked[1][0] >= ranked[0][0]):
            return answer  # no line clearly answers the question: nothing to add
        _, index, sentence = ranked[0]
    figures = numbers(sentence)
    if figures:
        missed = not figures <= numbers(answer)
    else:
        said = terms(sentence) - terms(question)
        missed = bool(said) and len(said & terms(answer)) * 2 < len(said)
    if not missed:
        return answer
    return f"{answer}\n\n{EXTRACTIVE_LEAD[language_of(question)]}{_cite(sentence, index, len(passages))}"


QUOTE_CHARS = 240
"""The longest passage sentence quoted whole; a longer one (a list the chunker joined into one
line) is cut at the clause nearest this length, so a quote never becomes a pasted paragraph."""


def _short(sentence: str) -> str:
    if len(sentence) <= QUOTE_CHARS:
        return sentence
    cut = max(sentence.rfind(mark, 0, QUOTE_CHARS) for mark in (", ", "; ", " - ", "·", " "))
    return sentence[: cut if cut > QUOTE_CHARS // 2 else QUOTE_CHARS].rstrip(" ,;-·") + "…"


def _ranked_sentences(question: str, passages: Sequence[str]) -> list[tuple[float, int, str]]:
    """(question coverage, passage index, sentence) of every passage sentence, best first;
    empty when the passages can't be compared with the question (another script)."""
    if not passages or any(language_of(p) != language_of(question) for p in passages):
        return []
    q = terms(question)
    candidates = [(i, s) for i, p in enumerate(passages) for s in _passage_sentences(p) if len(s) > 8]
    if not q or not candidates:
        return []
    scores = _coverage(q, [terms(s) for _, s in candidates])
    return sorted(((score, i, s) for score, (i, s) in zip(scores, candidates)), key=lambda r: -r[0])


def _passage_sentences(passage: str) -> list[str]:
    """The sentences of a passage, without headings and list marks (also mid-line ones, where
    a chunker joined the lines of a list). A paragraph hard-wrapped in its file is one text:
    "hotels up to 150 EUR\nper night" is one sentence."""
    lines: list[str] = []
    for line in passage.split("\n"):
        last = lines[-1].rstrip() if lines else ""
        if _wraps(last) and line.strip() and not _STARTS_BLOCK.match(line) and not _KEY_VALUE.match(line):
            lines[-1] = f"{last} {line.strip()}"
        else:
            lines.append(line)
    return [_LIST_MARK.sub("", s).strip() for s in _sentences("\n".join(lines)) if not s.startswith("#")]


_STARTS_BLOCK = re.compile(r"[ \t]*(?:#|[-*•|]\s|\d{1,2}[.)]\s)")  # a heading, list item or table row
_KEY_VALUE = re.compile(r"[ \t]*[^:\n]{1,30}:\s")  # "연차: 15일", "Hotels: 150 EUR"
WRAP_WIDTH = 50
"""A line at least this long that ends mid-sentence was wrapped by its editor; a shorter one
("연차: 15일") is a line of its own."""


def _wraps(line: str) -> bool:
    """Whether the text goes on after ``line`` on the next line of its file (a hard wrap)."""
    return (
        len(line) >= WRAP_WIDTH
        and line[-1] not in ".!?。:"
        and not _STARTS_BLOCK.match(line)
        and not _KEY_VALUE.match(line)
    )


def _sentences(text: str) -> list[str]:
    """Split into sentences, keeping code blocks whole and citation markers with their sentence."""
    pieces: list[str] = []
    last = 0
    for block in _FENCE.finditer(text):
        pieces += _SENTENCE_END.split(text[last : block.start()])
        pieces.append(block.group(0))
        last = block.end()
    pieces += _SENTENCE_END.split(text[last:])
    out: list[str] = []
    for piece in pieces:
        if not piece.strip():
            continue
        if out and _CITES_ONLY.match(piece):
            out[-1] += " " + piece.strip()
        else:
            out.append(piece.strip())
    return out


def _strip_bad_cites(sentence: str, n_passages: int) -> str:
    return _CITE.sub(lambda m: m.group(0) if 0 < int(m.group(1)) <= n_passages else "", sentence)


def _cite(sentence: str, source: int, n_passages: int) -> str:
    """The sentence citing passage ``source`` (0-based); a tool result is not a passage."""
    sentence = _strip_bad_cites(sentence, n_passages)
    if source >= n_passages or _CITE.search(sentence):
        return sentence
    marker = f" [{source + 1}]"
    stripped = sentence.rstrip()
    if stripped and stripped[-1] in ".!?。":
        return stripped[:-1] + marker + stripped[-1]
    return stripped + marker


def _line_starts(text: str, sentences: Sequence[str]) -> list[tuple[str, bool]]:
    """Each of ``text``'s sentences, and whether it began a line there (a list item, a new
    paragraph): the checked answer keeps the answer's lines."""
    out: list[tuple[str, bool]] = []
    at = 0
    for sentence in sentences:
        found = text.find(sentence, at)
        if found < 0:  # a sentence _sentences put together (citation marks): it goes on the line
            out.append((sentence, False))
            continue
        out.append((sentence, bool(out) and "\n" in text[at:found]))
        at = found + len(sentence)
    return out


def _join(sentences: Sequence[tuple[str, bool]]) -> str:
    """(sentence, starts a line) pairs as one text: a line break or a space between them."""
    text = ""
    for sentence, new_line in sentences:
        if sentence:
            text += ("\n" if new_line else " ") + sentence if text else sentence
    return text.strip()


def passage_label(passage: dict[str, Any]) -> str:
    """A short human label for a passage: its file name and section, never an absolute path."""
    from pathlib import PurePath

    name = PurePath(str(passage.get("source", ""))).name or str(passage.get("source", ""))
    section = str(passage.get("section") or passage.get("title") or "").strip()
    return f"{name} › {section}" if section and section != name else name


_BOUNDARY = re.compile(rf"^(?:{'|'.join(PASSAGE_LABELS)}) \[\d+\]|^(?:{'|'.join(QUESTION_LABELS)}):", re.MULTILINE)


def question_with_passages(question: str, passages: Sequence[tuple[str, str]], offer_abstention: bool = True) -> str:
    """The user turn a model sees: the numbered passages, then the question and how to answer.

    ``passages`` are (label, text) pairs, best first. Passages sit right before the question,
    in the user's turn, because small models read the end of the prompt best. They are data:
    a line inside one that imitates a passage header or the question is defused, so a document
    cannot end its own block and pose as the user. ``offer_abstention`` adds "if the passages
    don't answer, say so": large models use it well, but small ones then say it to every
    question, so for them the answer check decides instead (see the model profiles).
    """
    lang = language_of(question)
    head = PASSAGE_HEAD[lang]
    block = "\n\n".join(
        f"{head} [{i}] ({label}):\n{_BOUNDARY.sub(lambda m: '> ' + m.group(0), text.strip())}"
        for i, (label, text) in enumerate(passages, 1)
    )
    ask = ASK_WITH_PASSAGES[lang] + (IF_NOT_FOUND[lang] if offer_abstention else "")
    other = OTHER_LANGUAGE[lang] if any(language_of(text) != lang for _, text in passages) else ""
    return ask.format(passages=block, question=question, abstain=ABSTAIN[lang], other_language=other)
