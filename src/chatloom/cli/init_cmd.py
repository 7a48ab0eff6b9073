"""``chatloom init DIR``: a new bot workspace that runs right away.

The files it writes are package data, in ``chatloom/scaffold/``, laid out as they land in the
workspace. In their names and text ``{bot}`` becomes the bot's name, and ``gitignore`` is
written as ``.gitignore`` (a real one in the package would be read by git as the package's own).
``evals/smoke.jsonl`` holds one eval case a line (docs/eval.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

import click

from chatloom.errors import ChatloomError

# Scaffold names that are written under another name.
_RENAMED = {"gitignore": ".gitignore"}


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="The bot's name. Default: the directory's name.")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init_cmd(directory: Path, name: str | None, force: bool) -> None:
    """Create a bot workspace: agents/, prompts/, tools/, memory/ and chatloom.toml.

    \b
    Then:  cd DIRECTORY && chatloom chat
    """
    bot = name or _slug(directory.resolve().name)
    written, kept = scaffold(directory, bot, force=force)
    for path in written:
        click.echo(f"  created  {path}")
    for path in kept:
        click.echo(f"  kept     {path} (exists; --force overwrites)")
    click.echo(
        f"\nYour bot {bot!r} is ready. Try:\n"
        f"  cd {directory}\n"
        f'  chatloom ask "What is 17*23?"     # runs agents/assistant.yaml\n'
        f"  chatloom chat\n"
        f"Edit prompts/{bot}.yaml to change its persona and tools/today.py to see how a tool is written.\n"
        f"Measure it with `chatloom eval` (evals/smoke.jsonl); `--save-baseline`, then `--check` in CI."
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "bot"


def scaffold_files() -> Iterator[tuple[str, Traversable]]:
    """``(relative path with {bot} placeholders, resource)`` for each file ``chatloom init`` writes.

    >>> sorted(relative for relative, _ in scaffold_files())[:3]
    ['.gitignore', 'agents/assistant.yaml', 'chatloom.toml']
    """

    def walk(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
        for entry in folder.iterdir():
            if entry.is_dir():
                if entry.name != "__pycache__":  # left by anyone who ran tools/today.py in place
                    yield from walk(entry, f"{prefix}{entry.name}/")
            else:
                yield prefix + _RENAMED.get(entry.name, entry.name), entry

    yield from walk(files("chatloom") / "scaffold", "")


def scaffold(directory: Path, bot: str, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Write the workspace files; returns (written, kept) paths. Existing files are kept unless ``force``."""
    if directory.exists() and not directory.is_dir():
        raise ChatloomError(f"{str(directory)!r} exists and is not a directory", "choose another path")
    written: list[Path] = []
    kept: list[Path] = []
    for relative, resource in sorted(scaffold_files()):
        path = directory / relative.replace("{bot}", bot)
        if path.exists() and not force:
            kept.append(path)
            continue
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(resource.read_text(encoding="utf-8").replace("{bot}", bot), encoding="utf-8")
        except OSError as exc:
            raise ChatloomError(
                f"can't write {str(path)!r}: {exc.strerror or exc}", "check the directory's permissions"
            ) from None
        written.append(path)
    return written, kept
