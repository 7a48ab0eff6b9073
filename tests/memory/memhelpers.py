"""Helpers shared by the memory tests (a plain module: tests/ has no packages)."""

from __future__ import annotations

import os
from pathlib import Path

from chatloom.testing import free_port  # noqa: F401 - the memory tests import it from here

REPO = Path(__file__).resolve().parents[2]


def make_pdf(path: Path, lines: list[str], title: str = "A PDF") -> None:
    """Write a minimal one-page PDF with real text operators (pypdf can extract it)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        esc = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        ops.append(f"({esc}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Title (" + title.encode() + b") >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))


def consistent(mem) -> tuple[int, int]:
    """Chroma and the SQLite index hold exactly the same chunk ids; return (files, chunks)."""
    store = mem.store
    store.ensure_fresh()
    ids = {i for (i,) in store.db.execute("SELECT id FROM chunks WHERE ns=?", (mem.ns,))}
    col = store.collection(mem.ns, mem.embeddings_name, create=False)
    chroma_ids = set(col.get(include=[])["ids"]) if col is not None else set()
    assert ids == chroma_ids
    limbo = store.db.execute("SELECT count(*) FROM limbo").fetchone()[0]
    assert limbo == 0
    refs = {i for (i,) in store.db.execute("SELECT chunk_id FROM refs WHERE ns=?", (mem.ns,))}
    assert refs == ids
    files = store.db.execute("SELECT count(*) FROM files WHERE ns=?", (mem.ns,)).fetchone()[0]
    return files, len(ids)


def subprocess_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["CHATLOOM_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env
