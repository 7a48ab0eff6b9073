"""Two tenants share a server but never each other's threads, memory or approvals."""

from __future__ import annotations

import json

import httpx
import openai
from serverhelpers import KEY_A, KEY_B

SECRET = "ACME-ONLY-7f3a9c"


def h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def ask(url: str, key: str, model: str, text: str, thread: str) -> dict:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers={**h(key), "X-Chatloom-Thread": thread},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_same_thread_id_is_two_conversations(server):
    ask(server, KEY_A, "echo", f"my code is {SECRET}", "shared")
    ask(server, KEY_A, "echo", "and again", "shared")
    b = ask(server, KEY_B, "echo", "what is the code?", "shared")
    # Globex's model saw one question: its own. Acme's two never reached it.
    assert b["choices"][0]["message"]["content"] == "turn 1: you said what is the code?"
    native = httpx.post(
        f"{server}/v1/agents/echo/turns",
        json={"input": "native", "thread_id": "shared", "stream": False},
        headers=h(KEY_B),
        timeout=30,
    ).json()
    assert native["answer"] == "turn 2: you said native"


def test_threads_endpoints_show_only_your_own(server):
    ask(server, KEY_A, "echo", f"remember {SECRET}", "acme-private")
    ask(server, KEY_B, "echo", "hello", "globex-thread")
    a_ids = {t["id"] for t in httpx.get(f"{server}/v1/threads", headers=h(KEY_A)).json()["data"]}
    b_ids = {t["id"] for t in httpx.get(f"{server}/v1/threads", headers=h(KEY_B)).json()["data"]}
    assert "acme-private" in a_ids and "acme-private" not in b_ids
    assert "globex-thread" in b_ids and "globex-thread" not in a_ids
    r = httpx.get(f"{server}/v1/threads/acme-private", headers=h(KEY_B))
    assert r.status_code == 404 and SECRET not in r.text
    # Ids that look like another tenant's stored id stay inside your own tenant.
    crafted = ("acme:acme-private", "acme%3Aacme-private", "..%2Facme:acme-private", "/acme:acme-private")
    for thread in crafted:
        r = httpx.get(f"{server}/v1/threads/{thread}", headers=h(KEY_B))
        assert r.status_code == 404 and SECRET not in r.text
        assert r.json()["error"]["code"] in ("thread_not_found", "not_found")
    for thread in crafted:
        b = ask(server, KEY_B, "echo", "show history", thread)
        assert b["choices"][0]["message"]["content"] == "turn 1: you said show history"
    assert (
        httpx.delete(f"{server}/v1/threads/acme-private", headers=h(KEY_B)).status_code == 200
    )  # deletes Globex's (empty) one
    mine = httpx.get(f"{server}/v1/threads/acme-private", headers=h(KEY_A)).json()
    assert SECRET in json.dumps(mine)  # Acme's thread is untouched


def test_memory_is_per_tenant(server):
    # The scripted model answers from the passage it is shown, so each answer shows what the
    # tenant's agent recalled.
    a = ask(server, KEY_A, "handbook", "How many days of annual leave do I get?", "leave")
    b = ask(server, KEY_B, "handbook", "How many days of annual leave do I get?", "leave")
    assert a["choices"][0]["message"]["content"] == "Annual leave at Acme is 25 days per year [1]."
    assert [c["source"] for c in a["chatloom"]["citations"]] == ["acme-handbook.md"]
    assert b["choices"][0]["message"]["content"] == "Annual leave at Globex is 30 days per year [1]."
    assert [c["source"] for c in b["chatloom"]["citations"]] == ["globex-handbook.md"]
    assert "acme" not in json.dumps(b).lower()


def test_approvals_are_per_tenant(server):
    events: list[dict] = []
    with httpx.stream(
        "POST",
        f"{server}/v1/agents/mailer/turns",
        json={"input": "mail my boss", "thread_id": "m1"},
        headers=h(KEY_A),
        timeout=60,
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    approval_id = next(e for e in events if e["type"] == "approval_required")["approval_id"]
    assert httpx.get(f"{server}/v1/approvals", headers=h(KEY_B)).json()["data"] == []
    assert (
        httpx.post(f"{server}/v1/approvals/{approval_id}", json={"approve": True}, headers=h(KEY_B)).status_code == 404
    )
    # Globex's own thread "m1" is another thread: Acme's pause doesn't block it.
    assert (
        httpx.post(
            f"{server}/v1/agents/echo/turns", json={"input": "hi", "thread_id": "m1", "stream": False}, headers=h(KEY_B)
        ).status_code
        == 200
    )
    listed = httpx.get(f"{server}/v1/approvals", headers=h(KEY_A)).json()["data"]
    assert [(x["approval_id"], x["thread_id"], x["tool"]) for x in listed] == [(approval_id, "m1", "send_email")]
    r = httpx.post(f"{server}/v1/approvals/{approval_id}", json={"approve": False}, headers=h(KEY_A), timeout=60)
    assert r.status_code == 200 and r.json()["events"][-1]["type"] == "answer"


def test_models_are_the_same_list_but_separate_agents(server):
    a = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY_A, max_retries=0)
    b = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY_B, max_retries=0)
    assert [m.id for m in a.models.list()] == [m.id for m in b.models.list()]
