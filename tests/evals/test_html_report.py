"""``chatloom eval --html``: the report file, opened in a real headless browser, and --from."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from evalbots import HOSTILE

from chatloom.cli.main import run

CASES = [
    {"input": "What is 2+2?", "expected": "4", "scorers": ["contains"]},
    {"input": "Capital of France?", "expected": "Paris", "scorers": ["exact", "contains"]},
    {"input": "Capital of Italy?", "expected": "Rome", "scorers": ["exact", "contains"]},
    {"input": "What is 3*3?", "expected": "9"},
    {
        "input": "Quote the page.",
        "expected": "<b>bold</b> & <i>x</i>",
        "regex": "onerror",
        "scorers": ["regex", "no_tool_text"],
    },
]
GOOD, BAD = "scripted:good", "name=<i>bad</i>,model=scripted:bad"
BAD_LABEL = "<i>bad</i>"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke.jsonl").write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    return tmp_path


def chatloom_eval(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = run(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def report(workspace: Path, capsys: pytest.CaptureFixture) -> Path:
    code, out, err = chatloom_eval(
        capsys, "smoke.jsonl", "-a", GOOD, "-a", BAD, "-o", "r.json", "--html", "out/report.html"
    )
    assert code == 0, err
    assert "wrote the report out/report.html" in out
    return workspace / "out" / "report.html"


def rows_of(workspace: Path) -> dict[tuple[str, str], dict]:
    rows = [json.loads(line) for line in (workspace / "r.cases.jsonl").read_text().splitlines()]
    return {(r["agent"], r["case"]): r for r in rows}


def test_the_report_renders_charts_grid_and_sign_tests_in_a_real_browser(report, workspace, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    results = json.loads((workspace / "r.json").read_text())["datasets"]["smoke"]
    browser.get(report.as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.chartsReady") == "yes")
    with pytest.raises(NoAlertPresentException):  # the hostile answer's onerror=alert(1) never ran
        browser.switch_to.alert.text
    assert browser.title == "chatloom eval: smoke"

    # Charts: plotly drew both, one bar per (scorer, agent) and per (percentile, agent), with the summary's values.
    plots = browser.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
    assert [p.get_attribute("id") for p in plots] == ["accuracy-1", "latency-1"]
    accuracy_bars = browser.find_elements(By.CSS_SELECTOR, "#accuracy-1 svg g.trace.bars g.point path")
    scored = {label: agent["scores"] for label, agent in results["agents"].items()}
    assert len(accuracy_bars) == sum(len(s) for s in scored.values()) == 12
    drawn = browser.execute_script("return document.getElementById('accuracy-1').data.map(t => [t.name, t.x, t.y])")
    order = ["exact", "numeric", "contains", "regex", "no_leak", "no_tool_text"]  # as SCORERS lists them
    assert sorted(order) == sorted(scored["scripted:good"])
    assert drawn[0] == ["scripted:good", order, [scored["scripted:good"][s]["mean"] for s in order]]
    assert drawn[1] == [
        "&lt;i&gt;bad&lt;/i&gt;",
        order,
        [scored[BAD_LABEL][s]["mean"] for s in order],
    ]  # markup stays text ...
    means = [scored[label][s]["mean"] for label in ("scripted:good", BAD_LABEL) for s in order]
    assert [bar.size["height"] > 0 for bar in accuracy_bars] == [m > 0 for m in means] and 0 in means
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#accuracy-1 .legendtext")]
    assert legend == ["scripted:good", "<i>bad</i>"]  # ... and reads as the label
    assert len(browser.find_elements(By.CSS_SELECTOR, "#latency-1 svg g.trace.bars g.point path")) == 4
    buttons = [b.get_attribute("data-title") for b in browser.find_elements(By.CSS_SELECTOR, ".modebar-btn")]
    assert "Download plot as a PNG" in buttons and not [b for b in buttons if "Share" in b or "Cloud" in b]
    latency = browser.execute_script("return document.getElementById('latency-1').data.map(t => [t.name, t.y])")
    agents = results["agents"]
    assert latency == [
        ["p50", [agents["scripted:good"]["p50_s"], agents[BAD_LABEL]["p50_s"]]],
        ["p95", [agents["scripted:good"]["p95_s"], agents[BAD_LABEL]["p95_s"]]],
    ]

    # The grid: one row per case, a mark per scorer that says what the results say.
    grid_rows = browser.find_elements(By.CSS_SELECTOR, "#grid-1 tbody tr.case")
    assert [r.get_attribute("data-case") for r in grid_rows] == ["1", "2", "3", "4", "5"]
    stored = rows_of(workspace)
    marks = browser.execute_script("""
        return [...document.querySelectorAll('#grid-1 td.cell')].map(td => [
            td.closest('tr').dataset.case, td.dataset.agent,
            [...td.querySelectorAll('.mark')].map(m => [m.dataset.scorer, m.classList[1], m.textContent])]);""")
    assert len(marks) == 10
    for case, agent, cell in marks:
        expected = [
            [s, "pass" if v else "fail", f"{'✓' if v else '✗'} {s}"] for s, v in stored[(agent, case)]["scores"].items()
        ]
        assert cell == expected, (case, agent)
    cell = {(c, a): m for c, a, m in marks}
    assert ["exact", "pass", "✓ exact"] in cell[("2", "scripted:good")]
    assert ["exact", "fail", "✗ exact"] in cell[("2", BAD_LABEL)]
    differs = [r.get_attribute("data-case") for r in grid_rows if "differs" in r.get_attribute("class")]
    assert differs == ["1", "2", "5"]

    # The hostile answer is text: visible when opened, on hover, and no element or script came of it.
    hostile_cell = browser.find_element(By.CSS_SELECTOR, '#case-1-5 td[data-agent="scripted:good"]')
    assert hostile_cell.get_attribute("title") == HOSTILE
    hostile_cell.find_element(By.TAG_NAME, "summary").click()
    assert hostile_cell.find_element(By.CSS_SELECTOR, "pre.answer").text == HOSTILE
    expected_cell = browser.find_element(By.CSS_SELECTOR, "#case-1-5 td.question:nth-of-type(2)")
    assert expected_cell.text == "<b>bold</b> & <i>x</i>"
    assert browser.find_elements(By.CSS_SELECTOR, "#grid-1 img, #grid-1 script, #grid-1 b, #grid-1 i") == []
    assert browser.title == "chatloom eval: smoke"  # the answer's script would have set "pwned"

    # The sign tests, per scorer, with links to the cases only one agent got right.
    comparison = results["comparisons"][0]
    table = browser.find_element(By.CSS_SELECTOR, "table.comparison")
    assert table.get_attribute("data-other") == BAD_LABEL
    contains = table.find_element(By.CSS_SELECTOR, 'tr[data-scorer="contains"]')
    assert (
        contains.find_element(By.CSS_SELECTOR, ".losses").text
        == str(comparison["scorers"]["contains"]["losses"])
        == "2"
    )
    assert (
        contains.find_element(By.CSS_SELECTOR, "td.p").text
        == f"{comparison['scorers']['contains']['sign_test_p']:.3g}"
        == "0.5"
    )
    links = [a.get_attribute("href").rsplit("#", 1)[1] for a in contains.find_elements(By.TAG_NAME, "a")]
    assert links == ["case-1-1", "case-1-2"]

    # "Only the cases where the agents differ" hides the others.
    browser.find_element(By.CSS_SELECTOR, ".only-differs-toggle").click()
    shown = [r.get_attribute("data-case") for r in grid_rows if r.is_displayed()]
    assert shown == ["1", "2", "5"]

    # Nothing left the page: no request was made, and no element points outside it.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    outside = browser.execute_script("""
        return [...document.querySelectorAll('[src], [href], [action], link, iframe, object, embed')]
            .map(e => e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('action') || e.tagName)
            .filter(v => !v.startsWith('#'));""")
    assert outside == []
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []


def test_the_file_is_self_contained_and_escapes_case_text(report):
    page = report.read_text(encoding="utf-8")
    assert "Plotly.newPlot" in page and "plotly.js v" in page  # the bundle is inlined
    assert not re.search(r"""<(script|link|img|iframe)\b[^>]*\s(src|href)\s*=""", page, re.IGNORECASE)
    assert HOSTILE not in page and "&lt;img src=x onerror=" in page
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    nonces = set(re.findall(r"<script nonce=\"([^\"]+)\">", page))
    assert len(nonces) == 1 and f"'nonce-{nonces.pop()}'" in page


def test_from_renders_an_earlier_run_without_running_it(report, workspace, capsys, monkeypatch):
    from chatloom.models import registry

    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "scripted", "no_such_module:create_model")  # any model load fails
    before = (workspace / "r.cases.jsonl").read_text()
    code, out, err = chatloom_eval(capsys, "--from", "r.json", "--html", "again.html")
    assert code == 0, err
    assert "read r.json and r.cases.jsonl" in out and "smoke (5 cases)" in out and "wrote the report again.html" in out
    assert "contains: right only with <i>bad</i> 0, only with scripted:good 2, sign test p = 0.5" in out
    assert (workspace / "r.cases.jsonl").read_text() == before
    page = (workspace / "again.html").read_text(encoding="utf-8")
    assert page.count('<tr class="case') == 5 and page.count('class="chart ') == 2


def test_from_keeps_to_the_cases_of_that_run(report, workspace, capsys):
    # A later, shorter run into the same file must not leak its rows into the earlier run's report, nor the reverse.
    code, _, err = chatloom_eval(capsys, "smoke.jsonl", "-a", GOOD, "-a", BAD, "-o", "r.json", "--limit", "2")
    assert code == 0, err
    code, out, err = chatloom_eval(capsys, "--from", "r.json", "--html", "short.html")
    assert code == 0, err and "smoke (2 cases)" in out
    assert (workspace / "short.html").read_text(encoding="utf-8").count('<tr class="case') == 2


@pytest.mark.parametrize(
    ("setup", "args", "needle"),
    [
        (None, ["--from", "nothing.json"], "error: no results at 'nothing.json'"),
        ("{broken", ["--from", "r.json"], "error: can't read results 'r.json'"),
        ('{"a": 1}', ["--from", "r.json"], "error: 'r.json' is not a chatloom eval results file"),
        (
            '{"agents": [], "datasets": {}}',
            ["--from", "r.json"],
            "error: no per-case rows at 'r.cases.jsonl' beside 'r.json'",
        ),
        (
            '{"agents": [], "datasets": {}}',
            ["--from", "r.json", "-a", "scripted:good"],
            "error: --from reads an earlier run, so --agent",
        ),
        (
            '{"agents": [], "datasets": {}}',
            ["--from", "r.json", "smoke.jsonl"],
            "error: --from reads an earlier run, so DATASETS",
        ),
    ],
)
def test_bad_from_input_is_one_clear_error(workspace, capsys, setup, args, needle):
    if setup is not None:
        (workspace / "r.json").write_text(setup, encoding="utf-8")
    code, _, err = chatloom_eval(capsys, *args)
    assert code == 2 and err.startswith(needle) and err.count("\n") == 1, err


def test_without_plotly_html_is_one_error_before_anything_runs(workspace, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)  # as if plotly were not installed
    code, _, err = chatloom_eval(capsys, "smoke.jsonl", "-a", GOOD, "-o", "r.json", "--html", "report.html")
    assert code == 2
    assert (
        err
        == "error: the HTML report needs plotly, which is not installed — pip install plotly  (or: pip install 'chatloom[eval]')\n"
    )
    assert not (workspace / "r.cases.jsonl").exists() and not (workspace / "report.html").exists()


def test_the_judge_reason_reaches_the_report(workspace, capsys):
    code, _, err = chatloom_eval(
        capsys,
        "smoke.jsonl",
        "-a",
        GOOD,
        "-o",
        "r.json",
        "--judge",
        "scripted:judge",
        "--html",
        "report.html",
        "--limit",
        "2",
    )
    assert code == 0, err
    page = (workspace / "report.html").read_text(encoding="utf-8")
    assert 'data-scorer="judge" title="judge: pass — the answer says 4"' in page
    assert '<div class="reason">judge: the answer says Paris</div>' in page


def test_from_gates_an_earlier_run_against_the_baseline(workspace, capsys):
    code, _, err = chatloom_eval(
        capsys, "smoke.jsonl", "-a", "name=bot,model=scripted:good", "-o", "good.json", "--save-baseline"
    )
    assert code == 0, err
    code, _, err = chatloom_eval(capsys, "smoke.jsonl", "-a", "name=bot,model=scripted:bad", "-o", "bad.json")
    assert code == 0, err
    code, out, _ = chatloom_eval(capsys, "--from", "good.json", "--check")
    assert code == 0 and "check passed" in out
    code, _, err = chatloom_eval(capsys, "--from", "bad.json", "--check")
    assert code == 1 and "regression: smoke / bot / contains: 0.333 is below the baseline 1.000" in err
