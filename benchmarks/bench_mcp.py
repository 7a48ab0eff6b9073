"""MCP overhead: one tool call over stdio MCP next to the same function called in-process.

    python benchmarks/bench_mcp.py [--quick] [--calls N]

The function is chatloom's ``calculator`` on ``17*23``. In the same run, interleaved:

- ``in-process``: ``calculator.invoke(...)``, the baseline;
- ``MCP tool (sync)``: the chatloom tool ``calc.calculator`` that an agent binds: the sync
  bridge to the client loop, the SDK client, stdio, ``chatloom mcp serve`` and the same
  calculator inside it, under the server's policy check;
- ``SDK call (async)``: ``mcp.Client.call_tool`` on the same server from its own loop, without
  chatloom's sync bridge, to show where the time goes.

Server start-up (spawning ``chatloom mcp serve``) is timed once, apart. Medians and ratios
against the in-process call are printed and written to benchmarks/results/bench_mcp.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import save

SRC = Path(__file__).resolve().parent.parent / "src"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 20 calls per variant")
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    calls = 20 if args.quick else args.calls

    from chatloom.mcp.client import MCPClients
    from chatloom.mcp.config import MCPServerSpec
    from chatloom.tools.calculator import calculator

    work = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    (work / "agents").mkdir()
    (work / "agents" / "calc.yaml").write_text("tools: [calculator]\nmemory: false\n")
    spec = MCPServerSpec(
        name="calc",
        command=sys.executable,
        args=["-m", "chatloom.cli.main", "mcp", "serve", "--spec", str(work / "agents" / "calc.yaml")],
        env={"PYTHONPATH": str(SRC), "CHATLOOM_HOME": str(work)},
        cwd=str(work),
        connect_timeout=120,
    )
    clients = MCPClients([spec])
    start = time.perf_counter()
    tool = {t.name: t for t in clients.tools()}["calc.calculator"]
    startup_s = time.perf_counter() - start
    conn = clients.connection("calc")
    loop = clients._loop
    assert loop is not None

    def sdk_call() -> str:
        async def once() -> str:
            client = await conn.client()
            result = await client.call_tool("calculator", {"expression": "17*23"})
            return result.content[0].text

        return loop.run(once(), 30)

    variants = {
        "in-process": lambda: calculator.invoke({"expression": "17*23"}),
        "MCP tool (sync)": lambda: tool.invoke({"expression": "17*23"}),
        "SDK call (async)": sdk_call,
    }
    for func in variants.values():  # warm-up, and every path gives the same answer
        for _ in range(3):
            assert str(func()) == "391", func()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(calls):  # interleaved, so machine noise hits every variant alike
        for name, func in variants.items():
            t0 = time.perf_counter()
            func()
            samples[name].append(time.perf_counter() - t0)
    clients.close()

    base = statistics.median(samples["in-process"])
    rows = {}
    print(f"server start-up (spawn + handshake + tools/list): {startup_s:.2f} s")
    print(f"{'variant':<20} {'median ms':>10} {'ratio':>9}")
    for name, values in samples.items():
        med = statistics.median(values)
        rows[name] = {"median_ms": med * 1000, "ratio_vs_in_process": med / base, "calls": len(values)}
        print(f"{name:<20} {med * 1000:>10.3f} {med / base:>8.1f}x")
    path = save(
        "bench_mcp",
        {
            "calls_per_variant": calls,
            "startup_s": startup_s,
            "variants": rows,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
