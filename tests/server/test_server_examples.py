"""examples/support_bot and examples/openai_client.py, each run for real with a scripted model."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from serverhelpers import REPO, echo_workspace, serve_process

from chatloom import Agent
from chatloom.testing import FakeChatModel, tool_call

SECRET = "slack-signing-secret-for-tests"


def load_bot():
    spec = importlib.util.spec_from_file_location("support_bot", REPO / "examples" / "support_bot" / "bot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def signed(body: dict, secret: str = SECRET, stamp: int | None = None) -> tuple[bytes, dict]:
    raw = json.dumps(body).encode()
    ts = str(stamp if stamp is not None else int(time.time()))
    sig = "v0=" + hmac.new(secret.encode(), f"v0:{ts}:".encode() + raw, hashlib.sha256).hexdigest()
    return raw, {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}


@pytest.fixture
def bot():
    from chatloom.tools.calculator import calculator

    module = load_bot()
    posted: list[tuple[str, str, str]] = []

    async def post(channel: str, thread_ts: str, text: str) -> None:
        posted.append((channel, thread_ts, text))

    def model_reply(messages):
        last = messages[-1]
        if getattr(last, "type", "") == "tool":
            return f"It is {last.content}."
        questions = [m for m in messages if getattr(m, "type", "") == "human"]
        return (
            tool_call("calculator", expression="17*23")
            if len(questions) == 1
            else f"You asked {len(questions)} questions here."
        )

    agent = Agent(model=FakeChatModel(default=model_reply), tools=[calculator], checkpointer="memory")
    app = module.create_bot(agent, SECRET, post)
    with TestClient(app) as client:
        yield client, posted


def event(text: str, ts: str = "1.0", thread_ts: str | None = None, **extra) -> dict:
    e = {"type": "message", "user": "U1", "text": text, "channel": "C1", "ts": ts, **extra}
    if thread_ts:
        e["thread_ts"] = thread_ts
    return {"type": "event_callback", "event": e}


def wait_posted(client, posted, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(posted) < n:
        assert time.monotonic() < deadline, posted
        client.portal.call(asyncio.sleep, 0.05)


def test_support_bot_answers_in_the_thread(bot):
    client, posted = bot
    raw, headers = signed(event("How many seats are in 17 rows of 23?"))
    r = client.post("/slack/events", content=raw, headers=headers)
    assert r.json() == {"ok": True}
    wait_posted(client, posted, 1)
    assert posted[0] == ("C1", "1.0", "It is 391.")
    # A reply in the same Slack thread continues the same conversation.
    raw, headers = signed(event("and again?", ts="2.0", thread_ts="1.0"))
    client.post("/slack/events", content=raw, headers=headers)
    wait_posted(client, posted, 2)
    assert posted[1] == ("C1", "1.0", "You asked 2 questions here.")


def test_support_bot_refuses_bad_signatures_and_ignores_its_own_posts(bot):
    client, posted = bot
    raw, headers = signed(event("hi"), secret="wrong")
    assert client.post("/slack/events", content=raw, headers=headers).status_code == 401
    raw, headers = signed(event("hi"), stamp=int(time.time()) - 3600)  # a replayed old request
    assert client.post("/slack/events", content=raw, headers=headers).status_code == 401
    raw, headers = signed(event("my own answer", bot_id="B1"))
    assert client.post("/slack/events", content=raw, headers=headers).json() == {"ok": True}
    raw, headers = signed({"type": "url_verification", "challenge": "abc"})
    assert client.post("/slack/events", content=raw, headers=headers).json() == {"challenge": "abc"}
    client.portal.call(asyncio.sleep, 0.3)
    assert posted == []


def test_support_bot_demo_runs_offline(tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "src"),
        "CHATLOOM_HOME": str(tmp_path),
        "CHATLOOM_MODEL": "fake:echo",
        "CHATLOOM_CONFIG": str(tmp_path / "none.toml"),
    }
    out = subprocess.run(
        [sys.executable, str(REPO / "examples" / "support_bot" / "bot.py"), "--demo", "hello bot"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "webhook acknowledged: 200" in out.stdout and "bot replied in C1/1.0:\nYou said: hello bot" in out.stdout


def test_openai_client_example(tmp_path):
    key = "example-key-abcdefghijkl"
    ws = echo_workspace(tmp_path / "ws")
    with serve_process(ws, tmp_path, env={"CHATLOOM_API_KEYS": f"me={key}"}) as (url, _):
        env = {**os.environ, "CHATLOOM_URL": f"{url}/v1", "CHATLOOM_API_KEY": key}
        out = subprocess.run(
            [sys.executable, str(REPO / "examples" / "openai_client.py"), "echo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert out.returncode == 0, out.stderr
    assert "agents: default, echo" in out.stdout
    assert "answer: You said: What is 17*23?" in out.stdout
    assert "streamed: You said: And what did I just ask?" in out.stdout
