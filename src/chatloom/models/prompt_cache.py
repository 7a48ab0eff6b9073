"""A disk cache of prompt-prefix KV states, so a new process skips re-reading the static prompt.

A cold ``chatloom ask`` used to spend most of its time evaluating the same system prompt and
tool descriptions that every earlier process had evaluated too. The llama.cpp engine saves the
KV state of that static prefix once and later processes load it. This module is the engine-free
half: file naming, the file format, atomic writes, validation and eviction. The engine hands it
the prefix's token ids and the opaque state bytes.

Layout: ``<data dir>/kvcache/<model key>/<sha256 of the prefix token ids>.bin``. A file is

    MAGIC | u32 header length | JSON header | int32 token ids | state bytes

The header holds the model key, the token count and the sha256 of the state bytes, so a file
that is truncated, overwritten or written for another model is a miss: it is deleted, logged
and the caller evaluates the prompt as if there were no cache.

>>> import tempfile, pathlib
>>> cache = PromptCache(pathlib.Path(tempfile.mkdtemp()), "model-a")
>>> _ = cache.save([1, 2, 3], b"state")
>>> cache.load([1, 2, 3])
b'state'
>>> cache.load([1, 2]) is None
True
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MAGIC = b"CHATLOOM-KV1\n"
DEFAULT_MAX_BYTES = 256 * 2**20
"""Whole-cache bound. One Qwen 0.5B system prompt of ~500 tokens is ~6 MB, a 1.5B one ~14 MB."""


def tokens_digest(tokens: Sequence[int]) -> str:
    """The sha256 of a token-id sequence (the file name of its cached state)."""
    return hashlib.sha256(struct.pack(f"<{len(tokens)}i", *tokens)).hexdigest()


@dataclass(frozen=True)
class PromptCache:
    """KV states of prompt prefixes for one model, under ``root/<model_key>``.

    ``root`` is shared by all models; ``max_bytes`` bounds the files under it together.
    """

    root: Path
    model_key: str
    max_bytes: int = DEFAULT_MAX_BYTES

    @property
    def directory(self) -> Path:
        """Where this model's states live."""
        return self.root / self.model_key

    def path_for(self, tokens: Sequence[int]) -> Path:
        """The file that holds (or would hold) the state after ``tokens``."""
        return self.directory / f"{tokens_digest(tokens)}.bin"

    def load(self, tokens: Sequence[int]) -> bytes | None:
        """The state bytes saved for exactly ``tokens``, or None (a miss).

        A file that fails any check is deleted and logged: a corrupt cache costs one slow call,
        never a wrong answer or an error.
        """
        path = self.path_for(tokens)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("prompt cache: cannot read %s (%s); evaluating the prompt instead", path, exc)
            return None
        problem, state = _parse(data, self.model_key, tokens)
        if problem:
            log.warning("prompt cache: %s is unusable (%s); deleting it", path, problem)
            self.discard(tokens)
            return None
        try:
            os.utime(path)  # eviction drops the least recently *used* file first
        except OSError:
            pass
        return state

    def save(self, tokens: Sequence[int], state: bytes) -> Path | None:
        """Write the state after ``tokens`` atomically, then evict down to ``max_bytes``.

        The bytes go to a temporary file in the same directory which is then renamed over the
        final name, so a reader in another process sees either no file or a whole one. A state
        larger than the whole bound is not written. Failures are logged, not raised: the cache
        only ever saves time. Returns the file written, or None.
        """
        header = json.dumps(
            {
                "model": self.model_key,
                "n_tokens": len(tokens),
                "state_bytes": len(state),
                "state_sha256": hashlib.sha256(state).hexdigest(),
            }
        ).encode()
        blob = b"".join(
            [MAGIC, struct.pack("<I", len(header)), header, struct.pack(f"<{len(tokens)}i", *tokens), state]
        )
        if len(blob) > self.max_bytes:
            log.info("prompt cache: a %d-byte state exceeds the %d-byte bound; not saved", len(blob), self.max_bytes)
            return None
        path = self.path_for(tokens)
        tmp: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".bin")
            with os.fdopen(fd, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            log.warning("prompt cache: cannot write %s (%s)", path, exc)
            return None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self.evict(keep=path)
        return path

    def discard(self, tokens: Sequence[int]) -> None:
        """Delete the state saved for ``tokens``, if any."""
        try:
            self.path_for(tokens).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.warning("prompt cache: cannot delete %s (%s)", self.path_for(tokens), exc)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Delete the least recently used files under ``root`` until they fit ``max_bytes``.

        ``keep`` (the file just written) goes last. Returns the deleted files. Another process
        may delete the same files at the same time; a file already gone is simply skipped.
        """
        files: list[tuple[float, int, Path]] = []
        for p in self.root.glob("*/*.bin"):
            try:
                st = p.stat()
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, p))
        total = sum(size for _, size, _ in files)
        deleted: list[Path] = []
        for _, size, p in sorted(files, key=lambda f: (f[2] == keep, f[0])):
            if total <= self.max_bytes:
                break
            try:
                p.unlink()
                deleted.append(p)
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("prompt cache: cannot evict %s (%s)", p, exc)
                continue
            total -= size
        return deleted


def _parse(data: bytes, model_key: str, tokens: Sequence[int]) -> tuple[str, bytes]:
    """(problem, state): an empty problem means the file is whole and is for ``tokens``."""
    if not data.startswith(MAGIC):
        return "not a chatloom KV file", b""
    at = len(MAGIC)
    if len(data) < at + 4:
        return "truncated header", b""
    (n_header,) = struct.unpack_from("<I", data, at)
    at += 4
    try:
        header = json.loads(data[at : at + n_header])
    except ValueError:
        return "unreadable header", b""
    at += n_header
    if not isinstance(header, dict) or header.get("model") != model_key:
        return f"written for model {header.get('model') if isinstance(header, dict) else None!r}", b""
    n = len(tokens)
    if header.get("n_tokens") != n or len(data) < at + 4 * n:
        return "token count differs", b""
    if list(struct.unpack_from(f"<{n}i", data, at)) != list(tokens):
        return "token ids differ", b""
    state = data[at + 4 * n :]
    if len(state) != header.get("state_bytes"):
        return f"state is {len(state)} bytes, header says {header.get('state_bytes')}", b""
    if hashlib.sha256(state).hexdigest() != header.get("state_sha256"):
        return "state checksum differs", b""
    return "", state
