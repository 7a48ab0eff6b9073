"""Grounding benchmark: facts, citations, abstention and tool use of the default agents (issue 10).

    python benchmarks/bench_grounding.py [--quick] [--model ID | --models a,b,c]
        [--agents default,default+tools,reference,reference-notools]
        [--sets korean_faq,korquad,general,hotpotqa,gsm8k] [--half tune|heldout|both]
        [--korean-limit N] [--korquad-limit N] [--hotpot-limit N] [--gsm8k-limit 200] [--home DIR]
        [--out FILE] [--resume] [--summarize]

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
- ``korquad``: Korean Wikipedia (KorQuAD 1.0 dev): the 40 articles of ``docs/`` ingested once into
  their own namespace; 70 answerable questions (``expected`` gold spans, ``documents`` the article)
  and 20 marked ``"unanswerable": true`` (no ``documents``, ``expected`` empty; their articles are
  not in ``docs/``). Per question: retrieval top-3 hit of the article, ``contains`` (one gold span
  in the answer, spaces ignored), citation of the article, ``correct`` = contains and cited, or,
  unanswerable, abstained and cites nothing; false abstention = answerable, abstained, no span.
- ``general``: ordinary requests (greetings, translation, writing, arithmetic, talk about the chat)
  to a bot whose memory holds the korean_faq docs: a grounded bot must still help. ``helped`` =
  a non-empty answer that is no abstention, no tool-failure text ("I stopped because", "tool calls
  kept failing", "error:") and, when ``expected_any`` is set, contains one of it (any case).
- ``hotpotqa``: each question's 10 paragraphs as files (one per title) in their own namespace;
  answer EM and token F1 (SQuAD normalisation), citation of a supporting paragraph.
- ``gsm8k``: first ``--gsm8k-limit`` questions, the agents interleaved per question; numeric match
  of the final number; paired wins/losses and a sign test of tools against no tools.

korquad and general run only the ``default`` and ``reference`` agents of ``--agents``.

On every answer: tool-call text in the answer (must be 0), and, where ``Reply`` has them, the
``grounded``, ``unsupported`` and ``route`` fields. Grounded-but-wrong (korean_faq, korquad,
hotpotqa) counts, out of all replies, those with ``grounded`` True that are wrong: answerable and
the gold fact missing (korean_faq: facts; korquad, hotpotqa: contains), or unanswerable and no
abstention. An abstention states nothing and is never counted here (on an answerable question it
is a false abstention).

Halves (a calibration split): every row of every set is in a fixed half, by a stable hash of its
id (korquad ``id``, hotpotqa ``_id``) or, for rows without one, its question text:
``half = "tune" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 0 else "heldout"``
(``_common.split_half``). ``--half`` runs one half only; a ``--*-limit`` counts rows of the file
before that filter, so a tune run and a heldout run with the same limits make up the both run.
``--quick`` runs the first case of each kind in each chosen half. The tables report each half and both.

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
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import EVALDATA, RESULTS, ROOT, percentile, split_half
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
KORQUAD = EVALDATA / "korquad"
GENERAL = EVALDATA / "general" / "requests.jsonl"
HOTPOT = EVALDATA / "hotpotqa" / "distractor_dev70.jsonl"
GSM8K = EVALDATA / "gsm8k" / "test_dev.jsonl"
SPEC = ROOT / "agents" / "assistant.yaml"
AGENTS = ("default", "default+tools", "reference", "reference-notools")
SETS = ("korean_faq", "korquad", "general", "hotpotqa", "gsm8k")
# The agents korquad and general compare: the grounded default and the reference bot.
KB_AGENTS = ("default", "reference")
HALVES = ("tune", "heldout")
# A turn that ended on a tool failure instead of helping: the graph's stop answers, a tool's "error: ...".
_FAILURE_TEXT = re.compile(r"I stopped because|tool calls kept failing|\berror:", re.IGNORECASE)
# GSM8K pairs: (with tools, without tools), compared question by question.
PAIRS = (("default+tools", "default"), ("reference", "reference-notools"))

# -- scoring ---------------------------------------------------------------------------------------


def half_of(row: dict) -> str:
    """The fixed half of a data row: by its ``id`` (korquad) or ``_id`` (hotpotqa), else its question."""
    key = row.get("id") or row.get("_id") or row.get("question") or row.get("input") or ""
    return split_half(str(key))


def contains_span(answer: str, spans: Iterable[str]) -> bool:
    """KorQuAD: the answer contains one of the gold ``spans``, spaces ignored (any case, ``[n]`` aside).

    Korean spacing varies ("1000 mAh" / "1000mAh", "보인 강" / "보인강"), so both sides lose theirs.
    """
    squeezed = [re.sub(r"\s+", "", s) for s in spans]
    squeezed = [s for s in squeezed if s]
    return bool(squeezed) and holds_facts(re.sub(r"\s+", "", answer), [squeezed])


def failure_text(answer: str) -> bool:
    """Whether the answer is (or quotes) a tool-failure message rather than help."""
    return bool(_FAILURE_TEXT.search(answer))


def helped(answer: str, expected_any: Iterable[str] | None, error: str | None = None) -> bool:
    """general: a non-empty answer, no abstention, no tool-failure text, and, when ``expected_any``
    is set, one of its strings in the answer (case-insensitive)."""
    if error or not answer.strip() or abstains(answer) or failure_text(answer):
        return False
    wanted = [e.lower() for e in expected_any or ()]
    return not wanted or any(e in answer.lower() for e in wanted)


def grounded_wrong(row: dict) -> bool:
    """A case row whose reply is marked grounded and is wrong (korean_faq, korquad, hotpotqa).

    Wrong: answerable and the gold fact missing (korean_faq ``facts``, korquad and hotpotqa
    ``contains``), or unanswerable and not abstained. An abstention states nothing, so it is
    never a wrong grounded answer: on an answerable question it is a false abstention, counted
    there. Other sets, and replies not marked grounded (False, None, errors), count as False.
    """
    if row.get("grounded") is not True or row.get("abstained"):
        return False
    if row["set"] == "korean_faq":
        answerable, right = row["kind"] != "unanswerable", row["facts"]
    elif row["set"] == "korquad":
        answerable, right = row["kind"] != "unanswerable", row["contains"]
    elif row["set"] == "hotpotqa":
        answerable, right = True, row.get("contains", contains_answer(row["answer"], row["gold"]))
    else:
        return False
    return not right if answerable else not row["abstained"]


def _cites_gold(out: dict, gold: Iterable[str], headings: dict[str, str]) -> bool:
    """Whether a gold file is cited, by file name or by the "# heading" title of its passages."""
    cited = set(out["cited"]) | {headings.get(t) for t in out["cited_titles"]}
    return any(g in cited for g in gold)


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
    route = getattr(reply, "route", None)
    return {
        "answer": answer[-600:],
        "error": error,
        "seconds": round(seconds, 2),
        "tool_text": has_tool_text(answer),
        "tool_calls": len(reply.tool_steps) if reply is not None else 0,
        "stop": reply.stop_reason if reply is not None else "error",
        "grounded": None if grounded is None else bool(grounded),
        "unsupported": None if unsupported is None else [str(s) for s in unsupported],
        "route": None if route is None else str(route),
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


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _pick(
    rows: list[dict], limit: int | None, half: str, kind: Callable[[dict], str], quick: dict[str, int] | None = None
) -> list[tuple[int, dict]]:
    """(1-based file index, row) of the first ``limit`` rows that are in ``half``; with ``quick``, only
    the first ``quick.get(kind, 1)`` of each kind in each half. Round-robin over the kinds, so that a
    run stopped early still has some of every kind."""
    picked = [(i, r) for i, r in enumerate(rows[:limit] if limit else rows, 1) if half in ("both", half_of(r))]
    if quick is not None:
        seen: Counter[tuple[str, str]] = Counter()
        for i, r in list(picked):
            seen[kind(r), half_of(r)] += 1
            if seen[kind(r), half_of(r)] > quick.get(kind(r), 1):
                picked.remove((i, r))
    by_kind: dict[str, list[tuple[int, dict]]] = {}
    for i, r in picked:
        by_kind.setdefault(kind(r), []).append((i, r))
    return [p for group in itertools.zip_longest(*by_kind.values()) for p in group if p is not None]


def _headings(docs_dir: Path) -> dict[str, str]:
    """Each document's "# heading", should a passage or citation name it by title, not by file."""
    return {
        f.read_text(encoding="utf-8").partition("\n")[0].lstrip("# ").strip(): f.name
        for f in sorted(docs_dir.glob("*.md"))
    }


def _docs_memory(settings: Any, data_dir: Path) -> tuple[Any, str, Path, dict[str, str]]:
    """The docs of a set ingested into their own namespace: (memory, namespace, docs dir, headings)."""
    from chatloom.memory import open_memory

    docs_dir = data_dir / "docs" if (data_dir / "docs").is_dir() else data_dir / "knowledge"
    namespace = "bench-" + re.sub(r"[^a-z0-9]+", "-", data_dir.name.lower()).strip("-")
    memory = open_memory(settings, namespace=namespace)
    memory.ingest([docs_dir])
    return memory, namespace, docs_dir, _headings(docs_dir)


def _top3(memory: Any, question: str, gold: Iterable[str], headings: dict[str, str]) -> bool:
    found = memory.recall(question, k=3)
    docs = {Path(p.source).name for p in found} | {headings.get(getattr(p, "title", "")) for p in found}
    return any(g in docs for g in gold)


def _kb_agents(set_name: str, agents: list[str]) -> list[str]:
    picked = [a for a in agents if a in KB_AGENTS]
    if not picked:
        print(f"skipped {set_name}: it runs only the agents {', '.join(KB_AGENTS)}", file=sys.stderr)
    return picked


def _turns(
    model: str,
    set_name: str,
    agents: list[str],
    picked: Iterable[tuple[int, dict]],
    question: str,
    cases: Cases,
    make: Callable[[str], Any],
) -> Iterator[tuple[int, dict, Any, dict]]:
    """(i, row, reply or None, case row) for each case and agent not done yet: one turn through
    the agent ``make(name)`` builds (once per name), the case row holding the common fields.
    ``question`` is the row's key for the question. The caller adds its scores, then the row."""
    built: dict[str, Any] = {}
    for i, row in picked:
        for name in agents:
            if (model, set_name, name, i) in cases.done:
                continue

            def build(name: str = name) -> Any:
                if name not in built:
                    built[name] = make(name)
                return built[name]

            reply, error, seconds = run_turn(build, row[question])
            out = common_fields(reply, error, seconds)
            out.update(model=model, set=set_name, agent=name, i=i, half=half_of(row), question=row[question])
            yield i, row, reply, out


def run_korean(
    model: str,
    agents: list[str],
    limit: int | None,
    quick: bool,
    half: str,
    settings: Any,
    cases: Cases,
    retrieval: dict,
) -> None:
    rows = _jsonl(KOREAN / "questions.jsonl")
    picked = _pick(
        rows, limit, half, lambda r: r["kind"], {} if quick else None
    )  # quick: the first of each kind and half
    memory, namespace, _, headings = _docs_memory(settings, KOREAN)
    for i, row in picked:
        if row["gold_doc"]:
            retrieval[i] = (half_of(row), _top3(memory, row["question"], [row["gold_doc"]], headings))
    for i, row, reply, out in _turns(
        model, "korean_faq", agents, picked, "question", cases, lambda name: make_agent(name, model, memory, namespace)
    ):
        answer = reply.answer if reply is not None else ""
        gold = row["gold_doc"]
        facts = holds_facts(answer, row["facts_all_of_any"]) if gold else None
        abstained = abstains(answer) if reply is not None else False
        out.update(
            kind=row["kind"],
            facts=facts,
            abstained=abstained,
            retrieval_top3=retrieval[i][1] if i in retrieval else None,
            gold_cited=_cites_gold(out, [gold], headings) if gold else None,
            false_abstention=(abstained and not facts) if gold else None,
            correct=bool(facts) if gold else abstained,
        )
        cases.add(out)
    memory.close()


def _korquad_kind(row: dict) -> str:
    return "unanswerable" if row.get("unanswerable") or not row.get("documents") else "answerable"


def run_korquad(
    model: str,
    agents: list[str],
    limit: int | None,
    quick: bool,
    half: str,
    settings: Any,
    cases: Cases,
    retrieval: dict,
) -> None:
    agents = _kb_agents("korquad", agents)
    if not agents:
        return
    # quick: the first answerable question and the first unanswerable one of each half
    picked = _pick(_jsonl(KORQUAD / "questions.jsonl"), limit, half, _korquad_kind, {} if quick else None)
    memory, namespace, _, headings = _docs_memory(settings, KORQUAD)
    for i, row in picked:
        if _korquad_kind(row) == "answerable":
            retrieval[i] = (half_of(row), _top3(memory, row["input"], row["documents"], headings))
    for i, row, reply, out in _turns(
        model, "korquad", agents, picked, "input", cases, lambda name: make_agent(name, model, memory, namespace)
    ):
        answer = reply.answer if reply is not None else ""
        answerable = _korquad_kind(row) == "answerable"
        abstained = abstains(answer) if reply is not None else False
        has = contains_span(answer, row["expected"]) if answerable else None
        cited = _cites_gold(out, row["documents"], headings) if answerable else None
        out.update(
            id=row["id"],
            kind=_korquad_kind(row),
            expected=row["expected"],
            contains=has,
            gold_cited=cited,
            abstained=abstained,
            retrieval_top3=retrieval[i][1] if i in retrieval else None,
            false_abstention=(abstained and not has) if answerable else None,
            correct=bool(has and cited) if answerable else (abstained and not out["cited"]),
        )
        cases.add(out)
    memory.close()


def run_general(model: str, agents: list[str], quick: bool, half: str, settings: Any, cases: Cases) -> None:
    agents = _kb_agents("general", agents)
    if not agents:
        return
    picked = _pick(
        _jsonl(GENERAL), None, half, lambda r: r["kind"], {} if quick else None
    )  # quick: one per kind and half
    # A grounded bot over the Korean FAQ: the requests are not about it, and it must still help.
    memory, namespace, _, _ = _docs_memory(settings, KOREAN)
    for _, row, reply, out in _turns(
        model, "general", agents, picked, "input", cases, lambda name: make_agent(name, model, memory, namespace)
    ):
        answer = reply.answer if reply is not None else ""
        ok = helped(answer, row["expected_any"], out["error"])
        out.update(
            kind=row["kind"],
            expected_any=row["expected_any"],
            abstained=abstains(answer) if reply is not None else False,
            failure_text=failure_text(answer),
            helped=ok,
            correct=ok,
        )
        cases.add(out)
    memory.close()


def run_hotpot(
    model: str,
    agents: list[str],
    limit: int | None,
    quick: bool,
    half: str,
    settings: Any,
    cases: Cases,
    work: Path,
) -> None:
    from chatloom.memory import open_memory

    picked = _pick(_jsonl(HOTPOT), limit, half, lambda r: "all", {"all": 1} if quick else None)
    for i, row in picked:
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
        for _, _, reply, out in _turns(
            model,
            "hotpotqa",
            todo,
            [(i, row)],
            "question",
            cases,
            lambda name, memory=memory, namespace=namespace: make_agent(name, model, memory, namespace),
        ):
            answer = reply.answer if reply is not None else ""
            em = exact_match(answer, row["answer"]) if reply is not None else False
            out.update(
                gold=row["answer"],
                em=em,
                f1=round(token_f1(answer, row["answer"]), 4) if reply is not None else 0.0,
                contains=contains_answer(answer, row["answer"]),
                abstained=abstains(answer) if reply is not None else False,
                # By file name, or by the passage title should sources stop being file paths.
                support_cited=any(titles.get(c) in support for c in out["cited"])
                or any(t in support for t in out["cited_titles"]),
                correct=em,
            )
            cases.add(out)
        memory.close()


def run_gsm8k(model: str, agents: list[str], limit: int, quick: bool, half: str, cases: Cases) -> None:
    picked = _pick(_jsonl(GSM8K), limit, half, lambda r: "all", {} if quick else None)
    for _, row, reply, out in _turns(
        model, "gsm8k", agents, picked, "question", cases, lambda name: make_agent(name, model)
    ):
        gold = gold_answer(row["answer"])
        guess = predicted(reply.answer) if reply is not None else None
        out.update(
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


def route_counts(rs: Iterable[dict]) -> dict[str, int]:
    """How many replies took each route, most first (``"none"``: no route, e.g. a Reply without one)."""
    return dict(Counter(r.get("route") or "none" for r in rs).most_common())


def _agent_metrics(set_name: str, a: list[dict]) -> dict[str, Any]:
    """The metrics of one agent's rows of one set (all of them, or one half's)."""
    med, p95 = _seconds(a)
    m: dict[str, Any] = {
        "n": len(a),
        "errors": sum(bool(r["error"]) for r in a),
        "tool_text": sum(r["tool_text"] for r in a),
        "tool_calls": sum(r["tool_calls"] for r in a),
        "grounded": _share(r["grounded"] for r in a),
        "routes": route_counts(a),
        "median_s": med,
        "p95_s": p95,
    }
    if set_name in ("korean_faq", "korquad", "hotpotqa"):
        # Out of all replies: an error or an ungrounded reply counts in n, never in k.
        m["grounded_wrong"] = (sum(grounded_wrong(r) for r in a), len(a))
        # The precision of `grounded`: of the replies marked grounded that state something (not
        # an abstention), the share that is right.
        claims = [r for r in a if r.get("grounded") is True and not r.get("abstained")]
        m["grounded_precision"] = (sum(not grounded_wrong(r) for r in claims), len(claims))
    if set_name == "korean_faq":
        answerable = [r for r in a if r["kind"] != "unanswerable"]
        m["facts"] = _share(r["facts"] for r in answerable)
        for kind in ("lookup", "multistep", "english"):
            m[f"facts_{kind}"] = _share(r["facts"] for r in answerable if r["kind"] == kind)
        m["gold_cited"] = _share(r["gold_cited"] for r in answerable)
        m["abstention"] = _share(r["abstained"] for r in a if r["kind"] == "unanswerable")
        m["false_abstention"] = _share(r["false_abstention"] for r in answerable)
    elif set_name == "korquad":
        answerable = [r for r in a if r["kind"] != "unanswerable"]
        unanswerable = [r for r in a if r["kind"] == "unanswerable"]
        m["correct_answerable"] = _share(r["correct"] for r in answerable)
        m["contains"] = _share(r["contains"] for r in answerable)
        m["gold_cited"] = _share(r["gold_cited"] for r in answerable)
        m["false_abstention"] = _share(r["false_abstention"] for r in answerable)
        m["abstention"] = _share(r["abstained"] for r in unanswerable)
        m["correct_unanswerable"] = _share(r["correct"] for r in unanswerable)
    elif set_name == "general":
        m["helped"] = _share(r["helped"] for r in a)
        m["helped_by_kind"] = {
            kind: _share(r["helped"] for r in a if r["kind"] == kind) for kind in dict.fromkeys(r["kind"] for r in a)
        }
        m["abstained"] = _share(r["abstained"] for r in a)
        m["failure_text"] = _share(r["failure_text"] for r in a)
    elif set_name == "hotpotqa":
        m["em"] = _share(r["em"] for r in a)
        m["f1"] = round(statistics.fmean(r["f1"] for r in a), 4)
        # Rows of runs before this column: computed from the stored answer (its last 600 characters).
        m["contains"] = _share(r.get("contains", contains_answer(r["answer"], r["gold"])) for r in a)
        m["abstained"] = _share(abstains(r["answer"]) for r in a)
        m["support_cited"] = _share(r["support_cited"] for r in a)
    else:
        m["correct"] = _share(r["correct"] for r in a)
    return m


def _set_entry(set_name: str, rs: list[dict], hits: dict[int, tuple[str | None, bool]]) -> dict:
    """The metrics per agent of some rows of one set, with the retrieval hits of their questions."""
    per: dict[str, dict] = {}
    for agent in dict.fromkeys(r["agent"] for r in rs):
        per[agent] = _agent_metrics(set_name, sorted((r for r in rs if r["agent"] == agent), key=lambda r: r["i"]))
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
    entry: dict[str, Any] = {"agents": per}
    if set_name in ("korean_faq", "korquad"):
        entry["retrieval_top3"] = _share(hit for _, hit in hits.values())
    return entry


def summarize(rows: list[dict], retrieval: dict[str, dict]) -> dict:
    """Per model and set: the metrics per agent, as printed in the tables.

    ``out[model][set]`` holds ``agents`` (agent: metrics) over all rows and ``halves``: the same
    entry per half (``tune``, ``heldout``) of the rows that have one (rows of older runs may not).
    ``retrieval[model][set]`` maps a question's index to (half, top-3 hit); the rows' own
    ``retrieval_top3`` fill in the questions it lacks.
    """
    out: dict = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        for set_name in SETS:
            rs = [r for r in rows if r["model"] == model and r["set"] == set_name]
            if not rs:
                continue
            hits: dict[int, tuple[str | None, bool]] = {
                r["i"]: (r.get("half"), r["retrieval_top3"]) for r in rs if r.get("retrieval_top3") is not None
            }
            hits.update(retrieval.get(model, {}).get(set_name, {}))
            entry = _set_entry(set_name, rs, hits)
            entry["halves"] = {}
            for half in HALVES:
                part = [r for r in rs if r.get("half") == half]
                if part:
                    entry["halves"][half] = _set_entry(set_name, part, {i: h for i, h in hits.items() if h[0] == half})
            out.setdefault(model, {})[set_name] = entry
    return out


def _fmt(pair: tuple[int, int]) -> str:
    k, n = pair
    return f"{k}/{n} ({k / n:.0%})" if n else "n/a"


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return _fmt(tuple(value))
    if isinstance(value, dict):  # route counts, or shares per kind
        return ", ".join(f"{k} {v[0]}/{v[1]}" if isinstance(v, (list, tuple)) else f"{k} {v}" for k, v in value.items())
    return str(value)


# Per set: (column, metric key) after "agent", "half" and "n"; the common columns follow.
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "korean_faq": [
        ("facts", "facts"),
        ("lookup", "facts_lookup"),
        ("multistep", "facts_multistep"),
        ("english", "facts_english"),
        ("gold cited", "gold_cited"),
        ("abstain (unans.)", "abstention"),
        ("false abstain", "false_abstention"),
        ("grounded but wrong", "grounded_wrong"),
        ("grounded precision", "grounded_precision"),
        ("routes", "routes"),
    ],
    "korquad": [
        ("contains+cited (ans.)", "correct_answerable"),
        ("contains", "contains"),
        ("gold cited", "gold_cited"),
        ("false abstain (ans.)", "false_abstention"),
        ("abstained (unans.)", "abstention"),
        ("abstained, cites nothing (unans.)", "correct_unanswerable"),
        ("grounded but wrong", "grounded_wrong"),
        ("grounded precision", "grounded_precision"),
        ("routes", "routes"),
    ],
    "general": [
        ("helped", "helped"),
        ("helped per kind", "helped_by_kind"),
        ("abstained", "abstained"),
        ("tool-failure text", "failure_text"),
        ("routes", "routes"),
    ],
    "hotpotqa": [
        ("EM", "em"),
        ("F1", "f1"),
        ("answer contains gold", "contains"),
        ("supporting cited", "support_cited"),
        ("abstained", "abstained"),
        ("grounded but wrong", "grounded_wrong"),
        ("grounded precision", "grounded_precision"),
        ("routes", "routes"),
    ],
    "gsm8k": [("correct", "correct"), ("tool calls", "tool_calls"), ("routes", "routes")],
}


def _replies(entry: dict) -> int:
    return sum(m["n"] for m in entry["agents"].values())


def print_tables(summary: dict) -> None:
    total_text = total = 0
    for model, sets in summary.items():
        for set_name, entry in sets.items():
            halves = entry.get("halves", {})
            # Each half, then both together (the same numbers as the one half when only one ran).
            parts = [(h, halves[h]) for h in HALVES if h in halves]
            if not (len(parts) == 1 and _replies(parts[0][1]) == _replies(entry)):
                parts.append(("both", entry))
            print(f"\n### {set_name}, model {model}\n")
            if "retrieval_top3" in entry:
                hits = ", ".join(f"{h} {_fmt(tuple(e['retrieval_top3']))}" for h, e in parts)
                print(f"Retrieval top-3 hit of the gold document (`recall(q, k=3)`): {hits}\n")
            cols = COLUMNS[set_name]
            head = ["agent", "half", "n"] + [c for c, _ in cols] + ["tool text", "grounded", "errors", "s p50", "s p95"]
            print("| " + " | ".join(head) + " |")
            print("|" + "---|" * len(head))
            for agent in entry["agents"]:
                for half, part in parts:
                    m = part["agents"].get(agent)
                    if m is None:
                        continue
                    cells = [agent, half, str(m["n"])] + [_cell(m[k]) for _, k in cols]
                    cells += [
                        f"{m['tool_text']}/{m['n']}",
                        _fmt(tuple(m["grounded"])),
                        str(m["errors"]),
                        f"{m['median_s']}",
                        f"{m['p95_s']}",
                    ]
                    print("| " + " | ".join(cells) + " |")
            for agent, m in entry["agents"].items():
                total_text += m["tool_text"]
                total += m["n"]
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
    parser.add_argument(
        "--half",
        choices=("tune", "heldout", "both"),
        default="both",
        help="run (or, with --summarize, report) only the rows of one half of every set (default: both)",
    )
    parser.add_argument("--korean-limit", type=int, help="first N korean_faq questions (default: all 20)")
    parser.add_argument("--korquad-limit", type=int, help="first N korquad questions (default: all 90)")
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
        rows = Cases(cases_path, resume=True).rows
        print_tables(summarize([r for r in rows if args.half in ("both", r.get("half"))], {}))
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
                    hits = retrieval.setdefault(model, {}).setdefault("korean_faq", {})
                    run_korean(model, agents, args.korean_limit, args.quick, args.half, settings, cases, hits)
                else:
                    print(f"skipped korean_faq: {KOREAN} is absent", file=sys.stderr)
            if "korquad" in sets:
                if (KORQUAD / "questions.jsonl").exists():
                    hits = retrieval.setdefault(model, {}).setdefault("korquad", {})
                    run_korquad(model, agents, args.korquad_limit, args.quick, args.half, settings, cases, hits)
                else:
                    print(f"skipped korquad: {KORQUAD} is absent", file=sys.stderr)
            if "general" in sets:
                if GENERAL.exists() and (KOREAN / "questions.jsonl").exists():
                    run_general(model, agents, args.quick, args.half, settings, cases)
                else:
                    print(f"skipped general: {GENERAL} or the korean_faq docs are absent", file=sys.stderr)
            if "hotpotqa" in sets:
                if HOTPOT.exists():
                    run_hotpot(model, agents, args.hotpot_limit, args.quick, args.half, settings, cases, Path(tmp.name))
                else:
                    print(f"skipped hotpotqa: {HOTPOT} is absent", file=sys.stderr)
            if "gsm8k" in sets:
                if GSM8K.exists():
                    run_gsm8k(model, agents, args.gsm8k_limit, args.quick, args.half, cases)
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
                "half": args.half,
                "limits": {
                    "korean_faq": args.korean_limit,
                    "korquad": args.korquad_limit,
                    "hotpotqa": args.hotpot_limit,
                    "gsm8k": args.gsm8k_limit,
                },
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
