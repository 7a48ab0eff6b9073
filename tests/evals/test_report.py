"""The paired sign test, summaries, comparisons and the baseline gate, on hand-made rows."""

from __future__ import annotations

import math

import pytest

from chatloom.errors import ConfigError
from chatloom.evals.report import check_baseline, compare, load_baseline, save_baseline, summarize
from chatloom.evals.stats import noise_margin, paired, percentile, sign_test


def test_sign_test_matches_the_exact_binomial():
    # 9 disagreements split 8:1 -> P(X <= 1) for Binomial(9, 1/2), doubled.
    assert sign_test(8, 1) == round(2 * (1 + 9) / 2**9, 4)
    assert sign_test(1, 8) == sign_test(8, 1)
    assert sign_test(0, 0) == 1.0
    assert sign_test(3, 3) == 1.0  # even splits never look significant
    assert sign_test(10, 0) == round(2 / 2**10, 4)
    assert sign_test(20, 0) < 0.001 < sign_test(6, 1)


@pytest.mark.parametrize(("wins", "losses"), [(0, 5), (2, 7), (12, 13), (30, 10)])
def test_sign_test_is_a_probability_equal_to_the_binomial_tail(wins, losses):
    n, k = wins + losses, min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    assert sign_test(wins, losses) == round(min(1.0, 2 * tail), 4)


def test_paired_counts_disagreements_only():
    assert paired([True, True, False, False], [True, False, True, True]) == (2, 1)
    assert paired([], []) == (0, 0)


def test_percentile_is_nearest_rank():
    assert percentile([5, 1, 3], 50) == 3
    assert percentile(list(range(1, 101)), 95) == 95


def test_noise_margin_allows_one_miss_of_twenty_but_not_two():
    margin = noise_margin(1.0, 20, binary=True)
    assert 1.0 - margin <= 19 / 20
    assert 1.0 - margin > 18 / 20
    assert noise_margin(0.8, 0, binary=True) == 0.0
    assert noise_margin(0.5, 25, binary=False, stdev=0.5) == pytest.approx(2 * 0.5 / 5)


def row(agent: str, case: str, **scores) -> dict:
    return {
        "agent": agent,
        "case": case,
        "scores": scores,
        "error": None,
        "steps": 2,
        "tool_calls": [{"name": "calculator", "ok": True, "effect": "read"}],
        "tokens": 100,
        "cost_usd": None,
        "seconds": float(case),
        "unsupported": [],
    }


ROWS = [
    row("a", "1", exact=True, f1=1.0),
    row("b", "1", exact=True, f1=1.0),
    row("a", "2", exact=False, f1=0.0),
    row("b", "2", exact=True, f1=0.5),
    row("a", "3", exact=False, f1=0.0),
    row("b", "3", exact=True, f1=1.0),
    row("a", "4", exact=True, f1=1.0),
    row("b", "4", exact=False, f1=0.0),
    row("a", "5", exact=None, f1=None),
    row("b", "5", exact=None, f1=None),  # does not apply
]


def test_summary_per_agent():
    summary = summarize(ROWS)
    assert summary["a"]["scores"]["exact"] == {"mean": 0.5, "n": 4, "binary": True, "stdev": 0.5}
    assert summary["b"]["scores"]["exact"]["mean"] == 0.75
    assert summary["b"]["scores"]["f1"]["binary"] is False and summary["b"]["scores"]["f1"]["mean"] == 0.625
    assert summary["a"]["tool_calls"] == 5 and summary["a"]["mean_steps"] == 2
    assert summary["a"]["p50_s"] == 3.0 and summary["a"]["p95_s"] == 5.0


def test_compare_lists_the_cases_each_got_alone():
    result = compare(ROWS, "a", "b")
    exact = result["scorers"]["exact"]
    assert (exact["wins"], exact["losses"], exact["cases"]) == (2, 1, 4)
    assert exact["only_other"] == ["2", "3"] and exact["only_base"] == ["4"]
    assert exact["sign_test_p"] == 1.0
    assert "f1" not in result["scorers"]  # graded scores are not paired as wins


def test_baseline_check_passes_within_the_margin_and_fails_beyond(tmp_path):
    path = tmp_path / "evals" / "baseline.json"
    base = {"set": {"a": {"cases": 20, "scores": {"exact": {"mean": 1.0, "n": 20, "binary": True, "stdev": 0.0}}}}}
    save_baseline(path, base)
    stored = load_baseline(path)

    def now(mean: float) -> dict:
        return {"set": {"a": {"scores": {"exact": {"mean": mean, "n": 20, "binary": True, "stdev": 0.0}}}}}

    assert check_baseline(stored, now(1.0)) == []
    assert check_baseline(stored, now(0.95)) == []  # one miss of twenty: noise
    [regression] = check_baseline(stored, now(0.90))
    assert (regression.agent, regression.scorer, regression.current) == ("a", "exact", 0.90)
    assert "below the baseline 1.000" in str(regression)
    assert check_baseline(stored, {"set": {"a": {"scores": {}}}})  # a scorer that vanished is a drop


def test_baseline_keeps_other_entries_and_rejects_unknown_agents(tmp_path):
    path = tmp_path / "baseline.json"
    save_baseline(path, {"set": {"a": {"scores": {"exact": {"mean": 0.5, "n": 4, "binary": True, "stdev": 0.5}}}}})
    save_baseline(path, {"set": {"b": {"scores": {"exact": {"mean": 0.7, "n": 4, "binary": True, "stdev": 0.5}}}}})
    stored = load_baseline(path)
    assert set(stored["datasets"]["set"]) == {"a", "b"}
    with pytest.raises(ConfigError, match="no agent 'c'"):
        check_baseline(stored, {"set": {"c": {"scores": {}}}})
    with pytest.raises(ConfigError, match="no dataset 'other'"):
        check_baseline(stored, {"other": {"a": {"scores": {}}}})


def test_a_broken_baseline_file_is_a_clear_error(tmp_path):
    path = tmp_path / "baseline.json"
    with pytest.raises(ConfigError, match="no baseline at"):
        load_baseline(path)
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="can't read baseline"):
        load_baseline(path)
