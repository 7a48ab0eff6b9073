"""Small statistics for evaluations: percentiles, paired wins and the exact sign test, noise margins.

>>> sign_test(8, 1)
0.0391
>>> paired([True, False, False, True], [True, True, True, False])
(2, 1)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["noise_margin", "paired", "percentile", "sign_test"]


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of ``values`` (e.g. p=95 for p95 latency)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def paired(base: Sequence[bool], other: Sequence[bool]) -> tuple[int, int]:
    """(cases only ``other`` got right, cases only ``base`` got right), case by case."""
    pairs = list(zip(base, other))
    return sum(bool(o) and not b for b, o in pairs), sum(bool(b) and not o for b, o in pairs)


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's exact binomial) on the cases where two agents disagree.

    Under "neither agent is better", each disagreement is a fair coin; the p-value is the
    chance of a split at least this lopsided.
    """
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return round(min(1.0, 2 * tail), 4)


def noise_margin(mean: float, n: int, *, binary: bool, stdev: float = 0.0, z: float = 2.0) -> float:
    """How far a rerun may fall below ``mean`` (over ``n`` cases) before it counts as a regression.

    ``z`` standard errors of the baseline's mean. For a pass/fail scorer the standard error is
    binomial, computed on the Laplace-smoothed rate (k+1)/(n+2) so that a perfect (or zero)
    baseline still allows for noise: at n=20 and 20/20, one miss passes and two fail. For a
    graded scorer (token F1) it is ``stdev / sqrt(n)``.

    >>> round(noise_margin(1.0, 20, binary=True), 3), round(noise_margin(0.5, 100, binary=True), 3)
    (0.093, 0.1)
    """
    if n <= 0:
        return 0.0
    if binary:
        smoothed = (mean * n + 1) / (n + 2)
        return z * math.sqrt(smoothed * (1 - smoothed) / n)
    return z * stdev / math.sqrt(n)
