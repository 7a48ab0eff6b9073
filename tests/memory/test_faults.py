"""Bad input and faults: corrupt stores, concurrent writers, a kill during ingestion."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from memhelpers import consistent as _consistent
from memhelpers import subprocess_env

from chatloom.errors import MemoryStoreError


def _corpus(root: Path, name: str, n: int) -> Path:
    """n small markdown files, each with a unique keyword and two sections."""
    d = root / name
    d.mkdir(parents=True)
    for i in range(n):
        (d / f"{name}-{i:03d}.md").write_text(
            f"# {name} document {i}\n\n## Facts\nThe secret token of {name} file {i} is "
            f"tok{name}{i}x. It was written for the fault tests.\n\n## More\n"
            f"Paragraph {i} of {name} explains nothing else of note. Really nothing at all.\n"
        )
    return d


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- corrupt store ---------------------------------------------------------------------------
def test_corrupt_chroma_store_gives_clear_error_and_keeps_the_file(settings, minilm, tmp_path):
    from chatloom.cli.main import run
    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="kb", embeddings=minilm)
    mem.ingest([_corpus(tmp_path, "a", 2)])
    mem.close()
    chroma_db = settings.data_dir() / "memory" / "chroma" / "chroma.sqlite3"
    data = bytearray(chroma_db.read_bytes())
    data[:100] = b"\xde\xad\xbe\xef" * 25  # smash the header
    chroma_db.write_bytes(bytes(data))
    before = _sha(chroma_db)

    mem = open_memory(settings, namespace="kb", embeddings=minilm)
    with pytest.raises(MemoryStoreError, match=r"Chroma store .* is corrupt.*nothing was changed"):
        mem.recall("secret token", k=2)
    with pytest.raises(MemoryStoreError, match="corrupt"):
        mem.ingest([tmp_path / "a"])
    assert _sha(chroma_db) == before  # never deleted or recreated
    assert run(["memory", "search", "token", "-n", "kb"]) == 2


def test_corrupt_index_gives_clear_error_and_keeps_the_file(settings, minilm, tmp_path, capsys):
    from chatloom.cli.main import run
    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="kb", embeddings=minilm)
    mem.ingest([_corpus(tmp_path, "a", 2)])
    mem.close()
    index = settings.data_dir() / "memory" / "index.sqlite"
    index.write_bytes(b"garbage" * 1000)
    before = _sha(index)
    with pytest.raises(MemoryStoreError, match=r"memory index .* is corrupt.*move it aside"):
        open_memory(settings, namespace="kb", embeddings=minilm)
    assert run(["ingest", str(tmp_path / "a"), "-n", "kb"]) == 2
    assert "error: memory index" in capsys.readouterr().err
    assert _sha(index) == before


def test_index_with_a_damaged_page_is_reported(settings, minilm, tmp_path):
    """A valid header but garbage inside: SQLite notices on use, and we say so clearly."""
    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="kb", embeddings=minilm)
    mem.ingest([_corpus(tmp_path, "a", 30)])
    mem.close()
    index = settings.data_dir() / "memory" / "index.sqlite"
    data = bytearray(index.read_bytes())
    page = 4096
    for off in range(page * 2, len(data), page):  # keep page 1 (schema) intact
        data[off + 8 : off + 400] = b"\xff" * 392
    index.write_bytes(bytes(data))
    with pytest.raises(MemoryStoreError, match="corrupt|failed"):
        m = open_memory(settings, namespace="kb", embeddings=minilm)
        m.recall("secret token", k=2, filters=None)
        m.ingest([tmp_path / "a"])


# -- concurrency -----------------------------------------------------------------------------
INGEST_SCRIPT = """
import sys
from chatloom.config import get_settings
from chatloom.memory import open_memory
mem = open_memory(get_settings(), namespace="kb")
report = mem.ingest(sys.argv[1:])
print("DONE", report.summary(), flush=True)
"""


def test_two_processes_ingesting_at_once_lose_nothing(home, settings, minilm, tmp_path):
    a = _corpus(tmp_path, "a", 12)
    b = _corpus(tmp_path, "b", 12)
    env = subprocess_env(home)
    # Both processes ingest both folders, in opposite orders, into the same namespace.
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", INGEST_SCRIPT, str(x), str(y)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for x, y in ((a, b), (b, a))
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert "DONE" in out

    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="kb")  # the model the namespace records
    files, chunks = _consistent(mem)
    assert files == 24
    # The same corpus ingested by one process into another namespace: identical content.
    ref = open_memory(settings, namespace="ref")  # the model the namespace records
    ref.ingest([a, b])
    assert _consistent(ref) == (24, chunks)
    for name, i in (("a", 3), ("b", 11)):
        hit = mem.recall(f"tok{name}{i}x", k=1, filters=None)[0]
        assert f"tok{name}{i}x" in hit.text


# -- kill during ingestion -------------------------------------------------------------------
SLOW_INGEST = """
import sys, time
from chatloom.memory import store as S

orig_collection = S.Store.collection

class Slow:
    # Wraps the Chroma collection: after each upsert, announce it and dawdle, so the parent
    # can kill us between the vector write and the SQLite commit.
    def __init__(self, col):
        self._col = col
    def upsert(self, **kw):
        self._col.upsert(**kw)
        print("UPSERTED", flush=True)
        time.sleep(0.4)
    def __getattr__(self, name):
        return getattr(self._col, name)

def collection(self, *a, **k):
    col = orig_collection(self, *a, **k)
    return Slow(col) if col is not None else None

S.Store.collection = collection
import chatloom.memory.ingest as I
I.BATCH_FILES = 3  # commit every 3 files
from chatloom.config import get_settings
from chatloom.memory import open_memory
mem = open_memory(get_settings(), namespace="kb")
mem.ingest(sys.argv[1:])
print("FINISHED", flush=True)
"""


def test_kill_during_ingestion_leaves_a_consistent_store_and_rerun_resumes(home, settings, minilm, tmp_path):
    docs = _corpus(tmp_path, "k", 10)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_INGEST, str(docs)],
        env=subprocess_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    upserts = 0
    deadline = time.time() + 240
    while upserts < 3 and time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        upserts += line.startswith("UPSERTED")
    assert upserts == 3, proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)  # right after a vector write, before its commit
    proc.wait(timeout=30)

    from chatloom.memory import open_memory

    mem = open_memory(settings, namespace="kb")  # the model the namespace records
    store = mem.store
    committed = {s for (s,) in store.db.execute("SELECT source FROM files WHERE ns=?", (mem.ns,))}
    assert len(committed) in (3, 6)  # whole batches only; the third batch was in flight
    # Readers already see a consistent store: only committed files are ever returned...
    shown = {Path(s).relative_to(docs).as_posix() for s in committed}  # citations name files under docs/
    for p in mem.recall("secret token of k file", k=10):
        assert p.source in shown
    # ...even though Chroma holds vectors of the file that was in flight.
    store.ensure_fresh()
    col = store.collection(mem.ns, mem.embeddings_name, create=False)
    n_rows = store.db.execute("SELECT count(*) FROM chunks WHERE ns=?", (mem.ns,)).fetchone()[0]
    assert col.count() > n_rows

    report = mem.ingest([docs])  # resume
    assert sorted(report.unchanged) == sorted(committed)
    assert len(report.added) == 10 - len(committed)
    files, chunks = _consistent(mem)  # the leftover vectors were cleaned up
    ref = open_memory(settings, namespace="ref")  # the model the namespace records
    ref.ingest([docs])
    assert (files, chunks) == _consistent(ref) == (10, chunks)


def test_a_running_reader_sees_another_processes_ingest(home, settings, minilm, tmp_path):
    """A long-lived bot keeps its memory open while `chatloom ingest` runs elsewhere."""
    from chatloom.memory import open_memory

    first = _corpus(tmp_path, "r", 2)
    bot = open_memory(settings, namespace="kb")  # the model the namespace records
    bot.ingest([first])
    assert "tokr1x" in bot.recall("tokr1x", k=1)[0].text
    later = _corpus(tmp_path, "s", 2)
    done = subprocess.run(
        [sys.executable, "-c", INGEST_SCRIPT, str(later)],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    hit = bot.recall("toks1x", k=1)[0]  # new chunks, via both vector and keyword search
    assert "toks1x" in hit.text
    assert bot.search("toks0x", k=1, mode="keyword")[0].text.count("toks0x") == 1
    assert _consistent(bot) == (4, 8)


RECALL_SCRIPT = """
import sys
from chatloom.config import get_settings
from chatloom.memory import open_memory
mem = open_memory(get_settings(), namespace="kb")
print("|".join(p.text for p in mem.recall(sys.argv[1], k=2, user_id=sys.argv[2])))
"""


def test_writes_of_a_process_that_keeps_its_store_open_are_visible_to_others(home, settings, minilm):
    from chatloom.memory import open_memory

    bot = open_memory(settings, namespace="kb")  # the model the namespace records
    bot.remember(user_id="ada", thread_id="t1", question="I work at Globex in Oslo.", answer="Noted.")
    # The bot still holds its Chroma client; another process must see what it wrote.
    seen = subprocess.run(
        [sys.executable, "-c", RECALL_SCRIPT, "where does the user work", "ada"],
        env=subprocess_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert seen.returncode == 0, seen.stderr[-2000:]
    assert "Globex" in seen.stdout
    # And the bot keeps working after the other process opened the same store.
    bot.remember(user_id="ada", thread_id="t2", question="I prefer tea.", answer="Noted.")
    assert any("tea" in p.text for p in bot.recall("drinks the user likes", k=3, user_id="ada"))


def test_opening_a_store_waits_for_another_opener(tmp_path):
    """Two processes opening a new store at once: the second waits instead of failing with
    "database is locked" while the first switches the file to WAL (seen once in CI)."""
    import threading

    from filelock import FileLock

    from chatloom.memory.store import Store

    root = tmp_path / "memory"
    root.mkdir()
    other = FileLock(str(root / "index.sqlite") + ".open.lock")
    other.acquire()
    opened = threading.Event()
    worker = threading.Thread(target=lambda: (Store(root, None), opened.set()), daemon=True)
    worker.start()
    try:
        assert not opened.wait(1.0), "the store opened while another opener held the file"
    finally:
        other.release()
    assert opened.wait(60)
