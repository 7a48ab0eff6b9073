"""Two `chatloom serve` processes share the PostgreSQL checkpointer: one conversation, either server."""

from __future__ import annotations

import threading

import httpx

from serverhelpers import echo_workspace, serve_process

KEY = "scale-key-abcdefghijklmnop"
H = {"Authorization": f"Bearer {KEY}"}


def ask(url: str, text: str, thread: str = "across") -> str:
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": text}]},
                   headers={**H, "X-Chatloom-Thread": thread}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_one_conversation_continues_across_two_servers(tmp_path, postgres_dsn):
    ws = echo_workspace(tmp_path / "ws")
    env = {"CHATLOOM_API_KEYS": f"team={KEY}", "CHATLOOM_CHECKPOINT_URL": postgres_dsn}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Separate data dirs: nothing but PostgreSQL is shared.
    with serve_process(ws, tmp_path / "a", env=env) as (url_a, _), serve_process(ws, tmp_path / "b", env=env) as (url_b, _):
        assert ask(url_a, "first, on A") == "You said: first, on A"
        assert ask(url_b, "second, on B") == "You said: second, on B"
        assert ask(url_a, "third, on A") == "You said: third, on A"
        for url in (url_a, url_b):
            history = httpx.get(f"{url}/v1/threads/across", headers=H).json()["messages"]
            assert [m["content"] for m in history if m["role"] == "user"] == ["first, on A", "second, on B", "third, on A"]
            assert "across" in [t["id"] for t in httpx.get(f"{url}/v1/threads", headers=H).json()["data"]]

        # Two requests at once on one conversation, one to each server: the PostgreSQL advisory
        # lock serialises them, so both turns are kept.
        answers: list[str] = []
        workers = [threading.Thread(target=lambda u=u, t=t: answers.append(ask(u, t, "race"))) for u, t in ((url_a, "race A"), (url_b, "race B"))]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        history = httpx.get(f"{url_b}/v1/threads/race", headers=H).json()["messages"]
        assert sorted(m["content"] for m in history if m["role"] == "user") == ["race A", "race B"]
        assert len([m for m in history if m["role"] == "assistant"]) == 2
