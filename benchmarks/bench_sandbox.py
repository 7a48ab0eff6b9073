"""Sandbox overhead: ms per run of the python tool's sandbox next to plain ``python -c``.

    python benchmarks/bench_sandbox.py [--quick] [--runs N] [--baseline-src DIR]

Every variant runs the same snippets in the same run, interleaved, and reports medians:

- ``python -I -c``: the baseline, the same interpreter with no isolation;
- ``bwrap + python``: bubblewrap with chatloom's mounts and seccomp filter, nothing else;
- ``Sandbox.run``: the full python tool path (bwrap, seccomp filter, per-run uid lease,
  privilege drop, fresh keyring, rlimits, bootstrap, output capture, timeout watch);
- ``baseline Sandbox.run`` (with ``--baseline-src``, e.g. another checkout's ``src``): the same
  path from that checkout's ``chatloom/tools/sandbox.py``, to compare two versions in one run.
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import save

from chatloom.tools.sandbox import Sandbox

SNIPPETS = {
    "pass": "pass",
    "print": "print(sum(range(1000)))",
    "stdlib": "import json, fractions, statistics\nprint(json.dumps(statistics.mean([1, 2, 3])))",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 5 runs per variant")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--baseline-src", type=Path, help="a src/ dir whose chatloom/tools/sandbox.py to time too")
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs

    if not Sandbox.available():
        print("bubblewrap is not usable here; install it with `sudo apt-get install -y bubblewrap`", file=sys.stderr)
        return 2
    sandbox = Sandbox()
    sandbox.check()
    env = sandbox._host_env()
    from chatloom.tools import seccomp

    def plain(code: str) -> None:
        subprocess.run([sys.executable, "-I", "-c", code], check=True, capture_output=True, env=env)

    def bwrap(code: str) -> None:
        # privileges are not dropped here (raw bwrap as the caller); only for timing the mounts
        with seccomp.filter_fd() as fd:
            argv = [*sandbox._bwrap_args(fd), "--", sandbox._sandbox_exe(), "-I", "-c", code]
            subprocess.run(argv, check=True, capture_output=True, env=env, pass_fds=(fd,))

    def full(code: str) -> None:
        result = sandbox.run(code)
        assert result.ok, result.to_text()

    variants = {"python -I -c": plain, "bwrap + python": bwrap, "Sandbox.run": full}
    if args.baseline_src:
        # Loaded under its own name beside this checkout's module; it shares chatloom.errors.
        spec = importlib.util.spec_from_file_location(
            "_baseline_sandbox", args.baseline_src / "chatloom" / "tools" / "sandbox.py"
        )
        assert spec and spec.loader
        baseline_module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = baseline_module  # dataclasses look their module up there
        spec.loader.exec_module(baseline_module)
        baseline = baseline_module.Sandbox()
        baseline.check()

        def landed(code: str) -> None:
            result = baseline.run(code)
            assert result.ok, result.to_text()

        variants["baseline Sandbox.run"] = landed
    rows = []
    for name, code in SNIPPETS.items():
        samples: dict[str, list[float]] = {v: [] for v in variants}
        for fn in variants.values():  # warm-up: page cache, bwrap --help probe
            fn(code)
        for _ in range(runs):
            for label, fn in variants.items():  # interleaved, so drift hits all variants alike
                start = time.perf_counter()
                fn(code)
                samples[label].append(time.perf_counter() - start)
        medians = {label: statistics.median(s) * 1000 for label, s in samples.items()}
        mins = {label: min(s) * 1000 for label, s in samples.items()}
        base, min_base = medians["python -I -c"], mins["python -I -c"]
        for label, ms in medians.items():
            rows.append(
                {
                    "snippet": name,
                    "variant": label,
                    "median_ms": round(ms, 2),
                    "overhead_ms": round(ms - base, 2),
                    "ratio": round(ms / base, 2),
                    "min_ms": round(mins[label], 2),
                    "min_overhead_ms": round(mins[label] - min_base, 2),
                }
            )

    print(f"sandbox overhead, {runs} runs each, medians ({platform.machine()}, {platform.python_version()})")
    print("median and fastest run; on a busy machine the fastest run is the steadier comparison")
    print(f"{'snippet':<8} {'variant':<21} {'median':>8} {'+ms':>7} {'ratio':>6} {'min':>7} {'+ms':>7}")
    for r in rows:
        print(
            f"{r['snippet']:<8} {r['variant']:<21} {r['median_ms']:>8.1f} {r['overhead_ms']:>7.1f} {r['ratio']:>6.2f}"
            f" {r['min_ms']:>7.1f} {r['min_overhead_ms']:>7.1f}"
        )
    path = save(
        "bench_sandbox",
        {
            "runs": runs,
            "rows": rows,
            "python": sys.version,
            "limits": sandbox.limits.__dict__,
            "baseline_src": str(args.baseline_src) if args.baseline_src else None,
        },
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
