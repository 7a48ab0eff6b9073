"""Reading files for ingestion safely: a size limit, streamed reads with progress, encodings.

A 200 MB markdown file once ran for minutes at 2.3 GB of memory with nothing on screen, and a
Shift-JIS file became latin-1 mojibake without a word. So files over the limit are skipped with
a reason, big files are read in blocks with progress, and text that is not UTF-8 is decoded as
the encoding charset-normalizer detects, or skipped with a reason when none fits.

>>> decode_text("こんにちは、世界。これは日本語の文書です。".encode("shift_jis")).text[:5]
'こんにちは'
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatloom.errors import install_hint

log = logging.getLogger("chatloom.memory")

BLOCK = 1 << 20  # bytes per read; progress is reported per block
PROGRESS_FROM = 8 << 20  # files smaller than this read in one go, without progress lines
MB = 1 << 20


class FileTooLarge(Exception):
    """A file over the ingestion size limit; ingestion skips it with this message."""


class NotRegularFile(Exception):
    """A FIFO, socket or device among the files to ingest; ingestion skips it with this message.

    Reading one would block forever (a FIFO with no writer) or never end (``/dev/zero``).
    """


def kind_of_mode(mode: int) -> str | None:
    """What a non-regular file is, for the skip message; None for a regular file."""
    import stat

    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) else "not a regular file"


@dataclass(frozen=True)
class Decoded:
    """Text decoded from bytes, and the encoding it was read as."""

    text: str
    encoding: str
    detected: bool  # True when the encoding was guessed (not UTF-8)


def size_limit_reason(size: int, limit: int) -> str | None:
    """The skip reason for a file of ``size`` bytes under ``limit``, or None when it fits."""
    if size <= limit:
        return None
    return (
        f"file is {size / MB:,.1f} MB, over the {limit / MB:g} MB limit "
        "(raise ingest_max_file_mb / CHATLOOM_INGEST_MAX_FILE_MB, or split the file)"
    )


def read_limited(path: Path, limit: int, on_bytes: Callable[[int, int], None] | None = None) -> tuple[bytes, str]:
    """``(data, sha256)`` of ``path``, read in blocks; :class:`FileTooLarge` past ``limit`` bytes.

    The limit is checked again while reading (the file may grow after ``stat``), so memory stays
    bounded by it. ``on_bytes(read, size)`` is called after each block of a big file.
    """
    import os

    # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever, before any check
    # could run (a FIFO named *.md hung `chatloom ingest`). It changes nothing for regular files.
    # The type is checked on the open file, so a swap after the folder walk can't get past it.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        kind = kind_of_mode(os.fstat(fd).st_mode)
        if kind is not None:
            raise NotRegularFile(f"{kind}, not a file: skipped")
        size = _size(fh)
        reason = size_limit_reason(size, limit)
        if reason:
            raise FileTooLarge(reason)
        digest = hashlib.sha256()
        parts: list[bytes] = []
        read = 0
        while block := fh.read(BLOCK):
            read += len(block)
            if read > limit:
                raise FileTooLarge(size_limit_reason(read, limit) or "file grew past the limit")
            digest.update(block)
            parts.append(block)
            if on_bytes is not None and size >= PROGRESS_FROM:
                on_bytes(read, size)
    return b"".join(parts), digest.hexdigest()


def _size(fh: object) -> int:
    import os

    return os.fstat(fh.fileno()).st_size  # type: ignore[attr-defined]


def decode_text(data: bytes) -> Decoded:
    """Decode ``data``: UTF-8 (with or without BOM), else the encoding charset-normalizer finds.

    Raises ``UnicodeError`` when the bytes fit no encoding (binary data, or too mixed to tell).
    """
    try:
        return Decoded(data.decode("utf-8-sig"), "utf-8", False)
    except UnicodeDecodeError:
        pass
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # keep working, but never silently: the guess may be wrong
        log.warning(
            "charset-normalizer is not installed; reading non-UTF-8 text as cp1252 (%s)",
            install_hint("memory", "charset-normalizer"),
        )
        return Decoded(data.decode("cp1252", errors="replace"), "cp1252", True)
    matches = from_bytes(data)
    best = matches.best()
    if best is None or best.encoding is None:
        raise UnicodeError("not UTF-8, and no text encoding fits it")
    # Single-byte Western text fits many code pages about equally well (French cp1252 came out
    # as mac_latin2); Windows-1252 is by far the likeliest of them, so it wins a near tie.
    if any("cp1252" in m.could_be_from_charset and m.chaos <= best.chaos + 0.01 for m in matches):
        try:
            return Decoded(data.decode("cp1252"), "cp1252", True)
        except UnicodeDecodeError:
            pass  # a byte cp1252 leaves undefined: not cp1252 after all
    return Decoded(data.decode(best.encoding), best.encoding, True)
