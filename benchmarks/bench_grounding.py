"""Grounding benchmark: facts, citations, abstention and tool use of the default agents (issue 10).

    python benchmarks/bench_grounding.py [--quick] [--model ID | --models a,b,c]
        [--agents default,default+tools,reference,reference-notools] [--sets korean_faq,hotpotqa,gsm8k]
        [--korean-limit N] [--hotpot-limit N] [--gsm8k-limit 200] [--home DIR] [--out FILE] [--resume]
        [--summarize]

Everything goes through the public API with the default settings and the user-facing prompts:

- ``default``: ``Agent(memory=m)`` on the grounding sets, ``Agent()`` on GSM8K;
- ``default+tools``: the same with ``tools=["calculator"]``;
- ``reference``: ``Agent.from_spec("agents/assistant.yaml", memory=m, namespace=...)``, the repo's
  reference bot (``memory=None`` on GSM8K), and ``reference-notools``: the same with ``tools=[]``.

The model is the configured default unless ``--model`` is given; ``--models`` repeats the whole run
per model (to choose the default). Every answer runs in a fresh thread of an in-process checkpointer.

Sets (from ``../shared/evaldata``; a missing set is skipped with a message):

- ``korean_faq``: the docs are ingested once into their own namespace. Per question: retrieval
  top-3 hit of ``gold_doc`` (``m.recall(question, k=3)``), facts (every group of
  ``facts_all_of_any`` has one of its strings in the answer), citation of the gold document,
  abstention on unanswerable rows (an "I don't know" phrase and no digit outside ``[n]`` markers)
  and false abstention on answerable ones (the phrase and no fact), seconds per answer.
- ``hotpotqa``: each question's 10 paragraphs as files (one per title) in their own namespace;
  answer EM and token F1 (SQuAD normalisation), citation of a supporting paragraph.
- ``gsm8k``: first ``--gsm8k-limit`` questions, the agents interleaved per question; numeric match
  of the final number; paired wins/losses and a sign test of tools against no tools.

On every answer: tool-call text in the answer (must be 0), and, where ``Reply`` has them, the
``grounded`` and ``unsupported`` fields.

By default the data dir is a temporary one whose ``models/`` links to the real data dir's, so the
user's memory stores are untouched. Per-case rows are appended to ``<out>.cases.jsonl`` as they
finish; ``--resume`` skips the cases already there, ``--summarize`` only prints the tables.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import EVALDATA, RESULTS, ROOT, percentile
from bench_gsm8k_tools import gold_answer, paired, predicted, sign_test

# The scorers live once, in the library that `chatloom eval` runs; tests/benchmarks checks them here too.
from chatloom.evals.datasets import file_title, write_paragraphs  # noqa: F401
from chatloom.evals.scorers import (  # noqa: F401
    abstains,
    contains_answer,
    exact_match,
    has_tool_text,
    holds_facts,
    normalize_answer,
    token_f1,
)

KOREAN = EVALDATA / "korean_faq"
HOTPOT = EVALDATA / "hotpotqa" / "distractor_dev70.jsonl"
GSM8K = EVALDATA / "gsm8k" / "test_dev.jsonl"
SPEC = ROOT / "agents" / "assistant.yaml"
AGENTS = ("default", "default+tools", "reference", "reference-notools")
SETS = ("korean_faq", "hotpotqa", "gsm8k")
# GSM8K pairs: (with tools, without tools), compared question by question.
PAIRS = (("default+tools", "default"), ("reference", "reference-notools"))

# -- agents --------------------------------------------------------------------------------------


def make_agent(name: str, model: str | None, memory: Any = None, namespace: str | None = None) -> Any:
    """The measured agent ``name``; ``memory`` None means no memory (GSM8K)."""
    from chatloom import Agent

    common: dict[str, Any] = {"checkpointer": "memory"}
    if model:
        common["model"] = model
    if name in ("default", "default+tools"):
        if memory is not None:
            common["memory"] = memory
        tools = ["calculator"] if name == "default+tools" else []
        return Agent(tools=tools, **common).load()
    overrides: dict[str, Any] = {"memory": memory, **common}
    if memory is not None and namespace is not None:
        overrides["namespace"] = namespace
    if name == "reference-notools":
        overrides["tools"] = []
    return Agent.from_spec(SPEC, **overrides).load()


def run_turn(build: Callable[[], Any], question: str) -> tuple[Any, str | None, float]:
    """(reply or None, error message or None, seconds of the chat call). Never raises."""
    try:
        agent = build()
    except Exception as exc:  # noqa: BLE001 - a failed set-up is this case's failure, the run goes on
        return None, f"{type(exc).__name__}: {exc}", 0.0
    start = time.perf_counter()
    try:
        reply = agent.chat(question, thread_id=f"bench-{uuid.uuid4().hex}")
        return reply, None, time.perf_counter() - start
    except Exception as exc:  # noqa: BLE001 - a failed turn is this case's result, the run goes on
        return None, f"{type(exc).__name__}: {exc}", time.perf_counter() - start


def common_fields(reply: Any, error: str | None, seconds: float) -> dict[str, Any]:
    answer = reply.answer if reply is not None else ""
    grounded = getattr(reply, "grounded", None)
    unsupported = getattr(reply, "unsupported", None)
    return {
        "answer": answer[-600:],
        "error": error,
        "seconds": round(seconds, 2),
        "tool_text": has_tool_text(answer),
        "tool_calls": len(reply.tool_steps) if reply is not None else 0,
        "stop": reply.stop_reason if reply is not None else "error",
        "grounded": None if grounded is None else bool(grounded),
        "unsupported": None if unsupported is None else [str(s) for s in unsupported],
        "cited": [Path(c.source).name for c in reply.citations] if reply is not None else [],
        "cited_titles": [getattr(c, "title", "") for c in reply.citations] if reply is not None else [],
    }


# -- the run ---------------------------------------------------------------------------------------


class Cases:
    """The per-case JSONL: rows appended as they finish, and the keys already done."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        self.rows: list[dict] = []
        if resume and path.exists():
            self.rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        elif not resume:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("", encoding="utf-8")
        self.done = {self.key(r) for r in self.rows}

    @staticmethod
    def key(r: dict) -> tuple:
        return (r["model"], r["set"], r["agent"], r["i"])

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.done.add(self.key(row))
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
        mark = "ok" if row["correct"] else ("ERROR" if row["error"] else "wrong")
        print(
            f"[{row['set']}] {row['model']} {row['agent']} #{row['i']}: {mark} ({row['seconds']:.1f} s)"
            + (f" {row['error'][:120]}" if row["error"] else ""),
            file=sys.stderr,
            flush=True,
        )


def run_korean(
    model: str, agents: list[str], limit: int | None, quick: bool, settings: Any, cases: Cases, retrieval: dict
) -> None:
    from chatloom.memory import open_memory

    rows = [
        json.loads(line)
        for line in (KOREAN / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    picked = list(enumerate(rows, 1))
    if quick:  # the first question of each kind
        firsts: dict[str, tuple[int, dict]] = {}
        for i, r in picked:
            firsts.setdefault(r["kind"], (i, r))
        picked = sorted(firsts.values(), key=lambda p: p[0])
    elif limit:
        picked = picked[:limit]
    # Round-robin over the kinds, so a run stopped early still has some of every kind.
    by_kind: dict[str, list[tuple[int, dict]]] = {}
    for i, r in picked:
        by_kind.setdefault(r["kind"], []).append((i, r))
    picked = [p for group in itertools.zip_longest(*by_kind.values()) for p in group if p is not None]
    docs_dir = KOREAN / "docs" if (KOREAN / "docs").is_dir() else KOREAN / "knowledge"
    namespace = "bench-" + re.sub(r"[^a-z0-9]+", "-", KOREAN.name.lower()).strip("-")
    memory = open_memory(settings, namespace=namespace)
    memory.ingest([docs_dir])
    # Each document's "# heading", should a passage or citation name it by title, not by file.
    headings = {
        f.read_text(encoding="utf-8").partition("\n")[0].lstrip("# ").strip(): f.name
        for f in sorted(docs_dir.glob("*.md"))
    }
    for i, row in picked:
        if row["gold_doc"]:
            found = memory.recall(row["question"], k=3)
            docs = {Path(p.source).name for p in found} | {headings.get(getattr(p, "title", "")) for p in found}
            retrieval[i] = row["gold_doc"] in docs
    built: dict[str, Any] = {}
    for i, row in picked:
        for name in agents:
            if (model, "korean_faq", name, i) in cases.done:
                continue

            def build(name: str = name) -> Any:
                if name not in built:
                    built[name] = make_agent(name, model, memory, namespace)
                return built[name]

            reply, error, seconds = run_turn(build, row["question"])
            out = common_fields(reply, error, seconds)
            answer = reply.answer if reply is not None else ""
            gold = row["gold_doc"]
            facts = holds_facts(answer, row["facts_all_of_any"]) if gold else None
            abstained = abstains(answer) if reply is not None else False
            out.update(
                model=model,
                set="korean_faq",
                agent=name,
                i=i,
                kind=row["kind"],
                question=row["question"],
                facts=facts,
                abstained=abstained,
                retrieval_top3=retrieval.get(i),
                gold_cited=(gold in out["cited"] or gold in {headings.get(t) for t in out["cited_titles"]})
                if gold
                else None,
                false_abstention=(abstained and not facts) if gold else None,
                correct=bool(facts) if gold else abstained,
            )
            cases.add(out)
    memory.close()


def run_hotpot(model: str, agents: list[str], limit: int | None, settings: Any, cases: Cases, work: Path) -> None:
    from chatloom.memory import open_memory

    rows = [json.loads(line) for line in HOTPOT.read_text(encoding="utf-8").splitlines() if line.strip()][:limit]
    for i, row in enumerate(rows, 1):
        todo = [n for n in agents if (model, "hotpotqa", n, i) not in cases.done]
        if not todo:
            continue
        qdir = work / "hotpot" / f"q{i:03d}"
        qdir.mkdir(parents=True, exist_ok=True)
        titles = write_paragraphs(qdir, ((title, "".join(sentences)) for title, sentences in row["context"]))
        namespace = f"bench-hotpot-{i:03d}"
        memory = open_memory(settings, namespace=namespace)
        memory.ingest([qdir])
        support = {t for t, _ in row["supporting_facts"]}
        for name in todo:
            reply, error, seconds = run_turn(
                lambda name=name, memory=memory, namespace=namespace: make_agent(name, model, memory, namespace),
                row["question"],
            )
            out = common_fields(reply, error, seconds)
            answer = reply.answer if reply is not None else ""
            em = exact_match(answer, row["answer"]) if reply is not None else False
            out.update(
                model=model,
                set="hotpotqa",
                agent=name,
                i=i,
                question=row["question"],
                gold=row["answer"],
                em=em,
                f1=round(token_f1(answer, row["answer"]), 4) if reply is not None else 0.0,
                contains=contains_answer(answer, row["answer"]),
                # By file name, or by the passage title should sources stop being file paths.
                support_cited=any(titles.get(c) in support for c in out["cited"])
                or any(t in support for t in out["cited_titles"]),
                correct=em,
            )
            cases.add(out)
        memory.close()


def run_gsm8k(model: str, agents: list[str], limit: int, cases: Cases) -> None:
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines()[:limit]]
    built: dict[str, Any] = {}
    for i, row in enumerate(rows, 1):
        gold = gold_answer(row["answer"])
        for name in agents:
            if (model, "gsm8k", name, i) in cases.done:
                continue

            def build(name: str = name) -> Any:
                if name not in built:
                    built[name] = make_agent(name, model)
                return built[name]

            reply, error, seconds = run_turn(build, row["question"])
            out = common_fields(reply, error, seconds)
            guess = predicted(reply.answer) if reply is not None else None
            out.update(
                model=model,
                set="gsm8k",
                agent=name,
                i=i,
                gold=str(gold),
                predicted=None if guess is None else str(guess),
                correct=guess == gold,
            )
            cases.add(out)


# -- the report ----------------------------------------------------------------------------------


def _share(flags: Iterable[Any]) -> tuple[int, int]:
    values = [bool(f) for f in flags if f is not None]
    return sum(values), len(values)


def _seconds(rs: list[dict]) -> tuple[float, float]:
    s = [r["seconds"] for r in rs if not r["error"]] or [0.0]
    return round(statistics.median(s), 1), round(percentile(s, 95), 1)


def summarize(rows: list[dict], retrieval: dict[str, dict]) -> dict:
    """Per model and set: the metrics per agent, as printed in the tables."""
    out: dict = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for set_name in SETS:
            rs = [r for r in rows if r["model"] == model and r["set"] == set_name]
            if not rs:
                continue
            per: dict[str, dict] = {}
            for agent in dict.fromkeys(r["agent"] for r in rs):
                a = sorted((r for r in rs if r["agent"] == agent), key=lambda r: r["i"])
                med, p95 = _seconds(a)
                m: dict[str, Any] = {
                    "n": len(a),
                    "errors": sum(bool(r["error"]) for r in a),
                    "tool_text": sum(r["tool_text"] for r in a),
                    "tool_calls": sum(r["tool_calls"] for r in a),
                    "grounded": _share(r["grounded"] for r in a),
                    "median_s": med,
                    "p95_s": p95,
                }
                if set_name == "korean_faq":
                    answerable = [r for r in a if r["kind"] != "unanswerable"]
                    m["facts"] = _share(r["facts"] for r in answerable)
                    for kind in ("lookup", "multistep", "english"):
                        m[f"facts_{kind}"] = _share(r["facts"] for r in answerable if r["kind"] == kind)
                    m["gold_cited"] = _share(r["gold_cited"] for r in answerable)
                    m["abstention"] = _share(r["abstained"] for r in a if r["kind"] == "unanswerable")
                    m["false_abstention"] = _share(r["false_abstention"] for r in answerable)
                elif set_name == "hotpotqa":
                    m["em"] = _share(r["em"] for r in a)
                    m["f1"] = round(statistics.fmean(r["f1"] for r in a), 4)
                    # Rows of runs before this column: computed from the stored answer (its last 600 characters).
                    m["contains"] = _share(r.get("contains", contains_answer(r["answer"], r["gold"])) for r in a)
                    m["abstained"] = _share(abstains(r["answer"]) for r in a)
                    m["support_cited"] = _share(r["support_cited"] for r in a)
                else:
                    m["correct"] = _share(r["correct"] for r in a)
                per[agent] = m
            if set_name == "gsm8k":
                for tools, plain in PAIRS:
                    if tools in per and plain in per:
                        by_i = {agent: {r["i"]: r for r in rs if r["agent"] == agent} for agent in (tools, plain)}
                        both = sorted(set(by_i[tools]) & set(by_i[plain]))
                        wins, losses = paired([by_i[plain][i] for i in both], [by_i[tools][i] for i in both])
                        per[tools]["vs"] = {
                            "other": plain,
                            "questions": len(both),
                            "wins": wins,
                            "losses": losses,
                            "sign_test_p": sign_test(wins, losses),
                        }
            entry = {"agents": per}
            if set_name == "korean_faq":
                hits = retrieval.get(model) or {
                    r["i"]: r["retrieval_top3"] for r in rs if r["retrieval_top3"] is not None
                }
                entry["retrieval_top3"] = _share(hits.values())
            out.setdefault(model, {})[set_name] = entry
    return out


def _fmt(pair: tuple[int, int]) -> str:
    k, n = pair
    return f"{k}/{n} ({k / n:.0%})" if n else "n/a"


def print_tables(summary: dict) -> None:
    total_text = total = 0
    for model, sets in summary.items():
        for set_name, entry in sets.items():
            per = entry["agents"]
            print(f"\n### {set_name}, model {model}\n")
            if set_name == "korean_faq":
                print(f"Retrieval top-3 hit of gold_doc (`recall(q, k=3)`): {_fmt(tuple(entry['retrieval_top3']))}\n")
                head = [
                    "agent",
                    "facts",
                    "lookup",
                    "multistep",
                    "english",
                    "gold cited",
                    "abstain (unans.)",
                    "false abstain",
                    "tool text",
                    "grounded",
                    "errors",
                    "s median",
                    "s p95",
                ]
                keys = [
                    "facts",
                    "facts_lookup",
                    "facts_multistep",
                    "facts_english",
                    "gold_cited",
                    "abstention",
                    "false_abstention",
                ]
            elif set_name == "hotpotqa":
                head = [
                    "agent",
                    "EM",
                    "F1",
                    "answer contains gold",
                    "supporting cited",
                    "abstained",
                    "tool text",
                    "grounded",
                    "errors",
                    "s median",
                    "s p95",
                ]
                keys = ["em", "f1", "contains", "support_cited", "abstained"]
            else:
                head = ["agent", "correct", "tool calls", "tool text", "grounded", "errors", "s median", "s p95"]
                keys = ["correct", "tool_calls"]
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for agent, m in per.items():
                cells = [agent] + [_fmt(tuple(m[k])) if isinstance(m[k], (list, tuple)) else str(m[k]) for k in keys]
                cells += [
                    f"{m['tool_text']}/{m['n']}",
                    _fmt(tuple(m["grounded"])),
                    str(m["errors"]),
                    f"{m['median_s']}",
                    f"{m['p95_s']}",
                ]
                print("| " + " | ".join(cells) + " |")
                total_text += m["tool_text"]
                total += m["n"]
            for agent, m in per.items():
                if "vs" in m:
                    v = m["vs"]
                    print(
                        f"\n{agent} vs {v['other']} on the same {v['questions']} questions: right only with "
                        f"{agent} {v['wins']}, only with {v['other']} {v['losses']}, two-sided sign test p = {v['sign_test_p']:.3g}"
                    )
    print(f"\nAnswers containing tool-call text: {total_text} of {total} (target: 0)")


def _temporary_home(stack: tempfile.TemporaryDirectory) -> Path:
    """A fresh data dir whose models/ links to the real one (no model is copied or re-installed)."""
    from chatloom import get_settings

    real_models = get_settings().data_dir() / "models"
    real_models.mkdir(parents=True, exist_ok=True)
    home = Path(stack.name) / "home"
    home.mkdir()
    (home / "models").symlink_to(real_models, target_is_directory=True)
    return home


def main() -> int:
    global KOREAN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few cases per set")
    parser.add_argument("--model", help="a model id (default: the configured default model)")
    parser.add_argument("--models", help="comma-separated model ids; the whole run is repeated per model")
    parser.add_argument("--agents", default=",".join(AGENTS), help=f"comma-separated, from: {', '.join(AGENTS)}")
    parser.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, from: {', '.join(SETS)}")
    parser.add_argument("--korean-limit", type=int, help="first N korean_faq questions (default: all 20)")
    parser.add_argument(
        "--korean-dir",
        type=Path,
        default=KOREAN,
        help="another set in the korean_faq format: questions.jsonl plus docs/ or knowledge/ (e.g. examples/hr_bot_ko)",
    )
    parser.add_argument("--hotpot-limit", type=int, default=70)
    parser.add_argument("--gsm8k-limit", type=int, default=200)
    parser.add_argument("--home", help="data dir to use (default: a temporary one, models linked from the real one)")
    parser.add_argument(
        "--out", default=str(RESULTS / "grounding.json"), help="summary JSON; cases go to <out>.cases.jsonl"
    )
    parser.add_argument("--resume", action="store_true", help="keep the cases already in the JSONL, run the rest")
    parser.add_argument("--summarize", action="store_true", help="only print the tables from the JSONL")
    args = parser.parse_args()

    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    bad = [a for a in agents if a not in AGENTS] + [s for s in sets if s not in SETS]
    if bad or not agents or not sets:
        parser.error(f"unknown agent(s) or set(s) {bad}; agents: {', '.join(AGENTS)}; sets: {', '.join(SETS)}")
    out_path = Path(args.out)
    cases_path = out_path.with_suffix(".cases.jsonl")
    if args.summarize:
        if not cases_path.exists():
            parser.error(f"{cases_path} does not exist; run the benchmark first")
        print_tables(summarize(Cases(cases_path, resume=True).rows, {}))
        return 0
    if not EVALDATA.exists():
        print(f"skipped: the evaluation data {EVALDATA} is absent", file=sys.stderr)
        return 0

    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    tmp = tempfile.TemporaryDirectory(prefix="bench-grounding-")
    if args.home:
        os.environ["CHATLOOM_HOME"] = str(Path(args.home).expanduser())
    else:
        os.environ["CHATLOOM_HOME"] = str(_temporary_home(tmp))
    from chatloom import get_settings

    settings = get_settings()
    models = [m.strip() for m in (args.models or args.model or settings.model).split(",") if m.strip()]
    KOREAN = args.korean_dir.resolve()
    cases = Cases(cases_path, resume=args.resume)
    retrieval: dict[str, dict] = {}
    started = time.time()
    load_start = os.getloadavg()[0]
    try:
        for model in models:
            if "korean_faq" in sets:
                if (KOREAN / "questions.jsonl").exists():
                    run_korean(
                        model, agents, args.korean_limit, args.quick, settings, cases, retrieval.setdefault(model, {})
                    )
                else:
                    print(f"skipped korean_faq: {KOREAN} is absent", file=sys.stderr)
            if "hotpotqa" in sets:
                if HOTPOT.exists():
                    run_hotpot(model, agents, 1 if args.quick else args.hotpot_limit, settings, cases, Path(tmp.name))
                else:
                    print(f"skipped hotpotqa: {HOTPOT} is absent", file=sys.stderr)
            if "gsm8k" in sets:
                if GSM8K.exists():
                    run_gsm8k(model, agents, 2 if args.quick else args.gsm8k_limit, cases)
                else:
                    print(f"skipped gsm8k: {GSM8K} is absent", file=sys.stderr)
    finally:
        tmp.cleanup()
    summary = summarize(cases.rows, retrieval)
    print_tables(summary)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(
        json.dumps(
            {
                "models": models,
                "agents": agents,
                "sets": sets,
                "quick": args.quick,
                "limits": {"korean_faq": args.korean_limit, "hotpotqa": args.hotpot_limit, "gsm8k": args.gsm8k_limit},
                "minutes": round((time.time() - started) / 60, 1),
                "load_avg": [load_start, os.getloadavg()[0]],
                "cpu_count": os.cpu_count(),
                "summary": summary,
                "cases": str(cases_path),
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"\nwrote {out_path} and {cases_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
