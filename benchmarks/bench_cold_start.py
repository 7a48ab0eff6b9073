"""Cold-process `chatloom ask`: first-token time and total, prompt cache cold vs warm.

Each run is a new process running the real CLI (`chatloom ask QUESTION`, default model and
settings), once with `--spec agents/assistant.yaml` as the README's quick start does and once
without. The child is the console script's own `main()`, with one wrapper that records when the
engine yields its first piece of text (`ask` prints only the whole answer, so the first token
is not visible on stdout). Times count from just before the process is started.

- cold: `<data dir>/kvcache` is deleted before every run (the run evaluates the static prompt
  and saves its state);
- warm: the runs after a cold one, which load what it saved.

    python benchmarks/bench_cold_start.py                 # 3 runs per cell
    python benchmarks/bench_cold_start.py --runs 5 --question "How many seats are in 17 rows of 23?"
    python benchmarks/bench_cold_start.py --first-token-only   # each run ends at its first token
    # warm cells only, each run alternating with one of another checkout's code (a baseline):
    python benchmarks/bench_cold_start.py --warm-only --first-token-only --runs 5 --baseline-src /work/main/src

Writes benchmarks/results/bench_cold_start.json. The machine is shared: compare cells of the
same run, not absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, save

# Runs in the child: the CLI's main(), plus a timestamp of the engine's first text piece.
CHILD = r"""
import atexit, json, os, sys, time
first = {}
from chatloom.models import _local_chat
_decode = _local_chat.LocalChatModel._decode
def timed(self, prepared):
    for piece in _decode(self, prepared):
        if piece.text and "t" not in first:
            first["t"] = time.time()
            if os.environ.get("BENCH_FIRST_TOKEN_ONLY"):
                print("BENCH " + json.dumps(first), file=sys.stderr, flush=True)
                os._exit(0)
        yield piece
_local_chat.LocalChatModel._decode = timed
atexit.register(lambda: print("BENCH " + json.dumps(first), file=sys.stderr))
from chatloom.cli.main import main
sys.argv = ["chatloom", *sys.argv[1:]]
main()
"""


def data_dir() -> Path:
    from chatloom.config import get_settings

    return get_settings().data_dir()


def run_once(args: list[str], first_only: bool = False, src: str | None = None) -> dict:
    """One child process, on a new thread; seconds to first token and to exit, and the answer.

    ``src`` (a checkout's ``src`` dir) goes first on the child's PYTHONPATH, so that code runs.
    """
    thread = ["--thread", f"bench-cold-{uuid.uuid4().hex[:8]}"]  # a fresh, known thread each run
    env = {**os.environ, **({"BENCH_FIRST_TOKEN_ONLY": "1"} if first_only else {})}
    if src:
        env["PYTHONPATH"] = os.pathsep.join([src, *filter(None, [os.environ.get("PYTHONPATH")])])
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, *args[:1], *thread, *args[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    total = time.time() - started
    if proc.returncode != 0:
        raise SystemExit(f"chatloom {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    marks = [line for line in proc.stderr.splitlines() if line.startswith("BENCH ")]
    first = json.loads(marks[-1][6:]).get("t") if marks else None
    return {
        "first_token_s": round(first - started, 2) if first else None,
        "total_s": None if first_only else round(total, 2),
        "answer": proc.stdout.strip()[:200],
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(statistics.median(present), 2) if present else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--question", default="How many seats are in 17 rows of 23?")
    ap.add_argument(
        "--first-token-only",
        action="store_true",
        help="end each run at its first token (no totals; for a machine too busy for whole answers)",
    )
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 run per setup, to the first token")
    ap.add_argument(
        "--warm-only",
        action="store_true",
        help="only the warm cells (one untimed run first saves the prompt state if it is missing)",
    )
    ap.add_argument(
        "--baseline-src",
        metavar="DIR",
        help="another checkout's src dir: every run alternates with one of that code, "
        "and each cell reports both medians and their ratio",
    )
    a = ap.parse_args()
    if a.quick:
        a.runs, a.first_token_only = 1, True
    load_at_start = os.getloadavg()
    cache = data_dir() / "kvcache"
    setups = {"with --spec agents/assistant.yaml": ["--spec", "agents/assistant.yaml"], "no spec": []}
    table: dict[str, dict] = {}
    for label, extra in setups.items():
        args = ["ask", *extra, a.question]
        cold, base_cold = [], []
        for _ in range(0 if a.warm_only else a.runs):
            shutil.rmtree(cache, ignore_errors=True)
            cold.append(run_once(args, a.first_token_only))
            if a.baseline_src:
                shutil.rmtree(cache, ignore_errors=True)
                base_cold.append(run_once(args, a.first_token_only, a.baseline_src))
        if a.warm_only:
            run_once(args, True)  # saves the static prompt's state if no earlier run did
        # A cold run has saved the static prompt's state by the time of its first token.
        warm, base_warm = [], []
        for _ in range(a.runs):
            if a.baseline_src:  # alternating, so both see the same machine load
                base_warm.append(run_once(args, a.first_token_only, a.baseline_src))
            warm.append(run_once(args, a.first_token_only))
        table[label] = {}
        cells = [("cold", cold), ("warm", warm)] if not a.warm_only else [("warm", warm)]
        if a.baseline_src:
            cells += [(f"baseline {state}", runs) for state, runs in (("cold", base_cold), ("warm", base_warm)) if runs]
        for state, runs in cells:
            row = {
                "first_token_s": median([r["first_token_s"] for r in runs]),
                "total_s": median([r["total_s"] for r in runs]),
                "runs": runs,
            }
            table[label][state] = row
            print(
                f"{label:36s} {state:5s} first token {row['first_token_s']} s  total {row['total_s']} s"
                f"  (median of {a.runs})  answer: {runs[-1]['answer'][:60]!r}",
                flush=True,
            )
        for state in ("cold", "warm"):
            new, old = (
                table[label].get(state, {}).get("first_token_s"),
                table[label].get(f"baseline {state}", {}).get("first_token_s"),
            )
            if new and old:
                table[label][f"{state} baseline/this"] = round(old / new, 3)
                print(f"{label:36s} {state} first token baseline/this = {old / new:.2f}x")
        c, w = table[label].get("cold", {}).get("first_token_s"), table[label]["warm"]["first_token_s"]
        if c and w:
            print(f"{label:36s} first token cold/warm = {c / w:.2f}x")
    files = sorted(cache.glob("*/*.bin")) if cache.exists() else []
    out = {
        "question": a.question,
        "runs": a.runs,
        "first_token_only": a.first_token_only,
        "warm_only": a.warm_only,
        "baseline_src": a.baseline_src,
        "load_avg_at_start": load_at_start,
        "cpu_count": os.cpu_count(),
        "load_avg_at_end": os.getloadavg(),
        "cache_files": {str(p.relative_to(cache)): p.stat().st_size for p in files},
        "results": table,
    }
    print("wrote", save("bench_cold_start", out))


if __name__ == "__main__":
    main()
