"""The language-aware tokenizer and the one keyword index (bm25s) built on it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from chatloom.errors import ChatloomError
from chatloom.memory import keyword
from chatloom.memory.keyword import KeywordIndex, tokenize

pytest.importorskip("kiwipiepy")


def _covers(longer: str, shorter: str) -> bool:
    return set(tokenize(shorter)) <= set(tokenize(longer))


@pytest.mark.parametrize(
    ("with_particle", "bare"),
    [
        ("자기계발비는", "자기계발비"),
        ("배우자가", "배우자"),
        ("연차를", "연차"),
        ("병가로", "병가"),
        ("카카오페이로", "카카오페이"),
        ("회사의", "회사"),
    ],
)
def test_korean_particles_are_dropped(with_particle, bare):
    assert tokenize(with_particle) == tokenize(bare)
    assert bare in tokenize(with_particle)


def test_korean_inflections_share_their_stem():
    assert "신청" in tokenize("연차를 신청했습니다") and "신청" in tokenize("신청하려면")
    assert tokenize("예뻤다") == tokenize("예쁜") == ["예쁘"]
    assert "받" in tokenize("환불을 받았어요") and "받" in tokenize("받으려면")
    # Particles and endings are not terms; the light verb 하다 is not either.
    assert tokenize("어떻게 하나요?") == []


def test_two_syllable_words_are_whole_terms():
    # Trigram search can never match a two-syllable word: whole morphemes can.
    assert tokenize("연차 신청은 어떻게 하나요?") == ["연차", "신청"]
    assert tokenize("송금 한도") == ["송금", "한도"]


def test_compound_nouns_give_parts_and_the_whole():
    terms = tokenize("자기계발비 지원")
    assert {"자기계발비", "계발", "지원"} <= set(terms)
    # Parts separated by a space are not glued into a compound.
    assert "자기계발비" not in tokenize("자기 계발 비")


def test_numbers_survive_the_same_way_in_both_scripts():
    assert "5" in tokenize("카드는 5장까지") and "5" in tokenize("up to 5 cards")
    assert "1000" in tokenize("수수료는 1,000원") and "1000" in tokenize("a fee of 1,000 won")
    assert {"3", "11"} <= set(tokenize("Python 3.11에서")) and {"3", "11"} <= set(tokenize("Python 3.11"))


def test_latin_words_in_korean_text_follow_the_english_rules():
    assert _covers("API 키를 발급받으려면 Settings 메뉴로", "api settings")
    assert "refund" in tokenize("refunds는 7일 이내")


def test_english_keeps_its_rules():
    assert tokenize("The refunds were processed within 5 days") == ["refund", "process", "within", "5", "day"]
    assert tokenize("") == []


def test_english_never_loads_the_korean_analyser():
    code = (
        "import sys; from chatloom.memory.keyword import tokenize;"
        "tokenize('hello refund world'); print('kiwipiepy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_keyword_module_imports_neither_store_nor_search():
    code = (
        "import sys; import chatloom.memory.keyword;"
        "print(sorted(m for m in sys.modules if m.startswith('chatloom.memory.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout.strip()
    assert "chatloom.memory.keyword" in loaded  # the old cycle: store -> keyword -> search -> store
    assert "chatloom.memory.store" not in loaded and "chatloom.memory.search" not in loaded


def test_tokenize_is_thread_safe():
    texts = [
        "자기계발비는 연 50만 원까지 지원됩니다",
        "배우자가 아프면 가족돌봄휴가를 씁니다",
        "Refunds are processed within 5 days",
        "연차를 신청하려면 3일 전에 API로 요청",
    ] * 10
    expected = [tokenize(t) for t in texts]
    got: list[list[str]] = [[] for _ in texts]
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(i, len(texts), 8):
                got[j] = tokenize(texts[j])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_index_finds_korean_across_particles_and_filters():
    rows = [
        (1, "자기계발비는 연 50만 원까지 지원됩니다."),
        (2, "배우자가 출산하면 휴가 10일"),
        (3, "연차는 입사 1년 후 15일이 생깁니다."),
        (4, "Refund within 5 days"),
    ]
    index = KeywordIndex.of_rows(rows)
    assert index.search("자기계발비 얼마예요?", 4)[0][0] == 1
    assert index.search("배우자 출산 휴가", 4)[0][0] == 2
    assert index.search("연차가 며칠", 4)[0][0] == 3
    assert index.search("refunds", 4)[0][0] == 4
    # allowed_rowids restricts the candidates of a namespace index.
    assert index.search("연차 휴가", 4, allowed_rowids=[2]) == [
        (2, pytest.approx(index.search("연차 휴가", 4)[[r for r, _ in index.search("연차 휴가", 4)].index(2)][1]))
    ]
    assert index.search("없는단어", 4) == [] and KeywordIndex.of_rows([]).search("x", 4) == []


def test_saved_index_of_another_tokenizer_is_rebuilt(tmp_path):
    import json

    target = tmp_path / "idx"
    keyword.build([(1, "연차 신청")], 3, target)
    assert keyword.load(target).version == 3
    meta = json.loads((target / "chatloom.json").read_text())
    (target / "chatloom.json").write_text(json.dumps({**meta, "tokenizer": 1}))
    assert keyword.load(target) is None  # the store then rebuilds it from SQLite


def test_missing_kiwipiepy_names_the_install_command(monkeypatch):
    monkeypatch.setattr(keyword, "_kiwi", None)
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)
    with pytest.raises(ChatloomError, match="pip install kiwipiepy kiwipiepy-model"):
        tokenize("연차")
    assert tokenize("leave") == ["leav"]  # English still works without it


def test_store_keyword_search_handles_korean_particles(mem, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "benefits.md").write_text("# 복리후생\n\n자기계발비는 연 50만 원까지 지원됩니다.\n")
    (docs / "leave.md").write_text("# 휴가\n\n배우자가 출산하면 10일의 휴가를 받습니다.\n")
    (docs / "other.md").write_text("# 기타\n\n사내 식당은 12시에 엽니다.\n")
    mem.ingest([docs])
    assert mem.search("자기계발비", k=1, mode="keyword")[0].source.endswith("benefits.md")
    assert mem.search("배우자 휴가", k=1, mode="keyword")[0].source.endswith("leave.md")
    # The small filtered path (one file) uses the same scorer and terms.
    got = mem.search("배우자", k=1, mode="keyword", filters={"source": str(docs / "leave.md")})
    assert got and got[0].source.endswith("leave.md")


@pytest.mark.parametrize(
    ("text", "topics"),
    [
        ("퇴직금은 언제 지급되나요?", [("퇴직금",)]),
        ("해외 출장에서 호텔비는 하루에 얼마까지 나오나요?", [("호텔", "비")]),  # the noun glued to 는
        ("회사 연차 신청은 어떻게 하나요?", [("신청",)]),
        ("누리페이 본사 주소가 어디인가요?", []),  # 가 marks a subject, not a topic
        ("How is severance pay paid?", []),
    ],
)
def test_korean_topics_are_the_nouns_before_the_topic_particle(text: str, topics: list[tuple[str, ...]]) -> None:
    assert keyword.korean_topics(text) == topics
