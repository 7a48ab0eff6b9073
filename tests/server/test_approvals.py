"""Tool approvals over HTTP: the turn pauses on an "ask" tool and resumes on approve/deny."""

from __future__ import annotations

import json
import threading
import time

import httpx

from chatloom.server.app import create_app
from serverhelpers import KEY_A, SENT_EMAILS, config, live_server, scripted_catalog

H = {"Authorization": f"Bearer {KEY_A}"}


def start_turn(url: str, thread: str, events: list[dict], path: str = "/v1/agents/mailer/turns", body: dict | None = None) -> threading.Thread:
    def run() -> None:
        with httpx.stream("POST", f"{url}{path}", json=body or {"input": "mail my boss", "thread_id": thread}, headers=H, timeout=60) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    events.append(json.loads(line[5:]))

    worker = threading.Thread(target=run)
    worker.start()
    return worker


def wait_for_approval(events: list[dict], key: str = "type") -> dict:
    deadline = time.monotonic() + 20
    while True:
        for e in events:
            found = e if e.get(key) == "approval_required" else (e.get("chatloom") or {})
            if found.get("type") == "approval_required":
                return found
        assert time.monotonic() < deadline, events
        time.sleep(0.05)


def test_approve_runs_the_tool_and_the_turn_finishes(server):
    SENT_EMAILS.clear()
    events: list[dict] = []
    worker = start_turn(server, "a1", events)
    pending = wait_for_approval(events)
    assert pending["tool"] == "send_email" and pending["args"] == {"to": "boss@example.com", "body": "hello"}
    assert "needs approval" in pending["why"]
    assert SENT_EMAILS == []  # paused: nothing sent yet
    r = httpx.post(f"{server}/v1/approvals/{pending['approval_id']}", json={"approve": True}, headers=H)
    assert r.json() == {"approval_id": pending["approval_id"], "approved": True}
    worker.join(timeout=30)
    assert SENT_EMAILS == [{"to": "boss@example.com", "body": "hello"}]
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is True and "sent to boss@example.com" in result["content"]
    assert events[-1]["type"] == "answer" and "sent to boss@example.com" in events[-1]["answer"]
    # Deciding twice is an error, not a second run.
    assert httpx.post(f"{server}/v1/approvals/{pending['approval_id']}", json={"approve": True}, headers=H).status_code == 404


def test_deny_refuses_the_tool(server):
    SENT_EMAILS.clear()
    events: list[dict] = []
    worker = start_turn(server, "d1", events)
    pending = wait_for_approval(events)
    httpx.post(f"{server}/v1/approvals/{pending['approval_id']}", json={"approve": False}, headers=H)
    worker.join(timeout=30)
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False and "declined by the approver" in result["content"]
    assert SENT_EMAILS == []


def test_approvals_over_the_openai_stream(server):
    SENT_EMAILS.clear()
    events: list[dict] = []
    body = {"model": "mailer", "stream": True, "messages": [{"role": "user", "content": "mail my boss"}], "metadata": {"thread_id": "o1"}}
    worker = start_turn(server, "o1", events, "/v1/chat/completions", body)
    pending = wait_for_approval(events, key="-")
    httpx.post(f"{server}/v1/approvals/{pending['approval_id']}", json={"approve": True}, headers=H)
    worker.join(timeout=30)
    assert events[-1]["chatloom"]["type"] == "answer" and SENT_EMAILS


def test_non_streaming_requests_cannot_be_asked_so_the_call_is_refused(server):
    SENT_EMAILS.clear()
    r = httpx.post(f"{server}/v1/chat/completions", json={"model": "mailer", "messages": [{"role": "user", "content": "mail"}]}, headers=H, timeout=30)
    step = r.json()["chatloom"]["tool_steps"][0]
    assert step["ok"] is False and "declined" in step["result"]
    assert SENT_EMAILS == []


def test_unanswered_approval_times_out_as_a_refusal(checkpointer):
    SENT_EMAILS.clear()
    app = create_app(scripted_catalog(checkpointer), config(approval_timeout=0.5))
    with live_server(app) as url:
        events: list[dict] = []
        start_turn(url, "t1", events).join(timeout=30)
    assert [e["type"] for e in events if e["type"] != "token"] == ["tool_call", "approval_required", "tool_result", "answer"]
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["ok"] is False and "declined" in result["content"] and SENT_EMAILS == []
