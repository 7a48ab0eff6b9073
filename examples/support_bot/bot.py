"""A support bot for a chat platform: chatloom's Agent behind a Slack-style webhook receiver.

The platform POSTs events to ``/slack/events``; the receiver checks Slack's request signature
(``X-Slack-Signature``, HMAC-SHA256 with your signing secret), answers the URL check, and
acknowledges each message at once (Slack wants an answer within 3 s). The turn runs in the
background, one conversation per Slack thread (``channel:thread_ts``) and per user, and the
answer, with its sources as footnotes, is posted back to the same thread with ``post_reply``.
Teams' Bot Framework has the same shape: verify, acknowledge, answer in the background.

    export SLACK_SIGNING_SECRET=... SLACK_BOT_TOKEN=xoxb-...
    pip install 'chatloom[server]' && python examples/support_bot/bot.py --port 3000
    python examples/support_bot/bot.py --demo "What is 17*23?"   # offline: one signed event, no Slack

Without ``SLACK_BOT_TOKEN`` replies are printed instead of posted (``--demo`` always prints).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Request

from chatloom import Agent

PostReply = Callable[[str, str, str], Awaitable[None]]  # (channel, thread_ts, text)
MAX_CLOCK_SKEW_S = 300  # Slack's advice: refuse requests older than 5 minutes (replays)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``v0=`` signature of a request body."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def reply_text(reply: Any) -> str:
    """The answer with its citations as footnotes (Slack mrkdwn is plain enough for this)."""
    notes = [f"[{c.index}] {c.title or c.source}" for c in reply.citations]
    return reply.answer + ("\n\n" + "\n".join(notes) if notes else "")


def create_bot(agent: Agent, signing_secret: str, post_reply: PostReply) -> FastAPI:
    """The webhook receiver: ``POST /slack/events``."""
    app = FastAPI(title="support bot")
    app.state.tasks = set()  # keeps background turns alive until they finish

    async def answer(event: dict[str, Any]) -> None:
        channel, thread_ts = event["channel"], event.get("thread_ts") or event["ts"]
        try:
            reply = await agent.achat(
                event["text"], thread_id=f"slack:{channel}:{thread_ts}", user_id=event.get("user")
            )
            text = reply_text(reply)
        except Exception as exc:  # noqa: BLE001 - the user gets a short note; the details stay in the log
            print(f"turn failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            text = "Sorry, I couldn't answer that just now. Please try again."
        await post_reply(channel, thread_ts, text)

    @app.post("/slack/events")
    async def events(request: Request) -> dict[str, Any]:
        body = await request.body()
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        given = request.headers.get("X-Slack-Signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_S:
            raise HTTPException(401, "stale or missing request timestamp")
        if not hmac.compare_digest(given, signature(signing_secret, timestamp, body)):
            raise HTTPException(401, "bad signature")
        payload = json.loads(body)
        if payload.get("type") == "url_verification":
            return {"challenge": payload.get("challenge", "")}
        event = payload.get("event") or {}
        # Only people's messages: never the bot's own posts (that would loop) or edits.
        if (
            event.get("type") in ("message", "app_mention")
            and event.get("text")
            and not event.get("bot_id")
            and not event.get("subtype")
        ):
            task = asyncio.create_task(answer(event))
            app.state.tasks.add(task)
            task.add_done_callback(app.state.tasks.discard)
        return {"ok": True}

    return app


def slack_poster(token: str | None) -> PostReply:
    """Posts with Slack's ``chat.postMessage``; prints instead without a token."""

    async def post(channel: str, thread_ts: str, text: str) -> None:
        if not token:
            print(f"[{channel} / {thread_ts}] {text}", flush=True)
            return
        import httpx

        async with httpx.AsyncClient(timeout=30) as client:
            await client.post(
                "https://slack.com/api/chat.postMessage",
                headers={"Authorization": f"Bearer {token}"},
                json={"channel": channel, "thread_ts": thread_ts, "text": text},
            )

    return post


def demo(agent: Agent, question: str) -> None:
    """Send one signed event through the receiver in-process and print the posted reply."""
    from fastapi.testclient import TestClient

    secret, posted = "demo-secret", asyncio.Event()

    async def post(channel: str, thread_ts: str, text: str) -> None:
        print(f"bot replied in {channel}/{thread_ts}:\n{text}", flush=True)
        posted.set()

    app = create_bot(agent, secret, post)
    body = json.dumps(
        {
            "type": "event_callback",
            "event": {"type": "message", "user": "U1", "text": question, "channel": "C1", "ts": "1.0"},
        }
    ).encode()
    stamp = str(int(time.time()))
    with TestClient(app) as client:
        r = client.post(
            "/slack/events",
            content=body,
            headers={"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signature(secret, stamp, body)},
        )
        print(f"webhook acknowledged: {r.status_code} {r.json()}", flush=True)
        client.portal.call(lambda: asyncio.wait_for(posted.wait(), 600))


def main() -> None:
    ap = argparse.ArgumentParser(description="A Slack-style support bot on chatloom.")
    ap.add_argument("--port", type=int, default=3000)
    ap.add_argument("--demo", metavar="QUESTION", help="answer one event offline and exit")
    a = ap.parse_args()
    agent = Agent(prompt="assistant", tools=["calculator"])  # the configured model (local by default)
    if a.demo:
        demo(agent, a.demo)
        return
    secret = os.environ.get("SLACK_SIGNING_SECRET")
    if not secret:
        sys.exit("set SLACK_SIGNING_SECRET (Slack app settings > Basic Information), or run with --demo")
    import uvicorn

    uvicorn.run(
        create_bot(agent, secret, slack_poster(os.environ.get("SLACK_BOT_TOKEN"))), host="127.0.0.1", port=a.port
    )


if __name__ == "__main__":
    main()
