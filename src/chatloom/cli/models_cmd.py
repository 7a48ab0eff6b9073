"""``chatloom models``: list the local model catalog and install models into the data dir."""

from __future__ import annotations

from pathlib import Path

import click

from chatloom.errors import ChatloomError


def _home() -> Path:
    from chatloom.config import get_settings

    return get_settings().data_dir()


def _engine_label() -> str:
    from chatloom.models.local import available_engines

    engines = available_engines()
    if "llama" in engines:
        return "llama.cpp"
    if "transformers" in engines:
        return "transformers"
    from chatloom.errors import install_hint

    return f"none ({install_hint('local')})"


@click.group("models")
def models() -> None:
    """List and install local models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(as_json: bool) -> None:
    """Show the catalog: which models are installed, their size and the engine that runs them."""
    from chatloom.config import get_settings
    from chatloom.models.catalog import DEFAULT_LOCAL_MODEL
    from chatloom.models.install import list_models

    settings = get_settings()
    rows = list_models(settings.data_dir())
    engine = _engine_label()
    current = settings.model.removeprefix("local:")
    if as_json:
        import json

        data = [
            {
                "name": r.entry.name,
                "title": r.entry.title,
                "size": r.entry.size,
                "sha256": r.entry.sha256,
                "status": r.source,
                "path": str(r.path) if r.path else None,
                "engine": engine,
                "default": r.entry.name == DEFAULT_LOCAL_MODEL,
            }
            for r in rows
        ]
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="local models", title_justify="left")
    table.add_column("name", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("installed", no_wrap=True)
    table.add_column("engine", no_wrap=True)
    table.add_column("model")
    for r in rows:
        mark = " *" if r.entry.name == current else ""
        installed = {"installed": "[green]yes[/]", "bundled": "[green]yes (package)[/]"}.get(r.source, "[red]no[/]")
        table.add_row(r.entry.name + mark, f"{r.entry.size / 1e6:,.0f} MB", installed, engine, r.entry.title)
    console = Console()
    console.print(table)
    console.print(f"* = current model ({settings.model}); install with `chatloom models install NAME`")


@models.command("install")
@click.argument("name", required=False)
@click.option("--keep-downloads", is_flag=True, help="Keep the downloaded wheels after assembly.")
@click.option("--force", is_flag=True, help="Re-assemble even if a verified copy exists.")
def install_cmd(name: str | None, keep_downloads: bool, force: bool) -> None:
    """Download, assemble and verify a model (default: the configured local model)."""
    from chatloom.config import get_settings
    from chatloom.models.catalog import DEFAULT_LOCAL_MODEL, get_entry
    from chatloom.models.install import install

    settings = get_settings()
    if name is None:
        name = settings.model.removeprefix("local:") if settings.model.startswith("local:") else DEFAULT_LOCAL_MODEL
    entry = get_entry(name)
    home = settings.data_dir()

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    labels = {"download": "downloading parts", "assemble": "assembling", "verify": "verifying"}
    with Progress(
        TextColumn("{task.description:<18}"),
        BarColumn(),
        TextColumn("{task.fields[info]}", style="dim"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            info = f"{done}/{total}" if stage == "download" else f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB"
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total, info=info)
            bar.update(tasks[stage], completed=done, total=total, info=info)

        try:
            path = install(entry.name, home=home, progress=progress, keep_downloads=keep_downloads, force=force)
        except KeyboardInterrupt:
            raise ChatloomError(
                f"install of {entry.name!r} interrupted", "run the same command again; it resumes"
            ) from None
    click.echo(f"{entry.name} installed and verified: {path}")
