"""Build chatloom's sdist and wheel, install them in fresh venvs, and smoke-test the install.

Not a benchmark (``./run bench`` runs only ``bench_*.py``): a release check, with timings. Each
step runs in a scratch directory, outside this checkout, so nothing is imported from ``src/``:

1. build: ``python -m build`` (the sdist, then the wheel built *from the sdist*, so a file the
   sdist misses is missing from the wheel too). ``build`` is installed into a scratch venv when
   this Python lacks it; its isolated build env gets hatchling from the package registry.
2. contents: every file git tracks under ``src/chatloom`` is in the wheel (the prompt YAML, the
   web page, the scaffold, the eval report template, ``py.typed``), and nothing else is.
3. a fresh venv with the wheel and no extras: ``chatloom --help``; a fake-model chat through the
   public API; the built-in prompts and ``chatloom init`` (package data read back through
   importlib.resources); and each feature that needs an extra fails with a one-line error
   naming the install command, not a traceback.
4. ``--sdist``: the same install and checks from the sdist, in a second venv.

    python benchmarks/package_smoke.py            # build, install the wheel, check (about 1-2 min)
    python benchmarks/package_smoke.py --sdist    # also install the sdist in a second venv
    python benchmarks/package_smoke.py --keep     # keep the scratch directory (dist/, venvs)

Prints a report with each step's time and exits 1 if any step failed. pip reads the package
registry (the base dependencies), using its usual cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"

# The public-API chat the issue asks for, plus where chatloom was imported from (the venv, not src/).
CHAT = textwrap.dedent(
    """
    import chatloom
    from chatloom import Agent
    from chatloom.testing import FakeChatModel
    reply = Agent(model=FakeChatModel(["hi"]), checkpointer="memory").chat("hello")
    assert reply.answer == "hi", reply
    print(reply.answer, "|", chatloom.__file__)
    """
)

# Package data read back the way the code reads it.
RESOURCES = textwrap.dedent(
    """
    from importlib.resources import files
    import jinja2
    from chatloom import load_prompt
    assert (files("chatloom") / "py.typed").is_file()
    names = sorted(p.name for p in (files("chatloom.prompts") / "builtin").iterdir())
    for name in names:
        load_prompt(name.removesuffix(".yaml"))
    assert files("chatloom.server").joinpath("static/chat.html").read_text(encoding="utf-8")
    jinja2.Environment(loader=jinja2.PackageLoader("chatloom.evals", "templates")).get_template("report.html.j2")
    assert (files("chatloom.memory") / "calibration.txt").is_file()  # read via Path(__file__)
    print(len(names), "built-in prompts, chat.html, report.html.j2, calibration.txt, py.typed")
    """
)

# Features that need an extra: (label, argv after `chatloom`). Each must fail fast with a one-line
# error that says what to install: exit status != 0, "pip install" in the output, no traceback.
NEEDS_EXTRA = [
    ("serve needs [server]", ["serve", "--port", "0"]),
    ("ingest needs [memory]", ["ingest", "{doc}"]),
    ("mcp serve needs [mcp]", ["mcp", "serve"]),
    ("ask on the local default needs [local]", ["ask", "hello"]),
]


@dataclass
class Step:
    name: str
    seconds: float
    ok: bool
    detail: str = ""


class Smoke:
    def __init__(self, scratch: Path) -> None:
        self.scratch = scratch
        self.steps: list[Step] = []
        self.home = scratch / "home"  # CHATLOOM_HOME of every run: no user data touched
        self.work = scratch / "work"  # the cwd of every run: no chatloom.toml, no src/ on the path
        self.home.mkdir()
        self.work.mkdir()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "CHATLOOM_", "VIRTUAL_ENV"))}
        env["CHATLOOM_HOME"] = str(self.home)
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        return env

    def run(self, argv: list[str], timeout: float = 900) -> tuple[int, str, float]:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                argv,
                cwd=self.work,
                env=self.env(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            code, out = done.returncode, done.stdout + done.stderr
        except subprocess.TimeoutExpired as exc:
            code, out = -1, f"timed out after {timeout:.0f} s\n{exc.stdout or ''}{exc.stderr or ''}"
        return code, out, time.perf_counter() - start

    def step(self, name: str, argv: list[str], expect=None, timeout: float = 900, summary=None) -> str:
        """Run ``argv``; ok when it exits 0 and ``expect(output)`` (if given) returns "" (or an error).
        The report shows ``summary(output)``, by default the output's last line (pip's warnings aside)."""
        code, out, seconds = self.run(argv, timeout)
        problem = f"exit status {code}" if code != 0 else (expect(out) if expect else "")
        lines = [line for line in out.strip().splitlines() if line.strip() and not line.startswith("WARNING:")]
        if problem:
            detail = problem + "\n" + "\n".join(lines[-15:])
        else:
            detail = summary(out) if summary else (lines[-1] if lines else "")
        self.steps.append(Step(name, seconds, not problem, detail))
        return out

    def check(self, name: str, problem: str, seconds: float = 0.0, detail: str = "") -> None:
        self.steps.append(Step(name, seconds, not problem, problem or detail))


def tracked_package_files() -> set[str]:
    """Files git tracks under src/chatloom, as wheel paths (chatloom/...)."""
    out = subprocess.run(
        ["git", "ls-files", "src/chatloom"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return {line.removeprefix("src/") for line in out.splitlines() if (ROOT / line).is_file()}


def check_contents(smoke: Smoke, wheel: Path, sdist: Path) -> None:
    start = time.perf_counter()
    tracked = tracked_package_files()
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.startswith("chatloom/")}
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))
        entry_points = zf.read(metadata).decode()
    missing = sorted(tracked - shipped)
    extra = sorted(shipped - tracked)
    data = sorted(n for n in shipped if not n.endswith(".py"))
    problems = []
    if missing:
        problems.append(f"missing from the wheel: {missing}")
    if extra:
        problems.append(f"in the wheel but not tracked by git (a stray local file?): {extra}")
    if "chatloom/py.typed" not in shipped:
        problems.append("no chatloom/py.typed")
    if "chatloom = chatloom.cli.main:main" not in entry_points:
        problems.append("no `chatloom` console script in entry_points.txt")
    smoke.check(
        "wheel contents",
        "; ".join(problems),
        time.perf_counter() - start,
        f"{len(shipped)} files, {len(data)} of them data: "
        + ", ".join(sorted({n.split("/")[1] + "/" if n.count("/") > 1 else n.split("/")[-1] for n in data})),
    )
    with tarfile.open(sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    need = {"pyproject.toml", "README.md", "src/chatloom/py.typed"} | {"src/" + n for n in tracked}
    lacking = sorted(need - names)
    smoke.check(
        "sdist contents",
        f"missing from the sdist: {lacking}" if lacking else "",
        detail=f"{len(names)} entries, {sdist.stat().st_size / 1e6:.1f} MB",
    )


def build(smoke: Smoke) -> tuple[Path, Path] | None:
    python = sys.executable
    if subprocess.run([python, "-c", "import build"], capture_output=True).returncode != 0:
        tools = smoke.scratch / "build-venv"
        smoke.step("venv with `build`", [sys.executable, "-m", "venv", str(tools)])
        python = str(tools / "bin" / "python")
        smoke.step("pip install build", [python, "-m", "pip", "install", "-q", "build"])
    dist = smoke.scratch / "dist"
    smoke.step("build sdist + wheel", [python, "-m", "build", "--outdir", str(dist), str(ROOT)])
    wheels, sdists = sorted(dist.glob("*.whl")), sorted(dist.glob("*.tar.gz"))
    if not (wheels and sdists):
        smoke.check("dist files", f"expected a wheel and an sdist in {dist}, found {sorted(dist.glob('*'))}")
        return None
    smoke.steps[-1].detail = f"{wheels[0].name} ({wheels[0].stat().st_size / 1e3:.0f} kB), {sdists[0].name}"
    return wheels[0], sdists[0]


def clear_error(out: str) -> str:
    lines = [line for line in out.strip().splitlines() if line.strip()]
    if "Traceback" in out or "internal error" in out:
        return "a traceback or internal error instead of a clear message"
    if "pip install" not in out:
        return "the error does not say what to install"
    if len(lines) > 3:
        return f"{len(lines)} lines of output, expected a short error"
    return ""


def smoke_install(smoke: Smoke, label: str, artifact: Path) -> None:
    venv = smoke.scratch / f"venv-{label}"
    smoke.step(f"[{label}] fresh venv", [sys.executable, "-m", "venv", str(venv)])
    bin_ = venv / "bin"
    smoke.step(f"[{label}] pip install {artifact.name}", [str(bin_ / "pip"), "install", "-q", str(artifact)])
    if not (bin_ / "chatloom").exists():
        smoke.check(f"[{label}] console script", f"no {bin_ / 'chatloom'} after the install")
        return
    smoke.step(
        f"[{label}] chatloom --help",
        [str(bin_ / "chatloom"), "--help"],
        expect=lambda out: "" if "Usage: chatloom" in out else "no usage text",
        timeout=60,
        summary=lambda out: f"{out.splitlines()[0]} ({out.count(chr(10))} lines)",
    )
    smoke.step(
        f"[{label}] fake-model chat",
        [str(bin_ / "python"), "-c", CHAT],
        expect=lambda out: "" if str(venv) in out else "chatloom was not imported from the fresh venv",
        timeout=120,
    )
    smoke.step(f"[{label}] package data", [str(bin_ / "python"), "-c", RESOURCES], timeout=120)
    bot = smoke.work / f"bot-{label}"
    smoke.step(
        f"[{label}] chatloom init",
        [str(bin_ / "chatloom"), "init", str(bot)],
        expect=lambda out: "" if (bot / "chatloom.toml").is_file() else "no chatloom.toml in the new workspace",
        timeout=60,
        summary=lambda out: f"{sum(1 for p in bot.rglob('*') if p.is_file())} files from the scaffold in {bot.name}/",
    )
    doc = smoke.work / "doc.md"
    doc.write_text("# Leave\n\nEmployees get 15 days of annual leave.\n", encoding="utf-8")
    for name, argv in NEEDS_EXTRA:
        code, out, seconds = smoke.run([str(bin_ / "chatloom"), *[a.format(doc=doc) for a in argv]], timeout=120)
        problem = "it exited 0: is the extra installed?" if code == 0 else clear_error(out)
        first = out.strip().splitlines()[0] if out.strip() else "(no output)"
        smoke.check(f"[{label}] {name}", problem and f"{problem}\n{out.strip()[-1500:]}", seconds, first)


def report(smoke: Smoke, total: float) -> int:
    width = max(len(s.name) for s in smoke.steps)
    print(f"\nchatloom package smoke test ({ROOT.name}, Python {sys.version.split()[0]})")
    for s in smoke.steps:
        mark = "ok  " if s.ok else "FAIL"
        first, *rest = (s.detail or "").splitlines() or [""]
        print(f"  {mark} {s.name:<{width}} {s.seconds:7.1f} s  {first[:110]}")
        if not s.ok:
            for line in rest:
                print(f"       {line[:160]}")
    failed = [s.name for s in smoke.steps if not s.ok]
    print(
        f"{len(smoke.steps) - len(failed)}/{len(smoke.steps)} ok in {total:.0f} s"
        + (f"; FAILED: {', '.join(failed)}" if failed else "")
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "package_smoke.json"
    path.write_text(json.dumps({"total_s": round(total, 1), "steps": [s.__dict__ for s in smoke.steps]}, indent=2))
    print(f"results: {path.relative_to(ROOT)}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sdist", action="store_true", help="also install the sdist in a second fresh venv")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory and print its path")
    args = parser.parse_args()
    start = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="chatloom-package-"))
    smoke = Smoke(scratch)
    try:
        built = build(smoke)
        if built:
            wheel, sdist = built
            check_contents(smoke, wheel, sdist)
            smoke_install(smoke, "wheel", wheel)
            if args.sdist:
                smoke_install(smoke, "sdist", sdist)
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    return report(smoke, time.perf_counter() - start)


if __name__ == "__main__":
    sys.exit(main())
