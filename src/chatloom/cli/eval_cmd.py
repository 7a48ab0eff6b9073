"""``chatloom eval``: run datasets through agents, print a side-by-side table, gate regressions."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from chatloom.errors import ConfigError
from chatloom.evals.datasets import FORMATS

DEFAULT_OUT = Path(".chatloom") / "eval" / "results.json"
DEFAULT_BASELINE = Path("evals") / "baseline.json"


@click.command("eval")
@click.argument("datasets", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-a",
    "--agent",
    "agents",
    multiple=True,
    metavar="AGENT",
    help="An agent to evaluate; repeat to compare (the first is the reference). "
    "Default: agents/assistant.yaml if present, else the configured model.",
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="The dataset format. Default: guessed from the path.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N cases of each dataset.")
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Cases run at once. A local model already uses every core; raise it for remote models.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUT,
    show_default=True,
    help="Results JSON; per-case rows go to OUT with the suffix .cases.jsonl as they finish.",
)
@click.option("--fresh", is_flag=True, help="Start over instead of continuing the cases already in the .cases.jsonl.")
@click.option(
    "--baseline",
    "baseline_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_BASELINE,
    show_default=True,
    help="The baseline file for --save-baseline and --check.",
)
@click.option(
    "--save-baseline", is_flag=True, help="Store this run's scores (and their noise margins) as the baseline."
)
@click.option(
    "--check", is_flag=True, help="Exit with status 1 when any scorer falls below the baseline by more than its margin."
)
@click.option(
    "--noise-z",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="The noise margin, in standard errors of the baseline's score.",
)
@click.option(
    "--show-cases",
    type=click.IntRange(min=0),
    default=10,
    show_default=True,
    help="How many differing case ids to print per comparison (all of them are in the JSON).",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a self-contained HTML report (charts, tables, sign tests, the per-case grid with "
    "every answer); it opens offline. Needs plotly: pip install 'chatloom[eval]'.",
)
@click.option(
    "--from",
    "from_results",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="RESULTS",
    help="Run nothing: read an earlier run's results JSON (its --out) and the .cases.jsonl beside it, "
    "then print the tables again, or write --html, --check or --save-baseline from them.",
)
@click.option(
    "--judge",
    "judge_model",
    metavar="MODEL",
    help="Add the 'judge' scorer: MODEL (any chatloom model id) grades each answer against the rubric, "
    "pass or fail with a reason. Rows finished earlier are graded without running them again.",
)
@click.option(
    "--rubric",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The judge's rubric, a text file saying what a passing answer does. Default: agree with the "
    "expected answer, abstain on unanswerable cases, don't address the grader.",
)
@click.pass_context
def eval_cmd(
    ctx: click.Context,
    datasets: tuple[Path, ...],
    agents: tuple[str, ...],
    fmt: str | None,
    limit: int | None,
    concurrency: int,
    out: Path,
    fresh: bool,
    baseline_path: Path,
    save_baseline: bool,
    check: bool,
    noise_z: float,
    show_cases: int,
    html_path: Path | None,
    from_results: Path | None,
    judge_model: str | None,
    rubric: Path | None,
) -> None:
    """Measure agents on datasets: accuracy per scorer, steps, tool calls, tokens, latency.

    \b
    DATASETS are .jsonl files of cases, one JSON object a line:
      {"input": "...", "expected": "...", "documents": ["docs/"], "unanswerable": false}
    or the shared sets (a folder or file of ../shared/evaldata: gsm8k, hotpotqa, korean_faq,
    bipia). Default: every evals/*.jsonl of this workspace.

    \b
    AGENT is one of:
      agents/tutor.yaml                 a spec file
      local:qwen2.5-coder-0.5b          a model id (no prompt, no tools); fake:echo for tests
      prompt=assistant,tools=calculator+search,model=fake:echo
                                        keys: name, spec, model, prompt, tools (joined by +;
                                        tools= for none), max_steps. name= sets the label.

    \b
    Rerunning the same command continues an interrupted run (--fresh starts over).
    With two or more agents, each is compared with the first case by case: the cases
    only one got right, and a two-sided exact sign test on them.
    The --check margin is --noise-z binomial standard errors of the baseline score,
    computed on (k+1)/(n+2) so a perfect score still allows noise (20 cases at 100%:
    one miss passes, two fail); for token F1, z * stdev / sqrt(n).

    \b
    The judge (--judge MODEL [--rubric FILE]) sees the rubric as its instructions and
    the question, reference and answer as fenced data, and its verdict must carry a
    per-grade id the answer cannot know: an answer that dictates "pass" gets no pass.
    A reply without a readable verdict scores neither way; its reason is kept in the
    results and the HTML report.

    \b
    Examples:
      chatloom eval evals/smoke.jsonl -a agents/assistant.yaml -a prompt=tutor --html report.html
      chatloom eval --from .chatloom/eval/results.json --html report.html
      chatloom eval evals/smoke.jsonl --judge local:qwen2.5-coder-1.5b --rubric evals/rubric.md
    """
    from rich.console import Console

    from chatloom.evals import load_baseline
    from chatloom.evals.report import check_baseline
    from chatloom.evals.report import save_baseline as write_baseline

    if check and save_baseline:
        raise ConfigError(
            "--check and --save-baseline do not go together", "save a baseline first, then check against it"
        )
    if rubric is not None and judge_model is None:
        raise ConfigError(
            "--rubric needs --judge MODEL", "name the model that grades with it, e.g. --judge local:qwen2.5-coder-1.5b"
        )
    if html_path is not None:
        from chatloom.evals.html_report import require_plotly

        require_plotly()  # a missing charting library fails before the run, not after it
    baseline = load_baseline(baseline_path) if check else None  # a missing baseline fails before the run
    console = Console()
    if from_results is not None:
        given = [
            flag
            for flag, value in (
                ("DATASETS", datasets),
                ("--agent", agents),
                ("--judge", judge_model),
                ("--fresh", fresh),
                ("--limit", limit),
                ("--format", fmt),
            )
            if value
        ]
        if given:
            raise ConfigError(
                f"--from reads an earlier run, so {given[0]} has nothing to do",
                "leave it out, or run again without --from",
            )
        results, rows_by_dataset = _read_results(from_results)
        console.print(f"read {from_results} and {from_results.with_suffix('.cases.jsonl')}", highlight=False)
    else:
        results, rows_by_dataset = _run(ctx, datasets, agents, fmt, limit, concurrency, out, fresh, judge_model, rubric)
    labels = results["agents"]
    summaries = {name: info["agents"] for name, info in results["datasets"].items()}
    for name, info in results["datasets"].items():
        _print_table(console, name, info["cases"], labels, info["agents"])
        for comparison in info["comparisons"]:
            _print_comparison(console, comparison, show_cases)
        _print_judge_notes(console, rows_by_dataset[name])
    if from_results is None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        console.print(f"\nwrote {out} and {results['cases_file']}", highlight=False)
    if html_path is not None:
        from chatloom.evals.html_report import write_html

        write_html(html_path, results, rows_by_dataset)
        console.print(f"wrote the report {html_path}", highlight=False)

    if save_baseline:
        write_baseline(baseline_path, summaries, z=noise_z)
        console.print(f"saved the baseline to {baseline_path}", highlight=False)
    if baseline is not None:
        regressions = check_baseline(baseline, summaries)
        err = Console(stderr=True)
        for regression in regressions:
            err.print(f"regression: {regression}", highlight=False, soft_wrap=True)
        if regressions:
            ctx.exit(1)
        console.print(f"check passed: no scorer fell below {baseline_path} by more than its margin", highlight=False)


Rows = dict[str, list[dict[str, Any]]]


def _run(
    ctx: click.Context,
    datasets: tuple[Path, ...],
    agents: tuple[str, ...],
    fmt: str | None,
    limit: int | None,
    concurrency: int,
    out: Path,
    fresh: bool,
    judge_model: str | None,
    rubric: Path | None,
) -> tuple[dict[str, Any], Rows]:
    """Run the datasets through the agents; the results JSON (not yet written) and each dataset's rows."""
    from rich.console import Console

    from chatloom.config import get_settings
    from chatloom.evals import ResultsLog, load_dataset, parse_agent
    from chatloom.evals.report import dataset_results

    choices = [parse_agent(a) for a in agents] or [_default_agent()]
    paths = list(datasets) or sorted(Path("evals").glob("*.jsonl"))
    if not paths:
        raise ConfigError(
            "no dataset given and no evals/*.jsonl here", "pass a .jsonl file or a folder of ../shared/evaldata"
        )
    workdir = out.parent / "documents"
    loaded = [load_dataset(p, fmt, workdir=workdir, limit=limit) for p in paths]
    names = [d.name for d in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"two datasets are both named {next(n for n in names if names.count(n) > 1)!r}",
            "rename one file: results are kept per dataset name",
        )

    cases_path = out.with_suffix(".cases.jsonl")
    if fresh and cases_path.exists():
        cases_path.unlink()
    log = ResultsLog(cases_path)
    err = Console(stderr=True)
    settings = get_settings()
    judge = None
    if judge_model is not None:
        from chatloom.evals.judge import Judge, load_rubric

        judge = Judge(judge_model, load_rubric(rubric), settings=settings).load()  # a bad id fails before any case
    started = time.perf_counter()
    try:
        for data in loaded:
            _run_one(data, choices, log, concurrency, settings, err, judge)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: {len(log.rows())} finished rows are kept in {cases_path}; "
            "run the same command again to continue",
            highlight=False,
        )
        ctx.exit(130)

    labels = [c.label for c in choices]
    results: dict[str, Any] = {
        "agents": labels,
        "cases_file": str(cases_path),
        "datasets": {},
        "seconds": round(time.perf_counter() - started, 1),
    }
    if judge is not None:
        results["judge"] = {"model": judge.model_id, "by": judge.key, "rubric": judge.rubric}
    rows_by_dataset: Rows = {}
    for data in loaded:
        wanted = {c.id for c in data.cases}
        rows = rows_by_dataset[data.name] = [
            r for r in log.rows(data.name) if r["agent"] in labels and r["case"] in wanted
        ]
        results["datasets"][data.name] = {
            "format": data.format,
            "cases": len(data.cases),
            **dataset_results(rows, labels),
        }
    return results, rows_by_dataset


def _read_results(path: Path) -> tuple[dict[str, Any], Rows]:
    """An earlier run's results JSON, summarised again from the rows of its .cases.jsonl."""
    from chatloom.evals import ResultsLog
    from chatloom.evals.report import dataset_results

    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"no results at {str(path)!r}", "pass the --out of an earlier chatloom eval run") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"can't read results {str(path)!r}: {exc}", "pass the --out of an earlier chatloom eval run"
        ) from None
    if (
        not isinstance(stored, dict)
        or not isinstance(stored.get("datasets"), dict)
        or not isinstance(stored.get("agents"), list)
    ):
        raise ConfigError(
            f"{str(path)!r} is not a chatloom eval results file", "pass the --out of an earlier chatloom eval run"
        )
    cases_path = path.with_suffix(".cases.jsonl")
    if not cases_path.is_file():
        raise ConfigError(
            f"no per-case rows at {str(cases_path)!r} beside {str(path)!r}",
            "keep the .cases.jsonl next to its results JSON",
        )
    log = ResultsLog(cases_path)
    labels = [str(label) for label in stored["agents"]]
    results = {**stored, "cases_file": str(cases_path), "datasets": {}}
    rows_by_dataset: Rows = {}
    for name, info in stored["datasets"].items():
        ids = set(info.get("case_ids") or ())  # results written before case_ids: every row of the dataset
        rows = rows_by_dataset[name] = [
            r for r in log.rows(name) if r["agent"] in labels and (not ids or r["case"] in ids)
        ]
        results["datasets"][name] = {
            "format": info.get("format", ""),
            "cases": info.get("cases", len(ids)),
            **dataset_results(rows, labels),
        }
    return results, rows_by_dataset


def _print_judge_notes(console: Any, rows: list[dict[str, Any]]) -> None:
    """Say how many judge replies held no verdict: they count neither way, and the table alone hides them."""
    unread = [r for r in rows if "judge" in r["scores"] and r["scores"]["judge"] is None]
    if unread:
        console.print(
            f"judge: {len(unread)} of {sum('judge' in r['scores'] for r in rows)} grades held no verdict "
            f"and count neither way; e.g. case {unread[0]['case']} ({unread[0]['agent']}): "
            f"{(unread[0].get('judge') or {}).get('reason', '')}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def _default_agent() -> Any:
    from chatloom.evals import parse_agent

    spec = Path("agents") / "assistant.yaml"
    if spec.is_file():
        return parse_agent(str(spec))
    from chatloom.config import get_settings

    return parse_agent(get_settings().model)


def _run_one(
    data: Any, choices: list[Any], log: Any, concurrency: int, settings: Any, err: Any, judge: Any = None
) -> None:
    """One dataset, with a progress bar when stderr is a terminal."""
    from chatloom.evals import run_eval

    total = len(data.cases) * len(choices)
    todo = sum(not log.done(data.name, c.label, case) for case in data.cases for c in choices)
    if todo < total:  # an agent whose prompt or spec changed under the same label would not rerun
        err.print(
            f"{data.name}: {total - todo} of {total} results kept from an earlier run in {log.path} "
            "(--fresh runs them again)",
            highlight=False,
        )
    if not err.is_terminal:
        run_eval(data, choices, log, concurrency=concurrency, settings=settings, judge=judge)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(data.name, total=total, completed=total - todo)
        run_eval(
            data,
            choices,
            log,
            concurrency=concurrency,
            settings=settings,
            judge=judge,
            on_row=lambda row: progress.advance(task),
        )


def _print_table(console: Any, name: str, cases: int, labels: list[str], summary: dict[str, Any]) -> None:
    """Agents side by side: one column per agent, one row per scorer and cost measure."""
    from rich.table import Table

    from chatloom.evals.report import MEASURES, format_score, scorer_order

    present = [label for label in labels if label in summary]
    used = scorer_order(s for label in present for s in summary[label]["scores"])
    table = Table(title=f"{name} ({cases} cases)", title_justify="left")
    table.add_column("")
    for label in present:
        table.add_column(label, justify="right")
    for scorer in used:
        table.add_row(scorer, *(format_score(summary[label]["scores"].get(scorer)) for label in present))
    if used:
        table.rows[-1].end_section = True  # a rule between the scores and the costs
    for title, cell in MEASURES:
        table.add_row(title, *(cell(summary[label]) for label in present))
    console.print(table)


def _print_comparison(console: Any, comparison: dict[str, Any], show: int) -> None:
    base, other = comparison["base"], comparison["other"]
    console.print(f"{other} vs {base}, case by case ({comparison['cases']} cases):", highlight=False, soft_wrap=True)
    for scorer, c in comparison["scorers"].items():
        line = (
            f"  {scorer}: right only with {other} {c['wins']}, only with {base} {c['losses']}, "
            f"sign test p = {c['sign_test_p']:.3g}"
        )
        for label, ids in ((other, c["only_other"]), (base, c["only_base"])):
            if ids and show:
                more = f" (+{len(ids) - show} more)" if len(ids) > show else ""
                line += f"\n    only {label}: {', '.join(ids[:show])}{more}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
