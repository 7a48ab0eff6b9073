"""The knowledge index in PostgreSQL (``index_url``): two "machines" (two data dirs) sharing one
PostgreSQL database and one Chroma server share one knowledge base."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from memhelpers import consistent, free_port, subprocess_env

from chatloom.config import get_settings
from chatloom.errors import ConfigError, MemoryStoreError
from chatloom.memory import open_memory
from chatloom.memory.store import _PG_WRITE_LOCK, write_session


def machine(tmp_path: Path, name: str, onnx_cache: Path, **urls: str):
    """Settings for one "machine": a data dir of its own, the shared servers in ``urls``."""
    home = tmp_path / name
    (home / "models").mkdir(parents=True)
    (home / "models" / "all-MiniLM-L6-v2-onnx").symlink_to(onnx_cache / "all-MiniLM-L6-v2-onnx")
    return get_settings(home=home, **urls)


@pytest.fixture
def two_machines(tmp_path, home, onnx_cache, postgres_dsn, chroma_url):
    urls = {"memory_url": chroma_url, "index_url": postgres_dsn}
    return machine(tmp_path, "a", onnx_cache, **urls), machine(tmp_path, "b", onnx_cache, **urls)


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own: the PostgreSQL index is shared by the whole session."""
    return f"kb-{uuid.uuid4().hex[:8]}"


def write_doc(path: Path, title: str, text: str) -> Path:
    path.write_text(f"# {title}\n{text}\n", encoding="utf-8")
    return path


def test_an_ingest_on_one_machine_is_found_and_forgotten_on_the_other(two_machines, minilm, ns, tmp_path):
    sa, sb = two_machines
    a = open_memory(sa, namespace=ns, embeddings=minilm)
    b = open_memory(sb, namespace=ns, embeddings=minilm)
    doc = write_doc(tmp_path / "billing.md", "Billing", "Invoices are sent on the first of each month.")
    assert a.ingest([doc]).chunks_added == 1
    # Nothing of the index is in either data dir; B never ingested anything.
    for s in (sa, sb):
        assert not list((Path(s.data_dir()) / "memory").glob("index*.sqlite"))
    assert b.has_knowledge() and b.sources()[0][0] == str(doc)
    assert (ns_entry := [n for n in b.namespaces() if n[0] == f"default/{ns}"]) and ns_entry[0][1:] == (1, 1)
    for mode in ("keyword", "hybrid"):
        hits = b.search("when are invoices sent", k=1, mode=mode)
        assert [(h.source, h.section) for h in hits] == [(doc.name, "Billing")], mode
    assert consistent(b) == (1, 1)

    assert b.forget(str(doc)) == 1
    for mode in ("keyword", "hybrid", "vector"):
        assert a.search("when are invoices sent", k=1, mode=mode) == [], mode
    assert not a.has_knowledge()
    a.close()
    b.close()


def test_the_keyword_cache_is_rebuilt_after_another_machine_writes(two_machines, minilm, ns, tmp_path, onnx_cache):
    sa, sb = two_machines
    a = open_memory(sa, namespace=ns, embeddings=minilm)
    b = open_memory(sb, namespace=ns, embeddings=minilm)
    a.ingest([write_doc(tmp_path / "leave.md", "Leave", "Staff get twenty five days of annual leave.")])
    assert [h.section for h in b.search("annual leave", mode="keyword")] == ["Leave"]
    version_b = b.store.ns_version(b.ns)
    cache_b = list((Path(sb.data_dir()) / "memory" / "bm25").iterdir())
    assert len(cache_b) == 1  # B's own cache, stamped with the version it saw

    a.ingest([write_doc(tmp_path / "parking.md", "Parking", "Parking permits are issued by reception.")])
    assert b.store.ns_version(b.ns) > version_b  # A's write bumped the shared version
    assert [h.section for h in b.search("parking permits reception", mode="keyword")] == ["Parking"]
    assert b.store.keyword_index(b.ns).version == b.store.ns_version(b.ns)
    # A third machine with an empty data dir builds its cache from the shared rows.
    sc = machine(tmp_path, "c", onnx_cache, memory_url=sa.memory_url, index_url=sa.index_url)
    c = open_memory(sc, namespace=ns, embeddings=minilm)
    assert sorted(h.section for h in c.search("leave parking", k=4, mode="keyword")) == ["Leave", "Parking"]
    for m in (a, b, c):
        m.close()


def test_conversation_memory_and_metadata_filters_work_across_machines(two_machines, minilm, ns):
    sa, sb = two_machines
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    a = open_memory(sa, namespace=ns, tenant=tenant, embeddings=minilm)
    b = open_memory(sb, namespace=ns, tenant=tenant, embeddings=minilm)
    a.remember(user_id="u1", thread_id="t1", question="My favourite colour is green.", answer="Noted.")
    a.remember(user_id="u1", thread_id="t2", question="My favourite colour is blue.", answer="Noted.")
    # thread_id is a JSON metadata field: the PostgreSQL dialect's filter, typed like SQLite's.
    hits = b.recall("favourite colour", k=4, user_id="u1", filters={"thread_id": "t2"})
    assert hits and all("blue" in h.text for h in hits)
    assert b.recall("favourite colour", k=4, user_id="u1", filters={"thread_id": ["t1"]})
    assert b.recall("favourite colour", k=4, user_id="someone-else") == []
    assert b.forget(user_id="u1") > 0
    assert a.recall("favourite colour", k=4, user_id="u1") == []
    a.close()
    b.close()


def test_two_machines_ingesting_at_once_lose_nothing(two_machines, minilm, ns, tmp_path):
    sa, sb = two_machines
    docs = {
        who: [
            write_doc(
                tmp_path / f"{who}-{i}.md",
                f"{who} topic {i}",
                f"Fact number {i} written by machine {who}: code {who}{i * 7919}.",
            )
            for i in range(6)
        ]
        for who in ("a", "b")
    }
    errors: list[BaseException] = []

    def ingest(settings, who: str) -> None:
        try:
            mem = open_memory(settings, namespace=ns, embeddings=minilm)
            for doc in docs[who]:  # one write session per file: the two machines interleave
                mem.ingest([doc])
            mem.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    workers = [threading.Thread(target=ingest, args=(s, who)) for s, who in ((sa, "a"), (sb, "b"))]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert errors == [] and not any(w.is_alive() for w in workers)
    for s in (sa, sb):
        mem = open_memory(s, namespace=ns, embeddings=minilm)
        assert consistent(mem) == (12, 12)
        assert len(mem.search("fact written by machine", k=20, mode="keyword")) == 12
        mem.close()


def test_the_write_lock_is_held_across_machines(two_machines, postgres_dsn):
    import psycopg

    sa, sb = two_machines
    order: list[str] = []
    a_in = threading.Event()
    release_a = threading.Event()

    def writer_a() -> None:
        with write_session(sa):
            order.append("a in")
            a_in.set()
            release_a.wait(timeout=120)
            order.append("a out")

    def writer_b() -> None:
        with write_session(sb):
            order.append("b in")

    ta = threading.Thread(target=writer_a)
    ta.start()
    assert a_in.wait(timeout=120)
    tb = threading.Thread(target=writer_b)
    tb.start()
    # Wait until B is queued on the advisory lock (as PostgreSQL reports it), then let A go.
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        deadline = time.monotonic() + 120
        while not conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype='advisory' AND NOT granted"
            " AND ((classid::bigint << 32) | objid::bigint) = %s",
            (_PG_WRITE_LOCK,),
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "machine B never waited for the write lock"
            time.sleep(0.05)
    assert order == ["a in"]
    release_a.set()
    ta.join(timeout=120)
    tb.join(timeout=120)
    assert order == ["a in", "a out", "b in"]


# -- clear errors ------------------------------------------------------------------------------
def test_an_unreachable_postgresql_index_is_a_clear_error_with_the_password_hidden(home, chroma_url):
    dsn = f"postgresql://chatloom:s3cret-pw@127.0.0.1:{free_port()}/chatloom"
    settings = get_settings(memory_url=chroma_url, index_url=dsn)
    with pytest.raises(MemoryStoreError, match=r"can't reach the PostgreSQL knowledge index at .*\*\*\*") as info:
        open_memory(settings, namespace="x")
    assert "s3cret-pw" not in str(info.value)
    assert "unset index_url" in str(info.value)


def test_an_index_url_that_is_not_postgresql_is_a_clear_error(home, chroma_url):
    settings = get_settings(memory_url=chroma_url, index_url="mysql://root:hunter2@db/kb")
    with pytest.raises(ConfigError, match="index_url .* is not a PostgreSQL DSN") as info:
        open_memory(settings, namespace="x")
    assert "hunter2" not in str(info.value)


def test_a_missing_psycopg_is_a_clear_error(home, chroma_url, monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    settings = get_settings(memory_url=chroma_url, index_url="postgresql://chatloom@127.0.0.1/kb")
    with pytest.raises(ConfigError, match=r"psycopg is not installed .*pip install 'psycopg\[binary\]'"):
        open_memory(settings, namespace="x")


def test_an_index_url_without_a_chroma_server_is_a_clear_error(home, postgres_dsn):
    # Vectors in each machine's own data dir with one shared index would disagree.
    with pytest.raises(ConfigError, match="index_url is set but memory_url is not"):
        open_memory(get_settings(index_url=postgres_dsn), namespace="x")


def test_the_cli_reports_an_unreachable_index_in_one_line(home, chroma_url, tmp_path):
    env = subprocess_env(home)
    env.update(
        CHATLOOM_MEMORY_URL=chroma_url, CHATLOOM_INDEX_URL=f"postgresql://chatloom:s3cret-pw@127.0.0.1:{free_port()}/kb"
    )
    done = subprocess.run(
        [sys.executable, "-m", "chatloom.cli.main", "memory", "list"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: can't reach the PostgreSQL knowledge index"), done.stderr
    assert "s3cret-pw" not in done.stderr and "Traceback" not in done.stderr


def test_a_lost_postgresql_connection_is_a_clear_error_and_the_next_call_reconnects(
    two_machines, minilm, ns, tmp_path, postgres_dsn
):
    import psycopg

    sa, _ = two_machines
    mem = open_memory(sa, namespace=ns, embeddings=minilm)
    mem.ingest([write_doc(tmp_path / "vpn.md", "VPN", "Connect to the VPN before opening the wiki.")])
    # What a PostgreSQL restart or failover does to an open connection.
    for mode in ("keyword", "hybrid"):
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (mem.store.db.conn.info.backend_pid,))
        with pytest.raises(
            MemoryStoreError, match=r"the PostgreSQL knowledge index at .* failed .*check that the server"
        ):
            mem.search("vpn wiki", mode=mode)
        assert [h.section for h in mem.search("vpn wiki", mode=mode)] == ["VPN"]
    # The keyword search itself (past the namespace lookups) meeting a dead connection.
    from chatloom.memory.search import Space, keyword_search

    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (mem.store.db.conn.info.backend_pid,))
    with pytest.raises(MemoryStoreError, match=r"the PostgreSQL knowledge index at .* failed"):
        keyword_search(mem.store, [Space(mem.ns, {"source": str(tmp_path / "vpn.md")})], "vpn", 4)
    mem.close()


def test_a_database_recreated_at_the_same_dsn_does_not_reuse_old_keyword_caches(
    two_machines, minilm, ns, tmp_path, postgres_dsn
):
    import psycopg

    sa, _ = two_machines
    db = f"reset_{uuid.uuid4().hex[:8]}"
    dsn = postgres_dsn.rsplit("/", 1)[0] + "/" + db
    settings = sa.model_copy(update={"index_url": dsn})
    found = []
    for word in ("alpha", "bravo"):  # same DSN, same namespace version 1, same rowid 1
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {db}")
            admin.execute(f"CREATE DATABASE {db}")
        mem = open_memory(settings, namespace=ns, embeddings=minilm)
        mem.ingest([write_doc(tmp_path / f"{word}.md", word, f"The codeword is {word}.")])
        assert mem.store.ns_version(mem.ns) == 1
        found.append([h.section for h in mem.search(word, mode="keyword")])
        mem.close()
    assert found == [["alpha"], ["bravo"]]
