"""Plugin fixtures: the real example packages pip-installed into a private target dir, and
hand-made distributions (a dist-info folder with entry_points.txt) for broken-plugin cases.

Installing with ``--target`` puts a real installed distribution on ``sys.path`` for the test
that asks for it, without changing the shared virtualenv other tests run in.
"""

import shutil
import subprocess
import sys
from pathlib import Path
from textwrap import dedent

import pytest

from chatloom import plugins

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE = EXAMPLES / "chatloom-example-plugin"
CUSTOM_BACKEND = EXAMPLES / "custom_backend.py"


def pip_install(source: Path, target: Path) -> None:
    """``pip install`` the package at ``source`` into ``target``: offline, no deps, no isolation."""
    setuptools = pytest.importorskip("setuptools", reason="building a plugin package needs setuptools in the test venv")
    if tuple(int(x) for x in setuptools.__version__.split(".")[:2]) < (70, 1):
        pytest.skip(f"building a plugin package needs setuptools>=70.1 (has {setuptools.__version__})")
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "--disable-pip-version-check",
        "--target",
        str(target),
        str(source),
    ]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def example_plugin_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pip-install examples/chatloom-example-plugin into a fresh directory; return it."""
    root = tmp_path_factory.mktemp("example-plugin")
    source = root / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    pip_install(source, target)
    assert (target / "chatloom_example_plugin" / "haiku.yaml").is_file()
    return target


@pytest.fixture
def unpackaged_example_plugin(tmp_path: Path):
    """The example plugin built WITHOUT its package-data line, installed and visible for one
    test: the mistake that line prevents (the wheel has the code but not haiku.yaml)."""
    source = tmp_path / "src"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pyproject = source / "pyproject.toml"
    text = pyproject.read_text()
    package_data = '[tool.setuptools.package-data]\nchatloom_example_plugin = ["*.yaml"]\n'
    assert package_data in text  # the example shows the line; this fixture removes it
    pyproject.write_text(text.replace(package_data, ""))
    target = tmp_path / "site"
    pip_install(source, target)
    assert not (target / "chatloom_example_plugin" / "haiku.yaml").exists()
    _activate(target)
    yield target
    _deactivate(target, ("chatloom_example_plugin",))


@pytest.fixture(scope="session")
def custom_backend_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/custom_backend.py, packaged as the docstring says (``shout`` in chatloom.models)
    and pip-installed into a fresh directory; return it."""
    source = tmp_path_factory.mktemp("custom-backend") / "src"
    source.mkdir()
    shutil.copy(CUSTOM_BACKEND, source / "custom_backend.py")
    (source / "pyproject.toml").write_text(
        dedent("""
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "chatloom-shout-backend"
        version = "1.0"

        [project.entry-points."chatloom.models"]
        shout = "custom_backend:ShoutModel"

        [tool.setuptools]
        py-modules = ["custom_backend"]
    """).lstrip()
    )
    target = source.parent / "site"
    pip_install(source, target)
    return target


def _activate(path: Path):
    sys.path.insert(0, str(path))
    plugins.refresh()


def _deactivate(path: Path, prefixes: tuple[str, ...]):
    while str(path) in sys.path:
        sys.path.remove(str(path))
    for name in [m for m in sys.modules if m.startswith(prefixes)]:
        del sys.modules[name]
    plugins.refresh()


@pytest.fixture
def example_plugin(example_plugin_target: Path):
    """The example plugin, installed and visible to entry-point discovery for one test."""
    _activate(example_plugin_target)
    yield example_plugin_target
    _deactivate(example_plugin_target, ("chatloom_example_plugin",))


@pytest.fixture
def custom_backend(custom_backend_target: Path):
    """examples/custom_backend.py as an installed ``chatloom.models`` plugin, for one test."""
    _activate(custom_backend_target)
    yield custom_backend_target
    _deactivate(custom_backend_target, ("custom_backend",))


@pytest.fixture
def fake_dist(tmp_path: Path):
    """make(dist, entry_points={group: {name: value}}, modules={"pkg.py": source}) -> site dir."""
    made: list[tuple[Path, tuple[str, ...]]] = []

    def make(dist: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]) -> Path:
        site = tmp_path / f"site-{dist}"
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = []
        for group, eps in entry_points.items():
            lines.append(f"[{group}]")
            lines += [f"{name} = {value}" for name, value in eps.items()]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
        for rel, text in modules.items():
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text(dedent(text).lstrip("\n"))
        prefixes = tuple(Path(rel).parts[0].removesuffix(".py") for rel in modules)
        made.append((site, prefixes))
        _activate(site)
        return site

    yield make
    for site, prefixes in made:
        _deactivate(site, prefixes)
