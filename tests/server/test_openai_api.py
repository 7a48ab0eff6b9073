"""The official openai client against the server on 127.0.0.1, with scripted agents."""

from __future__ import annotations

import httpx
import openai
import pytest
from serverhelpers import KEY_A


def client(url: str, key: str = KEY_A) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0, timeout=30)


def test_models_lists_the_agents(server):
    ids = [m.id for m in client(server).models.list()]
    assert ids == ["echo", "calc", "handbook", "mailer"]
    assert client(server).models.retrieve("echo").model_extra["description"] == "repeats you"
    with pytest.raises(openai.NotFoundError):
        client(server).models.retrieve("nope")


def test_chat_completion_keeps_the_conversation_by_thread_header(server):
    c = client(server)
    first = c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "hello"}], extra_headers={"X-Chatloom-Thread": "t1"}
    )
    assert first.choices[0].message.content == "turn 1: you said hello"
    assert first.choices[0].finish_reason == "stop"
    assert first.model_extra["chatloom"]["thread_id"] == "t1"
    assert first.usage.total_tokens > 0
    # OpenAI clients resend the history; the server keeps its own and takes the last question.
    second = c.chat.completions.create(
        model="echo",
        messages=[
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": "again"},
        ],
        extra_headers={"X-Chatloom-Thread": "t1"},
    )
    assert second.choices[0].message.content == "turn 2: you said again"


def test_thread_from_metadata_and_none_otherwise(server):
    c = client(server)
    for _ in range(2):
        r = c.chat.completions.create(
            model="echo", messages=[{"role": "user", "content": "m"}], metadata={"thread_id": "meta-1"}
        )
    assert r.choices[0].message.content == "turn 2: you said m"
    # `user` is the end user, whom chat UIs name on every one of their conversations: no thread.
    for _ in range(2):
        raw = c.chat.completions.with_raw_response.create(
            model="echo", messages=[{"role": "user", "content": "u"}], user="alice"
        )
    assert raw.parse().choices[0].message.content == "turn 1: you said u"
    assert raw.parse().model_extra["chatloom"]["thread_id"] is None and "x-chatloom-thread" not in raw.headers
    ids = [
        t["id"] for t in httpx.get(f"{server}/v1/threads", headers={"Authorization": f"Bearer {KEY_A}"}).json()["data"]
    ]
    assert ids == ["meta-1"]


def test_streaming_matches_the_final_answer(server):
    stream = client(server).chat.completions.create(
        model="echo",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        extra_headers={"X-Chatloom-Thread": "s1"},
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "turn 1: you said stream me please"
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) > 1  # really streamed in pieces
    final = chunks[-1]
    assert final.choices[0].finish_reason == "stop"
    assert final.model_extra["chatloom"]["answer"] == text
    assert final.model_extra["chatloom"]["preview_replaced"] is False


def test_tool_steps_ride_along_in_extra_fields(server):
    c = client(server)
    r = c.chat.completions.create(
        model="calc", messages=[{"role": "user", "content": "How many seats are in 17 rows of 23?"}]
    )
    assert r.choices[0].message.content == "The result is 391."
    steps = r.model_extra["chatloom"]["tool_steps"]
    assert [(s["name"], s["args"], s["result"], s["ok"]) for s in steps] == [
        ("calculator", {"expression": "17*23"}, "391", True)
    ]
    chunks = list(
        c.chat.completions.create(
            model="calc", messages=[{"role": "user", "content": "How many seats are in 17 rows of 23?"}], stream=True
        )
    )
    kinds = [ch.model_extra["chatloom"]["type"] for ch in chunks if (ch.model_extra or {}).get("chatloom")]
    assert kinds == ["tool_call", "tool_result", "answer"]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "The result is 391."


def test_citations_and_grounding(server):
    c = client(server)
    r = c.chat.completions.create(
        model="handbook", messages=[{"role": "user", "content": "How many days of annual leave at Acme?"}]
    )
    extra = r.model_extra["chatloom"]
    assert r.choices[0].message.content == "Annual leave at Acme is 25 days per year [1]."
    assert extra["grounded"] is True
    assert [(x["index"], x["source"]) for x in extra["citations"]] == [(1, "acme-handbook.md")]
    # Streaming a grounded agent: the checked answer arrives whole, never a preview to take back.
    chunks = list(
        c.chat.completions.create(
            model="handbook", messages=[{"role": "user", "content": "Annual leave at Acme?"}], stream=True
        )
    )
    assert (
        "".join(ch.choices[0].delta.content or "" for ch in chunks) == "Annual leave at Acme is 25 days per year [1]."
    )
    assert chunks[-1].model_extra["chatloom"]["citations"][0]["source"] == "acme-handbook.md"


def test_native_turns_stream_typed_events(server):
    import json

    events = []
    with httpx.stream(
        "POST",
        f"{server}/v1/agents/calc/turns",
        json={"input": "How many seats are in 17 rows of 23?", "thread_id": "n1"},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=30,
    ) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
    assert [e["type"] for e in events if e["type"] != "token"] == ["tool_call", "tool_result", "answer"]
    assert events[1]["content"] == "391" and events[1]["ok"] is True
    assert events[-1]["answer"] == "The result is 391." and events[-1]["thread_id"] == "n1"
    plain = httpx.post(
        f"{server}/v1/agents/echo/turns",
        json={"input": "hi", "thread_id": "n2", "stream": False},
        headers={"Authorization": f"Bearer {KEY_A}"},
        timeout=30,
    )
    assert plain.json()["answer"] == "turn 1: you said hi"


def test_health_and_ready(server):
    assert httpx.get(f"{server}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server}/ready")
    assert ready.status_code == 200 and ready.json()["models"] == ["echo", "calc", "handbook", "mailer"]
