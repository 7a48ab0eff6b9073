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
@click.option("-a", "--agent", "agents", multiple=True, metavar="AGENT",
              help="An agent to evaluate; repeat to compare (the first is the reference). "
                   "Default: agents/assistant.yaml if present, else the configured model.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), help="The dataset format. Default: guessed from the path.")
@click.option("--limit", type=click.IntRange(min=1), help="Only the first N cases of each dataset.")
@click.option("-j", "--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Cases run at once. A local model already uses every core; raise it for remote models.")
@click.option("-o", "--out", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_OUT, show_default=True,
              help="Results JSON; per-case rows go to OUT with the suffix .cases.jsonl as they finish.")
@click.option("--fresh", is_flag=True, help="Start over instead of continuing the cases already in the .cases.jsonl.")
@click.option("--baseline", "baseline_path", type=click.Path(dir_okay=False, path_type=Path), default=DEFAULT_BASELINE,
              show_default=True, help="The baseline file for --save-baseline and --check.")
@click.option("--save-baseline", is_flag=True, help="Store this run's scores (and their noise margins) as the baseline.")
@click.option("--check", is_flag=True, help="Exit with status 1 when any scorer falls below the baseline by more than its margin.")
@click.option("--noise-z", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="The noise margin, in standard errors of the baseline's score.")
@click.option("--show-cases", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many differing case ids to print per comparison (all of them are in the JSON).")
@click.pass_context
def eval_cmd(ctx: click.Context, datasets: tuple[Path, ...], agents: tuple[str, ...], fmt: str | None, limit: int | None,
             concurrency: int, out: Path, fresh: bool, baseline_path: Path, save_baseline: bool, check: bool,
             noise_z: float, show_cases: int) -> None:
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
    """
    from rich.console import Console

    from chatloom.config import get_settings
    from chatloom.evals import ResultsLog, compare, load_baseline, load_dataset, parse_agent, summarize
    from chatloom.evals.report import check_baseline, pairs_to_compare
    from chatloom.evals.report import save_baseline as write_baseline

    if check and save_baseline:
        raise ConfigError("--check and --save-baseline do not go together", "save a baseline first, then check against it")
    baseline = load_baseline(baseline_path) if check else None  # a missing baseline fails before the run
    choices = [parse_agent(a) for a in agents] or [_default_agent()]
    paths = list(datasets) or sorted(Path("evals").glob("*.jsonl"))
    if not paths:
        raise ConfigError("no dataset given and no evals/*.jsonl here", "pass a .jsonl file or a folder of ../shared/evaldata")
    workdir = out.parent / "documents"
    loaded = [load_dataset(p, fmt, workdir=workdir, limit=limit) for p in paths]
    names = [d.name for d in loaded]
    if len(set(names)) != len(names):
        raise ConfigError(f"two datasets are both named {next(n for n in names if names.count(n) > 1)!r}",
                          "rename one file: results are kept per dataset name")

    cases_path = out.with_suffix(".cases.jsonl")
    if fresh and cases_path.exists():
        cases_path.unlink()
    log = ResultsLog(cases_path)
    err = Console(stderr=True)
    console = Console()
    settings = get_settings()
    started = time.perf_counter()
    try:
        for data in loaded:
            _run_one(data, choices, log, concurrency, settings, err)
    except KeyboardInterrupt:
        err.print(f"interrupted: {len(log.rows())} finished rows are kept in {cases_path}; "
                  "run the same command again to continue", highlight=False)
        ctx.exit(130)

    labels = [c.label for c in choices]
    results: dict[str, Any] = {"agents": labels, "cases_file": str(cases_path), "datasets": {},
                               "seconds": round(time.perf_counter() - started, 1)}
    summaries: dict[str, dict[str, Any]] = {}
    for data in loaded:
        wanted = {c.id for c in data.cases}
        rows = [r for r in log.rows(data.name) if r["agent"] in labels and r["case"] in wanted]
        summary = summarize(rows)
        summaries[data.name] = summary
        comparisons = [compare(rows, base, other) for base, other in pairs_to_compare(labels)]
        results["datasets"][data.name] = {"format": data.format, "cases": len(data.cases), "agents": summary,
                                          "comparisons": comparisons}
        _print_table(console, data.name, len(data.cases), labels, summary)
        for comparison in comparisons:
            _print_comparison(console, comparison, show_cases)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    console.print(f"\nwrote {out} and {cases_path}", highlight=False)

    if save_baseline:
        write_baseline(baseline_path, summaries, z=noise_z)
        console.print(f"saved the baseline to {baseline_path}", highlight=False)
    if baseline is not None:
        regressions = check_baseline(baseline, summaries)
        for regression in regressions:
            err.print(f"regression: {regression}", highlight=False, soft_wrap=True)
        if regressions:
            ctx.exit(1)
        console.print(f"check passed: no scorer fell below {baseline_path} by more than its margin", highlight=False)


def _default_agent() -> Any:
    from chatloom.evals import parse_agent

    spec = Path("agents") / "assistant.yaml"
    if spec.is_file():
        return parse_agent(str(spec))
    from chatloom.config import get_settings

    return parse_agent(get_settings().model)


def _run_one(data: Any, choices: list[Any], log: Any, concurrency: int, settings: Any, err: Any) -> None:
    """One dataset, with a progress bar when stderr is a terminal."""
    from chatloom.evals import run_eval

    total = len(data.cases) * len(choices)
    todo = sum(not log.done(data.name, c.label, case) for case in data.cases for c in choices)
    if todo < total:  # an agent whose prompt or spec changed under the same label would not rerun
        err.print(f"{data.name}: {total - todo} of {total} results kept from an earlier run in {log.path} "
                  "(--fresh runs them again)", highlight=False)
    if not err.is_terminal:
        run_eval(data, choices, log, concurrency=concurrency, settings=settings)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(data.name, total=total, completed=total - todo)
        run_eval(data, choices, log, concurrency=concurrency, settings=settings,
                 on_row=lambda row: progress.advance(task))


def _fmt_score(score: dict[str, Any] | None) -> str:
    if not score:
        return "–"
    if score["binary"]:
        return f"{round(score['mean'] * score['n'])}/{score['n']} ({score['mean']:.0%})"
    return f"{score['mean']:.3f}"


def _print_table(console: Any, name: str, cases: int, labels: list[str], summary: dict[str, Any]) -> None:
    """Agents side by side: one column per agent, one row per scorer and cost measure."""
    from rich.table import Table

    from chatloom.evals.scorers import SCORERS

    present = [label for label in labels if label in summary]
    used = {s for label in present for s in summary[label]["scores"]}
    table = Table(title=f"{name} ({cases} cases)", title_justify="left")
    table.add_column("")
    for label in present:
        table.add_column(label, justify="right")
    for scorer in (s for s in SCORERS if s in used):
        table.add_row(scorer, *(_fmt_score(summary[label]["scores"].get(scorer)) for label in present))
    measures: list[tuple[str, Any]] = [
        ("mean steps", lambda m: f"{m['mean_steps']:.1f}"),
        ("tool calls", lambda m: str(m["tool_calls"])),
        ("mean tokens", lambda m: f"{m['mean_tokens']:.0f}"),
        ("cost $", lambda m: "–" if m["cost_usd"] is None else f"{m['cost_usd']:.4f}"),
        ("p50 s", lambda m: f"{m['p50_s']:.2f}"),
        ("p95 s", lambda m: f"{m['p95_s']:.2f}"),
        ("mean unsupported", lambda m: f"{m['mean_unsupported']:.2f}"),
        ("errors", lambda m: f"{m['errors']}/{m['cases']}"),
    ]
    table.rows[-1].end_section = bool(used)  # a rule between the scores and the costs
    for title, cell in measures:
        table.add_row(title, *(cell(summary[label]) for label in present))
    console.print(table)


def _print_comparison(console: Any, comparison: dict[str, Any], show: int) -> None:
    base, other = comparison["base"], comparison["other"]
    console.print(f"{other} vs {base}, case by case ({comparison['cases']} cases):", highlight=False, soft_wrap=True)
    for scorer, c in comparison["scorers"].items():
        line = (f"  {scorer}: right only with {other} {c['wins']}, only with {base} {c['losses']}, "
                f"sign test p = {c['sign_test_p']:.3g}")
        for label, ids in ((other, c["only_other"]), (base, c["only_base"])):
            if ids and show:
                more = f" (+{len(ids) - show} more)" if len(ids) > show else ""
                line += f"\n    only {label}: {', '.join(ids[:show])}{more}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
