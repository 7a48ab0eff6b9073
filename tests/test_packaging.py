"""The wheel ships every file the code loads at run time, and ``py.typed``; checked without a build.

A file missing from the wheel passes every test run from a checkout and fails only after
``pip install``. These tests read the loaders in src/ (importlib.resources, jinja2's
PackageLoader, ``Path(__file__)`` neighbours) and check each resource against what hatchling
would put in the wheel. benchmarks/package_smoke.py builds the wheel and sdist for real and
installs them in a fresh venv.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PACKAGE = SRC / "chatloom"

# How the code reaches its package data. A new way of loading a file must be added here, or
# test_every_loader_is_understood fails, so no loader goes unchecked.
_PKG = r'"(chatloom(?:\.\w+)*)"'
LOADERS = [
    # files("chatloom.x") / "name"  or  files("chatloom.x").joinpath("name")
    (re.compile(rf'files\(\s*{_PKG}\s*\)\s*(?:/\s*"([^"]+)"|\.joinpath\(\s*"([^"]+)"\s*\))'), "package"),
    # jinja2.PackageLoader("chatloom.x", "templates")
    (re.compile(rf'PackageLoader\(\s*{_PKG}\s*,\s*"([^"]+)"\s*\)'), "package"),
    # Path(__file__).with_name("name")  or  Path(__file__).parent / "name"
    (
        re.compile(r'Path\(__file__\)(?:\.resolve\(\))?(?:\.with_name\(\s*"([^"]+)"\s*\)|\.parent\s*/\s*"([^"]+)")'),
        "module",
    ),
]
LOADER_HINT = re.compile(
    r'files\(\s*"chatloom|PackageLoader\(|Path\(__file__\)|__file__\)|pkgutil\.get_data|pkg_resources'
    r"|resources\.(?:read_text|read_binary|open_text|open_binary|path|contents)\("
)


def _code_lines():
    for path in sorted(PACKAGE.rglob("*.py")):
        if "scaffold" in path.relative_to(PACKAGE).parts:  # a new workspace's files, not chatloom's code
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.lstrip().startswith("#"):
                yield path, number, line


def loaded_resources() -> dict[Path, str]:
    """Each file or folder the code loads as package data -> where (``file:line``)."""
    found: dict[Path, str] = {}
    for path, number, line in _code_lines():
        for pattern, kind in LOADERS:
            for match in pattern.finditer(line):
                groups = [g for g in match.groups() if g]
                if kind == "package":
                    package, name = groups[0], groups[1]
                    base = SRC.joinpath(*package.split("."))
                else:
                    base, name = path.parent, groups[0]
                found[base / name] = f"{path.relative_to(ROOT)}:{number}"
    return found


def data_files() -> list[Path]:
    """The package's non-Python files (what the wheel must carry besides modules)."""
    return sorted(
        p
        for p in PACKAGE.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    )


def test_every_loader_is_understood():
    """A line that loads package data in a way LOADERS can't read would go unchecked."""
    unread = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, number, line in _code_lines()
        if LOADER_HINT.search(line) and not any(pattern.search(line) for pattern, _ in LOADERS)
    ]
    assert not unread, f"teach tests/test_packaging.py LOADERS these resource loads: {unread}"


def test_every_loaded_resource_exists_and_is_data():
    resources = loaded_resources()
    # The loaders known when this test was written; fewer means the patterns stopped matching.
    assert len(resources) >= 5, resources
    for resource, where in resources.items():
        assert resource.exists(), f"{where} loads {resource.relative_to(ROOT)}, which does not exist"
        files = [resource] if resource.is_file() else [p for p in resource.rglob("*") if p.is_file()]
        assert files, f"{where} loads {resource.relative_to(ROOT)}, an empty folder"


def test_every_data_file_is_loaded_by_something():
    """A data file no loader reaches is dead, or loaded in a way these tests don't check."""
    resources = loaded_resources()
    unreached = [
        str(p.relative_to(ROOT))
        for p in data_files()
        if p != PACKAGE / "py.typed" and not any(p == r or r in p.parents for r in resources)
    ]
    assert not unreached, f"no loader found for {unreached}: add its loader to LOADERS, or delete the file"


def test_py_typed_ships():
    # PEP 561: type checkers read an installed package's inline hints only with this marker.
    assert (PACKAGE / "py.typed").is_file()


def test_pyproject_wheel_target_takes_the_whole_package():
    """Hatchling's wheel target ships everything under its packages, minus exclude and gitignore."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert config["build-system"]["build-backend"] == "hatchling.build"
    wheel = config["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["src/chatloom"]
    assert "only-include" not in wheel, "only-include would drop package data; list data files in the test too"
    excluded = [
        p
        for p in data_files() + [PACKAGE / "py.typed"]
        for pattern in wheel.get("exclude", [])
        if fnmatch.fnmatch(str(p.relative_to(ROOT)), pattern)
    ]
    assert not excluded, f"[tool.hatch.build.targets.wheel] exclude drops {excluded}"


def _gitignored(relative: str, patterns: list[str]) -> str | None:
    """The .gitignore pattern that matches ``relative`` (a simple reading: enough for this file)."""
    parts = relative.split("/")
    for pattern in patterns:
        bare = pattern.rstrip("/").lstrip("/")
        if "/" in bare:
            if fnmatch.fnmatch(relative, bare) or relative.startswith(bare + "/"):
                return pattern
        elif pattern.endswith("/"):
            if any(fnmatch.fnmatch(part, bare) for part in parts[:-1]):
                return pattern
        elif any(fnmatch.fnmatch(part, bare) for part in parts):
            return pattern
    return None


def test_no_package_data_is_gitignored():
    # Hatchling leaves out what .gitignore matches: a bundled *.bin or *.onnx would silently drop.
    patterns = [
        line.strip()
        for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith(("#", "!"))
    ]
    ignored = {
        str(p.relative_to(ROOT)): hit for p in data_files() if (hit := _gitignored(str(p.relative_to(ROOT)), patterns))
    }
    assert not ignored, f"the wheel would leave out these files (matched by .gitignore): {ignored}"


def test_hatchling_puts_every_loaded_resource_in_the_wheel():
    """The wheel's exact file list, as hatchling computes it (no wheel written; ~0.2 s)."""
    wheel_builder = pytest.importorskip(
        "hatchling.builders.wheel", reason="hatchling (the build backend) is in the test extra"
    )
    builder = wheel_builder.WheelBuilder(str(ROOT))
    shipped = {f.distribution_path for f in builder.recurse_included_files()}
    needed = {"chatloom/" + p.relative_to(PACKAGE).as_posix() for p in data_files()} | {"chatloom/py.typed"}
    for resource in loaded_resources():
        needed |= {
            "chatloom/" + p.relative_to(PACKAGE).as_posix()
            for p in ([resource] if resource.is_file() else resource.rglob("*"))
            if p.is_file()
        }
    assert not needed - shipped, f"missing from the wheel: {sorted(needed - shipped)}"
