"""From result rows to numbers: per-agent summaries, paired comparisons, and the baseline gate.

>>> def row(agent, case, ok):
...     return {"agent": agent, "case": case, "scores": {"exact": ok}, "error": None, "steps": 1,
...             "tool_calls": [], "tokens": 10, "cost_usd": None, "seconds": 1.0, "unsupported": []}
>>> rows = [row("a", "1", True), row("b", "1", True), row("a", "2", False), row("b", "2", True)]
>>> summarize(rows)["a"]["scores"]["exact"]["mean"], compare(rows, "a", "b")["scorers"]["exact"]["wins"]
(0.5, 1)
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chatloom.errors import ConfigError
from chatloom.evals.scorers import SCORERS
from chatloom.evals.stats import noise_margin, paired, percentile, sign_test

__all__ = [
    "MEASURES",
    "Regression",
    "check_baseline",
    "compare",
    "dataset_results",
    "format_score",
    "load_baseline",
    "save_baseline",
    "scorer_order",
    "summarize",
]

Row = dict[str, Any]
BASELINE_VERSION = 1


def _by_agent(rows: Iterable[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row["agent"], []).append(row)
    return out


def scorer_order(names: Iterable[str]) -> list[str]:
    """``names`` in table order: the built-in scorers as :data:`SCORERS` lists them, then the rest
    (the model-as-judge) in the order first seen.

    >>> scorer_order(["judge", "f1", "exact"])
    ['exact', 'f1', 'judge']
    """
    present = dict.fromkeys(names)
    return [n for n in SCORERS if n in present] + [n for n in present if n not in SCORERS]


def format_score(score: dict[str, Any] | None) -> str:
    """One summary score as a table shows it: ``passed/applicable (share)``, or the mean of a graded one.

    >>> format_score({"mean": 0.75, "n": 4, "binary": True}), format_score({"mean": 0.5, "n": 2, "binary": False})
    ('3/4 (75%)', '0.500')
    """
    if not score:
        return "–"
    if score["binary"]:
        return f"{round(score['mean'] * score['n'])}/{score['n']} ({score['mean']:.0%})"
    return f"{score['mean']:.3f}"


MEASURES: tuple[tuple[str, Callable[[dict[str, Any]], str]], ...] = (
    ("mean steps", lambda m: f"{m['mean_steps']:.1f}"),
    ("tool calls", lambda m: str(m["tool_calls"])),
    ("mean tokens", lambda m: f"{m['mean_tokens']:.0f}"),
    ("cost $", lambda m: "–" if m["cost_usd"] is None else f"{m['cost_usd']:.4f}"),
    ("p50 s", lambda m: f"{m['p50_s']:.2f}"),
    ("p95 s", lambda m: f"{m['p95_s']:.2f}"),
    ("mean unsupported", lambda m: f"{m['mean_unsupported']:.2f}"),
    ("errors", lambda m: f"{m['errors']}/{m['cases']}"),
)
"""The cost rows of the side-by-side table (terminal and HTML): title, and how to show an agent's summary."""


def summarize(rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """Per agent: each scorer's mean (accuracy for pass/fail scorers) over the cases it applies to,
    and the cost of getting there: steps, tool calls, tokens, latency, errors."""
    out: dict[str, dict[str, Any]] = {}
    for agent, rs in _by_agent(rows).items():
        scores: dict[str, dict[str, Any]] = {}
        for name in dict.fromkeys(n for r in rs for n in r["scores"]):
            values = [r["scores"][name] for r in rs if r["scores"].get(name) is not None]
            if not values:
                continue
            binary = all(isinstance(v, bool) for v in values)
            numbers = [float(v) for v in values]
            scores[name] = {
                "mean": round(statistics.fmean(numbers), 4),
                "n": len(numbers),
                "binary": binary,
                "stdev": round(statistics.pstdev(numbers), 4),
            }
        seconds = [r["seconds"] for r in rs if not r["error"]] or [0.0]
        costs = [r["cost_usd"] for r in rs if r.get("cost_usd") is not None]
        out[agent] = {
            "cases": len(rs),
            "errors": sum(bool(r["error"]) for r in rs),
            "scores": scores,
            "mean_steps": round(statistics.fmean(r["steps"] for r in rs), 2),
            "tool_calls": sum(len(r["tool_calls"]) for r in rs),
            "mean_tokens": round(statistics.fmean(r["tokens"] for r in rs), 1),
            "cost_usd": round(sum(costs), 6) if costs else None,
            "p50_s": round(percentile(seconds, 50), 3),
            "p95_s": round(percentile(seconds, 95), 3),
            "mean_unsupported": round(statistics.fmean(len(r["unsupported"]) for r in rs), 3),
        }
    return out


def compare(rows: Iterable[Row], base: str, other: str) -> dict[str, Any]:
    """``other`` against ``base`` on the cases both ran, per pass/fail scorer: the cases only one got
    right, and the two-sided exact sign test on those disagreements."""
    by_agent = _by_agent(rows)
    base_rows = {r["case"]: r for r in by_agent.get(base, [])}
    other_rows = {r["case"]: r for r in by_agent.get(other, [])}
    shared = [c for c in base_rows if c in other_rows]
    per_scorer: dict[str, Any] = {}
    for name in scorer_order(n for c in shared for n in base_rows[c]["scores"]):
        pairs = [(c, base_rows[c]["scores"].get(name), other_rows[c]["scores"].get(name)) for c in shared]
        pairs = [(c, b, o) for c, b, o in pairs if isinstance(b, bool) and isinstance(o, bool)]
        if not pairs:
            continue
        wins, losses = paired([b for _, b, _ in pairs], [o for _, _, o in pairs])
        per_scorer[name] = {
            "cases": len(pairs),
            "wins": wins,
            "losses": losses,
            "sign_test_p": sign_test(wins, losses),
            "only_other": [c for c, b, o in pairs if o and not b],
            "only_base": [c for c, b, o in pairs if b and not o],
        }
    return {"base": base, "other": other, "cases": len(shared), "scorers": per_scorer}


# -- the regression gate ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Regression:
    """A scorer that fell below its baseline by more than the noise margin."""

    dataset: str
    agent: str
    scorer: str
    baseline: float
    current: float
    margin: float

    def __str__(self) -> str:
        return (
            f"{self.dataset} / {self.agent} / {self.scorer}: {self.current:.3f} is below the baseline "
            f"{self.baseline:.3f} by more than the noise margin {self.margin:.3f}"
        )


def save_baseline(path: Path, summaries: dict[str, dict[str, dict[str, Any]]], *, z: float = 2.0) -> dict[str, Any]:
    """Write ``{dataset: {agent: {scorer: {mean, n, margin}}}}`` to ``path``; existing entries of other
    datasets and agents are kept. Returns what was written."""
    data: dict[str, Any] = load_baseline(path) if path.exists() else {"version": BASELINE_VERSION, "datasets": {}}
    for dataset, per_agent in summaries.items():
        for agent, summary in per_agent.items():
            data["datasets"].setdefault(dataset, {})[agent] = {
                name: {
                    "mean": s["mean"],
                    "n": s["n"],
                    "margin": round(noise_margin(s["mean"], s["n"], binary=s["binary"], stdev=s["stdev"], z=z), 4),
                }
                for name, s in summary["scores"].items()
            }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return data


def load_baseline(path: Path) -> dict[str, Any]:
    """Read a baseline file written by :func:`save_baseline`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no baseline at {str(path)!r}", "run `chatloom eval ... --save-baseline` first") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"can't read baseline {str(path)!r}: {exc}", "write it again with --save-baseline") from None
    if not isinstance(data, dict) or not isinstance(data.get("datasets"), dict):
        raise ConfigError(f"{str(path)!r} is not a chatloom eval baseline", "write it again with --save-baseline")
    return data


def check_baseline(baseline: dict[str, Any], summaries: dict[str, dict[str, dict[str, Any]]]) -> list[Regression]:
    """The scorers that dropped below ``baseline`` by more than its stored margin.

    A dataset or agent the baseline does not know is an error: a gate that silently passes on
    a renamed agent protects nothing.
    """
    found: list[Regression] = []
    for dataset, per_agent in summaries.items():
        known = baseline["datasets"].get(dataset)
        if known is None:
            raise ConfigError(f"the baseline has no dataset {dataset!r}", "run with --save-baseline to add it")
        for agent, summary in per_agent.items():
            if agent not in known:
                raise ConfigError(
                    f"the baseline has no agent {agent!r} for dataset {dataset!r}",
                    f"it has {', '.join(map(repr, known)) or 'none'}; run with --save-baseline to add it",
                )
            for scorer, stored in known[agent].items():
                current = summary["scores"].get(scorer)
                value = current["mean"] if current else 0.0  # a scorer that vanished scores nothing
                if value < stored["mean"] - stored["margin"]:
                    found.append(Regression(dataset, agent, scorer, stored["mean"], value, stored["margin"]))
    return found


def pairs_to_compare(labels: Sequence[str]) -> list[tuple[str, str]]:
    """The first agent is the reference; every other one is compared with it."""
    return [(labels[0], other) for other in labels[1:]]


def dataset_results(rows: Sequence[Row], labels: Sequence[str]) -> dict[str, Any]:
    """What the results JSON (and the HTML report) holds for one dataset: the case ids, each agent's
    summary, and every agent compared with the first."""
    return {
        "case_ids": list(dict.fromkeys(r["case"] for r in rows)),
        "agents": summarize(rows),
        "comparisons": [compare(rows, base, other) for base, other in pairs_to_compare(labels)],
    }
