"""Dataset adapters: the plain JSONL users write (and its errors), and the shared evaldata sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatloom.errors import ConfigError
from chatloom.evals.datasets import detect_format, load_dataset

EVALDATA = Path(__file__).resolve().parents[2].parent / "shared" / "evaldata"
needs_evaldata = pytest.mark.skipif(not EVALDATA.is_dir(), reason=f"{EVALDATA} is absent")


def write_jsonl(path: Path, *rows: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_plain_jsonl_cases_and_their_default_scorers(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "leave.md").write_text("# Leave\n\n25 days a year.")
    path = write_jsonl(
        tmp_path / "My Evals.jsonl",
        {"input": "How many leave days?", "expected": "25", "documents": ["docs/"], "gold_documents": "leave.md"},
        {"input": "Capital of France?", "expected": "Paris", "id": "france"},
        "",  # blank lines are fine
        {"input": "Where is HQ?", "unanswerable": True, "documents": "docs/leave.md"},
        {"input": "Say 391", "regex": r"\b391\b", "scorers": ["regex"]},
    )
    data = load_dataset(path, workdir=tmp_path / "work")
    assert data.name == "my-evals" and data.format == "jsonl"
    first, france, hq, regex = data.cases
    assert (
        first.id == "1" and first.namespace == "eval-my-evals" and first.documents == ((tmp_path / "docs").resolve(),)
    )
    assert first.scorers == ("numeric", "supported", "cited_gold", "no_leak", "no_tool_text")
    assert france.id == "france" and france.namespace is None
    assert france.scorers == ("exact", "contains", "f1", "no_leak", "no_tool_text")
    assert hq.id == "4" and hq.unanswerable and "abstained" in hq.scorers and hq.namespace == "eval-my-evals"
    assert regex.scorers == ("regex",)
    assert len(load_dataset(path, workdir=tmp_path, limit=2).cases) == 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"input": "a", "expected": "b"', r"bad\.jsonl:2: invalid JSON \(Expecting ',' delimiter at column 31\)"),
        ('["input"]', r"bad\.jsonl:2: expected a JSON object, got list"),
        ('{"question": "a"}', r"bad\.jsonl:2: unknown key\(s\) \['question'\]"),
        ('{"input": ""}', r"bad\.jsonl:2: 'input' must be a non-empty string"),
        ('{"input": "a", "scorers": ["bleu"]}', r"bad\.jsonl:2: unknown scorer\(s\) \['bleu'\]"),
        ('{"input": "a", "documents": ["nowhere/"]}', r"bad\.jsonl:2: document .*nowhere' does not exist"),
        ('{"input": "a", "regex": "("}', r"bad\.jsonl:2: bad 'regex'"),
        ('{"input": "a", "facts": ["14"]}', r"bad\.jsonl:2: 'facts' must be a list of lists"),
        ('{"input": "a", "expected": ["x"]}', r"bad\.jsonl:2: 'expected' must be a string or a number"),
        ('{"input": "b", "id": "1"}', r"repeats case id\(s\) \['1'\]"),
    ],
)
def test_a_bad_line_is_one_error_naming_it(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", {"input": "ok", "expected": "fine"}, line)
    with pytest.raises(ConfigError, match=message) as info:
        load_dataset(path, workdir=tmp_path)
    assert "\n" not in str(info.value)


def test_missing_and_empty_datasets(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(tmp_path / "nope.jsonl", workdir=tmp_path)
    with pytest.raises(ConfigError, match="has no cases"):
        load_dataset(write_jsonl(tmp_path / "empty.jsonl", ""), workdir=tmp_path)
    with pytest.raises(ConfigError, match="unknown dataset format 'csv'"):
        load_dataset(write_jsonl(tmp_path / "x.jsonl", {"input": "a"}), "csv", workdir=tmp_path)


def test_format_is_guessed_from_the_path(tmp_path):
    assert detect_format(tmp_path / "smoke.jsonl") == "jsonl"
    assert detect_format(tmp_path / "gsm8k" / "test_dev.jsonl") == "gsm8k"
    assert detect_format(tmp_path / "hotpotqa" / "distractor_dev70.jsonl") == "hotpotqa"
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "questions.jsonl").write_text("")
    assert detect_format(tmp_path / "faq") == "korean_faq"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="can't tell the dataset format"):
        detect_format(tmp_path / "empty")


@needs_evaldata
def test_gsm8k_cases_are_scored_by_the_final_number(tmp_path):
    data = load_dataset(EVALDATA / "gsm8k", workdir=tmp_path, limit=3)
    assert data.format == "gsm8k" and len(data.cases) == 3
    assert all(c.scorers == ("numeric", "no_tool_text") and "####" in (c.expected or "") for c in data.cases)
    assert load_dataset(EVALDATA / "gsm8k" / "test_dev.jsonl", workdir=tmp_path, limit=1).format == "gsm8k"


@needs_evaldata
def test_hotpotqa_paragraphs_go_to_one_namespace_per_case(tmp_path):
    data = load_dataset(EVALDATA / "hotpotqa", workdir=tmp_path, limit=2)
    one, two = data.cases
    assert one.namespace != two.namespace
    files = sorted(p.name for p in one.documents[0].glob("*.md"))
    assert len(files) == 10
    # A supporting paragraph is known by its file and by its title.
    assert "VIVA Media" in one.gold_sources and "VIVA Media.md" in one.gold_sources
    assert one.expected == "Gesellschaft mit beschränkter Haftung" and "f1" in one.scorers


@needs_evaldata
def test_korean_faq_docs_are_shared_and_unanswerables_marked(tmp_path):
    data = load_dataset(EVALDATA / "korean_faq", workdir=tmp_path)
    assert len(data.cases) == 20 and {c.namespace for c in data.cases} == {"eval-korean-faq"}
    unanswerable = [c for c in data.cases if c.unanswerable]
    assert unanswerable and all(not c.gold_sources for c in unanswerable)
    first = data.cases[0]
    assert first.gold_sources[0] == "회원가입.md" and first.facts == (("14세", "14살", "14"),)


@needs_evaldata
def test_bipia_plants_an_attack_in_each_email(tmp_path):
    data = load_dataset(EVALDATA / "bipia", workdir=tmp_path, limit=2)
    attacks = json.loads((EVALDATA / "bipia" / "text_attack_train.json").read_text())
    first_attack = next(iter(attacks.values()))[0]
    email = next(data.cases[0].documents[0].glob("*.md")).read_text()
    assert first_attack in email and "Mercury" in email
    assert data.cases[0].scorers == ("no_unapproved_calls", "no_leak", "no_tool_text")
    assert data.cases[0].namespace != data.cases[1].namespace
    assert not data.cases[0].input.startswith("Q:")


def test_init_scaffolds_an_eval_file_that_loads(tmp_path, monkeypatch, capsys):
    from chatloom.cli.main import run

    monkeypatch.chdir(tmp_path)
    assert run(["init", "bot"]) == 0
    assert "created  bot/evals/smoke.jsonl" in capsys.readouterr().out
    data = load_dataset(tmp_path / "bot" / "evals" / "smoke.jsonl", workdir=tmp_path / "work")
    arithmetic, hours, unknown = data.cases
    assert arithmetic.scorers[0] == "numeric" and arithmetic.expected == "391"
    assert hours.documents == ((tmp_path / "bot" / "memory" / "about.md").resolve(),) and "cited_gold" in hours.scorers
    assert unknown.unanswerable and "abstained" in unknown.scorers and "{bot}" not in unknown.input
