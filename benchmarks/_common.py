"""Shared helpers for the benchmarks: medians, result files, the evaluation data path, the halves.

Halves (a calibration split): every evaluation row is in a fixed half, ``"tune"`` or ``"heldout"``,
by a stable hash of its key (the row's id, or its question text when it has none):
``"tune" if int(sha256(key.encode()).hexdigest(), 16) % 2 == 0 else "heldout"``. Tune thresholds
and prompts on ``tune``; report ``heldout`` as the number that was not looked at while tuning.
"""

from __future__ import annotations

import hashlib
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


def split_half(key: str) -> str:
    """The fixed half of an evaluation row, ``"tune"`` or ``"heldout"``, from its ``key``.

    ``key`` is the row's id (KorQuAD ``id``, HotpotQA ``_id``) or, for a row without one, its
    question text. The rule is ``"tune"`` when the SHA-256 of the UTF-8 key, read as an integer, is
    even, else ``"heldout"``: the same on every machine and Python version (unlike ``hash()``), and
    a row keeps its half whatever rows are added to or removed from its set.

    >>> split_half("6304690-11-0") == split_half("6304690-11-0")
    True
    """
    return "tune" if int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 2 == 0 else "heldout"


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
