"""``chatloom plugins list``: the installed plugin entry points, imported only with ``--check``.

Only click is imported at module level; the plugin registry and rich load when the command runs.
"""

from __future__ import annotations

import json

import click


@click.group("plugins")
def plugins() -> None:
    """List installed plugins (entry points in chatloom.prompts/.tools/.models/.memory)."""


@plugins.command("list")
@click.option("--check", is_flag=True, help="Import every plugin and report the ones that fail.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list_cmd(check: bool, as_json: bool) -> None:
    """Show every plugin entry point. Nothing is imported unless --check is given."""
    from chatloom import plugins as registry

    rows = []
    for p in registry.all_plugins():
        status = "not loaded"
        if check:
            error = registry.check(p)
            status = f"error: {error}" if error else "ok"
        rows.append(
            {"group": p.group, "name": p.name, "package": f"{p.dist} {p.version}", "value": p.value, "status": status}
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(
            "No plugins installed. A plugin is a package with chatloom.tools/.prompts/.models/.memory entry points;"
        )
        click.echo("see examples/chatloom-example-plugin.")
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("group", "name", "package", "value", *(("status",) if check else ())):
        table.add_column(column)
    for r in rows:
        status = r["status"]
        cells = [r["group"], r["name"], r["package"], r["value"]]
        if check:
            cells.append("[green]ok[/]" if status == "ok" else f"[red]{status}[/]")
        table.add_row(*cells)
    from chatloom.cli.render import table_console

    table_console().print(table)
