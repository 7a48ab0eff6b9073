"""``chatloom eval`` end to end: in-process on scripted agents, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatloom.cli.main import run

SRC = Path(__file__).resolve().parents[2] / "src"
CASES = [
    {"input": "What is 2+2?", "expected": "4", "scorers": ["contains"]},
    {"input": "Capital of France?", "expected": "Paris", "scorers": ["exact", "contains"]},
    {"input": "Capital of Italy?", "expected": "Rome", "scorers": ["exact", "contains"]},
    {"input": "What is 3*3?", "expected": "9"},
]


def write_cases(path: Path, cases: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(c) + "\n" for c in cases), encoding="utf-8")
    return path


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    write_cases(tmp_path / "evals" / "smoke.jsonl", CASES)
    return tmp_path


def chatloom_eval(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = run(["eval", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_two_agents_side_by_side_with_the_paired_test(workspace, capsys):
    code, out, err = chatloom_eval(
        capsys, "evals/smoke.jsonl", "-a", "scripted:good", "-a", "scripted:bad", "-o", "out/r.json"
    )
    assert code == 0, err
    assert "smoke (4 cases)" in out and "scripted:good" in out and "scripted:bad" in out
    assert "contains" in out and "3/3 (100%)" in out and "1/3 (33%)" in out
    assert "p95 s" in out and "mean steps" in out
    assert "contains: right only with scripted:bad 0, only with scripted:good 2, sign test p = 0.5" in out
    assert "only scripted:good: 1, 2" in out
    results = json.loads((workspace / "out" / "r.json").read_text())
    smoke = results["datasets"]["smoke"]
    assert smoke["agents"]["scripted:good"]["scores"]["numeric"]["mean"] == 1.0
    assert smoke["comparisons"][0]["scorers"]["exact"] == {
        "cases": 2,
        "wins": 0,
        "losses": 1,
        "sign_test_p": 1.0,
        "only_other": [],
        "only_base": ["2"],
    }
    assert len((workspace / "out" / "r.cases.jsonl").read_text().splitlines()) == 8


def test_the_default_dataset_is_every_evals_jsonl(workspace, capsys):
    write_cases(workspace / "evals" / "more.jsonl", CASES[:1])
    code, out, _ = chatloom_eval(capsys, "-a", "scripted:good")
    assert code == 0 and "smoke (4 cases)" in out and "more (1 cases)" in out
    assert (workspace / ".chatloom" / "eval" / "results.json").exists()


def test_an_interrupted_run_continues_on_the_next(workspace, capsys, monkeypatch):
    from chatloom.models import registry

    monkeypatch.setitem(registry.BUILTIN_SCHEMES, "stopping", "evalbots:create_stopping_model")
    code, _, err = chatloom_eval(capsys, "-a", "name=bot,model=stopping:x", "-o", "r.json")
    assert code == 130
    assert "interrupted: 2 finished rows are kept in r.cases.jsonl" in err and "Traceback" not in err
    code, out, err = chatloom_eval(capsys, "-a", "name=bot,model=scripted:good", "-o", "r.json")
    assert code == 0, err
    assert "2 of 4 results kept from an earlier run" in err
    rows = [json.loads(line) for line in (workspace / "r.cases.jsonl").read_text().splitlines()]
    assert [r["case"] for r in rows] == ["1", "2", "3", "4"]  # each case once: nothing lost, nothing twice
    assert "4/4 (100%)" not in out and "3/3 (100%)" in out  # contains over the 3 cases that have it


def test_a_malformed_dataset_line_is_one_error_and_keeps_earlier_results(workspace, capsys):
    assert chatloom_eval(capsys, "-a", "scripted:good", "-o", "r.json")[0] == 0
    before = (workspace / "r.cases.jsonl").read_text()
    with (workspace / "evals" / "smoke.jsonl").open("a") as f:
        f.write('{"input": "broken"\n')
    code, _, err = chatloom_eval(capsys, "-a", "scripted:good", "-o", "r.json")
    assert code == 2
    assert err.startswith("error: evals/smoke.jsonl:5: invalid JSON") and err.count("\n") == 1
    assert (workspace / "r.cases.jsonl").read_text() == before


@pytest.mark.parametrize(
    ("agent", "needle"),
    [
        ("nosuch", "error: unknown agent 'nosuch'"),
        ("scripted:nope", "error: agent 'scripted:nope': no scripted model 'nope'"),
        ("agents/missing.yaml", "error: agent spec 'agents/missing.yaml' does not exist"),
    ],
)
def test_an_unknown_agent_is_one_error_before_any_case_runs(workspace, capsys, agent, needle):
    code, _, err = chatloom_eval(capsys, "-a", "scripted:good", "-a", agent, "-o", "r.json")
    assert code == 2 and err.startswith(needle) and err.count("\n") == 1
    assert not (workspace / "r.cases.jsonl").exists()


def test_check_passes_against_its_baseline_and_fails_on_a_regression(workspace, capsys):
    code, out, _ = chatloom_eval(capsys, "-a", "name=bot,model=scripted:good", "--save-baseline")
    assert code == 0 and "saved the baseline to evals/baseline.json" in out
    baseline = json.loads((workspace / "evals" / "baseline.json").read_text())
    assert baseline["datasets"]["smoke"]["bot"]["contains"]["mean"] == 1.0

    code, out, err = chatloom_eval(capsys, "-a", "name=bot,model=scripted:good", "--check", "--fresh")
    assert code == 0 and "check passed" in out, err

    code, out, err = chatloom_eval(capsys, "-a", "name=bot,model=scripted:bad", "--check", "--fresh")
    assert code == 1
    assert "regression: smoke / bot / contains: 0.333 is below the baseline 1.000" in err
    assert "noise margin 0.462" in err
    # exact fell from 2/2 to 1/2: within the margin of two cases (0.61), so not flagged.
    assert "exact" not in err and "numeric" not in err


def test_check_without_a_baseline_says_how_to_make_one(workspace, capsys):
    code, _, err = chatloom_eval(capsys, "-a", "scripted:good", "--check")
    assert code == 2 and "error: no baseline at 'evals/baseline.json'" in err and "--save-baseline" in err


def test_help_explains_the_agent_syntax_and_the_margin(capsys):
    code, out, _ = chatloom_eval(capsys, "--help")
    assert code == 0
    for needle in (
        "prompt=assistant,tools=calculator+search",
        "fake:echo",
        "--concurrency",
        "--check",
        "--save-baseline",
        "sign test",
        "(k+1)/(n+2)",
        "--fresh",
        "korean_faq",
        "--html",
        "offline",
        "chatloom[eval]",
        "--from",
        "--judge",
        "--rubric",
        "fenced data",
    ):
        assert needle in out, needle


def test_the_console_script_on_fake_echo_with_two_agents(tmp_path):
    """The real process: no scripted scheme, the built-in fake:echo model."""
    write_cases(
        tmp_path / "echo.jsonl",
        [
            {"input": "Repeat: hello", "expected": "hello"},
            {"input": "Say 17", "expected": "17"},
        ],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHATLOOM_", "OPENAI_"))}
    env.update(PYTHONPATH=str(SRC), CHATLOOM_HOME=str(tmp_path / "home"), COLUMNS="100")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatloom.cli.main",
            "eval",
            "echo.jsonl",
            "-a",
            "fake:echo",
            "-a",
            "name=calc,model=fake:echo,tools=calculator",
            "-o",
            "out.json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "fake:echo" in done.stdout and "calc" in done.stdout and "calc vs fake:echo" in done.stdout
    results = json.loads((tmp_path / "out.json").read_text())
    agents = results["datasets"]["echo"]["agents"]
    assert agents["fake:echo"]["scores"]["contains"]["mean"] == 1.0  # the echo repeats the expected word
    assert agents["calc"]["scores"]["numeric"]["mean"] == 1.0


def test_a_terminal_gets_a_progress_bar(tmp_path):
    import io

    from rich.console import Console

    from chatloom.cli.eval_cmd import _run_one
    from chatloom.evals import Case, Dataset, ResultsLog, parse_agent

    screen = io.StringIO()
    terminal = Console(file=screen, force_terminal=True, width=100)
    data = Dataset(
        "bar", "jsonl", tuple(Case(str(i), "What is 2+2?", expected="4", scorers=("contains",)) for i in range(3))
    )
    log = ResultsLog(tmp_path / "r.cases.jsonl")
    _run_one(data, [parse_agent("scripted:good")], log, 1, None, terminal)
    assert len(log.rows()) == 3
    assert "bar" in screen.getvalue() and "3/3" in screen.getvalue()
