"""Evaluation: run a dataset through agents, score the answers, compare agents, gate regressions.

The library half of ``chatloom eval``; the command only adds files, a progress bar and tables.

>>> from pathlib import Path
>>> from chatloom.evals import ResultsLog, load_dataset, parse_agent, run_eval, summarize  # doctest: +SKIP
>>> data = load_dataset("evals/smoke.jsonl", workdir=Path(".chatloom/eval"))               # doctest: +SKIP
>>> log = ResultsLog(Path("results.cases.jsonl"))                                          # doctest: +SKIP
>>> summarize(run_eval(data, [parse_agent("fake:echo")], log))                            # doctest: +SKIP
"""

from __future__ import annotations

from chatloom.evals.agents import AgentChoice, parse_agent
from chatloom.evals.datasets import FORMATS, Case, Dataset, load_dataset
from chatloom.evals.html_report import write_html
from chatloom.evals.judge import Judge, Verdict
from chatloom.evals.report import (
    Regression,
    check_baseline,
    compare,
    dataset_results,
    load_baseline,
    save_baseline,
    summarize,
)
from chatloom.evals.runner import ResultsLog, run_eval
from chatloom.evals.scorers import SCORERS, Outcome, score_case
from chatloom.evals.stats import noise_margin, paired, percentile, sign_test

__all__ = [
    "FORMATS",
    "SCORERS",
    "AgentChoice",
    "Case",
    "Dataset",
    "Judge",
    "Outcome",
    "Regression",
    "ResultsLog",
    "Verdict",
    "check_baseline",
    "compare",
    "dataset_results",
    "load_baseline",
    "load_dataset",
    "noise_margin",
    "paired",
    "parse_agent",
    "percentile",
    "run_eval",
    "save_baseline",
    "score_case",
    "sign_test",
    "summarize",
    "write_html",
]
