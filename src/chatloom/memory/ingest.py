"""Knowledge ingestion: read .md .txt .pdf .html, chunk by headings then sentences, store.

Files are committed in small batches (vectors first, then rows and manifest entries in one
SQLite transaction), so a kill loses at most the batch in flight and a re-run picks up where it
stopped. Re-ingesting is
incremental: unchanged files are skipped by content hash, changed ones replaced, and files that
disappeared from an ingested folder are removed.

>>> from chatloom.memory.ingest import chunk_markdown
>>> [c.section for c in chunk_markdown("# A\\nOne. Two.\\n## B\\nThree.")]
['A', 'A > B']
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chatloom.errors import ChatloomError, install_hint
from chatloom.memory.store import ChunkRow, Store, chunk_id

log = logging.getLogger("chatloom.memory")
log.addHandler(logging.NullHandler())  # the CLI reports skips itself; apps opt in to logs

SUPPORTED = {".md", ".markdown", ".txt", ".text", ".pdf", ".html", ".htm"}
MAX_CHARS = 600  # ~130 word pieces: MiniLM vectors stay sharp, and 4 chunks suit small models
OVERLAP_CHARS = 100
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_SENTENCE = re.compile(r"(?<=[.!?。])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9À-Ý])|\n\s*")
# A line break that only wraps a paragraph (the next line is not blank, a list item or a table).
_SOFT_BREAK = re.compile(r"(?<!\n)\n(?!\n|\s*(?:[-*+]|\d+[.)])\s|\s*\|)")


class UnreadableFile(Exception):
    """A file that can't be read or parsed as text; ingestion skips it with a warning."""


@dataclass(frozen=True)
class Chunk:
    text: str
    section: str
    index: int


@dataclass
class IngestReport:
    """What one ingest run did; ``skipped`` lists (path, reason) for every file passed over."""

    namespace: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_deduplicated: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} "
            f"unchanged, {len(self.removed)} removed, {len(self.skipped)} skipped; "
            f"{self.chunks_added} chunks added, {self.chunks_removed} removed, "
            f"{self.chunks_deduplicated} already stored; {self.seconds:.1f} s "
            f"(namespace {self.namespace!r})"
        )


# -- reading ---------------------------------------------------------------------------------
def _decode_text(data: bytes, path: Path) -> str:
    head = data[:8192]
    if b"\x00" in head:
        raise UnreadableFile("binary content (NUL bytes)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = _decode_detected(data, path)
    ctrl = sum(1 for ch in text[:8192] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if ctrl > max(8, len(text[:8192]) * 0.02):
        raise UnreadableFile("binary content (control characters)")
    return text


def _decode_detected(data: bytes, path: Path) -> str:
    """Non-UTF-8 text in the encoding charset-normalizer detects (never silent latin-1)."""
    from chatloom.memory.textfile import decode_text

    try:
        decoded = decode_text(data)
    except UnicodeError:
        raise UnreadableFile("binary content (not UTF-8 text, and no text encoding fits it)") from None
    log.warning("%s is not UTF-8; read it as %s (detected)", path, decoded.encoding)
    return decoded.text


def _read_pdf(path: Path) -> tuple[str, str]:
    try:
        from pypdf import PdfReader
    except ImportError:
        raise ChatloomError("reading PDF needs pypdf", install_hint("memory", "pypdf")) from None
    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:  # noqa: BLE001 - pypdf raises many kinds here; all mean encrypted
                raise UnreadableFile("encrypted PDF") from None
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()  # type: ignore[call-overload]  # pypdf's metadata is a dict of PdfObject keys
    except UnreadableFile:
        raise
    except Exception as exc:  # noqa: BLE001 - a broken PDF is skipped with its reason, the ingest goes on
        raise UnreadableFile(f"not a readable PDF ({type(exc).__name__}: {exc})") from None
    text = "\n\n".join(p for p in pages if p)
    if not text.strip():
        raise UnreadableFile("PDF has no extractable text (scanned images?)")
    return text, title


def _read_html(data: bytes) -> tuple[str, str]:
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise ChatloomError("reading HTML needs beautifulsoup4", install_hint("memory", "beautifulsoup4")) from None
    soup = BeautifulSoup(data, "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer", "header", "svg", "form"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    body = soup.body or soup
    lines: list[str] = []
    for el in body.find_all(["h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "td", "dd", "dt", "blockquote"]):
        if el.find_parent(["p", "li", "pre", "td", "dd", "blockquote"]) is not None:
            continue  # its text comes with the enclosing block
        text = el.get_text(" ", strip=True)
        if not text:
            continue
        if el.name[0] == "h" and el.name[1:].isdigit():
            lines.append(f"\n{'#' * int(el.name[1:])} {text}\n")
        else:
            lines.append(text + "\n")
    if not lines:  # an unusual page with bare text
        lines = [body.get_text("\n", strip=True)]
    return "\n".join(lines), title


def read_document(path: Path, data: bytes | None = None) -> tuple[str, str]:
    """Return (markdown-ish text, title) of a supported file, or raise :class:`UnreadableFile`.

    ``data`` is the file's content when the caller has read it already.
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".pdf":
            text, title = _read_pdf(path)
        else:
            data = path.read_bytes() if data is None else data
            if suffix in (".html", ".htm"):
                if b"\x00" in data[:8192]:
                    raise UnreadableFile("binary content (NUL bytes)")
                text, title = _read_html(data)
            else:
                text, title = _decode_text(data, path), ""
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    if not title:
        m = re.search(r"^#\s+(.+)$", text, re.M)
        title = m.group(1).strip() if m else path.stem.replace("_", " ").replace("-", " ")
    return text, title


# -- chunking --------------------------------------------------------------------------------
def split_sentences(text: str) -> list[str]:
    """Split prose into sentences (and paragraphs); never returns empty strings."""
    parts = _SENTENCE.split(text)
    return [p.strip() for p in parts if p and p.strip()]


def _hard_split(sentence: str, limit: int) -> list[str]:
    words, out, cur = sentence.split(), [], ""
    for w in words:
        if cur and len(cur) + 1 + len(w) > limit:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
        while len(cur) > limit:  # one enormous "word" (a URL, base64...)
            out.append(cur[:limit])
            cur = cur[limit:]
    if cur:
        out.append(cur)
    return out


def _pack(sentences: list[str], max_chars: int, overlap: int) -> list[str]:
    pieces: list[str] = []
    for s in sentences:
        pieces.extend(_hard_split(s, max_chars) if len(s) > max_chars else [s])
    chunks: list[str] = []
    cur: list[str] = []
    size = 0
    for s in pieces:
        if cur and size + 1 + len(s) > max_chars:
            chunks.append(" ".join(cur))
            # Carry the last sentences (up to `overlap` chars) into the next chunk.
            tail: list[str] = []
            tsize = 0
            for prev in reversed(cur):
                if tsize + len(prev) > overlap:
                    break
                tail.insert(0, prev)
                tsize += len(prev) + 1
            while tail and tsize + len(s) + 1 > max_chars:  # overlap must not overflow
                tsize -= len(tail.pop(0)) + 1
            cur, size = tail, tsize
        cur.append(s)
        size += len(s) + 1
    if cur:
        chunks.append(" ".join(cur))
    return chunks


def chunk_markdown(text: str, *, max_chars: int = MAX_CHARS, overlap: int = OVERLAP_CHARS) -> list[Chunk]:
    """Chunk text by markdown headings, then by sentences with ``overlap`` characters carried over.

    A chunk never crosses a heading; ``section`` is the heading path, e.g. ``"Install > pip"``.
    """
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        if any(line.strip() for line in body):
            sections.append((" > ".join(t for _, t in path), list(body)))
        body.clear()

    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m:
            flush()
            level = len(m.group(1))
            path[:] = [(lv, t) for lv, t in path if lv < level]
            path.append((level, m.group(2).strip()))
        else:
            body.append(line)
    flush()
    out: list[Chunk] = []
    for section, lines in sections:
        prose = "\n".join(lines).strip()
        # Join hard-wrapped lines inside a paragraph; paragraphs and list items stay apart.
        prose = _SOFT_BREAK.sub(" ", prose)
        for piece in _pack(split_sentences(prose), max_chars, overlap):
            out.append(Chunk(piece, section, len(out)))
    return out


def heading(title: str, section: str) -> str:
    """``title > section`` without saying the title twice (the H1 is usually both)."""
    if section and title and (section == title or section.startswith(title + " > ")):
        return section
    return " > ".join(x for x in (title, section) if x)


def embed_text(row: ChunkRow) -> str:
    """What gets embedded for a chunk: its heading path gives short chunks their context."""
    head = heading(row.title, row.section)
    return f"{head}\n{row.text}" if head else row.text


# -- walking ---------------------------------------------------------------------------------
def _walk(root: Path) -> Iterable[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def file_kind(path: Path) -> str | None:
    """What ``path`` is when it is not a regular file (symlinks followed), else None.

    A path that can't be stat-ed (a dangling link) counts as a file: reading it reports why.
    """
    from chatloom.memory.textfile import kind_of_mode

    try:
        return kind_of_mode(path.stat().st_mode)
    except OSError:
        return None


def collect_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path], list[tuple[str, str]]]:
    """Expand ``paths``: (files to ingest, folders scanned, explicitly named unsupported files)."""
    files: list[Path] = []
    roots: list[Path] = []
    skipped: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists() and not p.is_symlink():
            raise ChatloomError(f"path {str(raw)!r} does not exist", "check the path and retry")
        p = Path(os.path.abspath(p))
        if p.is_dir():
            roots.append(p)
            candidates = [f for f in _walk(p) if f.suffix.lower() in SUPPORTED]
        elif p.suffix.lower() in SUPPORTED:
            candidates = [p]
        else:
            skipped.append((str(p), f"unsupported file type {p.suffix or '(none)'!r}"))
            continue
        for f in candidates:
            # FIFOs, sockets and devices are passed over here, before anything opens them: a
            # FIFO blocks open() forever, /dev/zero never ends (read_limited checks again).
            kind = file_kind(f)
            if kind is None:
                files.append(f)
            else:
                skipped.append((str(f), f"{kind}, not a file: skipped"))
    return list(dict.fromkeys(files)), roots, list(dict.fromkeys(skipped))


def source_names(
    files: Iterable[Path], roots: Iterable[Path], *, name: str | None = None, paths: Iterable[object] = ()
) -> dict[Path, str]:
    """Each file's name for citations: its path under the first folder of ``roots`` that holds
    it (``hr/leave.md`` for ``chatloom ingest docs/``), else its file name. ``name`` is the
    deployer's name for the one path ingested (``paths``): a file's name, or a folder's, put
    before its files' paths.

    The absolute path stays the file's key in the store (the manifest needs it to tell apart two
    ``README.md`` from different folders and to notice deleted files), but it is the server's
    business: passages and citations carry this name instead.

    >>> source_names([Path("/kb/hr/leave.md"), Path("/tmp/a.md")], [Path("/kb")])
    {PosixPath('/kb/hr/leave.md'): 'hr/leave.md', PosixPath('/tmp/a.md'): 'a.md'}
    >>> source_names([Path("/kb/hr/leave.md")], [Path("/kb")], name="handbook", paths=["/kb"])
    {PosixPath('/kb/hr/leave.md'): 'handbook/hr/leave.md'}
    """
    if name is not None:
        name = name.strip().strip("/")
        if len(list(paths)) != 1:
            raise ChatloomError("a source name is for one file or folder", "ingest each path with its own name")
        if not name or "\\" in name or any(part in ("", ".", "..") for part in name.split("/")):
            raise ChatloomError(f"source name {name!r} is not allowed", "use e.g. handbook or hr/handbook.pdf")
    roots = list(roots)
    names = {}
    for path in files:
        root = next((r for r in roots if path.is_relative_to(r)), None)
        if root is None:
            names[path] = name or path.name
        else:
            rel = path.relative_to(root).as_posix()
            names[path] = f"{name}/{rel}" if name else rel
    return names


def sample_texts(paths: Iterable[str | Path], files: int = 8, chars: int = 4000) -> list[str]:
    """The start of the first few readable files under ``paths``: enough to tell a language."""
    found, _, _ = collect_files(paths)
    out = []
    for path in found[:files]:
        try:
            text, title = read_document(path)
        except (UnreadableFile, ChatloomError):
            continue
        out.append(f"{title}\n{text[:chars]}")
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


Progress = Callable[[str, int, int], None]


def _file_progress(progress: Progress | None, source: str, done: int, total: int) -> Callable[[int, int], None] | None:
    if progress is None:
        return None
    return lambda read, size: progress(f"{source} ({read >> 20}/{size >> 20} MB)", done - 1, total)


# Each commit costs a Chroma write with a fixed cost of its own: 2,000 vectors took 15.4 s in
# writes of 64 and 8.7 s in writes of 512 (on a loaded machine). With the int8 embedder that
# fixed cost had become a fifth of ingest time for a folder of small files.
BATCH_FILES = 512  # files per commit
BATCH_CHUNKS = 512  # chunks per commit (a big file is always one commit on its own)


def ingest_paths(
    store: Store,
    ns: str,
    paths: Iterable[str | Path],
    *,
    embed: Callable[[list[str]], Any],
    embeddings_name: str,
    max_file_bytes: int,
    progress: Progress | None = None,
    name: str | None = None,
) -> IngestReport:
    """Ingest files and folders into namespace key ``ns`` of an open, write-locked ``store``.

    ``embed(texts)`` returns an array of vectors. ``progress(path, done, total)`` is called
    after every file, and during the read of a big one (with "(12/40 MB)" after the path).
    Files that can't be read, or are over ``max_file_bytes`` (the memory passes its
    ``ingest_max_file_mb`` setting), are skipped, logged and listed in the report. Passages
    name each file as :func:`source_names` does (``name``: the one path's name).
    """
    from chatloom.memory.textfile import FileTooLarge, NotRegularFile, read_limited

    start = time.perf_counter()
    report = IngestReport(namespace=ns)
    paths = list(paths)
    files, roots, skipped = collect_files(paths)
    for skipped_path, reason in skipped:
        log.warning("skipping %s: %s", skipped_path, reason)
    report.skipped.extend(skipped)
    manifest = store.manifest(ns)
    names = source_names(files, roots, name=name, paths=paths)
    total = len(files)
    pending: list[tuple[str, list[ChunkRow], dict, bool]] = []
    pending_chunks = 0

    def flush() -> None:
        # Small files are committed together (one embedding batch, one Chroma write, one
        # transaction); a kill loses at most this batch, and a re-run redoes exactly it.
        if not pending:
            return
        stats = store.replace_sources(
            ns,
            [(src, rows, info) for src, rows, info, _ in pending],
            lambda new: embed([embed_text(r) for r in new]),
            embeddings_name,
        )
        for (src, _, _, was_there), (added, removed, dup) in zip(pending, stats):
            (report.updated if was_there else report.added).append(src)
            report.chunks_added += added
            report.chunks_removed += removed
            report.chunks_deduplicated += 0 if was_there else dup
        pending.clear()

    for done, path in enumerate(files, 1):
        source = str(path)
        try:
            st = path.stat()
            # Read in blocks, bounded by the limit; progress shows how far a big file is.
            data, digest = read_limited(path, max_file_bytes, _file_progress(progress, source, done, total))
        except (OSError, FileTooLarge, NotRegularFile) as exc:
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            log.warning("skipping %s: %s", source, reason)
            report.skipped.append((source, reason))
            if progress:
                progress(source, done, total)
            continue
        old = manifest.get(source)
        if old and old[0] == digest:
            report.unchanged.append(source)
            if progress:
                progress(source, done, total)
            continue
        try:
            text, title = read_document(path, data)
        except UnreadableFile as exc:
            log.warning("skipping %s: %s", source, exc)
            report.skipped.append((source, str(exc)))
            if progress:
                progress(source, done, total)
            continue
        # meta["name"] is what citations show (see source_names); `source` stays the store's key.
        rows = [
            ChunkRow(chunk_id(ns, c.text), ns, c.text, source, title, c.section, c.index, meta={"name": names[path]})
            for c in chunk_markdown(text)
        ]
        pending.append((source, rows, {"sha256": digest, "size": st.st_size, "mtime": st.st_mtime}, old is not None))
        pending_chunks += len(rows)
        if len(pending) >= BATCH_FILES or pending_chunks >= BATCH_CHUNKS:
            flush()
            pending_chunks = 0
        if progress:
            progress(source, done, total)
    flush()
    # Files that were ingested from a scanned folder and are gone now.
    present = {str(f) for f in files}
    for source in sorted(manifest):
        if source in present:
            continue
        under_root = any(source.startswith(str(r) + os.sep) for r in roots)
        if under_root and not os.path.exists(source):
            report.chunks_removed += store.remove_source(ns, source)
            report.removed.append(source)
    report.seconds = time.perf_counter() - start
    return report
