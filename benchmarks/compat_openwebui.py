"""Run Open WebUI against ``chatloom serve`` and drive it headless through Open WebUI's own API.

Not a benchmark and not in CI (Open WebUI is a multi-gigabyte install): a compatibility check
with a real chat UI, with timings. It needs Open WebUI in a venv of its own::

    python3.11 -m venv /tmp/owui-venv && /tmp/owui-venv/bin/pip install open-webui==0.12.4
    python benchmarks/compat_openwebui.py --owui-python /tmp/owui-venv/bin/python
    python benchmarks/compat_openwebui.py --keep     # keep the scratch dir (logs, both data dirs)

What it does, in a scratch directory (nothing leaves it, and nothing is fetched: Open WebUI runs
with ``OFFLINE_MODE``, no embedding model, no web search and no Ollama):

1. a workspace with the built-in ``default`` assistant and ``kb``, a knowledge bot on namespace
   ``faq``; ``chatloom ingest docs/ -n faq --tenant owui`` stores one HR page there;
2. ``chatloom serve --model scripted:owui`` with an API key for tenant ``owui``. The model is a
   deterministic scripted one (a ``chatloom.models`` plugin written into the scratch dir, the
   documented plugin mechanism): it answers "what is my name" from the earlier turns it is
   shown, quotes passage [1] for a knowledge question, echoes anything else, and streams word
   by word with a short pause, so buffering anywhere on the way would show;
3. ``open-webui serve`` with one OpenAI connection, ``OPENAI_API_BASE_URL`` = chatloom's ``/v1``
   and ``OPENAI_API_KEY`` = the tenant's key; the first sign-up (``/api/v1/auths/signup``) is the
   admin, whose token drives the rest;
4. through Open WebUI (``/api/models``, ``/api/chat/completions``), never chatloom directly:
   - ``models``: chatloom's agents are listed as Open WebUI models;
   - ``three turns``: a conversation resent whole on each request, as Open WebUI's page does;
     turn 3 asks for what only turn 1 said (the same question alone, a control, must not know);
   - ``knowledge``: ``kb`` answers with ``[1]`` and chatloom's ``chatloom.citations`` (source
     ``hr/leave.md``, relative to the ingest root) survives Open WebUI's proxy;
   - ``stream``: ``stream: true`` through Open WebUI; several content chunks, spread over time
     (the first well before the last), then ``[DONE]``;
5. the same three scenarios the way Open WebUI's page sends them (``PAGE_CLIENT``, run with
   Open WebUI's python for its socket.io client): a socket.io session, chats created and
   continued with ``chat_id``/``parent_id``/``user_message``/``session_id``, the reply streamed
   to the session as socket events and saved in the chat, which is read back
   (``/api/v1/chats/{id}``); ``page: knowledge`` also says whether the page would show a source;
6. chatloom stored no thread (stateless requests store nothing).

Prints one line per check with its time and exits 1 if any failed.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OWUI_PYTHON = "/tmp/owui-venv/bin/python"
TENANT = "owui"
STREAM_PAUSE = 0.05  # seconds between the scripted model's streamed words
LEAVE = "# Annual leave\nEvery employee gets 25 days of annual leave per year.\n"
QUESTIONS = ["Hi, my name is Ada.", "I also have a cat called Miso.", "What is my name?"]  # turn 3 needs turn 1
KNOWLEDGE_QUESTION = "How many days of annual leave do I get?"
STREAM_QUESTION = "Please stream this sentence back to me one word at a time, slowly enough to see."

# The scripted model: a chatloom.models plugin (entry point ``scripted``), importable from the
# scratch dir. It sees what the agent shows the model, so its answers show what reached it.
SCRIPTED_MODEL = textwrap.dedent(
    '''
    """A deterministic model for the Open WebUI check (written by benchmarks/compat_openwebui.py)."""
    import re
    import time

    from langchain_core.messages import HumanMessage

    from chatloom.testing import FakeChatModel

    PAUSE = {pause}


    def _text(message):
        return message.content if isinstance(message.content, str) else str(message.content)


    def reply(messages):
        humans = [_text(m) for m in messages if isinstance(m, HumanMessage)]
        last = humans[-1] if humans else ""
        passage = re.search(r"Passage \\[1\\][^\\n]*:\\n([^\\n]+)", last)
        if passage:  # a knowledge turn: quote passage [1] and cite it
            return passage.group(1).strip().rstrip(".") + " [1]."
        if re.search(r"what is my name", last, re.I):
            for earlier in humans[:-1]:
                name = re.search(r"my name is (\\w+)", earlier, re.I)
                if name:
                    return f"Your name is {{name.group(1)}}."
            return "I don't know your name: you haven't told me."
        return f"You said: {{last}}"


    class ScriptedModel(FakeChatModel):
        def _stream(self, *args, **kwargs):
            for chunk in super()._stream(*args, **kwargs):
                time.sleep(PAUSE)
                yield chunk


    def create(name="owui", **options):
        return ScriptedModel(default=reply, **options)
    '''
).format(pause=STREAM_PAUSE)

# Open WebUI's page flow, headless; runs in Open WebUI's venv (it has python-socketio and aiohttp).
# The browser opens a socket.io session, then POSTs /api/chat/completions with the whole history
# plus chat_id / parent_id / user_message / id (the assistant message) / session_id; Open WebUI
# answers the POST at once, streams the reply to the session as socket events, and saves it in
# the chat. This does the same, then reads the chat back. Prints one JSON object.
PAGE_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys, time, uuid

    import aiohttp
    import socketio

    URL, TOKEN = sys.argv[1], sys.argv[2]


    async def main():
        events = {}
        sio = socketio.AsyncClient()

        @sio.on("events")
        async def on_event(payload):
            data = payload.get("data") or {}
            if data.get("type") in ("chat:completion", "response:completion"):
                events.setdefault(payload.get("message_id"), []).append((time.monotonic(), data.get("data") or {}))

        await sio.connect(URL, socketio_path="/ws/socket.io", auth={"token": TOKEN}, transports=["websocket"])
        out = {}
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:

            async def send(model, history, question, chat_id=None, parent_id=None):
                user_id, reply_id = str(uuid.uuid4()), str(uuid.uuid4())
                body = {
                    "model": model, "stream": True, "params": {},
                    "messages": history + [{"role": "user", "content": question}],
                    "session_id": sio.get_sid("/"), "id": reply_id, "parent_id": parent_id,
                    "user_message": {"id": user_id, "parentId": parent_id, "childrenIds": [], "role": "user",
                                     "content": question, "models": [model], "timestamp": int(time.time())},
                }
                if chat_id:
                    body["chat_id"] = chat_id
                t0 = time.monotonic()
                async with http.post(f"{URL}/api/chat/completions", json=body) as r:
                    posted = await r.json()
                    if r.status != 200:
                        raise SystemExit(json.dumps({"error": f"HTTP {r.status}: {posted}"}))
                for _ in range(1200):
                    if any(d.get("done") for _, d in events.get(reply_id, [])):
                        break
                    await asyncio.sleep(0.05)
                got = events.get(reply_id, [])
                deltas = [t - t0 for t, d in got if d.get("type") == "response.output_text.delta" and d.get("delta")]
                done = next((d for _, d in got if d.get("done")), {})
                text = "".join(
                    part.get("text", "")
                    for item in done.get("output", []) if item.get("type") == "message"
                    for part in item.get("content", []) if part.get("type") == "output_text"
                )
                chat_id = chat_id or posted.get("chat_id")
                async with http.get(f"{URL}/api/v1/chats/{chat_id}") as r:
                    saved = (await r.json())["chat"]["history"]["messages"].get(reply_id, {})
                return chat_id, reply_id, {
                    "text": text, "saved": saved.get("content"), "sources": saved.get("sources"),
                    "deltas": len(deltas), "times": deltas[:1] + deltas[-1:], "seconds": time.monotonic() - t0,
                }

            history, chat_id, parent, turns = [], None, None, []
            for question in QUESTIONS:
                chat_id, parent, res = await send("default", history, question, chat_id, parent)
                history += [{"role": "user", "content": question}, {"role": "assistant", "content": res["text"]}]
                turns.append(res)
            out["three_turns"] = turns
            out["knowledge"] = (await send("kb", [], KNOWLEDGE_QUESTION))[2]
            out["stream"] = (await send("default", [], STREAM_QUESTION))[2]
        await sio.disconnect()
        print(json.dumps(out))


    QUESTIONS = QUESTIONS_JSON
    KNOWLEDGE_QUESTION = KNOWLEDGE_JSON
    STREAM_QUESTION = STREAM_JSON
    asyncio.run(main())
    """
)

KB_AGENT = (
    "name: kb\ndescription: answers from the HR FAQ\nprompt: assistant\nmemory: {enabled: true, namespace: faq}\n"
)


class Failed(Exception):
    pass


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(proc: subprocess.Popen, url: str, log: Path, timeout: float, what: str) -> None:
    """:func:`chatloom.testing.wait_until_serving`, failing with the last lines of ``log``."""
    from chatloom.testing import wait_until_serving

    try:
        wait_until_serving(proc, url, timeout=timeout, what=what)
    except RuntimeError as exc:
        raise Failed(f"{exc}; last log lines:\n{tail(log)}") from None


def tail(log: Path, n: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def chatloom_env(scratch: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATLOOM_")}
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(scratch / "plugin")]),
        CHATLOOM_HOME=str(scratch / "chatloom-home"),
        CHATLOOM_CONFIG=str(scratch / "no-chatloom.toml"),
        CHATLOOM_API_KEYS=f"{TENANT}={key}",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def owui_env(scratch: Path, chatloom_url: str, key: str, owui_python: str) -> dict[str, str]:
    """Open WebUI's settings: one OpenAI connection (chatloom), offline, nothing downloaded."""
    data = scratch / "owui-data"
    data.mkdir(exist_ok=True)
    return {
        "PATH": f"{Path(owui_python).parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(data),
        "LANG": "C.UTF-8",
        "DATA_DIR": str(data),
        "WEBUI_SECRET_KEY": secrets.token_urlsafe(32),
        "OPENAI_API_BASE_URL": f"{chatloom_url}/v1",
        "OPENAI_API_KEY": key,
        "ENABLE_OLLAMA_API": "false",
        "OFFLINE_MODE": "true",  # no pip installs, no model downloads, HF_HUB_OFFLINE
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "RAG_EMBEDDING_MODEL": "",  # don't load sentence-transformers at start
        "BYPASS_EMBEDDING_AND_RETRIEVAL": "true",
        "ENABLE_WEB_SEARCH": "false",
        "ENABLE_TITLE_GENERATION": "false",
        "ENABLE_TAGS_GENERATION": "false",
        "ENABLE_FOLLOW_UP_GENERATION": "false",
        "ENABLE_AUTOCOMPLETE_GENERATION": "false",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "ANONYMIZED_TELEMETRY": "false",
    }


def owui_version(owui_python: str) -> str:
    out = subprocess.run(
        [owui_python, "-c", "import importlib.metadata as m; print(m.version('open-webui'))"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise Failed(
            f"{owui_python} has no open-webui: python3.11 -m venv /tmp/owui-venv && "
            "/tmp/owui-venv/bin/pip install open-webui==0.12.4"
        )
    return out.stdout.strip()


class Report:
    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, float, str]] = []

    def check(self, name: str, fn: Callable[[], str]) -> bool:
        t0 = time.monotonic()
        try:
            detail, ok = fn(), True
        except Failed as exc:
            detail, ok = str(exc), False
        except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError) as exc:
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = time.monotonic() - t0
        self.rows.append((name, ok, seconds, detail))
        first, *rest = detail.splitlines() or [""]
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<20} {seconds:6.2f} s  {first}", flush=True)
        for line in rest:
            print(f"{'':34}{line}", flush=True)
        return ok

    def record(self, name: str, ok: bool, seconds: float, detail: str) -> None:
        self.rows.append((name, ok, seconds, detail))
        print(f"  {'ok  ' if ok else 'FAIL'} {name:<20} {seconds:6.2f} s  {detail}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and all(ok for _, ok, _, _ in self.rows)


def completion(client: httpx.Client, model: str, messages: list[dict]) -> dict:
    r = client.post("/api/chat/completions", json={"model": model, "stream": False, "messages": messages})
    if r.status_code != 200:
        raise Failed(f"HTTP {r.status_code}: {r.text[:300]}")
    return r.json()


def content(reply: dict) -> str:
    return reply["choices"][0]["message"]["content"]


def run(args: argparse.Namespace, scratch: Path) -> bool:
    owui_python = args.owui_python
    version = owui_version(owui_python)
    key = secrets.token_urlsafe(24)
    procs: list[subprocess.Popen] = []
    report = Report()
    print(f"Open WebUI {version} ({owui_python}) against chatloom serve ({ROOT}), scratch {scratch}")

    # The workspace, the scripted-model plugin, the documents.
    ws = scratch / "ws"
    (ws / "agents").mkdir(parents=True)
    (ws / "agents" / "kb.yaml").write_text(KB_AGENT, encoding="utf-8")
    plugin = scratch / "plugin"
    dist = plugin / "owui_scripted-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: owui-scripted\nVersion: 0\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[chatloom.models]\nscripted = owui_scripted:create\n", encoding="utf-8")
    (plugin / "owui_scripted.py").write_text(SCRIPTED_MODEL, encoding="utf-8")
    docs = scratch / "docs"
    (docs / "hr").mkdir(parents=True)
    (docs / "hr" / "leave.md").write_text(LEAVE, encoding="utf-8")
    cenv = chatloom_env(scratch, key)
    chatloom_cmd = [sys.executable, "-m", "chatloom.cli.main"]
    state: dict = {}

    def ingest() -> str:
        out = subprocess.run(
            [*chatloom_cmd, "ingest", str(docs), "-n", "faq", "--tenant", TENANT],
            env=cenv, cwd=ws, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        if out.returncode != 0:
            raise Failed(f"chatloom ingest exited {out.returncode}: {(out.stdout + out.stderr)[-500:]}")
        return out.stdout.strip().splitlines()[-1]

    def start_chatloom() -> str:
        port = free_port()
        log = scratch / "chatloom-serve.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [*chatloom_cmd, "serve", "--model", "scripted:owui", "--port", str(port), "--workspace", str(ws)],
                env=cenv, cwd=ws, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(proc)
        state["chatloom"] = url = f"http://127.0.0.1:{port}"
        wait_for(proc, f"{url}/health", log, 120, "chatloom serve")
        health = httpx.get(f"{url}/health").json()
        return f"{url}; /health knowledge: {json.dumps(health.get('knowledge'))}"

    def start_owui() -> str:
        port = free_port()
        log = scratch / "open-webui.log"
        exe = Path(owui_python).parent / "open-webui"
        cmd = (
            [str(exe), "serve", "--host", "127.0.0.1", "--port", str(port)]
            if exe.exists()
            else [owui_python, "-m", "uvicorn", "open_webui.main:app", "--host", "127.0.0.1", "--port", str(port)]
        )
        with open(log, "w") as out:
            proc = subprocess.Popen(
                cmd, env=owui_env(scratch, state["chatloom"], key, owui_python), cwd=scratch / "owui-data",
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        procs.append(proc)
        state["owui"] = url = f"http://127.0.0.1:{port}"
        wait_for(proc, f"{url}/health", log, 300, "Open WebUI")
        return f"{url} ({' '.join(Path(c).name if i == 0 else c for i, c in enumerate(cmd[:2]))})"

    def sign_up() -> str:
        r = httpx.post(
            f"{state['owui']}/api/v1/auths/signup",
            json={"name": "Admin", "email": "admin@example.com", "password": secrets.token_urlsafe(16)},
            timeout=30,
        )
        if r.status_code != 200:
            raise Failed(f"sign-up: HTTP {r.status_code}: {r.text[:300]}")
        user = r.json()
        state["token"] = user["token"]
        state["client"] = httpx.Client(
            base_url=state["owui"], headers={"Authorization": f"Bearer {user['token']}"}, timeout=120
        )
        return f"role {user['role']}"

    def models() -> str:
        r = state["client"].get("/api/models")
        r.raise_for_status()
        ids = sorted(m["id"] for m in r.json()["data"])
        if not {"default", "kb"} <= set(ids):
            raise Failed(f"chatloom's agents not listed: {ids}")
        return f"/api/models lists {', '.join(ids)}"

    def three_turns() -> str:
        client = state["client"]
        messages: list[dict] = []
        said = []
        for question in QUESTIONS:
            messages.append({"role": "user", "content": question})
            reply = completion(client, "default", messages)
            answer = content(reply)
            messages.append({"role": "assistant", "content": answer})
            said.append(answer)
            history = reply.get("chatloom", {}).get("history")
            if history != "request":
                raise Failed(f"turn {len(said)}: chatloom.history is {history!r}, not 'request'")
        if "Ada" not in said[2]:
            raise Failed(f"turn 3 lost turn 1: {said}")
        alone = content(completion(client, "default", [{"role": "user", "content": QUESTIONS[2]}]))
        if "Ada" in alone:
            raise Failed(f"the control (turn 3 alone) knew the name: {alone!r}")
        return f"turn 3 {said[2]!r} (alone: {alone!r})"

    def knowledge() -> str:
        reply = completion(state["client"], "kb", [{"role": "user", "content": KNOWLEDGE_QUESTION}])
        answer = content(reply)
        citations = reply.get("chatloom", {}).get("citations", [])
        sources = [c["source"] for c in citations]
        if "25 days" not in answer or "[1]" not in answer:
            raise Failed(f"answer: {answer!r}")
        if sources != ["hr/leave.md"]:
            raise Failed(f"citations: {citations}")
        if str(scratch) in json.dumps(reply):
            raise Failed("the reply carries a server path")
        return f"{answer!r}; chatloom.citations: {sources}, grounded {reply['chatloom'].get('grounded')}"

    def stream() -> str:
        question = STREAM_QUESTION
        t0 = time.monotonic()
        times: list[float] = []
        text, done, final = "", False, None
        with state["client"].stream(
            "POST", "/api/chat/completions",
            json={"model": "default", "stream": True, "messages": [{"role": "user", "content": question}]},
        ) as r:  # fmt: skip
            if r.status_code != 200:
                raise Failed(f"HTTP {r.status_code}: {r.read()[:300]!r}")
            ctype = r.headers.get("content-type", "")
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                piece = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
                if piece:
                    times.append(time.monotonic() - t0)
                    text += piece
                if "chatloom" in chunk:
                    final = chunk["chatloom"]
        if "text/event-stream" not in ctype:
            raise Failed(f"content-type {ctype!r}")
        if text != f"You said: {question}" or not done:
            raise Failed(f"text {text!r}, [DONE] {done}")
        spread = times[-1] - times[0] if times else 0.0
        words = len(text.split())
        if len(times) < words // 2 or spread < STREAM_PAUSE * words / 2:
            raise Failed(f"{len(times)} content chunks over {spread:.2f} s: buffered, not streamed")
        if not final or final.get("answer") != text:
            raise Failed(f"last chunk's chatloom field: {final}")
        return f"{len(times)} content chunks; first at {times[0]:.2f} s, last at {times[-1]:.2f} s; then [DONE]"

    def page() -> None:
        """The page flow (PAGE_CLIENT), then one check per scenario from what it saw."""
        client_py = scratch / "owui_page_client.py"
        code = (
            PAGE_CLIENT.replace("QUESTIONS_JSON", json.dumps(QUESTIONS))
            .replace("KNOWLEDGE_JSON", json.dumps(KNOWLEDGE_QUESTION))
            .replace("STREAM_JSON", json.dumps(STREAM_QUESTION))
        )
        client_py.write_text(code, encoding="utf-8")
        t0 = time.monotonic()
        out = subprocess.run(
            [owui_python, str(client_py), state["owui"], state["token"]],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        try:
            seen = json.loads(out.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            report.record("page", False, time.monotonic() - t0, f"client failed: {(out.stdout + out.stderr)[-600:]}")
            return
        if "error" in seen:
            report.record("page", False, time.monotonic() - t0, seen["error"])
            return

        turns = seen["three_turns"]
        said = [t["text"] for t in turns]
        ok = "Ada" in said[2] and turns[2]["saved"] == said[2]
        report.record(
            "page: three turns", ok, sum(t["seconds"] for t in turns),
            f"turn 3 {said[2]!r}, saved in the chat" if ok else f"turns {said}, saved {turns[2]['saved']!r}",
        )  # fmt: skip
        kb = seen["knowledge"]
        ok = "25 days" in kb["text"] and "[1]" in kb["text"] and kb["saved"] == kb["text"]
        shown = "no source card (the page reads Open WebUI's own sources, not the chatloom field)"
        if kb["sources"]:
            shown = f"sources {kb['sources']}"
        report.record("page: knowledge", ok, kb["seconds"], f"{kb['text']!r}, saved; {shown}")
        st = seen["stream"]
        words = len(STREAM_QUESTION.split()) + 2
        first, last = (st["times"] + [0.0, 0.0])[:2] if st["times"] else (0.0, 0.0)
        ok = (
            st["text"] == f"You said: {STREAM_QUESTION}"
            and st["saved"] == st["text"]
            and st["deltas"] >= words // 2
            and last - first >= STREAM_PAUSE * words / 2
        )
        report.record(
            "page: stream", ok, st["seconds"],
            f"{st['deltas']} text deltas as socket events; first at {first:.2f} s, last at {last:.2f} s; saved",
        )  # fmt: skip

    def nothing_stored() -> str:
        r = httpx.get(f"{state['chatloom']}/v1/threads", headers={"Authorization": f"Bearer {key}"}, timeout=30)
        r.raise_for_status()
        threads = r.json()["data"]
        if threads:
            raise Failed(f"chatloom stored threads: {threads}")
        return "chatloom /v1/threads is empty (stateless requests store nothing)"

    try:
        steps = [
            ("ingest", ingest),
            ("start chatloom", start_chatloom),
            ("start Open WebUI", start_owui),
            ("sign up admin", sign_up),
            ("models", models),
        ]
        for name, fn in steps:  # each needs the one before
            if not report.check(name, fn):
                return False
        for name, fn in [
            ("three turns", three_turns),
            ("knowledge", knowledge),
            ("stream", stream),
        ]:
            report.check(name, fn)
        page()
        report.check("nothing stored", nothing_stored)
    finally:
        if "client" in state:
            state["client"].close()
        for proc in reversed(procs):
            stop(proc)
    print(f"{'PASS' if report.ok else 'FAIL'}: {sum(ok for _, ok, _, _ in report.rows)}/{len(report.rows)} checks")
    return report.ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owui-python", default=DEFAULT_OWUI_PYTHON, help="the python of a venv with open-webui")
    parser.add_argument("--keep", action="store_true", help="keep the scratch dir (logs, data dirs)")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="chatloom-owui-"))
    try:
        ok = run(args, scratch)
    except Failed as exc:
        print(f"FAIL: {exc}")
        ok = False
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
