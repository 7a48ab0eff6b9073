"""``chatloom prompts list|show|render``.

Only click is imported at module level; templates, tools and rich load when a command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from chatloom.errors import ConfigError


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--var {pair!r} is not KEY=VALUE", "write it like --var product='Acme Cloud'")
        out[key.strip()] = value
    return out


_workspace_option = click.option(
    "--workspace",
    "-w",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="The bot workspace whose prompts/ and tools/ are searched.",
)


@click.group("prompts")
def prompts() -> None:
    """List, show and render prompt templates.

    Lookup order: a path, the workspace's prompts/, plugins, then the built-ins.
    """


@prompts.command("list")
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_cmd(workspace: Path, as_json: bool) -> None:
    """Show every template: name, where it comes from, and what it is for."""
    from chatloom.prompts import list_prompts

    rows = list_prompts(workspace)
    if as_json:
        click.echo(json.dumps([r.__dict__ for r in rows], indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for column in ("name", "source", "description"):
        table.add_column(column)
    for r in rows:
        name = f"[dim]{r.name} (shadowed)[/]" if r.shadowed else r.name
        description = f"[red]error: {r.error}[/]" if r.error else r.description
        table.add_row(name, r.source, description)
    from chatloom.cli.render import table_console

    table_console().print(table)


@prompts.command("show")
@click.argument("name")
@_workspace_option
def show_cmd(name: str, workspace: Path) -> None:
    """Show a template with `extends:` applied, as YAML."""
    from chatloom.prompts import load_prompt

    template = load_prompt(name, workspace)
    click.echo(_template_yaml(template))


@prompts.command("render")
@click.argument("name", required=False)
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="Set a template variable (repeatable).")
@click.option(
    "--tool", "tool_names", multiple=True, metavar="NAME", help="Bind a tool, as an agent would (repeatable)."
)
@click.option(
    "--spec",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Render an agent spec's prompt with its variables and tools (NAME, --var and --tool add to it).",
)
@_workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print the messages as JSON.")
def render_cmd(
    name: str | None,
    variables: tuple[str, ...],
    tool_names: tuple[str, ...],
    spec: Path | None,
    workspace: Path,
    as_json: bool,
) -> None:
    """Render a template into the messages the model receives."""
    from chatloom.prompts import load_prompt

    values: dict[str, Any] = {}
    names = list(tool_names)
    if spec is not None:
        from chatloom.agents.spec import load_spec

        agent = load_spec(spec)
        workspace = agent.workspace or workspace
        name = name or agent.prompt
        values.update(agent.variables)
        names = [*agent.tools, *(n for n in names if n not in agent.tools)]
    if name is None:
        raise ConfigError("no template to render", "give a template NAME or --spec agents/FILE.yaml")
    template = load_prompt(name, workspace)
    tools: list[Any] = []
    if names:
        from chatloom.tools.registry import resolve_tools

        tools = resolve_tools(names, workspace)
    values.update(_parse_vars(variables))
    messages = template.render(tools, values)
    if as_json:
        from langchain_core.messages import AIMessage

        data = [
            {
                "type": m.type,
                "content": m.content,
                **({"tool_calls": m.tool_calls} if isinstance(m, AIMessage) and m.tool_calls else {}),
            }
            for m in messages
        ]
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for message in messages:
        click.echo(click.style(f"── {message.type} ", bold=True) + "─" * max(0, 60 - len(message.type)))
        for call in getattr(message, "tool_calls", None) or []:
            click.echo(f"→ {call['name']}({json.dumps(call['args'], ensure_ascii=False)})")
        if message.content:
            click.echo(str(message.content))


def _template_yaml(template: Any) -> str:
    import yaml

    from chatloom.prompts.template import DEFAULT_TOOLS_SECTION

    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper: yaml.SafeDumper, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    data: dict[str, Any] = {
        "name": template.name,
        "description": template.description,
        "version": template.version,
        "reasoning": template.reasoning,
        "variables": dict(template.variables),
        "role": template.role.rstrip() + "\n",
        "policies": list(template.policies),
        "examples": [e.model_dump(exclude_defaults=True) for e in template.examples],
    }
    if template.tools_section != DEFAULT_TOOLS_SECTION:
        data["tools_section"] = template.tools_section
    header = f"# {template.name}: {template.source}, {template.path}\n"
    if template.extends:
        header += f"# extends: {' <- '.join(template.extends)}\n"
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body.rstrip()
