"""`chatloom serve` under load, with the scripted model: errors, cross-talk, throughput, latency, memory.

Starts the server (``create_app`` under uvicorn, as ``chatloom serve`` runs it, JSON logs on) in
a child process, with a scripted model that answers "You said: <question>" at once, so what is
measured is the server: HTTP, SSE, the turn graph, the SQLite checkpointer and the per-thread
lock. (Not ``--model fake:echo``: that test model keeps every call it got, which is a test
aid, not a leak to measure.) Then:

1. baseline: one conversation's turns, one at a time, in-process (`Agent.chat`) and over HTTP;
2. load: 50 conversations at once x 10 turns each, half of them streaming (OpenAI SSE). Every
   reply must echo its own question, and every stored thread must hold exactly its own
   questions in order (cross-talk check); errors must be 0; throughput, p50 and p99 latency;
3. race: 20 rounds of two requests at once on one conversation; every turn must be kept;
4. memory: 10,000 turns (200 conversations x 50, 50 at a time); the server's RSS after each
   tenth; growth from the first tenth to the end.

    python benchmarks/bench_serve.py            # the full run (about 5 minutes here)
    python benchmarks/bench_serve.py --quick    # 10 conversations x 3 turns, 1,000 turns for memory

Writes benchmarks/results/bench_serve.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, percentile, save

from chatloom.testing import free_port, stop_process, wait_until_serving

KEY = "bench-key-0123456789abcdef"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def serve_child(port: int) -> None:
    """The server process: the ``echo`` agent on a quiet scripted model, SQLite checkpointer."""
    import uvicorn

    from chatloom import Agent
    from chatloom.config import get_settings
    from chatloom.memory.checkpoint import open_checkpointer
    from chatloom.server import AgentCatalog, create_app, http_approver, load_server_config
    from chatloom.server.observe import configure_json_logs
    from chatloom.testing import FakeChatModel

    class QuietEcho(FakeChatModel):
        def _next(self, messages, tool_choice=None):  # type: ignore[no-untyped-def]
            try:
                return super()._next(messages, tool_choice)
            finally:
                with self._lock:
                    self.calls.clear()
                    self.tool_choices.clear()

    def echo(messages):  # type: ignore[no-untyped-def]
        return f"You said: {messages[-1].content}"

    saver = open_checkpointer(get_settings())
    model = QuietEcho(default=echo)
    catalog = AgentCatalog(
        {"echo": lambda tenant: Agent(model=model, prompt="assistant", checkpointer=saver, approver=http_approver)},
        checkpointer=saver,
    )
    configure_json_logs()
    uvicorn.run(
        create_app(catalog, load_server_config()), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def start_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "CHATLOOM_HOME": str(home),
        "CHATLOOM_CONFIG": str(home / "none.toml"),
        "CHATLOOM_API_KEYS": f"bench={KEY}",
    }
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-child", str(port)],
        env=env,
        cwd=home,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "serve.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{url}/health", what="chatloom serve")
    except RuntimeError as exc:
        raise SystemExit(f"{exc}; see {home / 'serve.log'}") from None
    return proc, url


async def turn(client, text: str, thread: str, stream: bool) -> tuple[str, float]:
    """One turn; returns (the answer, seconds)."""
    body = {"model": "echo", "messages": [{"role": "user", "content": text}], "stream": stream}
    headers = {"X-Chatloom-Thread": thread}
    started = time.perf_counter()
    if not stream:
        r = await client.post("/v1/chat/completions", json=body, headers=headers)
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"], time.perf_counter() - started
    answer = ""
    async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        r.raise_for_status()
        async for line in r.aiter_lines():
            if line.startswith("data:") and line[5:].strip() != "[DONE]":
                data = json.loads(line[5:])
                if "error" in data:
                    raise RuntimeError(data["error"]["message"])
                answer += data["choices"][0]["delta"].get("content") or ""
    return answer, time.perf_counter() - started


async def load(url: str, conversations: int, turns: int, tag: str, parallel: int | None = None) -> dict:
    """``conversations`` x ``turns``, ``parallel`` conversations at a time (default: all)."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    crosstalk = 0
    limit = asyncio.Semaphore(parallel or conversations)
    limits = httpx.Limits(max_connections=parallel or conversations)
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120, limits=limits
    ) as client:

        async def conversation(n: int) -> None:
            nonlocal crosstalk
            async with limit:
                thread = f"{tag}-{n}"
                for i in range(turns):
                    question = f"{thread} turn {i} #{n * 7919 + i}"
                    try:
                        answer, seconds = await turn(client, question, thread, stream=n % 2 == 1)
                    except Exception as exc:  # noqa: BLE001 - counted, and the run goes on
                        errors.append(f"{type(exc).__name__}: {exc}")
                        continue
                    latencies.append(seconds)
                    if answer != f"You said: {question}":
                        crosstalk += 1

        started = time.perf_counter()
        await asyncio.gather(*(conversation(n) for n in range(conversations)))
        wall = time.perf_counter() - started
        # The stored threads: each must hold exactly its own questions, in order.
        stored_wrong = 0
        for n in range(conversations):
            thread = f"{tag}-{n}"
            r = await client.get(f"/v1/threads/{thread}")
            asked = [m["content"] for m in r.json().get("messages", []) if m["role"] == "user"]
            if asked != [f"{thread} turn {i} #{n * 7919 + i}" for i in range(turns)]:
                stored_wrong += 1
    return {
        "turns": conversations * turns,
        "errors": len(errors),
        "error_examples": errors[:3],
        "crosstalk_replies": crosstalk,
        "threads_with_wrong_history": stored_wrong,
        "seconds": round(wall, 2),
        "turns_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99) * 1000, 1) if latencies else None,
    }


async def race(url: str, rounds: int) -> dict:
    import httpx

    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        for i in range(rounds):
            await asyncio.gather(turn(client, f"race {i} a", "race", False), turn(client, f"race {i} b", "race", True))
        r = await client.get("/v1/threads/race")
    asked = [m["content"] for m in r.json()["messages"] if m["role"] == "user"]
    return {
        "requests": rounds * 2,
        "turns_kept": len(asked),
        "all_kept": sorted(asked) == sorted(f"race {i} {s}" for i in range(rounds) for s in "ab"),
    }


def baseline(url: str, turns: int) -> dict:
    """Median ms of one turn in-process vs over HTTP (one conversation, one turn at a time)."""
    import httpx

    from chatloom import Agent
    from chatloom.testing import create_fake_model

    with tempfile.TemporaryDirectory() as tmp:
        from chatloom.memory.checkpoint import open_sqlite_checkpointer

        agent = Agent(
            model=create_fake_model(), prompt="assistant", checkpointer=open_sqlite_checkpointer(Path(tmp) / "t.sqlite")
        )
        agent.chat("warm up", thread_id="b")
        local = []
        for i in range(turns):
            t = time.perf_counter()
            agent.chat(f"q{i}", thread_id="b")
            local.append(time.perf_counter() - t)
    with httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {KEY}", "X-Chatloom-Thread": "baseline"}, timeout=60
    ) as c:
        body = lambda i: {"model": "echo", "messages": [{"role": "user", "content": f"q{i}"}]}  # noqa: E731
        c.post("/v1/chat/completions", json=body(-1))
        remote = []
        for i in range(turns):
            t = time.perf_counter()
            c.post("/v1/chat/completions", json=body(i)).raise_for_status()
            remote.append(time.perf_counter() - t)
    lm, rm = statistics.median(local) * 1000, statistics.median(remote) * 1000
    return {"in_process_ms": round(lm, 2), "http_ms": round(rm, 2), "http_over_in_process": round(rm / lm, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a smoke run (small load, 1,000 turns for memory)")
    ap.add_argument("--serve-child", type=int, metavar="PORT", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.serve_child:
        return serve_child(a.serve_child)
    conversations, turns, memory_turns = (10, 3, 1000) if a.quick else (50, 10, 10_000)
    results: dict = {"quick": a.quick}
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp))
        try:
            results["baseline"] = baseline(url, 20 if a.quick else 50)
            print(
                f"baseline: one turn {results['baseline']['in_process_ms']} ms in-process, {results['baseline']['http_ms']} ms over HTTP",
                flush=True,
            )
            results["load"] = asyncio.run(load(url, conversations, turns, "load"))
            print(f"load {conversations}x{turns}: {results['load']}", flush=True)
            results["race"] = asyncio.run(race(url, 20))
            print(f"race: {results['race']}", flush=True)
            per = 50  # turns per conversation
            tenth = max(1, memory_turns // per // 10)  # conversations per tenth
            rss, errors, crosstalk, speeds = [], 0, 0, []
            for part in range(10):
                done = asyncio.run(load(url, tenth, per, f"mem{part}", parallel=50))
                errors += done["errors"] + done["threads_with_wrong_history"]
                crosstalk += done["crosstalk_replies"]
                speeds.append(done["turns_per_s"])
                rss.append(round(rss_mb(proc.pid), 1))
                print(
                    f"  memory: {(part + 1) * tenth * per} turns, RSS {rss[-1]} MB, {done['turns_per_s']} turns/s",
                    flush=True,
                )
            results["memory"] = {
                "turns": 10 * tenth * per,
                "rss_mb_per_tenth": rss,
                "growth_mb_first_tenth_to_end": round(rss[-1] - rss[0], 1),
                "errors": errors,
                "crosstalk_replies": crosstalk,
                "turns_per_s_first_last_tenth": [speeds[0], speeds[-1]],
            }
            print(f"memory: {results['memory']}", flush=True)
        finally:
            stop_process(proc, timeout=30)
    path = save("bench_serve", results)
    failed = (
        results["load"]["errors"]
        or results["load"]["crosstalk_replies"]
        or results["load"]["threads_with_wrong_history"]
        or not results["race"]["all_kept"]
    )
    print(f"wrote {path}" + ("; FAILED: errors, cross-talk or lost turns above" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
