from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from memhelpers import consistent as _consistent
from memhelpers import make_pdf

from chatloom.errors import ChatloomError
from chatloom.memory.ingest import chunk_markdown, read_document, split_sentences


# -- chunking -------------------------------------------------------------------------------
def test_chunks_follow_headings_and_never_cross_them():
    text = "# Guide\nIntro line.\n\n## Install\nUse pip. Then run it.\n\n## Use\nType a question.\n"
    chunks = chunk_markdown(text)
    assert [(c.section, c.text) for c in chunks] == [
        ("Guide", "Intro line."),
        ("Guide > Install", "Use pip. Then run it."),
        ("Guide > Use", "Type a question."),
    ]
    assert [c.index for c in chunks] == [0, 1, 2]


def test_long_sections_split_at_sentences_with_overlap():
    sentences = [f"Sentence number {i} talks about topic {i}." for i in range(60)]
    chunks = chunk_markdown("# T\n" + " ".join(sentences), max_chars=300, overlap=80)
    assert len(chunks) > 5
    for c in chunks:
        assert len(c.text) <= 300
        assert c.text.endswith(".")  # cut at a sentence end
    for a, b in itertools.pairwise(chunks):
        assert a.text.split(". ")[-1] in b.text  # the last sentence carries over


def test_headings_inside_code_fences_are_not_headings_and_giant_words_split():
    text = "# Real\n```\n# not a heading\n```\n" + "x" * 2500
    chunks = chunk_markdown(text, max_chars=900)
    assert {c.section for c in chunks} == {"Real"}
    assert all(len(c.text) <= 900 for c in chunks)


def test_split_sentences():
    assert split_sentences("It is 3.5 m long! Next one.\n\nPara two") == ["It is 3.5 m long!", "Next one.", "Para two"]
    assert split_sentences("  ") == []


# -- readers --------------------------------------------------------------------------------
def test_read_html_keeps_headings_and_drops_scripts(tmp_path):
    p = tmp_path / "page.html"
    p.write_text(
        "<html><head><title>Help center</title><script>var x=1;</script></head><body>"
        "<nav>menu</nav><h1>Billing</h1><p>Invoices go out monthly.</p>"
        "<h2>Refunds</h2><ul><li>Within 30 days.</li></ul></body></html>"
    )
    text, title = read_document(p)
    assert title == "Help center"
    assert "var x" not in text and "menu" not in text
    sections = [c.section for c in chunk_markdown(text)]
    assert sections == ["Billing", "Billing > Refunds"]


def test_read_pdf(tmp_path):
    p = tmp_path / "doc.pdf"
    make_pdf(p, ["Chatloom handbook.", "The office opens at nine."], title="Handbook")
    text, title = read_document(p)
    assert title == "Handbook"
    assert "office opens at nine" in text


# -- ingestion through the memory -----------------------------------------------------------
def _docs(root: Path) -> Path:
    d = root / "docs"
    (d / "sub").mkdir(parents=True)
    (d / "install.md").write_text("# Install\nRun pip install chatloom. It needs Python 3.11.\n")
    (d / "faq.txt").write_text("Refunds take five business days. Contact billing for help.\n")
    (d / "sub" / "tools.html").write_text(
        "<title>Tools</title><h1>Tools</h1><p>The calculator evaluates arithmetic safely.</p>"
    )
    make_pdf(d / "sub" / "policy.pdf", ["Passwords rotate every ninety days."], title="Policy")
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))  # ignored type
    return d


def test_ingest_all_formats_with_metadata(mem, tmp_path):
    docs = _docs(tmp_path)
    report = mem.ingest([docs])
    assert len(report.added) == 4 and not report.skipped
    assert _consistent(mem) == (4, report.chunks_added)
    hit = mem.recall("how often do passwords rotate", k=1)[0]
    assert hit.source == "sub/policy.pdf"  # its path under the folder ingested, not the server's path
    assert hit.title == "Policy" and hit.chunk == 0 and 0 < hit.score <= 1
    hit = mem.recall("install python version", k=1)[0]
    assert (hit.title, hit.section) == ("Install", "Install")


def test_passages_name_sources_by_their_path_under_the_ingested_folder(mem, tmp_path):
    docs = _docs(tmp_path)
    single = tmp_path / "elsewhere" / "notes.md"
    single.parent.mkdir()
    single.write_text("# Notes\nThe office closes at six on Fridays.\n")
    mem.ingest([docs, single])
    assert mem.recall("how often do passwords rotate", k=1)[0].source == "sub/policy.pdf"
    assert mem.recall("when does the office close on Friday", k=1)[0].source == "notes.md"  # a file given by name
    # The store keeps the absolute path as the file's key (re-ingest and forget find it by it).
    assert str(docs / "sub" / "policy.pdf") in [s for s, _, _ in mem.sources()]
    # A store ingested before names were recorded holds only the absolute path: shown as the file name.
    mem.store.db.execute("UPDATE chunks SET meta = NULL")
    hit = mem.recall("how often do passwords rotate", k=1)[0]
    assert hit.source == "policy.pdf" and str(tmp_path) not in repr(hit)


def test_the_deployer_can_name_what_citations_show(mem, tmp_path):
    docs = _docs(tmp_path)
    mem.ingest([docs], name="handbook")
    assert mem.recall("how often do passwords rotate", k=1)[0].source == "handbook/sub/policy.pdf"
    note = tmp_path / "n.md"
    note.write_text("# Notes\nThe office closes at six on Fridays.\n")
    mem.ingest([note], name="office-hours.md")
    assert mem.recall("when does the office close on Friday", k=1)[0].source == "office-hours.md"
    with pytest.raises(ChatloomError, match="for one file or folder"):
        mem.ingest([docs, note], name="both")
    with pytest.raises(ChatloomError, match="not allowed"):
        mem.ingest([note], name="../etc")


def test_cli_ingest_names_sources_and_refuses_one_name_for_two_paths(home, tmp_path, capsys):
    from chatloom.cli.main import run

    docs = _docs(tmp_path)
    assert run(["ingest", str(docs), "-n", "kb", "--name", "handbook"]) == 0
    assert "4 added" in capsys.readouterr().out
    assert run(["memory", "search", "how often do passwords rotate", "-n", "kb", "-k", "1"]) == 0
    assert capsys.readouterr().out.startswith("[1] handbook/sub/policy.pdf#0")
    assert run(["ingest", str(docs), str(docs / "faq.txt"), "--name", "x"]) == 2
    err = capsys.readouterr().err
    assert "error: a source name is for one file or folder" in err and "Traceback" not in err


def test_reingest_is_incremental(mem, tmp_path):
    docs = _docs(tmp_path)
    mem.ingest([docs])
    again = mem.ingest([docs])
    assert len(again.unchanged) == 4 and again.chunks_added == 0
    (docs / "faq.txt").write_text("Refunds now take two business days.\n")
    (docs / "install.md").unlink()
    report = mem.ingest([docs])
    assert report.updated == [str(docs / "faq.txt")]
    assert report.removed == [str(docs / "install.md")]
    assert report.chunks_removed == 2
    files, _ = _consistent(mem)
    assert files == 3
    assert "two business days" in mem.recall("refund time", k=1)[0].text
    assert all("pip install" not in p.text for p in mem.recall("pip install", k=4))


def test_identical_chunks_are_stored_once_and_survive_one_copy_deleted(mem, tmp_path):
    a, b = tmp_path / "a.md", tmp_path / "b.md"
    a.write_text("Shared paragraph about the VPN setup.")
    b.write_text("Shared paragraph about the VPN setup.")
    assert not mem.has_knowledge()
    ra = mem.ingest([a])
    rb = mem.ingest([b])
    assert ra.chunks_added == 1 and rb.chunks_added == 0 and rb.chunks_deduplicated == 1
    assert _consistent(mem) == (2, 1)
    mem.forget(str(a))
    assert _consistent(mem) == (1, 1)
    assert mem.has_knowledge() and not mem.has_knowledge("elsewhere")
    mem.forget(str(b))
    assert _consistent(mem) == (0, 0)
    assert not mem.has_knowledge()


def test_binary_and_unreadable_files_are_skipped_and_counted(mem, tmp_path):
    d = tmp_path / "mixed"
    d.mkdir()
    (d / "good.md").write_text("# Good\nThis one is fine.\n")
    (d / "blob.txt").write_bytes(os.urandom(4096) + b"\x00" * 10)
    (d / "latin.txt").write_bytes(bytes(range(1, 32)) * 100)  # control chars: not text
    (d / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (d / "dangling.md").symlink_to(d / "gone.md")  # can't be opened (works even as root)
    report = mem.ingest([d])
    skipped = dict(report.skipped)
    assert report.added == [str(d / "good.md")]
    assert set(skipped) == {str(d / n) for n in ("blob.txt", "latin.txt", "broken.pdf", "dangling.md")}
    assert "binary" in skipped[str(d / "blob.txt")]
    assert "PDF" in skipped[str(d / "broken.pdf")]
    assert "5 skipped" not in report.summary() and "4 skipped" in report.summary()
    assert _consistent(mem) == (1, 1)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read a chmod 000 file")
def test_permission_denied_is_skipped(mem, tmp_path):
    p = tmp_path / "secret.md"
    p.write_text("secret")
    p.chmod(0)
    try:
        report = mem.ingest([p])
    finally:
        p.chmod(0o644)
    assert [s for s, _ in report.skipped] == [str(p)]


def test_missing_path_and_unsupported_file(mem, tmp_path):
    with pytest.raises(ChatloomError, match="does not exist"):
        mem.ingest([tmp_path / "nope"])
    img = tmp_path / "x.png"
    img.write_bytes(b"\x89PNG")
    report = mem.ingest([img])
    assert report.skipped and "unsupported" in report.skipped[0][1]


def test_cli_ingest_list_search_forget(home, tmp_path, capsys, monkeypatch):
    from chatloom.cli.main import run

    docs = _docs(tmp_path)
    (docs / "bin.txt").write_bytes(b"\x00\x01binary")
    monkeypatch.chdir(tmp_path)
    assert run(["ingest", "docs", "--namespace", "kb"]) == 0
    out, err = capsys.readouterr()
    assert "4 added" in out and "1 skipped" in out
    assert "warning: skipped docs/bin.txt: binary" in err
    assert run(["memory", "list"]) == 0
    assert "default/kb\t4 files" in capsys.readouterr().out
    assert run(["memory", "list", "-n", "kb"]) == 0
    assert "docs/install.md\t1 chunks" in capsys.readouterr().out
    assert run(["memory", "search", "calculator arithmetic", "-n", "kb", "-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[1] sub/tools.html#0") and "calculator" in out  # named as citations name it
    assert run(["memory", "forget", "docs/sub", "-n", "kb"]) == 0
    assert "forgot docs/sub: 2 chunks removed" in capsys.readouterr().out
    assert run(["memory", "forget", "nope.md", "-n", "kb"]) == 2
    assert "error: no source 'nope.md'" in capsys.readouterr().err
    assert run(["memory", "forget", "-n", "kb", "--yes"]) == 0
    assert run(["memory", "list"]) == 0
    assert "empty" in capsys.readouterr().out
