"""Ingestion limits: a per-file size limit with a clear skip line, streamed reads with progress,
and detected encodings instead of silent latin-1 mojibake."""

from __future__ import annotations

import logging

import pytest

from chatloom.memory.ingest import read_document


@pytest.fixture()
def textfile():
    from chatloom.memory import textfile

    return textfile


JAPANESE = (
    "チャットルームは、小さなローカルモデルで動くチャットボットの枠組みです。"
    "文書を取り込むと、質問に答えるときに出典を示して引用します。"
    "計算機やウェブ検索などの道具も使えます。会話はスレッドごとに保存され、再起動しても続きます。\n"
) * 12


def test_a_file_over_the_limit_is_skipped_with_a_clear_line(settings, minilm, tmp_path):
    from chatloom.memory import open_memory

    d = tmp_path / "docs"
    d.mkdir()
    (d / "small.md").write_text("# Small\nThis one fits.\n")
    big = d / "big.md"
    big.write_text("# Big\n" + "A sentence that repeats. " * 44_000)  # ~1.1 MB
    # The limit is the setting of the memory that ingests (CHATLOOM_INGEST_MAX_FILE_MB when it opened).
    mem = open_memory(settings.model_copy(update={"ingest_max_file_mb": 0.5}), namespace="test", embeddings=minilm)
    try:
        report = mem.ingest([d])
    finally:
        mem.close()
    assert report.added == [str(d / "small.md")]
    [(path, reason)] = report.skipped
    assert path == str(big)
    assert reason.startswith("file is 1.0 MB, over the 0.5 MB limit") and "CHATLOOM_INGEST_MAX_FILE_MB" in reason


def test_the_cli_prints_the_skip_line(home, tmp_path, capsys, monkeypatch):
    from chatloom.cli.main import run

    monkeypatch.setenv("CHATLOOM_INGEST_MAX_FILE_MB", "0.25")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "big.md").write_text("# Big\n" + "words and more words. " * 20_000)
    assert run(["ingest", "big.md"]) == 0
    out, err = capsys.readouterr()
    assert "1 skipped" in out and "0 added" in out
    assert "warning: skipped big.md: file is 0.4 MB, over the 0.25 MB limit" in err


def test_the_limit_holds_while_reading_a_file_that_grows(tmp_path, monkeypatch, textfile):
    path = tmp_path / "grows.txt"
    path.write_bytes(b"x" * 1000)
    monkeypatch.setattr(textfile, "BLOCK", 256)
    monkeypatch.setattr(textfile, "_size", lambda fh: 10)  # stat said small; the file is not
    with pytest.raises(textfile.FileTooLarge, match="over the"):
        textfile.read_limited(path, 500)


def test_big_files_are_read_in_blocks_with_progress(tmp_path, monkeypatch, textfile):
    monkeypatch.setattr(textfile, "PROGRESS_FROM", 0)
    monkeypatch.setattr(textfile, "BLOCK", 1000)
    path = tmp_path / "big.txt"
    payload = b"abc " * 2500  # 10 000 bytes: ten blocks
    path.write_bytes(payload)
    seen: list[tuple[int, int]] = []
    data, digest = textfile.read_limited(path, 1 << 20, lambda done, size: seen.append((done, size)))
    assert data == payload and digest == __import__("hashlib").sha256(payload).hexdigest()
    assert seen == [(1000 * i, 10_000) for i in range(1, 11)]


def test_ingest_reports_progress_inside_a_big_file(mem, tmp_path, monkeypatch, textfile):
    monkeypatch.setattr(textfile, "PROGRESS_FROM", 0)
    monkeypatch.setattr(textfile, "BLOCK", 64)
    doc = tmp_path / "doc.md"
    doc.write_text("# Doc\n" + "Short sentence here. " * 20)
    calls: list[tuple[str, int, int]] = []
    mem.ingest([doc], progress=lambda p, done, total: calls.append((p, done, total)))
    inside = [c for c in calls if c[0].startswith(f"{doc} (")]
    assert len(inside) >= 5 and all(done == 0 and total == 1 for _, done, total in inside)
    assert calls[-1] == (str(doc), 1, 1)


def test_shift_jis_is_detected_not_mojibake(tmp_path, caplog):
    path = tmp_path / "jp.txt"
    path.write_bytes(JAPANESE.encode("shift_jis"))
    with caplog.at_level(logging.WARNING, logger="chatloom.memory"):
        text, _ = read_document(path)
    assert text == JAPANESE
    assert any("not UTF-8" in r.getMessage() and "shift_jis" in r.getMessage().lower() for r in caplog.records)


def test_shift_jis_is_stored_readable(mem, tmp_path):
    path = tmp_path / "jp.md"
    path.write_bytes(("# 概要\n" + JAPANESE).encode("shift_jis"))
    report = mem.ingest([path])
    assert report.added == [str(path)]
    hits = mem.recall("チャットボットの枠組み", k=1)
    assert hits and "チャットボット" in hits[0].text


def test_utf8_still_wins_and_cp1252_is_detected(tmp_path, textfile):
    assert textfile.decode_text("naïve café".encode()).encoding == "utf-8"
    western = "Le café était fermé, alors nous sommes allés à la pâtisserie où l’on vend des crêpes. " * 8
    decoded = textfile.decode_text(western.encode("cp1252"))
    assert decoded.text == western and decoded.detected


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Zażółć gęślą jaźń. Wczoraj poszliśmy do sklepu, gdzie kupiliśmy świeży chleb i masło. " * 6, "cp1250"),
        ("Die Straße war über die Brücke gesperrt, daß wir zu Fuß gehen mußten. Schöne Grüße! " * 6, "cp1252"),
        ("Вчера мы ходили в магазин и купили свежий хлеб и масло. Погода была хорошая. " * 6, "cp1251"),
        ("El niño comió una manzana en la mañana, después fue a la escuela con su hermana. " * 6, "latin-1"),
    ],
    ids=["polish-cp1250", "german-cp1252", "russian-cp1251", "spanish-latin1"],
)
def test_other_single_byte_encodings_are_read_right(text, encoding, textfile):
    assert textfile.decode_text(text.encode(encoding)).text == text


def test_a_skipped_file_with_markup_in_its_name_is_printed_as_text(home, tmp_path, capsys, monkeypatch):
    from chatloom.cli.main import run

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes [bold]x[red]y.txt").write_bytes(b"\x00\x01binary")
    assert run(["ingest", "."]) == 0
    err = capsys.readouterr().err
    assert "warning: skipped notes [bold]x[red]y.txt: binary" in err


def test_fifos_sockets_and_devices_are_skipped_with_one_line_each(home, tmp_path, capsys, monkeypatch):
    # A FIFO named *.md used to hang `chatloom ingest` forever (open() waits for a writer).
    import os
    import socket
    import threading
    import time

    from chatloom.cli.main import run

    docs = tmp_path / "docs"
    docs.mkdir()
    monkeypatch.chdir(docs)  # relative names: a socket path must fit in 108 bytes
    (docs / "real.md").write_text("# Real\nA real document about leave.\n")
    os.mkfifo("pipe.md")
    os.symlink("/dev/null", "null.md")  # a device (/dev/zero, which never ends, would be one too)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.md")

    def unblock_old_code() -> None:  # so a regression fails the test instead of hanging it
        time.sleep(20)
        while not done.wait(0.5):  # a writer that closes at once: a blocked reader reads EOF
            try:
                os.close(os.open(docs / "pipe.md", os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader right now
                pass

    done = threading.Event()
    threading.Thread(target=unblock_old_code, daemon=True).start()
    started = time.monotonic()
    try:
        code = run(["ingest", "."])
    finally:
        done.set()
        sock.close()
    assert time.monotonic() - started < 20
    out, err = capsys.readouterr()
    assert code == 0 and "1 added" in out and "3 skipped" in out, out
    skips = [line for line in err.splitlines() if line.startswith("warning: skipped")]
    assert sorted(skips) == [
        "warning: skipped null.md: a character device, not a file: skipped",
        "warning: skipped pipe.md: a FIFO (named pipe), not a file: skipped",
        "warning: skipped sock.md: a socket, not a file: skipped",
    ]
