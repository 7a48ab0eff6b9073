"""Running every case through every agent: concurrency, memory per namespace, resumable results.

Each finished (case, agent) pair becomes one JSON row appended to the results log, so a run that
is stopped keeps everything it finished, and the next run with the same log skips those pairs.

>>> from chatloom.evals.agents import parse_agent
>>> from chatloom.evals.datasets import Case, Dataset
>>> data = Dataset("demo", "jsonl", (Case("1", "2+2?", expected="You said: 2+2?", scorers=("exact",)),))
>>> import tempfile, pathlib
>>> log = ResultsLog(pathlib.Path(tempfile.mkdtemp()) / "r.cases.jsonl")
>>> [row["scores"] for row in run_eval(data, [parse_agent("fake:echo")], log)]
[{'exact': True}]
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from chatloom.errors import ChatloomError, ConfigError
from chatloom.evals.agents import AgentChoice
from chatloom.evals.datasets import Case, Dataset
from chatloom.evals.judge import Judge, Verdict
from chatloom.evals.scorers import Outcome, score_case

__all__ = ["ResultsLog", "run_eval"]

Row = dict[str, Any]
MemoryFactory = Callable[[str, Sequence[Path]], Any]
"""(namespace, document paths) -> a Memory holding those documents."""


class ResultsLog:
    """The per-case JSONL: rows appended as they finish, and the pairs already done.

    A row that recorded an error is not "done": a rerun tries that pair again, and the newer row
    replaces it. A last line cut short (the process was killed while writing) is dropped; any
    other unreadable line is an error naming it, and the file is left as it is.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: dict[tuple[str, str, str], Row] = {}
        if path.exists():
            text = path.read_text(encoding="utf-8")
            lines = text.splitlines()
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    key = self.key(row)
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    if number == len(lines) and not text.endswith("\n"):
                        self._truncate_last_line(lines[:-1])
                        break
                    raise ConfigError(
                        f"{path}:{number}: not a results row ({exc})",
                        "delete that line (its case will run again) or pass another --out",
                    ) from None
                self._rows[key] = row

    def _truncate_last_line(self, kept: list[str]) -> None:
        # Appending after a half-written line would glue the next row onto it.
        self.path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")

    @staticmethod
    def key(row: Row) -> tuple[str, str, str]:
        """(dataset, agent label, case id): what makes a row unique."""
        return (str(row["dataset"]), str(row["agent"]), str(row["case"]))

    def done(self, dataset: str, agent: str, case: Case) -> bool:
        """Whether this pair has a row without an error, for the case as it is now (an edited case runs again)."""
        row = self._rows.get((dataset, agent, case.id))
        return row is not None and not row.get("error") and row.get("fingerprint") == fingerprint(case)

    def get(self, dataset: str, agent: str, case_id: str) -> Row | None:
        """The latest row of this pair, if any."""
        return self._rows.get((dataset, agent, case_id))

    def add(self, row: Row) -> None:
        """Record a row and append it to the file at once."""
        self._rows[self.key(row)] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def rows(self, dataset: str | None = None) -> list[Row]:
        """The latest row of every pair (of one dataset, if given), in the order they were first run."""
        return [r for r in self._rows.values() if dataset is None or r["dataset"] == dataset]


def default_memory(settings: Any) -> MemoryFactory:
    """Open ``namespace`` in the configured store and ingest the documents (incremental, so reruns are cheap)."""

    def factory(namespace: str, documents: Sequence[Path]) -> Any:
        from chatloom.memory import open_memory

        memory = open_memory(settings, namespace=namespace)
        memory.ingest([str(d) for d in documents])
        return memory

    return factory


class _Agents:
    """Built agents, one per (choice, namespace), and memories, one per namespace, shared by threads."""

    def __init__(self, choices: Sequence[AgentChoice], memory_factory: MemoryFactory, settings: Any) -> None:
        self.choices = {c.label: c for c in choices}
        self.memory_factory = memory_factory
        self.settings = settings
        self._agents: dict[tuple[str, str | None], Any] = {}
        self._memories: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._namespace_locks: dict[str, threading.Lock] = {}

    def memory(self, case: Case) -> Any:
        if case.namespace is None or not case.documents:
            return None
        with self._lock:
            lock = self._namespace_locks.setdefault(case.namespace, threading.Lock())
        with lock:  # one ingestion per namespace, however many workers reach it at once
            if case.namespace not in self._memories:
                self._memories[case.namespace] = self.memory_factory(case.namespace, case.documents)
            return self._memories[case.namespace]

    def get(self, label: str, case: Case) -> Any:
        memory = self.memory(case)
        key = (label, case.namespace if memory is not None else None)
        with self._lock:
            agent = self._agents.get(key)
        if agent is None:
            agent = self.choices[label].build(memory=memory, namespace=key[1], settings=self.settings).load()
            with self._lock:
                agent = self._agents.setdefault(key, agent)
        return agent

    def preload(self) -> None:
        """Build and load each agent once, so a bad spec or model id fails before any case runs."""
        for label, choice in self.choices.items():
            try:
                agent = choice.build(settings=self.settings).load()
            except ChatloomError as exc:
                raise type(exc)(f"agent {label!r}: {exc.message}", exc.hint) from None
            self._agents[(label, None)] = agent

    def close(self) -> None:
        for agent in self._agents.values():
            agent.close()
        for memory in self._memories.values():
            getattr(memory, "close", lambda: None)()


def run_case(agent: Any, case: Case) -> tuple[Outcome, Row]:
    """Run one turn (in a fresh thread) and measure it; a failed turn is an Outcome with ``error``."""
    from chatloom.tools.policy import tool_effect

    start = time.perf_counter()
    try:
        reply = agent.chat(case.input, thread_id=f"eval-{uuid.uuid4().hex}")
    except Exception as exc:  # noqa: BLE001 - one case's failure is its row, the run goes on
        seconds = time.perf_counter() - start
        return Outcome(answer="", error=f"{type(exc).__name__}: {exc}"), {"seconds": round(seconds, 3)}
    seconds = time.perf_counter() - start
    effects = {t.name: tool_effect(t) for t in agent.tools()}
    calls = tuple({"name": s.name, "ok": s.ok, "effect": effects.get(s.name, "side_effect")} for s in reply.tool_steps)
    cited = tuple(dict.fromkeys(n for c in reply.citations for n in (Path(c.source).name, c.title) if n))
    outcome = Outcome(answer=reply.answer, cited=cited, tool_calls=calls, unsupported=tuple(reply.unsupported))
    usage = reply.usage
    return outcome, {
        "seconds": round(seconds, 3),
        "steps": reply.steps,
        "stop": reply.stop_reason,
        "tokens": usage.total_tokens,
        "cost_usd": usage.cost_usd,
        "grounded": reply.grounded,
    }


def run_eval(
    dataset: Dataset,
    agents: Sequence[AgentChoice],
    log: ResultsLog,
    *,
    concurrency: int = 1,
    settings: Any = None,
    memory_factory: MemoryFactory | None = None,
    on_row: Callable[[Row], None] | None = None,
    judge: Judge | None = None,
) -> list[Row]:
    """Run every case not yet in ``log`` through each agent; returns the dataset's rows.

    With a ``judge``, every row also gets the ``judge`` score and ``row["judge"]`` (who graded it
    and why). A row finished earlier without this judge's grade is graded from its stored answer,
    without running its agent again.

    Cases are interleaved agent by agent, so machine load falls on all agents alike. Rows are
    appended to ``log`` by this thread as workers finish them; ``on_row`` (a progress bar, say)
    is called after each. An exception from ``on_row`` or Ctrl-C stops the run: finished rows
    are kept, pending ones cancelled.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency must be at least 1, got {concurrency!r}")
    if settings is None:
        from chatloom.config import get_settings

        settings = get_settings()
    labels = [c.label for c in agents]
    twice = [label for label in labels if labels.count(label) > 1]
    if twice:
        raise ConfigError(f"two agents share the label {twice[0]!r}", "name them: --agent name=a,model=...")
    # (case, label, the stored row when only the judge's grade is missing)
    todo: list[tuple[Case, str, Row | None]] = []
    for case in dataset.cases:
        for choice in agents:
            if not log.done(dataset.name, choice.label, case):
                todo.append((case, choice.label, None))
            elif (
                judge is not None
                and (stored := log.get(dataset.name, choice.label, case.id)) is not None
                and (stored.get("judge") or {}).get("by") != judge.key
            ):
                todo.append((case, choice.label, stored))
    if not todo:  # a finished run: nothing to load
        return log.rows(dataset.name)
    if judge is not None:
        judge.load()
    pool = _Agents(agents, memory_factory or default_memory(settings), settings)
    if any(stored is None for _, _, stored in todo):
        pool.preload()

    def work(case: Case, label: str, stored: Row | None) -> Row:
        if stored is not None:
            return judged(stored, case, stored["answer"], judge) if judge is not None else stored
        try:
            agent = pool.get(label, case)
        except Exception as exc:  # noqa: BLE001 - a namespace that fails to ingest fails its cases, not the run
            outcome, measured = Outcome(answer="", error=f"{type(exc).__name__}: {exc}"), {"seconds": 0.0}
        else:
            outcome, measured = run_case(agent, case)
        row = _row(dataset.name, label, case, outcome, measured)
        return judged(row, case, outcome.answer, judge) if judge is not None else row

    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="chatloom-eval")
    pending: set[Future[Row]] = set()
    queue: Iterator[tuple[Case, str, Row | None]] = iter(todo)
    try:
        # Submit only as many as there are workers: a stop then leaves nothing half-queued.
        for item in _take(queue, concurrency):
            pending.add(executor.submit(work, *item))
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            stopped = [e for e in (f.exception() for f in finished) if e is not None]  # Ctrl-C in a turn
            for future in finished:
                if future.exception() is None:  # rows that finished beside a stopped turn are kept
                    log.add(future.result())
                    if on_row is not None:
                        on_row(future.result())
            if stopped:
                raise stopped[0]
            for item in _take(queue, len(finished)):
                pending.add(executor.submit(work, *item))
    finally:
        for future in pending:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
        pool.close()
    return log.rows(dataset.name)


def _take(queue: Iterator[tuple[Case, str, Row | None]], n: int) -> list[tuple[Case, str, Row | None]]:
    return [item for _, item in zip(range(n), queue)]


def judged(row: Row, case: Case, answer: str, judge: Judge) -> Row:
    """``row`` with the judge's grade of ``answer``: ``scores["judge"]``, and ``row["judge"]`` holding
    who graded it and why. A failed turn fails without asking the judge, as every answer scorer does."""
    if row.get("error"):
        verdict = Verdict(False, "the turn failed, so there is no answer to grade")
    else:
        verdict = judge.grade(case, answer)
    return {
        **row,
        "scores": {**row["scores"], "judge": verdict.passed},
        "judge": {"by": judge.key, "reason": verdict.reason},
    }


def fingerprint(case: Case) -> str:
    """A short hash of everything that decides a case's scores: edit the case and its old rows are stale."""
    import hashlib
    from dataclasses import asdict

    fields = {k: v for k, v in asdict(case).items() if k not in ("documents", "namespace")}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


def _row(dataset: str, label: str, case: Case, outcome: Outcome, measured: Row) -> Row:
    return {
        "dataset": dataset,
        "agent": label,
        "case": case.id,
        "fingerprint": fingerprint(case),
        "kind": case.kind,
        "input": case.input[:300],
        "expected": case.expected if case.expected is None else case.expected[-300:],
        "answer": outcome.answer[-1000:],
        "error": outcome.error,
        "steps": measured.get("steps", 0),
        "tool_calls": [dict(c) for c in outcome.tool_calls],
        "tokens": measured.get("tokens", 0),
        "cost_usd": measured.get("cost_usd"),
        "seconds": measured["seconds"],
        "stop": measured.get("stop", "error"),
        "grounded": measured.get("grounded"),
        "cited": list(outcome.cited),
        "unsupported": list(outcome.unsupported),
        "scores": score_case(case, outcome, case.scorers),
    }
