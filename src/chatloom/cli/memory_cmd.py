"""``chatloom ingest`` and ``chatloom memory list | search | forget``."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import click

from chatloom.errors import ChatloomError

_NS_HELP = "Namespace (one per bot); default 'default'."
_TENANT_HELP = "Tenant (one per customer); default 'default'."


def _open(namespace: str | None, tenant: str | None) -> Any:
    from chatloom.config import get_settings
    from chatloom.memory import open_memory

    return open_memory(get_settings(), namespace=namespace, tenant=tenant)


def _display(source: str) -> str:
    """Sources are stored by absolute path (passages carry their name under the ingested folder
    instead); `memory list` shows them relative to the cwd when inside it."""
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return rel if not rel.startswith("..") and not source.startswith("conversation:") else source


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--namespace", "-n", default=None, help=_NS_HELP)
@click.option("--tenant", default=None, help=_TENANT_HELP)
@click.option(
    "--name",
    default=None,
    help="What citations call the one file or folder given (a folder's files become NAME/their/path); "
    "default: the path under the folder, or the file name.",
)
def ingest(paths: tuple[str, ...], namespace: str | None, tenant: str | None, name: str | None) -> None:
    """Add .md .txt .pdf .html files (or folders of them) to the knowledge memory.

    Re-running is incremental: unchanged files are skipped, changed ones replaced and files
    deleted from an ingested folder are removed. Citations name each file by its path under
    the folder given (`chatloom ingest docs/` cites docs/hr/leave.md as hr/leave.md), never by
    this machine's path.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    mem = _open(namespace, tenant)
    with Progress(
        TextColumn("[bold]ingest"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("", total=None)

        def progress(path: str, done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, description=_display(path)[-50:])

        report = mem.ingest(paths, progress=progress, name=name)
    for path, reason in report.skipped:
        # A file name or reason may hold "[...]": printed as text, never as rich markup.
        err.print(f"[yellow]warning:[/] skipped {escape(_display(path))}: {escape(reason)}", highlight=False)
    click.echo(report.summary())


@click.group("memory")
def memory() -> None:
    """List, search and forget what the bot remembers."""


@memory.command("list")
@click.option("--namespace", "-n", default=None, help="Show the files of this namespace.")
@click.option("--tenant", default=None, help=_TENANT_HELP)
def list_cmd(namespace: str | None, tenant: str | None) -> None:
    """List namespaces, or the files ingested into one namespace."""
    mem = _open(namespace, tenant)
    if namespace is None:
        rows = mem.namespaces()
        if not rows:
            click.echo("memory is empty; add documents with `chatloom ingest PATH`")
            return
        for ns, files, chunks in rows:
            click.echo(f"{ns}\t{files} files\t{chunks} chunks")
        return
    files = mem.sources()
    if not files:
        click.echo(f"namespace {mem.ns!r} has no files")
    for source, chunks, at in files:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(at))
        click.echo(f"{_display(source)}\t{chunks} chunks\t{stamp}")


@memory.command("search")
@click.argument("query")
@click.option("-k", default=4, show_default=True, help="How many passages.")
@click.option("--namespace", "-n", default=None, help=_NS_HELP)
@click.option("--tenant", default=None, help=_TENANT_HELP)
@click.option("--user", "user_id", default=None, help="Include this user's conversation memory.")
@click.option("--mode", type=click.Choice(["hybrid", "vector", "keyword"]), default="hybrid", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
def search_cmd(
    query: str, k: int, namespace: str | None, tenant: str | None, user_id: str | None, mode: str, as_json: bool
) -> None:
    """Search the memory the way the bot's recall step does."""
    from chatloom.memory.ingest import heading

    mem = _open(namespace, tenant)
    hits = mem.search(query, k=k, user_id=user_id, mode=mode)
    if not hits:
        click.echo("no matches")
    for i, p in enumerate(hits, 1):
        if as_json:
            click.echo(json.dumps(p.__dict__))
            continue
        where = heading(p.title, p.section)
        click.echo(f"[{i}] {p.source}#{p.chunk}  score={p.score:.3f}  {where}")  # as citations name it
        text = " ".join(p.text.split())
        click.echo(f"    {text[:300]}{'…' if len(text) > 300 else ''}")


@memory.command("forget")
@click.argument("source", required=False)
@click.option("--namespace", "-n", default=None, help="Namespace; with no SOURCE the whole namespace is deleted.")
@click.option("--tenant", default=None, help=_TENANT_HELP)
@click.option("--user", "user_id", default=None, help="Forget this user's conversation memory.")
@click.option("--yes", "-y", is_flag=True, help="Don't ask before deleting a namespace.")
def forget(source: str | None, namespace: str | None, tenant: str | None, user_id: str | None, yes: bool) -> None:
    """Remove a SOURCE file (or folder), a user's memory, or a whole --namespace."""
    if source is None and namespace is None and user_id is None:
        raise ChatloomError("nothing to forget", "give a SOURCE, --namespace NS or --user ID")
    mem = _open(namespace, tenant)
    if source is None and user_id is None and not yes:
        click.confirm(f"delete every chunk in namespace {mem.ns!r}?", abort=True, err=True)
    n = mem.forget(source, namespace=namespace, user_id=user_id)
    what = source or (f"user {user_id!r}" if user_id else f"namespace {mem.ns!r}")
    click.echo(f"forgot {what}: {n} chunks removed")
