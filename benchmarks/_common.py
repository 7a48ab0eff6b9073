"""Shared helpers for the benchmarks: medians, result files, the evaluation data path."""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT / "src"))

from chatloom.evals.stats import percentile  # noqa: E402,F401 - one definition, in the library

RESULTS = ROOT / "benchmarks" / "results"
EVALDATA = ROOT.parent / "shared" / "evaldata"


def time_calls(func: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    """Wall-clock seconds of ``repeat`` calls of ``func`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        func()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return samples


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def save(name: str, data: dict) -> Path:
    """Write ``data`` to benchmarks/results/<name>.json and return the path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2))
    return path
