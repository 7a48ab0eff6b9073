"""Many conversations at once, and two requests on one conversation: no turn lost, no cross-talk."""

from __future__ import annotations

import asyncio

import httpx
from serverhelpers import KEY_A, config, live_server, scripted_catalog

from chatloom.server.app import create_app


async def _ask(client: httpx.AsyncClient, text: str, thread: str) -> str:
    r = await client.post(
        "/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        headers={"X-Chatloom-Thread": thread},
    )
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_two_requests_at_once_on_one_thread_keep_both_turns(checkpointer):
    # Each model call sleeps, so the two turns overlap unless the thread lock serialises them.
    app = create_app(scripted_catalog(checkpointer, slow=0.3), config())
    with live_server(app) as url:

        async def main() -> list[str]:
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60) as c:
                return await asyncio.gather(_ask(c, "first", "same"), _ask(c, "second", "same"))

        answers = asyncio.run(main())
        history = httpx.get(f"{url}/v1/threads/same", headers={"Authorization": f"Bearer {KEY_A}"}).json()["messages"]
    assert sorted(a.split(":")[0] for a in answers) == ["turn 1", "turn 2"]  # the second saw the first
    assert sorted(m["content"] for m in history if m["role"] == "user") == ["first", "second"]
    assert len([m for m in history if m["role"] == "assistant"]) == 2


def test_many_conversations_at_once_stay_apart(checkpointer):
    app = create_app(scripted_catalog(checkpointer, slow=0.01), config())
    with live_server(app) as url:

        async def conversation(c: httpx.AsyncClient, n: int) -> list[str]:
            return [await _ask(c, f"conv{n} q{i}", f"conv{n}") for i in range(3)]

        async def main() -> list[list[str]]:
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"}, timeout=60) as c:
                return await asyncio.gather(*(conversation(c, n) for n in range(20)))

        results = asyncio.run(main())
    for n, answers in enumerate(results):
        assert answers == [f"turn {i + 1}: you said conv{n} q{i}" for i in range(3)]
