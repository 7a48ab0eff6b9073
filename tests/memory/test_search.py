from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from chatloom.errors import MemoryStoreError
from chatloom.memory import Memory, Passage, open_memory
from chatloom.memory.conversation import SUMMARY_PREFIX, extract_facts, summarize_messages


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (d / name).write_text(text)
    return d


KB = {
    "vpn.md": "# VPN\nTo connect to the office network, start the WireGuard client and pick the "
    "'office' tunnel.\n\n## Error codes\nError ZX-4471 means your certificate expired; "
    "ask IT for a new one.\n",
    "leave.md": "# Holidays\nEmployees get 25 days of paid annual leave. Unused days carry over until March.\n",
    "lunch.md": "# Canteen\nThe canteen serves lunch from noon to two. Vegetarian dishes are marked green.\n",
}


def test_memory_satisfies_the_contract(mem):
    assert isinstance(mem, Memory)
    assert mem.recall("anything") == []  # empty store: nothing, no error
    assert mem.recall("   ") == []


def test_hybrid_finds_exact_codes_and_paraphrases(mem, tmp_path):
    mem.ingest([_write(tmp_path / "kb", KB)])
    code = mem.recall("ZX-4471", k=1)[0]
    assert "ZX-4471" in code.text and code.section == "VPN > Error codes"
    para = mem.recall("how many vacation days do staff have per year", k=1)[0]
    assert para.source.endswith("leave.md")
    assert isinstance(para, Passage) and para.title == "Holidays"
    # Every mode works on its own, and hybrid scores are in [0, 1], best first.
    for mode in ("vector", "keyword", "hybrid"):
        assert mem.search("canteen lunch", k=1, mode=mode)[0].source.endswith("lunch.md")
    hits = mem.recall("office network certificate", k=3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(0 < h.score <= 1 for h in hits)


def test_metadata_filters(mem, tmp_path):
    kb = _write(tmp_path / "kb", KB)
    mem.ingest([kb])
    only = str(kb / "lunch.md")
    hits = mem.recall("certificate error", k=4, filters={"source": only})
    assert hits and {h.source for h in hits} == {"lunch.md"}  # filtered by the stored path, shown by name
    assert {h.id for h in mem.recall("certificate error", k=4, filters={"name": "lunch.md"})} == {h.id for h in hits}
    hits = mem.recall("days", k=4, filters={"source": [only, str(kb / "leave.md")]})
    assert {Path(h.source).name for h in hits} <= {"lunch.md", "leave.md"}
    assert mem.recall("vpn", k=4, filters={"section": "nope"}) == []
    with pytest.raises(MemoryStoreError, match="plain name"):
        mem.recall("x", filters={"bad key; drop": 1})


def test_namespaces_and_tenants_are_isolated(settings, minilm, tmp_path):
    kb = _write(tmp_path / "kb", KB)
    a = open_memory(settings, namespace="bot-a", tenant="acme", embeddings=minilm)
    b = open_memory(settings, namespace="bot-a", tenant="globex", embeddings=minilm)
    c = open_memory(settings, namespace="bot-c", tenant="acme", embeddings=minilm)
    a.ingest([kb])
    assert a.recall("canteen", k=1)
    assert b.recall("canteen", k=1) == [] and c.recall("canteen", k=1) == []
    assert a.recall("canteen", k=1, namespace="bot-c") == []
    with pytest.raises(MemoryStoreError, match="not allowed"):
        open_memory(settings, namespace="a/b", embeddings=minilm)


def test_mmr_prefers_diverse_passages(mem, tmp_path):
    near = {f"dup{i}.md": f"The parking garage opens at 7am on weekdays, door {i}." for i in range(4)}
    near["bike.md"] = "Bicycles can be parked in the basement near the garage entrance."
    mem.ingest([_write(tmp_path / "kb", near)])
    plain = mem.search("when does the parking garage open", k=2, diversity=0)
    diverse = mem.search("when does the parking garage open", k=2, diversity=0.7)
    assert all("door" in p.text for p in plain)
    assert any("Bicycles" in p.text for p in diverse)


def test_conversation_memory_is_per_user_and_crosses_threads(mem, tmp_path):
    mem.ingest([_write(tmp_path / "kb", KB)])
    mem.remember(
        user_id="ada",
        thread_id="t1",
        question="My name is Ada and I prefer answers in metric units.",
        answer="Noted, Ada: metric it is.",
    )
    mem.remember(user_id=None, thread_id="t1", question="I am anonymous", answer="ok")
    later = mem.recall("which units does the user prefer", k=2, user_id="ada")
    assert "The user said: My name is Ada and I prefer answers in metric units." in [p.text for p in later]
    assert all(p.source.startswith("conversation:ada:t1:") for p in later)
    # Another user, or no user, never sees Ada's memory.
    for user in ("bob", None):
        assert all("Ada" not in p.text for p in mem.recall("units name", k=4, user_id=user))
    mem.remember_summary(user_id="ada", thread_id="t2", summary="Ada is planning a trip to Oslo.")
    assert any("Oslo" in p.text for p in mem.recall("travel plans", k=3, user_id="ada"))
    assert mem.forget(user_id="ada") >= 3
    assert all("Ada" not in p.text for p in mem.recall("units", k=4, user_id="ada"))


def test_a_filter_on_an_empty_list_matches_nothing_in_every_mode(mem, tmp_path):
    mem.ingest([_write(tmp_path / "kb", KB)])
    for mode in ("hybrid", "vector", "keyword"):
        assert mem.search("annual leave days", k=3, mode=mode, filters={"source": []}) == []
        assert mem.search("annual leave days", k=3, mode=mode, filters={"kind": ["doc"]})  # not empty: found


def test_forgetting_a_user_never_touches_a_user_whose_id_it_resembles(mem):
    # "_" and "%" are LIKE wildcards, and "a" is a prefix of "a:b" in the sources' names.
    users = ("a_c", "abc", "a%", "a", "a:b")
    for user in users:
        mem.remember(user_id=user, thread_id="t1", question=f"My badge number is {user}.", answer="Noted.")
    assert mem.forget(user_id="a_c") >= 1
    assert mem.forget(user_id="a%") >= 1
    assert mem.forget(user_id="a") >= 1
    for user, kept in (("abc", True), ("a:b", True), ("a_c", False), ("a%", False), ("a", False)):
        texts = [p.text for p in mem.recall("badge number", k=8, user_id=user)]
        assert any(f"badge number is {user}." in t for t in texts) is kept, (user, texts)


def test_extract_facts():
    assert extract_facts("What time is it? I work at Globex. Thanks!") == ["I work at Globex."]
    assert extract_facts("Is my name Ada?") == []


# -- summariser ------------------------------------------------------------------------------
def _model(*replies):
    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


def _thread(turns: int) -> list:
    msgs = [SystemMessage(content="You are helpful.")]
    for i in range(turns):
        msgs.append(HumanMessage(content=f"question {i} " + "blah " * 40))
        msgs.append(AIMessage(content="", tool_calls=[{"name": "calc", "args": {"x": i}, "id": f"c{i}"}]))
        msgs.append(ToolMessage(content=str(i), tool_call_id=f"c{i}"))
        msgs.append(AIMessage(content=f"answer {i} " + "bleh " * 40))
    return msgs


def test_summarize_messages_under_budget_is_unchanged():
    msgs = _thread(1)
    assert summarize_messages(_model(), msgs, max_tokens=10_000) == msgs


def test_summarize_messages_fits_budget_and_keeps_tool_pairs():
    msgs = _thread(12)
    out = summarize_messages(_model("Ada asked twelve questions."), msgs, max_tokens=400)
    assert out[0].content == "You are helpful."
    assert isinstance(out[1], SystemMessage) and out[1].content.startswith(SUMMARY_PREFIX)
    assert "twelve questions" in out[1].content
    assert isinstance(out[2], HumanMessage)  # the kept tail starts at a user turn
    assert out[-1] is msgs[-1]
    from chatloom.memory.conversation import count_tokens

    assert count_tokens(out) <= 400
    ids = {m.tool_call_id for m in out if isinstance(m, ToolMessage)}
    calls = {c["id"] for m in out if isinstance(m, AIMessage) for c in m.tool_calls}
    assert ids == calls  # no orphaned tool results
    # Summarising again folds the old summary in rather than stacking summaries.
    again = summarize_messages(_model("Still twelve."), out + _thread(6)[1:], max_tokens=400)
    assert sum(1 for m in again if str(m.content).startswith(SUMMARY_PREFIX)) == 1


def test_summarize_messages_survives_a_failing_model():
    class Broken:
        def invoke(self, _):
            raise RuntimeError("model down")

    out = summarize_messages(Broken(), _thread(12), max_tokens=400)
    assert "dropped" in out[1].content
