"""Tool approvals over HTTP: a turn that needs approval pauses in the checkpointer and ends its
stream; ``POST /v1/approvals/{id}`` resumes it and returns the rest of the turn."""

from __future__ import annotations

import json
import time

import httpx
from serverhelpers import KEY_A, SENT_EMAILS, config, live_server, scripted_catalog

from chatloom.server.app import create_app

H = {"Authorization": f"Bearer {KEY_A}"}
DECLINED = "error: tool call refused by policy: 'send_email' (side_effect) was declined by the approver"


def sse_events(url: str, path: str, body: dict) -> list[dict]:
    """Every ``data:`` message of an SSE response (the stream ends when the turn ends or pauses)."""
    events = []
    with httpx.stream("POST", f"{url}{path}", json=body, headers=H, timeout=60) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                events.append(json.loads(line[5:]))
    return events


def pause(url: str, thread: str) -> dict:
    """Ask the mailer agent on ``thread``; returns the approval its turn paused for."""
    events = sse_events(url, "/v1/agents/mailer/turns", {"input": "mail my boss", "thread_id": thread})
    assert [e["type"] for e in events] == ["tool_call", "approval_required"], events
    return events[-1]


def decide(url: str, approval_id: str, approve: bool, **extra: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/approvals/{approval_id}", json={"approve": approve, **extra}, headers=H, timeout=60)


def test_the_stream_ends_paused_and_approving_returns_the_rest_of_the_turn(server):
    SENT_EMAILS.clear()
    pending = pause(server, "a1")
    assert pending["tool"] == "send_email" and pending["args"] == {"to": "boss@example.com", "body": "hello"}
    assert "needs approval" in pending["why"] and pending["thread_id"] == "a1" and pending["model"] == "mailer"
    assert SENT_EMAILS == []  # paused: nothing sent, and no request is open
    listed = httpx.get(f"{server}/v1/approvals", headers=H).json()["data"]
    assert listed == [pending]
    r = decide(server, pending["approval_id"], True)
    assert r.status_code == 200
    body = r.json()
    assert (body["approval_id"], body["approved"], body["thread_id"]) == (pending["approval_id"], True, "a1")
    assert SENT_EMAILS == [{"to": "boss@example.com", "body": "hello"}]
    result = next(e for e in body["events"] if e["type"] == "tool_result")
    assert result["ok"] is True and "sent to boss@example.com" in result["content"]
    assert body["events"][-1]["type"] == "answer" and "sent to boss@example.com" in body["events"][-1]["answer"]
    assert httpx.get(f"{server}/v1/approvals", headers=H).json()["data"] == []
    # Deciding twice is an error, not a second run.
    again = decide(server, pending["approval_id"], True)
    assert again.status_code == 404 and again.json()["error"]["code"] == "approval_not_found"
    assert len(SENT_EMAILS) == 1


def test_deny_refuses_the_tool_and_the_model_is_told(server):
    SENT_EMAILS.clear()
    pending = pause(server, "d1")
    events = decide(server, pending["approval_id"], False).json()["events"]
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False and result["content"] == DECLINED
    assert events[-1]["answer"] == f"Email step: {DECLINED}"
    assert SENT_EMAILS == []


def test_the_rest_of_the_turn_can_stream(server):
    SENT_EMAILS.clear()
    pending = pause(server, "s1")
    events = sse_events(server, f"/v1/approvals/{pending['approval_id']}", {"approve": True, "stream": True})
    assert [e["type"] for e in events if e["type"] != "token"] == ["tool_result", "answer"]
    assert len(SENT_EMAILS) == 1


def test_approvals_over_the_openai_stream(server):
    SENT_EMAILS.clear()
    body = {
        "model": "mailer",
        "stream": True,
        "messages": [{"role": "user", "content": "mail my boss"}],
        "metadata": {"thread_id": "o1"},
    }
    chunks = sse_events(server, "/v1/chat/completions", body)
    asked = next(c["chatloom"] for c in chunks if (c.get("chatloom") or {}).get("type") == "approval_required")
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop" and last["chatloom"]["type"] == "paused"
    assert last["chatloom"]["approval_required"] == [asked]
    assert (
        "Waiting for approval" in last["choices"][0]["delta"]["content"]
        and 'send_email(to="boss@example.com"' in last["choices"][0]["delta"]["content"]
    )
    events = decide(server, asked["approval_id"], True).json()["events"]
    assert events[-1]["type"] == "answer" and SENT_EMAILS


def test_non_streaming_requests_pause_too(server):
    SENT_EMAILS.clear()
    r = httpx.post(
        f"{server}/v1/chat/completions",
        json={"model": "mailer", "messages": [{"role": "user", "content": "mail"}], "metadata": {"thread_id": "n1"}},
        headers=H,
        timeout=30,
    )
    data = r.json()
    assert data["chatloom"]["stop_reason"] == "paused" and data["choices"][0]["message"]["content"].startswith(
        "Waiting for approval"
    )
    (asked,) = data["chatloom"]["approval_required"]
    assert asked["thread_id"] == "n1" and asked["tool"] == "send_email" and SENT_EMAILS == []
    native = httpx.post(
        f"{server}/v1/agents/mailer/turns",
        json={"input": "mail", "thread_id": "n2", "stream": False},
        headers=H,
        timeout=30,
    ).json()
    assert native["type"] == "paused" and [a["tool"] for a in native["approval_required"]] == ["send_email"]
    assert decide(server, asked["approval_id"], False).json()["events"][-1]["type"] == "answer"


def test_a_new_message_on_a_paused_thread_is_a_409_until_decided(server):
    SENT_EMAILS.clear()
    pending = pause(server, "p1")
    r = httpx.post(
        f"{server}/v1/agents/mailer/turns",
        json={"input": "hello?", "thread_id": "p1", "stream": False},
        headers=H,
        timeout=30,
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "approval_pending"
    assert "approve or decline it first" in r.json()["error"]["message"]
    streamed = sse_events(server, "/v1/agents/mailer/turns", {"input": "hello?", "thread_id": "p1"})
    assert streamed[-1]["type"] == "error" and streamed[-1]["error"]["code"] == "approval_pending"
    decide(server, pending["approval_id"], False)
    assert pause(server, "p1")["tool"] == "send_email"  # the thread takes questions again


def test_a_pause_older_than_approval_timeout_is_declined_by_the_next_message(checkpointer):
    SENT_EMAILS.clear()
    app = create_app(scripted_catalog(checkpointer), config(approval_timeout=0.2))
    with live_server(app) as url:
        first = pause(url, "t1")
        time.sleep(0.5)
        second = pause(url, "t1")  # not a 409: the old pause was declined first
        messages = httpx.get(f"{url}/v1/threads/t1", headers=H).json()["messages"]
        listed = httpx.get(f"{url}/v1/approvals", headers=H).json()["data"]
    tools = [m for m in messages if m["role"] == "tool"]
    assert len(tools) == 1 and tools[0]["content"] == DECLINED and tools[0]["ok"] is False
    assert [m["role"] for m in messages] == ["user", "tool_call", "tool", "assistant", "user", "tool_call"]
    assert first["approval_id"] != second["approval_id"] and [a["approval_id"] for a in listed] == [
        second["approval_id"]
    ]
    assert SENT_EMAILS == []


def test_a_pause_whose_model_is_no_longer_served_is_a_409(checkpointer):
    with live_server(create_app(scripted_catalog(checkpointer), config())) as url:
        pending = pause(url, "g1")
    catalog = scripted_catalog(checkpointer)
    del catalog.factories["mailer"]  # the workspace changed before the restart
    with live_server(create_app(catalog, config())) as url:
        r = decide(url, pending["approval_id"], True)
    assert (
        r.status_code == 409
        and r.json()["error"]["code"] == "model_gone"
        and "'mailer'" in r.json()["error"]["message"]
    )


def test_malformed_and_unknown_approval_ids_are_404(server):
    pending = pause(server, "u1")
    thread_part, _, _ = pending["approval_id"].rpartition(".")
    for bad in ("nope", "!!!.ap-1", f"{thread_part}.ap-0000000000000000", "dW5rbm93bg.ap-1"):
        r = decide(server, bad, True)
        assert r.status_code == 404 and r.json()["error"]["code"] == "approval_not_found", bad
    r = httpx.post(f"{server}/v1/approvals/{pending['approval_id']}", json={"approve": "maybe"}, headers=H)
    assert r.status_code == 400
    assert [a["approval_id"] for a in httpx.get(f"{server}/v1/approvals", headers=H).json()["data"]] == [
        pending["approval_id"]
    ]


def test_pauses_live_in_postgresql_too(postgres_dsn):
    from chatloom.memory.postgres import postgres_checkpointer

    SENT_EMAILS.clear()
    saver, second = postgres_checkpointer(postgres_dsn), postgres_checkpointer(postgres_dsn)
    try:
        with live_server(create_app(scripted_catalog(saver), config())) as url:
            pending = pause(url, "pg1")
        # A second app on the same database (another server, as far as it knows) lists and resumes it.
        with live_server(create_app(scripted_catalog(second), config())) as other:
            assert httpx.get(f"{other}/v1/approvals", headers=H).json()["data"] == [pending]
            events = decide(other, pending["approval_id"], True).json()["events"]
        assert events[-1]["type"] == "answer" and SENT_EMAILS == [{"to": "boss@example.com", "body": "hello"}]
    finally:
        saver.conn.close()
        second.conn.close()


def test_a_pause_and_its_resume_are_logged_without_contents(server, events):
    pending = pause(server, "l1")
    kinds = [e["event"] for e in events]
    assert "approval.requested" in kinds and "turn.end" not in kinds
    paused = next(e for e in events if e["event"] == "turn.paused")
    assert paused["approvals"] == 1 and paused["thread_id"] == "l1" and paused["agent"] == "mailer"
    decide(server, pending["approval_id"], True)
    assert [e["event"] for e in events].count("turn.end") == 1
    assert "boss@example.com" not in json.dumps(events, default=str)  # tool arguments are never logged
