"""Fixtures for memory tests: a per-test data dir sharing one ONNX export, and real servers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from memhelpers import free_port

from chatloom.config import get_settings
from chatloom.testing import stop_process, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
EVALDATA = REPO.parent / "shared" / "evaldata"


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ONNX export of the bundled MiniLM for the whole session (export takes ~10 s)."""
    from chatloom.memory.embeddings import onnx_model_path

    d = tmp_path_factory.mktemp("models")
    onnx_model_path(d)
    return d


@pytest.fixture(scope="session")
def minilm(onnx_cache: Path):
    from chatloom.memory.embeddings import MiniLMEmbeddings

    return MiniLMEmbeddings(onnx_cache)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, onnx_cache: Path) -> Path:
    """A data dir of this test's own (sharing the ONNX export), in this process's environment:
    no config file, no shared stores, no API keys (tests/server imports it too)."""
    h = tmp_path / "home"
    (h / "models").mkdir(parents=True)
    (h / "models" / "all-MiniLM-L6-v2-onnx").symlink_to(onnx_cache / "all-MiniLM-L6-v2-onnx")
    monkeypatch.setenv("CHATLOOM_HOME", str(h))
    for var in ("CHATLOOM_MEMORY_URL", "CHATLOOM_INDEX_URL", "CHATLOOM_CHECKPOINT_URL", "CHATLOOM_API_KEYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CHATLOOM_CONFIG", str(tmp_path / "no-such-chatloom.toml"))
    return h


@pytest.fixture
def settings(home: Path):
    return get_settings()


@pytest.fixture
def mem(settings, minilm):
    from chatloom.memory import open_memory

    m = open_memory(settings, namespace="test", embeddings=minilm)
    yield m
    m.close()


# -- a real PostgreSQL server -----------------------------------------------------------------
def _pg_bindir() -> Path | None:
    for cand in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    found = shutil.which("initdb")
    return Path(found).parent if found else None


@pytest.fixture(scope="session")
def postgres_dsn(tmp_path_factory: pytest.TempPathFactory):
    """A throwaway PostgreSQL cluster on 127.0.0.1, started with initdb + pg_ctl.

    PostgreSQL refuses to run as root, so as root the cluster runs as the ``postgres`` user
    (created by Debian's package).
    """
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; install them with `apt-get install -y postgresql`"
        )
    base = tmp_path_factory.mktemp("pg")
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    port = free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chmod(base, 0o755)
        for p in (base.parent, base.parent.parent):
            os.chmod(p, os.stat(p).st_mode | 0o711)
        os.chown(base, pw.pw_uid, pw.pw_gid)
        os.chown(sock, pw.pw_uid, pw.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    run = lambda *cmd: subprocess.run(  # noqa: E731
        [*prefix, *cmd], check=True, capture_output=True, text=True, timeout=120
    )
    run(str(bindir / "initdb"), "-D", str(data), "-U", "chatloom", "--auth=trust", "-E", "UTF8")
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(base / "log"),
        "-w",
        "-t",
        "60",
        "-o",
        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "chatloom", "chatloom")
        yield f"postgresql://chatloom@127.0.0.1:{port}/chatloom"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )


# -- a real Chroma server ---------------------------------------------------------------------
@pytest.fixture(scope="session")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    exe = Path(sys.executable).parent / "chroma"
    if not exe.exists():
        exe_s = shutil.which("chroma")
        if exe_s is None:
            pytest.skip("the `chroma` command is not installed (pip install chromadb)")
        exe = Path(exe_s)
    port = free_port()
    path = tmp_path_factory.mktemp("chroma-server")
    log = open(path.parent / "chroma-server.log", "w")
    proc = subprocess.Popen(
        [str(exe), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{url}/api/v2/heartbeat", what="chroma run")
    except RuntimeError as exc:
        pytest.fail(f"{exc}; see {log.name}")
    yield url
    stop_process(proc)
    log.close()
