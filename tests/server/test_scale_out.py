"""Two `chatloom serve` processes share PostgreSQL (threads and the knowledge index) and a Chroma
server, each with a data dir of its own: one conversation and one knowledge base, either server."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
from serverhelpers import REPO, echo_workspace, serve_process

# The real local Chroma server and the shared ONNX export of tests/memory (their fixtures).
_spec = importlib.util.spec_from_file_location(
    "chatloom_memory_fixtures_scale", Path(__file__).parents[1] / "memory" / "conftest.py"
)
_memory_fixtures = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_memory_fixtures)
chroma_url = _memory_fixtures.chroma_url
onnx_cache = _memory_fixtures.onnx_cache

KEY = "scale-key-abcdefghijklmnop"
H = {"Authorization": f"Bearer {KEY}"}


def ask(url: str, text: str, thread: str = "across") -> str:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "echo", "messages": [{"role": "user", "content": text}]},
        headers={**H, "X-Chatloom-Thread": thread},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def test_one_conversation_continues_across_two_servers(tmp_path, postgres_dsn):
    ws = echo_workspace(tmp_path / "ws")
    env = {"CHATLOOM_API_KEYS": f"team={KEY}", "CHATLOOM_CHECKPOINT_URL": postgres_dsn}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    # Separate data dirs: nothing but PostgreSQL is shared.
    with (
        serve_process(ws, tmp_path / "a", env=env) as (url_a, _),
        serve_process(ws, tmp_path / "b", env=env) as (url_b, _),
    ):
        assert ask(url_a, "first, on A") == "You said: first, on A"
        assert ask(url_b, "second, on B") == "You said: second, on B"
        assert ask(url_a, "third, on A") == "You said: third, on A"
        for url in (url_a, url_b):
            history = httpx.get(f"{url}/v1/threads/across", headers=H).json()["messages"]
            assert [m["content"] for m in history if m["role"] == "user"] == [
                "first, on A",
                "second, on B",
                "third, on A",
            ]
            assert "across" in [t["id"] for t in httpx.get(f"{url}/v1/threads", headers=H).json()["data"]]

        # Two requests at once on one conversation, one to each server: the PostgreSQL advisory
        # lock serialises them, so both turns are kept.
        answers: list[str] = []
        workers = [
            threading.Thread(target=lambda u=u, t=t: answers.append(ask(u, t, "race")))
            for u, t in ((url_a, "race A"), (url_b, "race B"))
        ]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)
        history = httpx.get(f"{url_b}/v1/threads/race", headers=H).json()["messages"]
        assert sorted(m["content"] for m in history if m["role"] == "user") == ["race A", "race B"]
        assert len([m for m in history if m["role"] == "assistant"]) == 2


def kb_workspace(root: Path) -> Path:
    """The echo workspace plus ``kb``: an echo agent that recalls from the ``handbook`` namespace,
    so its grounded answer quotes and cites what was ingested."""
    echo_workspace(root)
    (root / "agents" / "kb.yaml").write_text(
        "name: kb\ndescription: answers from the handbook\nprompt: assistant\n"
        "memory: {enabled: true, namespace: handbook}\n",
        encoding="utf-8",
    )
    return root


def machine_home(path: Path, onnx: Path) -> Path:
    """A data dir of its own (one "machine"), sharing only the bundled model's ONNX export."""
    (path / "models").mkdir(parents=True)
    (path / "models" / "all-MiniLM-L6-v2-onnx").symlink_to(onnx / "all-MiniLM-L6-v2-onnx")
    return path


def ingest(home: Path, env: dict[str, str], doc: Path) -> None:
    """`chatloom ingest` on one machine, into the ``kb`` agent's namespace of tenant ``team``."""
    done = subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", "ingest", "--namespace", "handbook", "--tenant", "team", str(doc)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=home,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO / "src"),
            "CHATLOOM_HOME": str(home),
            "CHATLOOM_CONFIG": str(home / "no-chatloom.toml"),
            **env,
        },
    )
    assert done.returncode == 0, done.stderr


def ask_kb(url: str, text: str) -> dict:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "kb", "messages": [{"role": "user", "content": text}]},
        headers={**H, "X-Chatloom-Thread": f"kb-{text[:12]}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_knowledge_ingested_on_one_machine_is_cited_by_the_other(tmp_path, postgres_dsn, chroma_url, onnx_cache):
    ws = kb_workspace(tmp_path / "ws")
    env = {
        "CHATLOOM_API_KEYS": f"team={KEY}",
        "CHATLOOM_CHECKPOINT_URL": postgres_dsn,
        "CHATLOOM_INDEX_URL": postgres_dsn,
        "CHATLOOM_MEMORY_URL": chroma_url,
    }
    home_a, home_b = machine_home(tmp_path / "a", onnx_cache), machine_home(tmp_path / "b", onnx_cache)
    billing = tmp_path / "billing.md"
    billing.write_text("# Billing\nInvoices are sent on the first working day of each month.\n", encoding="utf-8")
    parking = tmp_path / "parking.md"
    parking.write_text("# Parking\nParking permits are issued by the reception desk.\n", encoding="utf-8")
    with serve_process(ws, home_a, env=env) as (url_a, _), serve_process(ws, home_b, env=env) as (url_b, _):
        ingest(home_a, env, billing)  # on machine A
        for url in (url_b, url_a):
            reply = ask_kb(url, "When are invoices sent?")
            assert "first working day of each month" in reply["choices"][0]["message"]["content"]
            assert [c["source"] for c in reply["chatloom"]["citations"]] == ["billing.md"], reply["chatloom"]
        # Machine B writes; A finds it (A's keyword cache, stale now, is rebuilt from the shared
        # rows: tests/memory/test_shared_index.py checks that in keyword mode).
        ingest(home_b, env, parking)
        reply = ask_kb(url_a, "Who issues parking permits?")
        assert "reception desk" in reply["choices"][0]["message"]["content"]
        assert [c["source"] for c in reply["chatloom"]["citations"]] == ["parking.md"]
        # The conversation continues across both servers too.
        assert ask(url_a, "kb first, on A", "kb-across") == "You said: kb first, on A"
        assert ask(url_b, "kb second, on B", "kb-across") == "You said: kb second, on B"
        history = httpx.get(f"{url_a}/v1/threads/kb-across", headers=H).json()["messages"]
        assert [m["content"] for m in history if m["role"] == "user"] == ["kb first, on A", "kb second, on B"]
    # Neither data dir holds an index of its own: PostgreSQL is the only copy.
    for home in (home_a, home_b):
        assert not list((home / "memory").glob("index*.sqlite"))
