"""``chatloom plugins list``: the installed plugin entry points, imported only with ``--check``.

Only click is imported at module level; the plugin registry and rich load when the command runs.
"""

from __future__ import annotations

import json
from typing import Any

import click

from chatloom.errors import ChatloomError


@click.group("plugins")
def plugins() -> None:
    """List installed plugins (entry points in chatloom.prompts/.tools/.models/.memory)."""


@plugins.command("list")
@click.option(
    "--check",
    is_flag=True,
    help="Import every plugin, read and validate every prompt file a plugin declares, and report the "
    "ones that fail; exit status 2 if any does.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins_list_cmd(check: bool, as_json: bool) -> None:
    """Show every plugin entry point. Nothing is imported unless --check is given."""
    from chatloom import plugins as registry

    rows = []
    for p in registry.all_plugins():
        status = "not loaded"
        if check:
            error = _check(p)
            status = f"error: {error}" if error else "ok"
        rows.append(
            {"group": p.group, "name": p.name, "package": f"{p.dist} {p.version}", "value": p.value, "status": status}
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif rows:
        _print_table(rows, check)
    else:
        click.echo(
            "No plugins installed. A plugin is a package with chatloom.tools/.prompts/.models/.memory entry points;"
        )
        click.echo("see examples/chatloom-example-plugin.")
    failed = sum(r["status"].startswith("error") for r in rows)
    if failed:
        raise ChatloomError(
            f"{failed} of {len(rows)} plugins failed the check", "fix or uninstall the plugins marked error above"
        )


def _check(plugin: Any) -> ChatloomError | None:
    """Why ``plugin`` can't be used, or None. Importing it is not enough for a prompt plugin: the
    YAML it points at may be missing from the installed package, or be no valid template."""
    from chatloom import plugins as registry

    error = registry.check(plugin)
    if error is not None or plugin.group != "chatloom.prompts":
        return error
    from chatloom.prompts.loader import check_prompt_plugin

    try:
        check_prompt_plugin(plugin)
    except ChatloomError as exc:  # PluginError (a missing file) or PromptError (a bad template)
        return exc
    return None


def _print_table(rows: list[dict[str, str]], check: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    table = Table(box=None, pad_edge=False)
    for column in ("group", "name", "package", "value", *(("status",) if check else ())):
        table.add_column(column)
    for r in rows:
        status = r["status"]
        # Text, not markup: an entry point may name extras ("mod:obj [gpu]") and an error's hint
        # may quote "[tool.setuptools.package-data]".
        cells = [Text(r[column]) for column in ("group", "name", "package", "value")]
        if check:
            cells.append(Text("ok", style="green") if status == "ok" else Text(status, style="red"))
        table.add_row(*cells)
    from chatloom.cli.render import table_console

    table_console().print(table)
