"""Time to the chat prompt and to the first answer from a remote model, next to simonw's `llm`.

Both tools talk to the same OpenAI-compatible server: a tiny scripted one started here on
127.0.0.1 that answers every chat completion at once (streamed or not), so the times are the
tools' own overhead (interpreter start, imports, set-up, one HTTP round trip, printing). Each
run is a new process, started from a scratch directory with an empty data dir; the cells are
interleaved run by run so machine noise hits both tools alike. Times count from just before the
process starts to the moment the answer text (or the prompt) shows up on its output.

    python benchmarks/bench_startup.py                       # 7 runs per cell
    python benchmarks/bench_startup.py --runs 11 --llm /work/llm-venv/bin/llm
    python benchmarks/bench_startup.py --quick               # 2 runs per cell, a smoke run

Cells (chatloom, default agent with model ``openai:bench`` -> llm with the same endpoint):

- prompt:       `chatloom chat` on a pseudo-terminal until its prompt `›` -> `llm chat` until `>`;
- ask:          `chatloom ask Q` until the answer is printed -> `llm prompt Q`;
- piped chat:   `echo Q | chatloom chat` until the answer is printed -> `echo Q | llm chat`;
- chat (pty):   `chatloom chat` on a terminal, Q typed as soon as the prompt shows, until the
                answer is on screen (the first question waits for the background load) ->
                the same with `llm chat`;
- typed after 3 s: the same, but Q is sent 3 s after the prompt (a person typing), timed from
                Enter to the answer: what a person waits for.
- import floor: not chatloom, a reference. A process that only imports what any LangGraph turn
                on the OpenAI backend needs (langgraph, langchain-openai and so the openai
                SDK) and prints the answer, next to `llm prompt`: no chatloom first answer can
                be faster than this while a LangGraph graph runs the turn.

Install llm into its own venv so it does not share chatloom's packages:
``python3 -m venv /work/llm-venv && /work/llm-venv/bin/pip install llm``. It is pointed at the
server through ``extra-openai-models.yaml`` (``api_base``) in a private ``LLM_USER_PATH``.

Writes benchmarks/results/bench_startup.json; ratios are chatloom / llm medians (target for
the first answer: <= 1.2).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, save

QUESTION = "How many seats are in 17 rows of 23?"
ANSWER = "The answer is 391."
MODEL = "bench"


class _InstantOpenAI(BaseHTTPRequestHandler):
    """``POST /v1/chat/completions``: the same one-line answer at once, as SSE when asked to stream."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep the benchmark's output clean
        pass

    def do_GET(self) -> None:  # http.server API
        self._send(
            "application/json", json.dumps({"object": "list", "data": [{"id": MODEL, "object": "model"}]}).encode()
        )

    def do_POST(self) -> None:  # http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        base = {"id": "bench-1", "created": 0, "model": body.get("model", MODEL)}
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if body.get("stream"):
            chunks = [
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"role": "assistant", "content": ANSWER}, "finish_reason": None}],
                },
                {
                    **base,
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                },
                {**base, "object": "chat.completion.chunk", "choices": [], "usage": usage},
            ]
            data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            self._send("text/event-stream", data)
        else:
            message = {"role": "assistant", "content": ANSWER}
            self._send(
                "application/json",
                json.dumps(
                    {
                        **base,
                        "object": "chat.completion",
                        "usage": usage,
                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                    }
                ).encode(),
            )

    def _send(self, content_type: str, data: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def start_server() -> tuple[ThreadingHTTPServer, str]:
    """The scripted server on a free 127.0.0.1 port, serving from a daemon thread; (server, base URL)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _InstantOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def run_until(
    cmd: list[str],
    env: dict,
    cwd: Path,
    marker: str,
    stdin: str | None = None,
    tty: bool = False,
    then_type: tuple[str, str] | None = None,
    type_after: float = 0.0,
) -> dict:
    """Start ``cmd``; seconds until ``marker`` appears on its output (and until it exits).

    ``tty`` runs it on a pseudo-terminal; ``then_type=(seen, text)`` types ``text`` once
    ``seen`` shows and then waits for ``marker``. With ``type_after`` it types that many seconds
    after ``seen`` (a person typing) and the time counts from Enter instead. The process is
    killed once the marker showed on a terminal (an interactive chat never exits by itself).
    """
    if tty:
        import pty

        started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:  # child: become the command
            os.chdir(cwd)
            os.execvpe(cmd[0], cmd, env)
        return _watch_fd(fd, pid, started, marker, then_type, type_after)
    started = time.perf_counter()
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a chatty stderr can't stall the child
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
    if stdin is not None:
        proc.stdin.write(stdin.encode())
    proc.stdin.close()
    proc.stdin = None  # so that communicate() does not flush it again
    seen, at = b"", None
    while at is None:
        piece = proc.stdout.read1(65536)
        if not piece:
            break
        seen += piece
        if marker.encode() in seen:
            at = time.perf_counter() - started
    rest, _ = proc.communicate(timeout=120)
    exited = time.perf_counter() - started
    errors.seek(0)
    err = errors.read()
    if at is None:
        raise SystemExit(
            f"{' '.join(cmd)} never printed {marker!r} (exit {proc.returncode}):\n"
            f"{(seen + rest).decode(errors='replace')[-800:]}\n{err.decode(errors='replace')[-1500:]}"
        )
    return {"at_s": at, "exit_s": exited}


def _watch_fd(
    fd: int, pid: int, started: float, marker: str, then_type: tuple[str, str] | None, type_after: float
) -> dict:
    seen, deadline = b"", time.monotonic() + 120
    waiting_for = then_type[0] if then_type else marker
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if waiting_for.encode() in seen:
                if then_type and waiting_for == then_type[0]:
                    if type_after:
                        time.sleep(type_after)
                        started = time.perf_counter()
                    os.write(fd, then_type[1].encode() + b"\r")
                    seen, waiting_for = b"", marker
                    continue
                return {"at_s": time.perf_counter() - started, "exit_s": None}
        raise SystemExit(f"no {waiting_for!r} within 120 s; screen: {seen[-600:]!r}")
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(fd)


def median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--runs", type=int, default=7, help="runs per cell (default 7)")
    ap.add_argument(
        "--llm", default=None, help="the llm executable (default: /work/llm-venv/bin/llm, else `llm` on PATH)"
    )
    ap.add_argument("--quick", action="store_true", help="2 runs per cell (a smoke run)")
    a = ap.parse_args()
    runs = 2 if a.quick else a.runs
    if a.llm and not Path(a.llm).exists():
        raise SystemExit(f"error: no llm executable at {a.llm!r}")
    llm = a.llm or next((p for p in ("/work/llm-venv/bin/llm", shutil.which("llm")) if p and Path(p).exists()), None)
    if llm is None:
        print(
            "llm is not installed, so there is no baseline: python3 -m venv /work/llm-venv && /work/llm-venv/bin/pip install llm"
        )

    server, base_url = start_server()
    scratch = Path(tempfile.mkdtemp(prefix="chatloom-bench-startup-"))
    (scratch / "llm").mkdir()
    (scratch / "llm" / "extra-openai-models.yaml").write_text(
        f'- model_id: {MODEL}\n  model_name: {MODEL}\n  api_base: "{base_url}"\n'
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CHATLOOM_", "OPENAI_", "LLM_"))}
    term = {"TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40", "PROMPT_TOOLKIT_NO_CPR": "1"}
    ours_env = {
        **clean,
        **term,
        "CHATLOOM_HOME": str(scratch / "home"),
        "CHATLOOM_OPENAI_BASE_URL": base_url,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
    }
    llm_env = {**clean, **term, "LLM_USER_PATH": str(scratch / "llm")}
    work = scratch / "cwd"  # no agents/ here: the default agent (assistant prompt, calculator)
    work.mkdir()
    chatloom = [sys.executable, "-m", "chatloom.cli.main"]
    question_line = QUESTION + "\n"

    cells: dict[str, tuple[Any, Any]] = {
        "prompt (pty)": (
            lambda: run_until([*chatloom, "chat", "-m", f"openai:{MODEL}"], ours_env, work, "›", tty=True),
            lambda: run_until([llm, "chat", "-m", MODEL], llm_env, work, "> ", tty=True),
        ),
        "ask / llm prompt": (
            lambda: run_until([*chatloom, "ask", "-m", f"openai:{MODEL}", QUESTION], ours_env, work, ANSWER),
            lambda: run_until([llm, "prompt", "-m", MODEL, QUESTION], llm_env, work, ANSWER),
        ),
        "piped chat": (
            lambda: run_until(
                [*chatloom, "chat", "-m", f"openai:{MODEL}"], ours_env, work, ANSWER, stdin=question_line
            ),
            lambda: run_until([llm, "chat", "-m", MODEL], llm_env, work, ANSWER, stdin=question_line),
        ),
        "chat (pty), first answer": (
            lambda: run_until(
                [*chatloom, "chat", "-m", f"openai:{MODEL}"],
                ours_env,
                work,
                ANSWER,
                tty=True,
                then_type=("›", QUESTION),
            ),
            lambda: run_until([llm, "chat", "-m", MODEL], llm_env, work, ANSWER, tty=True, then_type=("> ", QUESTION)),
        ),
        "chat (pty), Enter to answer, typed after 3 s": (
            lambda: run_until(
                [*chatloom, "chat", "-m", f"openai:{MODEL}"],
                ours_env,
                work,
                ANSWER,
                tty=True,
                then_type=("›", QUESTION),
                type_after=3.0,
            ),
            lambda: run_until(
                [llm, "chat", "-m", MODEL], llm_env, work, ANSWER, tty=True, then_type=("> ", QUESTION), type_after=3.0
            ),
        ),
        "import floor (reference) / llm prompt": (
            lambda: run_until(
                [sys.executable, "-c", f"import langgraph.graph, langchain_openai; print({ANSWER!r})"],
                ours_env,
                work,
                ANSWER,
            ),
            lambda: run_until([llm, "prompt", "-m", MODEL, QUESTION], llm_env, work, ANSWER),
        ),
    }
    results: dict[str, dict] = {}
    load_at_start = os.getloadavg()
    try:
        for name, (ours, theirs) in cells.items():
            ours(), llm and theirs()  # warm the page cache; not counted
            samples: dict[str, list[dict]] = {"chatloom": [], "llm": []}
            for _ in range(runs):
                samples["chatloom"].append(ours())
                if llm:
                    samples["llm"].append(theirs())
            row = {
                tool: {
                    "at_s": median([s["at_s"] for s in got]),
                    "exit_s": median([s["exit_s"] for s in got if s["exit_s"] is not None]),
                    "runs": got,
                }
                for tool, got in samples.items()
                if got
            }
            if llm:
                row["ratio"] = round(row["chatloom"]["at_s"] / row["llm"]["at_s"], 2)
            results[name] = row
            theirs_txt = f"   llm {row['llm']['at_s']:.2f} s   ratio {row['ratio']:.2f}x" if llm else ""
            print(f"{name:28s} chatloom {row['chatloom']['at_s']:.2f} s{theirs_txt}   (medians of {runs})", flush=True)
    finally:
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    out = {
        "question": QUESTION,
        "runs": runs,
        "llm": llm,
        "cpu_count": os.cpu_count(),
        "load_avg_at_start": load_at_start,
        "load_avg_at_end": os.getloadavg(),
        "results": results,
    }
    print("wrote", save("bench_startup", out))


if __name__ == "__main__":
    main()
