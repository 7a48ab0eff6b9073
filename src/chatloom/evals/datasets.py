"""Evaluation datasets: what a case is, and the adapters that read each file format into cases.

Formats (``load_dataset(path, format=None)`` picks one from the path when not given):

- ``jsonl``: the file users write, one case a line:
  ``{"input": "...", "expected": "...", "documents": ["docs/"], "unanswerable": false}``.
  Optional keys: ``id``, ``regex``, ``facts`` (groups of strings; every group needs one),
  ``gold_documents`` (file names whose passages hold the answer), ``scorers`` (names from
  :data:`~chatloom.evals.scorers.SCORERS`), ``allowed_tools``, ``secrets``. ``documents`` paths
  are relative to the file and are ingested into one namespace for the whole dataset.
- ``gsm8k``: ``{"question", "answer": "... #### N"}``, scored by the final number.
- ``hotpotqa``: the distractor set; each case's ten paragraphs become files in their own namespace.
- ``korean_faq``: a folder with ``questions.jsonl`` and ``docs/``, ingested once.
- ``bipia``: a folder with ``email_train.jsonl`` and ``text_attack_train.json``: each email gets
  one planted attack instruction and goes into its case's own namespace as a document, so it
  reaches the agent the way injected text does, through retrieval.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatloom.errors import ConfigError
from chatloom.evals.scorers import SCORERS

__all__ = ["FORMATS", "Case", "Dataset", "detect_format", "load_dataset"]

FORMATS = ("jsonl", "gsm8k", "hotpotqa", "korean_faq", "bipia")


@dataclass(frozen=True)
class Case:
    """One question and what a good answer to it looks like."""

    id: str
    input: str
    expected: str | None = None
    scorers: tuple[str, ...] = ()
    namespace: str | None = None
    """Memory namespace holding this case's documents; None: the agent's own memory, if any."""
    documents: tuple[Path, ...] = ()
    """Files or folders to ingest into ``namespace`` before the case runs."""
    gold_sources: tuple[str, ...] = ()
    """File names or titles of the passages that hold the answer (for ``cited_gold``)."""
    unanswerable: bool = False
    facts: tuple[tuple[str, ...], ...] = ()
    regex: str | None = None
    allowed_tools: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    kind: str = ""


@dataclass(frozen=True)
class Dataset:
    """Named cases; ``name`` keys results and baselines."""

    name: str
    format: str
    cases: tuple[Case, ...] = field(default=())


# -- reading ---------------------------------------------------------------------------------------


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; a bad line is a one-line error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"can't read dataset {str(path)!r}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{str(path)!r} is not UTF-8 text", "save it as UTF-8 JSONL") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})", "fix or remove that line"
            ) from None
        if not isinstance(row, dict):
            raise ConfigError(
                f"{path}:{number}: expected a JSON object, got {type(row).__name__}",
                'write one {"input": ..., "expected": ...} object per line',
            )
        yield number, row


def detect_format(path: Path) -> str:
    """The adapter for ``path``: by folder contents for the shared sets, else by file name."""
    if path.is_dir():
        if (path / "questions.jsonl").exists():
            return "korean_faq"
        if (path / "email_train.jsonl").exists():
            return "bipia"
        if (path / "test_dev.jsonl").exists():
            return "gsm8k"
        if any(path.glob("distractor_*.jsonl")):
            return "hotpotqa"
        raise ConfigError(
            f"can't tell the dataset format of folder {str(path)!r}",
            f"pass --format ({', '.join(FORMATS)}) or a .jsonl file",
        )
    lowered = path.name.lower()
    for fmt, hint in (("gsm8k", "gsm8k"), ("hotpotqa", "hotpot"), ("bipia", "bipia")):
        if hint in lowered or hint in path.parent.name.lower():
            return fmt
    return "jsonl"


def load_dataset(path: str | Path, format: str | None = None, *, workdir: Path, limit: int | None = None) -> Dataset:
    """Read ``path`` into a :class:`Dataset`; ``workdir`` receives generated document files.

    ``limit`` keeps the first N cases. Errors are :class:`~chatloom.errors.ConfigError` with the
    file and line.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"dataset {str(path)!r} does not exist", "pass a .jsonl file or a folder of ../shared/evaldata"
        )
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown dataset format {fmt!r}", f"choose one of {', '.join(FORMATS)}")
    name = _slug(path.stem if path.is_file() else path.name)
    reader = {"jsonl": _plain, "gsm8k": _gsm8k, "hotpotqa": _hotpot, "korean_faq": _korean, "bipia": _bipia}[fmt]
    cases = tuple(itertools.islice(reader(path, name, workdir), limit))
    if not cases:
        raise ConfigError(f"dataset {str(path)!r} has no cases", "add at least one line")
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        twice = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise ConfigError(f"dataset {str(path)!r} repeats case id(s) {twice}", "give every case its own id")
    return Dataset(name=name, format=fmt, cases=cases)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "dataset"


def _strings(value: Any, where: str, key: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(f"{where}: {key!r} must be a string or a list of strings, got {value!r}")


def _plain(path: Path, name: str, workdir: Path) -> Iterator[Case]:
    base = path.parent
    namespace = f"eval-{name}"
    known = {
        "id",
        "input",
        "expected",
        "documents",
        "unanswerable",
        "regex",
        "facts",
        "gold_documents",
        "scorers",
        "allowed_tools",
        "secrets",
        "kind",
    }
    for number, row in _rows(path):
        where = f"{path}:{number}"
        unknown = sorted(set(row) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}", f"use {', '.join(sorted(known))}")
        question = row.get("input")
        if not isinstance(question, str) or not question.strip():
            raise ConfigError(f"{where}: 'input' must be a non-empty string", 'write {"input": "your question", ...}')
        expected = row.get("expected")
        if expected is not None and not isinstance(expected, (str, int, float)):
            raise ConfigError(f"{where}: 'expected' must be a string or a number, got {expected!r}")
        expected = None if expected is None else str(expected)
        documents = tuple((base / d).resolve() for d in _strings(row.get("documents"), where, "documents"))
        missing = [str(d) for d in documents if not d.exists()]
        if missing:
            raise ConfigError(
                f"{where}: document {missing[0]!r} does not exist", "paths are relative to the dataset file"
            )
        facts = row.get("facts") or []
        if not (
            isinstance(facts, list) and all(isinstance(g, list) and all(isinstance(s, str) for s in g) for g in facts)
        ):
            raise ConfigError(f'{where}: \'facts\' must be a list of lists of strings, e.g. [["14", "fourteen"]]')
        case = Case(
            id=str(row.get("id", number)),
            input=question,
            expected=expected,
            namespace=namespace if documents else None,
            documents=documents,
            gold_sources=_strings(row.get("gold_documents"), where, "gold_documents"),
            unanswerable=bool(row.get("unanswerable", False)),
            facts=tuple(tuple(g) for g in facts),
            regex=row.get("regex"),
            allowed_tools=_strings(row.get("allowed_tools"), where, "allowed_tools"),
            secrets=_strings(row.get("secrets"), where, "secrets"),
            kind=str(row.get("kind", "")),
        )
        if case.regex is not None:
            try:
                re.compile(case.regex)
            except re.error as exc:
                raise ConfigError(f"{where}: bad 'regex' {case.regex!r}: {exc}") from None
        chosen = _strings(row.get("scorers"), where, "scorers") or _default_scorers(case)
        unknown = [s for s in chosen if s not in SCORERS]
        if unknown:
            raise ConfigError(f"{where}: unknown scorer(s) {unknown}", f"choose from {', '.join(SCORERS)}")
        yield _with(case, scorers=chosen)


def _with(case: Case, **changes: Any) -> Case:
    from dataclasses import replace

    return replace(case, **changes)


def _is_number(text: str | None) -> bool:
    return (
        text is not None and re.fullmatch(r"\s*-?\$?[\d,]*\.?\d+\s*|.*####\s*-?[\d,.]+\s*", text, re.DOTALL) is not None
    )


def _default_scorers(case: Case) -> tuple[str, ...]:
    """What a plain JSONL case is scored on when it names no scorers: whatever its fields allow."""
    names: list[str] = []
    if case.expected is not None:
        names += ["numeric"] if _is_number(case.expected) else ["exact", "contains", "f1"]
    if case.regex:
        names.append("regex")
    if case.facts:
        names.append("facts")
    if case.unanswerable:
        names.append("abstained")
    if case.documents:
        names.append("supported")
        if case.gold_sources:
            names.append("cited_gold")
    return tuple(names) + ("no_leak", "no_tool_text")


def _gsm8k(path: Path, name: str, workdir: Path) -> Iterator[Case]:
    file = path / "test_dev.jsonl" if path.is_dir() else path
    for number, row in _rows(file):
        if "question" not in row or "####" not in str(row.get("answer", "")):
            raise ConfigError(f"{file}:{number}: a GSM8K row needs 'question' and an 'answer' ending in '#### N'")
        yield Case(
            id=str(number), input=row["question"], expected=str(row["answer"]), scorers=("numeric", "no_tool_text")
        )


def file_title(title: str, taken: set[str]) -> str:
    """A file name for a HotpotQA paragraph title, unique among ``taken``."""
    base = re.sub(r"[^\w\- .,()']", "_", title).strip(" .")[:80] or "untitled"
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    taken.add(name)
    return name


def write_paragraphs(folder: Path, paragraphs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Write (title, text) paragraphs as ``# title`` markdown files; returns file name -> title."""
    folder.mkdir(parents=True, exist_ok=True)
    titles: dict[str, str] = {}
    taken: set[str] = set()
    for title, text in paragraphs:
        name = file_title(title, taken)
        (folder / f"{name}.md").write_text(f"# {title}\n\n{text.strip()}\n", encoding="utf-8")
        titles[f"{name}.md"] = title
    return titles


def _hotpot(path: Path, name: str, workdir: Path) -> Iterator[Case]:
    file = next(iter(sorted(path.glob("distractor_*.jsonl")))) if path.is_dir() else path
    for number, row in _rows(file):
        case_id = str(row.get("_id") or number)
        folder = workdir / name / f"q{number:03d}"
        titles = write_paragraphs(folder, ((t, "".join(s)) for t, s in row["context"]))
        support = {t for t, _ in row["supporting_facts"]}
        # A citation names its passage by file name or by title; either counts.
        gold = tuple(sorted({f for f, t in titles.items() if t in support} | support))
        yield Case(
            id=case_id,
            input=row["question"],
            expected=str(row["answer"]),
            namespace=f"eval-{name}-{number:03d}",
            documents=(folder,),
            gold_sources=gold,
            scorers=("exact", "f1", "contains", "cited_gold", "supported", "no_tool_text"),
            kind=row.get("type", ""),
        )


def _korean(path: Path, name: str, workdir: Path) -> Iterator[Case]:
    docs = path / "docs" if (path / "docs").is_dir() else path / "knowledge"
    # A citation may name a document by its "# heading" rather than by its file.
    headings = {
        f.name: f.read_text(encoding="utf-8").partition("\n")[0].lstrip("# ").strip() for f in sorted(docs.glob("*.md"))
    }
    for number, row in _rows(path / "questions.jsonl"):
        gold = row.get("gold_doc")
        unanswerable = gold is None
        yield Case(
            id=str(number),
            input=row["question"],
            namespace=f"eval-{name}",
            documents=(docs,),
            gold_sources=() if gold is None else tuple(filter(None, (gold, headings.get(gold)))),
            unanswerable=unanswerable,
            facts=tuple(tuple(g) for g in row.get("facts_all_of_any") or []),
            scorers=("facts", "abstained", "cited_gold", "supported", "no_tool_text"),
            kind=row.get("kind", ""),
        )


def _bipia(path: Path, name: str, workdir: Path) -> Iterator[Case]:
    emails = path / "email_train.jsonl"
    attacks_file = path / "text_attack_train.json"
    try:
        table = json.loads(attacks_file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"can't read BIPIA attacks {str(attacks_file)!r}: {exc}") from None
    attacks = [(kind, text) for kind, texts in table.items() for text in texts]
    for number, row in _rows(emails):
        kind, attack = attacks[(number - 1) % len(attacks)]
        # Planted in the middle of the email, where BIPIA's "middle" position puts it.
        context = str(row["context"])
        cut = len(context) // 2
        email = f"{context[:cut]}\n{attack}\n{context[cut:]}"
        folder = workdir / name / f"e{number:03d}"
        write_paragraphs(folder, [(f"Email {number}", email)])
        question = str(row["question"]).removeprefix("Q: ").strip()
        ideal = str(row.get("ideal", ""))
        yield Case(
            id=str(number),
            input=question,
            expected=None if ideal == "unknown" else ideal,
            namespace=f"eval-{name}-{number:03d}",
            documents=(folder,),
            scorers=("no_unapproved_calls", "no_leak", "no_tool_text"),
            kind=kind,
        )
