"""Bad requests get a clear 4xx in OpenAI's error shape, and the server keeps answering."""

from __future__ import annotations

import httpx
import openai
import pytest
from serverhelpers import KEY_A

GOOD = {"model": "echo", "messages": [{"role": "user", "content": "still there?"}]}


def still_up(url: str) -> None:
    assert httpx.get(f"{url}/health").status_code == 200
    r = httpx.post(f"{url}/v1/chat/completions", json=GOOD, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30)
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"].endswith("you said still there?")


def test_auth_failures_are_401_with_the_openai_error(server):
    bad = openai.OpenAI(base_url=f"{server}/v1", api_key="not-a-real-key-000000000", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        bad.chat.completions.create(**GOOD)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        r = httpx.post(f"{server}/v1/chat/completions", json=GOOD, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
    for path in ("/v1/models", "/v1/threads", "/v1/approvals"):
        assert httpx.get(f"{server}{path}").status_code == 401
    still_up(server)


def test_unknown_model_is_404(server):
    c = openai.OpenAI(base_url=f"{server}/v1", api_key=KEY_A, max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        c.chat.completions.create(model="ecoh", messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "model_not_found" and "did you mean 'echo'" in str(info.value)
    r = httpx.post(f"{server}/v1/agents/nope/turns", json={"input": "x"}, headers={"Authorization": f"Bearer {KEY_A}"})
    assert r.status_code == 404
    still_up(server)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_body"),
        (b'{"model": "echo"}', 400, "invalid_body"),
        (b'{"model": "echo", "messages": []}', 400, "invalid_body"),
        (b'{"model": "echo", "messages": [{"role": "assistant", "content": "hi"}]}', 400, "invalid_messages"),
        (b'{"model": "echo", "messages": [{"role": "user", "content": "   "}]}', 400, "invalid_question"),
        (
            b'{"model": "echo", "messages": [{"role": "user", "content": "hi"}], "metadata": {"thread_id": "a\\u0000b"}}',
            400,
            "invalid_thread_id",
        ),
        (b'["a list"]', 400, "invalid_body"),
        (
            b'{"model": "echo", "messages": [{"role": "user", "content": "' + b"x" * 30_000 + b'"}]}',
            413,
            "request_too_large",
        ),
    ],
)
def test_malformed_and_oversized_requests(server, body, status, code):
    r = httpx.post(
        f"{server}/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"},
    )
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["message"]
    still_up(server)


def test_oversized_body_without_content_length_is_413(server):
    def chunks():
        for _ in range(30):
            yield b"x" * 1000

    r = httpx.post(
        f"{server}/v1/chat/completions",
        content=chunks(),
        headers={"Authorization": f"Bearer {KEY_A}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    still_up(server)


def test_native_endpoint_rejects_unknown_fields(server):
    r = httpx.post(
        f"{server}/v1/agents/echo/turns",
        json={"input": "x", "thred_id": "t"},
        headers={"Authorization": f"Bearer {KEY_A}"},
    )
    assert r.status_code == 400 and "thred_id" in r.json()["error"]["message"]
    still_up(server)


def test_unknown_thread_and_approval_are_404(server):
    h = {"Authorization": f"Bearer {KEY_A}"}
    assert httpx.get(f"{server}/v1/threads/never-used", headers=h).json()["error"]["code"] == "thread_not_found"
    assert httpx.post(f"{server}/v1/approvals/nope", json={"approve": True}, headers=h).status_code == 404


def test_a_turn_over_the_timeout_is_504_and_the_server_goes_on(checkpointer):
    from serverhelpers import config, live_server, scripted_catalog

    from chatloom.server.app import create_app

    app = create_app(scripted_catalog(checkpointer, slow=1.5), config(turn_timeout=0.3))
    with live_server(app) as url:
        r = httpx.post(
            f"{url}/v1/chat/completions", json=GOOD, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=30
        )
        assert r.status_code == 504 and r.json()["error"]["code"] == "turn_timeout"
        with httpx.stream(
            "POST",
            f"{url}/v1/agents/echo/turns",
            json={"input": "x"},
            headers={"Authorization": f"Bearer {KEY_A}"},
            timeout=30,
        ) as s:
            text = "".join(s.iter_text())
        assert "event: error" in text and "turn_timeout" in text
        assert httpx.get(f"{url}/health").status_code == 200
